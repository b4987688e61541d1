"""The FastAPI app of the model registry: JSON API + HTML pages, every route behind `access.current_user`.

    create_app(registry, access, run_config, url_prefix="/amml", routers=[(router, "/ui")])

Everything it needs is injected (`context.Access`): `airflow_amml/plugin.py` passes Airflow's login and the
auth manager's permission checks; the tests pass a real registry and a stand-in user. Errors are a readable
page (with the hint) on the HTML routes, and JSON `{"detail": "..."}` on the API: 400 for a malformed name
or value, 401 not logged in, 403 not allowed, 404 unknown, 503 registry unreachable or misconfigured.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler, request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.applications import Starlette
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request as StarletteRequest
from starlette.responses import Response
from starlette.routing import Route

from airflow_amml.registry import ModelRegistry, RegistryError
from airflow_amml.run_config import RunConfig

from .alert_pages import alerts_api_router, alerts_router
from .api import api_router
from .context import Access, Context, explain, status_of
from .docs import operations
from .layout import render, render_page, script
from .pages import page, pages_router

DESCRIPTION = "The AMML model registry: versions, aliases and their history, plots, promotion."


def create_app(
    registry: Callable[[], ModelRegistry],
    access: Access,
    run_config: Callable[[], RunConfig],
    *,
    url_prefix: str = "/amml",
    routers: Sequence[tuple[APIRouter, str]] = (),
) -> FastAPI:
    """The app, to be mounted at `url_prefix`; `routers` are more (prefix-relative) pages behind the same
    login, e.g. the pipeline page at `/ui`. `run_config` gives the runs' configuration (the alerts pages read
    the alerts in its database)."""
    ctx = Context(registry=registry, access=access, url_prefix=url_prefix, run_config=run_config)
    app = FastAPI(
        title="AMML models",
        description=DESCRIPTION,
        dependencies=[Depends(access.current_user)],
        docs_url=None,  # FastAPI's pages are served without any dependency and load scripts from a CDN
        redoc_url=None,
        openapi_url=None,  # served below, behind the login
    )
    app.include_router(api_router(ctx))
    app.include_router(pages_router(ctx))
    app.include_router(alerts_router(ctx))
    app.include_router(alerts_api_router(ctx))
    for router, prefix in routers:
        app.include_router(router, prefix=prefix, include_in_schema=False)

    @app.get("/openapi.json", include_in_schema=False)
    def openapi_schema() -> dict[str, Any]:
        return app.openapi()

    @app.get("/docs", include_in_schema=False, response_class=HTMLResponse)
    def docs(request: Request) -> HTMLResponse:
        root = ctx.roots(request)[0]
        html = render(
            "docs.html",
            title="ML Models API",
            crumbs=[("ML Models", f"{root}/ui/")],
            description=DESCRIPTION,
            operations=operations(app.openapi()),
            root=root,
        )
        return page(html)

    @app.get("/ui", include_in_schema=False)
    def ui_without_slash(request: Request) -> Any:
        from fastapi.responses import RedirectResponse

        return RedirectResponse(f"{ctx.roots(request)[0]}/ui/", status_code=307)

    # The pages' script, outside the login (mounted apps inherit no dependency): it holds no data, and the
    # "not logged in" page needs it for its "Log in to Airflow" link to work inside Airflow's iframe.
    app.mount("/ui/static", Starlette(routes=[Route("/amml.js", frame_script)]))
    install_error_pages(app, ctx)
    return app


async def frame_script(request: StarletteRequest) -> Response:
    headers = {"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"}
    return Response(script(), media_type="text/javascript", headers=headers)


def wants_html(request: Request, ctx: Context) -> bool:
    """The HTML routes: the pages under /ui and the docs page (the API answers JSON)."""
    root = ctx.roots(request)[0]
    path = request.url.path
    relative = path[len(root) :] if root and path.startswith(root) else path
    return relative == "/ui" or relative.startswith("/ui/") or relative == "/docs"


def error_page(request: Request, ctx: Context, status: int, message: str) -> HTMLResponse:
    root, airflow_root = ctx.roots(request)
    title = f"{status} {HTTPStatus(status).phrase}" if status in HTTPStatus._value2member_map_ else str(status)
    if status == 401:
        body = f'<p><a href="{airflow_root}/" target="_top">Log in to Airflow</a>, then open ML Models again.</p>'
        message = "You are not logged in to Airflow, or your session has expired."
    else:
        body = f'<p><a href="{root}/ui/">Back to the registered models</a></p>'
    crumbs = [("ML Models", f"{root}/ui/")]
    return page(render_page(title, body, crumbs=crumbs, message=message, root=root), status)


def install_error_pages(app: FastAPI, ctx: Context) -> None:
    @app.exception_handler(RegistryError)
    async def registry_error(request: Request, exc: RegistryError) -> Any:
        status = status_of(exc)
        if wants_html(request, ctx):
            return error_page(request, ctx, status, explain(exc))
        return JSONResponse({"detail": explain(exc)}, status_code=status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Any:
        if wants_html(request, ctx) and exc.status_code >= 400:
            detail = exc.detail if isinstance(exc.detail, str) else "request refused"
            if exc.status_code == 403 and detail == "Forbidden":  # Airflow's words for "may not view"
                detail = "You may not view the ML Models pages: it needs Airflow's permission to view plugins."
            if exc.status_code == 404 and detail == "Not Found":
                detail = "There is no such page."
            return error_page(request, ctx, exc.status_code, detail)
        return await http_exception_handler(request, exc)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Any:
        if wants_html(request, ctx):
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e.get('loc', ())[1:]) or 'request'}: {e.get('msg', '')}"
                for e in jsonable_encoder(exc.errors())
            )
            return error_page(request, ctx, 400, f"This page cannot be shown for that address ({problems}).")
        return await request_validation_exception_handler(request, exc)
