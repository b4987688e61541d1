"""The shipped `ett_forecast_predict` in real Airflow tasks (dag.test()) with a (tiny) horizon model that the
shipped `ett_forecast` trained: a day's run writes the next H hours after it with the version that made them;
a re-run of the day replaces its rows."""

import json
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from tests.airflow.airflow_home import airflow_home

ROOT = Path(__file__).resolve().parents[2]
# the shipped models' shape (336 hours of OT in, relative inputs, the change predicted), 4 hours ahead, one epoch
TINY_HORIZON = """
name: tiny_h4
version: "0.1"
model:
  layers:
    - {type: Dense, units: 4}
training:
  loss: mse
  epochs: 1
  batch_size: 128
  window: 336
  horizon: 4
  target: OT
  features: [OT]
  inputs: relative
  predict: delta
  seed: 2
"""

TRAIN_THEN_FORECAST = """
    import json, pendulum
    from airflow.dag_processing.dagbag import DagBag
    bag = DagBag(dag_folder="{dags}", bundle_path="{dags}", bundle_name="dags-folder")
    day = pendulum.datetime(2017, 11, 2, tz="UTC")  # the run over 2017-11-01
    conf = {{"model": "tiny_h4@champion"}}
    runs = [bag.dags["ett_forecast_predict"].test(logical_date=day, run_conf=conf) for _ in range(2)]
    print(json.dumps({{"states": [str(r.state) for r in runs]}}))
"""


@pytest.fixture(scope="module")
def forecast_env(tmp_path_factory):
    home = tmp_path_factory.mktemp("airflow-forecast")
    dags = home / "dags"
    (dags / "models").mkdir(parents=True)
    for name in ("amml_dags.py", "ett_forecast_predict.amml"):  # the loader and the DAG, as shipped
        shutil.copy(ROOT / "dags" / name, dags)
    (dags / "models" / "tiny_h4.yaml").write_text(TINY_HORIZON)
    return airflow_home(home, dags), dags


def train_with_the_shipped_ett_forecast(dags):
    """dags/ett_forecast.amml's pipeline on fewer rows (its shipped 14,400 take a minute), in this process:
    its z-scaling and hold-out, the first version becoming @champion."""
    from airflow_amml.run_config import RunConfig
    from airflow_amml.runtime.executor import run_pipeline
    from compiler import ProgramCache, compile_source

    text = (ROOT / "dags" / "ett_forecast.amml").read_text()
    small = text.replace("limit=14400", "limit=2400").replace("fit_rows=8640", "fit_rows=1800")
    small = small.replace("holdout=2880", "holdout=400")
    assert small.count("limit=2400") == small.count("fit_rows=1800") == small.count("holdout=400") == 1
    program = compile_source(small, "ett_forecast.amml", cache=ProgramCache())
    config = RunConfig.from_environment(model_paths=[dags / "models"], runs_dir=dags.parent / "runs")
    run_pipeline(program.pipelines[0], run_params={"model": "tiny_h4:0.1"}, config=config, mode="single")


def test_ett_forecast_predict_writes_the_next_hours_with_the_version(forecast_env, ett_path, monkeypatch):
    env, dags = forecast_env
    env = {**env, "AMML_ETT_PATH": str(ett_path)}
    monkeypatch.setenv("AMML_HOME", env["AMML_HOME"])  # the registry the DAG's runs read
    train_with_the_shipped_ett_forecast(dags)
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(TRAIN_THEN_FORECAST.format(dags=dags))],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert json.loads(result.stdout.strip().splitlines()[-1])["states"] == ["success"] * 2

    engine = sa.create_engine(f"sqlite:///{env['AMML_HOME']}/amml.db")
    with engine.connect() as conn:
        rows = pd.read_sql("select * from ett_forecasts order by step", conn, parse_dates=["origin", "date"])
    engine.dispose()
    intervals = ["prediction_lo_80", "prediction_hi_80", "prediction_lo_95", "prediction_hi_95"]
    assert list(rows.columns) == ["origin", "date", "step", "prediction", *intervals, "model_version"]
    assert len(rows) == 4, "4 hours, once: the re-run replaced its rows"
    assert (rows["origin"] == pd.Timestamp("2017-11-01 23:00")).all(), "from the interval's last hour"
    assert list(rows["date"]) == list(pd.date_range("2017-11-02 00:00", periods=4, freq="h"))
    assert list(rows["step"]) == [1, 2, 3, 4] and set(rows["model_version"]) == {"tiny_h4/1"}

    # the same forecast computed here: the version's z-scaling and Keras' own predict on the last 336 hours
    from airflow_amml.models import keras_builder
    from airflow_amml.models.spec import parse_model_spec
    from airflow_amml.registry import ModelRegistry

    registry = ModelRegistry.from_config()
    entry = registry.resolve("tiny_h4/1")
    assert entry.scaler["kind"] == "zscore"
    spec = parse_model_spec(registry.get_definition(entry.definition), entry.definition)
    with tempfile.TemporaryDirectory() as tmp:
        _, path = registry.download(entry.ref, Path(tmp))
        model = keras_builder.load_model(path, spec)
    ett = pd.read_csv(ett_path, parse_dates=["date"])
    last = int(ett.index[ett["date"] == pd.Timestamp("2017-11-01 23:00")][0])
    mean, std = entry.scaler["columns"]["OT"]
    window = (ett["OT"].to_numpy(dtype=np.float64)[last - 335 : last + 1] - mean) / std
    change = model.predict((window - window[-1])[None, :, None].astype(np.float32), verbose=0)[0]
    expected = (np.asarray(change, dtype=np.float64) + window[-1]) * std + mean
    assert np.allclose(rows["prediction"].to_numpy(), expected, rtol=1e-5, atol=1e-4)
    # the intervals: the version's half-widths of each step (z-scaled) in °C, around the forecast
    for level in ("80", "95"):
        half = np.asarray(entry.intervals["levels"][level]) * std
        assert np.allclose(rows[f"prediction_hi_{level}"] - rows["prediction"], half, rtol=1e-4, atol=1e-4)
        assert np.allclose(rows["prediction"] - rows[f"prediction_lo_{level}"], half, rtol=1e-4, atol=1e-4)
