"""A fanned-out AMML DAG on CeleryExecutor with two real workers (the session's deployment,
tests/services/airflow_deployment.py), triggered over REST as a user does:

- `pipeline detect for series in catalog("nab/art*")` (11 NAB series, listed from the catalog when the run
  starts): one mapped task instance per series, named by it; every one succeeds, both workers ran some (a task
  instance's hostname names its worker), and the sink holds each series' rows, complete, under its own
  `series` value.
- a slow fan-out (`retries = 1`), one worker SIGKILLed mid-run as a crash: its running tasks are retried on the
  other worker and succeed, none of its component processes outlives it, and the sink holds each item's rows
  exactly once (the sink's key: the item and the value). The killed worker is started again afterwards.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from tests.services.airflow_deployment import WORKERS

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

NAB = Path(__file__).resolve().parents[2] / "airflow_amml" / "data" / "nab"
# `catalog(GLOB)`: the items are the catalog ids matching the glob, listed by a small task when the run starts
# (the 11 artificial NAB series, shipped with AMML as the catalog's built-in `nab/<category>/<name>` ids)
SERIES = sorted(f"nab/{p.parent.name}/{p.stem}" for p in NAB.glob("art*/*.csv"))
FANOUT = """
dag celery_fanout { schedule = null; start_date = "2024-01-01"; map_concurrency = 4 }
pipeline detect for series in catalog("nab/art*") {
    source id=series | robust_detector cols=["value"], window=200 | sql_sink table="celery_scores", key=["timestamp"]
}
"""

PARTS = list(range(1, 9))
COUNT, RATE = 600, 100  # each item takes ~6 s: long enough to crash a worker in the middle of one
SLOW = f"""
dag celery_slow {{ schedule = null; start_date = "2024-01-01"; map_concurrency = 4; retries = 1; retry_delay = 1 }}
pipeline generate for part in [{", ".join(map(str, PARTS))}] {{
    normalsource col="value", count={COUNT}, rate={RATE}, seed=part | sql_sink table="celery_values", key=["value"]
}}
"""


@pytest.fixture(scope="module")
def airflow(airflow_deployment):
    airflow_deployment.wait_for_training()  # a crashed worker must not take a training run with it
    airflow_deployment.add_dag_files({"celery_fanout.amml": FANOUT, "celery_slow.amml": SLOW})
    airflow_deployment.wait_for_dags({"celery_fanout", "celery_slow"})
    return airflow_deployment


def hostnames(airflow) -> dict[str, str]:
    return {airflow.worker_hostname(w): w for w in WORKERS}


def test_a_fanned_out_dag_runs_every_series_on_both_workers(airflow):
    run_id = airflow.trigger("celery_fanout")
    [run] = airflow.wait_runs("celery_fanout", 1, 600)
    tis = [ti for ti in airflow.task_instances("celery_fanout", run_id) if ti["task_id"] == "detect"]
    assert run["state"] == "success", f"{run}\n{airflow.task_logs()}"
    assert len(SERIES) >= 8
    assert sorted(ti["map_index"] for ti in tis) == list(range(len(SERIES))), "one mapped instance per series"
    assert {ti["state"] for ti in tis} == {"success"}, tis
    assert sorted(ti["rendered_map_index"] for ti in tis) == sorted(f"series={s}" for s in SERIES)
    ran_on = {hostnames(airflow).get(ti["hostname"], ti["hostname"]) for ti in tis}
    assert ran_on == set(WORKERS), f"both workers ran some: {[(ti['map_index'], ti['hostname']) for ti in tis]}"

    rows = airflow.sink_rows("select series, timestamp, value from celery_scores")
    stored = pd.DataFrame(rows, columns=["series", "timestamp", "value"])
    assert set(stored["series"]) == set(SERIES)
    for series in SERIES:
        csv = pd.read_csv(NAB / f"{series.removeprefix('nab/')}.csv")
        mine = stored[stored["series"] == series].sort_values("timestamp")
        got = pd.to_datetime(mine["timestamp"]).dt.strftime("%Y-%m-%d %H:%M:%S").tolist()
        assert got == csv["timestamp"].tolist(), f"{series}: every row, once"
        assert np.allclose(mine["value"].to_numpy(float), csv["value"].to_numpy(float)), series


def test_a_crashed_worker_s_tasks_are_retried_on_the_other(airflow):
    victim, survivor = WORKERS[1], WORKERS[0]
    by_host = hostnames(airflow)
    run_id = airflow.trigger("celery_slow")

    def victim_busy():
        """The victim's running instances once one of them has written some rows (a partial output)."""
        running = [
            ti for ti in airflow.task_instances("celery_slow", run_id)
            if ti["state"] == "running" and by_host.get(ti["hostname"]) == victim
        ]  # fmt: skip
        parts = [PARTS[ti["map_index"]] for ti in running]
        if not parts or not airflow.services[victim].processes():
            return None
        try:
            [(written,)] = airflow.sink_rows("select count(*) from celery_values where part = :p", p=parts[0])
        except sa.exc.SQLAlchemyError:  # the sink has not created its table yet
            return None
        return running if written > 0 else None

    running = airflow.wait_for(f"{victim} to run an item", victim_busy, 300)
    components = [p for p in airflow.services[victim].processes() if p.name().startswith("amml:")]
    assert components, "the victim's items run in component processes"
    airflow.crash_worker(victim)
    airflow.wait_for(
        "the crashed worker's component processes to go", lambda: not [p for p in components if p.is_running()], 60
    )

    [run] = airflow.wait_runs("celery_slow", 1, 600)
    assert run["state"] == "success", f"{run}\n{airflow.task_logs()}"
    tis = {ti["map_index"]: ti for ti in airflow.task_instances("celery_slow", run_id)}
    assert {ti["state"] for ti in tis.values()} == {"success"}, tis
    for ti in running:
        retried = tis[ti["map_index"]]
        assert retried["try_number"] == 2 and by_host.get(retried["hostname"]) == survivor, retried
        tries = airflow.api(f"/dags/celery_slow/dagRuns/{run_id}/taskInstances/generate/{ti['map_index']}/tries")
        first = [t for t in tries["task_instances"] if t["try_number"] == 1]
        assert [by_host.get(t["hostname"]) for t in first] == [victim], tries
    assert airflow.amml_processes() == [], "no component process is left"

    for part in PARTS:
        stored = sorted(v for (v,) in airflow.sink_rows("select value from celery_values where part = :p", p=part))
        expected = sorted(np.random.default_rng(part).normal(0.0, 1.0, COUNT))
        assert len(stored) == COUNT and stored == expected, f"part {part}: every value once ({len(stored)} rows)"

    airflow.restart_worker(victim, wait=False)  # the deployment whole again for the tests after this one
