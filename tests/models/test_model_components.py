"""`train_lstm` and `lstm` on real ETTh1 data with real Keras training (small: a few epochs, few rows)."""

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from airflow_amml.registry import ModelRegistry
from airflow_amml.run_config import Lineage, RunConfig
from airflow_amml.runtime.errors import PipelineError
from airflow_amml.runtime.executor import run_pipeline
from compiler import ProgramCache, compile_source

ROOT = Path(__file__).resolve().parents[2]
SMALL_MODEL = """
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


@pytest.fixture
def models_dir(tmp_path):
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "tiny.yaml").write_text(SMALL_MODEL)
    return folder


def run(text, config, mode="single"):
    program = compile_source(text, "models.amml", cache=ProgramCache())
    return run_pipeline(program.pipelines[0], config=config, mode=mode)


def test_train_then_predict_with_the_stored_scaler(tmp_path, models_dir):
    config = RunConfig.from_environment(
        model_paths=[models_dir],
        runs_dir=tmp_path / "runs",
        output_root=tmp_path,  # the sinks below write here
        lineage=Lineage(dag_id="ett_train", run_id="manual__1", source_hash="abc"),
    )
    epochs = tmp_path / "epochs.csv"
    run(
        f"source id='ett', limit=1500 | minmax_scaler | train_lstm model='tiny:0.1', epoch=3 "
        f"| csv_sink path='{epochs}'",
        config,
    )
    history = pd.read_csv(epochs)
    assert list(history["epoch"]) == [1, 2, 3] and np.isfinite(history["loss"]).all()

    registry = ModelRegistry.from_config()
    entry = registry.resolve("tiny")
    assert entry.version == 1 and entry.definition == "tiny:0.1"
    assert entry.metrics["epochs"] == 3 and entry.metrics["loss"] == pytest.approx(history["loss"].iloc[-1])
    assert entry.lineage.dag_id == "ett_train" and entry.lineage.source_hash == "abc"
    ett = pd.read_csv(os.environ["AMML_ETT_PATH"])
    assert entry.scaler["columns"]["OT"] == [ett["OT"][:1500].min(), ett["OT"][:1500].max()]
    assert set(entry.plots) == {"loss", "prediction"}
    for uri in entry.plots.values():
        assert Path(uri.removeprefix("file://")).read_bytes()[:4] == b"\x89PNG"

    # predict a later day: the scaler must use the training statistics, not refit on these 48 records
    out = tmp_path / "pred.csv"
    run(
        f"source id='ett', start='2017-06-01', end='2017-06-03' | minmax_scaler model='tiny' | lstm model='tiny' "
        f"| minmax_inverse model='tiny' | csv_sink path='{out}'",
        config,
    )
    pred = pd.read_csv(out)
    day = ett[(ett["date"] >= "2017-06-01") & (ett["date"] < "2017-06-03")].reset_index(drop=True)
    assert len(pred) == len(day) - 12 + 1, "one forecast per record that completes a window"
    assert list(pred["date"]) == list(day["date"][11:]), "forecasts carry the timestamp of their input"
    assert np.allclose(pred["OT"], day["OT"][11:].to_numpy()), "inverse scaling restores the inputs exactly"
    assert pred["prediction"].between(ett["OT"].min() - 20, ett["OT"].max() + 20).all()


def test_unknown_definition_and_model_are_clear_errors(tmp_path, models_dir):
    config = RunConfig.from_environment(model_paths=[models_dir])
    with pytest.raises(PipelineError, match=r"no model definition 'tiny:9'; registered: \(none\)"):
        run("source id='ett', limit=100 | train_lstm model='tiny:9' | print", config)
    with pytest.raises(PipelineError, match=r"no model named 'tiny'"):
        run("source id='ett', limit=100 | lstm model='tiny@champion' | print", config)


def test_a_changed_definition_needs_a_new_version(tmp_path, models_dir):
    registry = ModelRegistry.from_config()
    registry.register_definition("tiny", "0.1", SMALL_MODEL.replace("units: 8", "units: 4"))
    config = RunConfig.from_environment(model_paths=[models_dir])
    with pytest.raises(PipelineError, match=r"already registered with different content") as info:
        run("source id='ett', limit=100 | train_lstm model='tiny:0.1' | print", config)
    assert "tiny:0.2" in str(info.value)


def test_amml_run_trains_in_the_multiprocess_executor(tmp_path, models_dir):
    """As a user runs it: `amml run` in a fresh process (TensorFlow imported only in the training child)."""
    workdir = tmp_path / "work"
    workdir.mkdir()
    shutil.copytree(models_dir, workdir / "models")
    (workdir / "train.amml").write_text(
        "source id='ett', limit=800 | minmax_scaler | train_lstm model='tiny:0.1', epoch=2 | print\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "airflow_amml.cli", "run", "train.amml"],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "epoch" in result.stdout and "registered tiny/1" in result.stderr
    registered = next(Path(os.environ["AMML_HOME"], "runs", "tiny").glob("*/registered.json"))
    assert json.loads(registered.read_text())["model"] == "tiny/1"


def test_a_retried_training_task_does_not_register_twice(tmp_path, models_dir):
    config = RunConfig.from_environment(
        model_paths=[models_dir],
        runs_dir=tmp_path / "runs",
        lineage=Lineage(dag_id="ett_train", run_id="manual__1", task_id="main"),
    )
    text = "source id='ett', limit=600 | minmax_scaler | train_lstm model='tiny:0.1', epoch=1 | print"
    run(text, config)
    run(text, config)  # Airflow retries the task of the same run
    assert [v.version for v in ModelRegistry.from_config().list_versions("tiny")] == [1]
    run(text, dataclasses.replace(config, lineage=dataclasses.replace(config.lineage, run_id="manual__2")))
    assert [v.version for v in ModelRegistry.from_config().list_versions("tiny")] == [1, 2]


def test_records_a_model_cannot_take_are_an_error_naming_the_component_without_a_traceback(tmp_path):
    """Bad data is the user's to fix, not a bug: the message names train_lstm and the column, and carries no
    traceback (a bare ValueError used to arrive as an unexpected exception, with the child's traceback)."""
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "tiny.yaml").write_text(SMALL_MODEL)
    text = "normalsource col='v', count=200 | derive HUFL=v, OT='warm' | train_lstm model='tiny:0.1', epoch=1 | print"
    program = compile_source(text, "p.amml", cache=ProgramCache())
    with pytest.raises(PipelineError) as info:
        run_pipeline(program.pipelines[0], config=RunConfig.from_environment(model_paths=[folder]), mode="single")
    message = str(info.value)
    assert "`train_lstm`" in message and "column OT must be numeric" in message, message
    assert "Traceback" not in message and "ValueError" not in message, message


# ---- traceable predictions, the first champion ---------------------------------------------------------------


def predict_day(config, day, sink, model="tiny@champion", drop_version=False):
    """One day of forecasts into ``sink``; ``drop_version``: as an earlier release wrote them (no
    `model_version` column)."""
    strip = " | drop cols=['model_version']" if drop_version else ""
    run(
        f"source id='ett', start='2017-06-{day:02d}', end='2017-06-{day + 1:02d}' | minmax_scaler model='{model}' "
        f"| lstm model='{model}' | minmax_inverse model='{model}'{strip} | {sink}",
        config,
    )


def test_predictions_carry_the_version_that_made_them_and_every_sink_stores_it(tmp_path, models_dir, postgres_url):
    """`model_version` is the version the alias resolved to (`tiny/1`, not `tiny@champion`); the sinks store
    it, also into a table and a CSV file written before the column existed (real PostgreSQL)."""
    import sqlalchemy as sa

    config = RunConfig.from_environment(
        model_paths=[models_dir], runs_dir=tmp_path / "runs", output_root=tmp_path, db_url=postgres_url
    )
    train = "source id='ett', limit=600 | minmax_scaler | train_lstm model='tiny:0.1', epoch=1 | print"
    run(train, config)
    csv, parquet = tmp_path / "pred.csv", tmp_path / "pred.parquet"
    # day 1 as an earlier release wrote it; day 2 now (each day: 24 records, 24 - 12 + 1 = 13 forecasts)
    predict_day(config, 1, "sql_sink table='pred', key=['date']", drop_version=True)
    predict_day(config, 1, f"csv_sink path='{csv}'", drop_version=True)
    predict_day(config, 2, "sql_sink table='pred', key=['date']")
    predict_day(config, 2, f"csv_sink path='{csv}', mode='append'")
    predict_day(config, 2, f"parquet_sink path='{parquet}'")

    engine = sa.create_engine(postgres_url)
    with engine.connect() as conn:
        rows = conn.execute(sa.text("select date, model_version from pred order by date")).all()
    assert [v for _, v in rows] == [None] * 13 + ["tiny/1"] * 13, "earlier rows hold NULL; the new ones their version"
    file_rows = pd.read_csv(csv)
    assert list(file_rows.columns[-1:]) == ["model_version"]
    assert file_rows["model_version"].isna().sum() == 13 and (file_rows["model_version"][13:] == "tiny/1").all()
    assert file_rows["prediction"].notna().all(), "the old rows' values stay under their own columns"
    assert set(pd.read_parquet(parquet)["model_version"]) == {"tiny/1"}

    # a second version does not take the champion; asked for by name, the latest version predicts
    run(train, config)
    predict_day(config, 3, "sql_sink table='pred', key=['date']")
    predict_day(config, 4, "sql_sink table='pred', key=['date']", model="tiny")
    predict_day(config, 4, "sql_sink table='pred', key=['date']", model="tiny")  # a rerun replaces its rows
    with engine.connect() as conn:
        by_day = conn.execute(
            sa.text("select substr(date, 1, 10) as day, model_version, count(*) from pred group by 1, 2 order by 1")
        ).all()
    assert [tuple(r) for r in by_day] == [
        ("2017-06-01", None, 13),
        ("2017-06-02", "tiny/1", 13),
        ("2017-06-03", "tiny/1", 13),
        ("2017-06-04", "tiny/2", 13),
    ]
    engine.dispose()


def test_the_first_version_becomes_champion_with_who_and_why_and_later_ones_only_by_promote(tmp_path, models_dir):
    lineage = Lineage(dag_id="ett_train", run_id="manual__1", task_id="main")
    config = RunConfig.from_environment(model_paths=[models_dir], runs_dir=tmp_path / "runs", lineage=lineage)
    text = "source id='ett', limit=600 | minmax_scaler | train_lstm model='tiny:0.1', epoch=1{} | print"

    def train(run_id, extra=""):
        run(text.format(extra), dataclasses.replace(config, lineage=dataclasses.replace(lineage, run_id=run_id)))

    registry = ModelRegistry.from_config()
    train("manual__1")
    [first] = registry.alias_history("tiny", "champion")
    assert (first.version, first.previous_version) == (1, None)
    assert first.set_by == "ett_train/manual__1/main"
    assert first.reason == "first version of tiny: no champion yet"

    train("manual__2")  # a second version: the champion stays
    assert registry.resolve("tiny@champion").version == 1
    assert len(registry.alias_history("tiny", "champion")) == 1

    train("manual__3", ", promote='champion'")  # no hold-out to compare on: promote moves it
    moved, _ = registry.alias_history("tiny", "champion")
    assert (moved.version, moved.previous_version, moved.set_by) == (3, 1, "ett_train/manual__3/main")
    assert moved.reason == "promote=champion without a hold-out to compare on"

    train("manual__4", ", promote='staging'")  # another alias: the champion stays
    assert registry.resolve("tiny@champion").version == 3 and registry.resolve("tiny@staging").version == 4


def test_without_airflow_the_champion_is_set_by_amml_run(tmp_path, models_dir):
    run(
        "source id='ett', limit=600 | minmax_scaler | train_lstm model='tiny:0.1', epoch=1 | print",
        RunConfig.from_environment(model_paths=[models_dir], runs_dir=tmp_path / "runs"),
    )
    [change] = ModelRegistry.from_config().alias_history("tiny")
    assert change.alias == "champion" and change.set_by.startswith("amml run")


# ---- what a version records, and its plots ----------------------------------------------------------------


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk (bytes 16-24, big-endian), as the PNG spec lays it out."""
    data = Path(path).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_a_version_records_the_parameters_it_was_trained_with_and_same_size_plots(tmp_path, models_dir):
    config = RunConfig.from_environment(model_paths=[models_dir], runs_dir=tmp_path / "runs")
    text = (
        "source id='ett', limit=700 | minmax_scaler "
        "| train_lstm model='tiny:0.1', epoch=params.epochs, batch_size=32, holdout=100, promote='staging' | print"
    )
    program = compile_source(text, "models.amml", cache=ProgramCache())
    run_pipeline(program.pipelines[0], run_params={"epochs": 1}, config=config, mode="single")

    entry = ModelRegistry.from_config().resolve("tiny/1")
    import keras

    assert entry.params == {
        "model": "tiny:0.1",
        "epochs": 1,  # the run param, not the definition's 2
        "batch_size": 32,  # the component's, not the definition's 64
        "window": 12,
        "horizon": 1,
        "target": "OT",
        "features": "HUFL,OT",
        "loss": "mae",
        "optimizer": "adam",
        # the definition sets none: the rate the optimizer really used (Keras' Adam default)
        "learning_rate": float(f"{float(keras.optimizers.Adam().learning_rate):.7g}"),  # 0.001
        "validation_split": 0.1,
        "seed": 1,
        "shuffle": True,
        "predict": "level",
        "inputs": "level",
        "holdout": 100,
        "promote": "staging",
        "scaler": "minmax",
    }
    assert entry.metrics["epochs"] == 1 and entry.metrics["holdout_records"] == 100
    sizes = {name: png_size(Path(uri.removeprefix("file://"))) for name, uri in entry.plots.items()}
    assert sizes["loss"] == sizes["prediction"] == (900, 400), sizes


def test_the_prediction_series_undoes_the_scaling_on_a_hand_computed_case():
    from airflow_amml.components.plots import prediction_series
    from airflow_amml.models.spec import TrainingSpec

    training = TrainingSpec(target="OT", features=("OT",), window=2, time_column="date")
    dates = ["2017-06-01 00:00:00", "2017-06-01 01:00:00", "2017-06-01 02:00:00", "2017-06-01 03:00:00"]
    frame = pd.DataFrame({"date": dates, "OT": [0.0, 0.5, 1.0, 0.25]})
    # predicted[i] is made at record window-1+i = 1+i for record 2+i: two of the three have a label
    predicted = np.array([0.5, 0.75, 0.9])

    # min-max [low 10, high 30]: v * 20 + 10 → labels 1.0, 0.25 → 30, 15; forecasts 0.5, 0.75 → 20, 25
    minmax = prediction_series(frame, predicted, training, {"kind": "minmax", "columns": {"OT": [10.0, 30.0]}})
    assert minmax.label.tolist() == [30.0, 15.0] and minmax.prediction.tolist() == [20.0, 25.0]
    assert minmax.ylabel == "OT (original units)"
    assert minmax.time_column == "date"
    assert list(pd.to_datetime(minmax.x)) == [pd.Timestamp(dates[2]), pd.Timestamp(dates[3])]

    # z-score [mean 5, std 2]: v * 2 + 5 → labels 7, 5.5; forecasts 6, 6.5
    zscore = prediction_series(frame, predicted, training, {"kind": "zscore", "columns": {"OT": [5.0, 2.0]}})
    assert zscore.label.tolist() == [7.0, 5.5] and zscore.prediction.tolist() == [6.0, 6.5]

    # no statistics for the target (not scaled) and no time column: as they are, by record position
    plain = prediction_series(frame.drop(columns="date"), predicted, training, {"kind": "minmax", "columns": {}})
    assert plain.label.tolist() == [1.0, 0.25] and plain.prediction.tolist() == [0.5, 0.75]
    assert plain.ylabel == "OT" and plain.time_column is None and plain.x.tolist() == [0, 1]


@pytest.mark.parametrize("epochs", [1, 3, 20])
def test_the_loss_plot_shows_whole_epochs_only(epochs):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from airflow_amml.components.plots import draw_loss

    history = [{"epoch": e, "loss": 1.0 / e, "val_loss": 1.2 / e} for e in range(1, epochs + 1)]
    fig, ax = plt.subplots()
    try:
        draw_loss(ax, history, "tiny:0.1", "mae")
        fig.canvas.draw()
        low, high = ax.get_xlim()
        shown = [t for t in ax.get_xticks() if low <= t <= high]
        assert shown and all(float(t).is_integer() for t in shown), shown
        assert min(shown) >= 1 and max(shown) <= epochs
        if epochs == 1:
            assert shown == [1.0] and (low, high) == (0.5, 1.5), "one epoch: one tick, in the middle"
        assert ax.get_ylabel() == "loss (mae)"
    finally:
        plt.close(fig)


def test_a_fanned_out_training_registers_a_model_per_item_and_prediction_reads_the_items(tmp_path, models_dir):
    """`train_lstm model='tiny:0.1'` fanned out over `series` registers `tiny.<slug>` per item (tag series=item,
    its own @champion); `lstm`/the scalers with model='tiny@champion' then read the item's model."""
    from airflow_amml.registry.names import item_model_name

    lineage = Lineage(dag_id="fleet_train", run_id="manual__1", task_id="train")  # mapped tasks share it
    config = RunConfig.from_environment(model_paths=[models_dir], runs_dir=tmp_path / "runs", lineage=lineage)
    site, plain = ("series", "plant/site a"), ("series", "b")
    text = "source id='ett', start='{start}', limit=400 | minmax_scaler | train_lstm model='tiny:0.1', epoch=1 | print"
    for item, start in ((site, "2016-07-01"), (plain, "2017-01-01"), (site, "2016-07-01")):  # the last: a retry
        run(text.format(start=start), dataclasses.replace(config, item=item))
    registry = ModelRegistry.from_config(config)
    names = {item_model_name("tiny", value): value for _, value in (site, plain)}
    assert sorted(n for n in names if n != "tiny.b")[0].startswith("tiny.plant-site-a-"), "a slug, with a hash"
    assert {v.name for v in registry.list_versions()} == set(names)
    for name, value in names.items():
        [version] = registry.list_versions(name)
        assert version.tags == {"series": value} and version.definition == "tiny:0.1"
        assert registry.resolve(f"{name}@champion").version == 1, "each item's first version is its champion"
    assert registry.list_versions("tiny") == [], "no shared model: the items' stay apart"
    scalers = {n: registry.resolve(n).scaler["columns"]["OT"] for n in names}
    assert scalers[item_model_name("tiny", site[1])] != scalers["tiny.b"], "each trained on its own records"

    predict = (
        "source id='ett', start='2017-06-01', end='2017-06-02' | minmax_scaler model='tiny@champion' "
        "| lstm model='tiny@champion' | minmax_inverse model='tiny@champion' | csv_sink path='{out}'"
    )
    run(predict.format(out=tmp_path / "pred.csv"), dataclasses.replace(config, item=site, output_root=tmp_path))
    [written] = tmp_path.glob("pred.*.csv")  # a file per item (file_sinks)
    pred = pd.read_csv(written)
    assert set(pred["model_version"]) == {f"{item_model_name('tiny', site[1])}/1"} and set(pred["series"]) == {site[1]}
    with pytest.raises(PipelineError, match=r"no model named 'tiny\.c'") as missing:
        run(predict.format(out=tmp_path / "c.csv"), dataclasses.replace(config, item=("series", "c")))
    assert "fanned out over `series`" in missing.value.hint and "tiny.c@champion" in missing.value.hint


ENSEMBLE_MODEL = """
name: tiny_ensemble
version: "0.1"
model:
  layers:
    - {type: Dense, units: 1}
training:
  loss: mse
  epochs: 2
  batch_size: 64
  window: 12
  target: OT
  ensemble: {seeds: [1, 2]}
"""


def test_an_ensemble_registers_one_version_with_its_members_seeds_and_epochs(tmp_path, models_dir):
    (models_dir / "tiny_ensemble.yaml").write_text(ENSEMBLE_MODEL)
    config = RunConfig.from_environment(model_paths=[models_dir], runs_dir=tmp_path / "runs", output_root=tmp_path)
    epochs = tmp_path / "epochs.csv"
    run(
        f"source id='ett', limit=600 | minmax_scaler | train_lstm model='tiny_ensemble:0.1', holdout=48 "
        f"| csv_sink path='{epochs}'",
        config,
    )
    # the stream: each member's epochs, numbered as one model's
    streamed = pd.read_csv(epochs)
    assert list(zip(streamed["member"], streamed["epoch"])) == [(1, 1), (1, 2), (2, 1), (2, 2)]
    entry = ModelRegistry.from_config().resolve("tiny_ensemble")
    assert entry.version == 1
    assert entry.params["ensemble_seeds"] == "1,2" and "seed" not in entry.params
    assert entry.metrics["epochs"] == 2 and entry.metrics["holdout_records"] == 48
    assert entry.metrics["ensemble_members"] == 2
    # the version's loss is the mean model's, not the last member's
    assert entry.metrics["loss"] != pytest.approx(streamed["loss"].iloc[-1], rel=1e-3)
    assert np.isfinite(entry.metrics["holdout_mae"])
    model_path = Path(entry.artifact_uri.removeprefix("file://"))
    import keras

    model = keras.models.load_model(model_path, safe_mode=True, compile=False)
    assert [layer.name for layer in model.layers][1:] == [
        "tiny_ensemble_0_1_member_1",
        "tiny_ensemble_0_1_member_2",
        "mean_of_members",
    ]


def test_an_ensembles_loss_plot_and_summary_name_each_member():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from airflow_amml.components.plots import draw_loss
    from airflow_amml.models.keras_builder import epochs_run

    members = [{"epoch": e, "loss": 1.0 / e, "val_loss": 1.1 / e, "member": m} for m in (1, 2) for e in (1, 2, 3)]
    history = [*members, {"epoch": 3, "loss": 0.3, "val_loss": 0.35, "members": 2}]
    fig, ax = plt.subplots()
    try:
        draw_loss(ax, history, "tiny:0.1", "mse")
        labels = [line.get_label() for line in ax.get_lines()]
        assert labels == [
            "loss (member 1)", "val_loss (member 1)", "loss (member 2)", "val_loss (member 2)",
            "loss (mean)", "val_loss (mean)",
        ]  # fmt: skip
        assert list(ax.get_lines()[-1].get_xydata()[0]) == [3.0, 0.35]
    finally:
        plt.close(fig)
    assert epochs_run(history) == "2 members, 3 epochs each"
    stopped = [h for h in members if not (h["member"] == 2 and h["epoch"] == 3)]  # early stopping ended member 2
    assert epochs_run([*stopped, history[-1]]) == "2 members, 2–3 epochs"
    assert epochs_run(members[:1]) == "1 epoch"


def test_the_progress_note_names_the_member_training_now():
    from types import SimpleNamespace

    from airflow_amml.components.lstm import TrainLstm
    from airflow_amml.models import parse_model_spec

    spec = parse_model_spec(ENSEMBLE_MODEL)
    component = SimpleNamespace(spec=spec, epochs_total=2)
    progress = [TrainLstm._progress(component, {"epoch": e, "member": m}) for m in (1, 2) for e in (1, 2)]
    # after member 1's last epoch, member 2's first is running; after the last member's, nothing more
    assert progress == [
        "member 1/2, epoch 2/2", "member 2/2, epoch 1/2", "member 2/2, epoch 2/2", "member 2/2, epoch 2/2",
    ]  # fmt: skip
    single = SimpleNamespace(spec=parse_model_spec(SMALL_MODEL), epochs_total=3)
    assert TrainLstm._progress(single, {"epoch": 1}) == "epoch 2/3"
