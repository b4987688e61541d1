"""`flatline_detector`: a stuck sensor's run length, by hand; batch independence, causality, bad parameters.

Score: min(run / (2·records), 1) for a run counted in records (a value unlike the one before has run 1, a
missing value run 0), min(elapsed / (2·D), 1) for a duration D; the default threshold 0.5 flags a run once it
is `records` long (or has lasted D).
"""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_amml.runtime.component import ComponentContext
from airflow_amml.runtime.errors import PipelineError
from airflow_amml.runtime.plan import load_component_class, make_plan
from compiler import ProgramCache, compile_source
from compiler.errors import AmmlError

from .test_detectors import frame_of, scores

NAN = float("nan")


def test_a_run_of_equal_values_grows_until_flagged_and_a_nan_breaks_it():
    # records=3: runs 1, 1, 2, 3, 4 | NaN 0 | 1, 2, 3 → scores run / 6; flagged from run 3 (score 0.5)
    out = scores("flatline_detector records=3", frame_of([1, 2, 2, 2, 2, NAN, 2, 2, 2]))
    runs = np.array([1, 1, 2, 3, 4, 0, 1, 2, 3])
    assert out["anomaly_score"].tolist() == pytest.approx((runs / 6).tolist())
    assert out["anomaly_flag"].tolist() == [False, False, False, True, True, False, False, False, True]


def test_the_score_is_capped_at_one_after_twice_records():
    # records=2: runs 1..6 → 1/4, 2/4, 3/4, 1, 1, 1
    out = scores("flatline_detector records=2", frame_of([7] * 6))
    assert out["anomaly_score"].tolist() == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]


def test_tolerance_allows_small_changes_between_consecutive_records():
    # tolerance=0.1: |1.05 - 1| = 0.05 and |1.0 - 1.05| = 0.05 stay in the run; |1.5 - 1.0| = 0.5 ends it
    values = [1.0, 1.05, 1.0, 1.5, 1.5]
    out = scores("flatline_detector records=3, tolerance=0.1", frame_of(values))
    assert out["anomaly_score"].tolist() == pytest.approx([1 / 6, 2 / 6, 3 / 6, 1 / 6, 2 / 6])
    exact = scores("flatline_detector records=3", frame_of(values))  # tolerance 0: every change ends a run
    assert exact["anomaly_score"].tolist() == pytest.approx([1 / 6, 1 / 6, 1 / 6, 1 / 6, 2 / 6])


def test_a_duration_is_measured_from_the_runs_first_record():
    # every 30 minutes, records='1h': elapsed 0, 30, 60 min → 0, 0.25, 0.5 (flagged); the change at 01:30
    # starts a new run (elapsed 0); 02:00 → 0.25, and after a 2-hour gap 04:00 → elapsed 2h30 → capped at 1
    stamps = pd.to_datetime(["00:00", "00:30", "01:00", "01:30", "02:00", "04:00"], format="%H:%M")
    frame = pd.DataFrame({"v": [1.0, 1, 1, 2, 2, 2], "timestamp": stamps})
    out = scores("flatline_detector records='1h'", frame, [2])
    assert out["anomaly_score"].tolist() == [0.0, 0.25, 0.5, 0.0, 0.25, 1.0]
    assert out["anomaly_flag"].tolist() == [False, False, True, False, False, True]


def test_columns_are_scored_separately_and_combined():
    # a stuck (run 1..4 → /8 with records=4) and b changing (run 1 → 1/8): max is a's, min is b's
    frame = pd.DataFrame({"a": [3.0] * 4, "b": [1.0, 2, 3, 4]})
    top = scores("flatline_detector records=4", frame)
    assert top["anomaly_score"].tolist() == [1 / 8, 2 / 8, 3 / 8, 4 / 8]
    low = scores("flatline_detector records=4, combine='min'", frame)
    assert low["anomaly_score"].tolist() == [1 / 8] * 4


# ---- streaming properties --------------------------------------------------------------------------------

# streams made of runs (a value repeated 1 to 12 times), so that runs cross the batch cuts
stuck_values = st.lists(
    st.tuples(
        st.one_of(st.sampled_from([0.0, 1.0, 1.05, 5.0]), st.just(NAN), st.floats(-10, 10, allow_nan=False)),
        st.integers(1, 12),
    ),
    min_size=1,
    max_size=20,
).map(lambda runs: [value for value, times in runs for _ in range(times)][:90])
TEXTS = ["flatline_detector records=3", "flatline_detector records=4, tolerance=0.1", "flatline_detector records='10h'"]


def series(xs):
    # irregular times (steps of 1 to 4 hours), as strings as a CSV source gives them
    steps = np.resize([1, 4, 2, 3], len(xs)).cumsum()
    stamps = pd.Timestamp("2024-01-01") + pd.to_timedelta(steps, unit="h")
    return pd.DataFrame({"v": np.asarray(xs, dtype=float), "timestamp": stamps.astype(str)})


def reference_runs(xs, tolerance):
    """The run length at each record, one record at a time (the definition)."""
    runs, last, run = [], NAN, 0
    for x in xs:
        run = 0 if not np.isfinite(x) else run + 1 if abs(x - last) <= tolerance else 1
        runs.append(run)
        last = x
    return np.array(runs)


@pytest.mark.parametrize("text", TEXTS)
@settings(max_examples=80, deadline=None)
@given(xs=stuck_values, cuts=st.lists(st.integers(0, 90), max_size=8))
def test_output_does_not_depend_on_the_batches(text, xs, cuts):
    frame = series(xs)
    whole = scores(text, frame)
    pd.testing.assert_frame_equal(whole, scores(text, frame, [c for c in cuts if c <= len(frame)]), check_exact=True)
    assert whole["anomaly_score"].between(0, 1).all()


@settings(max_examples=100, deadline=None)
@given(xs=stuck_values, cuts=st.lists(st.integers(0, 90), max_size=8))
def test_runs_match_the_record_by_record_definition(xs, cuts):
    out = scores("flatline_detector records=4, tolerance=0.1", frame_of(xs), [c for c in cuts if c <= len(xs)])
    expected = np.minimum(reference_runs(xs, 0.1) / 8, 1.0)
    assert out["anomaly_score"].to_numpy() == pytest.approx(expected)


@pytest.mark.parametrize("text", TEXTS)
@settings(max_examples=60, deadline=None)
@given(xs=stuck_values, k=st.integers(0, 89), future=stuck_values)
def test_changing_future_records_never_changes_past_scores(text, xs, k, future):
    frame = series(xs)
    k = min(k, len(frame) - 1)
    changed = frame.copy()
    tail = np.resize(np.asarray(future, dtype=float), len(frame) - k - 1)
    changed.loc[changed.index[k + 1 :], "v"] = tail
    before, after = scores(text, frame), scores(text, changed)
    pd.testing.assert_frame_equal(before.iloc[: k + 1], after.iloc[: k + 1], check_exact=True)


# ---- bad parameters --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("flatline_detector records=1", ["records", "2 to 1,000,000"]),
        ("flatline_detector records=2000000", ["records", "1,000,000"]),
        ("flatline_detector records='soon'", ["records", "duration"]),
        ("flatline_detector records=12, threshold=2", ["threshold", "0 to 1"]),
    ],
)
def test_constant_bad_parameters_fail_at_compile_time(text, words):
    with pytest.raises(AmmlError) as info:
        compile_source(f"normalsource | {text} | print", "bad.amml", cache=ProgramCache())
    assert all(w in str(info.value) for w in words), str(info.value)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("flatline_detector records=params.r", ["`flatline_detector records=1`", "2 to 1,000,000"]),
        ("flatline_detector records=params.d", ["`flatline_detector records='later'`", "duration"]),
        ("flatline_detector tolerance=params.t", ["`flatline_detector tolerance=-1`", "0 or more"]),
    ],
)
def test_bad_parameters_at_run_time_name_the_component(text, words):
    run_params = {"r": 1, "d": "later", "t": -1}
    source = "dag d { params = {r: 1, d: 'later', t: -1} }\nnormalsource | " + text + " | print"
    stage = make_plan(compile_source(source, "t.amml", cache=ProgramCache()).pipelines[0])[1]
    component = load_component_class(stage.spec)(stage.spec, stage.callback, ComponentContext(run_params=run_params))
    with pytest.raises(PipelineError) as info:
        component.open()
    assert all(w in info.value.message for w in words), info.value.message
    assert info.value.hint


def test_a_duration_without_a_time_column_is_named():
    from .test_detectors import detector

    with pytest.raises(PipelineError, match=r"`flatline_detector`: a duration needs a time column") as info:
        detector("flatline_detector records='1h'").process(frame_of([1.0, 1.0]))
    assert "time=" in info.value.hint
    with pytest.raises(PipelineError, match=r"`flatline_detector time='t'`: no such column"):
        detector("flatline_detector records='1h', time='t'").process(frame_of([1.0]))


# ---- through the real executor ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["single", "multiprocess"])
def test_a_stuck_run_is_found_through_the_executor_for_any_batch_size(tmp_path, monkeypatch, mode):
    from airflow_amml import cli

    # hourly noise with one stuck run of 30 hours at rows 200..229 (the value of row 199 repeated)
    value = 10 + np.random.default_rng(3).normal(0, 0.5, 400)
    value[200:230] = value[199]
    stamps = pd.date_range("2024-01-01", periods=400, freq="1h").astype(str)
    data = tmp_path / "stuck.csv"
    pd.DataFrame({"timestamp": stamps, "value": value}).to_csv(data, index=False)
    (tmp_path / "catalog.yaml").write_text(f"stuck:\n  path: {data}\n  time_column: timestamp\n")
    monkeypatch.setenv("AMML_CATALOG", str(tmp_path / "catalog.yaml"))
    outputs = []
    for batch_rows in (65536, 7):
        out = tmp_path / f"out_{batch_rows}.csv"
        file = tmp_path / f"flat_{batch_rows}.amml"
        file.write_text(
            f"source id='stuck' | flatline_detector cols=['value'], records='12h' | csv_sink path='{out}'\n"
        )
        assert cli.main(["run", str(file), "--mode", mode, "--batch-rows", str(batch_rows)]) == 0
        outputs.append(pd.read_csv(out))
    pd.testing.assert_frame_equal(outputs[0], outputs[1], check_exact=True)
    flagged = np.flatnonzero(outputs[0]["anomaly_flag"].to_numpy())
    # the run starts at row 199 (its first value): 12 hours later is row 211, and it lasts to row 229
    assert flagged.tolist() == list(range(211, 230))
