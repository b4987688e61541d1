"""Pytest plugin: ONE real Airflow 3.3 deployment on CeleryExecutor for the whole session, as a Celery shop runs it.

Load it from tests/conftest.py (``pytest_plugins``). The tests that need a running Airflow (the scheduler end to
end, the Celery fan-out end to end, the browser tests) share it, so Airflow starts once::

    redis-server ──────── broker ───────────┐
    PostgreSQL: airflow_* (metadata + Celery results), registry_* (AMML models), sink_* (AMML_DB_URL)
    api-server (REST, UI, execution API) ◄── task processes
    scheduler (CeleryExecutor) ── queues ──► worker1, worker2 (`airflow celery worker --concurrency 2`)
    dag-processor (parses dags/: a broken .amml file becomes an error DAG, new files appear)

Fixture ``airflow_deployment`` (session): a started :class:`AirflowDeployment`. Every process is started
detached (a session of its own, re-parented to init), so tests that watch their own process tree never see
Airflow's; the deployment knows each process by its session. Every step is bounded in time and fails with the
logs' tails. At the end (right after the last test that uses it, or at session end) every session is stopped
and checked for survivors, and the databases are dropped; a watchdog kills the sessions if pytest dies.

Why these settings: SimpleAuthManager users ``admin`` and ``viewer`` with a passwords file (the browser tests
log in); AMML's registry and sink on PostgreSQL (SQLite written by several workers at once would lock); each
worker its own hostname (``tests/services/worker_hostname.py``: a task instance's ``hostname`` names its
worker), its own pid file, no log server (the logs are on this one disk); a task heartbeat timeout of 20 s,
so the scheduler notices the tasks of a crashed worker in seconds rather than Airflow's 5 minutes.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests

from tests.services.fixtures import (
    _CLEANUPS,
    PostgresServer,
    _Detached,
    _install_sigterm_handler,
    _spawn_detached,
    _Watchdog,
    free_port,
    port_open,
    tail,
)

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
USERS = {"admin": "admin-password", "viewer": "viewer-password"}
WORKERS = ("worker1", "worker2")
WORKER_CONCURRENCY = 2
HEARTBEAT_TIMEOUT = 20  # s without a task heartbeat before the scheduler fails (and retries) the task
SHIPPED_DAGS = ("amml_dags.py", "ett_train.amml", "ett_predict.amml", "ett_watch.amml")
TRAINING_EPOCHS = (1, 2)  # the ett_train runs: two short trainings, two versions of `ett` that differ
START_TIMEOUT = 240  # s for each of: migrate, the api-server answering, a worker ready, the DAGs parsed

# Run by the watchdog when pytest is gone: SIGKILL every process of the sessions listed in the file.
_KILL_SESSIONS = r"""
import os, signal, sys
try:
    sids = {int(line) for line in open(sys.argv[1]) if line.strip()}
except OSError:
    sids = set()
for name in os.listdir("/proc"):
    if name.isdigit():
        try:
            if os.getsid(int(name)) in sids:
                os.kill(int(name), signal.SIGKILL)
        except OSError:
            pass
"""


class DeploymentError(AssertionError):
    """A step of the deployment failed or timed out; the message holds the logs' tails."""


def session_processes(sids: Iterable[int]) -> list[psutil.Process]:
    """The live processes of these sessions (each service leads a session of its own)."""
    wanted = set(sids)
    found = []
    for proc in psutil.process_iter():
        try:
            if os.getsid(proc.pid) in wanted and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except (OSError, psutil.Error):  # gone meanwhile
            continue
    return found


class Service:
    """One long-lived process of the deployment (its own session and process group), its log in a file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: Path, on_start: Callable[[int], None]):
        self.name, self.argv, self.env, self.log = name, argv, env, log
        self.proc: _Detached | None = None
        self.sessions: list[int] = []  # every session it ever led (a restarted worker leads a new one)
        self._on_start = on_start
        self.crashed = False  # killed on purpose: its death is not a failure
        self.ready_from = 0  # where in its log to look for Celery's "ready." line

    def start(self) -> None:
        devnull = os.open(os.devnull, os.O_RDONLY)
        out = os.open(self.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            self.proc = _spawn_detached(
                self.argv, stdin=devnull, stdout=out, stderr=self.log, cwd=self.log.parent, env=self.env
            )
        finally:
            os.close(devnull)
            os.close(out)
        self.sessions.append(self.proc.pid)
        self._on_start(self.proc.pid)
        self.crashed = False

    def alive(self) -> bool:
        return self.proc is not None and self.proc.alive()

    def processes(self) -> list[psutil.Process]:
        return session_processes(self.sessions)

    def terminate(self) -> None:
        """SIGTERM its process group (the way a service manager stops it)."""
        if self.alive():
            assert self.proc is not None
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGTERM)

    def kill_everything(self) -> list[psutil.Process]:
        """SIGKILL whatever is left in its sessions; return what had to be killed."""
        left = self.processes()
        for proc in left:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        psutil.wait_procs(left, timeout=10)
        return left

    def crash(self) -> list[int]:
        """Die as a machine or container does: SIGKILL the service's process group and, because Airflow puts
        each task process in a group of its own, each task process too. Processes the task processes
        started (AMML's component processes) are NOT signalled: they must go by themselves. Returns the
        pids killed."""
        assert self.proc is not None and self.alive(), f"{self.name} is not running"
        leader = self.proc.pid
        tree = psutil.Process(leader).children(recursive=True)
        runners = []
        for proc in tree:
            with contextlib.suppress(OSError, psutil.Error):
                if os.getpgid(proc.pid) == proc.pid and not proc.name().startswith("amml:"):
                    runners.append(proc.pid)
        self.crashed = True
        os.killpg(leader, signal.SIGKILL)
        for pid in runners:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.proc.wait(10)
        return [leader, *runners]


class AirflowDeployment:
    """The running deployment: its URLs, environment, REST helpers, and its processes."""

    def __init__(self, postgres: PostgresServer, ett_path: Path) -> None:
        self.postgres = postgres
        self.base = Path(tempfile.mkdtemp(prefix="amml-airflow-"))
        self.home = self.base / "airflow"
        self.dags = self.home / "dags"
        self.dags.mkdir(parents=True)
        suffix = uuid.uuid4().hex[:12]
        self.databases = {role: f"{role}_{suffix}" for role in ("airflow", "registry", "sink")}
        self.port = free_port()
        self.redis_port = free_port()
        self.url = f"http://localhost:{self.port}"
        self.services: dict[str, Service] = {}
        self.timings: dict[str, float] = {}
        self.closed = False
        self.survivors: list[psutil.Process] = []
        self._sessions_file = self.base / "sessions.txt"
        self._tokens: dict[str, tuple[float, str]] = {}
        self._training: dict[str, Any] | None = None
        self._ett_path = ett_path
        self._databases_made: list[str] = []
        # if pytest dies: every session this deployment started is SIGKILLed, its folder removed
        self._watchdog = _Watchdog([[sys.executable, "-c", _KILL_SESSIONS, str(self._sessions_file)]], [str(self.base)])
        self._cleanup_key = _CLEANUPS.add(self.close)
        self.env: dict[str, str] = {}
        self.sink_url = self.registry_url = ""

    # -- starting --------------------------------------------------------------------------------------------

    def start(self) -> None:
        started = time.monotonic()
        for name in SHIPPED_DAGS:
            shutil.copy(ROOT / "dags" / name, self.dags)
        shutil.copytree(ROOT / "dags" / "models", self.dags / "models")
        passwords = self.home / "passwords.json"
        passwords.write_text(json.dumps(USERS))
        if not self.postgres.is_running():
            self.postgres.start()
        urls = {}
        for role, name in self.databases.items():
            urls[role] = self.postgres.create_database(name)
            self._databases_made.append(name)
        self.sink_url, self.registry_url = urls["sink"], urls["registry"]
        self.env = self._environment(urls["airflow"], passwords)
        redis = self._service(
            "redis",
            [
                "redis-server",
                "--port",
                str(self.redis_port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.base),
            ],
        )
        redis.start()
        self._step("airflow db migrate", [str(BIN / "airflow"), "db", "migrate"], START_TIMEOUT)
        self.wait_for("redis", lambda: port_open(self.redis_port), 30, [redis])
        for name, args in (
            ("api-server", ["api-server", "--port", str(self.port)]),
            ("scheduler", ["scheduler"]),
            ("dag-processor", ["dag-processor"]),
        ):
            self._service(name, [str(BIN / "airflow"), *args]).start()
        for worker in WORKERS:
            self._worker(worker).start()
        self.wait_for("the api-server", lambda: self.token("admin"), START_TIMEOUT, [self.services["api-server"]])
        for worker in WORKERS:
            self.wait_worker_ready(worker)
        self.wait_for_dags({"ett_train", "ett_predict", "ett_watch"})
        self.timings["start"] = time.monotonic() - started
        print(f"[airflow deployment] started in {self.timings['start']:.1f}s: {self.url}")

    def _environment(self, airflow_db: str, passwords: Path) -> dict[str, str]:
        pg = airflow_db  # postgresql+psycopg://: psycopg 3 for Airflow and for Celery's result backend
        return {
            **{k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "AMML_"))},
            "PATH": f"{BIN}:{os.environ['PATH']}",
            "PYTHONPATH": str(ROOT),
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags),
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": pg,
            "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:{self.redis_port}/0",
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{pg}",
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(WORKER_CONCURRENCY),
            # a crashed worker's unacknowledged messages come back only after this: its tasks are retried by
            # the scheduler (heartbeat timeout), not redelivered
            "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT": "86400",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,viewer:viewer",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API__BASE_URL": self.url,
            "AIRFLOW__API_AUTH__JWT_SECRET": uuid.uuid4().hex,
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
            # new .amml files are seen when the loader (amml_dags.py) is parsed again
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "10",
            "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(HEARTBEAT_TIMEOUT),
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "3",
            "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "180",
            "AMML_HOME": str(self.home / "amml"),
            "AMML_ETT_PATH": str(self._ett_path),
            "AMML_DB_URL": self.sink_url,
            "AMML_REGISTRY_URL": self.registry_url,
            "AMML_ARTIFACTS": str(self.home / "artifacts"),
            "AMML_CACHE": str(self.home / "amml-cache"),
            "AMML_OUTPUT_ROOT": str(self.home),
            "AMML_INPUT_ROOT": str(self.home),
            "TF_CPP_MIN_LOG_LEVEL": "2",
        }

    def _service(self, name: str, argv: list[str], **extra_env: str) -> Service:
        service = Service(name, argv, {**self.env, **extra_env}, self.home / f"{name}.log", self._record_session)
        self.services[name] = service
        return service

    def _worker(self, name: str) -> Service:
        argv = [
            str(BIN / "airflow"), "celery", "worker",
            "--celery-hostname", f"{name}@%h",
            "--concurrency", str(WORKER_CONCURRENCY),
            "--pid", str(self.home / f"{name}.pid"),
            "--skip-serve-logs",  # the log server's port would clash; the logs are on this disk anyway
            "--without-mingle", "--without-gossip",
        ]  # fmt: skip
        return self._service(
            name,
            argv,
            AMML_TEST_WORKER=name,
            AIRFLOW__CORE__HOSTNAME_CALLABLE="tests.services.worker_hostname.hostname",
        )

    def _record_session(self, sid: int) -> None:
        with open(self._sessions_file, "a") as fh:
            fh.write(f"{sid}\n")

    def _step(self, what: str, argv: list[str], timeout: float) -> None:
        """Run one command to the end, its output in a log; fail with the log's tail."""
        started = time.monotonic()
        log = self.home / f"{what.replace(' ', '-')}.log"
        with open(log, "w") as out:
            try:
                result = subprocess.run(
                    argv, env=self.env, stdout=out, stderr=subprocess.STDOUT, timeout=timeout, stdin=subprocess.DEVNULL
                )
            except subprocess.TimeoutExpired:
                raise DeploymentError(f"{what} took more than {timeout}s\n{tail(log, 80)}") from None
        self.timings[what] = time.monotonic() - started
        if result.returncode != 0:
            raise DeploymentError(f"{what} failed ({result.returncode})\n{tail(log, 80)}")

    # -- workers ---------------------------------------------------------------------------------------------

    def worker_hostname(self, name: str) -> str:
        """The ``hostname`` that task instances run by worker ``name`` record."""
        return f"{name}.{socket.getfqdn()}"

    def wait_worker_ready(self, name: str, timeout: float = START_TIMEOUT) -> None:
        service = self.services[name]
        size = service.log.stat().st_size if service.log.exists() else 0

        def ready() -> bool:
            with open(service.log, "rb") as fh:
                fh.seek(service.ready_from)
                return b" ready." in fh.read()

        self.wait_for(f"celery {name}", ready, timeout, [service])
        service.ready_from = max(size, service.log.stat().st_size)

    def crash_worker(self, name: str) -> list[int]:
        """SIGKILL worker ``name`` as a crash (see :meth:`Service.crash`); the pids killed."""
        return self.services[name].crash()

    def restart_worker(self, name: str, wait: bool = True) -> None:
        """Start worker ``name`` again; ``wait=False``: do not wait for it to be ready (a later wait fails if it
        died)."""
        service = self.services[name]
        service.ready_from = service.log.stat().st_size
        service.start()
        if wait:
            self.wait_worker_ready(name)

    def stop_worker(self, name: str, timeout: float = 60) -> None:
        """Stop worker ``name`` as a service manager does (SIGTERM: Celery's warm shutdown, running tasks end)."""
        service = self.services[name]
        service.crashed = True  # stopped on purpose: not a failure of the deployment
        service.terminate()
        assert service.proc is not None
        if not service.proc.wait(timeout):
            raise DeploymentError(f"{name} did not stop within {timeout}s\n{tail(service.log, 60)}")
        left = service.kill_everything()
        assert not left, f"{name} left processes behind (killed now): {left}"

    # -- waiting, REST ---------------------------------------------------------------------------------------

    def wait_for(self, what: str, check: Callable[[], Any], timeout: float, watch: Iterable[Service] = ()) -> Any:
        """Poll ``check`` until it returns something true; fail early when a watched (or any not crashed)
        service died, and on timeout, with the logs' tails."""
        watch = list(watch) or [s for s in self.services.values()]
        deadline = time.monotonic() + timeout
        while True:
            dead = [s.name for s in watch if not s.alive() and not s.crashed]
            if dead:
                raise DeploymentError(f"{what}: {', '.join(dead)} exited\n{self.log_tails()}")
            try:
                result = check()
            except (requests.RequestException, OSError, ValueError, KeyError):
                result = None
            if result:
                return result
            if time.monotonic() > deadline:
                raise DeploymentError(f"timed out after {timeout}s waiting for {what}\n{self.log_tails()}")
            time.sleep(1)

    def token(self, user: str = "admin") -> str:
        cached = self._tokens.get(user)
        if cached and time.monotonic() - cached[0] < 600:
            return cached[1]
        response = requests.post(f"{self.url}/auth/token", json={"username": user, "password": USERS[user]}, timeout=10)
        response.raise_for_status()
        self._tokens[user] = (time.monotonic(), response.json()["access_token"])
        return self._tokens[user][1]

    def headers(self, user: str = "admin") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(user)}"}

    def api(self, path: str, user: str = "admin") -> dict:
        """GET from Airflow's REST API (v2) as ``user``."""
        response = requests.get(f"{self.url}/api/v2{path}", headers=self.headers(user), timeout=30)
        response.raise_for_status()
        return response.json()

    def call(self, method: str, path: str, body: dict | None = None) -> dict:
        """Any REST call as admin; right after a DAG appears the api-server may answer 404/409 for it a
        moment: retried briefly."""
        for _ in range(30):
            response = requests.request(
                method, f"{self.url}/api/v2{path}", json=body, headers=self.headers(), timeout=30
            )
            if response.status_code not in (404, 409, 503):
                break
            time.sleep(1)
        assert response.ok, f"{method} {path}: {response.status_code} {response.text}"
        return response.json()

    def dag_ids(self) -> set[str]:
        return {d["dag_id"] for d in self.api("/dags?limit=1000")["dags"]}

    def add_dag_files(self, files: dict[str, str]) -> None:
        """Write files into the dags folder, as a user deploys them (written aside, then renamed)."""
        for name, text in files.items():
            target = self.dags / name
            assert target.resolve().parent == self.dags.resolve(), name
            part = self.dags / f".{name}.part"
            part.write_text(text)
            part.replace(target)

    def wait_for_dags(self, dag_ids: set[str], timeout: float = START_TIMEOUT) -> set[str]:
        return self.wait_for(f"the DAGs {sorted(dag_ids)}", lambda: (ids := self.dag_ids()) >= dag_ids and ids, timeout)

    def trigger(self, dag_id: str, conf: dict | None = None) -> str:
        """Unpause ``dag_id`` and start a manual run, as the trigger form does; its run id."""
        self.call("PATCH", f"/dags/{dag_id}", {"is_paused": False})
        return self.call("POST", f"/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf or {}})["dag_run_id"]

    def wait_runs(self, dag_id: str, count: int, timeout: float) -> list[dict]:
        """Wait until ``dag_id`` has at least ``count`` runs and all of them finished; the runs."""

        def check() -> list[dict] | None:
            runs = self.api(f"/dags/{dag_id}/dagRuns?limit=1000")["dag_runs"]
            done = [r for r in runs if r["state"] in ("success", "failed")]
            return runs if len(done) >= count and len(done) == len(runs) else None

        return self.wait_for(f"{count} finished run(s) of {dag_id}", check, timeout)

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        return self.api(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances?limit=1000")["task_instances"]

    # -- AMML on the deployment ------------------------------------------------------------------------------

    def start_training(self, epochs: tuple[int, ...] = TRAINING_EPOCHS) -> None:
        """Trigger the ett_train runs the tests stand on, once per session, without waiting for them: one run
        per entry of ``epochs`` (through the REST API, as from the trigger form), each registering a version
        of `ett`. A test module that can do other work meanwhile starts them early; :meth:`train_ett` waits."""
        if self._training is not None:
            assert self._training["epochs"] == epochs, f"ett is trained with {self._training['epochs']} already"
            return
        self._training = {"epochs": epochs, "started": time.monotonic(), "runs": None}
        for n in epochs:
            self.trigger("ett_train", {"epochs": n})

    def train_ett(self, epochs: tuple[int, ...] = TRAINING_EPOCHS, timeout: float = 480) -> list[dict]:
        """The ett_train runs (started now unless already), once they all succeeded; their DagRuns."""
        self.start_training(epochs)
        assert self._training is not None
        if self._training["runs"] is None:
            runs = self.wait_runs("ett_train", len(epochs), timeout)
            failed = [r for r in runs if r["state"] != "success"]
            assert not failed, f"a training run failed: {failed}\n{self.task_logs()}"
            self._training["runs"] = runs
            self.timings["train_ett"] = time.monotonic() - self._training["started"]
            print(f"[airflow deployment] {len(epochs)} ett_train runs: {self.timings['train_ett']:.1f}s")
        return self._training["runs"]

    def wait_for_training(self) -> None:
        """If the trainings were started, wait until they are done (a test that kills workers must not kill
        them); a no-op otherwise."""
        if self._training is not None:
            self.train_ett(self._training["epochs"])

    def amml_processes(self) -> list[psutil.Process]:
        """AMML's component processes (the executor names them `amml:<component>`) of this deployment: those
        in its services' sessions, a crashed worker's included (an orphan keeps its session)."""
        found = []
        for proc in session_processes(sid for s in self.services.values() for sid in s.sessions):
            with contextlib.suppress(psutil.Error):
                if proc.name().startswith("amml:"):
                    found.append(proc)
        return found

    def sink_rows(self, sql: str, **params: Any) -> list[tuple]:
        """Rows of a query on AMML's sink database (AMML_DB_URL)."""
        import sqlalchemy as sa

        engine = sa.create_engine(self.sink_url)
        try:
            with engine.connect() as conn:
                return [tuple(row) for row in conn.execute(sa.text(sql), params)]
        finally:
            engine.dispose()

    def amml(self, *args: str, timeout: float = 120) -> str:
        """Run the `amml` command line against the deployment's registry and databases; its stdout."""
        result = subprocess.run(
            [str(BIN / "amml"), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        assert result.returncode == 0, f"amml {' '.join(args)}: {result.stderr[-2000:]}"
        return result.stdout

    # -- logs ------------------------------------------------------------------------------------------------

    def task_logs(self, lines: int = 40) -> str:
        logs = sorted((self.home / "logs").rglob("*.log")) if (self.home / "logs").exists() else []
        return "\n".join(f"--- {log} ---\n{tail(log, lines)}" for log in logs[-20:])

    def log_tails(self, lines: int = 60) -> str:
        tails = [f"--- {s.log.name} (tail) ---\n{tail(s.log, lines)}" for s in self.services.values()]
        return "\n".join([*tails, self.task_logs()])

    # -- stopping --------------------------------------------------------------------------------------------

    def close(self, timeout: float = 30) -> list[psutil.Process]:
        """Stop every service (SIGTERM to each group at once; SIGKILL, and report, what is left after
        ``timeout``), drop the databases, remove the folder. Idempotent; returns the processes that had to be
        killed (also kept in ``survivors``)."""
        if self.closed:
            return self.survivors
        self.closed = True
        started = time.monotonic()
        try:
            services = list(self.services.values())
            for service in services:
                if service.name != "redis":
                    service.terminate()
            deadline = time.monotonic() + timeout
            for service in services:
                if service.name != "redis" and service.proc is not None:
                    service.proc.wait(max(0.1, deadline - time.monotonic()))
            # the task processes and their children are in groups of their own: give them the rest of the time
            while time.monotonic() < deadline and any(s.processes() for s in services if s.name != "redis"):
                time.sleep(0.2)
            for service in services:
                if service.name != "redis":
                    self.survivors += service.kill_everything()
            if "redis" in self.services:
                self.services["redis"].terminate()
                if self.services["redis"].proc is not None:
                    self.services["redis"].proc.wait(10)
                self.survivors += self.services["redis"].kill_everything()
            if self.postgres.is_running():
                for name in self._databases_made:
                    with contextlib.suppress(Exception):
                        self.postgres.drop_database(name)
        finally:
            self._watchdog.finish()
            shutil.rmtree(self.base, ignore_errors=True)
            _CLEANUPS.discard(self._cleanup_key)
        self.timings["stop"] = time.monotonic() - started
        print(f"[airflow deployment] stopped in {self.timings['stop']:.1f}s")
        return self.survivors


# --------------------------------------------------------------------------------------------------------------
# Pytest: the fixture, and stopping the deployment right after the last test that uses it
# --------------------------------------------------------------------------------------------------------------

FIXTURE = "airflow_deployment"
_STATE: dict[str, Any] = {"last": None, "deployment": None}


def pytest_collection_finish(session: pytest.Session) -> None:
    users = [item.nodeid for item in session.items if FIXTURE in getattr(item, "fixturenames", ())]
    _STATE["last"] = users[-1] if users else None


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None):
    result = yield
    # An idle Airflow still parses and schedules: stop it once no later test needs it (not at session end).
    deployment = _STATE["deployment"]
    if deployment is not None and item.nodeid == _STATE["last"]:
        deployment.close()
    return result


@pytest.fixture(scope="session")
def airflow_deployment(postgres_server: PostgresServer, ett_path: Path):
    _install_sigterm_handler()
    deployment = AirflowDeployment(postgres_server, ett_path)
    _STATE["deployment"] = deployment
    try:
        deployment.start()
        yield deployment
    finally:
        _STATE["deployment"] = None
        survivors = deployment.close()
    assert not survivors, f"processes left after stopping Airflow (killed now): {survivors}"
