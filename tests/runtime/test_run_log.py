"""What a run logs: one line per epoch, the progress of every component at work (a training too), one
summary at the end, how many rows each sink wrote and where, and nothing TensorFlow prints on a CPU-only
machine (in an Airflow task every line on stderr becomes an ERROR line). Real Keras on small data."""

import logging
import re
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from airflow_amml.run_config import RunConfig
from airflow_amml.runtime.executor import RunResult, run_pipeline
from airflow_amml.runtime.plan import make_plan
from airflow_amml.runtime.stage_driver import Counters, StageDriver
from airflow_amml.sdk import AbstractProgress
from compiler import ProgramCache, compile_source
from tests.models.test_model_components import SMALL_MODEL

ROOT = Path(__file__).resolve().parents[2]
# `amml run`'s log format (cli.py: "%(asctime)s %(levelname)s %(message)s"); a summary's table rows follow
# its first line, indented
LOG_RECORD = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) ")
EPOCH_LINE = re.compile(r"tiny:0\.1 epoch (\d+)/(\d+) - [\d.]+s - loss: (\S+) - val_loss: (\S+)")


def compile_one(text):
    return compile_source(text, "log.amml", cache=ProgramCache()).pipelines[0]


@pytest.fixture
def models_dir(tmp_path):
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "tiny.yaml").write_text(SMALL_MODEL)
    return folder


# ---- the summary -----------------------------------------------------------------------------------------


def test_the_summary_is_one_table_of_records_busy_time_and_rate():
    stages = make_plan(compile_one("normalsource col='v', count=10 | train_lstm model='m:1' | csv_sink path='x.csv'"))
    source, train, sink = stages
    result = RunResult(
        "main",
        {
            source.id: Counters(records_out=17_420, batches_out=1, busy_seconds=0.5),
            train.id: Counters(17_420, 3, 1, 3, 87.1, note="3 epochs, registered ett/3 @champion"),
            sink.id: Counters(records_in=3, batches_in=3, busy_seconds=0.0),
        },
        stages,
        90.0,
    )
    # rates: an ingress's records out per busy second (17,420 / 0.5 = 34,840), the others' records in
    # (17,420 / 87.1 = 200); no busy time, no rate
    assert result.summary().splitlines() == [
        "pipeline main finished in 90.00s",
        "  component     records in  records out  batches    busy      rate",
        "  normalsource           0       17,420      0/1   0.50s  34,840/s",
        "  train_lstm        17,420            3      1/3  87.10s     200/s  3 epochs, registered ett/3 @champion",
        "  csv_sink               3            0      3/0   0.00s         -",
    ]


@pytest.mark.parametrize("mode", ["single", "multiprocess"])
def test_a_run_logs_exactly_one_summary(mode, tmp_path, caplog):
    pipeline = compile_one(f"normalsource col='v', count=1000 | filter cond=v > 0 | csv_sink path='{tmp_path}/o.csv'")
    with caplog.at_level(logging.INFO):
        result = run_pipeline(pipeline, mode=mode)
    summaries = [r.getMessage() for r in caplog.records if "finished in" in r.getMessage()]
    assert summaries == [result.summary()], summaries
    assert [r.name for r in caplog.records if "finished in" in r.getMessage()] == ["airflow_amml.runtime.executor"]


def test_the_summary_of_a_fanned_out_run_names_its_item(caplog):
    pipeline = compile_one("normalsource col='v', count=10 | print limit=0")
    config = RunConfig(item=("series", "nab/realKnownCause/nyc_taxi"))
    with caplog.at_level(logging.INFO):
        result = run_pipeline(pipeline, mode="single", config=config)
    assert result.summary().splitlines()[0].startswith("pipeline main (series=nab/realKnownCause/nyc_taxi) finished in")
    assert run_pipeline(pipeline, mode="single").summary().startswith("pipeline main finished in")


# ---- busy time and progress notes --------------------------------------------------------------------------


class SlowFinish(AbstractProgress):
    """Holds every record back, then works 0.2 s before each of two frames it releases in finish()."""

    def open(self):
        self.held = []
        self.stage = "holding"

    def process(self, batch):
        self.held.append(batch)

    def finish(self):
        for part in (self.held[:1], self.held[1:]):
            self.stage = "working"
            time.sleep(0.2)
            yield None  # a heartbeat: nothing yet
            yield pd.concat(part) if part else None

    def progress_note(self):
        return self.stage


def test_the_time_inside_finish_counts_as_busy_and_the_outlet_does_not():
    """The bug: `busy 0.00s` for a component whose work is in finish() (train_lstm trains there). The
    component sleeps 2 × 0.2 s inside its generator: at least 0.4 s busy; the outlet's 0.3 s per frame is the
    next component's time, not its own."""
    stage = make_plan(compile_one("normalsource col='v', count=3 | filter cond=v > 0 | print"))[1]
    received, beats = [], []
    component = SlowFinish(stage.spec, None, _context())
    component.open()
    driver = StageDriver(stage, component, lambda f: (received.append(f), time.sleep(0.3)))
    driver.feed(pd.DataFrame({"v": [1.0, 2.0]}))
    driver.feed(pd.DataFrame({"v": [3.0]}))
    driver.end(between_frames=lambda: beats.append(driver.report().note))
    assert [list(f["v"]) for f in received] == [[1.0, 2.0], [3.0]]
    assert beats == ["working"] * 4, "called after every frame, heartbeats (None) included"
    counters = driver.counters
    assert counters.busy_seconds >= 0.4
    assert counters.busy_seconds < 0.4 + 2 * 0.3, "the outlet's time is not this component's"
    assert (counters.records_out, counters.batches_out) == (3, 2)


def _context():
    from airflow_amml.runtime.component import ComponentContext

    return ComponentContext(config=RunConfig.from_environment())


def test_train_lstm_is_busy_for_its_training_and_notes_its_epochs(tmp_path, models_dir, monkeypatch):
    """Real Keras: the training's time (measured around keras_builder.train) is inside train_lstm's busy
    time; its note says how many epochs it ran and the version it registered."""
    from airflow_amml.models import keras_builder

    trainings = []
    train = keras_builder.train

    def timed_train(*args, **kwargs):
        start = time.monotonic()
        try:
            return train(*args, **kwargs)
        finally:
            trainings.append(time.monotonic() - start)

    monkeypatch.setattr(keras_builder, "train", timed_train)
    pipeline = compile_one("source id='ett', limit=600 | minmax_scaler | train_lstm model='tiny:0.1', epoch=2 | print")
    result = run_pipeline(pipeline, config=RunConfig.from_environment(model_paths=[models_dir]), mode="single")
    [stage] = [s for s in result.stages if s.name == "train_lstm"]
    counters = result.counters[stage.id]
    assert len(trainings) == 1 and counters.busy_seconds >= trainings[0] > 0
    assert counters.note == "2 epochs, registered tiny/1 @champion"
    assert (counters.records_in, counters.records_out) == (600, 2)


PROGRESS_SCRIPT = """
import logging, sys
from airflow_amml.components import lstm
from airflow_amml.run_config import RunConfig
from airflow_amml.runtime import executor
from compiler import ProgramCache, compile_source

executor.PROGRESS_EVERY, lstm.HEARTBEAT_SECONDS = 0.2, 0.05  # the children are forked: they see these
logging.basicConfig(level=logging.INFO, format="%(name)s %(message)s", stream=sys.stdout)
text = "source id='ett', limit=800 | minmax_scaler | train_lstm model='tiny:0.1', epoch=3 | print"
pipeline = compile_source(text, "p.amml", cache=ProgramCache()).pipelines[0]
executor.run_pipeline(pipeline, config=RunConfig.from_environment(model_paths=[sys.argv[1]]), mode="multiprocess")
"""


def test_the_progress_lines_name_the_epoch_a_training_is_at(models_dir):
    """Multiprocess, as in Airflow: train_lstm's child reports while it trains (before, it fell silent in
    finish() and the stall watch named it). A fresh interpreter: TensorFlow must not be loaded in a process
    that forks (this test session has loaded it)."""
    result = subprocess.run(
        [sys.executable, "-c", PROGRESS_SCRIPT, str(models_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    log = result.stdout.splitlines()
    progress = [line for line in log if line.startswith("airflow_amml.runtime.executor progress  train_lstm")]
    epochs = {int(m.group(1)) for line in progress if (m := re.search(r", epoch (\d)/3$", line))}
    assert epochs and epochs <= {1, 2, 3}, log
    assert all(re.search(r"progress  train_lstm: in 800, out \d, busy [\d.]+s", line) for line in progress)
    assert not [line for line in log if "no progress" in line], log
    assert not [line for line in log if "in 0, out 0, busy 0.0s" in line], "a component that did nothing yet is quiet"


# ---- sinks say what they wrote ----------------------------------------------------------------------------


def test_every_sink_logs_how_many_rows_it_wrote_and_where(tmp_path, caplog):
    db = tmp_path / "out.db"
    config = RunConfig.from_environment(db_url=f"sqlite:///{db}", output_root=tmp_path)
    source = "normalsource col='v', count=1000, seed=7 | filter cond=v > 0"
    sinks = [
        f"csv_sink path='{tmp_path}/o.csv'",
        f"csv_sink path='{tmp_path}/o.csv', mode='append'",
        f"parquet_sink path='{tmp_path}/o.parquet'",
        "sql_sink table='positive'",
        "print limit=1",
    ]
    with caplog.at_level(logging.INFO, logger="airflow_amml.components"):
        for sink in sinks:
            run_pipeline(compile_one(f"{source} | {sink}"), config=config, mode="single")
    rows = len(pd.read_parquet(tmp_path / "o.parquet"))
    assert 0 < rows < 1000 and len(pd.read_csv(tmp_path / "o.csv")) == 2 * rows
    lines = [r.getMessage() for r in caplog.records if ": wrote " in r.getMessage()]
    assert lines == [
        f"csv_sink: wrote {rows:,} rows to {tmp_path / 'o.csv'}",
        f"csv_sink: wrote {rows:,} rows to {tmp_path / 'o.csv'} (appended)",
        f"parquet_sink: wrote {rows:,} rows to {tmp_path / 'o.parquet'}",
        f"sql_sink: wrote {rows:,} rows to table positive (the default database, sqlite:///{db})",
        "print: wrote 1 row to standard output",
    ]


# ---- a real `amml run`, as a user (or an Airflow task) sees it ------------------------------------------------


TRAIN = "source id='ett', limit=800 | minmax_scaler | train_lstm model='tiny:0.1', epoch=2 | print\n"
PREDICT = (
    "source id='ett', start='2017-06-01', end='2017-06-02' | minmax_scaler model='tiny@champion' "
    "| lstm model='tiny@champion' | minmax_inverse model='tiny@champion' | sql_sink table='pred', key=['date']\n"
)


def amml_run(workdir, name, text):
    (workdir / name).write_text(text)
    result = subprocess.run(
        [sys.executable, "-m", "airflow_amml.cli", "run", name],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stderr.splitlines()


@pytest.fixture(scope="module")
def train_then_predict_log(tmp_path_factory):
    """`amml run` of a training, then of a prediction with the champion it made, each in a fresh interpreter
    (TensorFlow loads in the component's process as in a task): their stderr lines."""
    workdir = tmp_path_factory.mktemp("run-log")
    (workdir / "models").mkdir()
    (workdir / "models" / "tiny.yaml").write_text(SMALL_MODEL)
    with pytest.MonkeyPatch.context() as env:  # (a module's fixture runs before the autouse `amml_home`)
        env.setenv("AMML_HOME", str(workdir / "home"))
        env.setenv("AMML_CACHE", str(workdir / "cache"))
        env.setenv("AMML_ETT_PATH", str(ROOT / "airflow_amml" / "data" / "ett" / "ETTh1.csv"))
        env.setenv("AMML_OUTPUT_ROOT", str(workdir))
        env.setenv("AMML_INPUT_ROOT", str(workdir))
        for variable in ("AMML_DB_URL", "AMML_DATABASES", "AIRFLOW__CORE__DAGS_FOLDER"):
            env.delenv(variable, raising=False)
        for variable in ("TF_CPP_MIN_LOG_LEVEL", "TF_ENABLED_DEVICE_TYPES"):
            env.delenv(variable, raising=False)  # as on a fresh machine
        return amml_run(workdir, "train.amml", TRAIN), amml_run(workdir, "predict.amml", PREDICT)


def test_stderr_holds_log_records_only_no_tensorflow_noise(train_then_predict_log):
    """A task's stderr lines are ERROR lines in Airflow: everything on it must be a log record (or a line
    of a summary's table), and none at ERROR."""
    for lines in train_then_predict_log:
        stray = [line for line in lines if not LOG_RECORD.match(line) and not line.startswith("  ")]
        assert stray == [], stray
        assert not [line for line in lines if re.search(r"cuInit|cuda|oneDNN|absl|cpu_feature_guard", line)]
        assert not [line for line in lines if LOG_RECORD.match(line) and LOG_RECORD.match(line).group(1) != "INFO"]


def test_a_training_logs_one_line_per_epoch_with_equal_precision_and_one_summary(train_then_predict_log):
    train, _ = train_then_predict_log
    epochs = [m for line in train if (m := EPOCH_LINE.search(line))]
    assert [(m.group(1), m.group(2)) for m in epochs] == [("1", "2"), ("2", "2")], train
    other = [line for line in train if re.search(r"epoch \d", line) and not EPOCH_LINE.search(line)]
    assert [line for line in other if " INFO progress  " not in line] == [], "one line per epoch"
    for m in epochs:
        loss, val_loss = m.group(3), m.group(4)
        assert len(loss.split(".")[1]) == len(val_loss.split(".")[1]) == 4, (loss, val_loss)
    assert sum("finished in" in line for line in train) == 1
    summary = train[next(i for i, line in enumerate(train) if "finished in" in line) :]
    [row] = [line for line in summary if line.strip().startswith("train_lstm")]
    assert float(re.search(r"  ([\d.]+)s  ", row).group(1)) > 0 and "2 epochs, registered tiny/1 @champion" in row


def test_a_prediction_logs_its_model_and_what_the_sink_wrote(train_then_predict_log):
    _, predict = train_then_predict_log
    assert any("lstm: loaded tiny/1 (tiny:0.1) for tiny@champion" in line for line in predict), predict
    # 2017-06-01 has 24 hours; the window of 12 leaves 24 - 12 + 1 forecasts
    assert any(
        re.search(r"sql_sink: wrote 13 rows to table pred \(the default database, sqlite:///", line) for line in predict
    ), predict
    assert sum("finished in" in line for line in predict) == 1
