"""Shared fixtures: an isolated AMML home (embedded SQLite, caches) and the ETTh1 copy shipped in the package."""

from pathlib import Path

import pytest

# Real PostgreSQL and HDFS (MiniDFSCluster) for the tests that ask for them; see tests/services/fixtures.py.
# One Airflow deployment on CeleryExecutor for the whole session; see tests/services/airflow_deployment.py.
pytest_plugins = ["tests.services.fixtures", "tests.services.airflow_deployment"]

ROOT = Path(__file__).resolve().parents[1]
ETT = ROOT / "airflow_amml" / "data" / "ett" / "ETTh1.csv"
DEPLOYMENT = "airflow_deployment"  # the session's Airflow (tests/services/airflow_deployment.py)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The modules that use the Airflow deployment run one after the other, where the first of them is (their
    own order kept): the deployment stops after the last of them, and an idle Airflow still parses and
    schedules (~0.1 CPU core), which the modules collected between them would otherwise share the machine
    with. Whole modules move, so module fixtures and a module's file order stay as they are."""
    users = {getattr(item, "module", None) for item in items if DEPLOYMENT in getattr(item, "fixturenames", ())}
    moved = [item for item in items if getattr(item, "module", None) in users]
    if not moved:
        return
    first = items.index(moved[0])
    rest = [item for item in items if getattr(item, "module", None) not in users]
    items[:] = rest[:first] + moved + rest[first:]


@pytest.fixture(autouse=True)
def amml_home(tmp_path, monkeypatch):
    """Every test gets its own AMML_HOME: its own embedded database, nothing shared between tests."""
    home = tmp_path / "amml-home"
    monkeypatch.setenv("AMML_HOME", str(home))
    monkeypatch.delenv("AMML_DB_URL", raising=False)
    monkeypatch.setenv("AMML_CACHE", str(tmp_path / "amml-cache"))  # never the user's own cache
    # file sinks write, and logsource reads, only under these roots: a test's own folder
    monkeypatch.setenv("AMML_OUTPUT_ROOT", str(tmp_path))
    monkeypatch.setenv("AMML_INPUT_ROOT", str(tmp_path))
    monkeypatch.delenv("AMML_DATABASES", raising=False)
    monkeypatch.delenv("AIRFLOW__CORE__DAGS_FOLDER", raising=False)
    monkeypatch.setenv("AMML_ETT_PATH", str(ETT))
    return home


@pytest.fixture(scope="session")
def ett_path():
    assert ETT.is_file(), f"the tests read ETTh1 from the copy shipped in the package, {ETT}"
    return ETT


@pytest.fixture
def new_processes():
    """Processes started under this test process since the test began (the session's PostgreSQL and HDFS
    servers are children of pytest too, and must not count as orphans)."""
    import psutil

    me = psutil.Process()
    before = {p.pid for p in me.children(recursive=True)}

    def current():
        return [p for p in me.children(recursive=True) if p.pid not in before]

    return current
