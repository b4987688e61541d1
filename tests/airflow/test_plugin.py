"""The plugin and provider entry points, as Airflow discovers them (in a fresh interpreter with its own home)."""

import json
import os
import subprocess
import sys
from pathlib import Path

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
    assert client.get("/docs").status_code == 404, "the HTML docs (unauthenticated, from a CDN) are off"
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
