"""The registry's pages and JSON API (airflow_amml/ui) on a real registry (SQLite and real PostgreSQL, real
files in a local artifact store), mounted at /amml as the api-server mounts it.

Airflow's login is replaced here: a request names its stand-in user in the `X-Test-User` header (admin may
promote, viewer may not), through the same `Access` hooks the plugin fills with Airflow's JWT check and auth
manager. tests/airflow/test_plugin.py runs the real login and permission checks on the real Airflow app, and
tests/browser the whole thing in a browser.
"""

from dataclasses import dataclass
from urllib.parse import quote

import pytest
from fastapi import FastAPI, Header, HTTPException
from fastapi.testclient import TestClient

from airflow_amml.registry import Lineage, LocalArtifactStore, ModelRegistry
from airflow_amml.run_config import RunConfig
from airflow_amml.ui.app import create_app
from airflow_amml.ui.context import Access
from airflow_amml.ui.layout import render_page
from tests.registry.test_alias_history import png
from tests.ui.html_tree import parse

YAML = "name: ett\nversion: '0.1'\ndescription: LSTM on `ETTh1`, one step\nlayers: [{lstm: 8}]\n"
RUN_ID = "scheduled__2024-01-02T00:00:00+00:00"
ORIGIN = {"Origin": "http://testserver"}
HOSTILE = '"><script>alert(1)</script><img src=x onerror=alert(2)>'


@dataclass(frozen=True)
class StandInUser:
    name: str
    role: str


USERS = {"alice": StandInUser("alice", "admin"), "victor": StandInUser("victor", "viewer")}


def current_user(x_test_user: str | None = Header(None)) -> StandInUser:
    if x_test_user is None:
        raise HTTPException(status_code=401, detail="Not authenticated")
    return USERS[x_test_user]


ACCESS = Access(
    current_user=current_user,
    user_name=lambda user: user.name,
    can_promote=lambda user, version: user.role == "admin",
    readable_dags=lambda user: None if user.role == "admin" else {"watch"},  # tests/ui/test_alert_pages.py
)


@pytest.fixture(params=["sqlite", "postgresql"])
def registry(request, tmp_path):
    url = (
        f"sqlite:///{tmp_path / 'registry.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    registry = ModelRegistry(url, LocalArtifactStore(tmp_path / "artifacts"))
    registry.register_definition("ett", "0.1", YAML)
    return registry


@pytest.fixture
def files(tmp_path):
    model = tmp_path / "model.keras"
    model.write_bytes(b"keras-weights" * 100)
    loss, prediction = tmp_path / "loss.png", tmp_path / "prediction.png"
    loss.write_bytes(png(40, 30))
    prediction.write_bytes(png(64, 16))
    return model, {"loss": loss, "prediction": prediction}


def register(registry, files, *, run_id=RUN_ID, **kwargs):
    model, plots = files
    lineage = Lineage(
        "ett_train", run_id, "train_lstm", "2024-01-01T00:00:00+00:00", "2024-01-02T00:00:00+00:00", "ab" * 32
    )
    return registry.register_version("ett", "ett:0.1", model, plots=plots, lineage=lineage, **kwargs)


@pytest.fixture
def client(registry):
    """The app mounted at /amml under an api-server's root, as Airflow mounts plugin apps."""
    server = FastAPI()
    server.mount("/amml", create_app(lambda: registry, ACCESS, RunConfig.from_environment, url_prefix="/amml"))
    return TestClient(server)


def get(client, path, user="alice", **kwargs):
    return client.get(path, headers={"X-Test-User": user}, **kwargs)


def cells(tr):
    """The text of a row's cells, header cells included."""
    return [c.text for c in tr.children if not isinstance(c, str) and c.tag in ("th", "td")]


def page(response, status=200):
    assert response.status_code == status, response.text[:2000]
    assert response.headers["content-type"].startswith("text/html")
    return parse(response.text)


def test_models_list_shows_each_model_with_its_description_latest_version_aliases_and_champion_metric(
    registry, files, client
):
    register(registry, files, metrics={"residual_mean": 0.5, "val_loss": 0.25, "holdout_mae": 1.5})
    register(registry, files, metrics={"val_loss": 0.125})
    registry.set_alias("ett", "champion", 1)
    doc = page(get(client, "/amml/ui/"))
    assert doc.find("h1").text == "ML Models"
    row = doc.find("table", id="models").find("tr", data_model="ett")
    cells = [td.text for td in row.find_all("td")]
    # the definition's description (its backticks as code), the latest version, how many versions
    assert cells[:3] == ["ett", "LSTM on ETTh1 , one step", "2"] and cells[5] == "2"
    assert row.find("td", class_="description").find("code").text == "ETTh1"
    assert [s.text for s in row.find_all("span", class_="alias")] == ["@champion → 1"]
    assert row.find("a")["href"] == "/amml/ui/models/ett"
    # the champion's (not the latest's) most telling metric: holdout_mae before val_loss and residual_*
    assert row.find("td", class_="key-metric").text == "holdout_mae 1.5 (@champion, ett/1 )"
    footer = doc.find("p", class_="footer")
    assert [(a.text, a["href"]) for a in footer.find_all("a")] == [("API", "/amml/docs"), ("JSON", "/amml/models")]


def test_an_empty_registry_says_how_to_get_a_model(client):
    doc = page(get(client, "/amml/ui/"))
    assert doc.find("table", id="models").find_all("tr") == []
    empty = doc.find("p", class_="empty")
    assert [c.text for c in empty.find_all("code")] == ["train_lstm", "amml model register"] and "`" not in empty.text


def test_model_page_lists_versions_newest_first_with_their_details_and_the_alias_history(registry, files, client):
    # residual_mean: an internal of the detector, not a column (the header below has 3 metrics, room for 5)
    register(
        registry,
        files,
        metrics={"val_loss": 0.25, "loss": 0.2, "epochs": 3, "residual_mean": 0.5},
        tags={"team": "grid"},
    )
    second_run = "manual__2026-12-01T15:38:51.312493+00:00"
    register(registry, files, metrics={"val_loss": 0.125, "loss": 0.1, "epochs": 5}, run_id=second_run)
    registry.set_alias("ett", "champion", 1, set_by="alice", reason="first")
    # a run that promotes names itself dag/run/task (components/lstm.py alias_set_by)
    registry.set_alias("ett", "champion", 2, set_by=f"ett_train/{second_run}/train_lstm", reason="lower `val_loss`")
    doc = page(get(client, "/amml/ui/models/ett"))
    assert doc.find("h1").text == "ett"
    table = doc.find("table", id="versions")
    assert [th.text for th in table.find("thead").find_all("th")] == [
        "Compare", "Version", "Registered at", "Definition", "Status", "Aliases", "Tags", "val_loss", "loss",
        "epochs", "Run"
    ]  # fmt: skip
    rows = table.find("tbody").find_all("tr")
    assert [r["data-version"] for r in rows] == ["2", "1"]
    newest = [td.text for td in rows[0].find_all("td")]
    assert newest[3:10] == ["ett:0.1", "ready", "@champion", "", "0.125", "0.1", "5"]
    assert [td.text for td in rows[1].find_all("td")][6] == "team=grid"
    # the run: its kind and date (not only the DAG), linked to Airflow's run page
    assert newest[-1] == "manual 2026-12-01 15:38:51 ett_train"
    run = rows[0].find_all("td")[-1].find("a")
    assert (run["href"], run["target"]) == (f"/dags/ett_train/runs/{quote(second_run, safe='')}", "_top")
    assert [td.text for td in rows[1].find_all("td")][-1] == "scheduled 2024-01-02 00:00:00 ett_train"
    assert [c["value"] for c in table.find_all("input", type="checkbox")] == ["2", "1"]
    assert doc.find(id="compare").tag == "button"
    history_rows = doc.find("table", id="alias-history").find_all("tr")[1:]
    history = [[td.text for td in tr.find_all("td")] for tr in history_rows]
    assert [h[1:] for h in history] == [
        ["@champion", "2", "1", "run manual 2026-12-01 15:38:51", "lower val_loss"],
        ["@champion", "1", "—", "alice", "first"],
    ]
    by_run = history_rows[0].find("td", class_="by").find("a")
    assert by_run["href"] == run["href"] and by_run["title"] == f"ett_train/{second_run}/train_lstm"
    assert history_rows[0].find_all("code")[0].text == "val_loss"


def test_version_page_shows_metrics_scaler_lineage_plots_and_definition(registry, files, client):
    scaler = {"kind": "minmax", "columns": {"OT": [-4.25, 46.0], "HUFL": [0.5, 23.5]}}
    metrics = {"val_loss": 0.0123456, "epochs": 3, "residual_threshold": 0.25, "custom": 1}
    params = {"epoch": 2, "batch_size": 32, "holdout": None, "register": True}
    register(registry, files, metrics=metrics, params=params, scaler=scaler, tags={"team": "grid"})
    registry.set_alias("ett", "champion", 1)
    doc = page(get(client, "/amml/ui/models/ett/versions/1"))
    assert doc.find("h1").text == "ett/1"
    assert [s.text for s in doc.find("p").find_all("span", class_="alias")] == ["@champion"]
    shown = [cells(tr) for tr in doc.find("table", id="metrics").find_all("tr")]
    assert shown == [
        ["Metric", "Value", "Meaning"],
        [
            "val_loss",
            "0.01235",
            "the same loss on the validation split (the last records of the training data), last epoch "
            "(an ensemble's: of its mean forecast)",
        ],
        ["epochs", "3", "epochs trained (an ensemble's: the most one member ran)"],
        ["custom", "1", ""],
        [
            "residual_threshold",
            "0.25",
            "the dynamic threshold ε on those errors (Hundman et al. 2018) that "
            "residual_detector model= flags anomalies above",
        ],
    ]  # 4 significant digits; the preferred metrics first, the detector's internals last
    assert doc.find("table", id="metrics").find_all("code")[0].text == "residual_detector model="
    shown_params = [cells(tr) for tr in doc.find("table", id="params").find_all("tr")]
    assert shown_params == [
        ["Parameter", "Value"],
        ["batch_size", "32"],
        ["epoch", "2"],
        ["holdout", "—"],
        ["register", "true"],
    ]
    scaler_table = doc.find("table", id="scaler")
    assert [th.text for th in scaler_table.find("thead").find_all("th")] == ["Column (minmax)", "min", "max"]
    assert [[c.text for c in tr.find_all()[1:]] for tr in scaler_table.find("tbody").find_all("tr")] == [
        ["HUFL", "0.5", "23.5"], ["OT", "-4.25", "46"]
    ]  # fmt: skip
    lineage = doc.find("table", id="lineage")
    link = lineage.find("a", id="run-link")
    assert link["href"] == f"/dags/ett_train/runs/{quote(RUN_ID, safe='')}" and link["target"] == "_top"
    assert "2024-01-01T00:00:00+00:00 → 2024-01-02T00:00:00+00:00" in lineage.text and "ab" * 32 in lineage.text
    plots = {img["alt"]: img["src"] for img in doc.find_all("img", class_="plot")}
    assert plots == {
        "loss": "/amml/models/ett/versions/1/plots/loss",
        "prediction": "/amml/models/ett/versions/1/plots/prediction",
    }
    for alt, src in plots.items():
        served = get(client, src)
        assert served.headers["content-type"] == "image/png"
        assert served.content == files[1][alt].read_bytes(), "the plot is the stored file, byte for byte"
    assert [img.attrs.get("title") for img in doc.find_all("img", class_="plot")] == ["loss", "prediction"]
    assert doc.find_all("figcaption") == [], "no caption repeating the plot's own title"
    assert doc.find("pre", id="definition").text == " ".join(YAML.split())
    assert doc.find("table", id="tags").find("td").text == "grid"
    download = doc.find("a", id="artifact-link")
    assert download["href"] == "/amml/models/ett/versions/1/artifact"
    assert get(client, download["href"]).content == files[0].read_bytes()
    form = doc.find("form", id="promote")
    assert form.find("input", name="alias") and form.find("button", id="promote-button")
    assert "disabled" not in form.find("fieldset").attrs
    headings = [h.text for h in doc.find_all("h2")]
    assert headings.index("Promote") > headings.index("Metrics") and headings.index("Promote") > headings.index(
        "Lineage"
    ), headings
    # version 1 is the champion already: the form does not offer to point champion at it again
    assert form.find("input", name="alias")["value"] == ""
    assert [o["value"] for o in form.find("datalist").find_all("option")] == []


def test_the_promote_form_offers_the_aliases_of_other_versions_and_refuses_a_move_to_where_it_is(
    registry, files, client
):
    register(registry, files)
    register(registry, files)
    registry.set_alias("ett", "champion", 1)
    registry.set_alias("ett", "challenger", 2)
    form = page(get(client, "/amml/ui/models/ett/versions/2")).find("form", id="promote")
    assert form.find("input", name="alias")["value"] == "champion"  # version 2 is not the champion
    assert [o["value"] for o in form.find("datalist").find_all("option")] == ["champion"]  # not challenger
    again = client.post(
        "/amml/ui/models/ett/versions/2/promote",
        data={"alias": "challenger"},
        headers={"X-Test-User": "alice", **ORIGIN},
    )
    assert page(again, 409).find(id="message").text == "ett@challenger already points at version 2: nothing to change."
    assert len(registry.alias_history("ett")) == 2, "no move recorded"


def test_a_version_from_before_params_were_kept_says_so(registry, files, client):
    register(registry, files)
    params = page(get(client, "/amml/ui/models/ett/versions/1")).find("table", id="params")
    assert "Not recorded" in params.find("td", class_="empty").text


def test_the_model_file_is_downloaded_from_the_artifact_store_behind_the_login(registry, files, client):
    register(registry, files)
    response = get(client, "/amml/models/ett/versions/1/artifact")
    assert response.status_code == 200 and response.content == files[0].read_bytes()
    assert response.headers["content-disposition"] == "attachment; filename*=UTF-8''ett-1-model.keras"
    assert response.headers["content-type"] == "application/octet-stream"
    assert client.get("/amml/models/ett/versions/1/artifact").status_code == 401
    missing = get(client, "/amml/models/ett/versions/9/artifact")
    assert missing.status_code == 404 and "no version 'ett/9'" in missing.json()["detail"]


def test_a_too_large_model_file_is_refused_not_read(registry, files, client, monkeypatch):
    from airflow_amml.ui import api

    register(registry, files)
    monkeypatch.setattr(api, "MAX_ARTIFACT_BYTES", files[0].stat().st_size - 1)
    response = get(client, "/amml/models/ett/versions/1/artifact")
    assert response.status_code == 413 and "from the artifact store" in response.json()["detail"]


def test_the_pages_load_one_script_from_here_served_without_the_login(registry, files, client):
    """The script that lets target=_top links work inside Airflow's sandboxed iframe (templates/amml.js):
    loaded from this site (the CSP allows no other and no inline script), served to anyone (it holds no data;
    the "not logged in" page needs it too)."""
    register(registry, files)
    for response in (get(client, "/amml/ui/models/ett/versions/1"), client.get("/amml/ui/models/ett")):
        [script] = parse(response.text).find_all("script")
        assert script["src"] == "/amml/ui/static/amml.js" and script.children == []
        csp = response.headers["content-security-policy"]
        assert "script-src 'self';" in csp and "unsafe-inline" not in csp.split("style-src")[0]
    served = client.get("/amml/ui/static/amml.js")
    assert served.status_code == 200 and served.headers["content-type"].startswith("text/javascript")
    assert "history.pushState" in served.text and 'a[target="_top"]' in served.text


def test_hostile_names_tags_metrics_and_lineage_are_escaped(registry, files, client):
    hostile_yaml = f"name: ett\nnote: '</pre>{HOSTILE}'\n"
    registry.register_definition("ett", "0.2", hostile_yaml)
    model, plots = files
    registry.register_version(
        "ett", "ett:0.2", model, plots=plots, tags={"note": HOSTILE}, metrics={"comment": HOSTILE},
        lineage=Lineage("ett_train", HOSTILE, "train_lstm"),
    )  # fmt: skip
    registry.set_alias("ett", "champion", 1, set_by=HOSTILE, reason=HOSTILE)
    for path in ("/amml/ui/", "/amml/ui/models/ett", "/amml/ui/models/ett/versions/1"):
        response = get(client, path)
        doc = page(response)
        scripts = doc.find_all("script")
        assert [(s["src"], s.children) for s in scripts] == [("/amml/ui/static/amml.js", [])], path
        assert not [i for i in doc.find_all("img") if "onerror" in i.attrs], path
        assert "<script>" not in response.text
    version = parse(get(client, "/amml/ui/models/ett/versions/1").text)
    assert HOSTILE in version.find("table", id="tags").text and HOSTILE in version.find("table", id="metrics").text
    assert version.find("a", id="run-link")["href"] == f"/dags/ett_train/runs/{quote(HOSTILE, safe='')}"
    assert f"</pre>{HOSTILE}" in version.find("pre", id="definition").text
    history = parse(get(client, "/amml/ui/models/ett").text).find("table", id="alias-history")
    assert history.text.count(HOSTILE) == 2


def test_promoting_from_the_form_records_who_when_and_why(registry, files, client):
    register(registry, files)
    register(registry, files)
    response = client.post(
        "/amml/ui/models/ett/versions/1/promote",
        data={"alias": "champion", "reason": "best hold-out MAE"},
        headers={"X-Test-User": "alice", **ORIGIN},
        follow_redirects=False,
    )
    assert (
        response.status_code == 303
        and response.headers["location"] == "/amml/ui/models/ett/versions/1?promoted=champion"
    )
    doc = page(get(client, response.headers["location"]))
    message = doc.find("div", id="message")
    assert message["role"] == "alert" and message.text == "ett@champion now points at version 1."
    assert registry.resolve("ett@champion").version == 1
    [change] = registry.alias_history("ett")
    assert (change.set_by, change.reason, change.previous_version) == ("alice", "best hold-out MAE", None)
    listed = get(client, "/amml/models/ett/aliases").json()
    assert listed[0]["set_by"] == "alice" and listed[0]["set_at"] == change.set_at.isoformat()
    # a bad alias: the form again, saying why
    bad = client.post(
        "/amml/ui/models/ett/versions/2/promote", data={"alias": "no good"}, headers={"X-Test-User": "alice", **ORIGIN}
    )
    assert "alias 'no good'" in page(bad, 400).find("div", id="message").text
    assert len(registry.alias_history("ett")) == 1


def test_a_viewer_sees_the_form_disabled_and_a_forced_promotion_is_refused(registry, files, client):
    register(registry, files)
    doc = page(get(client, "/amml/ui/models/ett/versions/1", user="victor"))
    assert "disabled" in doc.find("form", id="promote").find("fieldset").attrs
    assert "You (victor) may view this model but not promote it" in doc.find(id="promote-denied").text
    forced = client.post(
        "/amml/ui/models/ett/versions/1/promote",
        data={"alias": "champion"},
        headers={"X-Test-User": "victor", **ORIGIN},
    )
    assert "victor may not promote ett/1" in page(forced, 403).find("div", id="message").text
    api = client.put(
        "/amml/models/ett/aliases/champion", json={"version": 1}, headers={"X-Test-User": "victor", **ORIGIN}
    )
    assert api.status_code == 403 and "victor may not promote ett/1" in api.json()["detail"]
    assert registry.alias_history("ett") == []


def test_a_cross_site_promotion_is_refused(registry, files, client):
    """The login is a cookie the browser attaches to a form posted from any site: such a post must come
    from this site's pages (Origin, else Referer); a bearer token is an explicit credential and may."""
    register(registry, files)
    admin = {"X-Test-User": "alice"}
    for headers in ({"Origin": "https://evil.example"}, {"Referer": "https://evil.example/x"}, {}, {"Origin": "null"}):
        form = client.post(
            "/amml/ui/models/ett/versions/1/promote", data={"alias": "champion"}, headers={**admin, **headers}
        )
        assert "did not come from the ML Models page" in page(form, 403).find("div", id="message").text
        api = client.put("/amml/models/ett/aliases/champion", json={"version": 1}, headers={**admin, **headers})
        assert api.status_code == 403 and "did not come from the ML Models page" in api.json()["detail"]
    assert registry.alias_history("ett") == []
    referer = client.put(
        "/amml/models/ett/aliases/champion",
        json={"version": 1},
        headers={**admin, "Referer": "http://testserver/amml/ui/"},
    )
    assert referer.status_code == 200
    bearer = client.put(
        "/amml/models/ett/aliases/champion", json={"version": 1}, headers={**admin, "Authorization": "Bearer t"}
    )
    assert bearer.status_code == 200 and len(registry.alias_history("ett")) == 2


def test_the_api_promotes_and_lists_the_history_newest_first(registry, files, client):
    register(registry, files)
    register(registry, files)
    headers = {"X-Test-User": "alice", **ORIGIN}
    first = client.put("/amml/models/ett/aliases/champion", json={"version": 1}, headers=headers).json()
    second = client.put(
        "/amml/models/ett/aliases/champion", json={"version": 2, "reason": "retrained"}, headers=headers
    )
    assert (first["version"], first["previous_version"], first["set_by"]) == (1, None, "alice")
    assert second.json()["previous_version"] == 1 and second.json()["reason"] == "retrained"
    history = get(client, "/amml/models/ett/aliases").json()
    assert [(h["version"], h["previous_version"]) for h in history] == [(2, 1), (1, None)]
    assert get(client, "/amml/models/ett@champion").json()["version"] == 2
    unknown = client.put("/amml/models/ett/aliases/champion", json={"version": 9}, headers=headers)
    assert unknown.status_code == 404 and "no version 'ett/9'" in unknown.json()["detail"]
    assert client.put("/amml/models/ett/aliases/champion", json={"version": 0}, headers=headers).status_code == 422


def test_compare_shows_metrics_side_by_side_and_highlights_differences(registry, files, client):
    register(registry, files, metrics={"val_loss": 0.5, "epochs": 10, "mae": 0.25})
    register(registry, files, metrics={"val_loss": 0.25, "epochs": 10, "mae": 0.5})
    register(registry, files, metrics={"val_loss": 0.75, "epochs": 10})
    doc = page(get(client, "/amml/ui/models/ett/compare?versions=3&versions=1&versions=2"))
    assert doc.find("h1").text == "Comparing 3 versions of ett"
    table = doc.find("table", id="compare")
    assert [th.text for th in table.find("thead").find_all("th")] == ["", "ett/1", "ett/2", "ett/3"]
    rows = {tr["data-metric"]: tr for tr in table.find_all("tr") if "data-metric" in tr.attrs}
    assert [td.text for td in rows["val_loss"].find_all("td")] == ["0.5", "0.25", "0.75"]
    assert "differs" in rows["val_loss"]["class"] and "class" not in rows["epochs"].attrs
    assert rows["val_loss"].find("td", class_="best").text == "0.25"  # lowest loss of the three
    assert [td.text for td in rows["mae"].find_all("td")] == ["0.25", "0.5", "—"]
    one = get(client, "/amml/ui/models/ett/compare?versions=1")
    assert "Select two or more versions" in page(one, 400).find("div", id="message").text


def test_errors_are_readable_pages_on_the_pages_and_json_on_the_api(registry, files, client):
    register(registry, files)
    unknown = page(get(client, "/amml/ui/models/etx"), 404)
    message = unknown.find("div", id="message")
    assert (
        message["role"] == "alert" and "no model named 'etx'" in message.text and "did you mean ett ?" in message.text
    )
    assert "ett" in [c.text for c in message.find_all("code")], "backticks shown as code, not as backticks"
    assert unknown.find("h1").text == "404 Not Found"
    assert "no version 'ett/7'" in page(get(client, "/amml/ui/models/ett/versions/7"), 404).find(id="message").text
    assert "versions/abc" not in page(get(client, "/amml/ui/models/ett/versions/abc"), 400).find(id="message").text
    missing = get(client, "/amml/models/ett@champion")
    assert missing.status_code == 404 and missing.headers["content-type"] == "application/json"
    assert (
        "hint: promote a version: `amml model alias champion ett/1`, or on the ML Models page"
        in missing.json()["detail"]
    ), "the API keeps the text as it is"
    anonymous = client.get("/amml/ui/models/ett")
    login = page(anonymous, 401)
    assert "not logged in" in login.find(id="message").text and login.find("a", target="_top")["href"] == "/"
    assert client.get("/amml/models").status_code == 401 and client.get("/amml/models").json() == {
        "detail": "Not authenticated"
    }
    assert client.get("/amml/openapi.json").status_code == 401 and client.get("/amml/docs").status_code == 401


def test_the_docs_page_describes_every_api_route_and_loads_nothing_from_the_internet(client):
    response = get(client, "/amml/docs")
    doc = page(response)
    routes = [h.text for h in doc.find_all("h2")]
    for route in (
        "GET /amml/models",
        "GET /amml/models/{name}/aliases",
        "PUT /amml/models/{name}/aliases/{alias}",
        "GET /amml/models/{name}/versions/{number}/plots/{plot}",
        "GET /amml/models/{ref}",
        "GET /amml/models/{name}/versions/{number}/artifact",
    ):
        assert route in routes
    assert [s["src"] for s in doc.find_all("script")] == ["/amml/ui/static/amml.js"] and doc.find_all("link") == []
    artifact = next(h for h in doc.find_all("section") if "/artifact" in h.find("h2").text)
    assert "sha256" in artifact.text
    # descriptions' backticks are code: "model name, e.g. `ett`"
    assert "ett" in [c.text for c in doc.find("main").find_all("code")] and "`" not in doc.find("main").text
    assert "version" in doc.find("pre").text and "reason" in doc.find("pre").text
    schema = get(client, "/amml/openapi.json").json()
    assert "/models/{name}/aliases/{alias}" in schema["paths"] and not any(p.startswith("/ui") for p in schema["paths"])


def test_render_page_escapes_the_title_and_crumbs_but_not_the_body():
    html = render_page("<b>t</b>", "<p id='x'>body</p>", crumbs=[("<i>c</i>", '/x?a="1"')], message="<m>")
    doc = parse(html)
    assert doc.find("h1").text == "<b>t</b>" and doc.find("p", id="x").text == "body"
    crumb = doc.find("nav").find("a")
    assert crumb.text == "<i>c</i>" and crumb["href"] == '/x?a="1"'
    assert doc.find("div", id="message").text == "<m>" and doc.find_all("b") == []
