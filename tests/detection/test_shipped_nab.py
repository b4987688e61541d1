"""NAB's 28 series ship with the package verbatim (MIT), with their windows and NAB's scoring profiles."""

import hashlib
import json
import re
from pathlib import Path

NAB = Path(__file__).resolve().parents[2] / "airflow_amml" / "data" / "nab"


def listed_hashes() -> dict[str, str]:
    """The README's sha256 list: `<64 hex digits>  <path>` lines."""
    lines = re.findall(r"^([0-9a-f]{64})  (\S+)$", (NAB / "README.md").read_text(), flags=re.MULTILINE)
    return {path: digest for digest, path in lines}


def test_every_shipped_file_is_listed_in_the_readme_with_its_sha256():
    shipped = {p.relative_to(NAB).as_posix() for p in NAB.rglob("*") if p.is_file() and p.name != "README.md"}
    listed = listed_hashes()
    assert set(listed) == shipped and len(shipped) == 32  # 28 series, 2 label files, the profiles, the license
    changed = [
        path for path, digest in listed.items() if hashlib.sha256((NAB / path).read_bytes()).hexdigest() != digest
    ]
    assert changed == []


def test_the_license_and_the_source_are_named():
    assert "MIT" in (NAB / "README.md").read_text() and "github.com/numenta/NAB" in (NAB / "README.md").read_text()
    assert "Permission is hereby granted, free of charge" in (NAB / "LICENSE.txt").read_text()


def test_the_windows_label_every_shipped_series():
    windows = json.loads((NAB / "combined_windows.json").read_text())
    series = {p.relative_to(NAB).as_posix() for p in NAB.glob("*/*.csv")}
    assert set(windows) == series and len(series) == 28
    assert sum(len(w) for w in windows.values()) == 58
    assert set(json.loads((NAB / "combined_labels.json").read_text())) == series
