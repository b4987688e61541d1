"""Benchmark: a fanned-out AMML DAG on CeleryExecutor: N series through one worker vs two, and what a mapped
task instance costs against one task that does the same work.

Run from the project root (needs PostgreSQL's server binaries and `redis-server`, as the tests do)::

    .venv/bin/python bench/celery_fanout.py [--series 16]

It starts the tests' deployment (tests/services/airflow_deployment.py: PostgreSQL, Redis, api-server,
scheduler, dag-processor, two Celery workers of concurrency 2) and times, in this one run, four DagRuns of
the same work: N NAB series, each ``source | robust_detector | sql_sink`` (each series its own rows). A run's
time is Airflow's own record of it (the DagRun's end_date - start_date), so the trigger's round trip is out.

=====  ===========================================================================================
A      mapped, two workers: ``pipeline detect for series in [N ids]``, ``map_concurrency = 4`` (every slot)
B      the same pipeline (a DAG and table of its own) once worker2 is stopped: one worker, its 2 slots
C      mapped, one worker, ``map_concurrency = 1``: the N instances one after the other
D      one task, one worker: the N chains in ONE non-mapped pipeline block, ``max_processes = 3``
=====  ===========================================================================================

Two figures: A vs B is what a second worker buys (on 2 cores expect at most 2x: both workers share them).
C vs D is the cost of a mapped task instance. The baseline D is chosen to do the same reading, scoring and
writing with the same process budget as one instance of C (3 processes: the cap fuses D's 3N components into
3), so what differs is what C pays N times and D once: the scheduling of an instance, its Celery message, the
task process's fork and imports, its calls to the execution API, the DAG file parsed in the task, the
executor's start and stop. The cost per mapped instance is (C - D) / N. Nothing is asserted on speed; a run
that fails, or a sink that misses rows, stops the script (a bug).

On this machine (2 cores, 16 series, three runs with other jobs around): B / A = 1.04-1.05 (the two workers
share the 2 cores, and the task starts are CPU work too), C / D = 7.4-8.8, (C - D) / N = 3.4-3.6 s per mapped
instance, against 7-8 s for all 16 series in one task: on small series the per-instance start dominates.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.services.airflow_deployment import AirflowDeployment  # noqa: E402 - after the sys.path fix
from tests.services.fixtures import PostgresServer  # noqa: E402

NAB = ROOT / "airflow_amml" / "data" / "nab"
CHAIN = 'source id={id} | robust_detector cols=["value"], window=200 | sql_sink table="{table}", key=["timestamp"]'


def series_ids(count: int) -> list[str]:
    ids = sorted(f"nab/{p.parent.name}/{p.stem}" for p in NAB.glob("*/*.csv"))
    if count > len(ids):
        raise SystemExit(f"--series {count}: the shipped NAB data has {len(ids)} series")
    return ids[:count]


def mapped_dag(dag_id: str, ids: list[str], concurrency: int) -> str:
    items = ", ".join(f'"{i}"' for i in ids)
    return (
        f'dag {dag_id} {{ schedule = null; start_date = "2024-01-01"; map_concurrency = {concurrency} }}\n'
        f"pipeline detect for series in [{items}] {{\n    {CHAIN.format(id='series', table=dag_id)}\n}}\n"
    )


def one_task_dag(dag_id: str, ids: list[str]) -> str:
    chains = "\n".join("    " + CHAIN.format(id=f'"{i}"', table=f"{dag_id}_{n}") for n, i in enumerate(ids))
    return (
        f'dag {dag_id} {{ schedule = null; start_date = "2024-01-01"; max_processes = 3 }}\n'
        f"pipeline detect {{\n{chains}\n}}\n"
    )


def seconds(run: dict) -> float:
    return (datetime.fromisoformat(run["end_date"]) - datetime.fromisoformat(run["start_date"])).total_seconds()


def timed_run(airflow: AirflowDeployment, dag_id: str) -> float:
    run_id = airflow.trigger(dag_id)
    runs = airflow.wait_runs(dag_id, 1, 1800)
    [run] = [r for r in runs if r["dag_run_id"] == run_id]
    if run["state"] != "success":
        raise SystemExit(f"{dag_id} failed: {run}\n{airflow.task_logs()}")
    return seconds(run)


def check_rows(airflow: AirflowDeployment, tables: list[str], expected: int) -> None:
    stored = sum(airflow.sink_rows(f"select count(*) from {t}")[0][0] for t in tables)
    if stored != expected:
        raise SystemExit(f"{tables}: {stored} rows, expected {expected}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--series", type=int, default=16, help="NAB series per run (at most 28)")
    args = parser.parse_args()
    ids = series_ids(args.series)
    rows = sum(sum(1 for _ in open(NAB / f"{i.removeprefix('nab/')}.csv")) - 1 for i in ids)

    postgres = PostgresServer()
    postgres.init()
    postgres.start()
    airflow = AirflowDeployment(postgres, ROOT / "airflow_amml" / "data" / "ett" / "ETTh1.csv")
    try:
        airflow.start()
        files = {
            # B runs a DAG of its own: a second run of A's would also delete A's rows by key (the sink's re-run)
            "bench_wide.amml": mapped_dag("bench_wide", ids, 4),
            "bench_wide1.amml": mapped_dag("bench_wide1", ids, 4),
            "bench_serial.amml": mapped_dag("bench_serial", ids, 1),
            "bench_one.amml": one_task_dag("bench_one", ids),
        }
        airflow.add_dag_files(files)
        airflow.wait_for_dags({"bench_wide", "bench_wide1", "bench_serial", "bench_one"})
        times = {"A": timed_run(airflow, "bench_wide")}
        check_rows(airflow, ["bench_wide"], rows)
        airflow.stop_worker("worker2")
        times["B"] = timed_run(airflow, "bench_wide1")
        check_rows(airflow, ["bench_wide1"], rows)
        times["C"] = timed_run(airflow, "bench_serial")
        check_rows(airflow, ["bench_serial"], rows)
        times["D"] = timed_run(airflow, "bench_one")
        check_rows(airflow, [f"bench_one_{n}" for n in range(len(ids))], rows)
    finally:
        airflow.close()
        postgres.close()

    n = len(ids)
    print(f"\n{n} NAB series, {rows:,} records; Airflow's DagRun times; one run each, measured in this run\n")
    print(f"{'run':<4} {'what':<52} {'seconds':>8}")
    labels = {
        "A": "mapped, 2 workers x 2 slots, map_concurrency 4",
        "B": "mapped, 1 worker x 2 slots, map_concurrency 4",
        "C": "mapped, 1 worker, map_concurrency 1 (one at a time)",
        "D": "one task, 1 worker: N chains in one block, 3 processes",
    }
    for key, label in labels.items():
        print(f"{key:<4} {label:<52} {times[key]:>8.1f}")
    print(f"\nsecond worker: B / A = {times['B'] / times['A']:.2f}x faster (2 cores: at most 2x expected)")
    print(f"mapped vs one task: C / D = {times['C'] / times['D']:.2f}x")
    print(f"cost per mapped task instance: (C - D) / N = {(times['C'] - times['D']) / n:.2f} s")


if __name__ == "__main__":
    main()
