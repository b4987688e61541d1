"""The page frame every AMML page shares (registry pages, the pipeline page): title, breadcrumbs, a message
and the stylesheet, inline so that a page needs no second request (and nothing from the internet) inside
Airflow's iframe as well as on its own.

Templates are Jinja2 with autoescape on: every value is escaped unless a caller marked it safe, as
`render_page` does with `body_html`, which the caller must have escaped already.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import jinja2
from markupsafe import Markup


@functools.cache
def templates() -> jinja2.Environment:
    """The Jinja2 environment of the package's templates (built once per process)."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("airflow_amml.ui", "templates"),
        autoescape=True,  # every template, whatever its file name
        undefined=jinja2.StrictUndefined,  # a missing value is a bug, not an empty cell
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env


def render(template: str, **context: Any) -> str:
    """A page from `templates/<template>` (which extends layout.html)."""
    context.setdefault("crumbs", ())
    context.setdefault("message", None)
    context.setdefault("message_kind", "error")
    return templates().get_template(template).render(**context)


def render_page(
    title: str,
    body_html: str,
    *,
    crumbs: Sequence[tuple[str, str]] = (),
    message: str | None = None,
    message_kind: str = "error",
) -> str:
    """A whole page around `body_html` (already escaped HTML): `<h1>` title, breadcrumbs as (text, href),
    and an optional message shown in `<div id="message" role="alert">` (`message_kind`: error or success)."""
    return render(
        "page.html", title=title, body=Markup(body_html), crumbs=crumbs, message=message, message_kind=message_kind
    )
