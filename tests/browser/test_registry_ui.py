"""The ML Models pages in a real browser (headless chromium) against a real Airflow api-server with the AMML
plugin (see conftest.py): log in through Airflow's own login page, find the registry in Airflow's nav, read a
version's metrics, plots, scaler and lineage as the registry holds them, follow run → model → run, compare two
versions, promote as an admin and be refused as a viewer, see a DAG's pipeline. The tests assert on what the
pages show; every page is saved as a screenshot (`shoot`). The tests run in file order on one browser."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from urllib.parse import unquote, urlsplit

import pytest
import requests
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from .conftest import DAG_ID, EPOCHS, USERS

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]  # the first test also starts Airflow, trains twice

PIPELINE_LINE = 'source id="ett" | minmax_scaler | train_lstm model=params.model, epoch=params.epochs | print'


def wait(browser, seconds: float = 30) -> WebDriverWait:
    return WebDriverWait(browser, seconds)


@pytest.fixture(scope="module")
def registry(airflow_ui):
    """The registry the api-server reads, opened here from the same configuration: what the pages must show."""
    from airflow_amml.registry import ModelRegistry
    from airflow_amml.run_config import RunConfig

    return ModelRegistry.from_config(RunConfig.from_environment(airflow_ui.env))


def log_in(browser, airflow_ui, user: str) -> None:
    """Through Airflow's own login page (the SimpleAuthManager's), as a person does; a no-op if already."""
    if getattr(browser, "amml_user", None) == user:
        return
    browser.get(airflow_ui.url + "/")
    browser.delete_all_cookies()
    browser.get(airflow_ui.url + "/")
    wait(browser).until(lambda b: "/auth/login" in b.current_url)
    wait(browser).until(ec.element_to_be_clickable((By.NAME, "username"))).send_keys(user)
    browser.find_element(By.NAME, "password").send_keys(USERS[user])
    wait(browser).until(ec.element_to_be_clickable((By.CSS_SELECTOR, "button[type=submit]"))).click()
    wait(browser).until(lambda b: "/auth/login" not in b.current_url)
    assert "_token" in {c["name"] for c in browser.get_cookies()}, "Airflow's login sets the UI's token cookie"
    browser.amml_user = user


def settle(browser, seconds: float = 15) -> None:
    """Let Airflow's React pages finish loading (no skeleton placeholders left) before a screenshot."""
    try:
        wait(browser, seconds).until(
            lambda b: b.execute_script("return document.querySelectorAll('.chakra-skeleton').length") == 0
        )
    except TimeoutException:
        pass  # a picture of a page still loading is still a picture; the assertions are elsewhere


def open_page(browser, url: str):
    """Open one of the plugin's pages on its own and return its `<h1>` (after the page has loaded)."""
    browser.get(url)
    return wait(browser).until(ec.presence_of_element_located((By.TAG_NAME, "h1")))


def rows(browser, table_id: str) -> list[list[str]]:
    """The cells' text of a table's body, row by row (header cells of a row included)."""
    table = browser.find_element(By.ID, table_id)
    return [
        [cell.text.strip() for cell in tr.find_elements(By.CSS_SELECTOR, "th, td")]
        for tr in table.find_elements(By.CSS_SELECTOR, "tbody tr")
    ]


def shown_number(text: str) -> float:
    return float(text.replace("\u2212", "-").replace(",", ""))


def assert_shows(text: str, expected) -> None:
    """A value as the page shows it: numbers to 4 significant digits at least, everything else as is."""
    if isinstance(expected, bool) or not isinstance(expected, int | float):
        assert text == str(expected), (text, expected)
    elif isinstance(expected, int):
        assert shown_number(text) == expected, (text, expected)
    else:
        assert math.isclose(shown_number(text), expected, rel_tol=5e-4, abs_tol=1e-12), (text, expected)


def test_the_training_runs_registered_two_versions_in_airflow_and_the_registry(airflow_ui, registry):
    """The ground the other tests stand on: two real, successful DagRuns, each the lineage of one version."""
    runs = airflow_ui.api(f"/dags/{DAG_ID}/dagRuns")["dag_runs"]
    assert [r["state"] for r in runs] == ["success", "success"], runs
    versions = registry.list_versions("ett")
    assert [v.version for v in versions] == [1, 2]
    assert sorted(v.lineage.run_id for v in versions) == sorted(r["dag_run_id"] for r in runs)
    assert {v.lineage.dag_id for v in versions} == {DAG_ID}
    assert sorted(v.metrics["epochs"] for v in versions) == sorted(EPOCHS), [v.metrics for v in versions]


def test_log_in_and_open_ml_models_from_the_nav(airflow_ui, browser, shoot, registry):
    log_in(browser, airflow_ui, "admin")
    wait(browser).until(ec.presence_of_element_located((By.CSS_SELECTOR, "a[aria-label='ML Models']")))
    settle(browser)
    shoot("airflow-home")
    browser.find_element(By.CSS_SELECTOR, "a[aria-label='ML Models']").click()
    frame = wait(browser).until(ec.presence_of_element_located((By.CSS_SELECTOR, "iframe[title='ML Models']")))
    assert urlsplit(frame.get_attribute("src")).path == "/amml/ui/", frame.get_attribute("src")
    browser.switch_to.frame(frame)
    try:
        heading = wait(browser).until(ec.presence_of_element_located((By.TAG_NAME, "h1")))
        assert heading.text == "ML Models"
        row = wait(browser).until(ec.presence_of_element_located((By.CSS_SELECTOR, "#models tr[data-model='ett']")))
        assert row.find_element(By.TAG_NAME, "a").text == "ett"
        browser.switch_to.default_content()
        shoot("nav-ml-models")
    finally:
        browser.switch_to.default_content()


def test_models_page_lists_the_registered_models(airflow_ui, browser, shoot, registry):
    log_in(browser, airflow_ui, "admin")
    assert open_page(browser, airflow_ui.url + "/amml/ui/").text == "ML Models"
    shoot("models")
    [row] = browser.find_elements(By.CSS_SELECTOR, "#models tbody tr")
    assert row.get_attribute("data-model") == "ett"
    cells = [td.text for td in row.find_elements(By.TAG_NAME, "td")]
    latest = registry.resolve("ett")
    assert str(latest.version) in cells, cells  # latest version
    assert str(len(registry.list_versions("ett"))) in cells, cells  # how many
    row.find_element(By.LINK_TEXT, "ett").click()
    assert wait(browser).until(ec.presence_of_element_located((By.TAG_NAME, "h1"))).text == "ett"


def test_model_page_lists_its_versions_with_their_runs(airflow_ui, browser, shoot, registry):
    log_in(browser, airflow_ui, "admin")
    open_page(browser, airflow_ui.url + "/amml/ui/models/ett")
    shoot("model")
    versions = registry.list_versions("ett")
    shown = browser.find_elements(By.CSS_SELECTOR, "#versions tbody tr[data-version]")
    assert sorted(int(tr.get_attribute("data-version")) for tr in shown) == [v.version for v in versions]
    for v in versions:
        tr = browser.find_element(By.CSS_SELECTOR, f"#versions tr[data-version='{v.version}']")
        assert v.definition in tr.text
        run = tr.find_element(By.CSS_SELECTOR, f"a[href*='/dags/{DAG_ID}/runs/']")
        assert unquote(urlsplit(run.get_attribute("href")).path) == f"/dags/{DAG_ID}/runs/{v.lineage.run_id}"
    browser.find_element(By.ID, "alias-history")  # the history table is there (its rows: test_promote...)


def test_version_page_shows_metrics_plots_scaler_and_lineage(airflow_ui, browser, shoot, registry):
    log_in(browser, airflow_ui, "admin")
    v = registry.resolve("ett/1")
    assert open_page(browser, airflow_ui.url + "/amml/ui/models/ett/versions/1").text == "ett/1"
    wait(browser).until(lambda b: all(img.get_property("complete") for img in b.find_elements(By.CSS_SELECTOR, "img")))
    shoot("version")

    shown_metrics = {r[0]: r[1] for r in rows(browser, "metrics")}
    assert set(shown_metrics) == set(v.metrics), "every metric the registry keeps, and no other"
    for name, expected in v.metrics.items():
        assert_shows(shown_metrics[name], expected)

    token = airflow_ui.token("admin")
    for plot in ("loss", "prediction"):
        assert plot in v.plots, v.plots
        img = browser.find_element(By.CSS_SELECTOR, f"img.plot[alt='{plot}']")
        assert img.get_property("naturalWidth") > 0, f"the {plot} plot did not load: {img.get_attribute('src')}"
        src = img.get_attribute("src")
        assert urlsplit(src).path == f"/amml/models/ett/versions/1/plots/{plot}", src
        served = requests.get(src, headers={"Authorization": f"Bearer {token}"}, timeout=30)
        assert served.headers["content-type"] == "image/png"
        assert served.content == registry.read_plot("ett/1", plot), "the page shows the registered plot"

    scaler = {r[0]: r[1:] for r in rows(browser, "scaler")}
    columns = v.scaler["columns"]
    assert set(scaler) == set(columns), (scaler, v.scaler)
    for column, statistics in columns.items():
        assert len(scaler[column]) == len(statistics)
        for text, expected in zip(scaler[column], statistics):
            assert_shows(text, expected)

    link = browser.find_element(By.CSS_SELECTOR, "#lineage a#run-link")
    assert unquote(urlsplit(link.get_attribute("href")).path) == f"/dags/{DAG_ID}/runs/{v.lineage.run_id}"
    assert link.get_attribute("target") == "_top", "a link out of Airflow's iframe opens in the whole window"
    assert v.lineage.run_id in rows(browser, "lineage")[0][1]

    # the training parameters the run used (MLflow's params), as the registry keeps them
    params = getattr(v, "params", {}) or {}
    shown_params = rows(browser, "params")
    if params:
        assert {r[0] for r in shown_params} == set(params), (shown_params, params)
        for name, text in shown_params:
            expected = params[name]  # as an AMML file writes it: true/false; — for none given
            assert_shows(
                text, "—" if expected is None else str(expected).lower() if isinstance(expected, bool) else expected
            )
    else:
        assert "Not recorded" in shown_params[0][0], shown_params
    # ett/1 is the champion (the first version of a model becomes it): the form does not offer champion again
    assert "champion" in v.aliases
    alias = browser.find_element(By.CSS_SELECTOR, "#promote input[name=alias]")
    assert alias.get_attribute("value") == "", "not champion: version 1 is the champion already"
    offered = [o.get_attribute("value") for o in browser.find_elements(By.CSS_SELECTOR, "#promote datalist option")]
    assert "champion" not in offered, offered
    download = browser.find_element(By.ID, "artifact-link")
    served = requests.get(download.get_attribute("href"), headers={"Authorization": f"Bearer {token}"}, timeout=60)
    assert served.status_code == 200 and len(served.content) == v.artifact_size, "the model file, from the store"


def in_models_frame(browser):
    """Switch into the "ML Models" iframe of Airflow's page (once its page has loaded); return its <h1>."""
    browser.switch_to.default_content()
    frame = wait(browser).until(ec.presence_of_element_located((By.CSS_SELECTOR, "iframe[title='ML Models']")))
    browser.switch_to.frame(frame)
    return wait(browser).until(ec.presence_of_element_located((By.TAG_NAME, "h1")))


def test_run_to_model_to_run(airflow_ui, browser, shoot, registry):
    """Inside Airflow's UI, as a user clicks through it: a version's page in the ML Models iframe (deep-linked),
    its run link (clicked inside the sandboxed iframe) to Airflow's page of the run that trained it, and from
    that run's training task, through its extra link, back to the version, still inside Airflow's chrome."""
    log_in(browser, airflow_ui, "admin")
    v = registry.resolve("ett/2")
    version_path = "/plugin/amml-models/amml/ui/models/ett/versions/2"
    browser.get(airflow_ui.url + version_path)
    try:
        assert in_models_frame(browser).text == "ett/2", "Airflow's deep link opens the version in the iframe"
        browser.find_element(By.ID, "run-link").click()  # target=_top, blocked by the sandbox without amml.js
    finally:
        browser.switch_to.default_content()
    run_path = f"/dags/{DAG_ID}/runs/{v.lineage.run_id}"
    wait(browser).until(lambda b: unquote(urlsplit(b.current_url).path) == run_path)
    wait(browser).until(lambda b: v.lineage.run_id in b.find_element(By.TAG_NAME, "body").text)
    assert not browser.find_elements(By.CSS_SELECTOR, "iframe[title='ML Models']"), "the run page, not the frame"
    settle(browser)
    shoot("airflow-run")

    browser.get(f"{airflow_ui.url}{run_path}/tasks/{v.lineage.task_id}")
    wait(browser).until(lambda b: "ett/2" in b.find_element(By.TAG_NAME, "body").text)  # the task's log names it
    shoot("airflow-task-log")
    # the operator's extra link: Airflow 3.3 shows them under "Extra Links" on the task's Details tab
    wait(browser).until(ec.element_to_be_clickable((By.XPATH, "//a[normalize-space()='Details']"))).click()
    extra_link = "//*[normalize-space(text())='Extra Links']/following::a[contains(@href, '/amml/ui/models/')]"
    try:
        link = wait(browser, 20).until(ec.presence_of_element_located((By.XPATH, extra_link)))
    except TimeoutException:
        shoot("airflow-task-details")
        links = airflow_ui.api(f"/dags/{DAG_ID}/dagRuns/{v.lineage.run_id}/taskInstances/{v.lineage.task_id}/links")
        pytest.fail(f"the training task's page has no extra link to the version it registered; REST API: {links}")
    shoot("airflow-task-details")
    assert urlsplit(link.get_attribute("href")).path == version_path, link.get_attribute("href")
    # (a link's name is fixed per operator in the serialized DAG, so the version is in its URL, not its name)
    assert "model" in link.text.lower(), link.text
    link.click()
    wait(browser).until(lambda b: urlsplit(b.current_url).path == version_path)
    try:
        assert in_models_frame(browser).text == "ett/2", "the extra link opens the version inside Airflow's UI"
        back = browser.find_element(By.ID, "run-link")  # and the loop closes: the version names that same run
        assert unquote(urlsplit(back.get_attribute("href")).path) == run_path
        wait(browser).until(
            lambda b: all(img.get_property("complete") for img in b.find_elements(By.CSS_SELECTOR, "img"))
        )
    finally:
        browser.switch_to.default_content()
    assert browser.find_element(By.CSS_SELECTOR, "a[aria-label='ML Models']"), "Airflow's nav around it"
    shoot("extra-link-version-in-airflow")


def test_compare_two_versions(airflow_ui, browser, shoot, registry):
    log_in(browser, airflow_ui, "admin")
    open_page(browser, airflow_ui.url + "/amml/ui/models/ett")
    for n in (1, 2):
        browser.find_element(By.CSS_SELECTOR, f"#versions tr[data-version='{n}'] input[type=checkbox]").click()
    browser.find_element(By.ID, "compare").click()
    table = wait(browser).until(ec.presence_of_element_located((By.CSS_SELECTOR, "table#compare")))
    shoot("compare")
    headers = [th.text for th in table.find_elements(By.CSS_SELECTOR, "thead th")][1:]
    assert headers == ["ett/1", "ett/2"]
    versions = [registry.resolve("ett/1"), registry.resolve("ett/2")]
    by_metric = {tr.get_attribute("data-metric"): tr for tr in table.find_elements(By.CSS_SELECTOR, "tr[data-metric]")}
    assert set(by_metric) == set(versions[0].metrics) | set(versions[1].metrics)
    for name, tr in by_metric.items():
        cells = [td.text for td in tr.find_elements(By.TAG_NAME, "td")]
        for text, version in zip(cells, versions, strict=True):
            assert_shows(text, version.metrics[name])
    assert versions[0].metrics["loss"] != versions[1].metrics["loss"], "two real trainings differ"


def shown_time(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S UTC").replace(tzinfo=UTC)


def test_promote_as_admin_moves_the_alias_and_records_who_and_when(airflow_ui, browser, shoot, registry):
    log_in(browser, airflow_ui, "admin")
    before = {v.version for v in registry.list_versions("ett") if "champion" in v.aliases}
    target = 2 if before != {2} else 1
    open_page(browser, airflow_ui.url + f"/amml/ui/models/ett/versions/{target}")
    form = browser.find_element(By.ID, "promote")
    alias = form.find_element(By.NAME, "alias")
    alias.clear()
    alias.send_keys("champion")
    reason = form.find_elements(By.NAME, "reason")
    if reason:
        reason[0].send_keys("lower loss (browser test)")
    shoot("promote-form")
    started = datetime.now(UTC).replace(microsecond=0)
    browser.find_element(By.ID, "promote-button").click()
    message = wait(browser).until(ec.presence_of_element_located((By.ID, "message")))
    finished = datetime.now(UTC)
    shoot("promoted")
    assert message.get_attribute("role") == "alert"
    assert f"version {target}" in message.text and "champion" in message.text, message.text
    assert registry.resolve("ett@champion").version == target, "the alias moved"
    assert "@champion" in {s.text for s in browser.find_elements(By.CSS_SELECTOR, "span.alias")}
    # now the champion: the form no longer offers to point champion at it
    assert browser.find_element(By.CSS_SELECTOR, "#promote input[name=alias]").get_attribute("value") == ""

    open_page(browser, airflow_ui.url + "/amml/ui/models/ett")
    shoot("alias-history")
    newest = rows(browser, "alias-history")[0]
    assert "@champion" in newest and str(target) in newest and "admin" in newest, newest
    assert started <= shown_time(newest[0]) <= finished, (newest[0], started, finished)
    [change, *_] = registry.alias_history("ett", "champion")
    assert (change.version, change.set_by) == (target, "admin")
    assert change.previous_version == (min(before) if before else None)


def test_viewer_may_look_but_not_promote(airflow_ui, browser, shoot, registry):
    log_in(browser, airflow_ui, "viewer")
    champion = registry.resolve("ett@champion").version
    other = 1 if champion == 2 else 2
    open_page(browser, airflow_ui.url + f"/amml/ui/models/ett/versions/{other}")
    shoot("viewer-version")
    button = browser.find_element(By.ID, "promote-button")
    assert not button.is_enabled(), "the form is disabled for a viewer"
    assert "not promote" in browser.find_element(By.TAG_NAME, "main").text, "the page says why, as text"

    # The server refuses too, whatever the browser sends: enable the form by hand (as a user could) and post it.
    browser.execute_script(
        "document.querySelectorAll('#promote [disabled]').forEach(e => e.removeAttribute('disabled'))"
    )
    browser.find_element(By.ID, "promote-button").click()
    message = wait(browser).until(ec.presence_of_element_located((By.ID, "message")))
    shoot("viewer-refused")
    assert message.get_attribute("role") == "alert"
    assert "viewer" in message.text and not message.text.lstrip().startswith("{"), message.text
    assert registry.resolve("ett@champion").version == champion, "the alias did not move"

    refused = requests.put(
        f"{airflow_ui.url}/amml/models/ett/aliases/champion",
        json={"version": other, "reason": "viewer tries"},
        headers={"Authorization": f"Bearer {airflow_ui.token('viewer')}"},
        timeout=30,
    )
    assert refused.status_code == 403, refused.text
    assert registry.resolve("ett@champion").version == champion


def test_pipeline_page_shows_the_source_and_the_graph(airflow_ui, browser, shoot):
    log_in(browser, airflow_ui, "admin")
    heading = open_page(browser, airflow_ui.url + f"/amml/ui/dags/{DAG_ID}/pipeline")
    shoot("pipeline")
    assert DAG_ID in heading.text
    graph = browser.find_element(By.CSS_SELECTOR, "svg#pipeline-graph")
    assert graph.size["width"] > 100 and graph.size["height"] > 20, graph.size
    labels = graph.text
    for component in ("source", "minmax_scaler", "train_lstm", "print"):
        assert component in labels, labels
    source = browser.find_element(By.ID, "amml-source").text
    assert PIPELINE_LINE in source and "\n" in source, "the source with its line breaks"


def test_pipeline_tab_of_the_dag_page(airflow_ui, browser, shoot):
    """The same page, one click away on Airflow's own DAG page (a plugin tab, in an iframe)."""
    log_in(browser, airflow_ui, "admin")
    browser.get(f"{airflow_ui.url}/dags/{DAG_ID}")
    tab = wait(browser).until(ec.element_to_be_clickable((By.XPATH, "//a[normalize-space()='Pipeline']")))
    tab.click()
    frame = wait(browser).until(ec.presence_of_element_located((By.CSS_SELECTOR, "iframe")))
    assert urlsplit(frame.get_attribute("src")).path == f"/amml/ui/dags/{DAG_ID}/pipeline", frame.get_attribute("src")
    browser.switch_to.frame(frame)
    try:
        graph = wait(browser).until(ec.presence_of_element_located((By.CSS_SELECTOR, "svg#pipeline-graph")))
        assert graph.size["width"] > 100, graph.size
    finally:
        browser.switch_to.default_content()
    shoot("dag-pipeline-tab")


def test_api_docs_page(airflow_ui, browser, shoot):
    log_in(browser, airflow_ui, "admin")
    open_page(browser, airflow_ui.url + "/amml/docs")
    shoot("api-docs")
    text = browser.find_element(By.TAG_NAME, "body").text
    for path in ("/models", "/aliases", "/plots"):
        assert path in text, path
    loaded = [
        e.get_attribute("src") or e.get_attribute("href")
        for e in browser.find_elements(By.CSS_SELECTOR, "script[src], link[href], img[src], iframe[src]")
    ]
    assert all(urlsplit(u).netloc == urlsplit(airflow_ui.url).netloc for u in loaded), "nothing from the internet"


def test_alerts_page_lists_the_alerts_and_an_alert_shows_the_records_around_it(airflow_ui, browser, shoot, tmp_path):
    """`amml run` of a pipeline that alerts on hot oil, against the deployment's database (AMML_DB_URL), then
    the pages as a person reaches them: ML Models → Alerts → the alert, its plot and its snapshot."""
    watch = tmp_path / "hot.amml"
    watch.write_text(
        'source id="ett", limit=2000 | select cols=["date", "OT"] '
        '| alert cond=OT > 40, message="hot oil", cooldown=500, time="date", snapshot=6, after=2\n'
    )
    airflow_ui.amml("run", str(watch))
    [(newest, count)] = airflow_ui.sink_rows("select max(id), count(*) from amml_alerts where message = 'hot oil'")
    log_in(browser, airflow_ui, "admin")
    open_page(browser, airflow_ui.url + "/amml/ui/")
    browser.find_element(By.ID, "alerts-link").click()
    assert wait(browser).until(ec.presence_of_element_located((By.TAG_NAME, "h1"))).text == "Alerts"
    shoot("alerts")
    listed = browser.find_elements(By.CSS_SELECTOR, "#alerts tbody tr[data-alert]")
    assert len(listed) >= count and listed[0].get_attribute("data-alert") == str(newest)
    assert "hot oil" in listed[0].text and "complete (8 records)" in listed[0].text
    listed[0].find_element(By.LINK_TEXT, str(newest)).click()
    assert wait(browser).until(ec.presence_of_element_located((By.TAG_NAME, "h1"))).text == f"Alert {newest}"
    plot = wait(browser).until(ec.presence_of_element_located((By.ID, "snapshot-plot")))
    wait(browser).until(lambda b: plot.get_property("complete") and plot.get_property("naturalWidth") > 0)
    assert plot.get_property("naturalWidth") == 900, "the snapshot's plot, drawn by the api-server"
    shoot("alert")
    snapshot = rows(browser, "snapshot")
    assert len(snapshot) == 8 and [r[1] for r in snapshot][5] == "2016-08-06 14:00:00"  # the second incident
    highlighted = browser.find_elements(By.CSS_SELECTOR, "#snapshot tr.alert-row")
    assert len(highlighted) == 1 and highlighted[0].text.startswith("6 2016-08-06 14:00:00")
    csv_link = browser.find_element(By.ID, "snapshot-csv").get_attribute("href")
    assert urlsplit(csv_link).path == f"/amml/ui/alerts/{newest}/snapshot.csv"


def test_the_login_is_needed(airflow_ui, browser):
    """A stranger (no cookie) gets the readable 401 page pointing at Airflow's login, not JSON."""
    browser.delete_all_cookies()
    browser.amml_user = None
    try:
        open_page(browser, airflow_ui.url + "/amml/ui/models/ett")
    except TimeoutException:
        pytest.fail(f"no page: {browser.page_source[:500]}")
    message = browser.find_element(By.ID, "message")
    assert "not logged in" in message.text, message.text
    assert browser.find_element(By.LINK_TEXT, "Log in to Airflow").get_attribute("target") == "_top"
