"""The shipped `ett_watch` DAG's `forecast` task with dag.test(): a registered model's forecast residuals →
alarm policy → one alert per incident, with the raw readings around it saved as its snapshot.

The model is the shipped `ett:0.1` definition trained for 5 epochs on ETTh1's first 1,500 hours (2016-07-01 to
2016-09-02), registered and aliased `ett@champion` (the DAG's default). The incident: a copy of ETTh1 in which
OT at 2016-09-05 10:00 reads 40 °C too high (a sensor glitch), bound as catalog source `ett_spiky`; the watch
runs for the day 2016-09-05 on that copy (one alert), on the unmodified ETTh1 (none), and for the next day on
the copy, whose warmup holds the glitch (none: the warmup hours are not scored again).
"""

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from tests.airflow.airflow_home import airflow_home
from tests.airflow.test_dags import run_python

ROOT = Path(__file__).resolve().parents[2]
GLITCH = "2016-09-05 10:00:00"
GLITCH_DEGREES = 40.0
TRAIN_ROWS, EPOCHS = 1500, 5
BEFORE, AFTER = 24, 6  # the alert's `snapshot=` and `after=` in dags/ett_watch.amml
ALARM_WINDOW = 6  # its alarm's `window=`: the alarm is raised at most this many hours after the first flag


@pytest.fixture(scope="module")
def watch_env(tmp_path_factory, ett_path):
    home = tmp_path_factory.mktemp("watch")
    dags = home / "dags"
    dags.mkdir()
    for name in ("amml_dags.py", "ett_watch.amml"):
        shutil.copy(ROOT / "dags" / name, dags / name)
    shutil.copytree(ROOT / "dags" / "models", dags / "models")
    ett = pd.read_csv(ett_path)
    spiky = ett.copy()
    spiky.loc[spiky["date"] == GLITCH, "OT"] += GLITCH_DEGREES
    spiky.to_csv(home / "ett_spiky.csv", index=False)
    (home / "catalog.yaml").write_text(f"ett_spiky:\n  path: {home / 'ett_spiky.csv'}\n  time_column: date\n")
    env = airflow_home(home, dags, AMML_CATALOG=str(home / "catalog.yaml"), AMML_ETT_PATH=str(ett_path))
    # the champion's training: a pipeline file beside the dags folder (the loader must not see it), models/
    # beside it; WATCH runs it
    shutil.copytree(ROOT / "dags" / "models", home / "models")
    (home / "train.amml").write_text(
        f"source id='ett', limit={TRAIN_ROWS} | minmax_scaler | train_lstm model='ett:0.1', epoch={EPOCHS} "
        "| print limit=0\n"
    )
    return env, dags, spiky, home / "train.amml"


# One interpreter trains the champion with the command line's own entry point (`amml run`, then `amml model
# alias`: the same code as the `amml` command, without an interpreter and a TensorFlow import for each) and
# then runs the watch: a fresh interpreter's first dag.test() costs ~8 s before any task runs.
WATCH = """
    import json, pendulum, sys
    from airflow_amml import cli
    for step in (["run", "{train}"], ["model", "alias", "champion", "ett/1"]):
        assert cli.main(step) == 0, step
    # the training ran in the executor's child processes: this one, which forks the watch's, has no TensorFlow
    assert "tensorflow" not in sys.modules
    from airflow.dag_processing.dagbag import DagBag
    bag = DagBag(dag_folder="{dags}", bundle_path="{dags}", bundle_name="dags-folder")
    dag = bag.dags["ett_watch"]
    runs = {{}}
    for name, month, day, source in {runs}:  # a daily run's logical date is its interval's end
        run = dag.test(logical_date=pendulum.datetime(2016, month, day, tz="UTC"), run_conf={{"source": source}})
        runs[name] = [str(run.state), run.run_id]
    print(json.dumps(runs))
"""
RUNS = [
    ("clean", 9, 6, "ett"),  # 2016-09-05, unmodified
    ("glitch", 9, 6, "ett_spiky"),  # 2016-09-05 with the glitch
    ("next day", 9, 7, "ett_spiky"),  # 2016-09-06: the glitch is in the warmup
    ("hot day", 7, 24, "ett"),  # 2016-07-23: hot hours under load, for the hot-oil limit
]


@pytest.fixture(scope="module")
def watched(watch_env):
    """The four runs of ett_watch, and the alerts and snapshot rows they saved."""
    env, dags, spiky, train = watch_env
    runs = run_python(env, WATCH.format(dags=dags, runs=RUNS, train=train))
    engine = sa.create_engine(f"sqlite:///{env['AMML_HOME']}/amml.db")
    with engine.connect() as conn:
        alerts = conn.execute(sa.text("select * from amml_alerts order by id")).mappings().all()
        saved = conn.execute(sa.text("select * from amml_snapshots order by alert_id, row_position")).mappings().all()
    return runs, alerts, saved, spiky


def test_every_run_succeeds(watched):
    runs = watched[0]
    assert {name: state for name, (state, _) in runs.items()} == dict.fromkeys(runs, "success")


def test_one_alert_per_incident_with_the_readings_around_it(watched):
    runs, alerts, saved, spiky = watched
    september = [a for a in alerts if a["run_id"] != runs["hot day"][1]]
    # exactly one alert in September: the glitch day's, from the forecast task (none on the clean day, none on
    # the day after, none from the hot-oil limit: OT stays below 40 °C these days)
    assert len(september) == 1, [dict(a) for a in september]
    alert = september[0]
    assert (alert["dag_id"], alert["run_id"], alert["task_id"]) == ("ett_watch", runs["glitch"][1], "forecast")
    raised = pd.Timestamp(json.loads(alert["record"])["date"])
    glitch = pd.Timestamp(GLITCH)
    assert glitch <= raised < glitch + pd.Timedelta(hours=ALARM_WINDOW)
    stored = pd.Timestamp(alert["record_time"])  # the reading's own time, from `date` (taken as UTC)
    assert (stored.tz_convert(None) if stored.tz else stored) == raised
    assert set(json.loads(alert["trigger_values"])) == {"OT", "prediction"}
    assert 0.5 <= alert["score"] <= 1 and alert["snapshot_status"] == "complete"

    # its snapshot, linked by alert_id: the readings (in °C, as in the source) from the first record that
    # reaches the alert (the warmup's last hour, 2016-09-04 23:00: the model's first forecast is made there) or
    # BEFORE hours before the alarm, to AFTER hours after it, each record once
    rows = [row for row in saved if row["alert_id"] == alert["id"]]
    assert len({row["snapshot_id"] for row in rows}) == 1
    assert all(row["alert_position"] == alert["position"] for row in rows)
    records = [json.loads(row["record"]) for row in rows]
    dates = pd.to_datetime(spiky["date"])
    first = max(raised - pd.Timedelta(hours=BEFORE - 1), pd.Timestamp("2016-09-04 23:00:00"))
    expected = spiky[(dates >= first) & (dates <= raised + pd.Timedelta(hours=AFTER))]
    assert [pd.Timestamp(r["date"]) for r in records] == list(pd.to_datetime(expected["date"]))
    assert [r["OT"] for r in records] == pytest.approx(list(expected["OT"]), abs=1e-6)
    assert max(r["OT"] for r in records) == pytest.approx(spiky.loc[spiky["date"] == GLITCH, "OT"].item(), abs=1e-6)


def test_the_hot_oil_limit_saves_the_hours_before_its_alert(watched, ett_path):
    runs, alerts, saved, _ = watched
    hot = [a for a in alerts if a["run_id"] == runs["hot day"][1] and a["task_id"] == "hot_oil"]
    ett = pd.read_csv(ett_path)
    day = ett[(ett["date"] >= "2016-07-23") & (ett["date"] < "2016-07-24")]
    over = day[(day["OT"] > 40) & (day["HUFL"] > 10)]
    assert len(over) > 1, "the chosen day has several hot hours under load"
    # `cooldown=24`: one alert for the day, at its first hot hour; the snapshot holds the day up to it
    assert [json.loads(a["record"])["date"] for a in hot] == [over["date"].iloc[0]]
    rows = [json.loads(row["record"]) for row in saved if row["alert_id"] == hot[0]["id"]]
    assert [r["date"] for r in rows] == list(day["date"][day["date"] <= over["date"].iloc[0]])
