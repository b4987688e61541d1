"""Event-level and point-wise metrics and the mean time to detect, by hand, and what flagging everything gets.

Hand-made series: 20 rows a minute apart (probationary period rows 0–2), windows on rows 8–11 and 14–17.
"""

import numpy as np
import pandas as pd
import pytest

from airflow_amml.detection.event_metrics import EventCounts, event_counts
from airflow_amml.detection.nab_corpus import load_corpus
from airflow_amml.detection.windows import place_windows

from .test_shipped_nab import NAB

TIMES = pd.date_range("2024-01-01", periods=20, freq="min").to_numpy()
WINDOWS = place_windows(TIMES, [(TIMES[8], TIMES[11]), (TIMES[14], TIMES[17])])


def flags(*rows):
    f = np.zeros(20, dtype=bool)
    f[list(rows)] = True
    return f


def test_every_flagged_record_outside_a_window_is_a_false_positive():
    # row 2: probationary, not scored; rows 5 and 12: outside (2 false positives); rows 9, 10: the first window
    counts = event_counts(WINDOWS, flags(2, 5, 9, 10, 12), TIMES)
    assert (counts.windows, counts.detected_windows, counts.false_positive_rows) == (2, 1, 2)
    assert counts.precision == pytest.approx(1 / 3)  # 1 window / (1 window + 2 rows)
    assert counts.recall == pytest.approx(1 / 2)
    assert counts.f1 == pytest.approx(0.4)  # 2 · (1/3)(1/2) / (1/3 + 1/2) = (1/3)/(5/6)
    # point-wise: 2 flagged rows in windows, 2 outside; 8 window rows
    assert counts.point_precision == pytest.approx(0.5)
    assert counts.point_recall == pytest.approx(2 / 8)
    assert counts.point_f1 == pytest.approx(1 / 3)  # 2 · 0.5 · 0.25 / 0.75
    # the first window's first row is 8, its first flag row 9: one record, one minute
    assert (counts.mean_rows_to_detect, counts.mean_seconds_to_detect) == (1.0, 60.0)


def test_counts_pool_over_series():
    one = event_counts(WINDOWS, flags(8), TIMES)  # window 1 at once; window 2 missed
    two = event_counts(WINDOWS, flags(11, 17, 19), TIMES)  # both windows, 3 and 3 rows late; one false positive
    pooled = one + two
    assert (pooled.windows, pooled.detected_windows, pooled.false_positive_rows) == (4, 3, 1)
    assert pooled.precision == pytest.approx(3 / 4) and pooled.recall == pytest.approx(3 / 4)
    assert pooled.mean_rows_to_detect == pytest.approx((0 + 3 + 3) / 3)
    assert pooled.mean_seconds_to_detect == pytest.approx(120.0)


def test_undefined_metrics_are_none_not_zero():
    nothing = event_counts(WINDOWS, flags(), TIMES)
    assert (nothing.precision, nothing.recall, nothing.f1, nothing.mean_rows_to_detect) == (None, 0.0, 0.0, None)
    no_windows = event_counts(place_windows(TIMES, []), flags(5), TIMES)
    assert (no_windows.precision, no_windows.recall, no_windows.f1) == (0.0, None, None)
    assert EventCounts().f1 is None


def _rejected_event_f1(windows, flagged) -> tuple[int, int, int]:
    """The metric issue 11 rejects (point-adjusted events): a window is found if any of its rows is flagged, and
    each *run* of consecutive flagged rows outside windows is one false alarm. Returns (found, windows, alarms)."""
    scored = windows.scored()
    inside = windows.window_of_rows() >= 0
    outside_flags = flagged & ~inside & scored
    runs = int((np.diff(np.r_[0, outside_flags.astype(int)]) == 1).sum())
    found = sum(bool(flagged[lo : hi + 1][scored[lo : hi + 1]].any()) for lo, hi in zip(windows.left, windows.right))
    return found, windows.count, runs


def test_flag_everything_scores_well_only_under_the_rejected_metric():
    corpus = load_corpus(NAB, NAB / "combined_windows.json")
    everything = [np.ones(s.windows.rows, dtype=bool) for s in corpus]
    found = windows = alarms = 0
    for s, f in zip(corpus, everything):
        a, b, c = _rejected_event_f1(s.windows, f)
        found, windows, alarms = found + a, windows + b, alarms + c
    # 58 windows, all found; 84 runs of records outside them (5 series without windows: 1 run each)
    assert (found, windows, alarms) == (58, 58, 84)
    precision = found / (found + alarms)  # 58/142
    rejected_f1 = 2 * precision / (precision + 1)
    assert rejected_f1 == pytest.approx(0.58, abs=0.005)

    pooled = sum((event_counts(s.windows, f, s.times) for s, f in zip(corpus, everything)), EventCounts())
    assert pooled.recall == 1.0
    assert pooled.false_positive_rows > 200_000  # every scored record outside a window
    assert pooled.f1 < 0.001  # 58 / (58 + FP rows) ≈ 0.0003 precision
