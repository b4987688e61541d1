"""The HTML pages (server-rendered; they work inside Airflow's iframe and on their own): models, a model's
versions and alias history, one version, a comparison, and the promote form."""

from __future__ import annotations

import functools
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from airflow_amml.registry import ModelRegistry, RegistryError

from . import views
from .api import denied
from .context import Context, explain, same_origin, status_of
from .layout import render

# scripts and images only from here (no inline script: the one script is templates/amml.js); framed only by
# this site (Airflow's UI)
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; img-src 'self'; style-src 'unsafe-inline'; "
    "form-action 'self'; frame-ancestors 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def page(html: str, status_code: int = 200) -> HTMLResponse:
    return HTMLResponse(html, status_code=status_code, headers=SECURITY_HEADERS)


def pages_router(ctx: Context) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    user = Depends(ctx.access.current_user)

    def helpers(request: Request) -> dict[str, Any]:
        root, airflow_root = ctx.roots(request)
        return {
            "root": root,
            "when": views.when,
            "value": views.value,
            "param_value": views.param_value,
            "run_url": functools.partial(views.run_url, airflow_root),
            "short_run": views.short_run,
        }

    def crumbs(root: str, *more: tuple[str, str]) -> list[tuple[str, str]]:
        return [("ML Models", f"{root}/ui/"), *more]

    @router.get("/ui/", response_class=HTMLResponse)
    def models(request: Request) -> HTMLResponse:
        registry = ctx.registry()
        found = views.summaries(registry.list_versions())
        descriptions = {m.name: views.description(registry.get_definition(m.latest.definition)) for m in found}
        context = helpers(request)
        return page(render("models.html", title="ML Models", models=found, descriptions=descriptions, **context))

    @router.get("/ui/models/{name}", response_class=HTMLResponse)
    def model(request: Request, name: str) -> HTMLResponse:
        registry = ctx.registry()
        versions = registry.list_versions(name)
        if not versions:
            registry.resolve(name)  # raises the not-found error that lists the models there are
        context = helpers(request)
        airflow_root = ctx.roots(request)[1]
        history = [(c, views.set_by(c, versions, airflow_root)) for c in registry.alias_history(name)]
        return page(
            render(
                "model.html",
                title=name,
                crumbs=crumbs(context["root"]),
                name=name,
                versions=versions[::-1],  # newest first, as MLflow lists them
                metrics=views.key_metrics(versions),
                aliases=sorted((a, v.version) for v in versions for a in v.aliases),
                history=history,
                **context,
            )
        )

    def version_page(
        request: Request, name: str, number: int, who: Any, *, message: str | None = None, promoted: str | None = None
    ) -> str:
        registry = ctx.registry()
        entry = registry.resolve(f"{name}/{number}")
        kind = "error"
        if promoted and promoted in entry.aliases:  # after the form: say what happened (only if it is true)
            message, kind = f"{name}@{promoted} now points at version {number}.", "success"
        context = helpers(request)
        root = context["root"]
        return render(
            "version.html",
            title=entry.ref,
            crumbs=crumbs(root, (name, f"{root}/ui/models/{name}")),
            v=entry,
            metrics=[(m, entry.metrics[m], views.metric_help(m)) for m in views.metric_order(set(entry.metrics))],
            params=sorted(views.params_of(entry).items()),
            other_aliases=views.other_aliases(entry, registry.list_versions(name)),
            suggested_alias=views.suggested_alias(entry),
            definition=registry.get_definition(entry.definition),
            scaler=views.scaler_table(entry.scaler),
            run_link=context["run_url"](entry.lineage.dag_id, entry.lineage.run_id),
            may_promote=ctx.access.can_promote(who, entry),
            user=ctx.access.user_name(who),
            message=message,
            message_kind=kind,
            **context,
        )

    @router.get("/ui/models/{name}/versions/{number}", response_class=HTMLResponse)
    def version(request: Request, name: str, number: int, promoted: str | None = None, who: Any = user) -> HTMLResponse:
        return page(version_page(request, name, number, who, promoted=promoted))

    @router.post("/ui/models/{name}/versions/{number}/promote", dependencies=[Depends(same_origin)])
    def promote(
        request: Request,
        name: str,
        number: int,
        alias: Annotated[str, Form()],
        reason: Annotated[str, Form()] = "",
        who: Any = user,
    ) -> Any:
        registry = ctx.registry()
        entry = registry.resolve(f"{name}/{number}")
        if not ctx.access.can_promote(who, entry):
            return page(
                version_page(request, name, number, who, message=denied(ctx.access.user_name(who), entry.ref)), 403
            )
        if alias.strip() in entry.aliases:  # nothing would change: say so rather than record a no-op move
            message = f"{name}@{alias.strip()} already points at version {number}: nothing to change."
            return page(version_page(request, name, number, who, message=message), 409)
        try:
            registry.set_alias(name, alias, number, set_by=ctx.access.user_name(who), reason=reason.strip() or None)
        except RegistryError as exc:  # e.g. an alias that is not a name: the form again, with the reason
            return page(version_page(request, name, number, who, message=explain(exc)), status_of(exc))
        root = ctx.roots(request)[0]
        # Post/Redirect/Get: reloading the page does not post the form again
        return RedirectResponse(f"{root}/ui/models/{name}/versions/{number}?promoted={alias}", status_code=303)

    @router.get("/ui/models/{name}/compare", response_class=HTMLResponse)
    def compare(request: Request, name: str, versions: Annotated[list[int], Query()] = []) -> HTMLResponse:  # noqa: B006
        context = helpers(request)
        root = context["root"]
        chosen = sorted(set(versions))[: views.MAX_COMPARED]
        title = f"Comparing {len(chosen)} versions of {name}"
        trail = crumbs(root, (name, f"{root}/ui/models/{name}"))
        if len(chosen) < 2:
            ctx.call(ModelRegistry.resolve, name)  # an unknown model is said first
            message = "Select two or more versions to compare (the checkboxes of the versions table)."
            return page(
                render("compare.html", title=title, crumbs=trail, versions=[], rows=[], message=message, **context), 400
            )
        registry = ctx.registry()
        entries = [registry.resolve(f"{name}/{n}") for n in chosen]
        return page(
            render("compare.html", title=title, crumbs=trail, versions=entries, rows=views.compare(entries), **context)
        )

    return router
