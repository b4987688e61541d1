"""The page frame every AMML page shares (registry pages, the pipeline page): title, breadcrumbs, a message
and the stylesheet, inline so that a page needs no second request (and nothing from the internet) inside
Airflow's iframe as well as on its own.

Templates are Jinja2 with autoescape on: every value is escaped unless a caller marked it safe, as
`render_page` does with `body_html`, which the caller must have escaped already.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from typing import Any

import jinja2
from markupsafe import Markup, escape

CODE_SPAN = re.compile(r"`([^`\n]+)`")
SCRIPT = "amml.js"  # served at {root}/ui/static/amml.js (app.py)


def code(text: Any) -> Markup:
    """Text with its `backtick spans` as <code> (escaped first: nothing in `text` becomes markup)."""
    return Markup(CODE_SPAN.sub(r"<code>\1</code>", str(escape("" if text is None else text))))


def script() -> bytes:
    """The pages' one script (templates/amml.js)."""
    return templates().loader.get_source(templates(), SCRIPT)[0].encode()


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
    context.setdefault("root", None)
    context.setdefault("code", code)
    return templates().get_template(template).render(**context)


def render_page(
    title: str,
    body_html: str,
    *,
    crumbs: Sequence[tuple[str, str]] = (),
    message: str | None = None,
    message_kind: str = "error",
    root: str | None = None,
) -> str:
    """A whole page around `body_html` (already escaped HTML): `<h1>` title, breadcrumbs as (text, href),
    and an optional message shown in `<div id="message" role="alert">` (`message_kind`: error or success;
    its `backtick spans` shown as code). With `root` (the app's URL path, `/amml`) the page loads the
    script that lets its `target="_top"` links work inside Airflow's iframe (templates/amml.js)."""
    return render(
        "page.html",
        title=title,
        body=Markup(body_html),
        crumbs=crumbs,
        message=message,
        message_kind=message_kind,
        root=root,
    )
