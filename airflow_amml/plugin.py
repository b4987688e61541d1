"""The Airflow plugin: a read-only "ML Models" page over the model registry, mounted on the api-server.

    GET /amml/models            every registered version (name, version, definition, aliases, metrics)
    GET /amml/models/{ref}      one version: `ett`, `ett@champion` or `ett/3`

Airflow does not authenticate plugin endpoints (a plugin app is mounted, and inherits none of the core API's
router dependencies), so this app asks for the caller itself: the same JWT as the REST API (a bearer token, or
the UI's cookie, so the page works inside Airflow's UI) and the permission to view plugins. Read-only, and it
never shows secrets.
"""

from __future__ import annotations

import functools
from typing import Any, ClassVar

from airflow.plugins_manager import AirflowPlugin


def create_app() -> Any:
    import dataclasses

    from airflow.api_fastapi.auth.managers.models.resource_details import AccessView
    from airflow.api_fastapi.core_api.security import requires_access_view
    from fastapi import Depends, FastAPI, HTTPException

    from airflow_amml.registry import ModelRegistry, RegistryError

    app = FastAPI(title="AMML models", dependencies=[Depends(requires_access_view(AccessView.PLUGINS))])

    def entry(version: Any) -> dict[str, Any]:
        data = dataclasses.asdict(version)
        data["created_at"] = version.created_at.isoformat()
        return data

    @app.get("/models")
    def list_models() -> list[dict[str, Any]]:
        return [entry(v) for v in ModelRegistry.from_settings().list_versions()]

    @app.get("/models/{ref:path}")
    def show_model(ref: str) -> dict[str, Any]:
        try:
            return entry(ModelRegistry.from_settings().resolve(ref))
        except RegistryError as exc:
            raise HTTPException(status_code=404, detail=exc.message) from exc

    return app


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
