"""The task's RunConfig (operators/task_config.py): built from the environment plus what only the task knows, with
its Airflow connections resolved to URLs (operators/connections.py). Connections here are real Airflow
connections, found by Airflow in `AIRFLOW_CONN_*` variables; the run at the end uses a real PostgreSQL."""

import json
from pathlib import Path

import pandas as pd
import pendulum
import pytest
from airflow.sdk import DAG, conf

from airflow_amml.registry import HdfsArtifactStore, LocalArtifactStore, ModelRegistry, RegistryError
from airflow_amml.run_config import Lineage
from compiler import compile_file
from operators.connections import connection_overrides, webhdfs_location
from operators.dag_factory import build_dag
from operators.pipeline import AmmlPipelineOperator
from operators.task_config import task_run_config

START = pendulum.datetime(2017, 1, 1, tz="UTC")
CONTEXT = {"data_interval_start": START, "data_interval_end": START.add(days=1), "run_id": "scheduled__1"}
WEBHDFS = {"conn_type": "webhdfs", "host": "nn1,nn2", "port": 9870, "login": "hadoop", "extra": {"root": "/amml/m"}}


def operator(tmp_path, **kwargs):
    with DAG("d", schedule=None, start_date=START):
        return AmmlPipelineOperator(task_id="train", amml_file=str(tmp_path / "dags" / "d.amml"), **kwargs)


def test_the_task_config_carries_the_tasks_context_and_the_deployment(tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_AMML_PG", "postgresql://amml:pw@db.example:5432/amml")
    monkeypatch.setenv("AIRFLOW_CONN_SINKS", "postgresql://u:p@sinks.example:5432/out")
    monkeypatch.setenv("AIRFLOW_CONN_HDFS", json.dumps(WEBHDFS))
    monkeypatch.setenv("AMML_OUTPUT_ROOT", str(tmp_path / "deployment-out"))  # the worker's own settings stay
    task = operator(tmp_path, registry_conn_id="amml_pg", artifact_conn_id="hdfs", db_conn_id="sinks")
    config = task_run_config(task, CONTEXT)
    assert config.lineage == Lineage(
        dag_id="d",
        run_id="scheduled__1",
        task_id="train",
        data_interval_start="2017-01-01T00:00:00+00:00",
        data_interval_end="2017-01-02T00:00:00+00:00",
    )
    assert config.data_interval == ("2017-01-01T00:00:00+00:00", "2017-01-02T00:00:00+00:00")
    assert config.model_paths == (tmp_path / "dags" / "models",)
    assert config.dags_folder == Path(conf.get("core", "dags_folder"))
    assert config.output_root == tmp_path / "deployment-out"
    assert config.registry_url.startswith("postgresql") and config.registry_url.endswith("@db.example:5432/amml")
    # through PostgresHook, as the registry's: SQLAlchemy refuses the `postgres://` of the connection's get_uri()
    assert config.db_url.startswith("postgresql") and config.db_url.endswith("u:p@sinks.example:5432/out")
    assert config.artifact_location == "webhdfs://hadoop@nn1,nn2:9870/amml/m"
    hdfs = HdfsArtifactStore.from_uri(config.artifact_location)  # the store a component opens: both namenodes
    assert hdfs.client.urls == ["http://nn1:9870", "http://nn2:9870"] and hdfs.root == "/amml/m"


def test_a_run_without_an_interval_reads_everything(tmp_path):
    config = task_run_config(operator(tmp_path), {"run_id": "manual__1"})
    assert config.data_interval is None and config.lineage.data_interval_start is None
    same = {**CONTEXT, "data_interval_end": START}  # an empty interval is none either
    assert task_run_config(operator(tmp_path), same).data_interval is None


def test_the_operators_connection_wins_then_the_url_then_the_environments_connection(tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_DAG_PG", "postgresql://a:a@dag-db/amml")
    monkeypatch.setenv("AIRFLOW_CONN_ENV_PG", "postgresql://b:b@env-db/amml")
    monkeypatch.setenv("AMML_REGISTRY_CONN_ID", "env_pg")
    assert "@env-db/" in task_run_config(operator(tmp_path), CONTEXT).registry_url
    monkeypatch.setenv("AMML_REGISTRY_URL", "sqlite:////srv/registry.db")
    assert task_run_config(operator(tmp_path), CONTEXT).registry_url == "sqlite:////srv/registry.db"
    assert "@dag-db/" in task_run_config(operator(tmp_path, registry_conn_id="dag_pg"), CONTEXT).registry_url


def test_an_undefined_connection_names_its_id(tmp_path):
    with pytest.raises(RegistryError, match="cannot use Airflow connection 'nowhere' for model artifacts") as info:
        task_run_config(operator(tmp_path, artifact_conn_id="nowhere"), CONTEXT)
    assert "AIRFLOW_CONN_NOWHERE" in info.value.hint


def location(**fields):
    values = {"host": "nn", "port": 9870, "login": "hdfs", "password": None, "schema": None, "extra": {}}
    return webhdfs_location("c", **{**values, **fields, "kerberos": fields.get("kerberos", False)})


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, "webhdfs://hdfs@nn:9870/amml/models"),
        ({"login": None, "port": None}, "webhdfs://nn/amml/models"),
        ({"password": "p@ss"}, "webhdfs://hdfs:p%40ss@nn:9870/amml/models"),
        ({"extra": {"use_ssl": True}}, "https://hdfs@nn:9870/amml/models?verify=false"),  # WebHDFSHook's default
        (
            {"extra": {"use_ssl": "True", "verify": "/ca.pem", "cert": "/c.pem", "key": "/k.pem"}},
            "https://hdfs@nn:9870/amml/models?verify=%2Fca.pem&cert=%2Fc.pem&key=%2Fk.pem",
        ),
        ({"kerberos": True}, "webhdfs://hdfs@nn:9870/amml/models?auth=kerberos"),
    ],
)
def test_a_webhdfs_connection_becomes_a_location(fields, expected):
    assert location(**fields) == expected


def test_the_location_opens_a_client_like_webhdfshooks():
    store = HdfsArtifactStore.from_uri(
        location(password="s3cret", extra={"use_ssl": True, "verify": "/ca.pem", "cert": "/c.pem", "key": "/k.pem"})
    )
    session = store.client._session
    assert store.client.urls == ["https://nn:9870"]
    assert session.auth == ("hdfs", "s3cret") and session.verify == "/ca.pem" and session.cert == ("/c.pem", "/k.pem")
    assert HdfsArtifactStore.from_uri(location(extra={"use_ssl": True})).client._session.verify is False
    assert type(HdfsArtifactStore.from_uri(location(kerberos=True)).client).__name__ == "KerberosClient"


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"host": ""}, "names no namenode"),
        ({"schema": "gateway/default"}, "sets `schema`, which AMML cannot carry"),
        ({"extra": {"headers": {"X-Token": "t"}}}, "sets `headers`, which AMML cannot carry"),
        ({"extra": {"cookies": {"c": "1"}}}, "sets `cookies`, which AMML cannot carry"),
    ],
)
def test_what_a_location_cannot_carry_is_an_error(fields, words):
    with pytest.raises(RegistryError, match=words) as info:
        location(**fields)
    assert "AMML_ARTIFACTS" in info.value.hint


def test_connection_overrides_only_for_what_is_configured(monkeypatch):
    assert connection_overrides({}) == {}
    monkeypatch.setenv("AIRFLOW_CONN_HDFS", json.dumps(WEBHDFS))
    environ = {"AMML_ARTIFACT_CONN_ID": "hdfs"}
    assert connection_overrides(environ) == {"artifact_location": "webhdfs://hadoop@nn1,nn2:9870/amml/m"}
    assert connection_overrides({**environ, "AMML_ARTIFACTS": "/srv/artifacts"}) == {}


def test_a_task_reads_stored_statistics_from_the_dag_blocks_registry(tmp_path, monkeypatch, postgres_url, ett_path):
    """End to end in the task: the dag block's `registry_conn` → the operator's `registry_conn_id` → the task's
    RunConfig → the scaler's registry, in a real PostgreSQL (the embedded SQLite registry has no such model)."""
    registry = ModelRegistry(postgres_url, LocalArtifactStore(tmp_path / "artifacts"))
    model_file = tmp_path / "model.keras"
    model_file.write_bytes(b"not a real model: only its scaler statistics are read")
    registry.register_definition("tiny", "0.1", "name: tiny\nversion: '0.1'\n")
    registry.register_version("tiny", "tiny:0.1", model_file, scaler={"kind": "minmax", "columns": {"OT": [0.0, 50.0]}})
    monkeypatch.setenv("AIRFLOW_CONN_AMML_PG", postgres_url.replace("postgresql+psycopg://", "postgresql://"))
    out = tmp_path / "scaled.csv"
    src = tmp_path / "dags" / "scale.amml"
    src.parent.mkdir()
    src.write_text(
        'dag scale { registry_conn = "amml_pg" }\n'
        f"source id='ett', limit=24, cols=['date', 'OT'] | minmax_scaler model='tiny' | csv_sink path='{out}'\n"
    )
    [task] = build_dag(compile_file(str(src)), src).tasks
    assert task.registry_conn_id == "amml_pg"
    task.execute({"run_id": "manual__1"})
    scaled, ett = pd.read_csv(out), pd.read_csv(ett_path).head(24)
    assert scaled["OT"].tolist() == pytest.approx((ett["OT"] / 50.0).tolist())
