"""The alerts pages: what the pipelines' `alert` components recorded, newest first, and one alert with the
records saved around it (its snapshot, the paper's Fig. 7) as a table, a plot and a CSV download.

They read the runs' database (`AMML_DB_URL`, else the embedded SQLite; `airflow_amml.alert_history`, read
only). A reader sees the alerts of the DAGs they may read (`Access.readable_dags`); the alerts raised outside
Airflow (`amml run`) only when they may read every DAG.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Collection, Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, Response, StreamingResponse

from airflow_amml import alert_history, tables
from airflow_amml.alert_history import AlertHistoryError, AlertNotFoundError, SnapshotTableError

from . import views
from .context import Context
from .layout import render
from .pages import SECURITY_HEADERS, page

DEFAULT_LISTED, MAX_LISTED = 100, 1000  # alerts on the list page
MAX_SHOWN_RECORDS = 2000  # snapshot records in the page's table and plot (the CSV has them all)
MAX_PLOTTED_COLUMNS = 8
MAX_ALERT_ID = 2**63 - 1  # what a database integer holds
TIME_COLUMNS = ("timestamp", "date", "time")  # the snapshot plot's x axis when the records have one
AlertId = Annotated[int, PathParam(ge=1, le=MAX_ALERT_ID)]
Table = Annotated[str, Query(max_length=63)]


def alerts_router(ctx: Context) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    user = Depends(ctx.access.current_user)

    def helpers(request: Request) -> dict[str, Any]:
        root, airflow_root = ctx.roots(request)
        return {"root": root, "when": views.when, "value": views.value, "airflow_root": airflow_root}

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
        found, records = _visible_alert(ctx, who, alert_id, table, MAX_SHOWN_RECORDS + 1)
        shown = records[:MAX_SHOWN_RECORDS]
        query = "" if table == tables.SNAPSHOT_DEFAULT else f"?table={table}"
        html = render(
            "alert.html",
            title=f"Alert {alert_id}",
            crumbs=[("ML Models", f"{root}/ui/"), ("Alerts", f"{root}/ui/alerts")],
            a=found,
            fields=_fields(found),
            run_link=views.run_url(context["airflow_root"], found.get("dag_id"), found.get("run_id")),
            columns=_columns(shown),
            records=shown,
            more=len(records) > MAX_SHOWN_RECORDS,
            alert_row=_alert_row(found, shown),
            table=table,
            query=query,
            plotted=bool(_numeric_columns(shown)),
            **context,
        )
        return page(html)

    @router.get("/ui/alerts/{alert_id}/snapshot.csv")
    def snapshot_csv(alert_id: AlertId, table: Table = tables.SNAPSHOT_DEFAULT, who: Any = user) -> Response:
        _, first = _visible_alert(ctx, who, alert_id, table, MAX_SHOWN_RECORDS)
        columns = _columns(first)  # the records' keys, in the order they first appear (later new ones go last)

        def lines() -> Iterator[str]:
            out = io.StringIO()
            writer = csv.DictWriter(out, columns, extrasaction="ignore", lineterminator="\n")
            writer.writeheader()
            for record in alert_history.snapshot_records(ctx.run_config(), alert_id, table):
                writer.writerow(record)
                if out.tell() > 64 * 1024:
                    yield out.getvalue()
                    out.seek(0)
                    out.truncate()
            yield out.getvalue()

        headers = {**SECURITY_HEADERS, "Content-Disposition": f'attachment; filename="alert-{alert_id}-snapshot.csv"'}
        return StreamingResponse(lines(), media_type="text/csv; charset=utf-8", headers=headers)

    @router.get("/ui/alerts/{alert_id}/snapshot.png")
    def snapshot_png(alert_id: AlertId, table: Table = tables.SNAPSHOT_DEFAULT, who: Any = user) -> Response:
        found, records = _visible_alert(ctx, who, alert_id, table, MAX_SHOWN_RECORDS)
        if not _numeric_columns(records):
            raise HTTPException(status_code=404, detail=f"alert {alert_id}'s snapshot has no numbers to plot")
        png = snapshot_plot(found, records)
        return Response(png, media_type="image/png", headers={**SECURITY_HEADERS, "Cache-Control": "private"})

    return router


def _read(fn: Any, *args: Any) -> Any:
    """An alert_history call, its errors as HTTP errors the app shows as a page (no alert: 404; a table
    that is not a snapshot table: 400; a database that cannot be read: 503)."""
    try:
        return fn(*args)
    except AlertNotFoundError:
        raise
    except SnapshotTableError as exc:
        raise HTTPException(status_code=400, detail=_explain(exc)) from None
    except AlertHistoryError as exc:
        raise HTTPException(status_code=503, detail=_explain(exc)) from None


def _visible_alert(ctx: Context, who: Any, alert_id: int, table: str, max_records: int) -> tuple[dict, list]:
    """The alert and the first `max_records` of its snapshot, if the reader may see it: an alert of a DAG
    they may not read is not found, as one that does not exist (its DAG is not said)."""
    readable = ctx.access.readable_dags(who)
    missing = HTTPException(status_code=404, detail=f"There is no alert {alert_id} that you may view.")
    try:
        found, records = _read(alert_history.get_alert, ctx.run_config(), alert_id, table, max_records)
    except AlertNotFoundError:
        raise missing from None
    if not _may_see(found.get("dag_id"), readable):
        raise missing
    return found, records


def _may_see(dag_id: str | None, readable: Collection[str] | None) -> bool:
    return readable is None or (dag_id is not None and dag_id in readable)


def _explain(exc: AlertHistoryError) -> str:
    return f"{exc.message} (hint: {exc.hint})" if exc.hint else exc.message


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


def _columns(records: list[dict]) -> list[str]:
    return list(dict.fromkeys(key for record in records for key in record))


def _alert_row(alert: dict, records: list[dict]) -> int | None:
    """The index of the alert's own record among the snapshot's: the first whose values are the record's."""
    record = alert.get("record") or {}
    for i, row in enumerate(records):
        if record and all(row.get(k) == v for k, v in record.items() if k in row):
            return i
    return None


def _numeric_columns(records: list[dict]) -> list[str]:
    """Columns holding numbers (not flags) in the records, at most MAX_PLOTTED_COLUMNS."""
    numeric = [
        c
        for c in _columns(records)
        if any(isinstance(r.get(c), int | float) and not isinstance(r.get(c), bool) for r in records)
    ]
    return numeric[:MAX_PLOTTED_COLUMNS]


def snapshot_plot(alert: dict, records: list[dict]) -> bytes:
    """The snapshot's numeric columns against its time column (or the record number), one panel each, the
    alert's record marked: what happened around it, at a glance."""
    import pandas as pd

    from airflow_amml.components.plots import DPI, _pyplot

    frame = pd.DataFrame.from_records(records)
    columns = _numeric_columns(records)
    x: Any = pd.RangeIndex(len(frame))
    xlabel = "record of the snapshot"
    for name in TIME_COLUMNS:
        if name in frame.columns:
            stamps = pd.to_datetime(frame[name], errors="coerce", utc=True)
            if stamps.notna().all():
                x, xlabel = stamps.dt.tz_localize(None), f"{name} (UTC)"
                break
    plt = _pyplot()
    fig, axes = plt.subplots(len(columns), 1, figsize=(9, 1.2 + 1.6 * len(columns)), sharex=True, squeeze=False)
    where = _alert_row(alert, records)
    for ax, column in zip(axes[:, 0], columns):
        values = pd.to_numeric(frame[column], errors="coerce")
        ax.plot(x, values, linewidth=1.2, label=column)
        if where is not None and not math.isnan(values.iloc[where]):
            ax.plot([x[where]], [values.iloc[where]], marker="o", color="crimson", linestyle="", label="the alert")
        ax.set_ylabel(column)
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left", fontsize=8)
    axes[0, 0].set_title(f"alert {alert['id']}: {str(alert.get('message') or '')[:80]}")
    axes[-1, 0].set_xlabel(xlabel)
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=DPI)
    plt.close(fig)
    return out.getvalue()
