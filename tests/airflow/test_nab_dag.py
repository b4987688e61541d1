"""The shipped `nab_evaluation` DAG (dags/nab_evaluation.py, a Python DAG beside the AMML loader) with
dag.test(): `amml evaluate` of the recommended pipeline over a subset of the shipped NAB series, the report as
the task's XCom and its tables in the task's log."""

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.airflow.airflow_home import airflow_home

ROOT = Path(__file__).resolve().parents[2]
NAB = ROOT / "airflow_amml" / "data" / "nab"
CHOSEN = [
    "artificialWithAnomaly/art_daily_jumpsup.csv",
    "realKnownCause/nyc_taxi.csv",
    "realTweets/Twitter_volume_AAPL.csv",
]
PROFILES = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")


@pytest.fixture(scope="module")
def airflow_env(tmp_path_factory):
    """An Airflow home whose dags folder is a copy of the shipped one: the AMML loader and the Python DAG."""
    home = tmp_path_factory.mktemp("nab-airflow")
    dags = home / "dags"
    shutil.copytree(ROOT / "dags", dags)
    env = airflow_home(home, dags)
    return env, dags


def run_airflow(env, code):
    """Run ``code`` in a fresh interpreter (Airflow reads its configuration at import); its last stdout line is
    JSON. Returns (that JSON, the whole stdout: dag.test() prints the task's log there)."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stdout


EVALUATE = """
    import json
    import sqlalchemy as sa
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.xcom import XComModel
    from airflow.sdk.exceptions import ParamValidationError
    from airflow.utils.session import create_session

    bag = DagBag(dag_folder="{dags}", bundle_path="{dags}", bundle_name="dags-folder")
    dag = bag.dags["nab_evaluation"]
    try:
        dag.test(run_conf={{"series": ["realKnownCause/nyc_taxi.csv", "realKnownCause/../../etc/passwd"]}})
        refused = None
    except ParamValidationError as exc:
        refused = str(exc)
    run = dag.test(run_conf={{"series": {chosen}}})
    with create_session() as session:
        xcoms = session.execute(sa.select(XComModel.key, XComModel.value).where(XComModel.run_id == run.run_id))
        xcoms = {{key: value for key, value in xcoms}}
    print(json.dumps({{
        "dag_ids": sorted(bag.dag_ids),
        "import_errors": {{str(k): v for k, v in bag.import_errors.items()}},
        "schedule": str(dag.schedule),
        "tasks": [t.task_id for t in dag.tasks],
        "choices": dag.params.get_param("series").schema["items"]["enum"],
        "refused": refused,
        "state": str(run.state),
        "xcoms": xcoms,
    }}, default=str))
"""


def test_the_task_evaluates_the_chosen_series_and_returns_the_report(airflow_env):
    env, dags = airflow_env
    result, log = run_airflow(env, EVALUATE.format(dags=dags, chosen=json.dumps(CHOSEN)))

    # a Python DAG beside the AMML loader's: the recommended pipeline is in the package, so it is no DAG
    assert "nab_evaluation" in result["dag_ids"] and result["import_errors"] == {}
    assert not [d for d in result["dag_ids"] if d.startswith("amml_error__")]
    assert result["schedule"] == "None" and result["tasks"] == ["evaluate"]
    shipped = json.loads((NAB / "combined_windows.json").read_text())
    assert set(result["choices"]) == set(shipped) | {key.split("/")[0] for key in shipped}
    # a name that is not shipped is refused before any run starts, naming it
    assert "'realKnownCause/../../etc/passwd' is not one of" in result["refused"]

    assert result["state"] == "success"
    assert set(result["xcoms"]) == {"return_value"}, "one XCom: the report"
    report = result["xcoms"]["return_value"]
    assert report["pipeline"].endswith("airflow_amml/detection/pipelines/nab_recommended.amml")
    assert set(report["categories"]) == {key.split("/")[0] for key in CHOSEN}
    assert report["all"]["series"] == 3
    assert report["all"]["windows"] == sum(len(shipped[key]) for key in CHOSEN)
    assert set(report["thresholds_optimised_on_these_labels"]) == set(PROFILES)
    for group in [*report["categories"].values(), report["all"]]:
        for kind in ("nab_optimised_on_these_labels", "nab_fixed"):
            assert set(group[kind]) == set(PROFILES)
            for profile in PROFILES:
                assert -100 <= group[kind][profile]["score"] <= 100
                assert 0 <= group[kind][profile]["detected_windows"] <= group["windows"]
        for name in ("precision", "recall", "f1"):
            assert group["event"][name] is None or 0 <= group["event"][name] <= 1
    # the log holds the report's tables (rendered by `amml evaluate`'s text report)
    assert "NAB score (0: never detecting, 100: every window at its first record, nothing else)" in log
    assert "3 series" in log and "realKnownCause" in log
