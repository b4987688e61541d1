"""The Airflow plugin: a read-only "ML Models" page over the model registry, mounted on the api-server.

    GET /amml/models            every registered version (name, version, definition, aliases, metrics)
    GET /amml/models/{ref}      one version: `ett`, `ett@champion` or `ett/3`
    GET /amml/openapi.json      the OpenAPI schema of these endpoints

Airflow does not authenticate plugin endpoints (a plugin app is mounted, and inherits none of the core API's
router dependencies), so this app asks for the caller itself, on every route including the schema: the same
JWT as the REST API (a bearer token, or the UI's cookie, so the page works inside Airflow's UI) and the
permission to view plugins. FastAPI's HTML docs pages (/docs, /redoc) are off: they are served without any
dependency and load their scripts from a CDN. Read-only, and it never shows secrets.

Each request opens the registry from the configuration as it is then (a changed AMML_ARTIFACTS is seen at
once), as the tasks do: the environment, with `AMML_REGISTRY_CONN_ID`/`AMML_ARTIFACT_CONN_ID` resolved
through Airflow (`operators/connections.py`). That costs no database connection and no schema check, as the
engine is cached per process and the schema is checked once per process (`registry/database.py`).

Errors are JSON `{"detail": "..."}`: 400 for a malformed reference, 404 for an unknown model, 503 when the
registry cannot be reached or is misconfigured.
"""

from __future__ import annotations

import functools
import math
from typing import Any, ClassVar

from airflow.plugins_manager import AirflowPlugin


def create_app() -> Any:
    import dataclasses

    from airflow.api_fastapi.auth.managers.models.resource_details import AccessView
    from airflow.api_fastapi.core_api.security import requires_access_view
    from fastapi import Depends, FastAPI, HTTPException

    from airflow_amml.registry import RegistryError

    app = FastAPI(
        title="AMML models",
        dependencies=[Depends(requires_access_view(AccessView.PLUGINS))],
        docs_url=None,
        redoc_url=None,
        openapi_url=None,  # served below, behind the app's authentication
    )

    def entry(version: Any) -> dict[str, Any]:
        data = dataclasses.asdict(version)
        data["created_at"] = version.created_at.isoformat()
        return _json_safe(data)

    def registry_call(fn: Any, *args: Any) -> Any:
        try:
            return fn(_registry(), *args)
        except RegistryError as exc:
            detail = f"{exc.message} (hint: {exc.hint})" if exc.hint else exc.message
            raise HTTPException(status_code=_status(exc), detail=detail) from exc

    @app.get("/openapi.json", include_in_schema=False)
    def openapi_schema() -> dict[str, Any]:
        return app.openapi()

    @app.get("/models")
    def list_models() -> list[dict[str, Any]]:
        return [entry(v) for v in registry_call(lambda registry: registry.list_versions())]

    @app.get("/models/{ref:path}")
    def show_model(ref: str) -> dict[str, Any]:
        return entry(registry_call(lambda registry: registry.resolve(ref)))

    return app


def _registry() -> Any:
    from airflow_amml.registry import ModelRegistry
    from airflow_amml.run_config import RunConfig
    from operators.connections import connection_overrides

    return ModelRegistry.from_config(RunConfig.from_environment(**connection_overrides()))


def _status(exc: Exception) -> int:
    from airflow_amml.registry import InvalidValueError, ModelNotFoundError

    if isinstance(exc, ModelNotFoundError):
        return 404
    if isinstance(exc, InvalidValueError):
        return 400
    return 503  # the registry's database or artifact store is unreachable or misconfigured


def _json_safe(value: Any) -> Any:
    """NaN and infinity are not JSON: versions registered before metrics were checked may still hold them."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


class _BuiltOnFirstRead:
    """`fastapi_apps`, built when Airflow first reads it: only the api-server (and `airflow plugins`) do. Every
    task process loads the plugins too (for their macros), and building the app there would import FastAPI,
    the registry and Airflow's API security: about a second added to the start of every task."""

    def __get__(self, obj: object, owner: type) -> list[dict[str, Any]]:
        return [_models_app()]


@functools.cache
def _models_app() -> dict[str, Any]:
    return {"app": create_app(), "url_prefix": "/amml", "name": "AMML models"}


class AmmlPlugin(AirflowPlugin):
    name = "amml"
    fastapi_apps = _BuiltOnFirstRead()
    external_views: ClassVar[list[dict[str, Any]]] = [
        {"name": "ML Models", "href": "amml/models", "destination": "nav", "url_route": "amml-models"},
    ]
