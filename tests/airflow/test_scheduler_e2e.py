"""End to end with a real Airflow (the session's deployment, tests/services/airflow_deployment.py: api-server,
scheduler, dag-processor and two Celery workers, its metadata in a real PostgreSQL database), used as a person
would through the REST API: the DAGs appear, a broken .amml file shows up as an error DAG while the others
stay, a backfill runs the streaming executor inside real task processes on the workers, and the result table
holds exactly the backfilled intervals' rows; the registered model predicts every hour of a backfill; a task
marked failed takes its component processes with it. Bounded in time."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import requests

from compiler.dag_block import error_dag_id

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]  # the first test also starts Airflow

HOT_DAYS = """
dag hot_days {
    schedule = "@daily"
    start_date = "2016-07-01"
    catchup = false
    params = {threshold: 30}
}
source id="ett" | filter cond=OT > params.threshold | sql_sink table="hot_hours", key=["date"]
"""

ENDLESS = """
dag endless { schedule = null; start_date = "2024-01-01" }
normalsource col='v', count=0, rate=1000 | filter cond=v > 0 | print limit=0
"""

BROKEN = 'source id="ett" | fitler cond=OT > 1 | print\n'
BROKEN_ID = error_dag_id("broken.amml")
EXPECTED = {BROKEN_ID, "endless", "ett_predict", "ett_train", "ett_watch", "hot_days"}


def hours(values) -> list[str]:
    """Timestamps as text, whether the sink database kept them as text or as timestamps."""
    return list(pd.to_datetime(pd.Series(list(values))).dt.strftime("%Y-%m-%d %H:%M:%S"))


@pytest.fixture(scope="module")
def airflow(airflow_deployment):
    """The deployment, with this module's files deployed (new files in a running Airflow's dags folder), and
    the ett_train runs started."""
    airflow_deployment.add_dag_files({"hot_days.amml": HOT_DAYS, "endless.amml": ENDLESS, "broken.amml": BROKEN})
    airflow_deployment.start_training()  # they train while the first tests run (no waiting: train_ett waits)
    airflow_deployment.wait_for_dags(EXPECTED)
    return airflow_deployment


def backfill(airflow, dag_id: str, first: str, last: str, max_active_runs: int) -> None:
    airflow.call("PATCH", f"/dags/{dag_id}", {"is_paused": False})
    airflow.call(
        "POST",
        "/backfills",
        {
            "dag_id": dag_id,
            "from_date": f"{first}T00:00:00Z",
            "to_date": f"{last}T00:00:00Z",
            "max_active_runs": max_active_runs,
            "reprocess_behavior": "none",
            "run_backwards": False,
            "dag_run_conf": {},
        },
    )


def test_the_dags_appear_and_a_broken_file_is_an_error_dag(airflow):
    assert EXPECTED <= airflow.dag_ids()
    assert airflow.api("/importErrors")["total_entries"] == 0, "a broken .amml file must not hide the other DAGs"
    # the checkout is on PYTHONPATH too: one distribution of airflow-amml, so the plugin loads once, cleanly
    assert airflow.api("/plugins/importErrors") == {"import_errors": [], "total_entries": 0}
    assert [p["name"] for p in airflow.api("/plugins")["plugins"]] == ["amml"]
    broken = airflow.api(f"/dags/{BROKEN_ID}")
    assert "broken.amml:1:19: name error: unknown component `fitler`" in broken["description"]
    assert broken["description"].startswith("AMML ERROR: ") and "amml-error" in {t["name"] for t in broken["tags"]}
    # the error DAG's one run fails, so Home counts the broken file among the failed DAGs
    runs = airflow.wait_runs(BROKEN_ID, 1, 300)
    assert [r["state"] for r in runs] == ["failed"], runs
    stats = requests.get(f"{airflow.url}/ui/dashboard/dag_stats", headers=airflow.headers(), timeout=10).json()
    assert stats["failed_dag_count"] >= 1, stats


def test_a_backfill_reads_exactly_its_intervals(airflow, ett_path):
    backfill(airflow, "hot_days", "2016-07-02", "2016-07-04", max_active_runs=2)
    runs = airflow.wait_runs("hot_days", 3, 600)
    assert {r["state"] for r in runs} == {"success"}, f"{runs}\n{airflow.task_logs()}"
    # unpausing also schedules the latest interval (catchup is off); the backfill made the three 2016 runs
    backfilled = [r for r in runs if r["run_type"] == "backfill"]
    intervals = sorted((r["data_interval_start"][:10], r["data_interval_end"][:10]) for r in backfilled)
    assert intervals == [("2016-07-02", "2016-07-03"), ("2016-07-03", "2016-07-04"), ("2016-07-04", "2016-07-05")]
    rows = hours(r[0] for r in airflow.sink_rows("select date from hot_hours order by date"))
    ett = pd.read_csv(ett_path)
    first, last = intervals[0][0], intervals[-1][1]
    expected = ett[(ett["date"] >= first) & (ett["date"] < last) & (ett["OT"] > 30)]["date"].tolist()
    latest = [r for r in runs if r["run_type"] != "backfill"]  # the scheduled run reads today: no ETTh1 rows
    assert rows == expected, f"each run read exactly its interval; no duplicates, no gaps (also ran: {latest})"


def test_the_trained_model_predicts_every_hour_of_a_backfill(airflow):
    """The paper's workflows: train (manual runs with a param; shared with the browser tests, which need two
    versions), the champion (whichever version it is: the browser tests promote), then backfill the
    predictions: one per hour, no duplicates, no gaps."""
    train_runs = airflow.train_ett()
    shown = json.loads(airflow.amml("model", "show", "ett@champion"))
    assert shown["lineage"]["dag_id"] == "ett_train" and shown["metrics"]["epochs"] in (1, 2), shown
    assert shown["lineage"]["run_id"] in {r["dag_run_id"] for r in train_runs}
    # the plugin's models page, on the real api-server: only for a caller with a token
    assert requests.get(f"{airflow.url}/amml/models", timeout=30).status_code == 401
    champion = requests.get(f"{airflow.url}/amml/models/ett@champion", headers=airflow.headers(), timeout=30)
    assert champion.status_code == 200 and champion.json()["version"] == shown["version"], champion.text

    # four daily runs at once: one per task slot of the two workers (a week took two rounds, ~20 s more)
    backfill(airflow, "ett_predict", "2017-10-28", "2017-10-31", max_active_runs=4)
    runs = airflow.wait_runs("ett_predict", 4, 600)
    backfilled = [r for r in runs if r["run_type"] == "backfill"]
    assert len(backfilled) == 4 and {r["state"] for r in runs} == {"success"}, f"{runs}\n{airflow.task_logs()}"
    predicted = hours(r[0] for r in airflow.sink_rows("select date from ett_predictions order by date"))
    days = [h for h in predicted if "2017-10-28" <= h < "2017-11-01"]
    assert len(set(days)) == len(days), "no duplicates"
    expected = pd.date_range("2017-10-28", "2017-10-31 23:00", freq="h").strftime("%Y-%m-%d %H:%M:%S")
    assert days == list(expected), "one prediction per hour of the four days, no gaps"
    hosts = {ti["hostname"] for r in backfilled for ti in airflow.task_instances("ett_predict", r["dag_run_id"])}
    assert hosts <= {airflow.worker_hostname(w) for w in ("worker1", "worker2")}, hosts


def test_a_task_marked_failed_takes_its_component_processes_with_it(airflow):
    """Airflow kills a running task (a user marks it failed): every component process goes with it. On Celery
    they are the grandchildren of a worker: found by the workers' sessions."""
    assert airflow.amml_processes() == []
    run_id = airflow.trigger("endless")
    airflow.wait_for("the endless pipeline's processes", lambda: len(airflow.amml_processes()) >= 3, 300)
    airflow.call("PATCH", f"/dags/endless/dagRuns/{run_id}/taskInstances/main", {"new_state": "failed"})
    airflow.wait_for("every component process to be gone", lambda: airflow.amml_processes() == [], 120)
