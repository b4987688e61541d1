"""docker-compose.yaml cannot run here (no Docker engine): check it against what the code expects — Airflow's own
configuration options, the Celery provider's commands, the connections operators/connections.py resolves,
RunConfig's environment table, the transport's batches in /dev/shm — and against itself (what a service waits
for must be able to become healthy or complete)."""

import importlib.metadata
import importlib.util
import re
import subprocess
from pathlib import Path, PurePosixPath

import pytest
import yaml
from sqlalchemy.engine import make_url

from airflow_amml.registry import HdfsArtifactStore
from airflow_amml.run_config import CONNECTION_VARIABLES, ENVIRONMENT, RunConfig
from operators.connections import connection_overrides

ROOT = Path(__file__).resolve().parents[1]
IMAGE = "airflow-amml:dev"
# Read by the official image's entrypoint (docs: docker-stack/entrypoint.rst) or by docker/init.sh, not by Airflow
IMAGE_VARIABLES = {
    "DUMB_INIT_SETSID",
    "CONNECTION_CHECK_MAX_COUNT",
    "_AIRFLOW_DB_MIGRATE",
    "_AIRFLOW_WWW_USER_CREATE",
    "_AIRFLOW_WWW_USER_USERNAME",
    "_AIRFLOW_WWW_USER_PASSWORD",
    "AIRFLOW_UID",
}
# Read by Airflow itself, outside its [section] options
AIRFLOW_VARIABLES = {"AIRFLOW_CONFIG", "AIRFLOW_HOME"}


def compose():
    return yaml.safe_load((ROOT / "docker-compose.yaml").read_text())


def services():
    return compose()["services"]


def airflow_services():
    """The services running this project's image."""
    return {name: s for name, s in services().items() if s.get("image") == IMAGE}


def command(service) -> str:
    cmd = service.get("command", "")
    return " ".join(cmd) if isinstance(cmd, list) else cmd


def workers():
    return {name: s for name, s in services().items() if command(s).startswith("celery worker")}


def started_by_up(service) -> bool:
    """`docker compose up` starts a service unless it sits behind a profile."""
    return not service.get("profiles")


def size_in_bytes(size: str) -> int:
    number, unit = re.fullmatch(r"(\d+)\s*([kmg]?)b?", str(size).lower()).groups()
    return int(number) * 1024 ** "_kmg".index(unit or "_")


def test_the_services_of_the_official_celery_compose_plus_hdfs():
    found = services()
    by_command = {command(s): name for name, s in found.items() if name in airflow_services()}
    for cmd in ("api-server", "scheduler", "dag-processor", "triggerer", "celery flower"):
        assert cmd in by_command, f"no service runs `airflow {cmd}`"
        assert found[by_command[cmd]]["image"] == IMAGE and found[by_command[cmd]]["build"] == "."
    assert len(workers()) >= 2, "two Celery workers, so a task can move to the other one"
    assert found["redis"]["image"] == "redis:7.2-bookworm"
    assert found["redis"]["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    assert found["postgres"]["image"] == "postgres:16"
    assert found["datanode"]["hostname"] == "datanode", "WebHDFS redirects clients to the datanode by name"
    assert found["namenode"]["hostname"] == "namenode" and "9870:9870" in found["namenode"]["ports"]
    for name, service in airflow_services().items():
        assert service["environment"]["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        assert "./dags:/opt/airflow/dags" in service["volumes"], f"{name} must see the .amml files"


def test_airflow_runs_what_the_compose_asks_of_it():
    """The commands exist in the installed Celery provider, the healthcheck's app module too."""
    from airflow.providers.celery.cli.definition import get_celery_cli_commands

    celery_commands = {c.name for group in get_celery_cli_commands() for c in group.subcommands}
    for name, service in airflow_services().items():
        if command(service).startswith("celery "):
            assert command(service).split()[1] in celery_commands, name
    for name, worker in workers().items():
        ping = worker["healthcheck"]["test"][-1]
        app = re.search(r"--app (\S+)\.app ", ping).group(1)
        assert importlib.util.find_spec(app) is not None, f"{name}'s healthcheck names a missing module {app}"
        assert 'celery@$${HOSTNAME}"' in ping, "a worker pings itself: Celery names it celery@<hostname>"


def test_the_workers_are_told_apart_and_shut_down_warm():
    found = workers()
    hostnames = [w.get("hostname") for w in found.values()]
    assert None not in hostnames and len(set(hostnames)) == len(hostnames), "each worker has its own hostname"
    for name, worker in found.items():
        assert worker["hostname"] == name, "the hostname resolves on the compose network: the service's name"
        env = worker["environment"]
        assert env["DUMB_INIT_SETSID"] == "0", "dumb-init signals Celery only: a warm shutdown"
        assert worker["depends_on"]["airflow-apiserver"]["condition"] == "service_healthy"
        assert worker["restart"] == "always"
        minutes = re.fullmatch(r"(\d+)m", worker["stop_grace_period"])
        assert minutes and int(minutes.group(1)) >= 1, "Docker's 10 s would kill tasks mid-run"


def test_every_process_a_worker_runs_is_bounded():
    for name, worker in workers().items():
        env = worker["environment"]
        config = RunConfig.from_environment({k: v for k, v in env.items() if k in ENVIRONMENT})
        assert config.max_processes is not None and config.max_processes >= 1, f"{name} sets AMML_MAX_PROCESSES"
        concurrency = int(env["AIRFLOW__CELERY__WORKER_CONCURRENCY"])
        assert 1 <= concurrency < 16, "Celery's default of 16 is many pipelines for one worker"


def test_the_transport_has_shared_memory_wherever_tasks_run():
    from airflow_amml.runtime.executor import BATCH_ROWS, INBOX_BATCHES

    runs_tasks = {**workers(), "airflow-cli": services()["airflow-cli"]}  # `airflow dags test` runs in the cli
    for name, service in runs_tasks.items():
        shm = size_in_bytes(service["shm_size"])
        env = service["environment"]
        # the least a worker needs: every task's component processes each with a full inbox of default batches
        # of four float64 columns; what a stage keeps (a scaler fitting the whole stream) comes on top
        batch = BATCH_ROWS * 4 * 8
        tasks = int(env.get("AIRFLOW__CELERY__WORKER_CONCURRENCY", 1))
        processes = int(env.get("AMML_MAX_PROCESSES", 4))
        assert shm >= tasks * processes * (INBOX_BATCHES + 1) * batch, f"{name}: shm_size {service['shm_size']}"
        assert shm > 64 * 1024**2, f"{name}: Docker's default /dev/shm of 64 MB"
    assert size_in_bytes("1gb") == 1024**3 and size_in_bytes("512m") == 512 * 1024**2


def test_the_broker_and_the_result_backend():
    found = services()
    env = found["airflow-scheduler"]["environment"]
    broker = make_url(env["AIRFLOW__CELERY__BROKER_URL"])
    assert broker.drivername == "redis" and broker.host == "redis" and broker.port in found["redis"]["expose"]
    backend = env["AIRFLOW__CELERY__RESULT_BACKEND"]
    assert backend.startswith("db+"), "Celery's database backend (the official compose's choice), not redis"
    database = found["postgres"]["environment"]
    for url in (make_url(backend.removeprefix("db+")), make_url(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])):
        assert (url.host, url.username, url.password, url.database) == (
            "postgres",
            database["POSTGRES_USER"],
            database["POSTGRES_PASSWORD"],
            database["POSTGRES_DB"],
        )
        url.get_dialect().import_dbapi()  # the driver is installed (psycopg, through the postgres provider)
    for name, service in airflow_services().items():
        assert service["environment"]["AIRFLOW__CELERY__BROKER_URL"] == env["AIRFLOW__CELERY__BROKER_URL"], name
        assert service["depends_on"]["redis"]["condition"] == "service_healthy", name
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy", name


def test_the_connections_resolve_as_the_tasks_resolve_them(monkeypatch):
    env = workers()["airflow-worker-1"]["environment"]
    connections = {k: v for k, v in env.items() if k.startswith("AIRFLOW_CONN_")}
    used = {f"AIRFLOW_CONN_{env[variable].upper()}" for variable in CONNECTION_VARIABLES}
    assert set(connections) == used, "every connection set is one AMML_*_CONN_ID names, and each exists"
    for variable, value in connections.items():
        monkeypatch.setenv(variable, value)  # where Airflow looks first, as in the containers
    overrides = connection_overrides(env)
    registry = make_url(overrides["registry_url"])
    assert (registry.host, registry.database) == ("postgres", "amml")
    init_sql = (ROOT / "docker" / "postgres-init.sql").read_text()
    assert f"CREATE USER {registry.username} WITH PASSWORD '{registry.password}'" in init_sql
    assert f"CREATE DATABASE {registry.database} OWNER {registry.username}" in init_sql
    store = HdfsArtifactStore.from_uri(overrides["artifact_location"])
    assert store.client.urls == ["http://namenode:9870"] and store.root == "/amml/models"
    amml = {k: v for k, v in env.items() if k in ENVIRONMENT}
    config = RunConfig.from_environment(amml, **overrides)  # what every task of the worker starts from
    sinks = make_url(config.db_url)
    assert sinks.database == "amml" and sinks.host == "postgres", "several workers: PostgreSQL, not SQLite"
    assert str(config.home) == env["AMML_HOME"]


def unknown_variables(environment) -> list[str]:
    """Names Airflow, AMML and the image would not read (a typo is silently ignored by all three)."""
    from airflow.configuration import conf

    options = {(s, o) for s, d in conf.configuration_description.items() for o in d.get("options", {})}
    renamed = {(old_section, old_option) for old_section, old_option, _ in conf.deprecated_options.values()}
    unknown = []
    for name in environment:
        parts = name.split("__")
        if len(parts) == 3 and parts[0] == "AIRFLOW":
            known = (parts[1].lower(), parts[2].lower()) in options - renamed
        elif name.startswith("AMML_"):
            known = name in ENVIRONMENT or name in CONNECTION_VARIABLES
        else:
            known = name.startswith("AIRFLOW_CONN_") or name in AIRFLOW_VARIABLES | IMAGE_VARIABLES
        if not known:
            unknown.append(name)
    return unknown


def test_every_environment_variable_is_read_by_someone():
    for name, service in airflow_services().items():
        assert unknown_variables(service["environment"]) == [], name


@pytest.mark.parametrize(
    "name",
    [
        "AIRFLOW__CELERY__WORKER_CONCURENCY",  # a typo
        "AIRFLOW__WORKERS__EXECUTION_API_SERVER_URL",  # moved to [core]
        "AMML_MAX_PROCESS",
        "AIRFLOW_UIDX",
    ],
)
def test_the_variable_check_catches(name):
    assert unknown_variables({name: "1", "AMML_MAX_PROCESSES": "2", "AIRFLOW__CORE__EXECUTOR": "x"}) == [name]


def test_what_a_service_waits_for_can_happen():
    found = services()
    for name, service in found.items():
        depends = service.get("depends_on", {})
        if isinstance(depends, list):  # the short form: just started
            depends = {other: {"condition": "service_started"} for other in depends}
        for other, how in depends.items():
            assert other in found, f"{name} waits for a missing {other}"
            assert started_by_up(found[other]) or not started_by_up(service), f"{name} waits for a profile"
            if how["condition"] == "service_healthy":
                assert "healthcheck" in found[other], f"{name} waits for {other} to be healthy: it has no check"
            elif how["condition"] == "service_completed_successfully":
                assert "restart" not in found[other], f"{other} must run once and exit"
    for name, service in airflow_services().items():
        if name not in ("airflow-init", "airflow-cli"):
            assert service["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully", name


def test_flower_and_the_cli_only_in_their_profiles():
    found = services()
    assert found["flower"]["profiles"] == ["flower"] and "5555:5555" in found["flower"]["ports"]
    assert found["airflow-cli"]["profiles"] == ["debug"]
    assert [name for name, s in found.items() if not started_by_up(s)] == ["airflow-cli", "flower"]


def test_init_migrates_creates_the_user_and_one_config_for_all():
    init = services()["airflow-init"]
    env = init["environment"]
    assert env["_AIRFLOW_DB_MIGRATE"] == "true" and env["_AIRFLOW_WWW_USER_CREATE"] == "true"
    assert init["user"] == "0:0", "it chowns the shared folders"
    script = next(v.split(":")[0] for v in init["volumes"] if v.split(":")[1] == command(init))
    script_path = ROOT / script
    subprocess.run(["bash", "-n", str(script_path)], check=True)  # at least it parses
    text = script_path.read_text()
    assert "/entrypoint airflow" in text, "through the image's entrypoint, which migrates and creates the user"
    # the scheduler signs each task's token and the api-server checks it: one config file, one jwt_secret
    config_folder = str(PurePosixPath(env["AIRFLOW_CONFIG"]).parent)
    mounts = {}
    for name, service in airflow_services().items():
        targets = {v.split(":")[1]: v.split(":")[0] for v in service["volumes"]}
        assert service["environment"]["AIRFLOW_CONFIG"] == env["AIRFLOW_CONFIG"], name
        mounts[name] = targets.get(config_folder)
        for target in targets:
            if target.startswith("/opt/airflow/"):
                assert target in text, f"init.sh must create and chown {target} ({name} mounts it)"
    assert set(mounts.values()) == {"./config"}, mounts


def test_the_workers_share_amml_home():
    volumes = compose()["volumes"]
    for name, service in airflow_services().items():
        home = service["environment"]["AMML_HOME"]
        assert f"amml-home:{home}" in service["volumes"], name
    assert "amml-home" in volumes


def test_the_image_installs_the_project_as_a_package_on_the_right_airflow():
    dockerfile = (ROOT / "Dockerfile").read_text()
    airflow = importlib.metadata.version("apache-airflow")
    assert f"FROM apache/airflow:{airflow}-python3.11" in dockerfile, "the Airflow the tests run on"
    assert f"constraints-{airflow}/constraints-3.11.txt" in dockerfile
    assert "libkrb5-dev" in dockerfile
    install = next(line for line in dockerfile.splitlines() if line.startswith("RUN pip install"))
    # a regular install (an editable one needs the source tree beside it), held to Airflow's constraints
    assert " -e " not in install and "--editable" not in install and install.rstrip().endswith("/opt/amml")
    assert "--constraint" in install
    extras = set(re.search(r"apache-airflow\[([a-z,-]+)\]==" + re.escape(airflow), install).group(1).split(","))
    env = services()["airflow-scheduler"]["environment"]
    assert "celery" in extras, env["AIRFLOW__CORE__EXECUTOR"]
    if "providers.fab." in env["AIRFLOW__CORE__AUTH_MANAGER"]:
        assert "fab" in extras, "the FAB auth manager needs the fab provider"
    assert ".venv" in (ROOT / ".dockerignore").read_text().split(), "COPY . must not send the virtualenv"
