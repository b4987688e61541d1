"""The Airflow plugin: the "ML Models" pages and JSON API over the model registry, mounted on the api-server
at /amml and shown inside Airflow's UI (an `external_views` entry rendered in an iframe).

    /amml/ui/                         the registered models (HTML; see airflow_amml/ui/)
    /amml/ui/dags/{dag_id}/pipeline   a pipeline's source and graph (operators/pipeline_page.py)
    /amml/models...                   the JSON API;  /amml/docs, /amml/openapi.json  its documentation

The app itself is Airflow-free (`airflow_amml.ui.app.create_app`); this module hands it Airflow's login and
the auth manager's permission checks:

* Airflow does not authenticate plugin endpoints (a plugin app is mounted, and inherits none of the core
  API's router dependencies), so every route, the schema and the docs included, asks for the caller: the
  same JWT as the REST API (a bearer token, or the UI's `_token` cookie, so the pages work inside Airflow's
  UI) and the permission to view plugins.
* Promoting (moving an alias) needs more than viewing: edit (`PUT`) permission on the DAG that trained the
  version (on every DAG when no DAG did), because moving `ett@champion` changes what that DAG's prediction
  runs load, the same trust as changing the DAG; and `PUT` on the custom view "ML Models", which a FAB
  deployment can grant or withhold on its own. (SimpleAuthManager lets every viewer through the custom-view
  check whatever the method, so the DAG check is what keeps viewers out there: it needs the USER role.)

Each request opens the registry from the configuration as it is then (a changed AMML_ARTIFACTS is seen at
once), as the tasks do: the environment, with `AMML_REGISTRY_CONN_ID`/`AMML_ARTIFACT_CONN_ID` resolved
through Airflow (`operators/connections.py`). That costs no database connection and no schema check, as the
engine is cached per process and the schema is checked once per process (`registry/database.py`).
"""

from __future__ import annotations

import functools
from typing import Any, ClassVar

from airflow.plugins_manager import AirflowPlugin

URL_PREFIX = "/amml"
VIEW_NAME = "ML Models"  # the nav entry, and the custom view whose PUT permission promoting needs
# its page in Airflow's UI: /plugin/amml-models/<path under the api-server> (operators/links.py links there)
MODELS_URL_ROUTE = "amml-models"


def create_app() -> Any:
    from airflow.api_fastapi.auth.managers.models.resource_details import AccessView
    from airflow.api_fastapi.core_api.security import get_user, requires_access_view
    from fastapi import Depends

    from airflow_amml.run_config import RunConfig
    from airflow_amml.ui.app import create_app as create_ui_app
    from airflow_amml.ui.context import Access
    from operators.pipeline_page import router as pipeline_router

    logged_in, may_view = Depends(get_user), Depends(requires_access_view(AccessView.PLUGINS))

    # defaults, not Annotated types: this module's annotations are strings, which FastAPI resolves against the
    # module's globals, where these local imports are not
    def current_user(user: Any = logged_in, _: Any = may_view) -> Any:
        return user  # FastAPI resolves the JWT once per request for both

    access = Access(
        current_user=current_user,
        user_name=lambda user: user.get_name(),
        can_promote=can_promote,
        readable_dags=readable_dags,
    )
    # the alerts are in the runs' database (AMML_DB_URL): no registry or artifact connection to resolve for them
    return create_ui_app(
        _registry, access, RunConfig.from_environment, url_prefix=URL_PREFIX, routers=[(pipeline_router, "/ui")]
    )


def can_promote(user: Any, version: Any) -> bool:
    """Edit permission on the DAG that trained `version` (every DAG when none did), and PUT on the
    "ML Models" custom view (see the module docstring for why both)."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagDetails

    auth = get_auth_manager()
    dag = DagDetails(id=version.lineage.dag_id) if version.lineage.dag_id else None
    return auth.is_authorized_dag(method="PUT", details=dag, user=user) and auth.is_authorized_custom_view(
        method="PUT", resource_name=VIEW_NAME, user=user
    )


def readable_dags(user: Any) -> set[str] | None:
    """The DAGs whose alerts `user` may read: the DAGs they may read (GET), as Airflow's own lists filter
    them; None when they may read every DAG (the alerts raised outside Airflow, with no DAG, are theirs too).
    With `[core] multi_team` the list always (the all-DAGs check does not see teams)."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.configuration import conf

    auth = get_auth_manager()
    if not conf.getboolean("core", "multi_team", fallback=False) and auth.is_authorized_dag(method="GET", user=user):
        return None
    return auth.get_authorized_dag_ids(user=user, method="GET")


def _registry() -> Any:
    from airflow_amml.registry import ModelRegistry
    from airflow_amml.run_config import RunConfig
    from operators.connections import connection_overrides

    return ModelRegistry.from_config(RunConfig.from_environment(**connection_overrides()))


class _BuiltOnFirstRead:
    """`fastapi_apps`, built when Airflow first reads it: only the api-server (and `airflow plugins`) do. Every
    task process loads the plugins too (for their macros), and building the app there would import FastAPI,
    Jinja, the registry and Airflow's API security: about a second added to the start of every task."""

    def __get__(self, obj: object, owner: type) -> list[dict[str, Any]]:
        return [_models_app()]


@functools.cache
def _models_app() -> dict[str, Any]:
    return {"app": create_app(), "url_prefix": URL_PREFIX, "name": "AMML models"}


class AmmlPlugin(AirflowPlugin):
    name = "amml"
    fastapi_apps = _BuiltOnFirstRead()
    external_views: ClassVar[list[dict[str, Any]]] = [
        {"name": VIEW_NAME, "href": "amml/ui/", "destination": "nav", "url_route": MODELS_URL_ROUTE},
        # a tab on every DAG's page: the pipeline's graph, parameters and source (operators/pipeline_page.py)
        {
            "name": "Pipeline",
            "href": "amml/ui/dags/{DAG_ID}/pipeline",
            "destination": "dag",
            "url_route": "amml-pipeline",
        },
    ]
    # No operator_extra_links: the training task's "Registered model" link (operators/links.py) is resolved in
    # the task and stored in XCom; registering it here would make the api-server call it (see that module).
