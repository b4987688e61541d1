"""`lstm` serving a horizon model (`horizon: H`): the long layout (H rows per origin: origin, target time, step,
value, version), forecasting from the last origin only, the inverse scalers on the forecast column, re-runs that
replace their rows (SQLite and real PostgreSQL); real Keras on a tiny model trained for one epoch."""

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from airflow_amml.registry import ModelRegistry
from airflow_amml.run_config import RunConfig
from airflow_amml.runtime.errors import PipelineError
from airflow_amml.runtime.executor import run_pipeline
from compiler import ProgramCache, compile_source
from compiler.errors import AmmlError

# horizon 4 from the last 8 hours of OT and HUFL; Dense only, so one epoch on 600 records takes a moment
HORIZON_MODEL = """
name: tiny_h4
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
  features: [HUFL, OT]
  predict: delta
  seed: 5
"""
ONE_STEP_MODEL = (
    HORIZON_MODEL.replace("tiny_h4", "tiny_h1").replace("units: 4", "units: 1").replace("horizon: 4", "horizon: 1")
)
DAY = ("2017-06-01", "2017-06-02")  # 24 hourly records; 24 - 8 + 1 = 17 origins without warmup


def run(text, config):
    program = compile_source(text, "forecast.amml", cache=ProgramCache())
    return run_pipeline(program.pipelines[0], config=config, mode="single")


@pytest.fixture
def config(tmp_path):
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "tiny_h4.yaml").write_text(HORIZON_MODEL)
    (folder / "tiny_h1.yaml").write_text(ONE_STEP_MODEL)
    return RunConfig.from_environment(model_paths=[folder], runs_dir=tmp_path / "runs", output_root=tmp_path)


def train(config, name="tiny_h4", scaler="minmax_scaler"):
    run(f"source id='ett', limit=600 | {scaler} | train_lstm model='{name}:0.1' | print", config)


def expected_forecasts(name, ett, origins, scale, unscale):
    """What the registered model forecasts from each origin (a row label of `ett`), in °C: the windows built
    here, scaled with the stored statistics, Keras' own `model.predict`, the change added to the last value."""
    from airflow_amml.models import keras_builder
    from airflow_amml.models.spec import parse_model_spec

    registry = ModelRegistry.from_config()
    entry = registry.resolve(f"{name}@champion")
    spec = parse_model_spec(registry.get_definition(entry.definition), entry.definition)
    with tempfile.TemporaryDirectory() as tmp:
        _, path = registry.download(entry.ref, Path(tmp))
        model = keras_builder.load_model(path, spec)
    stats = entry.scaler["columns"]
    scaled = {c: scale(ett[c].to_numpy(dtype=np.float64), *stats[c]) for c in ("HUFL", "OT")}
    windows = np.stack(
        [np.stack([scaled["HUFL"][o - 7 : o + 1], scaled["OT"][o - 7 : o + 1]], axis=1) for o in origins]
    )
    changes = np.asarray(model.predict(windows.astype(np.float32), verbose=0), dtype=np.float64)
    return unscale(changes + windows[:, -1:, 1], *stats["OT"]), entry.ref


def minmax(values, low, high):
    return (values - low) / (high - low)


def minmax_back(values, low, high):
    return values * (high - low) + low


def test_long_rows_per_origin_with_steps_target_times_values_and_version(config, tmp_path, ett_path):
    train(config)
    out = tmp_path / "long.csv"
    run(
        f"source id='ett', start='{DAY[0]}', end='{DAY[1]}' | minmax_scaler model='tiny_h4' "
        f"| lstm model='tiny_h4', layout='long' | minmax_inverse model='tiny_h4' | csv_sink path='{out}'",
        config,
    )
    rows = pd.read_csv(out, parse_dates=["origin", "date"])
    assert list(rows.columns) == ["origin", "date", "step", "prediction", "model_version"]
    ett = pd.read_csv(ett_path, parse_dates=["date"])
    day = ett[(ett["date"] >= DAY[0]) & (ett["date"] < DAY[1])]
    origins = day.index[7:]  # the records that complete a window of 8
    assert len(rows) == 4 * len(origins) == 68
    assert list(rows["origin"]) == list(np.repeat(ett["date"][origins].to_numpy(), 4))
    assert list(rows["step"]) == [1, 2, 3, 4] * len(origins)
    assert ((rows["date"] - rows["origin"]) == rows["step"] * pd.Timedelta("1h")).all(), "origin + step x 1 hour"
    expected, version = expected_forecasts("tiny_h4", ett, origins, minmax, minmax_back)
    assert np.allclose(rows["prediction"].to_numpy(), expected.reshape(-1), rtol=1e-5, atol=1e-4)
    assert (rows["model_version"] == version).all() and version == "tiny_h4/1"

    # the wide layout holds the same numbers on the origin's record, in prediction_1 … prediction_4
    wide = tmp_path / "wide.csv"
    run(
        f"source id='ett', start='{DAY[0]}', end='{DAY[1]}' | minmax_scaler model='tiny_h4' "
        f"| lstm model='tiny_h4' | minmax_inverse model='tiny_h4' | csv_sink path='{wide}'",
        config,
    )
    wide_rows = pd.read_csv(wide)
    steps = wide_rows[[f"prediction_{s}" for s in (1, 2, 3, 4)]].to_numpy()
    assert np.allclose(steps.reshape(-1), rows["prediction"].to_numpy())


def test_the_last_origin_forecasts_the_next_hours_and_a_rerun_replaces_its_rows(config, tmp_path, ett_path):
    """A daily run (warmup for the window) forecasts the 4 hours after its interval, once; SQLite."""
    train(config)
    ett = pd.read_csv(ett_path, parse_dates=["date"])

    def forecast_day(start, end):
        run(
            f"source id='ett', start='{start}', end='{end}', warmup=7 | minmax_scaler model='tiny_h4' "
            f"| lstm model='tiny_h4', layout='long', origins='last' | minmax_inverse model='tiny_h4' "
            f"| sql_sink table='forecasts', key=['origin', 'step']",
            config,
        )

    forecast_day(*DAY)
    forecast_day(*DAY)  # the re-run replaces its 4 rows
    forecast_day("2017-06-02", "2017-06-03")
    engine = sa.create_engine(f"sqlite:///{config.home}/amml.db")
    with engine.connect() as conn:
        rows = pd.read_sql("select * from forecasts order by origin, step", conn, parse_dates=["origin", "date"])
    engine.dispose()
    assert len(rows) == 8
    first = rows.iloc[:4]
    assert (first["origin"] == pd.Timestamp("2017-06-01 23:00")).all()
    assert list(first["date"]) == list(pd.date_range("2017-06-02 00:00", periods=4, freq="h")), "the next 4 hours"
    assert (rows["origin"].iloc[4:] == pd.Timestamp("2017-06-02 23:00")).all()
    last = ett.index[ett["date"] == pd.Timestamp("2017-06-01 23:00")]
    expected, _ = expected_forecasts("tiny_h4", ett, last, minmax, minmax_back)
    assert np.allclose(first["prediction"].to_numpy(), expected[0], rtol=1e-5, atol=1e-4)


def test_a_zscore_model_on_postgresql_rerun_replaces_and_zscore_inverse_undoes(tmp_path, ett_path, postgres_url):
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "tiny_h4.yaml").write_text(HORIZON_MODEL)
    config = RunConfig.from_environment(model_paths=[folder], runs_dir=tmp_path / "runs", db_url=postgres_url)
    train(config, scaler="zscore_scaler")
    predict = (
        f"source id='ett', start='{DAY[0]}', end='{DAY[1]}', warmup=7 | zscore_scaler model='tiny_h4' "
        f"| lstm model='tiny_h4', layout='long', origins='last' | zscore_inverse model='tiny_h4' "
        f"| sql_sink table='forecasts', key=['origin', 'step']"
    )
    run(predict, config)
    run(predict, config)
    engine = sa.create_engine(postgres_url)
    with engine.connect() as conn:
        rows = pd.read_sql("select * from forecasts order by step", conn)
    engine.dispose()
    assert len(rows) == 4 and list(rows["step"]) == [1, 2, 3, 4]
    assert str(rows["origin"].dtype).startswith("datetime64"), "a timestamp column in PostgreSQL"
    ett = pd.read_csv(ett_path, parse_dates=["date"])
    last = ett.index[ett["date"] == pd.Timestamp("2017-06-01 23:00")]
    expected, version = expected_forecasts(
        "tiny_h4", ett, last, lambda v, mean, std: (v - mean) / std, lambda v, mean, std: v * std + mean
    )
    assert np.allclose(rows["prediction"].to_numpy(), expected[0], rtol=1e-5, atol=1e-4)
    assert set(rows["model_version"]) == {version}


def test_a_one_step_model_keeps_its_output_and_its_long_rows_say_step_1(config, tmp_path):
    train(config, name="tiny_h1")
    wide, long = tmp_path / "wide.csv", tmp_path / "long.csv"
    head = f"source id='ett', start='{DAY[0]}', end='{DAY[1]}' | minmax_scaler model='tiny_h1' | "
    run(f"{head}lstm model='tiny_h1' | minmax_inverse model='tiny_h1' | csv_sink path='{wide}'", config)
    run(f"{head}lstm model='tiny_h1', layout='long' | minmax_inverse model='tiny_h1' | csv_sink path='{long}'", config)
    wide_rows, long_rows = pd.read_csv(wide), pd.read_csv(long)
    ett_columns = ["date", "HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL", "OT"]
    assert list(wide_rows.columns) == [*ett_columns, "prediction", "model_version"], "today's columns"
    assert len(wide_rows) == 17 and list(wide_rows["date"]) == list(long_rows["origin"])
    assert (long_rows["step"] == 1).all()
    assert np.allclose(wide_rows["prediction"], long_rows["prediction"])
    last = tmp_path / "last.csv"  # from the last origin only: the wide layout's last row, as it is
    run(f"{head}lstm model='tiny_h1', origins='last' | minmax_inverse model='tiny_h1' | csv_sink path='{last}'", config)
    pd.testing.assert_frame_equal(pd.read_csv(last), wide_rows.iloc[-1:].reset_index(drop=True))


def test_bad_serving_parameters_are_clear_errors(config, tmp_path, monkeypatch):
    with pytest.raises(AmmlError, match=r"bad.amml:1:42: .*parameter `layout` of `lstm` must be one of `long`, `wide`"):
        compile_source("source id='ett' | lstm model='x', layout='tall' | print", "bad.amml", cache=ProgramCache())
    train(config)
    day = f"source id='ett', start='{DAY[0]}', end='{DAY[1]}' | minmax_scaler model='tiny_h4' | "
    with pytest.raises(PipelineError, match=r"`lstm freq='hourly'`: expected the time between records") as err:
        run(f"{day}lstm model='tiny_h4', layout='long', freq='hourly' | print", config)
    assert err.value.hint == "e.g. freq='1h' for hourly records"
    with pytest.raises(PipelineError, match=r"`lstm output='step'`: the long layout has a column of that name"):
        run(f"{day}lstm model='tiny_h4', layout='long', output='step' | print", config)
    # a run param is checked when the run starts (the checker sees only its name)
    by_param = compile_source(
        'dag d { params = {layout: "long"} }\n' + day + "lstm model='tiny_h4', layout=params.layout | print",
        "by_param.amml",
        cache=ProgramCache(),
    )
    with pytest.raises(PipelineError, match=r"`lstm layout='tall'`: expected one of 'wide', 'long'"):
        run_pipeline(by_param.pipelines[0], run_params={"layout": "tall"}, config=config, mode="single")
    with pytest.raises(PipelineError, match=r"need the records' times; the records have no datetime column"):
        run(f"{day}drop cols=['date'] | lstm model='tiny_h4', layout='long' | print", config)

    import airflow_amml.components.lstm as lstm

    monkeypatch.setattr(lstm, "MAX_FORECAST_ROWS", 40)  # 17 origins x 4 steps is more
    with pytest.raises(PipelineError, match=r"17 origins x 4 steps would be 68 rows from one batch") as err:
        run(f"{day}lstm model='tiny_h4', layout='long' | print", config)
    assert "origins='last'" in err.value.hint
    out = tmp_path / "last.csv"  # forecasting from the last origin only stays under it
    run(f"{day}lstm model='tiny_h4', layout='long', origins='last', freq='1h' | csv_sink path='{out}'", config)
    assert len(pd.read_csv(out)) == 4


def test_zscore_inverse_restores_what_zscore_scaler_scaled_and_refuses_another_scaling(tmp_path, ett_path):
    config = RunConfig.from_environment(output_root=tmp_path)
    out = tmp_path / "round.csv"
    run(f"source id='ett', limit=200 | zscore_scaler fit_rows=100 | zscore_inverse | csv_sink path='{out}'", config)
    assert np.allclose(pd.read_csv(out)["OT"], pd.read_csv(ett_path)["OT"][:200])
    with pytest.raises(PipelineError, match=r"found no zscore statistics on its input \(it has minmax statistics\)"):
        run("source id='ett', limit=20 | minmax_scaler | zscore_inverse | print", config)
