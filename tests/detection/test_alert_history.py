"""`amml alerts`: the alerts pipelines recorded and the records saved around each, read back from the run's
database (the embedded SQLite of the test's AMML_HOME) — the paper's "saved for later analysis or retraining"."""

from __future__ import annotations

import json

import pandas as pd

from airflow_amml import cli
from airflow_amml.run_config import Lineage, RunConfig
from airflow_amml.runtime.executor import run_pipeline
from compiler import ProgramCache, compile_source

# hot oil in ETTh1's first 2,000 hours: OT first exceeds 40 °C at record 280 (2016-07-12 16:00), and again
# more than 500 records later (the cooldown), at record 878 (2016-08-06 14:00)
HOT = (
    'source id="ett", limit=2000 | select cols=["date", "OT"] '
    '| alert cond=OT > 40, message="hot oil", cooldown=500, time="date", snapshot=6, after=2'
)
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
    assert code == 1 and "--table 'x; drop table amml_alerts': a table name is" in err and "Traceback" not in err
    code, _, err = amml(capsys, "alerts", "show", "1", "--table", "amml_alerts")
    assert code == 1 and "AMML's own tables" in err
    code, out, _ = amml(capsys, "alerts", "list", "--json")
    assert len(json.loads(out)) == 2, "reading changed nothing"


def test_an_unreachable_database_is_named_without_a_traceback(capsys, monkeypatch):
    monkeypatch.setenv("AMML_DB_URL", "postgresql+psycopg://nobody:secret@127.0.0.1:1/amml")
    code, _, err = amml(capsys, "alerts", "list")
    assert code == 1 and err.startswith("alerts: cannot read the alerts in postgresql+psycopg://nobody:***@")
    assert "secret" not in err and "Traceback" not in err and "hint: check that the database is up" in err
