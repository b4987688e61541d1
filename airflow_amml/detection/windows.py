"""Labelled anomaly windows placed on a series' rows, and NAB's probationary period.

Every metric in this package scores rows, not times: a window is the run of rows it covers, found as NAB finds
it (``nab/sweeper.py``: a window starts at the row whose time is its start and ends at the row whose time is
its end, both included). Placing by row keeps a series that is not in time order everywhere (NAB's
``machine_temperature_system_failure.csv`` repeats an hour once) scored as NAB scores it. For times that are
not exactly rows of the series, a window covers the rows from the first at or after its start to the last at
or before its end.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

# NAB (nab/sweeper.py, runner.py): the first 15 % of a series, at most 15 % of 5000 rows, are not scored
PROBATION_FRACTION = 0.15
PROBATION_CAP_ROWS = 5000


def probation_length(rows: int) -> int:
    """Rows at the start of a series that no metric scores (a detector is still learning there)."""
    return int(min(math.floor(PROBATION_FRACTION * rows), PROBATION_FRACTION * PROBATION_CAP_ROWS))


class WindowError(ValueError):
    """A labelled window that cannot be placed on the series (the caller says which file and window)."""


@dataclass(frozen=True)
class SeriesWindows:
    """A series' windows as row ranges: window k covers rows ``left[k]`` to ``right[k]``, both included, in
    row order and not overlapping; rows before ``probation`` are not scored."""

    rows: int
    probation: int
    left: np.ndarray
    right: np.ndarray

    @property
    def count(self) -> int:
        return len(self.left)

    def window_of_rows(self) -> np.ndarray:
        """The window each row is in (its number), -1 outside every window."""
        inside = np.full(self.rows, -1, dtype=np.int64)
        for k, (lo, hi) in enumerate(zip(self.left, self.right)):  # a loop per window, not per row
            inside[lo : hi + 1] = k
        return inside

    def scored(self) -> np.ndarray:
        """True for the rows that are scored (after the probationary period)."""
        mask = np.ones(self.rows, dtype=bool)
        mask[: self.probation] = False
        return mask

    def scored_windows(self) -> np.ndarray:
        """True for each window with at least one scored row: a window inside the probationary period is not
        scored (none of NAB's is)."""
        return self.right >= self.probation


def place_windows(times: Sequence | np.ndarray, windows: Sequence[tuple[object, object]]) -> SeriesWindows:
    """The row ranges of ``windows`` (``(start, end)`` times) on a series whose rows have ``times``."""
    stamps = pd.DatetimeIndex(times)
    rows = len(stamps)
    values = stamps.as_unit("ns").asi8
    lefts, rights = [], []
    for start, end in windows:
        lo_time, hi_time = pd.Timestamp(start).as_unit("ns").value, pd.Timestamp(end).as_unit("ns").value
        if hi_time < lo_time:
            raise WindowError(f"the window [{start}, {end}] ends before it starts")
        lo = _first(values, lo_time, 0)
        if lo is None:
            raise WindowError(f"the window [{start}, {end}] starts after the last record ({stamps[-1]})")
        hi = _first(values, hi_time, lo)
        if hi is None:
            hi = rows - 1  # the window runs past the last record
        elif values[hi] > hi_time:
            hi -= 1
        if hi < lo:
            raise WindowError(f"the window [{start}, {end}] holds no record of the series")
        lefts.append(lo)
        rights.append(hi)
    order = np.argsort(lefts, kind="stable")
    left = np.asarray(lefts, dtype=np.int64)[order]
    right = np.asarray(rights, dtype=np.int64)[order]
    clash = np.flatnonzero(left[1:] <= right[:-1])
    if len(clash):
        k = int(order[clash[0] + 1])
        raise WindowError(f"the window [{windows[k][0]}, {windows[k][1]}] overlaps another window")
    return SeriesWindows(rows=rows, probation=probation_length(rows), left=left, right=right)


def _first(values: np.ndarray, time: int, start: int) -> int | None:
    """The first row from ``start`` whose time is ``time`` (NAB's rule), else the first one after it."""
    tail = values[start:]
    found = np.flatnonzero(tail == time)
    if not len(found):
        found = np.flatnonzero(tail > time)
    return start + int(found[0]) if len(found) else None
