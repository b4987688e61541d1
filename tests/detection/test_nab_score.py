"""The NAB score on series small enough to score by hand, and on the 28 shipped series.

NAB's scaled sigmoid σ(y) = 2/(1 + e^(5y)) − 1 is tanh(−5y/2), which is how the comments compute it: σ(−1) =
tanh(2.5) = 0.986614. Every hand-made series has 20 rows a minute apart, so its probationary period is
floor(0.15 · 20) = 3 rows (rows 0–2), and, unless said otherwise, one window on rows 8–11 (width 4).
"""

import json
import math

import numpy as np
import pandas as pd
import pytest

from airflow_amml.detection.nab_score import (
    SHIPPED_PROFILES,
    CostMatrix,
    SeriesWorth,
    load_profiles,
    optimise_threshold,
    raw_score,
    scaled_sigmoid,
    sweep,
)
from airflow_amml.detection.windows import SeriesWindows, WindowError, place_windows, probation_length

TIMES = pd.date_range("2024-01-01", periods=20, freq="min").to_numpy()
PROFILES = load_profiles()
STANDARD = PROFILES["standard"]
MAX_TP = math.tanh(2.5)


def series(*windows):
    """20 rows; windows as (first row, last row)."""
    return SeriesWorth.of(place_windows(TIMES, [(TIMES[a], TIMES[b]) for a, b in windows]))


def detections(*rows, length=20):
    d = np.zeros(length, dtype=bool)
    d[list(rows)] = True
    return d


def test_the_profiles_are_nabs():
    assert PROFILES == {
        "standard": CostMatrix(tp=1.0, fp=0.11, fn=1.0),
        "reward_low_FP_rate": CostMatrix(tp=1.0, fp=0.22, fn=1.0),
        "reward_low_FN_rate": CostMatrix(tp=1.0, fp=0.11, fn=2.0),
    }
    assert json.loads(SHIPPED_PROFILES.read_text())["standard"]["CostMatrix"]["tnWeight"] == 1.0


def test_the_scaled_sigmoid_at_nabs_documented_points():
    # NAB's docstring: σ(−1) = 0.98661, σ(−0.5) = 0.84828, σ(0) = 0, σ(1) = −0.98661; −1 beyond 3
    assert scaled_sigmoid([-1.0, -0.5, 0.0, 1.0, 3.5]) == pytest.approx(
        [0.98661, 0.84828, 0.0, -0.98661, -1.0], abs=1e-5
    )


def test_the_probationary_period():
    # min(floor(0.15 n), 0.15 · 5000 = 750)
    assert [probation_length(n) for n in (20, 4032, 5000, 7267, 22695)] == [3, 604, 750, 750, 750]


def test_a_detection_at_the_left_edge_of_a_window_is_worth_the_whole_tp_weight():
    # row 8: position −(11 − 8 + 1)/4 = −1 → σ(−1)/σ(−1) = 1; null −1, perfect 1 → 100 · (1 + 1)/2 = 100
    score = raw_score(series((8, 11)), detections(8), STANDARD)
    assert score.raw == pytest.approx(1.0)
    assert score.normalised(STANDARD) == pytest.approx(100.0)
    assert (score.tp, score.fp, score.fn, score.tn) == (1, 0, 3, 13)  # NAB's counts: 17 scored rows


def test_a_detection_at_the_right_edge_is_worth_a_little_more_than_half():
    # row 11: position −(11 − 11 + 1)/4 = −0.25 → tanh(0.625)/tanh(2.5) = 0.55460/0.98661 = 0.56212
    score = raw_score(series((8, 11)), detections(11), STANDARD)
    assert score.raw == pytest.approx(math.tanh(0.625) / MAX_TP)
    assert score.raw == pytest.approx(0.56212, abs=1e-5)
    assert score.normalised(STANDARD) == pytest.approx(100 * (0.56212 + 1) / 2, abs=1e-3)


def test_a_detection_after_a_window_is_a_false_positive_scored_by_its_distance():
    # row 13: (13 − 11)/(4 − 1) = 2/3 past the window → 0.11 · tanh(−5/3) = 0.11 · −0.93111 = −0.10242,
    # and the window is missed: −1
    after = raw_score(series((8, 11)), detections(13), STANDARD)
    assert after.raw == pytest.approx(0.11 * math.tanh(-5 / 3) - 1)
    assert (after.tp, after.fp) == (0, 1)
    # the row right after the window costs less (1/3: 0.11 · tanh(−5/6) = −0.07505), one far away the full −0.11
    just_after = raw_score(series((8, 11)), detections(12), STANDARD)
    assert just_after.raw == pytest.approx(0.11 * math.tanh(-5 / 6) - 1)
    far_after = raw_score(series((3, 4)), detections(19), STANDARD)  # window rows 3–4: (19 − 4)/1 = 15 > 3
    assert far_after.raw == pytest.approx(-0.11 - 1)


def test_a_detection_before_any_window_costs_the_whole_fp_weight():
    assert raw_score(series((8, 11)), detections(5), STANDARD).raw == pytest.approx(-0.11 - 1)


def test_only_the_first_of_two_detections_in_a_window_counts():
    # rows 9 and 10: row 9's position −(11 − 9 + 1)/4 = −0.75 → tanh(1.875)/tanh(2.5) = 0.96699; row 10 adds 0
    both = raw_score(series((8, 11)), detections(9, 10), STANDARD)
    assert both.raw == pytest.approx(math.tanh(1.875) / MAX_TP)
    assert both.raw == raw_score(series((8, 11)), detections(9), STANDARD).raw
    assert (both.tp, both.detected_windows) == (2, 1)


def test_a_missed_window_costs_the_fn_weight():
    assert raw_score(series((8, 11)), detections(), STANDARD).raw == -1.0
    assert raw_score(series((8, 11)), detections(), PROFILES["reward_low_FN_rate"]).raw == -2.0


def test_the_probationary_period_is_not_scored():
    # row 2 is in the probationary period (rows 0–2): no false positive, the window is still missed
    assert raw_score(series((8, 11)), detections(2), STANDARD).raw == -1.0
    # a window inside it is not scored at all (nor counted in null and perfect)
    early = raw_score(series((1, 2)), detections(1), STANDARD)
    assert (early.raw, early.windows, early.normalised(STANDARD)) == (0.0, 0, None)


def test_the_null_detector_scores_0_and_the_perfect_one_100():
    one, two = series((8, 11)), series((5, 6), (12, 16))
    null = raw_score(one, detections(), STANDARD) + raw_score(two, detections(), STANDARD)
    perfect = raw_score(one, detections(8), STANDARD) + raw_score(two, detections(5, 12), STANDARD)
    assert (null.windows, null.raw, perfect.raw) == (3, -3.0, 3.0)
    for cost in PROFILES.values():
        null = raw_score(one, detections(), cost) + raw_score(two, detections(), cost)
        perfect = raw_score(one, detections(8), cost) + raw_score(two, detections(5, 12), cost)
        assert null.normalised(cost) == pytest.approx(0.0)
        assert perfect.normalised(cost) == pytest.approx(100.0)


def test_the_three_profiles_weigh_false_positives_and_misses_differently():
    # windows on rows 8–11 (found at row 8: +1) and 14–17 (missed), a false positive at row 5 (before both)
    s, d = series((8, 11), (14, 17)), detections(5, 8)
    scores = {name: raw_score(s, d, cost).normalised(cost) for name, cost in PROFILES.items()}
    # standard: 1 − 1 − 0.11 = −0.11; null −2, perfect 2 → 100 · 1.89/4 = 47.25
    # low FP:   1 − 1 − 0.22 = −0.22 → 100 · 1.78/4 = 44.5
    # low FN:   1 − 2 − 0.11 = −1.11; null −4, perfect 2 → 100 · 2.89/6 = 48.1667
    assert scores == pytest.approx({"standard": 47.25, "reward_low_FP_rate": 44.5, "reward_low_FN_rate": 48.16667})


def test_the_threshold_sweep_walks_scores_from_the_highest_and_picks_the_best():
    # series 1: row 5 scores 0.95 (before the window), row 8 0.9 (its left edge); series 2: row 10 0.8 (in its
    # window), row 15 0.7 (past it); all other rows 0.
    one, two = series((8, 11)), series((8, 11))
    s1, s2 = np.zeros(20), np.zeros(20)
    s1[5], s1[8], s2[10], s2[15] = 0.95, 0.9, 0.8, 0.7
    result = sweep([(one, s1), (two, s2)], STANDARD)
    in_window = math.tanh(1.25) / MAX_TP  # row 10: −(11 − 10 + 1)/4 = −0.5 → 0.85978
    past = 0.11 * math.tanh(-10 / 3)  # row 15: (15 − 11)/3 = 4/3 past → 0.11 · tanh(−5/2 · 4/3) = −0.10972
    expected = [
        -2.0,  # no detection: both windows missed
        -2.0 - 0.11,  # ≥ 0.95: a false positive before any window
        -0.11,  # ≥ 0.9: series 1's window at its left edge, −1 → +1
        -0.11 + 1 + in_window,  # ≥ 0.8: series 2's window, −1 → 0.85978
        -0.11 + 1 + in_window + past,  # ≥ 0.7
    ]
    assert list(result.thresholds[:5]) == [np.inf, 0.95, 0.9, 0.8, 0.7]
    assert result.raw[:5] == pytest.approx(expected)
    assert len(result.thresholds) == 6  # and ≥ 0: every scored row detected
    assert result.best() == pytest.approx((0.8, -0.11 + 1 + in_window))
    assert optimise_threshold([(one, s1), (two, s2)], STANDARD) == 0.8


def test_no_threshold_at_all_when_never_detecting_scores_best():
    s = np.full(20, np.nan)  # rows without a score never detect
    s[5] = 1.0  # a false positive is all a threshold can add: −1 − 0.11 < −1
    result = sweep([(series((8, 11)), s)], STANDARD)
    assert list(result.thresholds) == [np.inf, 1.0] and result.raw == pytest.approx([-1.0, -1.11])
    assert optimise_threshold([(series((8, 11)), s)], STANDARD) == np.inf


def test_the_sweep_agrees_with_scoring_each_threshold_on_the_shipped_corpus():
    from airflow_amml.detection.nab_corpus import load_corpus
    from tests.detection.test_shipped_nab import NAB

    corpus = load_corpus(NAB, NAB / "combined_windows.json")
    rng = np.random.default_rng(7)
    scored = [(SeriesWorth.of(s.windows), np.round(rng.random(s.windows.rows) ** 8, 3)) for s in corpus]
    for cost in PROFILES.values():
        result = sweep(scored, cost)
        for k in (1, 2, 5, 20, len(result.thresholds) // 2, len(result.thresholds) - 1):
            t = result.thresholds[k]
            direct = sum(raw_score(w, scores >= t, cost).raw for w, scores in scored)
            assert result.raw[k] == pytest.approx(direct, rel=1e-9, abs=1e-9)  # a running sum vs a sum
        assert result.raw[0] == -cost.fn * 58  # the null detector: every one of the 58 windows missed


def test_windows_are_placed_by_row_with_both_edges_included():
    w = place_windows(TIMES, [(TIMES[14], TIMES[17]), (TIMES[8], TIMES[11])])  # given out of order
    assert (list(w.left), list(w.right)) == ([8, 14], [11, 17])
    # times between rows: from the first row at or after the start to the last at or before the end
    between = place_windows(TIMES, [(TIMES[8] + np.timedelta64(30, "s"), TIMES[11] + np.timedelta64(30, "s"))])
    assert (list(between.left), list(between.right)) == ([9], [11])


def test_windows_that_cannot_be_placed_are_refused():
    gap = np.timedelta64(10, "s")
    for bad, problem in [
        ([(TIMES[11], TIMES[8])], "ends before it starts"),
        ([(TIMES[19] + gap, TIMES[19] + 2 * gap)], "starts after the last record"),
        ([(TIMES[8] + gap, TIMES[8] + 2 * gap)], "holds no record"),
        ([(TIMES[8], TIMES[11]), (TIMES[11], TIMES[14])], "overlaps another window"),
    ]:
        with pytest.raises(WindowError, match=problem):
            place_windows(TIMES, bad)


def test_a_window_of_one_row_counts_distance_in_rows_after_it():
    # window rows 8–8: NAB would divide by width − 1 = 0; here a detection 2 rows later is 2 widths past
    one_row = SeriesWorth.of(SeriesWindows(rows=20, probation=3, left=np.array([8]), right=np.array([8])))
    assert raw_score(one_row, detections(10), STANDARD).raw == pytest.approx(0.11 * math.tanh(-5) - 1)
