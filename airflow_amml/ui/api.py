"""The JSON API (documented in the app's OpenAPI schema): versions, alias history, promotion, plots."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path as LocalPath
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException, Path, Response
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field
from starlette.background import BackgroundTask

from airflow_amml.registry import ModelRegistry

from .context import Context, change_json, entry_json, same_origin


class PromoteBody(BaseModel):
    version: int = Field(ge=1, description="the version the alias points at from now on")
    reason: str | None = Field(None, max_length=1000, description="why (kept in the alias history)")


Name = Annotated[str, Path(description="model name, e.g. `ett`")]
# the largest model file the API hands out (it goes through a temporary file, not memory); larger ones:
# `amml model download`-style access to the artifact store itself
MAX_ARTIFACT_BYTES = 2 << 30


def api_router(ctx: Context) -> APIRouter:
    router = APIRouter(tags=["models"])
    user = Depends(ctx.access.current_user)

    @router.get("/models", summary="Every registered version (name, version, definition, aliases, metrics, …)")
    def list_models() -> list[dict[str, Any]]:
        return [entry_json(v) for v in ctx.call(ModelRegistry.list_versions)]

    @router.get("/models/{name}/aliases", summary="The alias history of a model, newest first")
    def alias_history(name: Name) -> list[dict[str, Any]]:
        return [change_json(c) for c in ctx.call(ModelRegistry.alias_history, name)]

    @router.put(
        "/models/{name}/aliases/{alias}",
        summary="Point an alias at a version (promote it)",
        description="Needs the promote permission (edit on the DAG that trained the version, and on the "
        "“ML Models” view). A cookie-authenticated call must come from this site (Origin or Referer); a call "
        "with a bearer token may come from anywhere. Recorded in the alias history with the caller's name.",
        dependencies=[Depends(same_origin)],
        responses={403: {"description": "not allowed to promote, or a cross-site request"}},
    )
    def promote(name: Name, alias: str, body: PromoteBody, who: Any = user) -> dict[str, Any]:
        version = ctx.call(ModelRegistry.resolve, f"{name}/{body.version}")
        if not ctx.access.can_promote(who, version):
            raise HTTPException(status_code=403, detail=denied(ctx.access.user_name(who), version.ref))
        registry = ctx.registry()
        registry.set_alias(name, alias, body.version, set_by=ctx.access.user_name(who), reason=body.reason)
        return change_json(registry.alias_history(name, alias)[0])

    @router.get(
        "/models/{name}/versions/{number}/plots/{plot}",
        summary="A plot of a version (PNG), read from the artifact store that holds it",
        response_class=Response,
        responses={200: {"content": {"image/png": {}}}},
    )
    def plot(name: Name, number: int, plot: str) -> Response:
        data = ctx.call(ModelRegistry.read_plot, f"{name}/{number}", plot)
        # a version's files never change: the browser may keep the plot
        headers = {"Cache-Control": "private, max-age=86400", "X-Content-Type-Options": "nosniff"}
        return Response(data, media_type="image/png", headers=headers)

    @router.get(
        "/models/{name}/versions/{number}/artifact",
        summary="The model file of a version, fetched from the artifact store and checked against its sha256",
        response_class=Response,
        responses={200: {"content": {"application/octet-stream": {}}}, 413: {"description": "too large"}},
    )
    def artifact(name: Name, number: int) -> Response:
        entry = ctx.call(ModelRegistry.resolve, f"{name}/{number}")
        if entry.artifact_size > MAX_ARTIFACT_BYTES:
            raise HTTPException(
                status_code=413,
                detail=f"model {entry.ref} is {entry.artifact_size} bytes, more than the {MAX_ARTIFACT_BYTES} "
                f"bytes this API hands out: read {entry.artifact_uri} from the artifact store",
            )
        folder = LocalPath(tempfile.mkdtemp(prefix="amml-artifact-"))
        try:
            _, path = ctx.call(ModelRegistry.download, entry.ref, folder)  # verifies size and sha256
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        filename = f"{entry.name}-{entry.version}-{path.name}"
        return FileResponse(
            path,
            media_type="application/octet-stream",
            headers={
                "Content-Disposition": f"attachment; filename*=UTF-8''{quote(filename, safe='')}",
                "X-Content-Type-Options": "nosniff",
            },
            background=BackgroundTask(shutil.rmtree, folder, ignore_errors=True),
        )

    # last: `{ref:path}` would also match the routes above
    @router.get("/models/{ref:path}", summary="One version: `ett` (latest), `ett@champion` or `ett/3`")
    def show_model(ref: str) -> dict[str, Any]:
        return entry_json(ctx.call(ModelRegistry.resolve, ref))

    return router


def denied(user: str, ref: str) -> str:
    return (
        f"{user} may not promote {ref}: moving an alias needs edit permission on the DAG that trained the "
        "version and on the “ML Models” view (ask an Airflow admin), or use `amml model alias` on the command line"
    )
