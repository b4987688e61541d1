"""What the pages and the API are given (so tests can run them with a real registry and a stand-in user):
the registry, who is asking and what they may do; plus the helpers both share."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from fastapi import HTTPException, Request

from airflow_amml.registry import (
    AliasChange,
    InvalidValueError,
    ModelNotFoundError,
    ModelRegistry,
    RegisteredVersion,
    RegistryError,
)
from airflow_amml.run_config import RunConfig


@dataclass(frozen=True)
class Access:
    """Who is asking, and what they may do.

    current_user  a FastAPI dependency returning the logged-in user, or raising HTTPException (401: not
                  logged in, 403: may not view these pages); it guards every route of the app
    user_name     the name recorded in the alias history for a user
    can_promote   whether a user may move an alias to a version
    readable_dags the DAG ids whose alerts a user may read, or None for every DAG (the alerts raised
                  outside Airflow too)"""

    current_user: Callable[..., Any]
    user_name: Callable[[Any], str]
    can_promote: Callable[[Any, RegisteredVersion], bool]
    readable_dags: Callable[[Any], Collection[str] | None]


@dataclass(frozen=True)
class Context:
    registry: Callable[[], ModelRegistry]  # called per request: a changed configuration is seen at once
    access: Access
    url_prefix: str  # where the app is mounted (`/amml`): what is left of the root path is Airflow's own root
    run_config: Callable[[], RunConfig]  # the runs' configuration, per request: where the alerts are

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """`fn(registry, ...)`; registry errors go to the app's error handlers (JSON or a page)."""
        return fn(self.registry(), *args, **kwargs)

    def roots(self, request: Request) -> tuple[str, str]:
        """(this app's root URL path, Airflow's root URL path), e.g. ("/amml", "") on an api-server at `/`."""
        root = request.scope.get("root_path", "").rstrip("/")
        airflow_root = root[: -len(self.url_prefix)] if self.url_prefix and root.endswith(self.url_prefix) else ""
        return root, airflow_root


def status_of(exc: RegistryError) -> int:
    if isinstance(exc, ModelNotFoundError):
        return 404
    if isinstance(exc, InvalidValueError):
        return 400
    return 503  # the registry's database or artifact store is unreachable or misconfigured


def explain(exc: RegistryError) -> str:
    return f"{exc.message} (hint: {exc.hint})" if exc.hint else exc.message


def same_origin(request: Request) -> None:
    """Refuse a state-changing request that the browser sent on its own from another site (CSRF): the login
    is a cookie, which the browser attaches to a form posted from any origin. Such a request must say it
    comes from this site (`Origin`, else `Referer`, naming this host). A request with a bearer token carries
    its credential explicitly and is not at risk."""
    if request.headers.get("authorization", "").lower().startswith("bearer "):
        return
    source = request.headers.get("origin") or request.headers.get("referer") or ""
    hosts = {h.strip().lower() for h in (request.headers.get("host"), request.headers.get("x-forwarded-host")) if h}
    netloc = urlsplit(source).netloc.lower() if source and source != "null" else ""
    if not netloc or netloc not in hosts:
        raise HTTPException(
            status_code=403,
            detail="refused: this request to change the registry did not come from the ML Models page "
            f"(its origin is {source or 'not given'}); promote from the page, or call the API with a bearer token",
        )


def entry_json(version: RegisteredVersion) -> dict[str, Any]:
    data = dataclasses.asdict(version)
    data["created_at"] = version.created_at.isoformat()
    return json_safe(data)


def change_json(change: AliasChange) -> dict[str, Any]:
    data = dataclasses.asdict(change)
    data["set_at"] = change.set_at.isoformat()
    return data


def json_safe(value: Any) -> Any:
    """NaN and infinity are not JSON: versions registered before metrics were checked may still hold them."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value
