"""An Airflow home for the tests that run DAGs in a fresh interpreter (`dag.test()` in a subprocess): its
environment and its migrated metadata database. Shared by test_dags, test_watch, test_nab_dag,
test_forecast_serving and test_plugin."""

import atexit
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
AIRFLOW = str(Path(sys.executable).parent / "airflow")


@functools.cache
def _migrated_template() -> Path:
    """One SQLite metadata database made by a real `airflow db migrate`, once per test session (a migration
    takes 10-20 s on this machine): the schema, the default pool and the log templates, nothing of any home or
    DAG in it, so every home can start from a copy of it."""
    folder = Path(tempfile.mkdtemp(prefix="amml-airflow-db-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")},
        "AIRFLOW_HOME": str(folder),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    }
    migrate = subprocess.run([AIRFLOW, "db", "migrate"], env=env, capture_output=True, text=True, timeout=300)
    assert migrate.returncode == 0, migrate.stderr[-2000:]
    database = folder / "airflow.db"
    assert database.is_file(), f"`airflow db migrate` made no {database}"
    return database


def migrated_database(home: Path) -> Path:
    """``home/airflow.db``: a fresh copy of the session's migrated metadata database (Airflow's default
    SQLite database of an AIRFLOW_HOME)."""
    home.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(_migrated_template(), home / "airflow.db"))


def airflow_home(home: Path, dags: Path, **extra: str) -> dict[str, str]:
    """The environment of an Airflow whose home is ``home`` and whose one DAG bundle is ``dags`` (no examples;
    AMML's own data under ``home/amml``; this checkout importable), plus ``extra`` variables; the metadata
    database (SQLite in ``home``, a copy of the session's migrated one) is in place before it is returned."""
    bundle = [
        {
            "name": "dags-folder",
            "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
            "kwargs": {"path": str(dags)},
        }
    ]
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps(bundle),
        "AMML_HOME": str(home / "amml"),
        "PYTHONPATH": str(ROOT),
        **extra,
    }
    assert "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN" not in env, "these homes use Airflow's default SQLite database"
    migrated_database(home)
    return env
