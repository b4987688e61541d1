"""A labelled corpus in NAB's layout, read with its windows; NAB result files written.

Layout: ``DIR/<category>/<name>.csv`` with columns ``timestamp,value``; windows in a JSON file
``{"<category>/<name>.csv": [["start", "end"], ...]}`` (NAB's ``combined_windows.json``). The labelled files
are the corpus: a series under DIR without labels is not scored.

The labels file is untrusted input: each key must be exactly ``<category>/<name>.csv`` (no ``..``, no absolute
path, no back-slash) and lead, links resolved, to a regular file inside DIR; the file is at most
:data:`MAX_LABELS_BYTES`. Errors name the file, and for a key its line and column.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from compiler.errors import SourceError

from .windows import SeriesWindows, WindowError, place_windows

MAX_LABELS_BYTES = 64 << 20
_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,199}\Z")  # a folder or file name: no separators, no `..`
DETECTOR_NAME = re.compile(r"[A-Za-z0-9]{1,64}\Z")  # NAB reads the detector from `<detector>_<name>.csv`


class EvaluationError(SourceError):
    """The corpus, its labels or the pipeline cannot be evaluated: names the file (and place) and how to fix it."""

    label = "evaluation error"


@dataclass(frozen=True)
class LabelledSeries:
    """One series of the corpus: its key (``category/name.csv``), rows and windows."""

    key: str
    path: Path
    timestamps: pd.Series  # as written in the file (NAB result files repeat them verbatim)
    times: np.ndarray  # datetime64[ns]
    values: pd.Series
    windows: SeriesWindows

    @property
    def category(self) -> str:
        return self.key.split("/", 1)[0]

    @property
    def name(self) -> str:
        return self.key.split("/", 1)[1]

    def labels(self) -> np.ndarray:
        """1 for the rows inside a window, else 0 (NAB's ``label`` column)."""
        return (self.windows.window_of_rows() >= 0).astype(np.int64)


def load_corpus(data_dir: Path | str, labels_file: Path | str) -> list[LabelledSeries]:
    """Every series the labels name, read from ``data_dir``, in the labels' order."""
    data_dir, labels_file = Path(data_dir), Path(labels_file)
    if not data_dir.is_dir():
        raise EvaluationError(
            f"{data_dir} is not a folder", filename=str(data_dir), hint="--data names the folder holding <category>/"
        )
    text, labels = _read_labels(labels_file)
    corpus = []
    for key, windows in labels.items():
        where = _key_place(text, key, str(labels_file))
        path = series_path(data_dir, key, where)
        times, stamps, values = _read_series(path, key, where)
        if len(windows) > len(times):  # windows do not overlap and hold a record each
            raise EvaluationError(f"`{key}`: {len(windows)} windows on {len(times)} records", **where)
        try:
            placed = place_windows(times, windows)
        except WindowError as exc:
            raise EvaluationError(f"`{key}`: {exc}", **where, hint="fix the window in the labels file") from None
        corpus.append(LabelledSeries(key, path, stamps, times, values, placed))
    if not corpus:
        raise EvaluationError(
            "the labels file names no series",
            filename=str(labels_file),
            hint='give {"category/name.csv": [["start", "end"], ...], ...}',
        )
    return corpus


def _read_labels(path: Path) -> tuple[str, dict[str, list[tuple[pd.Timestamp, pd.Timestamp]]]]:
    try:
        if path.stat().st_size > MAX_LABELS_BYTES:
            raise EvaluationError(f"the labels file is larger than {MAX_LABELS_BYTES >> 20} MiB", filename=str(path))
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise EvaluationError(
            f"cannot read the labels: {exc.strerror or exc}",
            filename=str(path),
            hint="--labels names a JSON file of windows",
        ) from None
    except UnicodeDecodeError as exc:
        raise EvaluationError(f"the labels file is not UTF-8 text ({exc.reason})", filename=str(path)) from None
    try:
        data = json.loads(text)
    except RecursionError:
        raise EvaluationError("the labels file is nested too deeply", filename=str(path)) from None
    except json.JSONDecodeError as exc:
        raise EvaluationError(
            f"not JSON: {exc.msg}", filename=str(path), line=exc.lineno, column=exc.colno, source=text
        ) from None
    if not isinstance(data, dict):
        raise EvaluationError(
            "the labels must be a JSON object",
            filename=str(path),
            hint='e.g. {"realKnownCause/nyc_taxi.csv": [["2014-10-30 15:30:00", "2014-11-03 22:30:00"]]}',
        )
    labels = {}
    for key, windows in data.items():
        where = _key_place(text, key, str(path))
        labels[key] = _windows(key, windows, where)
    return text, labels


def _windows(key: str, raw: object, where: dict) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    shape = 'a list of ["start", "end"] pairs'
    if not isinstance(raw, list) or not all(isinstance(w, list) and len(w) == 2 for w in raw):
        raise EvaluationError(
            f"`{key}`: the windows must be {shape}",
            **where,
            hint='e.g. [["2014-04-10 07:15:00", "2014-04-11 16:45:00"]]',
        )
    out = []
    for start, end in raw:
        try:
            bounds = pd.Timestamp(start), pd.Timestamp(end)
        except (ValueError, TypeError, OverflowError):
            bounds = (pd.NaT, pd.NaT)
        if not isinstance(start, str) or not isinstance(end, str) or pd.isna(bounds[0]) or pd.isna(bounds[1]):
            raise EvaluationError(
                f"`{key}`: the window [{start!r}, {end!r}] is not a pair of times",
                **where,
                hint='write times like "2014-04-10 07:15:00"',
            )
        out.append(bounds)
    return out


def _key_place(text: str, key: str, filename: str) -> dict:
    """filename, line and column of ``key`` in the labels' text (where it is written plainly)."""
    at = text.find(json.dumps(key))
    if at < 0:
        return {"filename": filename}
    line = text.count("\n", 0, at) + 1
    return {"filename": filename, "line": line, "column": at - (text.rfind("\n", 0, at) + 1) + 1, "source": text}


def series_path(data_dir: Path, key: str, where: dict) -> Path:
    """The file of ``key`` (``category/name.csv``) inside ``data_dir``, or an error naming the key."""
    parts = key.split("/")
    if len(parts) != 2 or not all(_PART.match(p) for p in parts) or not key.endswith(".csv"):
        raise EvaluationError(
            f"the label key {key!r} is not `<category>/<name>.csv` inside the data folder",
            **where,
            hint="keys are relative paths of exactly two parts, without `..`, e.g. realKnownCause/nyc_taxi.csv",
        )
    root = data_dir.resolve()
    path = (data_dir / key).resolve()
    if not path.is_relative_to(root):
        raise EvaluationError(
            f"the label key {key!r} leads out of the data folder {data_dir} (a link)",
            **where,
            hint="keep the series files inside the folder --data names",
        )
    if not path.is_file():
        what = "is not a regular file" if path.exists() else "does not exist"
        raise EvaluationError(
            f"`{key}`: {data_dir / key} {what}",
            **where,
            hint="put the series at <data>/<category>/<name>.csv or remove its labels",
        )
    return path


def _read_series(path: Path, key: str, where: dict) -> tuple[np.ndarray, pd.Series, pd.Series]:
    try:
        frame = pd.read_csv(path, dtype={"timestamp": str})
    except (ValueError, OSError) as exc:  # pandas' ParserError is a ValueError naming the line
        raise EvaluationError(f"`{key}`: cannot read {path}: {exc}", **where) from None
    missing = [c for c in ("timestamp", "value") if c not in frame.columns]
    if missing or not len(frame):
        problem = f"has no column {missing}" if missing else "has no rows"
        raise EvaluationError(f"`{key}`: {path} {problem}; NAB series have `timestamp,value`", **where)
    times = pd.to_datetime(frame["timestamp"], errors="coerce", format="mixed")
    if times.isna().any():
        row = int(np.flatnonzero(times.isna().to_numpy())[0])
        raise EvaluationError(
            f"{path}:{row + 2}: `{frame['timestamp'].iloc[row]}` is not a time",
            filename=str(path),
            hint="write times like 2014-04-10 07:15:00",
        )
    return times.to_numpy(dtype="datetime64[ns]"), frame["timestamp"], frame["value"]


def write_results(out_dir: Path | str, detector: str, series: LabelledSeries, scores: np.ndarray) -> Path:
    """NAB's result file for one series: ``OUT/<category>/<detector>_<name>.csv`` with
    ``timestamp,value,anomaly_score,label``, which NAB's own scorer reads."""
    if not DETECTOR_NAME.match(detector):
        raise EvaluationError(
            f"detector name {detector!r}: NAB needs letters and digits only",
            filename="--detector",
            hint="e.g. --detector ammlGaussian",
        )
    root = Path(out_dir)
    folder = root / series.category
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{detector}_{series.name}"
    if not target.resolve().is_relative_to(root.resolve()):
        raise EvaluationError(f"{target} leads out of the output folder {root} (a link)", filename=str(target))
    frame = pd.DataFrame(
        {
            "timestamp": series.timestamps,
            "value": series.values,
            "anomaly_score": scores,
            "label": series.labels(),
        }
    )
    frame.to_csv(target, index=False)
    return target
