"""A run reads one version of each registered model: `ett@champion` is resolved once, when the run starts, so a
retraining that moves the alias meanwhile cannot give the scaler one version and the model or the inverse
another. Real registry (SQLite, local artifacts), real Keras; the concurrent promotion is simulated by moving
the alias when `lstm` downloads its model (the moment a slower process would see the new version)."""

import os

import numpy as np
import pandas as pd
import pytest

from airflow_amml.models import keras_builder
from airflow_amml.models.spec import parse_model_spec
from airflow_amml.registry import ModelRegistry
from airflow_amml.run import run_program
from airflow_amml.run_config import RunConfig
from airflow_amml.runtime.executor import run_pipeline
from compiler import ProgramCache, compile_source

# repeat-last as a Keras model: `predict: delta` with every weight 0 forecasts no change
REPEAT_LAST = """
name: pin
version: "0.1"
model:
  layers:
    - {type: Dense, units: 1}
training:
  loss: mse
  window: 2
  target: OT
  features: [OT]
  predict: delta
"""

PREDICT = (
    "source id='ett', cols=['date', 'OT'], limit=30 | minmax_scaler model='pin@champion' "
    "| lstm model='pin@champion' | minmax_inverse model='pin@champion' | csv_sink path='{out}'"
)


@pytest.fixture
def two_versions(tmp_path):
    """pin/1: repeat-last, statistics OT [0, 10]; pin/2: last + 0.001 (scaled), statistics [0, 1000], so
    +1 °C. @champion → 1."""
    registry = ModelRegistry.from_config()
    registry.register_definition("pin", "0.1", REPEAT_LAST)
    spec = parse_model_spec(REPEAT_LAST, "pin.yaml")
    model = keras_builder.build_model(spec)
    for number, (bias, high) in enumerate([(0.0, 10.0), (0.001, 1000.0)], start=1):
        weights = [np.zeros_like(w) for w in model.get_weights()]
        weights[-1][:] = bias
        model.set_weights(weights)
        path = keras_builder.save_model(model, tmp_path / f"pin-{number}.keras")
        registry.register_version("pin", "pin:0.1", path, scaler={"kind": "minmax", "columns": {"OT": [0.0, high]}})
    registry.set_alias("pin", "champion", 1, set_by="test", reason="the first")
    return registry


@pytest.fixture
def promote_during_the_run(monkeypatch, two_versions):
    """Move @champion to version 2 the first time a model file is downloaded (`lstm` opening)."""
    original = ModelRegistry.download
    moved = []

    def download(self, ref, folder):
        if not moved:
            moved.append(ref)
            self.set_alias("pin", "champion", 2, set_by="test", reason="a retraining promoted")
        return original(self, ref, folder)

    monkeypatch.setattr(ModelRegistry, "download", download)
    return moved


def predictions(tmp_path, name, runner):
    """The run's rows, with `temperature`: ETTh1's OT at each row's time, as the file has it."""
    out = tmp_path / f"{name}.csv"
    config = RunConfig.from_environment(output_root=tmp_path)
    program = compile_source(PREDICT.format(out=out), f"{name}.amml", cache=ProgramCache())
    runner(program, config)
    ett = pd.read_csv(os.environ["AMML_ETT_PATH"], usecols=["date", "OT"]).rename(columns={"OT": "temperature"})
    return pd.read_csv(out).merge(ett, on="date")


def test_a_run_reads_the_version_the_alias_named_when_it_started(tmp_path, promote_during_the_run, two_versions):
    frame = predictions(tmp_path, "pinned", lambda program, config: run_program(program, config=config, mode="single"))
    assert promote_during_the_run == ["pin/1"], "lstm downloaded the version pinned at the start"
    assert two_versions.resolve("pin@champion").version == 2, "the alias did move during the run"
    # repeat-last, scaled and unscaled with one version's statistics: the forecast is the last OT
    assert set(frame["model_version"]) == {"pin/1"} and len(frame) == 30 - 1
    np.testing.assert_allclose(frame["prediction"], frame["temperature"], rtol=1e-5)

    # the next run starts after the promotion: version 2 throughout, 1 °C over the last value
    later = predictions(tmp_path, "later", lambda program, config: run_program(program, config=config, mode="single"))
    assert set(later["model_version"]) == {"pin/2"}
    np.testing.assert_allclose(later["prediction"], later["temperature"] + 1.0, rtol=1e-5)


def test_without_pins_the_same_promotion_mixes_two_versions(tmp_path, promote_during_the_run):
    """The case the pins exist for: each component resolving the alias itself, the scaler has read version 1's
    statistics when `lstm` loads version 2's model: its change of 0.001 comes out as 0.01 °C, a forecast that
    neither version makes (version 2 forecasts 1 °C), labelled pin/2."""

    def unpinned(program, config):
        run_pipeline(program.pipelines[0], config=config, mode="single")

    frame = predictions(tmp_path, "unpinned", unpinned)
    assert set(frame["model_version"]) == {"pin/2"}
    np.testing.assert_allclose(frame["prediction"], frame["temperature"] + 0.01, rtol=1e-5)
