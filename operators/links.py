"""The operator extra link of a training task: "Registered model" → the registry page of the version it made.

How Airflow 3.3 handles it (airflow/sdk/execution_time/task_runner.py `finalize`, and
airflow/serialization/serialized_objects.py): at the end of the task, in the task's own process, the task
runner calls ``get_link`` of every link in ``operator_extra_links`` and stores the URL in XCom under the link's
``xcom_key``. The serialized DAG keeps only ``{link name: xcom key}``; the api-server turns that back into an
``XComOperatorLink`` that reads the stored URL. So the api-server never runs this class, and the plugin need
not register it (registering it there would make the api-server call ``get_link`` itself, where the task SDK's
XCom cannot be read). A link whose URL is empty is not shown by the UI.

Imported by every task process that loads the operator: nothing heavy here.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urljoin

from airflow.sdk import BaseOperatorLink

# XCom key under which the operator stores the model versions a run registered: ["ett/3"]
MODELS_XCOM_KEY = "amml_models"
# The "ML Models" nav entry's `url_route` (airflow_amml/plugin.py): Airflow's UI shows `/plugin/<url_route>/<path>`
# as its page with `/<path>` in the entry's iframe, so a link there opens a registry page inside Airflow's chrome
MODELS_URL_ROUTE = "amml-models"


def model_url(ref: str) -> str:
    """The registry page of version ``name/N``, inside Airflow's UI, under Airflow's ``[api] base_url`` (a path
    relative to the UI's origin when it has none): ``/plugin/amml-models/amml/ui/models/ett/versions/3``."""
    from airflow.sdk import conf

    name, _, version = ref.rpartition("/")
    base = conf.get("api", "base_url", fallback="/") or "/"
    page = f"amml/ui/models/{quote(name, safe='')}/versions/{quote(version, safe='')}"
    return urljoin(base.rstrip("/") + "/", f"plugin/{MODELS_URL_ROUTE}/{page}")


class RegisteredModelLink(BaseOperatorLink):
    """The version the task registered (the last one, if it registered several; the task log names all)."""

    name = "Registered model"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        from airflow.sdk.execution_time.xcom import XCom  # the configured XCom backend, as the task pushed to

        refs = XCom.get_value(ti_key=ti_key, key=MODELS_XCOM_KEY)
        if not refs or not isinstance(refs, list):
            return ""
        return model_url(str(refs[-1]))
