"""A real Airflow for the browser tests, and a real browser to drive it.

``airflow_ui`` (module scope): the session's Airflow deployment (tests/services/airflow_deployment.py:
metadata on the test PostgreSQL, CeleryExecutor with two workers, the SimpleAuthManager with an admin and a
viewer whose passwords come from a file, the AMML plugin, the model registry on PostgreSQL too and a local
artifact folder) after its two real training runs of the shipped ``dags/ett_train.amml`` (1 and 2 epochs,
triggered through the REST API, done once per session and shared with tests/airflow/test_scheduler_e2e.py):
they register two versions of ``ett``, each with the DagRun as its lineage, and leave their task logs where
the UI reads them. The logs are printed when a test fails; the deployment stops itself after the last test
that uses it.

``browser`` (module scope): headless Debian chromium through chromedriver, a fixed window size.
``shoot(name)``: a screenshot of the current page under ``$AMML_SCREENSHOTS`` (default ``build/screenshots``).
"""

from __future__ import annotations

import os
from pathlib import Path

import psutil
import pytest

from tests.services.airflow_deployment import TRAINING_EPOCHS, USERS

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = Path(os.environ.get("AMML_SCREENSHOTS") or ROOT / "build" / "screenshots")
DAG_ID = "ett_train"
EPOCHS = TRAINING_EPOCHS  # two real trainings, short; different, so that two versions differ (same seed, data)
WINDOW = (1400, 1000)

__all__ = ["DAG_ID", "EPOCHS", "USERS"]


@pytest.fixture(scope="module")
def airflow_ui(airflow_deployment):
    """The deployment (``url``, ``env``, ``token(user)``, ``api(path, user)``, ``log_tails()``) once the two
    ett_train runs have registered their versions."""
    airflow_deployment.train_ett(EPOCHS)
    return airflow_deployment


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
