"""Alerts that are incidents: the runtime database's migrations (old tables kept, parallel processes on a
real PostgreSQL), what an alert row says, webhooks against a real local HTTP server, Airflow notifiers,
snapshots linked to their alert, and a pipeline SIGKILLed right after its alert."""

from __future__ import annotations

import http.server
import json
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from airflow_amml import runtime_db, storage, tables
from airflow_amml.components import notifications
from airflow_amml.components.events import alerts_of_run
from airflow_amml.run_config import Lineage, RunConfig
from airflow_amml.runtime.errors import PipelineError
from airflow_amml.runtime.executor import run_pipeline
from compiler import ProgramCache, compile_source

ROOT = Path(__file__).resolve().parents[2]
MODES = ["single", "multiprocess"]
AIRFLOW_TRY = Lineage(dag_id="watch", run_id="manual__2024-01-01", task_id="hot")


def run(text, mode="single", run_params=None, **config):
    program = compile_source(text, "alerts.amml", cache=ProgramCache())
    return run_pipeline(
        program.pipelines[0], mode=mode, run_params=run_params, config=RunConfig.from_environment(**config)
    )


def query(sql, url=None, **params):
    engine = sa.create_engine(url) if url else storage.engine(RunConfig.from_environment())
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(sql), params)]


def columns(url, table):
    return {c["name"] for c in sa.inspect(sa.create_engine(url)).get_columns(table)}


# ---- migrations --------------------------------------------------------------------------------------------

OLD = sa.MetaData()  # the tables as `create_all` made them before migrations (the session-3 shape)
sa.Table(
    "amml_alerts",
    OLD,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("component", sa.String(200), nullable=False),
    sa.Column("event", sa.String(200), nullable=False),
    sa.Column("level", sa.String(20), nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("position", sa.BigInteger, nullable=False),
    sa.Column("record", sa.Text, nullable=False),
)
for name in ("amml_snapshots", "old_snaps"):
    sa.Table(
        name,
        OLD,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("snapshot_id", sa.String(36), nullable=False, index=True),
        sa.Column("saved_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event", sa.String(200), nullable=False),
        sa.Column("alert_position", sa.BigInteger, nullable=False),
        sa.Column("row_position", sa.BigInteger, nullable=False),
        sa.Column("record", sa.Text, nullable=False),
    )


def make_old_database(url):
    engine = sa.create_engine(url)
    OLD.create_all(engine)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(
            OLD.tables["amml_alerts"].insert(),
            [
                {"created_at": now, "component": "alert", "event": "alert", "level": "warning", "message": "old",
                 "position": p, "record": json.dumps({"v": p})}
                for p in (3, 9)
            ],
        )  # fmt: skip
        for table in ("amml_snapshots", "old_snaps"):
            conn.execute(
                OLD.tables[table].insert(),
                [{"snapshot_id": "s", "saved_at": now, "event": "alert", "alert_position": 3, "row_position": 3,
                  "record": "{}"}],
            )  # fmt: skip
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'runtime.db'}"
    return request.getfixturevalue("postgres_url")


def test_a_new_database_gets_the_tables_at_the_head_revision(database_url):
    runtime_db.migrate(storage.engine_for(database_url))
    assert query(f"select version_num from {runtime_db.VERSION_TABLE}", database_url) == [(runtime_db.HEAD_REVISION,)]
    assert columns(database_url, "amml_alerts") == set(tables.alerts.c.keys())
    assert columns(database_url, "amml_snapshots") == set(tables.snapshot_table("amml_snapshots").c.keys())
    assert not sa.inspect(sa.create_engine(database_url)).has_table("amml_alembic_version"), "the registry's is apart"


def test_tables_of_an_older_version_are_upgraded_in_place_with_their_rows(database_url):
    make_old_database(database_url)
    text = "normalsource col='v', count=5, seed=1 | alert cond=v > -100, cooldown=100, snapshot=2"
    run(f"{text}, snapshot_table='old_snaps'", db_url=database_url)
    old_and_new = query("select message, position, score, snapshot_status from amml_alerts order by id", database_url)
    assert old_and_new == [("old", 3, None, None), ("old", 9, None, None), ("alert", 0, None, "complete")]
    assert columns(database_url, "amml_alerts") == set(tables.alerts.c.keys())
    for table in ("amml_snapshots", "old_snaps"):  # the default one by migration, a pipeline's own in place
        assert {"alert_id", "item"} <= columns(database_url, table)
        assert query(f"select snapshot_id, alert_id from {table} where snapshot_id = 's'", database_url) == [
            ("s", None)
        ]
    assert query("select count(*) from old_snaps where alert_id is not null", database_url) == [(1,)]


def _migrate_at_once(url, barrier, results):
    barrier.wait(60)
    try:
        runtime_db.migrate(storage.engine_for(url))
        results.put("ok")
    except Exception as exc:  # reported to the test, which shows it
        results.put(repr(exc))


def test_processes_migrating_at_once_upgrade_the_database_once(postgres_url):
    make_old_database(postgres_url)
    ctx = mp.get_context("spawn")  # fresh interpreters: nothing shared but PostgreSQL
    barrier, results = ctx.Barrier(6), ctx.Queue()
    procs = [ctx.Process(target=_migrate_at_once, args=(postgres_url, barrier, results)) for _ in range(6)]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(60)
    assert outcomes == ["ok"] * 6
    assert query(f"select version_num from {runtime_db.VERSION_TABLE}", postgres_url) == [(runtime_db.HEAD_REVISION,)]
    assert query("select count(*) from amml_alerts", postgres_url) == [(2,)]


# ---- alarm → alert: one incident, one alert -------------------------------------------------------------------

INCIDENTS = (
    "normalsource col='v', count=20000, seed=11 | derive anomaly_flag = v > 2.2, anomaly_score = v / 10 "
    "| alarm min_count=2, window=10, suppress=500 | alert cond=alarm{extra}"
)


def expected_alarms():
    """The alarm policy by hand on the same stream: flags v > 2.2; an alarm where the last 10 records hold
    two flags, more than 500 records after the previous alarm."""
    flags = np.random.default_rng(11).normal(0, 1, 20000) > 2.2
    raised = []
    for i in np.flatnonzero(flags):
        if flags[max(0, i - 9) : i + 1].sum() >= 2 and (not raised or i - raised[-1] > 500):
            raised.append(int(i))
    return raised


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("batch_rows", [None, 333])
def test_alarm_then_alert_records_one_alert_per_incident(mode, batch_rows):
    run(INCIDENTS.format(extra=""), mode, batch_rows=batch_rows)
    raised = expected_alarms()
    assert 3 <= len(raised) < 100 < int(np.sum(np.random.default_rng(11).normal(0, 1, 20000) > 2.2))
    assert [p for (p,) in query("select position from amml_alerts order by position")] == raised


def test_an_alert_row_says_when_what_and_where():
    text = textwrap.dedent("""
        readings = source id="ett" | derive anomaly_score = OT / 100
        readings | alert cond=OT > 40 and HUFL > 10, time='date', cooldown=100000, message='hot oil'
    """)
    run(text, lineage=AIRFLOW_TRY)
    [(record_time, score, values, dag_id, run_id, task_id, record, notify, snapshot)] = query(
        "select record_time, score, trigger_values, dag_id, run_id, task_id, record, notify_status, snapshot_status "
        "from amml_alerts"
    )
    row = json.loads(record)
    assert row["OT"] > 40 and row["HUFL"] > 10
    assert str(record_time).startswith(row["date"]), "the record's own time, not the time it was seen"
    assert score == pytest.approx(row["OT"] / 100)
    assert json.loads(values) == {"OT": row["OT"], "HUFL": row["HUFL"], "anomaly_score": score}
    assert (dag_id, run_id, task_id) == ("watch", "manual__2024-01-01", "hot")
    assert (notify, snapshot) == (None, None), "nobody to notify, no snapshot asked"


def test_a_retried_task_records_no_alert_twice_but_another_run_does():
    text = INCIDENTS.format(extra="")
    run(text, lineage=AIRFLOW_TRY)
    run(text, lineage=AIRFLOW_TRY)  # Airflow's retry of the same task instance
    assert len(query("select id from amml_alerts")) == len(expected_alarms())
    run(text, lineage=Lineage(dag_id="watch", run_id="scheduled__2024-01-02", task_id="hot"))
    assert len(query("select id from amml_alerts")) == 2 * len(expected_alarms())


def test_a_snapshot_table_with_alert_ids_but_no_item_gains_the_item_in_place(database_url):
    current = tables.snapshot_table("snaps_0002")  # the table as revision 0002's code created it: no `item`
    shape_0002 = sa.Table(
        "snaps_0002", sa.MetaData(), *(sa.Column(c.name, c.type, primary_key=c.primary_key) for c in current.c
                                       if c.name != "item")
    )  # fmt: skip
    shape_0002.create(sa.create_engine(database_url))
    run("normalsource col='v', count=5, seed=1 | alert cond=v > -100, cooldown=100, snapshot=2, "
        "snapshot_table='snaps_0002'", db_url=database_url, item=("series", "a"))  # fmt: skip
    assert columns(database_url, "snaps_0002") == set(tables.snapshot_table("snaps_0002").c.keys())
    assert query("select item, row_position from snaps_0002", database_url) == [("a", 0)]


# ---- fanned out: the item with every alert and snapshot row -------------------------------------------------------


def test_a_fanned_out_runs_alerts_and_snapshots_name_their_item_and_each_item_keeps_its_own():
    """The mapped tasks of a fan-out share dag, run and task ids: the item tells their alerts apart, for the
    message a notifier shows, for a retry (which records nothing twice) and for the notifiers' look-up."""
    text = INCIDENTS.format(extra=", message='v above 2.2', snapshot=3")
    taxi, other = ("series", "nab/realKnownCause/nyc_taxi"), ("series", "nab/realKnownCause/other")
    run(text, lineage=AIRFLOW_TRY, item=taxi)
    run(text, lineage=AIRFLOW_TRY, item=other)  # another mapped task of the same task id: its own alerts
    run(text, lineage=AIRFLOW_TRY, item=taxi)  # the taxi task's retry: nothing twice
    run(text, lineage=AIRFLOW_TRY)  # and a run that is not fanned out is apart from both
    raised = expected_alarms()
    counts = query("select item, message, count(*) from amml_alerts group by item, message order by item")
    assert sorted(counts, key=str) == sorted(
        [
            (None, "v above 2.2", len(raised)),
            ("nab/realKnownCause/nyc_taxi", "nab/realKnownCause/nyc_taxi: v above 2.2", len(raised)),
            ("nab/realKnownCause/other", "nab/realKnownCause/other: v above 2.2", len(raised)),
        ],
        key=str,
    )
    snapshots = query("select a.item, s.item, count(*) from amml_alerts a join amml_snapshots s on s.alert_id = a.id "
                      "group by a.item, s.item")  # fmt: skip
    assert all(alert_item == row_item for alert_item, row_item, _ in snapshots) and len(snapshots) == 3
    for item in (taxi, other):
        alerts = alerts_of_run(RunConfig.from_environment(lineage=AIRFLOW_TRY, item=item))
        assert [a["position"] for a in alerts] == raised and {a["item"] for a in alerts} == {item[1]}
    assert {a["item"] for a in alerts_of_run(RunConfig.from_environment(lineage=AIRFLOW_TRY))} == {None}


def test_the_snapshot_component_records_the_item_too():
    text = textwrap.dedent("""
        r = normalsource col='v', count=5000, seed=11
        r | alert cond=v > 3, cooldown=5000
        r | snapshot size=4
    """)
    run(text, item=("plant", 7))
    assert query("select distinct item from amml_alerts") == [("7",)]
    assert query("select distinct item, count(*) from amml_snapshots group by item") == [("7", 4)]


# ---- snapshots linked to their alert ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_alert_saves_the_records_before_and_after_it_linked_by_id(mode):
    run(INCIDENTS.format(extra=", snapshot=30, after=12"), mode, batch_rows=250)
    alerts = query("select id, position, snapshot_status from amml_alerts order by position")
    assert [a[1] for a in alerts] == expected_alarms()
    for alert_id, position, status in alerts:
        rows = [
            r for (r,) in query("select row_position from amml_snapshots where alert_id = :a order by 1", a=alert_id)
        ]
        assert rows == list(range(max(0, position - 29), position + 13)), "30 up to and with it, 12 after"
        assert status == "complete"
        assert len(query("select distinct snapshot_id from amml_snapshots where alert_id = :a", a=alert_id)) == 1


def test_the_stream_ending_completes_a_snapshot_with_what_came_after():
    run("normalsource col='v', count=100, seed=1 | derive p = v | alert cond=p > -100, cooldown=1000, snapshot=1, "
        "after=10000")  # fmt: skip
    assert query("select count(*), min(row_position), max(row_position) from amml_snapshots") == [(100, 0, 99)]
    assert query("select snapshot_status from amml_alerts") == [("complete",)]


@pytest.mark.parametrize("mode", MODES)
def test_the_snapshot_component_links_its_rows_and_saves_after_too(mode):
    text = textwrap.dedent("""
        r = normalsource col='v', count=20000, seed=11
        r | alert cond=v > 3, cooldown=5000
        r | snapshot size=10, after=5
    """)
    run(text, mode, batch_rows=1000)
    alerts = query("select id, position from amml_alerts order by position")
    assert len(alerts) >= 2
    for alert_id, position in alerts:
        rows = [
            r for (r,) in query("select row_position from amml_snapshots where alert_id = :a order by 1", a=alert_id)
        ]
        assert rows == list(range(position - 9, position + 6))


# ---- webhooks: a real local HTTP server ---------------------------------------------------------------------


class Hook:
    """A local HTTP server answering each POST with the next of ``statuses`` (then 200), after ``delay``."""

    def __init__(self, statuses=(), delay=0.0, redirect_to=None):
        self.statuses, self.delay, self.redirect_to, self.bodies = list(statuses), delay, redirect_to, []
        hook = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                hook.bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                time.sleep(hook.delay)
                status = hook.statuses.pop(0) if hook.statuses else 200
                self.send_response(status)
                if hook.redirect_to:
                    self.send_header("Location", hook.redirect_to)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook(monkeypatch):
    made = []

    def make(**kwargs):
        server = Hook(**kwargs)
        made.append(server)
        monkeypatch.setenv("AMML_WEBHOOKS", json.dumps({"ops": server.url}))
        return server

    monkeypatch.setattr(notifications, "BACKOFF_SECONDS", 0.01)
    yield make
    for server in made:
        server.close()


ONE_ALERT = "normalsource col='v', count=50, seed=2 | alert cond=v > -100, cooldown=1000, message='m', webhook='ops'"


@pytest.mark.parametrize("mode", MODES)
def test_the_webhook_receives_the_alert_and_its_status_says_sent(hook, mode):
    server = hook()
    run(ONE_ALERT, mode, lineage=AIRFLOW_TRY)
    [(alert_id, status, attempts, error)] = query(
        "select id, notify_status, notify_attempts, notify_error from amml_alerts"
    )
    assert (status, attempts, error) == ("sent", 1, None)
    [body] = server.bodies
    assert (body["id"], body["message"], body["position"], body["run_id"]) == (alert_id, "m", 0, "manual__2024-01-01")


def test_a_failing_webhook_is_retried_a_bounded_number_of_times_and_the_alert_kept(hook):
    server = hook(statuses=[500] * 10)
    run(ONE_ALERT)
    assert len(server.bodies) == notifications.ATTEMPTS
    assert query("select notify_status, notify_attempts, notify_error from amml_alerts") == [
        ("failed", notifications.ATTEMPTS, "HTTP 500 Internal Server Error")
    ]


def test_a_webhook_that_recovers_on_a_retry_is_sent(hook):
    server = hook(statuses=[503])
    run(ONE_ALERT)
    assert len(server.bodies) == 2 and query("select notify_status, notify_attempts from amml_alerts") == [("sent", 2)]


def test_a_hanging_webhook_times_out(hook, monkeypatch):
    monkeypatch.setattr(notifications, "TIMEOUT_SECONDS", 0.2)
    hook(delay=2.0)
    run(ONE_ALERT)
    assert query("select notify_status, notify_error from amml_alerts") == [("failed", "timed out")]


def test_after_a_dead_webhook_later_alerts_get_one_attempt_each(hook):
    server = hook(statuses=[500] * 100)
    run("normalsource col='v', count=30, seed=2 | alert cond=v > -100, cooldown=9, webhook='ops'")
    # 3 alerts (positions 0, 10, 20): the first uses every attempt, the other two one each
    assert [a for (a,) in query("select notify_attempts from amml_alerts order by id")] == [
        notifications.ATTEMPTS,
        1,
        1,
    ]
    assert len(server.bodies) == notifications.ATTEMPTS + 2


def test_a_redirect_is_not_followed(hook):
    target = Hook()
    try:
        hook(statuses=[302] * 10, redirect_to=target.url)
        run(ONE_ALERT)
        assert target.bodies == [] and query("select notify_status from amml_alerts") == [("failed",)]
    finally:
        target.close()


def test_an_unreachable_webhook_fails_without_losing_the_alert(monkeypatch):
    monkeypatch.setattr(notifications, "BACKOFF_SECONDS", 0.01)
    with __import__("socket").socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    monkeypatch.setenv("AMML_WEBHOOKS", json.dumps({"ops": f"http://127.0.0.1:{port}/"}))
    run(ONE_ALERT)
    [(status, error)] = query("select notify_status, notify_error from amml_alerts")
    assert status == "failed" and "refused" in error.lower()


@pytest.mark.parametrize(
    ("webhooks", "name", "message"),
    [
        ({"ops": "https://x.example"}, "opz", r"unknown webhook `opz`; .* \(`ops`\); did you mean `ops`\?"),
        ({}, "http://169.254.169.254/latest", r"`alert webhook=...`: a URL; a pipeline names one of the webhooks"),
        ({"ops": "file:///etc/passwd"}, "ops", r"the webhook `ops` is not an http\(s\) URL"),
    ],
)
def test_a_pipeline_names_a_declared_webhook_never_a_url(monkeypatch, webhooks, name, message):
    monkeypatch.setenv("AMML_WEBHOOKS", json.dumps(webhooks))
    with pytest.raises(PipelineError, match=message) as info:
        run(f"normalsource count=3 | alert cond=value > 100, webhook='{name}'")
    assert info.value.hint and "169.254" not in str(info.value.hint)


# ---- Airflow notifiers ----------------------------------------------------------------------------------------


def test_airflow_notifiers_get_each_alert_of_the_run_in_their_context():
    from airflow.sdk.bases.notifier import BaseNotifier  # a real Airflow notifier, templated as Airflow does

    sent = []

    class Collect(BaseNotifier):
        template_fields = ("text",)

        def __init__(self, text):
            super().__init__()
            self.text = text

        def notify(self, context):
            sent.append((self.text, context["ti"]))

    run(INCIDENTS.format(extra=", message='hot'"), lineage=AIRFLOW_TRY)
    run(INCIDENTS.format(extra=""), lineage=Lineage(dag_id="watch", run_id="other", task_id="hot"))
    alerts = alerts_of_run(RunConfig.from_environment(lineage=AIRFLOW_TRY))
    assert [a["position"] for a in alerts] == expected_alarms(), "only this run's alerts"
    notifier = Collect("{{ alert.message }} at {{ alert.position }}")
    errors = notifications.notify_recorded(alerts, [notifier], {"ti": "the task instance"})
    assert errors == []
    assert sent == [(f"hot at {p}", "the task instance") for p in expected_alarms()]
    assert notifier.text == "{{ alert.message }} at {{ alert.position }}", "each call renders a copy"


# ---- killed right after the alert ------------------------------------------------------------------------------

KILLED = """
dag d {{ params = {{rate: 0.0}} }}
normalsource col='v', count=6000, rate=params.rate, seed=11 | derive anomaly_flag = v > 2.2
| alarm min_count=2, window=10, suppress=100000 | alert cond=alarm, snapshot=25, after={after}
"""

RUNNER = """
import sys
from airflow_amml.run_config import Lineage, RunConfig
from airflow_amml.runtime.executor import run_pipeline
from compiler import ProgramCache, compile_source

program = compile_source(sys.argv[1], "killed.amml", cache=ProgramCache())
lineage = Lineage(dag_id="watch", run_id="manual__2024-01-01", task_id="hot")
run_pipeline(program.pipelines[0], run_params={"rate": 150.0}, config=RunConfig.from_environment(lineage=lineage))
"""


def test_killed_right_after_the_alert_its_snapshot_is_there_and_a_retry_completes_it():
    after = 1500  # at 150 records/s, 10 s of records after the alarm: the kill comes long before them
    text = KILLED.format(after=after)
    proc = subprocess.Popen(
        [sys.executable, "-c", RUNNER, text], cwd=ROOT, start_new_session=True, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 60
        while not _alerts_committed() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the pipeline and every component process, at once
        proc.wait(30)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read()
    [(alert_id, position, status)] = query("select id, position, snapshot_status from amml_alerts")
    assert position == expected_alarms()[0]
    before = [r for (r,) in query("select row_position from amml_snapshots where alert_id = :a order by 1", a=alert_id)]
    assert before == list(range(position - 24, position + 1)), "committed with the alert: the 25 records before"
    assert status == "after_pending"

    run(text, run_params={"rate": 0.0}, lineage=AIRFLOW_TRY)  # Airflow's retry: the same task instance
    assert query("select id, snapshot_status from amml_alerts") == [(alert_id, "complete")]
    rows = [r for (r,) in query("select row_position from amml_snapshots where alert_id = :a order by 1", a=alert_id)]
    assert rows == list(range(position - 24, position + after + 1))
    assert len(query("select distinct snapshot_id from amml_snapshots")) == 1


def _alerts_committed():
    try:
        return bool(query("select id from amml_alerts"))
    except sa.exc.OperationalError:  # the tables are not made yet
        return False
