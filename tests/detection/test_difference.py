"""`difference` (x[t] - x[t - lag], in records or a duration) and the detectors' `scale='sigma'`: hand-checked
values, batch independence, a clock that steps back, and the errors."""

import re

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_amml.runtime.errors import PipelineError
from tests.detection.test_detectors import frame_of, scores


def test_a_lag_in_records_subtracts_the_value_that_many_records_before():
    # v = [1, 4, 9, 16, 25]: lag 1 → [nan, 3, 5, 7, 9]; lag 2 → [nan, nan, 8, 12, 16]
    out = scores("difference cols=['v'], lag=1", frame_of([1, 4, 9, 16, 25]), cuts=[2])
    assert out["v_diff"].tolist()[1:] == [3, 5, 7, 9] and np.isnan(out["v_diff"].iloc[0])
    two = scores("difference cols=['v'], lag=2, suffix='_d2'", frame_of([1, 4, 9, 16, 25]), cuts=[1, 3])
    assert two["v_d2"].tolist()[2:] == [8, 12, 16] and two["v_d2"].iloc[:2].isna().all()


def test_a_duration_reaches_the_latest_record_at_least_that_much_older():
    # hourly records, one missing (03:00): at 04:00 the record 2 h before is 02:00 (v=2) → 4 - 2 = 2;
    # at 05:00 it is 03:00, missing, so the latest at least 2 h older is 02:00 again → 5 - 2 = 3
    times = pd.to_datetime(["2024-01-01 00:00", "2024-01-01 01:00", "2024-01-01 02:00", "2024-01-01 04:00",
                            "2024-01-01 05:00"])
    frame = frame_of([0, 1, 2, 4, 5], timestamp=times.astype(str))  # text, as a CSV source gives them
    out = scores("difference cols=['v'], lag='2h'", frame, cuts=[3])
    assert out["v_diff"].tolist()[2:] == [2, 2, 3] and out["v_diff"].iloc[:2].isna().all()


def test_a_clock_that_steps_back_is_read_as_standing_still():
    # NAB's machine temperature has a timestamp one hour older than the record before it
    times = pd.to_datetime(["2024-01-01 00:00", "2024-01-01 01:00", "2024-01-01 00:30", "2024-01-01 02:00"])
    out = scores("difference cols=['v'], lag='1h'", frame_of([10, 11, 12, 13], timestamp=times))
    # the third record counts as 01:00: the latest record ≤ 00:00 is the first (10) → 2; the fourth (02:00)
    # reaches 01:00, whose latest record is the third (12) → 1
    assert out["v_diff"].tolist()[1:] == [1, 2, 1]


@settings(max_examples=60, deadline=None)
@given(
    xs=st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=60),
    gaps=st.lists(st.integers(0, 3), min_size=60, max_size=60),
    cuts=st.lists(st.integers(0, 60), max_size=6),
    lag=st.sampled_from(["1", "3", "'2min'", "'5min'"]),
)
def test_output_does_not_depend_on_the_batches(xs, gaps, cuts, lag):
    times = pd.Timestamp("2024-01-01") + pd.to_timedelta(np.cumsum(gaps[: len(xs)]), unit="min")
    frame = frame_of(xs, timestamp=times)
    whole = scores(f"difference cols=['v'], lag={lag}", frame)
    split = scores(f"difference cols=['v'], lag={lag}", frame, cuts=[c for c in cuts if c < len(xs)])
    pd.testing.assert_frame_equal(whole, split)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("difference cols=['w']", "no column(s) ['w']"),
        ("difference cols=['v'], lag='1h'", "a duration needs a time column"),
    ],
)
def test_bad_parameters_name_the_component_and_the_fix(text, words):
    with pytest.raises(PipelineError, match=words.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        scores(text, frame_of([1.0, 2.0, 3.0]))


def test_the_sigma_scale_keeps_growing_where_the_tail_saturates():
    # window [1, 2, 3, 4]: mean 2.5, std 1.1180; a 30 is z = 24.6 → sigma score min(24.6/20, 1) = 1;
    # a 10 is z = 6.708 → 6.708 / 20 = 0.3354, where erf(6.708/√2) is already 1 - 2e-11
    for value, expected in ((10, 7.5 / 1.1180340 / 20), (30, 1.0)):
        out = scores("gaussian_detector window=4, min_periods=4, scale='sigma'", frame_of([1, 2, 3, 4, value]))
        assert out["anomaly_score"].iloc[4] == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("difference lag='soon'", "expected a number of records or a duration such as"),
        ("difference lag=0", "expected 1 to 1,000,000 records, or a duration"),
        ("alarm window='1.5h'", "expected a number of records or a duration such as"),
        ("alarm suppress=-1", "expected 0 to 1,000,000 records, or a duration"),
    ],
)
def test_a_constant_lag_window_or_suppression_is_checked_when_the_file_compiles(text, words):
    from compiler import ProgramCache, compile_source
    from compiler.errors import AmmlError

    with pytest.raises(AmmlError, match=re.escape(words)) as info:
        compile_source(f"normalsource | {text} | print", "t.amml", cache=ProgramCache())
    assert "t.amml:1:" in str(info.value) and "hint: e.g." in str(info.value)


def test_a_duration_is_read_the_same_everywhere():
    from compiler.value_checks import duration_seconds

    assert [duration_seconds(t) for t in ("90s", "30min", "5m", "1h", "1D", "7d", "2w")] == [
        90, 1800, 300, 3600, 86_400, 604_800, 1_209_600]
    assert [duration_seconds(t) for t in ("1.5h", "soon", "1 day", "", 3)] == [None] * 5
