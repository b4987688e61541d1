"""The alerts pages (airflow_amml/ui/alert_pages.py) on alerts real pipelines recorded (the embedded SQLite of
the test's AMML_HOME), behind the stand-in login of tests/ui/test_pages.py: alice may read every DAG,
victor only `watch` (the plugin asks Airflow's auth manager; tests/browser drives the pages in a browser)."""

from __future__ import annotations

import csv
import io
import json

import pandas as pd
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from airflow_amml.registry import LocalArtifactStore, ModelRegistry
from airflow_amml.run_config import RunConfig
from airflow_amml.ui.app import create_app
from tests.detection.test_alert_history import HOT, WATCH, run
from tests.ui.html_tree import parse
from tests.ui.test_pages import ACCESS, HOSTILE, cells, get, page


@pytest.fixture
def client(tmp_path):
    registry = ModelRegistry(f"sqlite:///{tmp_path / 'registry.db'}", LocalArtifactStore(tmp_path / "artifacts"))
    server = FastAPI()
    server.mount("/amml", create_app(lambda: registry, ACCESS, RunConfig.from_environment, url_prefix="/amml"))
    return TestClient(server)


def rows(html):
    return {int(tr.attrs["data-alert"]): cells(tr) for tr in html.find("table", id="alerts").find_all("tr")[1:]}


def test_the_list_shows_the_alerts_newest_first_linked_to_their_runs_and_filters(client):
    run(HOT)  # alerts 1, 2: outside Airflow
    run(HOT.replace("hot oil", "hot oil in a task"), lineage=WATCH)  # alerts 3, 4: DAG watch
    html = page(get(client, "/amml/ui/alerts"))
    listed = rows(html)
    assert list(listed) == [4, 3, 2, 1]
    assert listed[2][2:5] == ["2016-08-06 14:00:00 UTC", "warning", "hot oil"] and listed[2][0] == "2"
    assert listed[4][6:8] == ["watch", "manual__2024-01-01"] and listed[1][6] == "—"
    assert listed[4][9] == "complete (8 records)"  # 6 records before the alert's own and 2 after
    run_link = html.find("tr", data_alert="4").find("td", class_="run").find("a")
    assert run_link.attrs["href"] == "/dags/watch/runs/manual__2024-01-01" and run_link.attrs["target"] == "_top"
    assert html.find("a", href="/amml/ui/alerts/4").text == "4"
    # a DAG's alerts only (its link in the table), and a limit
    assert list(rows(page(get(client, "/amml/ui/alerts?dag=watch")))) == [4, 3]
    assert list(rows(page(get(client, "/amml/ui/alerts?limit=1")))) == [4]
    empty = page(get(client, "/amml/ui/alerts?dag=nothing"))
    assert rows(empty) == {} and "No alert matches." in empty.text
    page(get(client, "/amml/ui/alerts?limit=0"), 400)
    page(get(client, "/amml/ui/alerts?limit=1001"), 400)


def test_a_reader_sees_only_the_alerts_of_the_dags_they_may_read(client):
    run(HOT)
    run(HOT, lineage=WATCH)
    assert list(rows(page(get(client, "/amml/ui/alerts", user="victor")))) == [4, 3]  # DAG watch only
    page(get(client, "/amml/ui/alerts/3", user="victor"))
    refused = page(get(client, "/amml/ui/alerts/1", user="victor"), 404)  # raised outside Airflow
    assert "There is no alert 1 that you may view." in refused.text
    # nothing else of it is read first: not its snapshot table, which would say what tables and columns exist
    assert get(client, "/amml/ui/alerts/1?table=amml_alerts", user="victor").status_code == 404
    assert get(client, "/amml/ui/alerts/9?table=amml_alerts", user="victor").status_code == 404
    for path in ("/amml/ui/alerts/1/snapshot.csv", "/amml/ui/alerts/1/snapshot.png"):
        assert get(client, path, user="victor").status_code == 404
    assert get(client, "/amml/ui/alerts/1/snapshot.csv").status_code == 200  # alice may read every DAG
    assert client.get("/amml/ui/alerts").status_code == 401  # not logged in


def test_an_alert_shows_its_record_and_the_snapshot_around_it_as_a_table_a_plot_and_csv(client, ett_path):
    run(HOT)
    html = page(get(client, "/amml/ui/alerts/1"))
    fields = {cells(tr)[0]: cells(tr)[1] for tr in html.find("table", id="alert").find_all("tr")}
    assert fields["message"] == "hot oil" and fields["record time"] == "2016-07-12 16:00:00 UTC"
    assert fields["snapshot"] == "complete" and fields["run"].replace(" ,", ",") == "amml run, outside Airflow"
    ett = pd.read_csv(ett_path)[["date", "OT"]]
    record = {cells(tr)[0]: cells(tr)[1] for tr in html.find("table", id="record").find_all("tr")}
    assert record == {"date": "2016-07-12 16:00:00", "OT": f"{ett['OT'][280]:.4g}"}
    snapshot = html.find("table", id="snapshot").find_all("tr")
    assert cells(snapshot[0]) == ["#", "date", "OT"]
    assert [cells(tr)[1] for tr in snapshot[1:]] == list(ett["date"][275:283])  # stream order
    assert [i for i, tr in enumerate(snapshot[1:]) if tr.attrs.get("class") == "alert-row"] == [5]
    # the plot of the records around the alert, and every record as CSV
    assert html.find("img", id="snapshot-plot").attrs["src"] == "/amml/ui/alerts/1/snapshot.png"
    png = get(client, "/amml/ui/alerts/1/snapshot.png")
    assert png.status_code == 200 and png.headers["content-type"] == "image/png" and png.content[:4] == b"\x89PNG"
    download = get(client, html.find("a", id="snapshot-csv").attrs["href"])
    assert download.headers["content-disposition"] == 'attachment; filename="alert-1-snapshot.csv"'
    written = pd.read_csv(io.StringIO(download.text))
    pd.testing.assert_frame_equal(written, ett.iloc[275:283].reset_index(drop=True), check_dtype=False, rtol=1e-6)


def test_unknown_alerts_bad_tables_and_an_unreadable_database_are_pages_that_say_why(client, monkeypatch):
    assert "No alert is recorded yet" in page(get(client, "/amml/ui/alerts")).text  # no table yet: empty
    run(HOT)
    assert "There is no alert 9 that you may view." in page(get(client, "/amml/ui/alerts/9"), 404).text
    page(get(client, "/amml/ui/alerts/0"), 400)
    page(get(client, f"/amml/ui/alerts/{2**63}"), 400)  # more than a database integer holds
    bad = page(get(client, "/amml/ui/alerts/1?table=x;drop table amml_alerts"), 400)
    assert "snapshot table 'x;drop table amml_alerts': a table name is" in bad.text
    other = page(get(client, "/amml/ui/alerts/1?table=amml_alerts"), 400)
    assert "snapshot table 'amml_alerts'" in other.text and "own tables" in other.text
    missing = page(get(client, "/amml/ui/alerts/1?table=incidents"))
    assert "No records of this alert in table incidents" in missing.text and "?table=NAME" in missing.text
    monkeypatch.setenv("AMML_DB_URL", "postgresql+psycopg://amml:secret@127.0.0.1:1/none")
    down = page(get(client, "/amml/ui/alerts"), 503)
    assert "The alerts database cannot be read now (the api-server's log says why" in down.text
    # where the database is, and who it lets in, is for the log, not for every reader
    assert "127.0.0.1" not in down.text and "amml" not in down.text.split("ML Models")[-1].replace("amml.js", "")
    assert "secret" not in down.text and "Traceback" not in down.text


def test_what_a_pipeline_wrote_is_shown_as_text_never_as_markup(client):
    run(HOT.replace('message="hot oil"', f"message='{HOSTILE}'"))  # HOSTILE has double quotes only
    for path in ("/amml/ui/alerts", "/amml/ui/alerts/1"):
        response = get(client, path)
        assert response.status_code == 200 and "<script>alert(1)</script>" not in response.text
        assert HOSTILE in parse(response.text).text
    rows_ = list(csv.reader(io.StringIO(get(client, "/amml/ui/alerts/1/snapshot.csv").text)))
    assert rows_[0] == ["date", "OT"] and len(rows_) == 9


def test_a_wide_odd_snapshot_is_bounded_on_the_page_and_whole_and_spreadsheet_safe_in_the_csv(client):
    """Records the page must bound (60 columns, long text) and a CSV must keep whole (a key that first appears
    in the last record) and safe (text a spreadsheet would run); a message with `$` plots as written."""
    import sqlalchemy as sa

    from airflow_amml import tables

    run(HOT.replace('message="hot oil"', "message='costs $\\frac{1}{0}$'"))
    engine = sa.create_engine(f"sqlite:///{RunConfig.from_environment().home / 'amml.db'}")
    snapshots = tables.snapshot_table(tables.SNAPSHOT_DEFAULT)
    with engine.begin() as conn:
        [[snapshot_id, saved_at, event, position]] = conn.execute(
            sa.select(snapshots.c.snapshot_id, snapshots.c.saved_at, snapshots.c.event, snapshots.c.alert_position)
            .where(snapshots.c.alert_id == 1).limit(1)
        ).all()
        wide = {"text": "x" * 5000, "note": "=HYPERLINK(1)"} | {f"c{i}": i for i in range(60)}
        conn.execute(snapshots.insert(), [
            {"snapshot_id": snapshot_id, "saved_at": saved_at, "event": event, "alert_position": position,
             "row_position": 10_000 + k, "record": json.dumps(record), "alert_id": 1}
            for k, record in enumerate([wide, {"late": 1}])
        ])  # fmt: skip
    engine.dispose()
    html = page(get(client, "/amml/ui/alerts/1"))
    header = cells(html.find("table", id="snapshot").find_all("tr")[0])
    assert len(header) == 1 + 50 and header[1:3] == ["date", "OT"]  # the first 50 columns
    assert "10 records saved around the alert" in html.text and "15 more columns are in the CSV only" in html.text
    assert "x" * 199 + "…" in html.text and "x" * 201 not in html.text  # long text cut on the page
    download = list(csv.DictReader(io.StringIO(get(client, "/amml/ui/alerts/1/snapshot.csv").text)))
    assert len(download) == 10 and download[-1]["late"] == "1" and download[-2]["text"] == "x" * 5000
    assert download[-2]["note"] == "'=HYPERLINK(1)" and download[-2]["c59"] == "59"
    png = get(client, "/amml/ui/alerts/1/snapshot.png")
    assert png.status_code == 200 and png.content[:4] == b"\x89PNG"  # `$…$` is not math text


def test_the_json_api_gives_the_same_alerts_to_the_same_readers(client):
    run(HOT)
    run(HOT, lineage=WATCH)
    listed = get(client, "/amml/alerts").json()
    assert [a["id"] for a in listed] == [4, 3, 2, 1] and listed[0]["dag_id"] == "watch"
    assert listed[0]["record_time"].startswith("2016-08-06T14:00") and listed[0]["snapshot_rows"] == 8
    assert [a["id"] for a in get(client, "/amml/alerts", user="victor").json()] == [4, 3]
    assert [a["id"] for a in get(client, "/amml/alerts?dag=watch&limit=1").json()] == [4]
    shown = get(client, "/amml/alerts/2").json()
    assert shown["alert"]["record"] == {"date": "2016-08-06 14:00:00", "OT": shown["snapshot"][5]["OT"]}
    assert shown["snapshot_records"] == 8 and [r["date"][11:16] for r in shown["snapshot"]][5] == "14:00"
    hidden = get(client, "/amml/alerts/2", user="victor")
    assert hidden.status_code == 404 and hidden.json() == {"detail": "There is no alert 2 that you may view."}
    assert get(client, "/amml/alerts?limit=0").status_code == 422  # FastAPI's answer to a bad parameter
    assert client.get("/amml/alerts").status_code == 401
    schema = get(client, "/amml/openapi.json").json()
    assert {"/alerts", "/alerts/{alert_id}"} <= set(schema["paths"])
