"""An Airflow home for the tests that run DAGs in a fresh interpreter (`dag.test()` in a subprocess): its
environment and its migrated metadata database. Shared by test_dags, test_watch and test_nab_dag."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def airflow_home(home: Path, dags: Path, **extra: str) -> dict[str, str]:
    """The environment of an Airflow whose home is ``home`` and whose one DAG bundle is ``dags`` (no examples;
    AMML's own data under ``home/amml``; this checkout importable), plus ``extra`` variables; the metadata
    database (SQLite in ``home``) is migrated before it is returned."""
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
    airflow = str(Path(sys.executable).parent / "airflow")
    migrate = subprocess.run([airflow, "db", "migrate"], env=env, capture_output=True, text=True, timeout=300)
    assert migrate.returncode == 0, migrate.stderr[-2000:]
    return env
