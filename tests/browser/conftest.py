"""A real Airflow for the browser tests, and a real browser to drive it.

``airflow_ui`` (module scope): Airflow 3.3's metadata on the test PostgreSQL, the SimpleAuthManager with an
admin and a viewer (passwords from a file written here), the AMML plugin, the model registry on PostgreSQL too
and a local artifact folder. The shipped ``dags/ett_train.amml`` is serialized (``airflow dags reserialize``),
then an ``airflow api-server`` on a free port and an ``airflow scheduler`` (LocalExecutor) run two real
training runs (1 and 2 epochs) triggered through the REST API: they register two versions of ``ett``, each with
the DagRun as its lineage, and leave their task logs where the UI reads them. Each step is bounded in time,
the logs are printed when a test fails, and every process group started here is stopped at the end.

``browser`` (module scope): headless Debian chromium through chromedriver, a fixed window size.
``shoot(name)``: a screenshot of the current page under ``$AMML_SCREENSHOTS`` (default ``build/screenshots``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest
import requests

from tests.services.fixtures import free_port, tail

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SCREENSHOTS = Path(os.environ.get("AMML_SCREENSHOTS") or ROOT / "build" / "screenshots")
USERS = {"admin": "admin-password", "viewer": "viewer-password"}
DAG_ID = "ett_train"
EPOCHS = (1, 2)  # two real trainings, short; different, so that two versions differ (same seed and data)
WINDOW = (1400, 1000)


class AirflowUI:
    """What the tests need to know about the running Airflow."""

    def __init__(self, home: Path, env: dict[str, str], url: str) -> None:
        self.home, self.env, self.url = home, env, url
        self.logs: list[Path] = []

    def token(self, user: str = "admin") -> str:
        response = requests.post(f"{self.url}/auth/token", json={"username": user, "password": USERS[user]}, timeout=10)
        response.raise_for_status()
        return response.json()["access_token"]

    def api(self, path: str, user: str = "admin") -> dict:
        """GET from Airflow's REST API (v2) as ``user``."""
        response = requests.get(
            f"{self.url}/api/v2{path}", headers={"Authorization": f"Bearer {self.token(user)}"}, timeout=30
        )
        response.raise_for_status()
        return response.json()

    def call(self, method: str, path: str, body: dict | None = None) -> dict:
        response = requests.request(
            method,
            f"{self.url}/api/v2{path}",
            json=body,
            headers={"Authorization": f"Bearer {self.token()}"},
            timeout=30,
        )
        assert response.ok, f"{method} {path}: {response.status_code} {response.text}"
        return response.json()

    def train(self, epochs: tuple[int, ...], *, scheduler: subprocess.Popen, timeout: float = 420) -> None:
        """Trigger one run of ett_train per entry of ``epochs`` through the REST API, as a user does from the
        trigger form, and wait for the scheduler to run them (LocalExecutor, at the same time) to success."""
        started = time.monotonic()
        self.call("PATCH", f"/dags/{DAG_ID}", {"is_paused": False})
        for n in epochs:
            self.call("POST", f"/dags/{DAG_ID}/dagRuns", {"logical_date": None, "conf": {"epochs": n}})
        scheduler_log = next(log for log in self.logs if log.name == "scheduler.log")

        def finished() -> list[dict] | None:
            found = self.api(f"/dags/{DAG_ID}/dagRuns")["dag_runs"]
            failed = [r for r in found if r["state"] == "failed"]
            assert not failed, f"a training run failed: {failed}\n{self.task_logs()}"
            return found if all(r["state"] == "success" for r in found) else None

        _wait_for(f"{len(epochs)} training runs", finished, timeout, scheduler_log, scheduler)
        print(f"{len(epochs)} training runs: {time.monotonic() - started:.1f}s")

    def task_logs(self) -> str:
        return "\n".join(f"--- {log} ---\n{tail(log, 40)}" for log in sorted((self.home / "logs").rglob("*.log")))

    def log_tails(self) -> str:
        tails = (f"--- {log.name} (tail) ---\n{tail(log, 80)}" for log in self.logs)
        return "\n".join([*tails, self.task_logs()])


def _run(what: str, args: list[str], env: dict[str, str], log: Path, timeout: float) -> None:
    """Run one Airflow command to the end, its output in ``log``; fail with the log's tail."""
    started = time.monotonic()
    with open(log, "w") as out:
        try:
            result = subprocess.run(args, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{what} took more than {timeout}s\n{tail(log, 80)}") from None
    print(f"{what}: {time.monotonic() - started:.1f}s")
    assert result.returncode == 0, f"{what} failed ({result.returncode})\n{tail(log, 80)}"


def _wait_for(what: str, check, timeout: float, log: Path, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{what}: the process exited ({proc.returncode})\n{tail(log, 80)}")
        try:
            if check():
                return
        except (requests.RequestException, OSError, ValueError, KeyError):
            pass
        time.sleep(1)
    raise AssertionError(f"timed out waiting for {what}\n{tail(log, 80)}")


def _stop_groups(procs: list[subprocess.Popen]) -> list[psutil.Process]:
    """SIGTERM each process group (each is a session of its own) at once, SIGKILL what is left after 30 s;
    return the processes that had to be killed."""
    tree = []
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            tree += [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    _, alive = psutil.wait_procs([p for p in tree if p.is_running()], timeout=20)
    for p in alive:
        p.kill()
    return alive


@pytest.fixture(scope="module")
def airflow_ui(postgres_server, tmp_path_factory, ett_path):
    home = tmp_path_factory.mktemp("airflow-ui")
    dags = home / "dags"
    dags.mkdir()
    shutil.copy(ROOT / "dags" / "amml_dags.py", dags)
    shutil.copy(ROOT / "dags" / "ett_train.amml", dags)
    shutil.copytree(ROOT / "dags" / "models", dags / "models")
    passwords = home / "passwords.json"
    passwords.write_text(json.dumps(USERS))
    if not postgres_server.is_running():
        postgres_server.start()
    suffix = uuid.uuid4().hex[:12]
    databases = [f"airflow_{suffix}", f"registry_{suffix}"]
    airflow_db, registry_db = (postgres_server.create_database(name) for name in databases)
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "AMML_"))},
        "PATH": f"{BIN}:{os.environ['PATH']}",
        "PYTHONPATH": str(ROOT),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": airflow_db,
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,viewer:viewer",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API__BASE_URL": f"http://localhost:{port}",
        "AIRFLOW__API_AUTH__JWT_SECRET": uuid.uuid4().hex,
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://localhost:{port}/execution/",
        "AMML_HOME": str(home / "amml"),
        "AMML_ETT_PATH": str(ett_path),
        "AMML_REGISTRY_URL": registry_db,
        "AMML_ARTIFACTS": str(home / "artifacts"),
        "AMML_CACHE": str(home / "amml-cache"),
        "AMML_OUTPUT_ROOT": str(home),
        "AMML_INPUT_ROOT": str(home),
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    ui = AirflowUI(home, env, f"http://localhost:{port}")
    started: list[subprocess.Popen] = []

    def start(what: str, *args: str) -> subprocess.Popen:
        ui.logs.append(home / f"{what}.log")
        with open(ui.logs[-1], "w") as out:
            started.append(
                subprocess.Popen(
                    [str(BIN / "airflow"), *args],
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # a process group of its own, stopped as a whole
                )
            )
        return started[-1]

    try:
        ui.logs.append(home / "db-migrate.log")
        _run("airflow db migrate", [str(BIN / "airflow"), "db", "migrate"], env, ui.logs[-1], 240)
        server = start("api-server", "api-server", "--port", str(port))
        scheduler = start("scheduler", "scheduler")
        ui.logs.append(home / "reserialize.log")  # the DAG in the database, as the dag-processor would put it
        _run("airflow dags reserialize", [str(BIN / "airflow"), "dags", "reserialize"], env, ui.logs[-1], 240)
        _wait_for("the api-server", lambda: ui.token("admin"), 180, home / "api-server.log", server)
        ui.train(EPOCHS, scheduler=scheduler)
        yield ui
    finally:
        survivors = _stop_groups(started)
        for name in databases:
            postgres_server.drop_database(name)
    assert not survivors, f"processes left after stopping Airflow (killed now): {survivors}"


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(flag)
    options.add_argument(f"--window-size={WINDOW[0]},{WINDOW[1]}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    if "AMML_SCREENSHOTS" not in os.environ:  # the default folder holds this module's pictures only
        for old in SCREENSHOTS.glob("*.png"):
            old.unlink()
    service = Service("/usr/bin/chromedriver")
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(60)
    driver.set_script_timeout(30)
    try:
        yield driver
    finally:
        browser_processes = psutil.Process(service.process.pid).children(recursive=True)
        driver.quit()
    _, alive = psutil.wait_procs(browser_processes, timeout=20)
    for p in alive:
        p.kill()
    assert not alive, f"chromium processes left after quitting the browser (killed now): {alive}"


@pytest.fixture
def shoot(browser, request):
    """``shoot("page")`` saves the current page as ``<test>-<page>.png``; the paths are printed."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    test = request.node.name.removeprefix("test_")

    def take(page: str) -> Path:
        path = SCREENSHOTS / f"{test}-{page}.png"
        # the whole page when it is longer than the window (Airflow's own pages scroll inside: no change)
        height = browser.execute_script("return document.documentElement.scrollHeight")
        if height > WINDOW[1]:
            browser.set_window_size(WINDOW[0], min(height + 150, 5000))
        try:
            browser.save_screenshot(str(path))
        finally:
            browser.set_window_size(*WINDOW)
        print(f"screenshot: {path}")
        return path

    return take


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture(autouse=True)
def _show_on_failure(request):
    """When a test fails: a screenshot of where the browser was, its console, and the Airflow logs' tails."""
    yield
    report = getattr(request.node, "rep_call", None)
    if report is None or not report.failed:
        return
    if "browser" in request.fixturenames:
        driver = request.getfixturevalue("browser")
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{request.node.name.removeprefix('test_')}-FAILED.png"
        driver.save_screenshot(str(path))
        print(f"at {driver.current_url}; screenshot: {path}")
        for entry in driver.get_log("browser"):
            print("console:", entry.get("level"), entry.get("message"))
    if "airflow_ui" in request.fixturenames:
        print(request.getfixturevalue("airflow_ui").log_tails())
