"""docker-compose.yaml cannot run here (no Docker engine): check it against what the code expects."""

import json
from pathlib import Path
from urllib.parse import urlparse

import yaml

ROOT = Path(__file__).resolve().parents[1]


def compose():
    return yaml.safe_load((ROOT / "docker-compose.yaml").read_text())


def test_services_and_mounts():
    services = compose()["services"]
    for name in (
        "postgres",
        "namenode",
        "datanode",
        "airflow-apiserver",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-triggerer",
        "airflow-init",
    ):
        assert name in services
    assert services["datanode"]["hostname"] == "datanode", "WebHDFS redirects clients to the datanode by name"
    assert "9870:9870" in services["namenode"]["ports"]
    for name in ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor"):
        assert "./dags:/opt/airflow/dags" in services[name]["volumes"]
        assert services[name]["environment"]["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    # LocalExecutor runs the tasks, and so the pipelines' shared-memory transport, in the scheduler
    assert services["airflow-scheduler"]["shm_size"] == "1gb"


def test_connections_match_what_the_registry_reads():
    env = compose()["services"]["airflow-scheduler"]["environment"]
    registry_id, artifact_id = env["AMML_REGISTRY_CONN_ID"], env["AMML_ARTIFACT_CONN_ID"]
    registry = urlparse(env[f"AIRFLOW_CONN_{registry_id.upper()}"])
    assert registry.scheme == "postgresql" and registry.hostname == "postgres" and registry.path == "/amml"
    webhdfs = json.loads(env[f"AIRFLOW_CONN_{artifact_id.upper()}"])
    assert webhdfs["conn_type"] == "webhdfs" and webhdfs["host"] == "namenode" and webhdfs["port"] == 9870
    init_sql = (ROOT / "docker" / "postgres-init.sql").read_text()
    assert f"CREATE DATABASE amml OWNER {registry.username}" in init_sql


def test_image_installs_the_kerberos_headers_and_the_project():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "libkrb5-dev" in dockerfile and "pip install" in dockerfile and "FROM apache/airflow:3.3.2" in dockerfile
    install = next(line for line in dockerfile.splitlines() if "pip install" in line)
    # a regular install (an editable one needs the source tree beside it), held to Airflow's constraints
    assert " -e " not in install and install.rstrip().endswith("/opt/amml")
    assert "--constraint" in install and "constraints-3.3.2/constraints-3.11.txt" in dockerfile
