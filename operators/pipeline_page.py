"""The pipeline page of an AMML DAG: its components as a graph (drawn by Graphviz), its run parameters and
its source. The plugin mounts ``router`` under ``/amml/ui`` (behind the app's login), so the page is
``/amml/ui/dags/{dag_id}/pipeline``, shown as the "Pipeline" tab of the DAG page.

The file is found as the loader finds it (``dag_factory.find_program``: the dags folder, `.airflowignore`,
dag ids, duplicates refused): the dag id in the URL only selects among those files, it never names a path.
Graphviz (``dot -Tsvg``) runs with a timeout on a bounded graph; its SVG is kept per graph text (an edit
makes a new one). Graphviz escapes the label text it writes into the SVG; the DOT text is escaped by
``compiler.workflow.dot_string``.
"""

from __future__ import annotations

import functools
import html
import re
import shutil
import subprocess
from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import HTMLResponse

from airflow_amml.ui.layout import render_page
from compiler.workflow import build_graph, literal, render_program_dot

router = APIRouter()

# Bounds on what one page asks of Graphviz (a pipeline of thousands of components is not drawn)
MAX_DOT_CHARS = 200_000
MAX_NODES = 1_000
DOT_TIMEOUT_SECONDS = 15
MAX_SVG_CHARS = 5_000_000
MAX_SOURCE_CHARS = 200_000


class GraphUnavailable(Exception):
    """The graph cannot be drawn (Graphviz missing, failing, too slow, or the graph too large): the page says
    why and shows the source."""


def dags_folder() -> str:
    """Airflow's ``[core] dags_folder`` (a FastAPI dependency, so a test can give another folder)."""
    from airflow.sdk import conf

    return conf.get("core", "dags_folder")


@router.get("/dags/{dag_id}/pipeline", response_class=HTMLResponse, summary="The pipeline graph of an AMML DAG")
def pipeline_page(dag_id: str, folder: str = Depends(dags_folder)) -> HTMLResponse:
    from .dag_factory import find_program

    title = f"Pipeline of {dag_id}"
    found = find_program(folder, dag_id) if len(dag_id) <= 250 else None
    if found is None:
        message = (
            f"No AMML file in the dags folder makes the DAG {dag_id!r}. It may be a Python DAG, or a file "
            "that does not load (its amml_error__ DAG shows the error)."
        )
        body = f'<div id="message" role="alert">{html.escape(message)}</div>'
        return HTMLResponse(render_page(title, body), status_code=404)
    path, program = found
    graphs = [build_graph(p) for p in program.pipelines]
    try:
        if sum(len(g.nodes) for g in graphs) > MAX_NODES:
            raise GraphUnavailable(f"the pipelines have more than {MAX_NODES} components, too many to draw")
        graph_html = svg(render_program_dot(graphs, {p.name: p.after for p in program.pipelines}))
    except GraphUnavailable as exc:
        graph_html = f'<div id="message" role="alert">The graph cannot be drawn: {html.escape(str(exc))}.</div>'
    tasks = ", ".join(f"<code>{html.escape(p.name)}</code>" for p in program.pipelines)
    source = program.source if len(program.source) <= MAX_SOURCE_CHARS else program.source[:MAX_SOURCE_CHARS] + "\n…"
    body = (
        f"<p>File <code>{html.escape(path.name)}</code>; one task per pipeline: {tasks}.</p>"
        f'<div class="pipeline-graph" style="overflow-x:auto">{graph_html}</div>'
        f"{_parameters(program.dag or {})}"
        f'<h2>Source</h2><pre id="amml-source">{html.escape(source)}</pre>'
    )
    return HTMLResponse(render_page(title, body))


def _parameters(settings: dict[str, Any]) -> str:
    params = settings.get("params") or {}
    if not params:
        return ""
    descriptions = settings.get("param_descriptions") or {}
    rows = "".join(
        f"<tr><td><code>params.{html.escape(name)}</code></td><td><code>{html.escape(literal(value))}</code></td>"
        f"<td>{html.escape(descriptions.get(name, ''))}</td></tr>"
        for name, value in params.items()
    )
    return (
        '<h2>Run parameters</h2><table id="params"><thead><tr><th>parameter</th><th>default</th>'
        f"<th>description</th></tr></thead><tbody>{rows}</tbody></table>"
    )


def svg(dot_text: str) -> str:
    """The graph as an inline ``<svg id="pipeline-graph">`` (Graphviz's SVG without its XML prolog)."""
    if len(dot_text) > MAX_DOT_CHARS:
        raise GraphUnavailable(f"its description has more than {MAX_DOT_CHARS:,} characters")
    return _drawn(dot_text)


@functools.lru_cache(maxsize=64)
def _drawn(dot_text: str) -> str:
    dot = shutil.which("dot")
    if dot is None:
        raise GraphUnavailable("Graphviz is not installed (the `dot` program; Debian package `graphviz`)")
    try:
        done = subprocess.run(
            [dot, "-Tsvg"], input=dot_text.encode("utf-8"), capture_output=True, timeout=DOT_TIMEOUT_SECONDS
        )
    except subprocess.TimeoutExpired:
        raise GraphUnavailable(f"Graphviz took more than {DOT_TIMEOUT_SECONDS} s") from None
    if done.returncode != 0 or len(done.stdout) > MAX_SVG_CHARS:
        why = done.stderr.decode("utf-8", "replace").strip()[:300] or f"exit status {done.returncode}"
        raise GraphUnavailable(f"Graphviz failed: {why}")
    text = done.stdout.decode("utf-8", "replace")
    start = text.find("<svg")
    if start < 0:
        raise GraphUnavailable("Graphviz wrote no SVG")
    # Graphviz's comments name the program and the graph: not needed in the page
    text = re.sub(r"<!--.*?-->", "", text[start:], flags=re.DOTALL)
    return text.replace("<svg", '<svg id="pipeline-graph" role="img" aria-label="pipeline graph"', 1)
