"""End to end with a real Airflow (`airflow standalone`: api-server, scheduler, dag-processor, triggerer,
LocalExecutor, its metadata in a real PostgreSQL database), used as a person would through the REST API:
the DAGs appear, a broken .amml file shows up as an error DAG while the others stay, a backfill runs the
streaming executor inside real task processes, and the result table holds exactly the backfilled
intervals' rows. Bounded in time; the whole process group is stopped at the end."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest
import requests
import sqlalchemy as sa

from compiler.dag_block import error_dag_id

ROOT = Path(__file__).resolve().parents[2]
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


def amml_processes(airflow_pid=None):
    """Component processes (the executor names them `amml:<component>`) — of this test's Airflow only, when
    ``airflow_pid`` (its `airflow standalone`, started in a session of its own) is given: other pipelines may
    be running on the machine meanwhile. (Not by environment: setproctitle reuses that memory.)"""
    found = []
    for p in psutil.process_iter(["name"]):
        if not (p.info["name"] or "").startswith("amml:"):
            continue
        try:
            if airflow_pid is None or os.getsid(p.pid) == airflow_pid or airflow_pid in {a.pid for a in p.parents()}:
                found.append(p)
        except (psutil.NoSuchProcess, ProcessLookupError):  # gone meanwhile: not left over
            continue
    return found


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what, check, timeout, log):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            result = check()
        except (requests.RequestException, OSError, ValueError, KeyError):
            result = None
        if result:
            return result
        time.sleep(2)
    tail = log.read_text()[-4000:] if log.exists() else ""
    raise AssertionError(f"timed out waiting for {what}\n--- airflow standalone log (tail) ---\n{tail}")


@pytest.fixture
def airflow_standalone(tmp_path, ett_path, postgres_url):
    home = tmp_path / "airflow"
    dags = home / "dags"
    dags.mkdir(parents=True)
    shutil.copy(ROOT / "dags" / "amml_dags.py", dags)
    shutil.copy(ROOT / "dags" / "ett_watch.amml", dags)
    shutil.copy(ROOT / "dags" / "ett_train.amml", dags)
    shutil.copy(ROOT / "dags" / "ett_predict.amml", dags)
    shutil.copytree(ROOT / "dags" / "models", dags / "models")
    (dags / "hot_days.amml").write_text(HOT_DAYS)
    (dags / "endless.amml").write_text(ENDLESS)
    (dags / "broken.amml").write_text('source id="ett" | fitler cond=OT > 1 | print\n')
    port = free_port()
    bin_dir = str(Path(sys.executable).parent)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",  # standalone starts its components as `airflow ...`
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        # PostgreSQL, as deployed (docker-compose.yaml): on SQLite, creating a backfill while the scheduler
        # loops can crash the scheduler (StaleDataError on dag_run), and standalone does not restart it
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": postgres_url,
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://localhost:{port}/execution/",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "5",
        "AMML_HOME": str(home / "amml"),
        "AMML_ETT_PATH": str(ett_path),
        "PYTHONPATH": str(ROOT),
    }
    log = home / "standalone.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [f"{bin_dir}/airflow", "standalone"], env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield {"url": f"http://localhost:{port}", "home": home, "log": log, "env": env, "pid": proc.pid}
    finally:
        tree = [proc.pid] + [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        _, alive = psutil.wait_procs([psutil.Process(p) for p in tree if psutil.pid_exists(p)], timeout=20)
        for p in alive:
            p.kill()


@pytest.mark.timeout(1800)
def test_real_scheduler_runs_a_backfill_and_shows_a_broken_file(airflow_standalone, ett_path):
    af = airflow_standalone
    url, home, log = af["url"], af["home"], af["log"]
    passwords = home / "simple_auth_manager_passwords.json.generated"

    def token():
        password = json.loads(passwords.read_text())["admin"]
        response = requests.post(f"{url}/auth/token", json={"username": "admin", "password": password}, timeout=10)
        return response.json()["access_token"]

    headers = {"Authorization": f"Bearer {wait_for('the api-server', token, 300, log)}"}

    def get(path):
        response = requests.get(f"{url}/api/v2{path}", headers=headers, timeout=10)
        response.raise_for_status()
        return response.json()

    broken_id = error_dag_id("broken.amml")
    expected = {broken_id, "endless", "ett_predict", "ett_train", "ett_watch", "hot_days"}
    dag_ids = wait_for(
        "the AMML DAGs", lambda: (ids := {d["dag_id"] for d in get("/dags")["dags"]}) >= expected and ids, 300, log
    )
    assert dag_ids == expected
    assert get("/importErrors")["total_entries"] == 0, "a broken .amml file must not hide the other DAGs"
    # the checkout is on PYTHONPATH too: one distribution of airflow-amml, so the plugin loads once, cleanly
    assert get("/plugins/importErrors") == {"import_errors": [], "total_entries": 0}
    assert [p["name"] for p in get("/plugins")["plugins"]] == ["amml"]
    broken = get(f"/dags/{broken_id}")
    assert "broken.amml:1:19: name error: unknown component `fitler`" in broken["description"]
    assert broken["description"].startswith("AMML ERROR: ") and "amml-error" in {t["name"] for t in broken["tags"]}
    # the error DAG's one run fails, so Home counts the broken file among the failed DAGs
    stats = wait_for(
        "the broken file's failed run",
        lambda: (s := requests.get(f"{url}/ui/dashboard/dag_stats", headers=headers, timeout=10).json())
        and s["failed_dag_count"] >= 1
        and s,
        300,
        log,
    )
    assert stats["failed_dag_count"] == 1, stats

    requests.patch(
        f"{url}/api/v2/dags/hot_days", json={"is_paused": False}, headers=headers, timeout=10
    ).raise_for_status()
    backfill = requests.post(
        f"{url}/api/v2/backfills",
        headers=headers,
        timeout=30,
        json={
            "dag_id": "hot_days",
            "from_date": "2016-07-02T00:00:00Z",
            "to_date": "2016-07-04T00:00:00Z",
            "max_active_runs": 2,
            "reprocess_behavior": "none",
            "run_backwards": False,
            "dag_run_conf": {},
        },
    )
    assert backfill.status_code in (200, 201), backfill.text

    def finished():
        runs = get("/dags/hot_days/dagRuns")["dag_runs"]
        states = [r["state"] for r in runs]
        if runs and all(s in ("success", "failed") for s in states):
            return runs
        return None

    runs = wait_for("the backfill to finish", finished, 600, log)
    assert {r["state"] for r in runs} == {"success"}, runs
    # unpausing also schedules the latest interval (catchup is off); the backfill made the three 2016 runs
    backfilled = [r for r in runs if r["run_type"] == "backfill"]
    intervals = sorted((r["data_interval_start"][:10], r["data_interval_end"][:10]) for r in backfilled)
    assert intervals == [("2016-07-02", "2016-07-03"), ("2016-07-03", "2016-07-04"), ("2016-07-04", "2016-07-05")]

    engine = sa.create_engine(f"sqlite:///{home / 'amml' / 'amml.db'}")
    with engine.connect() as conn:
        rows = conn.execute(sa.text("select date from hot_hours order by date")).scalars().all()
    ett = pd.read_csv(ett_path)
    first, last = intervals[0][0], intervals[-1][1]
    expected_rows = ett[(ett["date"] >= first) & (ett["date"] < last) & (ett["OT"] > 30)]["date"].tolist()
    assert rows == expected_rows, "each run read exactly its interval; no duplicates, no gaps"

    # The paper's workflows: train (a manual run with a param), promote, then backfill the predictions.
    def post(path, body):
        # right after a DAG appears, the api-server may still answer 404/409 for it: retry briefly
        for _ in range(30):
            response = requests.post(f"{url}/api/v2{path}", json=body, headers=headers, timeout=30)
            if response.status_code not in (404, 409, 503):
                break
            time.sleep(2)
        assert response.status_code in (200, 201), f"POST {path}: {response.status_code} {response.text}"
        return response.json()

    def patch(path, body):
        requests.patch(f"{url}/api/v2{path}", json=body, headers=headers, timeout=10).raise_for_status()

    def all_done(dag_id, count):
        def check():
            runs = get(f"/dags/{dag_id}/dagRuns")["dag_runs"]
            done = [r for r in runs if r["state"] in ("success", "failed")]
            return runs if len(done) >= count and len(done) == len(runs) else None

        return check

    patch("/dags/ett_train", {"is_paused": False})
    post("/dags/ett_train/dagRuns", {"logical_date": None, "conf": {"epochs": 1}})
    train_runs = wait_for("ett_train", all_done("ett_train", 1), 600, log)
    assert [r["state"] for r in train_runs] == ["success"], train_runs

    amml = [str(Path(sys.executable).parent / "amml"), "model", "alias", "champion", "ett/1"]
    promoted = subprocess.run(amml, env=af["env"], capture_output=True, text=True, timeout=120)
    assert promoted.returncode == 0, promoted.stderr
    # the plugin's models page, on the real api-server: only for a caller with a token
    assert requests.get(f"{url}/amml/models", timeout=30).status_code == 401
    models = requests.get(f"{url}/amml/models/ett@champion", headers=headers, timeout=30)
    assert models.status_code == 200 and models.json()["version"] == 1, models.text

    patch("/dags/ett_predict", {"is_paused": False})
    post(
        "/backfills",
        {
            "dag_id": "ett_predict",
            "from_date": "2017-10-25T00:00:00Z",
            "to_date": "2017-11-23T00:00:00Z",  # a month of ETTh1: 30 daily runs
            "max_active_runs": 4,
            "reprocess_behavior": "none",
            "run_backwards": False,
            "dag_run_conf": {},
        },
    )
    predict_runs = wait_for("the ett_predict backfill", all_done("ett_predict", 30), 1200, log)
    backfilled = [r for r in predict_runs if r["run_type"] == "backfill"]
    assert len(backfilled) == 30 and {r["state"] for r in predict_runs} == {"success"}, predict_runs
    with engine.connect() as conn:
        predicted = conn.execute(sa.text("select date, prediction from ett_predictions order by date")).fetchall()
    hours = [d for d, _ in predicted if "2017-10-25" <= d < "2017-11-24"]
    expected_hours = pd.date_range("2017-10-25", "2017-11-23 23:00", freq="h").strftime("%Y-%m-%d %H:%M:%S")
    assert len(set(hours)) == len(hours), "no duplicates"
    assert hours == list(expected_hours), "one prediction per hour of the month, no gaps"
    registry_entry = subprocess.run(
        [str(Path(sys.executable).parent / "amml"), "model", "show", "ett@champion"],
        env=af["env"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    shown = json.loads(registry_entry.stdout)
    assert shown["lineage"]["dag_id"] == "ett_train" and shown["metrics"]["epochs"] == 1

    # Airflow kills a running task (a user marks it failed): every component process goes with it.
    airflow_pid = af["pid"]
    assert amml_processes(airflow_pid) == []
    patch("/dags/endless", {"is_paused": False})
    run_id = post("/dags/endless/dagRuns", {"logical_date": None})["dag_run_id"]
    wait_for("the endless pipeline's processes", lambda: len(amml_processes(airflow_pid)) >= 3, 300, log)
    requests.patch(
        f"{url}/api/v2/dags/endless/dagRuns/{run_id}/taskInstances/main",
        headers=headers,
        timeout=30,
        json={"new_state": "failed"},
    ).raise_for_status()
    wait_for("every component process to be gone", lambda: amml_processes(airflow_pid) == [], 120, log)
