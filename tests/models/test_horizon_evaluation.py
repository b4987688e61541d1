"""A horizon model (``horizon: H``) judged on every step: `train_lstm`'s hold-out metrics, the promotion gate,
the fan plot; real Keras on small data (hand-set weights where the expected numbers are computed by hand)."""

import numpy as np
import pandas as pd
import pytest

from airflow_amml.registry import ModelRegistry
from airflow_amml.run_config import RunConfig
from airflow_amml.runtime.executor import run_pipeline
from compiler import ProgramCache, compile_source

# repeat-last as a Keras model: `predict: delta` with every weight 0 forecasts a change of 0 at every step
REPEAT_LAST = """
name: last
version: "0.1"
model:
  layers:
    - {type: Dense, units: 2}
training:
  loss: mse
  window: 2
  horizon: 2
  target: OT
  features: [OT]
  predict: delta
"""

HORIZON_MODEL = """
name: h6
version: "0.1"
model:
  layers:
    - {type: Dense, units: 6}
training:
  loss: mse
  epochs: 2
  batch_size: 64
  window: 24
  horizon: 6
  target: OT
  features: [OT]
  inputs: relative
  predict: delta
  seed: 3
"""


def hand_set_model(yaml_text, bias=None):
    """The definition's Keras model with every weight 0, the output bias `bias` (changes, scaled units)."""
    from airflow_amml.models import keras_builder
    from airflow_amml.models.spec import parse_model_spec

    spec = parse_model_spec(yaml_text, "test")
    model = keras_builder.build_model(spec)
    weights = [np.zeros_like(w) for w in model.get_weights()]
    if bias is not None:
        weights[-1] = np.asarray(bias, dtype=weights[-1].dtype)
    model.set_weights(weights)
    return spec, model


def test_per_step_errors_of_repeat_last_computed_by_hand():
    from airflow_amml.components.evaluation import holdout_errors, holdout_metrics

    spec, model = hand_set_model(REPEAT_LAST)
    holdout = pd.DataFrame({"OT": [0.0, 0.5, 1.0, 0.25, 0.75]})  # min-max scaled with [10, 30]
    minmax = {"kind": "minmax", "columns": {"OT": [10.0, 30.0]}}
    # window 2, horizon 2: 5 - 2 - 2 + 1 = 2 forecasts, made at records 1 and 2, each repeating that record:
    #   at 1: 0.5 for records 2, 3 (1.0, 0.25): errors -0.5, +0.25
    #   at 2: 1.0 for records 3, 4 (0.25, 0.75): errors +0.75, +0.25
    # step 1: MAE (0.5 + 0.75) / 2 = 0.625, MSE (0.25 + 0.5625) / 2 = 0.40625; step 2: MAE 0.25, MSE 0.0625
    # original units (x 20, squares x 400): step 1 MAE 12.5, MSE 162.5; step 2 MAE 5, MSE 25
    errors = holdout_errors(model, spec, holdout, minmax, minmax)
    assert errors.windows == 2
    assert errors.mae_scaled.tolist() == pytest.approx([0.625, 0.25])
    assert errors.mse_scaled.tolist() == pytest.approx([0.40625, 0.0625])
    assert errors.mae.tolist() == pytest.approx([12.5, 5.0]) and errors.mse.tolist() == pytest.approx([162.5, 25.0])
    assert holdout_metrics(errors) == pytest.approx(
        {
            "holdout_mae": 8.75,  # (12.5 + 5) / 2: the mean over the steps (and the windows)
            "holdout_mse": 93.75,
            "holdout_mae_scaled": 0.4375,
            "holdout_mse_scaled": 0.234375,
            "holdout_mae_h1": 12.5,
            "holdout_mse_h1": 162.5,
            "holdout_mae_scaled_h1": 0.625,
            "holdout_mse_scaled_h1": 0.40625,
            "holdout_mae_h2": 5.0,
            "holdout_mse_h2": 25.0,
            "holdout_mae_scaled_h2": 0.25,
            "holdout_mse_scaled_h2": 0.0625,
            "holdout_mae_vs_last": 1.0,  # it is repeat-last
            "holdout_mse_vs_last": 1.0,
        }
    )

    # a model trained on z-scored data [mean 20, std 5] sees the stream's records in its own units:
    # 10 + 20 v = 10, 20, 30, 15, 25 → -2, 0, 2, -1, 1; scaled errors at 1: -2, +1; at 2: +3, +1
    # → scaled MAE 2.5, 1 (MSE 6.5, 1); back in °C (x 5) the same errors as above: repeat-last's do not
    # depend on the scaling
    zscore = {"kind": "zscore", "columns": {"OT": [20.0, 5.0]}}
    errors = holdout_errors(model, spec, holdout, minmax, zscore)
    assert errors.mae_scaled.tolist() == pytest.approx([2.5, 1.0])
    assert errors.mse_scaled.tolist() == pytest.approx([6.5, 1.0])
    assert errors.mae.tolist() == pytest.approx([12.5, 5.0]) and errors.mse.tolist() == pytest.approx([162.5, 25.0])

    # without statistics for the target: the stream's units only, no scaled metrics
    plain = holdout_metrics(holdout_errors(model, spec, holdout, None, None))
    assert set(plain) == {
        "holdout_mae",
        "holdout_mse",
        "holdout_mae_vs_last",
        "holdout_mse_vs_last",
        "holdout_mae_h1",
        "holdout_mse_h1",
        "holdout_mae_h2",
        "holdout_mse_h2",
    }
    assert plain["holdout_mae_h1"] == pytest.approx(0.625)

    # a model that forecasts a change of +0.25 at both steps, against repeat-last on the same two forecasts:
    #   at 1: 0.75 for 1.0, 0.25 (errors -0.25, +0.5); at 2: 1.25 for 0.25, 0.75 (errors +1.0, +0.5)
    #   MAE 0.625, 0.5 (mean 0.5625) vs repeat-last's 0.625, 0.25 (mean 0.4375): 9/7
    #   MSE 0.53125, 0.25 (mean 0.390625) vs 0.40625, 0.0625 (mean 0.234375): 5/3
    spec, rising = hand_set_model(REPEAT_LAST, bias=[0.25, 0.25])
    worse = holdout_metrics(holdout_errors(rising, spec, holdout, minmax, minmax))
    assert worse["holdout_mae_scaled"] == pytest.approx(0.5625)
    assert worse["holdout_mae_vs_last"] == pytest.approx(9 / 7) and worse["holdout_mse_vs_last"] == pytest.approx(5 / 3)


def test_the_reported_steps_are_bounded_for_long_horizons():
    from airflow_amml.components.evaluation import reported_steps
    from airflow_amml.registry.metadata import MAX_METRICS

    assert reported_steps(1) == [1]
    assert reported_steps(2) == [1, 2]
    assert reported_steps(24) == [1, 2, 4, 8, 16, 24]
    assert reported_steps(720) == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 720]
    # 4 series (MAE, MSE, each in both units) per step and their means, with room for the other metrics
    assert 4 * (len(reported_steps(1024)) + 1) <= MAX_METRICS // 2


def numpy_step_errors(model, spec, scaled_ot, low, high):
    """Per-step MAE/MSE of the model in °C from numpy alone: every window of the records whose next 6 values
    are among them, forecast as `keras_builder.predict` does (Keras' own `model.predict` on windows built here)."""
    window, horizon = spec.training.window, spec.training.horizon
    m = len(scaled_ot) - window - horizon + 1
    windows = np.lib.stride_tricks.sliding_window_view(scaled_ot, window)[:m]
    inputs = (windows - windows[:, -1:])[:, :, None].astype(np.float32)  # inputs: relative
    forecast = np.asarray(model.predict(inputs, verbose=0), dtype=np.float64) + windows[:, -1:]  # predict: delta
    actual = np.lib.stride_tricks.sliding_window_view(scaled_ot[window:], horizon)[:m]
    error = (forecast - actual) * (high - low)
    return np.abs(error).mean(axis=0), np.square(error).mean(axis=0), m


def run(text, config):
    program = compile_source(text, "horizon.amml", cache=ProgramCache())
    return run_pipeline(program.pipelines[0], config=config, mode="single")


@pytest.fixture
def horizon_config(tmp_path):
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "h6.yaml").write_text(HORIZON_MODEL)
    return RunConfig.from_environment(model_paths=[folder], runs_dir=tmp_path / "runs")


def test_train_lstm_stores_per_step_holdout_metrics_equal_to_numpys(horizon_config):
    import os
    import tempfile
    from pathlib import Path

    from airflow_amml.models import keras_builder
    from airflow_amml.models.spec import parse_model_spec

    run(
        "source id='ett', limit=600 | minmax_scaler fit_rows=500 | train_lstm model='h6:0.1', holdout=100 | print",
        horizon_config,
    )
    registry = ModelRegistry.from_config()
    entry = registry.resolve("h6/1")
    low, high = entry.scaler["columns"]["OT"]
    ett = pd.read_csv(os.environ["AMML_ETT_PATH"])
    assert [low, high] == [ett["OT"][:500].min(), ett["OT"][:500].max()]
    # every hold-out record is a label: the first forecasts read the last 24 training records
    scaled_ot = ((ett["OT"][500 - 24 : 600] - low) / (high - low)).to_numpy(dtype=np.float64)

    spec = parse_model_spec(registry.get_definition("h6:0.1"), "h6:0.1")
    with tempfile.TemporaryDirectory() as tmp:
        _, path = registry.download("h6/1", Path(tmp))
        model = keras_builder.load_model(path, spec)
    mae, mse, windows = numpy_step_errors(model, spec, scaled_ot, low, high)
    assert windows == 100 - 6 + 1
    metrics = entry.metrics
    assert metrics["holdout_records"] == 100
    for step in (1, 2, 4, 6):  # steps 1, 2, 4 … and the last
        assert metrics[f"holdout_mae_h{step}"] == pytest.approx(mae[step - 1], rel=1e-5)
        assert metrics[f"holdout_mse_h{step}"] == pytest.approx(mse[step - 1], rel=1e-5)
        assert metrics[f"holdout_mae_scaled_h{step}"] == pytest.approx(mae[step - 1] / (high - low), rel=1e-5)
    assert "holdout_mae_h3" not in metrics and "holdout_mae_h5" not in metrics
    assert metrics["holdout_mae"] == pytest.approx(mae.mean(), rel=1e-5), "the mean over every window and step"
    assert metrics["holdout_mse"] == pytest.approx(mse.mean(), rel=1e-5)
    assert metrics["holdout_mse_scaled"] == pytest.approx(mse.mean() / (high - low) ** 2, rel=1e-5)


def test_the_gate_compares_the_mean_over_steps_not_step_one(horizon_config, tmp_path, caplog):
    """The champion forecasts the first hour as repeat-last (hard to beat one hour ahead) and is far off at
    every later step; a new version trained for two epochs is worse at step 1 and better on the mean: it wins.
    The champion reads 48 records per forecast, the new version 24: both are scored on the same 95 forecasts
    (every hold-out record a label, the first forecasts reading the end of the training records)."""
    import os

    from airflow_amml.components.evaluation import holdout_errors
    from airflow_amml.models import keras_builder

    registry = ModelRegistry.from_config()
    longer = HORIZON_MODEL.replace('version: "0.1"', 'version: "0.0"').replace("window: 24", "window: 48")
    registry.register_definition("h6", "0.0", longer)
    spec, champion = hand_set_model(longer, bias=[0.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    ett = pd.read_csv(os.environ["AMML_ETT_PATH"])
    scaler = {
        "kind": "minmax",
        "columns": {c: [float(ett[c][:500].min()), float(ett[c][:500].max())] for c in ett.columns if c != "date"},
    }
    model_file = keras_builder.save_model(champion, tmp_path / "champion.keras")
    registry.register_version("h6", "h6:0.0", model_file, scaler=scaler)
    registry.set_alias("h6", "champion", 1, set_by="test", reason="the hand-set champion")

    run(
        "source id='ett', limit=600 | minmax_scaler fit_rows=500 "
        "| train_lstm model='h6:0.1', holdout=100, promote='champion' | print",
        horizon_config,
    )
    new = registry.resolve("h6/2")
    # the hold-out in °C after the 48 records its first forecast reads, scaled by the champion's statistics
    theirs = holdout_errors(champion, spec, ett.iloc[500 - 48 : 600].drop(columns="date"), None, scaler)
    assert theirs.windows == 95 and new.metrics["holdout_records"] == 100
    # what makes this case: the champion wins at step 1 and loses on the mean
    assert new.metrics["holdout_mae_h1"] > theirs.mae[0]
    assert new.metrics["holdout_mae"] < theirs.mae.mean()
    assert new.metrics["champion_holdout_mae"] == pytest.approx(theirs.mae.mean(), rel=1e-5)
    assert registry.resolve("h6@champion").version == 2
    moved = registry.alias_history("h6", "champion")[0]  # newest first
    assert moved.reason.startswith("promote=champion: hold-out MAE (mean over 6 steps)"), moved.reason

    # a hold-out shorter than the horizon is refused before anything is trained or registered
    from airflow_amml.runtime.errors import PipelineError

    with pytest.raises(PipelineError, match=r"holdout=5.*at least 6 records") as refused:
        run("source id='ett', limit=600 | minmax_scaler | train_lstm model='h6:0.1', holdout=5 | print", horizon_config)
    assert "holdout=12" in (refused.value.hint or "")
    # a new definition forecasting 2 ahead, gated against the 6-step champion: both are scored on forecasts
    # with all 6 labels, so a hold-out of 4 is refused before training (it could not compare afterwards)
    shorter = HORIZON_MODEL.replace('version: "0.1"', 'version: "0.2"').replace("units: 6", "units: 2")
    (tmp_path / "models" / "h6-0.2.yaml").write_text(shorter.replace("horizon: 6", "horizon: 2"))
    with pytest.raises(PipelineError, match=r"@champion \(h6/2\) forecasts 6 records ahead") as refused:
        run(
            "source id='ett', limit=600 | minmax_scaler | train_lstm model='h6:0.2', holdout=4, promote='champion' "
            "| print",
            horizon_config,
        )
    assert "holdout=12" in (refused.value.hint or "")
    assert [v.ref for v in registry.list_versions("h6")] == ["h6/1", "h6/2"]

    # a holder that reads 300 records per forecast, gated on 200 records: no forecast has its history, so
    # nothing can be compared and the alias stays where it is (it is not promoted for want of a rival)
    wide = HORIZON_MODEL.replace('version: "0.1"', 'version: "0.9"').replace("window: 24", "window: 300")
    registry.register_definition("h6", "0.9", wide)
    _, far = hand_set_model(wide)
    registry.register_version("h6", "h6:0.9", keras_builder.save_model(far, tmp_path / "far.keras"), scaler=scaler)
    registry.set_alias("h6", "champion", 3, set_by="test", reason="a long-window holder")
    with caplog.at_level("INFO", logger="airflow_amml.components.lstm"):
        run(
            "source id='ett', limit=200 | minmax_scaler | train_lstm model='h6:0.1', holdout=50, promote='champion' "
            "| print",
            horizon_config,
        )
    assert registry.resolve("h6@champion").version == 3 and registry.resolve("h6").version == 4
    assert "kept @champion (@champion (h6/3) reads 300 records per forecast" in caplog.text


def test_forecast_origins_give_every_label_its_history_by_hand():
    """10 records, the hold-out from record 4: a window-2 model forecasts from records 3 … 7 (labels 4 … 9 for
    horizon 2); one reading 6 records cannot forecast before record 5: the origins both can use are 5 … 7."""
    from airflow_amml.components.evaluation import forecast_origins, with_context

    assert forecast_origins(10, 4, 2, 2).tolist() == [3, 4, 5, 6, 7]
    assert forecast_origins(10, 4, 6, 2).tolist() == [5, 6, 7]
    assert forecast_origins(10, 4, 2, 7).tolist() == []
    trained_on = pd.DataFrame({"OT": [0.0, 1.0, 2.0]})
    records, labels_from = with_context(trained_on, pd.DataFrame({"OT": [3.0, 4.0]}), reach=2)
    assert records["OT"].tolist() == [1.0, 2.0, 3.0, 4.0] and labels_from == 2
    records, labels_from = with_context(trained_on, pd.DataFrame({"OT": [3.0]}), reach=9)
    assert records["OT"].tolist() == [0.0, 1.0, 2.0, 3.0] and labels_from == 3, "as far back as there are records"


def test_the_fan_shows_forecasts_from_a_few_origins_in_original_units(tmp_path):
    from airflow_amml.components.plots import fan_series, plot_prediction
    from airflow_amml.models.spec import TrainingSpec, parse_model_spec

    training = TrainingSpec(target="OT", features=("OT",), window=2, horizon=3, time_column="date")
    dates = pd.date_range("2017-06-01", periods=8, freq="h")
    frame = pd.DataFrame({"date": dates, "OT": [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]})
    # predicted[i] is made at record 1 + i for records 2 + i … 4 + i: 8 - 2 + 1 = 7 forecasts, of which
    # 8 - 2 - 3 + 1 = 4 (made at records 1 … 4) have all three labels; two origins: the first and the last of them
    predicted = np.arange(21, dtype=float).reshape(7, 3) / 100
    minmax = {"kind": "minmax", "columns": {"OT": [10.0, 30.0]}}  # v * 20 + 10
    fan = fan_series(frame, predicted, training, minmax, origins=2)
    assert fan.origins == (0, 3), "positions in the label, which starts at the first origin (record 1)"
    assert fan.label.tolist() == pytest.approx([12, 14, 16, 18, 20, 22, 24])  # records 1 … 7
    assert list(fan.x) == list(dates[1:].to_numpy())
    assert [f.tolist() for f in fan.forecasts] == [
        pytest.approx([10.0, 10.2, 10.4]),  # made at record 1: 0, 0.01, 0.02
        pytest.approx([11.8, 12.0, 12.2]),  # made at record 4: 0.09, 0.10, 0.11
    ]
    assert fan.ylabel == "OT (original units)" and fan.time_column == "date"

    # too short for one complete forecast: the first, as far as the labels go (records 2, 3 of 0 … 3)
    short = fan_series(frame.iloc[:4], predicted[:3], training, None)
    assert short.origins == (0,) and short.forecasts[0].tolist() == [0.0, 0.01] and short.ylabel == "OT"

    spec = parse_model_spec(
        "name: fan\nversion: '0.1'\nmodel:\n  layers:\n    - {type: Dense, units: 3}\n"
        "training: {window: 2, horizon: 3, target: OT, features: [OT]}\n",
        "fan",
    )
    path = plot_prediction(frame, predicted, spec, tmp_path / "prediction.png", minmax, "the hold-out")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert (int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")) == (900, 400)


def test_the_shipped_ett_forecast_dag_trains_a_horizon_model_with_per_step_metrics(tmp_path):
    """dags/ett_forecast.amml as shipped, on fewer rows and one epoch (the shipped run trains for the model's
    own 60): ett_h24 from dags/models, its hold-out scored on every step."""
    import os
    from pathlib import Path

    dags = Path(__file__).resolve().parents[2] / "dags"
    text = (dags / "ett_forecast.amml").read_text()
    assert "limit=14400" in text and "holdout=2880" in text and "train_lstm model=params.model, holdout=2880\n" in text
    small = text.replace("limit=14400", "limit=1200").replace("fit_rows=8640", "fit_rows=700")
    small = small.replace("holdout=2880", "holdout=400, epoch=1")
    config = RunConfig.from_environment(model_paths=[dags / "models"], runs_dir=tmp_path / "runs")
    program = compile_source(small, "ett_forecast.amml", cache=ProgramCache())
    run_pipeline(program.pipelines[0], run_params={"model": "ett_h24:0.1"}, config=config, mode="single")

    entry = ModelRegistry.from_config().resolve("ett_h24@champion")
    assert entry.definition == "ett_h24:0.1" and entry.scaler["kind"] == "zscore"
    assert entry.metrics["holdout_records"] == 400 and entry.params["epochs"] == 1
    # the errors by step beside repeat-last's, a figure the size of the others
    assert set(entry.plots) == {"loss", "prediction", "steps"}
    steps_png = Path(entry.plots["steps"].removeprefix("file://")).read_bytes()
    assert steps_png[:8] == b"\x89PNG\r\n\x1a\n"
    assert (int.from_bytes(steps_png[16:20], "big"), int.from_bytes(steps_png[20:24], "big")) == (900, 400)
    # repeat-last from the same origins (records 799 … 1175 of the 1,200, for the 24 hours after each), in °C
    ot = pd.read_csv(os.environ["AMML_ETT_PATH"])["OT"].to_numpy()[:1200]
    origins = np.arange(799, 1200 - 24)
    naive = ot[origins[:, None] + np.arange(1, 25)] - ot[origins][:, None]
    ratio = entry.metrics["holdout_mse"] / np.mean(naive**2)
    assert entry.metrics["holdout_mse_vs_last"] == pytest.approx(ratio, rel=1e-6)
    steps = [1, 2, 4, 8, 16, 24]
    for name in ("mae", "mse", "mae_scaled", "mse_scaled"):
        assert all(np.isfinite(entry.metrics[f"holdout_{name}_h{s}"]) for s in steps), name
    _, std = entry.scaler["columns"]["OT"]
    # z-scored errors are the °C errors divided by the training rows' standard deviation
    assert entry.metrics["holdout_mae_scaled"] == pytest.approx(entry.metrics["holdout_mae"] / std, rel=1e-6)
    assert entry.metrics["holdout_mse_scaled"] == pytest.approx(entry.metrics["holdout_mse"] / std**2, rel=1e-6)
