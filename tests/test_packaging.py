"""The built distributions hold the whole product: every module and data file of the source tree.

A package without ``__init__.py`` is skipped by ``packages = find:``; a non-editable install (the Docker image)
would then lack it. The wheel and the sdist are built here, without network access, from a copy of the
checkout: a build in place would leave ``airflow_amml.egg-info`` there, a second distribution of the plugin
for anything that puts the checkout on ``sys.path``.
"""

import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("airflow_amml", "compiler", "operators")
DATA_SUFFIXES = {".lark", ".mako", ".csv", ".md", ""}


def source_files() -> set[str]:
    """Every file the product is made of, relative to the checkout (caches and editors' files excluded)."""
    found = set()
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*"):
            wanted = path.suffix == ".py" or path.suffix in DATA_SUFFIXES
            if wanted and path.is_file() and "__pycache__" not in path.parts:
                found.add(path.relative_to(ROOT).as_posix())
    return found


@pytest.fixture(scope="module")
def dists(tmp_path_factory):
    out, tree = tmp_path_factory.mktemp("dist"), tmp_path_factory.mktemp("tree") / "airflow-amml"
    junk = shutil.ignore_patterns(".*", "build", "*.egg-info", "__pycache__", "tests", "bench")
    shutil.copytree(ROOT, tree, ignore=junk)
    subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--wheel", "--sdist", "--outdir", str(out), str(tree)],
        check=True, capture_output=True, timeout=240,
    )
    (wheel,) = out.glob("*.whl")
    (sdist,) = out.glob("*.tar.gz")
    return wheel, sdist


def test_every_package_has_an_init():
    missing = [
        d.relative_to(ROOT).as_posix()
        for package in PACKAGES
        for d in [ROOT / package, *(ROOT / package).rglob("*")]
        if d.is_dir() and d.name != "__pycache__" and any(d.glob("*.py")) and not (d / "__init__.py").is_file()
    ]
    assert missing == []


def test_the_wheel_holds_every_module_and_data_file(dists):
    wheel, _ = dists
    with zipfile.ZipFile(wheel) as zf:
        inside = set(zf.namelist())
    expected = source_files()
    assert "airflow_amml/runtime/executor.py" in expected and "airflow_amml/data/ett/ETTh1.csv" in expected
    assert sorted(expected - inside) == []
    assert not any(name.startswith("tests/") for name in inside)


def test_the_sdist_holds_every_module_and_data_file(dists):
    _, sdist = dists
    with tarfile.open(sdist) as tf:
        top = tf.getnames()[0].split("/")[0]
        inside = {name.removeprefix(top + "/") for name in tf.getnames()}
    assert sorted(source_files() - inside) == []


def test_the_wheel_installs_the_console_script_plugin_and_provider(dists):
    wheel, _ = dists
    with zipfile.ZipFile(wheel) as zf:
        (entry_points,) = [n for n in zf.namelist() if n.endswith(".dist-info/entry_points.txt")]
        text = zf.read(entry_points).decode()
    assert "amml = airflow_amml.cli:main" in text
    assert "amml = airflow_amml.plugin:AmmlPlugin" in text
    assert "provider_info = airflow_amml.provider_info:get_provider_info" in text
    for scheme in ("file", "webhdfs", "http", "https", "hdfs"):
        assert f"{scheme} = airflow_amml.registry." in text, f"artifact store {scheme}"
