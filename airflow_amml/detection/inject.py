"""Labelled anomalies injected into a clean series, for measuring detectors where no labels exist (ETTh1).

Four kinds, each a run of rows ``[start, end)`` whose values are changed (``scale`` is the typical size of the
series' changes from one row to the next, by default the standard deviation of its first differences):

* ``spike`` — one row, raised or lowered by 5–10 × scale (a glitch of the sensor or of the transfer);
* ``level_shift`` — 24–72 rows moved by 3–6 × scale, then back (a changed offset, then repaired);
* ``stuck`` — 24–48 rows that all repeat the value of the row before the run (a sensor that stopped updating);
* ``drift`` — 96–168 rows plus a ramp from 0 to 6–12 × scale, then back (a calibration drifting, then redone).

Signs are random. The rows are counted in records; the lengths above suit hourly data. Anomalies never overlap
and leave ``gap`` rows between them: the usable rows (after the first ``skip``, e.g. NAB's probationary
period) are cut into one equal slot per anomaly, and each anomaly starts at a random row of its slot. The same
``seed`` gives the same anomalies.

:func:`nab_windows` turns them into NAB's windows: from an anomaly's first changed row to ``tolerance`` rows
after its last (the return to normal of a shift, a stuck run or a drift is a change too, and a detection just
after a one-row spike is still a detection of it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

KINDS = ("spike", "level_shift", "stuck", "drift")
LENGTHS = {"spike": (1, 1), "level_shift": (24, 72), "stuck": (24, 48), "drift": (96, 168)}  # rows, inclusive
SIZES = {"spike": (5.0, 10.0), "level_shift": (3.0, 6.0), "stuck": (0.0, 0.0), "drift": (6.0, 12.0)}  # × scale


@dataclass(frozen=True)
class Anomaly:
    """One injected anomaly: rows ``start`` to ``end`` (exclusive) of kind ``kind``; ``size`` is the spike's
    height, the shift, or the drift's value on its last row, in the series' units (0 for a stuck run)."""

    kind: str
    start: int
    end: int
    size: float


@dataclass(frozen=True)
class Injected:
    """The changed values, the anomalies in row order, and a label per row (True inside an anomaly)."""

    values: np.ndarray
    anomalies: tuple[Anomaly, ...]
    labels: np.ndarray


def inject(
    values: np.ndarray,
    kinds: Sequence[str],
    *,
    seed: int,
    skip: int = 0,
    gap: int = 48,
    scale: float | None = None,
) -> Injected:
    """Inject one anomaly per entry of ``kinds`` (e.g. ``["spike"] * 4``) into a copy of ``values``."""
    clean = np.asarray(values, dtype=np.float64)
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        raise ValueError(f"unknown anomaly kind(s) {unknown}; known: {list(KINDS)}")
    if not kinds:
        return Injected(clean.copy(), (), np.zeros(len(clean), dtype=bool))
    if scale is None:
        scale = float(np.nanstd(np.diff(clean)))
    slot = (len(clean) - max(skip, 1)) // len(kinds)  # skip ≥ 1: a stuck run needs the row before it
    longest = max(LENGTHS[k][1] for k in kinds)
    if slot < longest + gap:
        raise ValueError(
            f"{len(kinds)} anomalies do not fit in {len(clean) - skip} rows: each needs {longest + gap} "
            "(its longest length and the gap)"
        )
    rng = np.random.default_rng(seed)
    out = clean.copy()
    labels = np.zeros(len(clean), dtype=bool)
    anomalies = []
    for number, kind in enumerate(rng.permutation(list(kinds))):
        low, high = LENGTHS[kind]
        length = int(rng.integers(low, high + 1))
        first = max(skip, 1) + number * slot
        start = first + int(rng.integers(0, slot - length - gap + 1))
        end = start + length
        size = float(rng.uniform(*SIZES[kind]) * scale * rng.choice([-1.0, 1.0]))
        if kind == "stuck":
            out[start:end] = clean[start - 1]
            size = 0.0
        elif kind == "drift":
            out[start:end] += size * np.arange(1, length + 1) / length
        else:  # a spike is a shift of one row
            out[start:end] += size
        labels[start:end] = True
        anomalies.append(Anomaly(str(kind), start, end, size))
    return Injected(out, tuple(sorted(anomalies, key=lambda a: a.start)), labels)


def nab_windows(timestamps: Sequence[str], anomalies: Sequence[Anomaly], *, tolerance: int = 12) -> list[list[str]]:
    """NAB windows (``[[start, end], ...]``, both ends included, as NAB's ``combined_windows.json``): each from
    the anomaly's first row to ``tolerance`` rows after its last, within the series."""
    last = len(timestamps) - 1
    ends = [min(a.end - 1 + tolerance, last) for a in anomalies]
    for a, end, after in zip(anomalies, ends, anomalies[1:]):
        if end >= after.start:
            raise ValueError(
                f"the window of the {a.kind} at row {a.start} reaches the {after.kind} at row {after.start}: "
                f"tolerance {tolerance} is at least the gap between them"
            )
    return [[str(timestamps[a.start]), str(timestamps[end])] for a, end in zip(anomalies, ends)]
