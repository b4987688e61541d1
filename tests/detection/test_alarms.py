"""The `alarm` policy (Merlion's AggregateAlarms): hand-checked cases, the same alarms for any batch split,
agreement with a per-record reference written from the definition, and errors that say what to fix."""

import itertools

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_amml.components.alarms import Alarm
from airflow_amml.sdk import ComponentContext, PipelineError
from compiler.builtin_components import BUILTIN_COMPONENTS

SPEC = next(s for s in BUILTIN_COMPONENTS if s.name == "alarm")
T0 = pd.Timestamp("2024-01-01")


def policy(**params):
    component = Alarm(SPEC, None, ComponentContext())
    component.params.update(params)
    component.open()
    return component


def batches_of(frame, cuts):
    """``frame`` split at the positions ``cuts`` (the index is each record's stream position)."""
    bounds = [0, *sorted(set(cuts)), len(frame)]
    return [frame.iloc[a:b] for a, b in itertools.pairwise(bounds)]


def alarms(frame, cuts=(), **params):
    component = policy(**params)
    out = [component.process(part) for part in batches_of(frame, cuts)]
    marked = pd.concat(out) if out else frame.assign(alarm=False)
    return list(np.flatnonzero(marked[params.get("output", "alarm")].to_numpy()))


def flagged(bits, minutes=None):
    frame = pd.DataFrame({"anomaly_flag": [bool(int(b)) for b in bits]})
    if minutes is not None:
        frame["timestamp"] = T0 + pd.to_timedelta(minutes, unit="min")
    return frame


def reference(flags, min_count, window, suppress, times=None):
    """The definition, record by record: an alarm on flagged record i when the window ending at i holds at
    least `min_count` flagged records and the last alarm is more than `suppress` before i. An int window or
    suppression counts records; a Timedelta compares `times` (both window ends included)."""
    raised = []
    for i, flag in enumerate(flags):
        if not flag:
            continue
        if isinstance(window, int):
            in_window = sum(flags[max(0, i - window + 1) : i + 1])
        else:
            in_window = sum(1 for j in range(i + 1) if flags[j] and times[i] - times[j] <= window)
        if in_window < min_count:
            continue
        if raised:
            gap = i - raised[-1] if isinstance(suppress, int) else times[i] - times[raised[-1]]
            if gap <= suppress:
                continue
        raised.append(i)
    return raised


# ---- hand-checked cases ------------------------------------------------------------------------------------

# position: 0 1 2 3 4 5 6 7 8 9 10 11
THREE_IN_FIVE = "101011000111"


def test_three_flagged_in_a_window_of_five_without_suppression():
    # flagged: 0, 2, 4, 5, 9, 10, 11. The window of 5 ending at each flagged record holds:
    # 0: {0} → 1; 2: {0,2} → 2; 4: [0..4] {0,2,4} → 3 ALARM; 5: [1..5] {2,4,5} → 3 ALARM;
    # 9: [5..9] {5,9} → 2; 10: [6..10] {9,10} → 2; 11: [7..11] {9,10,11} → 3 ALARM
    assert alarms(flagged(THREE_IN_FIVE), min_count=3, window=5, suppress=0) == [4, 5, 11]


@pytest.mark.parametrize(
    ("suppress", "expected"),
    [
        (1, [4, 11]),  # 5 is 1 record after the alarm at 4: silenced; 11 is 7 after: raised
        (6, [4, 11]),  # 11 - 4 = 7 > 6: raised
        (7, [4]),  # 11 - 4 = 7 ≤ 7: silenced too
    ],
)
def test_suppression_silences_the_next_records(suppress, expected):
    assert alarms(flagged(THREE_IN_FIVE), min_count=3, window=5, suppress=suppress) == expected


def test_a_run_of_flags_is_one_alarm():
    # 100 flagged records in a row: min_count=2 is met at the 2nd (position 1), and suppress=1000 silences
    # the other 98: one incident, one alarm
    assert alarms(flagged("1" * 100), min_count=2, window=10, suppress=1000) == [1]


def test_windows_and_suppression_in_time():
    # every record flagged, at minutes 0, 15, 30, 31, 95, 100, 104; 3 in 30 min, then 60 min of silence:
    # 30: [0, 30] holds 0, 15, 30 (0 is exactly 30 min before: inside) → ALARM at index 2
    # 31: [1, 31] holds 15, 30, 31 → 3, but 1 min after the alarm: silenced
    # 95: [65, 95] holds 95 → 1; 100: 95, 100 → 2;
    # 104: [74, 104] holds 95, 100, 104 → 3, and 104 - 30 = 74 min > 60 → ALARM at index 6
    frame = flagged("1111111", minutes=[0, 15, 30, 31, 95, 100, 104])
    params = {"min_count": 3, "window": "30min", "suppress": "1h", "time": "timestamp"}
    assert alarms(frame, **params) == [2, 6]
    assert alarms(frame, **{**params, "suppress": "74min"}) == [2]  # 74 ≤ 74: silenced
    # a 29-minute window: at 30, [1, 30] loses 0 → 2; at 31, [2, 31] holds 15, 30, 31 → ALARM at index 3;
    # at 104, 95, 100, 104 again, 73 min after 31 → ALARM at index 6
    assert alarms(frame, **{**params, "window": "29min"}) == [3, 6]


def test_a_score_above_a_threshold_flags_the_record():
    # scores 0.1 0.95 0.97 NaN 0.99 0.5 0.96, threshold 0.95 → flags at 1, 2, 4, 6 (NaN: no score, no flag)
    # 2 in a window of 2: at 2 ({1, 2}) ALARM; at 4 ([3, 4] holds 4 only) no; at 6 ([5, 6] holds 6) no
    frame = pd.DataFrame({"anomaly_score": [0.1, 0.95, 0.97, np.nan, 0.99, 0.5, 0.96]})
    assert alarms(frame, min_count=2, window=2, suppress=0, threshold=0.95) == [2]
    renamed = frame.rename(columns={"anomaly_score": "s"})
    assert alarms(renamed, min_count=1, window=1, suppress=0, threshold=0.95, score="s") == [1, 2, 4, 6]


def test_the_output_column_is_added_and_can_be_renamed():
    frame = flagged("0110")
    out = policy(min_count=2, window=2, suppress=0, output="incident").process(frame)
    assert list(out.columns) == ["anomaly_flag", "incident"] and out["incident"].tolist() == [False, False, True, False]
    assert "incident" not in frame.columns, "the input batch is left as it was"


def test_null_flags_flag_nothing():
    frame = pd.DataFrame({"anomaly_flag": [True, None, True, True]}, dtype=object)
    assert alarms(frame, min_count=2, window=2, suppress=0) == [3]  # 1 is null: at 2, [1, 2] holds one


# ---- any batch split, and the definition --------------------------------------------------------------------


@st.composite
def streams(draw, in_time):
    flags = draw(st.lists(st.booleans(), max_size=120))
    min_count = draw(st.integers(1, 5))
    cuts = draw(st.lists(st.integers(0, len(flags)), max_size=8))
    if in_time:
        steps = draw(st.lists(st.integers(0, 10), min_size=len(flags), max_size=len(flags)))
        minutes = list(np.cumsum(steps)) if flags else []
        window = pd.Timedelta(minutes=draw(st.integers(0, 40)) + 1)
        suppress = pd.Timedelta(minutes=draw(st.integers(0, 60)))
        return flags, minutes, min_count, window, suppress, cuts
    window = draw(st.integers(min_count, 20))
    suppress = draw(st.integers(0, 30))
    return flags, None, min_count, window, suppress, cuts


def _params(min_count, window, suppress, in_time):
    if not in_time:
        return {"min_count": min_count, "window": window, "suppress": suppress}
    return {
        "min_count": min_count,
        "window": f"{window.seconds}s",
        "suppress": f"{suppress.seconds}s",
        "time": "timestamp",
    }


@settings(max_examples=300, deadline=None)
@given(streams(in_time=False))
def test_records_any_split_gives_the_definitions_alarms(case):
    flags, _, min_count, window, suppress, cuts = case
    frame = flagged("".join("1" if f else "0" for f in flags))
    expected = reference(flags, min_count, window, suppress)
    params = _params(min_count, window, suppress, False)
    assert alarms(frame, **params) == expected
    assert alarms(frame, cuts, **params) == expected


@settings(max_examples=300, deadline=None)
@given(streams(in_time=True))
def test_time_any_split_gives_the_definitions_alarms(case):
    flags, minutes, min_count, window, suppress, cuts = case
    frame = flagged("".join("1" if f else "0" for f in flags), minutes=minutes)
    times = list(frame["timestamp"]) if flags else []
    expected = reference(flags, min_count, window, suppress, times)
    params = _params(min_count, window, suppress, True)
    assert alarms(frame, **params) == expected
    assert alarms(frame, cuts, **params) == expected


def test_mixed_units_window_in_records_suppression_in_time():
    # every minute a flagged record; 2 in 2 records; 3 minutes of silence after each alarm:
    # 1 ALARM (t=1); 2..4 silenced (≤ 3 min after); 5 ALARM (t=5, 4 min after); 9 ALARM
    frame = flagged("1" * 10, minutes=list(range(10)))
    got = alarms(frame, [3, 7], min_count=2, window=2, suppress="3min", time="timestamp")
    assert got == [1, 5, 9] == reference([True] * 10, 2, 2, pd.Timedelta(minutes=3), list(frame["timestamp"]))


# ---- errors that say what to fix -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"min_count": 0}, r"`alarm min_count=0`: expected a number of flagged records ≥ 1"),
        ({"min_count": 6, "window": 5}, r"6 flagged records never fit in a window of 5"),
        ({"window": "1h"}, r"a window or suppression given as a duration needs the records' time"),
        ({"window": "soon", "time": "t"}, r"`alarm window='soon'`: expected a duration"),
        ({"window": "0s", "time": "t"}, r"`alarm window='0s'`: expected a duration"),
        ({"suppress": -1}, r"`alarm suppress=-1`: expected a number of records ≥ 0"),
        ({"window": 2.5}, r"`alarm window=2.5`: expected a number of records ≥ 1"),
        ({"score": "s"}, r"`alarm score='s'`: a score flags a record only above a threshold"),
    ],
)
def test_bad_parameters_are_refused_before_any_record(params, message):
    with pytest.raises(PipelineError, match=message) as info:
        policy(**params)
    assert info.value.hint


def test_missing_or_wrong_columns_are_named():
    with pytest.raises(PipelineError, match=r"no flag column `anomaly_flag`; the records have \['v'\]"):
        policy().process(pd.DataFrame({"v": [1.0]}))
    with pytest.raises(PipelineError, match=r"the flag column `anomaly_flag` holds float64 values, not true/false"):
        policy().process(pd.DataFrame({"anomaly_flag": [0.5]}))
    with pytest.raises(PipelineError, match=r"no score column `anomaly_score`"):
        policy(threshold=0.5).process(pd.DataFrame({"v": [1.0]}))


def test_time_must_not_go_back():
    frame = flagged("111", minutes=[0, 5, 4])
    frame.index = pd.RangeIndex(100, 103)
    with pytest.raises(PipelineError, match=r"the record at position 102 is older than the one before it"):
        policy(window="10min", time="timestamp").process(frame)
    component = policy(window="10min", time="timestamp")
    component.process(flagged("1", minutes=[10]))
    with pytest.raises(PipelineError, match=r"position 0 is older"):  # across batches too
        component.process(flagged("1", minutes=[9]))
