"""Prediction intervals: `train_lstm holdout=N` stores split-conformal half-widths per coverage and step, the
registry keeps them, `lstm level=[80, 95]` serves `<output>_lo_80`/`<output>_hi_80` columns in the target's
units. Real Keras, registry (SQLite) and executor on a few hundred hours of ETTh1."""

import os

import numpy as np
import pandas as pd
import pytest

from airflow_amml.components.evaluation import HoldoutErrors, conformal_intervals
from airflow_amml.registry import ModelRegistry
from airflow_amml.registry.errors import InvalidValueError
from airflow_amml.registry.metadata import intervals_json
from airflow_amml.run_config import RunConfig
from airflow_amml.runtime.errors import PipelineError
from airflow_amml.runtime.executor import run_pipeline
from compiler import ProgramCache, compile_source

H4 = """
name: h4
version: "0.1"
model:
  layers:
    - {type: Dense, units: 4}
training:
  loss: mse
  epochs: 1
  batch_size: 64
  window: 8
  horizon: 4
  target: OT
  features: [OT]
  inputs: relative
  predict: delta
  seed: 1
"""


def test_the_half_widths_are_the_conformal_ranks_computed_by_hand():
    # 4 forecasts, one step: |errors| 0.1, 0.4, 0.2, 0.3 → sorted 0.1, 0.2, 0.3, 0.4
    #   50 %: the ceil(5 × 0.5) = 3rd smallest, 0.3; 80 %: the ceil(5 × 0.8) = 4th, 0.4;
    #   90 % needs the ceil(4.5) = 5th of 4: not stored, nor 95 % and 99 %
    errors = HoldoutErrors(4, np.zeros(1), np.zeros(1), abs_errors=np.array([[0.1], [0.4], [0.2], [0.3]]))
    intervals = conformal_intervals(errors)
    assert intervals["forecasts"] == 4
    assert intervals["levels"] == {"50": pytest.approx([0.3]), "80": pytest.approx([0.4])}
    # per step: each column is ranked on its own
    two = HoldoutErrors(4, np.zeros(2), np.zeros(2), abs_errors=np.array([[0.1, 4], [0.4, 1], [0.2, 3], [0.3, 2]]))
    assert conformal_intervals(two)["levels"]["50"] == pytest.approx([0.3, 3.0])
    assert conformal_intervals(HoldoutErrors(1, np.zeros(1), np.zeros(1))) == {}, "no errors, no intervals"


@pytest.mark.parametrize(
    ("intervals", "words"),
    [
        ({"levels": {}}, "1 to 10 coverages"),
        ({"levels": {"120": [0.1]}}, "not a coverage"),
        ({"levels": {"eighty": [0.1]}}, "not a coverage"),
        ({"levels": {"80": []}}, "list of half-widths"),
        ({"levels": {"80": [-0.1]}}, "no half-width"),
        ({"levels": {"80": [float("nan")]}}, "no half-width"),
        ({"levels": {"80": ["0.1"]}}, "no half-width"),
    ],
)
def test_the_registry_refuses_intervals_it_could_not_serve(intervals, words):
    with pytest.raises(InvalidValueError, match=words):
        intervals_json(intervals)


def run(text, config, **kwargs):
    program = compile_source(text, "intervals.amml", cache=ProgramCache())
    return run_pipeline(program.pipelines[0], config=config, mode="single", **kwargs)


@pytest.fixture
def trained(tmp_path):
    """h4 trained on 600 hours, its last 200 held out: versions h4/1 (with intervals) and h4/2 (none)."""
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "h4.yaml").write_text(H4)
    config = RunConfig.from_environment(model_paths=[folder], runs_dir=tmp_path / "runs", output_root=tmp_path)
    run("source id='ett', limit=600 | minmax_scaler | train_lstm model='h4:0.1', holdout=200 | print", config)
    run("source id='ett', limit=600 | minmax_scaler | train_lstm model='h4:0.1' | print", config)
    return config, ModelRegistry.from_config(config)


def test_a_horizon_model_serves_intervals_that_cover_its_hold_out(trained, tmp_path):
    config, registry = trained
    entry = registry.resolve("h4/1")
    intervals = entry.intervals
    assert intervals["forecasts"] == 200 - 4 + 1, "every hold-out record a label: 197 forecasts of 4 steps"
    assert list(intervals["levels"]) == ["50", "80", "90", "95", "99"]
    widths = {level: np.asarray(w) for level, w in intervals["levels"].items()}
    assert all(len(w) == 4 for w in widths.values())
    assert np.all(widths["50"] <= widths["80"]) and np.all(widths["80"] <= widths["95"])
    assert registry.resolve("h4/2").intervals == {}, "no hold-out, no intervals"

    out = tmp_path / "long.csv"
    run(
        "source id='ett', limit=600 | minmax_scaler model='h4/1' "
        "| lstm model='h4/1', layout='long', level=[80, 95] "
        f"| minmax_inverse model='h4/1' | csv_sink path='{out}'",
        config,
    )
    rows = pd.read_csv(out)
    assert {"prediction_lo_80", "prediction_hi_80", "prediction_lo_95", "prediction_hi_95"} <= set(rows.columns)
    # in °C: the half-width scaled back by the span of the training statistics, step by step
    low, high = entry.scaler["columns"]["OT"]
    half = (rows["prediction_hi_80"] - rows["prediction"]).to_numpy()
    np.testing.assert_allclose(half, widths["80"][rows["step"] - 1] * (high - low), rtol=1e-4)
    below, above = rows["prediction"] - rows["prediction_lo_95"], rows["prediction_hi_95"] - rows["prediction"]
    np.testing.assert_allclose(below, above, rtol=1e-5)

    # the forecasts whose labels are the hold-out's (origins 399 … 595): each step covered at least 80 %
    ett = pd.read_csv(os.environ["AMML_ETT_PATH"]).iloc[:600]
    origin = pd.to_datetime(rows["origin"])
    held = rows[(origin >= pd.Timestamp(ett["date"][399])) & (origin <= pd.Timestamp(ett["date"][595]))]
    held = held.merge(ett[["date", "OT"]], on="date")
    assert len(held) == 197 * 4
    inside = (held["OT"] >= held["prediction_lo_80"] - 1e-4) & (held["OT"] <= held["prediction_hi_80"] + 1e-4)
    coverage = inside.groupby(held["step"]).mean()
    assert (coverage >= 158 / 197).all(), coverage  # the ceil(198 x 0.8) = 159th error: at least 158 inside


def test_a_one_step_wide_forecast_and_the_refusals(trained, tmp_path):
    config, _ = trained
    out = tmp_path / "wide.csv"
    run(
        "source id='ett', limit=100 | minmax_scaler model='h4/1' | lstm model='h4/1', level=[90] "
        f"| minmax_inverse model='h4/1' | csv_sink path='{out}'",
        config,
    )
    wide = pd.read_csv(out)
    for step in range(1, 5):  # a horizon model's wide row: each step with its interval
        assert (wide[f"prediction_{step}_lo_90"] < wide[f"prediction_{step}"]).all()
        assert (wide[f"prediction_{step}"] < wide[f"prediction_{step}_hi_90"]).all()

    with pytest.raises(PipelineError, match=r"h4/1 has intervals for 50, 80, 90, 95, 99 % only") as wrong:
        run("source id='ett', limit=100 | minmax_scaler model='h4/1' | lstm model='h4/1', level=[70] | print", config)
    assert "level=[50]" in (wrong.value.hint or "")
    with pytest.raises(PipelineError, match=r"h4/2 has no prediction intervals") as none:
        run("source id='ett', limit=100 | minmax_scaler model='h4/2' | lstm model='h4/2', level=[80] | print", config)
    assert "holdout=" in (none.value.hint or "")


@pytest.mark.parametrize(
    ("level", "words"),
    [
        ("[0]", "0 is not a coverage"),
        ("[80, 100]", "100 is not a coverage"),
        ("[80, true]", "must be list\\[float\\]"),
        ("[]", "a list of 1 to 10 coverages"),
        (str(list(range(1, 12))), "a list of 1 to 10 coverages"),
    ],
)
def test_lint_refuses_levels_that_are_not_coverages(level, words):
    from compiler.errors import AmmlError

    with pytest.raises(AmmlError, match=words):
        compile_source(f"source id='ett' | lstm model='h4', level={level} | print", "bad.amml", cache=ProgramCache())


def test_levels_from_a_run_parameter_are_checked_and_compared_as_numbers(trained, tmp_path, monkeypatch):
    config, _ = trained
    text = "source id='ett', limit=40 | minmax_scaler model='h4/1' | lstm model='h4/1', level=params.levels | print"
    with pytest.raises(PipelineError, match="'x' is not a coverage"):
        run(text, config, run_params={"levels": ["x"]})
    with pytest.raises(PipelineError, match="a list of 1 to 10 coverages"):
        run(text, config, run_params={"levels": 80})
    out = tmp_path / "float.csv"
    run(text.replace("| print", f"| csv_sink path='{out}'"), config, run_params={"levels": [80.0]})
    assert "prediction_1_lo_80" in pd.read_csv(out).columns, "80.0 is the stored 80"
    # the bounds of one batch are capped before the model runs
    import airflow_amml.components.lstm as lstm

    monkeypatch.setattr(lstm, "MAX_INTERVAL_VALUES", 100)
    with pytest.raises(PipelineError, match="interval bounds from one batch") as capped:
        run(text, config, run_params={"levels": [80]})
    assert "origins='last'" in (capped.value.hint or "")
