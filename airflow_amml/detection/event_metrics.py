"""Event-level and point-wise precision/recall/F1 and the mean time to detect, from a detector's flags.

Event level (Merlion's "revised point-adjusted", ``merlion/evaluate/anomaly.py``): a window is detected when at
least one of its rows is flagged; recall = detected windows / windows; precision = detected windows /
(detected windows + flagged rows outside every window). Every flagged row outside a window is a false positive,
so a detector that flags everything is not rewarded (point adjustment, which counts a run of flags outside
windows once or not at all, gives it F1 ≈ 0.58 on NAB's 28 shipped series; Kim et al., AAAI 2022).

Point-wise: each row is a sample; a flag in a window is a true positive, outside a false positive.

Mean time to detect: over the detected windows, from the window's first row to its first flagged row, in rows
and in time (Merlion's ``MeanTimeToDetect``).

As NAB does, rows of the probationary period (:mod:`.windows`) are not scored by any metric. Counts add up over
series (``a + b``), so a category's or a corpus's metrics pool its windows and rows, as Merlion's accumulators do.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from .windows import SeriesWindows


@dataclass(frozen=True)
class EventCounts:
    """What the metrics are computed from, for one series or a pooled set of series."""

    windows: int = 0
    detected_windows: int = 0
    false_positive_rows: int = 0  # flagged rows outside every window
    true_positive_rows: int = 0  # flagged rows inside a window
    window_rows: int = 0  # scored rows inside windows
    delay_rows: int = 0  # summed over the detected windows: first row → first flagged row
    delay_seconds: float = 0.0

    def __add__(self, other: EventCounts) -> EventCounts:
        return EventCounts(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))

    @property
    def precision(self) -> float | None:
        """Detected windows / (detected windows + flagged rows outside windows); None if nothing is flagged."""
        return _ratio(self.detected_windows, self.detected_windows + self.false_positive_rows)

    @property
    def recall(self) -> float | None:
        """Detected windows / windows; None without a window."""
        return _ratio(self.detected_windows, self.windows)

    @property
    def f1(self) -> float | None:
        return _f1(self.precision, self.recall)

    @property
    def point_precision(self) -> float | None:
        return _ratio(self.true_positive_rows, self.true_positive_rows + self.false_positive_rows)

    @property
    def point_recall(self) -> float | None:
        return _ratio(self.true_positive_rows, self.window_rows)

    @property
    def point_f1(self) -> float | None:
        return _f1(self.point_precision, self.point_recall)

    @property
    def mean_rows_to_detect(self) -> float | None:
        return _ratio(self.delay_rows, self.detected_windows)

    @property
    def mean_seconds_to_detect(self) -> float | None:
        return _ratio(self.delay_seconds, self.detected_windows)


def _ratio(num: float, den: float) -> float | None:
    return None if den == 0 else num / den


def _f1(precision: float | None, recall: float | None) -> float | None:
    """None when recall is undefined (no window); 0 when nothing is flagged or nothing found."""
    if recall is None:
        return None
    if not precision or not recall:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def event_counts(windows: SeriesWindows, flags: np.ndarray, times: np.ndarray) -> EventCounts:
    """The counts for one series: ``flags`` a boolean per row, ``times`` its timestamps (datetime64)."""
    flagged = np.asarray(flags, dtype=bool) & windows.scored()
    window = windows.window_of_rows()
    inside = (window >= 0) & windows.scored()
    scored = windows.scored_windows()
    hits = flagged & inside
    # the first flagged row of each window: rows are in order, so the smallest row number per window
    first = np.full(windows.count, windows.rows, dtype=np.int64)
    np.minimum.at(first, window[hits], np.flatnonzero(hits))
    found = (first < windows.rows) & scored
    start = np.maximum(windows.left, windows.probation)[found]  # a window's first scored row
    seconds = (np.asarray(times)[first[found]] - np.asarray(times)[start]) / np.timedelta64(1, "s")
    return EventCounts(
        windows=int(scored.sum()),
        detected_windows=int(found.sum()),
        false_positive_rows=int((flagged & ~inside).sum()),
        true_positive_rows=int(hits.sum()),
        window_rows=int(inside.sum()),
        delay_rows=int((first[found] - start).sum()),
        delay_seconds=float(seconds.sum()),
    )
