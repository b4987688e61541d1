"""NAB evaluation of the recommended detection pipeline: trigger it by hand.

The one task runs `amml evaluate` (``airflow_amml.detection.evaluate``) with the pipeline the package ships,
``airflow_amml/detection/pipelines/nab_recommended.amml``, over the NAB series that ship with it
(``airflow_amml/data/nab``: 28 series of NAB v1.1 and their windows). It logs the report's tables and returns
the report as JSON (its XCom): the NAB score for the three profiles, optimised on the labels and fixed, and the
event precision/recall/F1, point F1 and mean time to detect, per category and pooled.

Param ``series``: the categories (``realKnownCause``) or files (``realKnownCause/nyc_taxi.csv``) to evaluate;
empty for all 28. Only the shipped names are accepted: the param's schema lists them, so the trigger form
offers them and Airflow refuses a run (``ParamValidationError``) naming any other.

This is a Python DAG file: the AMML loader (``amml_dags.py``) builds DAGs from the ``.amml`` files only, and the
recommended pipeline lives in the package, not in this folder, so it does not become a DAG of its own.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pendulum
from airflow.sdk import Param, dag, get_current_context, task

import airflow_amml

NAB = Path(airflow_amml.__file__).resolve().parent / "data" / "nab"
WINDOWS = NAB / "combined_windows.json"
PIPELINE = Path(airflow_amml.__file__).resolve().parent / "detection" / "pipelines" / "nab_recommended.amml"

log = logging.getLogger(__name__)


def shipped_windows() -> dict[str, list]:
    """The shipped windows, by series (``category/name.csv``): a small JSON file, cheap at parse time."""
    return json.loads(WINDOWS.read_text())


def choices(windows: dict[str, list]) -> list[str]:
    """What the param accepts: the categories, then the files."""
    return sorted({key.split("/", 1)[0] for key in windows}) + sorted(windows)


def chosen_windows(selection: list[str]) -> dict[str, list]:
    """The shipped windows of the series ``selection`` names: files, or every file of a category (all when
    ``selection`` is empty)."""
    windows = shipped_windows()  # the names were checked against the param's schema when the run was made
    if not selection:
        return windows
    return {key: w for key, w in windows.items() if key in selection or key.split("/", 1)[0] in selection}


CHOICES = choices(shipped_windows())


@dag(
    dag_id="nab_evaluation",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    tags=["amml", "nab", "evaluation"],
    doc_md=__doc__,
    params={
        "series": Param(
            [],
            type="array",
            items={"type": "string", "enum": CHOICES},
            examples=CHOICES,
            title="Series",
            description="categories or files of the shipped NAB series to evaluate; none selected: all 28",
        )
    },
)
def nab_evaluation() -> None:
    # one XCom, the whole report (not one per key); the log shows the tables, not the report's dict again
    @task(multiple_outputs=False, show_return_value_in_logs=False)
    def evaluate() -> dict:
        """The report of the recommended pipeline over the chosen series (JSON, the XCom); its tables, logged."""
        import tempfile

        from airflow_amml.detection.evaluate import evaluate as run_evaluation

        windows = chosen_windows(list(get_current_context()["params"]["series"]))
        with tempfile.TemporaryDirectory(prefix="amml-nab-") as tmp:
            labels = Path(tmp) / "windows.json"
            labels.write_text(json.dumps(windows))
            report = run_evaluation(PIPELINE, NAB, labels)
        log.info("%s", report.to_text())
        return report.to_json()

    evaluate()


nab_evaluation()
