"""The alerts pages: what the pipelines' `alert` components recorded, newest first, and one alert with the
records saved around it (its snapshot, the paper's Fig. 7) as a table, a plot and a CSV download; and the
same as JSON (`GET /alerts`, `GET /alerts/{id}`, in the app's API docs).

They read the runs' database (`AMML_DB_URL`, else the embedded SQLite; `airflow_amml.alert_history`, read
only). A reader sees the alerts of the DAGs they may read (`Access.readable_dags`); the alerts raised outside
Airflow (`amml run`) only when they may read every DAG.
"""

from __future__ import annotations

import csv
import io
import logging
import math
from collections.abc import Collection, Iterable, Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.encoders import jsonable_encoder
from fastapi.responses import HTMLResponse, Response, StreamingResponse

from airflow_amml import alert_history, tables
from airflow_amml.alert_history import AlertHistoryError, AlertNotFoundError, SnapshotTableError

from . import views
from .context import Context, json_safe
from .layout import render
from .pages import SECURITY_HEADERS, page

log = logging.getLogger(__name__)

DEFAULT_LISTED, MAX_LISTED = 100, 1000  # alerts on the list page
# what a page reads of a snapshot (the CSV has all of it): records, their stored JSON, columns, text per cell
MAX_SHOWN_RECORDS, MAX_SHOWN_BYTES, MAX_SHOWN_COLUMNS, MAX_CELL_CHARS = 2000, 8 * 1024**2, 50, 200
MAX_PLOTTED_COLUMNS = 8
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # text a spreadsheet would run as a formula (OWASP)
AlertId = Annotated[int, PathParam(ge=1, le=alert_history.MAX_ID)]
Table = Annotated[str, Query(max_length=63)]


def alerts_router(ctx: Context) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    user = Depends(ctx.access.current_user)

    def helpers(request: Request) -> dict[str, Any]:
        root, airflow_root = ctx.roots(request)
        return {"root": root, "when": views.when, "value": cell, "airflow_root": airflow_root}

    @router.get("/ui/alerts", response_class=HTMLResponse)
    def alerts(
        request: Request,
        dag: Annotated[str | None, Query(max_length=250)] = None,
        item: Annotated[str | None, Query(max_length=1000)] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_LISTED)] = DEFAULT_LISTED,
        who: Any = user,
    ) -> HTMLResponse:
        context = helpers(request)
        root = context["root"]
        rows = _read(alert_history.list_alerts, ctx.run_config(), dag, item, limit, ctx.access.readable_dags(who))
        for row in rows:
            row["run_link"] = views.run_url(context["airflow_root"], row.get("dag_id"), row.get("run_id"))
        filters = ", ".join(f"{k} {v}" for k, v in (("DAG", dag), ("item", item)) if v)
        html = render(
            "alerts.html",
            title="Alerts" + (f" of {filters}" if filters else ""),
            crumbs=[("ML Models", f"{root}/ui/"), *([("Alerts", f"{root}/ui/alerts")] if filters else [])],
            alerts=rows,
            limit=limit,
            filtered=bool(filters),
            **context,
        )
        return page(html)

    @router.get("/ui/alerts/{alert_id}", response_class=HTMLResponse)
    def alert(
        request: Request, alert_id: AlertId, table: Table = tables.SNAPSHOT_DEFAULT, who: Any = user
    ) -> HTMLResponse:
        context = helpers(request)
        root = context["root"]
        found, rows, total = _alert_and_snapshot(ctx, who, alert_id, table)
        shown = [record for _, record in rows]
        columns = _columns(shown)
        query = "" if table == tables.SNAPSHOT_DEFAULT else f"?table={table}"
        html = render(
            "alert.html",
            title=f"Alert {alert_id}",
            crumbs=[("ML Models", f"{root}/ui/"), ("Alerts", f"{root}/ui/alerts")],
            a=found,
            fields=_fields(found),
            run_link=views.run_url(context["airflow_root"], found.get("dag_id"), found.get("run_id")),
            columns=columns[:MAX_SHOWN_COLUMNS],
            hidden_columns=len(columns) - MAX_SHOWN_COLUMNS,
            records=shown,
            total=total,
            alert_row=_alert_row(found, rows),
            table=table,
            query=query,
            plotted=bool(_numeric_columns(shown)),
            **context,
        )
        return page(html)

    @router.get("/ui/alerts/{alert_id}/snapshot.csv")
    def snapshot_csv(alert_id: AlertId, table: Table = tables.SNAPSHOT_DEFAULT, who: Any = user) -> Response:
        _visible_alert(ctx, who, alert_id)
        config = ctx.run_config()
        # two reads, a record at a time: the columns (every key, in the order they first appear), then the rows
        columns = _read(lambda: _columns(record for _, record in alert_history.snapshot_rows(config, alert_id, table)))

        def lines() -> Iterator[str]:
            out = io.StringIO()
            writer = csv.DictWriter(out, columns, lineterminator="\n")
            writer.writeheader()
            for _, record in alert_history.snapshot_rows(config, alert_id, table):
                writer.writerow({k: _spreadsheet_safe(v) for k, v in record.items()})
                if out.tell() > 64 * 1024:
                    yield out.getvalue()
                    out.seek(0)
                    out.truncate()
            yield out.getvalue()

        headers = {**SECURITY_HEADERS, "Content-Disposition": f'attachment; filename="alert-{alert_id}-snapshot.csv"'}
        return StreamingResponse(lines(), media_type="text/csv; charset=utf-8", headers=headers)

    @router.get("/ui/alerts/{alert_id}/snapshot.png")
    def snapshot_png(alert_id: AlertId, table: Table = tables.SNAPSHOT_DEFAULT, who: Any = user) -> Response:
        found = _visible_alert(ctx, who, alert_id)
        rows = _read(_shown_rows, ctx, alert_id, table)
        if not _numeric_columns([record for _, record in rows]):
            raise HTTPException(status_code=404, detail=f"alert {alert_id}'s snapshot has no numbers to plot")
        png = snapshot_plot(found, rows)
        return Response(png, media_type="image/png", headers={**SECURITY_HEADERS, "Cache-Control": "private"})

    return router


def alerts_api_router(ctx: Context) -> APIRouter:
    router = APIRouter(tags=["alerts"])
    user = Depends(ctx.access.current_user)

    @router.get("/alerts", summary="The alerts the pipelines raised, newest first (of the DAGs you may read)")
    def list_alerts(
        dag: Annotated[str | None, Query(max_length=250, description="only this DAG's")] = None,
        item: Annotated[str | None, Query(max_length=1000, description="only this fanned-out item's")] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_LISTED)] = DEFAULT_LISTED,
        who: Any = user,
    ) -> list[dict[str, Any]]:
        rows = _read(alert_history.list_alerts, ctx.run_config(), dag, item, limit, ctx.access.readable_dags(who))
        return json_safe(jsonable_encoder(rows))

    @router.get(
        "/alerts/{alert_id}",
        summary="One alert, its record, and the first records of its snapshot (the records saved around it)",
        description=f"At most {MAX_SHOWN_RECORDS:,} snapshot records ({MAX_SHOWN_BYTES // 1024**2} MiB of them); "
        "`snapshot_records` says how many there are, and `/ui/alerts/{alert_id}/snapshot.csv` has them all.",
    )
    def show_alert(alert_id: AlertId, table: Table = tables.SNAPSHOT_DEFAULT, who: Any = user) -> dict[str, Any]:
        found, rows, total = _alert_and_snapshot(ctx, who, alert_id, table)
        body = {"alert": found, "snapshot": [record for _, record in rows], "snapshot_records": total}
        return json_safe(jsonable_encoder(body))

    return router


def _read(fn: Any, *args: Any) -> Any:
    """An alert_history call, its errors as HTTP errors the app shows as a page (no alert: 404; a table
    that is not a snapshot table: 400; a database that cannot be read: 503, its details in the log only —
    the page does not show readers the database's host, user or driver)."""
    try:
        return fn(*args)
    except AlertNotFoundError:
        raise
    except SnapshotTableError as exc:
        detail = exc.message.split(" (its columns")[0]  # the table's columns are not the reader's business
        raise HTTPException(status_code=400, detail=f"{detail} (hint: {exc.hint})" if exc.hint else detail) from None
    except AlertHistoryError as exc:
        log.warning("alerts page: %s", exc.message)
        raise HTTPException(
            status_code=503,
            detail="The alerts database cannot be read now (the api-server's log says why: its `AMML_DB_URL`, "
            "the database and its driver).",
        ) from None


def _visible_alert(ctx: Context, who: Any, alert_id: int) -> dict:
    """The alert, if the reader may see it — checked before anything else of it is read: an alert of a DAG
    they may not read is not found, as one that does not exist (its DAG is not said)."""
    readable = ctx.access.readable_dags(who)
    missing = HTTPException(status_code=404, detail=f"There is no alert {alert_id} that you may view.")
    try:
        found = _read(alert_history.alert_row, ctx.run_config(), alert_id)
    except AlertNotFoundError:
        raise missing from None
    if not _may_see(found.get("dag_id"), readable):
        raise missing
    return found


def _alert_and_snapshot(ctx: Context, who: Any, alert_id: int, table: str) -> tuple[dict, list, int]:
    """What a page (and the API) shows of an alert the reader may see: the alert, the first rows of its
    snapshot within the page's bounds, and how many records the snapshot has."""
    found = _visible_alert(ctx, who, alert_id)
    rows = _read(_shown_rows, ctx, alert_id, table)
    total = _read(alert_history.snapshot_size, ctx.run_config(), alert_id, table) if rows else 0
    return found, rows, total


def _shown_rows(ctx: Context, alert_id: int, table: str) -> list[tuple[int, dict]]:
    """What a page shows of a snapshot: its first records, as many as fit the page's bounds."""
    rows = alert_history.snapshot_rows(ctx.run_config(), alert_id, table, MAX_SHOWN_RECORDS, MAX_SHOWN_BYTES)
    return list(rows)


def cell(v: Any) -> str:
    """A value as a page shows it (views.value), long text cut to MAX_CELL_CHARS."""
    text = views.value(v)
    return text if len(text) <= MAX_CELL_CHARS else text[: MAX_CELL_CHARS - 1] + "…"


def _spreadsheet_safe(v: Any) -> Any:
    """Text a spreadsheet would run as a formula, with a leading `'` (numbers are written as they are)."""
    return "'" + v if isinstance(v, str) and v.startswith(FORMULA_STARTS) else v


def _may_see(dag_id: str | None, readable: Collection[str] | None) -> bool:
    return readable is None or (dag_id is not None and dag_id in readable)


# the alert's own columns as the detail page lists them, in this order (the record is its own table)
FIELDS = (
    ("created_at", "raised"), ("record_time", "record time"), ("level", "level"), ("message", "message"),
    ("score", "score"), ("component", "component"), ("event", "event"), ("position", "record position"),
    ("item", "item"), ("task_id", "task"), ("notify_status", "notification"),
    ("notify_attempts", "notification attempts"), ("notify_error", "notification error"),
    ("snapshot_status", "snapshot"),
)  # fmt: skip


def _fields(alert: dict) -> list[tuple[str, Any]]:
    return [(label, alert[key]) for key, label in FIELDS if alert.get(key) is not None]


def _columns(records: Iterable[dict]) -> list[str]:
    """Every key of the records, in the order they first appear."""
    return list(dict.fromkeys(key for record in records for key in record))


def _alert_row(alert: dict, rows: list[tuple[int, dict]]) -> int | None:
    """The index of the alert's own record among the snapshot's: the one at the alert's stream position."""
    return next((i for i, (position, _) in enumerate(rows) if position == alert.get("position")), None)


def _numeric_columns(records: list[dict]) -> list[str]:
    """Columns holding numbers (not flags) in the records, at most MAX_PLOTTED_COLUMNS."""
    numeric = [
        c
        for c in _columns(records)
        if any(isinstance(r.get(c), int | float) and not isinstance(r.get(c), bool) for r in records)
    ]
    return numeric[:MAX_PLOTTED_COLUMNS]


def snapshot_plot(alert: dict, rows: list[tuple[int, dict]]) -> bytes:
    """The snapshot's numeric columns against its time column (or the record number), one panel each, the
    alert's record marked: what happened around it, at a glance. Drawn on a Figure of its own (no pyplot:
    requests run in threads), every text as written (no math text: a `$` in a message is a dollar)."""
    import pandas as pd
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from airflow_amml.components.plots import DPI, TIME_COLUMNS

    records = [record for _, record in rows]
    columns = _numeric_columns(records)
    x: Any = pd.RangeIndex(len(records))
    xlabel = "record of the snapshot"
    for name in TIME_COLUMNS:
        values = [r.get(name) for r in records]
        if all(isinstance(v, str) for v in values):  # a numeric column is no time (pandas reads it as 1970)
            stamps = pd.to_datetime(pd.Series(values), errors="coerce", utc=True)
            if stamps.notna().all():
                x, xlabel = stamps.dt.tz_localize(None), f"{name} (UTC)"
                break
    fig = Figure(figsize=(9, 1.2 + 1.6 * len(columns)), dpi=DPI)
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(columns), 1, sharex=True, squeeze=False)[:, 0]
    where = _alert_row(alert, rows)
    for ax, column in zip(axes, columns):
        values = pd.to_numeric(pd.Series([r.get(column) for r in records], dtype=object), errors="coerce")
        label = column[:40]
        ax.plot(x, values, linewidth=1.2, label=_plain(label))
        if where is not None and not math.isnan(values.iloc[where]):
            ax.plot([x[where]], [values.iloc[where]], marker="o", color="crimson", linestyle="", label="the alert")
        ax.set_ylabel(label, parse_math=False)
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left", fontsize=8)
    axes[0].set_title(f"alert {alert['id']}: {str(alert.get('message') or '')[:80]}", parse_math=False)
    axes[-1].set_xlabel(xlabel, parse_math=False)
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format="png")
    return out.getvalue()


def _plain(label: str) -> str:
    """A legend label shown as written: matplotlib reads `$…$` as math text, and legends take no parse_math."""
    return label.replace("$", r"\$")
