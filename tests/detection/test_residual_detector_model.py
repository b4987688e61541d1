"""`residual_detector model=...`: the residual threshold `train_lstm` learns and stores with a model version
(real Keras training on ETTh1, small: a tiny LSTM, 2 epochs, 1,500 records)."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from airflow_amml.detection.dynamic_threshold import DEFAULT_SMOOTH, residual_threshold
from airflow_amml.detection.rolling import Ewma
from airflow_amml.registry import ModelRegistry
from airflow_amml.run_config import RunConfig
from airflow_amml.runtime.errors import PipelineError
from airflow_amml.runtime.executor import run_pipeline
from compiler import ProgramCache, compile_source

TINY = """
name: tiny
version: "0.1"
model:
  layers:
    - {type: LSTM, units: 8}
    - {type: Dense, units: 1}
training:
  loss: mae
  epochs: 2
  batch_size: 64
  window: 12
  target: OT
  features: [HUFL, OT]
  seed: 1
"""
TRAIN_ROWS, HOLDOUT = 1500, 300


def run(text, config, mode="single"):
    return run_pipeline(compile_source(text, "t.amml", cache=ProgramCache()).pipelines[0], config=config, mode=mode)


@pytest.fixture
def trained(tmp_path, monkeypatch, ett_path):
    """`tiny` trained on ETTh1's first 1,500 records (the last 300 held out), and a catalog source `spiky`:
    records 1,500-2,200 of ETTh1 with OT raised by 40 °C at record 1,900 (a sensor glitch; the tiny model
    forecasts too poorly for subtler faults)."""
    models = tmp_path / "models"
    models.mkdir()
    (models / "tiny.yaml").write_text(TINY)
    ett = pd.read_csv(ett_path)
    spiky = ett.iloc[TRAIN_ROWS:2200].copy()
    spiky.loc[1900, "OT"] += 40
    spiky.to_csv(tmp_path / "spiky.csv", index=False)
    (tmp_path / "catalog.yaml").write_text(f"spiky:\n  path: {tmp_path / 'spiky.csv'}\n  time_column: date\n")
    monkeypatch.setenv("AMML_CATALOG", str(tmp_path / "catalog.yaml"))
    config = RunConfig.from_environment(model_paths=[models], runs_dir=tmp_path / "runs", output_root=tmp_path)
    run(
        f"source id='ett', limit={TRAIN_ROWS} | minmax_scaler | train_lstm model='tiny:0.1', holdout={HOLDOUT} "
        "| print limit=0",
        config,
    )
    return config, ett


def test_training_stores_the_threshold_of_the_hold_out_errors(trained):
    from airflow_amml.models import keras_builder
    from airflow_amml.models.spec import parse_model_spec

    config, ett = trained
    registry = ModelRegistry.from_config(config)
    entry = registry.resolve("tiny")
    # recompute it: the hold-out is the last 300 of the 1,500 records, min-max scaled with their statistics;
    # the forecast made at record t (a window of 12 ending there) is of record t + 1, so every hold-out record
    # is a label: the first forecast reads the last 12 training records
    frame = ett.iloc[:TRAIN_ROWS].copy()
    for col, (low, high) in entry.scaler["columns"].items():
        frame[col] = (frame[col] - low) / (high - low)
    records = frame.iloc[TRAIN_ROWS - HOLDOUT - 12 :]
    spec = parse_model_spec(registry.get_definition(entry.definition), entry.definition)
    _, path = registry.download("tiny", config.runs_dir)
    forecasts = keras_builder.predict(keras_builder.load_model(path, spec), spec, records)[:, 0]
    n = HOLDOUT
    want = residual_threshold(records["OT"].to_numpy()[12 : 12 + n], forecasts[:n])
    assert entry.metrics["residual_records"] == n and entry.metrics["residual_smooth"] == DEFAULT_SMOOTH
    assert entry.metrics["residual_mean"] == pytest.approx(want["residual_mean"], rel=1e-5)
    assert entry.metrics["residual_threshold"] == pytest.approx(want["residual_threshold"], rel=1e-5)
    assert entry.metrics["residual_threshold"] > entry.metrics["residual_mean"] > 0


@pytest.mark.parametrize("mode", ["single", "multiprocess"])
def test_the_detector_scores_with_the_stored_threshold(trained, tmp_path, mode):
    config, ett = trained
    out = tmp_path / f"scored_{mode}.csv"
    text = (
        "source id='spiky' | minmax_scaler model='tiny' | lstm model='tiny' "
        f"| residual_detector col='OT', pred='prediction', model='tiny' | csv_sink path='{out}'"
    )
    if mode == "single":
        run(text, config, mode)
    else:  # TensorFlow is loaded in this process now, and is not safe across fork: `amml run` in a new one
        (tmp_path / "score.amml").write_text(text + "\n")
        done = subprocess.run(
            [sys.executable, "-m", "airflow_amml.cli", "run", str(tmp_path / "score.amml"), "--mode", mode],
            capture_output=True,
            text=True,
            timeout=240,
        )
        assert done.returncode == 0, done.stderr[-3000:]
    scored = pd.read_csv(out)
    metrics = ModelRegistry.from_config(config).resolve("tiny").metrics
    mean, eps = metrics["residual_mean"], metrics["residual_threshold"]
    # by hand from the output: e_t = |OT_t - prediction_(t-1)|, smoothed (EWMA, span 3), then
    # score = 0.5 (e_s - mean) / (epsilon - mean), clipped to [0, 1]
    errors = np.abs(scored["OT"].to_numpy() - np.concatenate([[np.nan], scored["prediction"].to_numpy()[:-1]]))
    smoothed = Ewma(2 / (DEFAULT_SMOOTH + 1)).update(errors)
    want = np.nan_to_num(np.clip(0.5 * (smoothed - mean) / (eps - mean), 0, 1), nan=0.0)
    assert np.allclose(scored["anomaly_score"].to_numpy(), want, atol=1e-12)
    spike = int(np.flatnonzero(scored["date"].to_numpy() == ett["date"][1900])[0])
    flagged = np.flatnonzero(scored["anomaly_flag"].to_numpy())
    assert spike in flagged  # the +40 °C record
    assert len(flagged) <= 0.02 * len(scored)


def test_a_version_without_a_stored_threshold_is_named(tmp_path):
    registry = ModelRegistry.from_config()
    registry.register_definition("bare", "0.1", TINY.replace("name: tiny", "name: bare"))
    model_file = tmp_path / "model.keras"
    model_file.write_bytes(b"not a real model: the detector never loads it")
    registry.register_version("bare", "bare:0.1", model_file, metrics={"loss": 0.1})
    with pytest.raises(PipelineError, match=r"version bare/1 has no stored residual threshold") as info:
        run(
            "source id='ett', limit=50 | residual_detector col='OT', model='bare' | print limit=0",
            RunConfig.from_environment(),
        )
    assert "train it again" in (info.value.hint or "")
