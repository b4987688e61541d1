"""The plugin and provider entry points, as Airflow discovers them (in a fresh interpreter with its own home),
and the plugin's pages and API inside Airflow's real api-server app, with its real login (JWT in the UI's
cookie or a bearer token) and SimpleAuthManager's permission checks."""

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.airflow.airflow_home import migrated_database
from tests.detection.test_alert_history import HOT
from tests.detection.test_alert_history import run as run_alerts

ROOT = Path(__file__).resolve().parents[2]


def airflow(*args, env):
    result = subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), *args], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_airflow_lists_the_plugin_and_the_provider(tmp_path):
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    plugins = json.loads(airflow("plugins", "--output", "json", env=env))
    amml = next(p for p in plugins if p["name"] == "amml")
    assert "airflow-amml" in amml["source"]
    providers = airflow("providers", "list", "--output", "json", env=env)
    assert any(p["package_name"] == "airflow-amml" for p in json.loads(providers))


def test_models_endpoint_reads_the_registry(tmp_path, monkeypatch):
    from fastapi.testclient import TestClient

    from airflow_amml.plugin import create_app
    from airflow_amml.registry import ModelRegistry

    model = tmp_path / "model.keras"
    model.write_bytes(b"weights")
    registry = ModelRegistry.from_config()
    registry.register_definition("ett", "0.1", "name: ett\n")
    registry.register_version("ett", "ett:0.1", model, metrics={"mae": 0.01})
    registry.set_alias("ett", "champion", 1)
    app = create_app()
    client = TestClient(app)
    assert client.get("/models").status_code == 401, "no token, no models"
    assert client.get("/openapi.json").status_code == 401, "nor their schema"
    assert client.get("/docs").status_code == 401, "the API docs page is behind the login too"
    assert client.get("/ui/").status_code == 401, "and so are the pages"
    [authorized] = app.router.dependencies  # the api-server checks the caller's JWT: stand in for a viewer
    app.dependency_overrides[authorized.dependency] = lambda: None
    listing = client.get("/models").json()
    assert [(m["name"], m["version"], m["aliases"]) for m in listing] == [("ett", 1, ["champion"])]
    assert client.get("/models/ett@champion").json()["metrics"] == {"mae": 0.01}
    missing = client.get("/models/nope")
    assert missing.status_code == 404 and "no model named 'nope'" in missing.json()["detail"]
    assert client.get("/models/ett/" + "9" * 5000).status_code == 400
    assert "/models/{ref}" in client.get("/openapi.json").json()["paths"]


def test_loading_the_plugin_builds_nothing_until_the_api_server_asks():
    """Every task process loads the plugins (for their macros): the models app, with FastAPI, the registry and
    Airflow's API security, is built only when `fastapi_apps` is read."""
    code = (
        "import sys; import airflow_amml.plugin as p; "
        "print(sorted(m for m in ('fastapi', 'airflow.api_fastapi.core_api.security', 'airflow_amml.registry') "
        "if m in sys.modules)); "
        "[entry] = p.AmmlPlugin.fastapi_apps; print(entry['url_prefix'], type(entry['app']).__name__)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()  # Airflow's log lines may come in between
    assert lines[0] == "[]" and lines[-1] == "/amml FastAPI", result.stdout


def test_requests_reuse_one_engine_and_check_the_schema_once(monkeypatch, tmp_path):
    """The page builds a registry per request (a changed configuration is seen at once): the engine comes from
    the process's cache and the schema is not checked again, however many requests come."""
    import sqlalchemy as sa
    from fastapi.testclient import TestClient

    from airflow_amml.plugin import create_app
    from airflow_amml.registry import ModelRegistry, database

    model = tmp_path / "model.keras"
    model.write_bytes(b"weights")
    engines, checks = [], []
    create_engine, current_revision = sa.create_engine, database.HISTORY.current_revision
    monkeypatch.setattr(sa, "create_engine", lambda *a, **k: engines.append(a) or create_engine(*a, **k))
    monkeypatch.setattr(database.HISTORY, "current_revision", lambda conn: checks.append(1) or current_revision(conn))
    registry = ModelRegistry.from_config()
    registry.register_definition("ett", "0.1", "name: ett\n")
    registry.register_version("ett", "ett:0.1", model)
    assert (len(engines), len(checks)) == (1, 2), "the first registry of the process connects and migrates"
    app = create_app()
    [authorized] = app.router.dependencies
    app.dependency_overrides[authorized.dependency] = lambda: None
    client = TestClient(app)
    statements = []
    sa.event.listen(registry.engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    for _ in range(5):
        assert client.get("/models").status_code == 200 and client.get("/models/ett").status_code == 200
    assert (len(engines), len(checks)) == (1, 2), "no new engine, no schema check per request"
    assert not [s for s in statements if "alembic" in s or "sqlite_master" in s], statements
    assert ModelRegistry.from_config().engine is registry.engine


# Runs in a fresh interpreter with its own AIRFLOW_HOME (Airflow's configuration is per process): Airflow's
# own api-server app, its SimpleAuthManager with an admin and a viewer, the plugin mounted as Airflow mounts
# it; prints what each request got.
THROUGH_AIRFLOW = r"""
import json, os, sys
from pathlib import Path

from fastapi.testclient import TestClient
from airflow.api_fastapi.app import create_app, get_auth_manager
from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
from airflow_amml.registry import Lineage, ModelRegistry

work = Path(sys.argv[1])
model, plot = work / "model.keras", work / "loss.png"
model.write_bytes(b"weights" * 100)
plot.write_bytes(bytes(range(256)) * 4)
registry = ModelRegistry.from_config()
registry.register_definition("ett", "0.1", "name: ett\n")
lineage = Lineage("ett_train", "manual__2024-01-01T00:00:00+00:00", "train_lstm")
registry.register_version("ett", "ett:0.1", model, plots={"loss": plot}, lineage=lineage, metrics={"mae": 0.5})

app = create_app("core")
auth = get_auth_manager()
token = {role: auth.generate_jwt(SimpleAuthManagerUser(username=name, role=role))
         for name, role in (("alice", "admin"), ("victor", "viewer"), ("uma", "user"))}
client = TestClient(app, base_url="http://airflow.test")
same_site = {"Origin": "http://airflow.test"}
seen = {}

def record(key, response):
    seen[key] = [response.status_code, response.headers.get("content-type", ""), response.text]

def as_(role):  # the UI's session: the JWT in the `_token` cookie
    client.cookies.clear()
    if role:
        client.cookies.set("_token", token[role])

as_(None)
record("anonymous_page", client.get("/amml/ui/"))
record("anonymous_api", client.get("/amml/models"))
record("anonymous_docs", client.get("/amml/docs"))
record("anonymous_script", client.get("/amml/ui/static/amml.js"))
record("anonymous_artifact", client.get("/amml/models/ett/versions/1/artifact"))
as_("viewer")
record("viewer_page", client.get("/amml/ui/"))
record("viewer_version", client.get("/amml/ui/models/ett/versions/1"))
record("viewer_form", client.post("/amml/ui/models/ett/versions/1/promote", data={"alias": "champion"},
                                  headers=same_site))
record("viewer_put", client.put("/amml/models/ett/aliases/champion", json={"version": 1}, headers=same_site))
plot_response = client.get("/amml/models/ett/versions/1/plots/loss")
record("viewer_plot", plot_response)
seen["viewer_plot"][2] = plot_response.content.hex()
record("viewer_docs", client.get("/amml/docs"))
artifact_response = client.get("/amml/models/ett/versions/1/artifact")
record("viewer_artifact", artifact_response)
seen["viewer_artifact"][2] = artifact_response.content.hex()
record("viewer_schema", client.get("/amml/openapi.json"))
record("viewer_alerts", client.get("/amml/ui/alerts"))
record("viewer_alert", client.get("/amml/ui/alerts/1"))
from airflow_amml.plugin import readable_dags
viewer = SimpleAuthManagerUser(username="victor", role="viewer")
# SimpleAuthManager lets every role read every DAG: None, all alerts; the auth manager's own list of them runs too
seen["viewer_readable"] = [readable_dags(viewer), sorted(auth.get_authorized_dag_ids(user=viewer))]
as_("admin")
record("admin_version", client.get("/amml/ui/models/ett/versions/1"))
record("admin_cross_site", client.post("/amml/ui/models/ett/versions/1/promote", data={"alias": "champion"},
                                       headers={"Origin": "https://evil.example"}))
record("admin_form", client.post("/amml/ui/models/ett/versions/1/promote", data={"alias": "champion", "reason": "ok"},
                                 headers=same_site, follow_redirects=False))
as_("user")
record("user_put", client.put("/amml/models/ett/aliases/challenger", json={"version": 1}, headers=same_site))
as_(None)
record("bearer_put", client.put("/amml/models/ett/aliases/staging", json={"version": 1},
                                headers={"Authorization": "Bearer " + token["admin"]}))
history = [(c.alias, c.set_by, c.reason) for c in registry.alias_history("ett")]
facts = {"seen": seen, "history": history, "plot": plot.read_bytes().hex(), "model": model.read_bytes().hex()}
print("RESULT " + json.dumps(facts))
"""


def test_the_pages_and_the_api_behind_airflows_real_login_and_permissions(tmp_path):
    home = tmp_path / "airflow"
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "alice:admin,victor:viewer,uma:user",
        "PYTHONPATH": str(ROOT),
    }
    migrated_database(home)  # the login checks revoked tokens in Airflow's database
    run_alerts(HOT)  # alerts 1 and 2 in the AMML_HOME the script inherits
    script = tmp_path / "through_airflow.py"
    script.write_text(THROUGH_AIRFLOW)
    result = subprocess.run(
        [sys.executable, str(script), str(tmp_path)], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    [line] = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    facts = json.loads(line.removeprefix("RESULT "))
    seen = facts["seen"]

    def status(key):
        return seen[key][0]

    assert status("anonymous_page") == 401 and "not logged in to Airflow" in seen["anonymous_page"][2]
    assert seen["anonymous_page"][1].startswith("text/html"), "a readable page, not JSON, on the pages"
    assert (status("anonymous_api"), json.loads(seen["anonymous_api"][2])) == (401, {"detail": "Not authenticated"})
    assert status("anonymous_docs") == 401 and status("anonymous_artifact") == 401
    # the pages' one script holds no data and is served to anyone (the "not logged in" page needs it)
    assert status("anonymous_script") == 200 and seen["anonymous_script"][1].startswith("text/javascript")
    # a viewer reads everything, promotes nothing
    assert status("viewer_page") == 200 and 'data-model="ett"' in seen["viewer_page"][2]
    assert (
        status("viewer_version") == 200
        and "You (victor) may view this model but not promote it" in seen["viewer_version"][2]
    )
    assert status("viewer_form") == 403 and "victor may not promote ett/1" in seen["viewer_form"][2]
    assert status("viewer_put") == 403 and "victor may not promote ett/1" in json.loads(seen["viewer_put"][2])["detail"]
    assert status("viewer_plot") == 200 and seen["viewer_plot"][1] == "image/png"
    assert seen["viewer_plot"][2] == facts["plot"], "the plot served is the stored file, byte for byte"
    assert status("viewer_artifact") == 200 and seen["viewer_artifact"][2] == facts["model"], "the model file too"
    assert status("viewer_docs") == 200 and "PUT /amml/models/{name}/aliases/{alias}" in seen["viewer_docs"][2]
    assert "/models/{name}/aliases/{alias}" in json.loads(seen["viewer_schema"][2])["paths"]
    # an admin promotes from the page (not from another site); a USER may edit the DAG, so may promote
    assert status("admin_version") == 200 and "may view this model but not promote" not in seen["admin_version"][2]
    assert status("admin_cross_site") == 403 and "did not come from the ML Models page" in seen["admin_cross_site"][2]
    # the alerts pages: every DAG's alerts for a viewer who may read every DAG (SimpleAuthManager's roles)
    assert status("viewer_alerts") == 200 and 'data-alert="2"' in seen["viewer_alerts"][2]
    assert status("viewer_alert") == 200 and "hot oil" in seen["viewer_alert"][2]
    assert seen["viewer_readable"] == [None, []]
    assert status("admin_form") == 303
    assert status("user_put") == 200 and status("bearer_put") == 200
    assert facts["history"] == [["staging", "alice", None], ["challenger", "uma", None], ["champion", "alice", "ok"]]


def test_the_nav_entry_and_the_dag_tab_open_the_pages_in_airflows_iframe():
    from airflow_amml.plugin import AmmlPlugin
    from operators import links

    nav, tab = AmmlPlugin.external_views
    assert nav == {"name": "ML Models", "href": "amml/ui/", "destination": "nav", "url_route": "amml-models"}
    assert nav["url_route"] == links.MODELS_URL_ROUTE, "the extra link deep-links into this nav entry"
    # relative hrefs (no leading slash): the UI resolves them against its base URL
    assert tab == {
        "name": "Pipeline",
        "href": "amml/ui/dags/{DAG_ID}/pipeline",
        "destination": "dag",
        "url_route": "amml-pipeline",
    }


def test_the_extra_link_opens_the_version_page_inside_airflows_ui(monkeypatch):
    """Airflow's UI shows `/plugin/<url_route>/<path>` as the nav entry's page with `/<path>` in its iframe
    (the UI bundle's external-view route `plugin/:page/*`): the link keeps Airflow's chrome around the page."""
    from operators.links import model_url

    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "http://airflow.test:8080/base")
    assert model_url("ett/3") == "http://airflow.test:8080/base/plugin/amml-models/amml/ui/models/ett/versions/3"
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "")
    assert model_url("a b/1") == "/plugin/amml-models/amml/ui/models/a%20b/versions/1"
