"""`amml alerts`: the alerts pipelines recorded and the records saved around each, read back from the run's
database (the embedded SQLite of the test's AMML_HOME) — the paper's "saved for later analysis or retraining"."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime

import pandas as pd
import pytest
import sqlalchemy as sa

from airflow_amml import cli, tables
from airflow_amml.run_config import Lineage, RunConfig
from airflow_amml.runtime.executor import run_pipeline
from compiler import ProgramCache, compile_source

# hot oil in ETTh1's first 2,000 hours: OT first exceeds 40 °C at record 280 (2016-07-12 16:00), and again
# more than 500 records later (the cooldown), at record 878 (2016-08-06 14:00)
HOT = (
    'source id="ett", limit=2000 | select cols=["date", "OT"] '
    '| alert cond=OT > 40, message="hot oil", cooldown=500, time="date", snapshot=6, after=2'
)
FIRST_REVISION = {"id", "created_at", "component", "event", "level", "message", "position", "record"}
WATCH = Lineage(dag_id="watch", run_id="manual__2024-01-01", task_id="hot")


def run(text, **config):
    program = compile_source(text, "alerts.amml", cache=ProgramCache())
    run_pipeline(program.pipelines[0], mode="single", config=RunConfig.from_environment(**config))


def amml(capsys, *args):
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_the_alerts_are_listed_newest_first_with_their_snapshots_and_filtered_by_dag(capsys):
    run(HOT)
    run(HOT.replace("hot oil", "hot oil in a task"), lineage=WATCH)
    code, out, _ = amml(capsys, "alerts", "list", "--json")
    rows = json.loads(out)
    assert code == 0 and [r["id"] for r in rows] == [4, 3, 2, 1]
    assert [r["message"] for r in rows] == ["hot oil in a task"] * 2 + ["hot oil"] * 2
    assert [r["record_time"][:16] for r in rows[2:]] == ["2016-08-06 14:00", "2016-07-12 16:00"]
    assert {(r["snapshot_status"], r["snapshot_rows"]) for r in rows} == {("complete", 8)}  # 6 before + 2 after
    assert rows[0]["dag_id"] == "watch" and rows[2]["dag_id"] is None
    _, out, _ = amml(capsys, "alerts", "list", "--dag", "watch", "--limit", "1", "--json")
    assert [r["id"] for r in json.loads(out)] == [4]
    _, out, _ = amml(capsys, "alerts", "list")
    lines = out.splitlines()
    assert len(lines) == 4 and lines[-1].split()[:4] == ["1", "2016-07-12", "16:00", "warning"]
    assert "watch/hot  manual__2024-01-01" in lines[0] and "snapshot complete (8 records)" in lines[0]


def test_show_gives_the_alert_and_the_records_around_it_and_writes_them_as_csv(capsys, tmp_path, ett_path):
    run(HOT)
    out_csv = tmp_path / "incident.csv"
    code, out, _ = amml(capsys, "alerts", "show", "1", "--json", "--csv", str(out_csv))
    shown = json.loads(out)
    assert code == 0 and shown["alert"]["record"]["date"] == "2016-07-12 16:00:00"
    assert shown["alert"]["trigger_values"] == {"OT": shown["alert"]["record"]["OT"]} and shown["alert"]["id"] == 1
    ett = pd.read_csv(ett_path)[["date", "OT"]]
    expected = ett.iloc[275:283].reset_index(drop=True)  # the 6 records up to the alert's (280) and 2 after
    assert [r["date"] for r in shown["snapshot"]] == list(expected["date"])
    written = pd.read_csv(out_csv)
    pd.testing.assert_frame_equal(written, expected, check_dtype=False, rtol=1e-6)
    _, out, _ = amml(capsys, "alerts", "show", "1")
    assert "snapshot: 8 records" in out and "2016-07-12 18:00:00" in out and "message          hot oil" in out


def test_a_missing_alert_a_bad_table_and_an_empty_database_are_clear(capsys):
    code, out, err = amml(capsys, "alerts", "list")
    assert code == 0 and out == "" and err == "no alerts\n"  # nothing recorded yet: no table, no error
    code, _, err = amml(capsys, "alerts", "show", "7")
    assert code == 1 and err.startswith("alerts: no alert 7 in sqlite:") and "hint: no alert is recorded" in err
    run(HOT)
    code, _, err = amml(capsys, "alerts", "show", "7")
    assert code == 1 and "hint: the newest is 2: `amml alerts list` shows them" in err
    code, _, err = amml(capsys, "alerts", "show", "1", "--table", "x; drop table amml_alerts")
    assert code == 1 and "snapshot table 'x; drop table amml_alerts': a table name is" in err and "Traceback" not in err
    code, _, err = amml(capsys, "alerts", "show", "1", "--table", "amml_alerts")
    assert code == 1 and "AMML's own tables" in err
    code, out, _ = amml(capsys, "alerts", "list", "--json")
    assert len(json.loads(out)) == 2, "reading changed nothing"


@pytest.mark.parametrize("command", [("list",), ("show", "1")])
def test_an_unreachable_database_or_a_bad_url_is_named_without_a_traceback(capsys, monkeypatch, command):
    monkeypatch.setenv("AMML_DB_URL", "postgresql+psycopg://nobody:secret@127.0.0.1:1/amml")
    code, _, err = amml(capsys, "alerts", *command)
    assert code == 1 and err.startswith("alerts: cannot read the alerts in postgresql+psycopg://nobody:***@")
    assert "Connection refused" in err and "hint: check that the database is up" in err
    assert "secret" not in err and "Traceback" not in err
    monkeypatch.setenv("AMML_DB_URL", "notaurl")
    code, _, err = amml(capsys, "alerts", *command)
    assert code == 1 and err.startswith("alerts: cannot read the alerts in notaurl") and "Could not parse" in err
    assert "unexpected" not in err and "Traceback" not in err
    too_big = ["9" * 20] if command[0] == "show" else ["--limit", "9" * 20]  # more than a database integer holds
    with pytest.raises(SystemExit) as usage:
        cli.main(["alerts", command[0], *too_big])
    assert usage.value.code == 2 and "expected a whole number up to" in capsys.readouterr().err


def test_nothing_is_created_to_be_read(capsys, amml_home):
    code, _, err = amml(capsys, "alerts", "list")
    assert code == 0 and err == "no alerts\n" and not (amml_home / "amml.db").exists()


def test_items_other_snapshot_tables_and_the_snapshot_component(capsys):
    base = RunConfig.from_environment()
    for series in ("a", "b"):
        program = compile_source(HOT, "alerts.amml", cache=ProgramCache())
        config = dataclasses.replace(base, item=("series", series))
        run_pipeline(program.pipelines[0], mode="single", config=config)
    _, out, _ = amml(capsys, "alerts", "list", "--item", "b", "--json")
    assert [(r["id"], r["item"]) for r in json.loads(out)] == [(4, "b"), (3, "b")]
    # a pipeline's own snapshot table: `list` says where to look, `show --table` reads it
    run(HOT.replace("snapshot=6", 'snapshot_table="incidents", snapshot=6'))
    _, out, _ = amml(capsys, "alerts", "list", "--limit", "1")
    assert "snapshot complete (another table: `amml alerts show 6 --table NAME`)" in out
    _, out, _ = amml(capsys, "alerts", "show", "6", "--table", "incidents", "--json")
    assert len(json.loads(out)["snapshot"]) == 8
    _, out, _ = amml(capsys, "alerts", "show", "6")
    assert "no records of this alert in table amml_snapshots" in out and "--table NAME" in out
    # the paper's Fig. 7: a separate `snapshot` component saves the records on the alert's event
    run(
        'readings = source id="ett", limit=400 | select cols=["date", "OT"]\n'
        'readings | alert cond=OT > 40, message="hot oil", time="date"\n'
        'readings | snapshot size=5, on="alert"'
    )
    _, out, _ = amml(capsys, "alerts", "list", "--limit", "1")
    assert "snapshot saved (5 records)" in out


def test_an_alerts_table_of_the_first_revision_is_read_as_it_is(capsys, amml_home):
    """A database last written by an older AMML (the runtime upgrades it only when it next records an alert):
    its alerts are listed and shown, the columns added since are empty, and the table is left as it was."""
    amml_home.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(f"sqlite:///{amml_home / 'amml.db'}")
    old = sa.Table(
        "amml_alerts", sa.MetaData(),
        *(sa.Column(c.name, c.type, primary_key=c.primary_key) for c in tables.alerts.c if c.name in FIRST_REVISION),
    )  # fmt: skip
    with engine.begin() as conn:
        old.create(conn)
        conn.execute(old.insert().values(
            created_at=datetime(2024, 1, 1, tzinfo=UTC), component="alert", event="alert", level="warning",
            message="old", position=7, record='{"OT": 41.0}',
        ))  # fmt: skip
    code, out, _ = amml(capsys, "alerts", "list", "--json")
    (row,) = json.loads(out)
    assert code == 0 and row["message"] == "old" and row["item"] is None and row["record_time"] is None
    code, out, _ = amml(capsys, "alerts", "show", "1", "--json")
    assert code == 0 and json.loads(out)["alert"]["record"] == {"OT": 41.0}
    assert {c["name"] for c in sa.inspect(engine).get_columns("amml_alerts")} == FIRST_REVISION
