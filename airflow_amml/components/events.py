"""Surveillance (Fig. 7): `alert` records alerts (and can notify and snapshot), `snapshot` saves its buffer
of recent records on their events.

Every record has a stream position (the batch index, assigned by the ingress and kept through filters).
An alert event carries the position of the record that raised it and the alert's row id.

`alert ... snapshot=N, after=M` is the durable way: the alert row and the N records up to and including
its record are written in ONE transaction, so no alert is ever recorded without its "before" records, and
none is lost once committed. The M records after it are appended later, in one more transaction that also
marks the alert's ``snapshot_status`` from ``after_pending`` to ``complete``. If the pipeline dies between
the two, the alert stays ``after_pending``; in Airflow a retry of the task (same dag, run and task ids) does
not record the alert again but completes its snapshot from the replayed stream. Outside Airflow a run has no
identity to resume by: the ``after_pending`` status is what tells the story.

In a fanned-out run (``config.item``: ``pipeline p for series in ...``) each alert and snapshot row records the
item in the column ``item`` (its value as text: one name for every DAG, whatever the loop variable), and the
alert's message starts with it (``nab/realKnownCause/nyc_taxi: value above 3 sigma``), so a notifier's text
names the series. The mapped tasks of one fan-out share their task id, so a retry looks up only its own item's
alerts.

`snapshot size=N, on="alert"` (kept for existing pipelines) runs in its own process and saves when the
event arrives, waiting if its own input has not reached the alert's position yet, so its rows are still
exactly "the records before the alert"; with ``after=M`` it saves the M records after it too (each part in
its own transaction), linked to the alert by ``alert_id``.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from airflow_amml import storage, tables
from airflow_amml.sdk import AbstractEgress, Event, PipelineError, RunConfig, normalize_value

from .notifications import Webhook
from .snapshot_records import AfterPart, RecentRecords, check_count, json_record, snapshot_rows

log = logging.getLogger(__name__)

# Records kept beyond `size`, so that an event arriving late still finds the records that preceded it.
EVENT_SLACK_ROWS = 65_536
# The alerts table's String(200) columns: a longer value fails on PostgreSQL only, so it is refused everywhere
MAX_NAME_CHARS = 200


class Alert(AbstractEgress):
    """`alert cond=...`: record an alert and send an event for every record where `cond` holds (one per
    `cooldown` records); optionally notify a declared webhook and snapshot the records around it."""

    def open(self) -> None:
        p = self.params
        for param in ("event", "message"):
            if not isinstance(p[param], str):
                raise PipelineError(f"`alert {param}={p[param]!r}`: expected a string")
        if len(p["event"]) > MAX_NAME_CHARS:
            raise PipelineError(
                f"`alert event=...`: an event name has at most {MAX_NAME_CHARS} characters, got {len(p['event'])}",
                hint="use a short name, e.g. event='hot_oil'",
            )
        self.cooldown = check_count("alert", "cooldown", p["cooldown"], minimum=0)
        self.before = check_count("alert", "snapshot", p["snapshot"], minimum=0)
        self.after = check_count("alert", "after", p["after"], minimum=0)
        config = self.context.config
        self.webhook = None
        if p["webhook"] is not None:
            self.webhook = Webhook(p["webhook"], storage.named_webhook_url("alert", p["webhook"], config))
        self.engine = storage.engine(config)
        tables.ensure_alert_tables(self.engine)
        self.snapshot_table = None
        if self.before or self.after:
            self.snapshot_table = tables.ensure_snapshot_table("alert", self.engine, p["snapshot_table"])
        self.records = RecentRecords()
        self.waiting: list[AfterPart] = []  # snapshots whose `after` records are still to come
        self.lineage = config.lineage
        self.item = tables.item_text(config.item)
        self.recorded = self._recorded_by_earlier_tries()
        self.last_position: int | None = None  # of the last alert raised (the cooldown counts from it)
        self.fired = 0

    # ---- per batch ---------------------------------------------------------------------------------------

    def write(self, batch: pd.DataFrame) -> None:
        if self.snapshot_table is not None:
            self.records.append(batch)
        fired = self._fired(batch)
        if len(fired):
            self._raise(batch, fired)
        if self.snapshot_table is not None:
            self._save_after_parts(final=False)
            self.records.trim(max(self.before - 1, 0), min((w.position for w in self.waiting), default=None))

    def finish(self) -> None:
        self._save_after_parts(final=True)  # the stream ended: what came after is all there is

    def _fired(self, batch: pd.DataFrame) -> np.ndarray:
        """Indexes (into ``batch``) of the records that raise an alert: `cond` holds, and the cooldown since
        the last alert is over. The loop runs once per alert, not per record."""
        hits = np.flatnonzero(self.condition(batch))  # a cond that is no condition fails naming its record
        if not len(hits):
            return hits
        positions = batch.index.to_numpy()[hits].astype(np.int64)
        last = self.last_position
        start = 0 if last is None else int(np.searchsorted(positions, last + self.cooldown, side="right"))
        if self.cooldown == 0:
            chosen = np.arange(start, len(positions))
        else:
            picked = []
            while start < len(positions):
                picked.append(start)
                start = int(np.searchsorted(positions, positions[start] + self.cooldown, side="right"))
            chosen = np.asarray(picked, dtype=np.int64)
        if len(chosen):
            self.last_position = int(positions[chosen[-1]])
        return hits[chosen]

    def _raise(self, batch: pd.DataFrame, fired: np.ndarray) -> None:
        rows = self._alert_rows(batch, fired)
        new = [row for row in rows if row["position"] not in self.recorded]
        saved_at = datetime.now(UTC)
        frame = self.records.frame() if self.before and new else None
        snapshots: list[dict[str, Any]] = []
        with self.engine.begin() as conn:  # the alerts and their "before" records: one transaction
            ids: list[int] = []
            if new:
                insert = tables.alerts.insert().returning(tables.alerts.c.id, sort_by_parameter_order=True)
                ids = list(conn.execute(insert, new).scalars())
            for row, alert_id in zip(new, ids):
                row["id"] = alert_id
                row["snapshot_id"] = str(uuid.uuid4())
                snapshots += snapshot_rows(
                    self.records.up_to(row["position"], self.before, frame),
                    snapshot_id=row["snapshot_id"],
                    event=row["event"],
                    position=row["position"],
                    alert_id=alert_id,
                    saved_at=saved_at,
                    item=self.item,
                )
            if snapshots:
                conn.execute(self.snapshot_table.insert(), snapshots)
        for row in rows:
            earlier = self.recorded.get(row["position"])
            if earlier is not None:  # a retry replaying what an earlier try recorded: finish that alert
                row.update(earlier)
            self.fired += 1
            if earlier is None:
                log.warning(
                    "ALERT [%s] %s at position %s: %s", row["level"], row["message"], row["position"], row["record"]
                )
            if row["snapshot_status"] == tables.SNAPSHOT_AFTER_PENDING:
                self.waiting.append(AfterPart(row["snapshot_id"], row["event"], row["position"], row["id"]))
            if self.webhook is not None and row["notify_status"] != tables.NOTIFY_SENT:
                self._notify(row)
            self.context.emit_event(
                Event(
                    self.params["event"],
                    self.name,
                    {"position": row["position"], "message": row["message"], "alert_id": row["id"]},
                )
            )

    def _alert_rows(self, batch: pd.DataFrame, fired: np.ndarray) -> list[dict[str, Any]]:
        p = self.params
        chosen = batch.iloc[fired]
        records = chosen.to_dict("records")
        times = self._record_times(chosen)
        scores = self._scores(chosen)
        value_cols = self._value_columns(batch)
        snapshot_status = None
        if self.snapshot_table is not None:
            snapshot_status = tables.SNAPSHOT_AFTER_PENDING if self.after else tables.SNAPSHOT_COMPLETE
        now = datetime.now(UTC)
        return [
            {
                "created_at": now,
                "component": self.name,
                "event": p["event"],
                "level": p["level"],
                "message": p["message"] if self.item is None else f"{self.item}: {p['message']}",
                "position": int(position),
                "record": json_record(record),
                "record_time": times[i],
                "score": scores[i],
                "trigger_values": json_record({c: record[c] for c in value_cols}),
                "dag_id": self.lineage.dag_id,
                "run_id": self.lineage.run_id,
                "task_id": self.lineage.task_id,
                "item": self.item,
                "notify_status": tables.NOTIFY_PENDING if self.webhook is not None else None,
                "notify_attempts": 0 if self.webhook is not None else None,
                "notify_error": None,
                "snapshot_status": snapshot_status,
            }
            for i, (position, record) in enumerate(zip(chosen.index, records))
        ]

    # ---- what an alert says about its record -----------------------------------------------------------

    def _record_times(self, chosen: pd.DataFrame) -> list[datetime | None]:
        """The records' own times (UTC; a time without a zone is taken as UTC): the `time` column, else the
        first column of timestamps, else none."""
        column = self.params["time"]
        if column is None:
            column = next((c for c in chosen.columns if pd.api.types.is_datetime64_any_dtype(chosen[c])), None)
            if column is None:
                return [None] * len(chosen)
        elif column not in chosen.columns:
            raise PipelineError(
                f"`alert time={column!r}`: no such column; the records have {list(chosen.columns)}",
                hint="name the records' timestamp column, or leave `time` out",
            )
        try:
            stamps = pd.to_datetime(chosen[column], utc=True, format="ISO8601")
        except (ValueError, TypeError) as exc:
            raise PipelineError(
                f"`alert time={column!r}`: the column does not hold times ({exc})",
                hint="name a timestamp column, e.g. one written as 2017-01-01 00:00:00",
            ) from None
        return [None if pd.isna(t) else t.to_pydatetime() for t in stamps]

    def _scores(self, chosen: pd.DataFrame) -> list[float | None]:
        column = self.params["score"]
        if column is None:
            if "anomaly_score" not in chosen.columns:
                return [None] * len(chosen)
            column = "anomaly_score"
        elif column not in chosen.columns:
            raise PipelineError(
                f"`alert score={column!r}`: no such column; the records have {list(chosen.columns)}",
                hint="name the detector's score column, or leave `score` out",
            )
        scores = pd.to_numeric(chosen[column], errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
        return [normalize_value(float(s)) for s in scores]

    def _value_columns(self, batch: pd.DataFrame) -> list[str]:
        """The values that triggered the alert: `values`, else the fields `cond` reads, and the score."""
        wanted = self.params["values"]
        if wanted is not None:
            missing = [c for c in wanted if c not in batch.columns]
            if missing:
                raise PipelineError(
                    f"`alert values=...`: no column {missing[0]!r}; the records have {list(batch.columns)}",
                    hint="name columns the records have",
                )
            return list(wanted)
        read = list(self.callback.fields) if self.callback is not None else []
        score = self.params["score"] or "anomaly_score"
        return [c for c in dict.fromkeys([*read, score]) if c in batch.columns]

    # ---- notification, the "after" part of snapshots, retries ------------------------------------------

    def _notify(self, row: dict[str, Any]) -> None:
        """POST the alert (already committed) to the webhook, then record how that went."""
        payload = {k: row[k] for k in tables.alerts.c.keys() if k in row and not k.startswith("notify_")}
        delivery = self.webhook.post(payload)
        status = tables.NOTIFY_SENT if delivery.sent else tables.NOTIFY_FAILED
        with self.engine.begin() as conn:
            conn.execute(
                tables.alerts.update()
                .where(tables.alerts.c.id == row["id"])
                .values(
                    notify_status=status,
                    notify_attempts=tables.alerts.c.notify_attempts + delivery.attempts,
                    notify_error=delivery.error,
                )
            )
        row["notify_status"] = status

    def _save_after_parts(self, *, final: bool) -> None:
        for part in list(self.waiting):
            if not final and self.records.count_after(part.position) < self.after:
                continue
            rows = snapshot_rows(
                self.records.after(part.position, self.after),
                snapshot_id=part.snapshot_id,
                event=part.event,
                position=part.position,
                alert_id=part.alert_id,
                saved_at=datetime.now(UTC),
                item=self.item,
            )
            with self.engine.begin() as conn:  # the rows and the status that says they are there: together
                if rows:
                    conn.execute(self.snapshot_table.insert(), rows)
                conn.execute(
                    tables.alerts.update()
                    .where(tables.alerts.c.id == part.alert_id)
                    .values(snapshot_status=tables.SNAPSHOT_COMPLETE)
                )
            self.waiting.remove(part)

    def _recorded_by_earlier_tries(self) -> dict[int, dict[str, Any]]:
        """Alerts an earlier try of this very Airflow task recorded (same dag, run and task ids, and item: the
        mapped tasks of a fan-out share a task id): position → what a retry needs to finish them (their id,
        snapshot and notification status)."""
        lineage = self.lineage
        if not (lineage.run_id and lineage.task_id):
            return {}
        a = tables.alerts.c
        query = sa.select(a.id, a.position, a.snapshot_status, a.notify_status).where(
            a.dag_id.is_not_distinct_from(lineage.dag_id),
            a.run_id == lineage.run_id,
            a.task_id == lineage.task_id,
            a.item.is_not_distinct_from(self.item),
            a.component == self.name,
            a.event == self.params["event"],
        )
        with self.engine.connect() as conn:
            found = {r.position: dict(r._mapping) for r in conn.execute(query)}
            if self.snapshot_table is not None and found:
                s = self.snapshot_table.c
                ids = sa.select(s.alert_id, sa.func.min(s.snapshot_id)).where(
                    s.alert_id.in_([f["id"] for f in found.values()])
                )
                linked = {alert_id: first for alert_id, first in conn.execute(ids.group_by(s.alert_id))}
            else:
                linked = {}
        for row in found.values():
            row["snapshot_id"] = linked.get(row["id"]) or str(uuid.uuid4())
        return found


def alerts_of_run(config: RunConfig) -> list[dict[str, Any]]:
    """The alerts the run ``config.lineage`` names (dag, run and task ids, and ``config.item``: a mapped task's
    own) recorded, oldest first: what the Airflow side hands its notifiers
    (:func:`~airflow_amml.components.notifications.notify_recorded`).
    A run without an identity (outside Airflow) has none to look up."""
    lineage = config.lineage
    if not (lineage.run_id and lineage.task_id):
        return []
    engine = storage.engine(config)
    tables.ensure_alert_tables(engine)
    a = tables.alerts.c
    query = (
        sa.select(tables.alerts)
        .where(
            a.dag_id.is_not_distinct_from(lineage.dag_id),
            a.run_id == lineage.run_id,
            a.task_id == lineage.task_id,
            a.item.is_not_distinct_from(tables.item_text(config.item)),
        )
        .order_by(a.id)
    )
    with engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(query)]


class Snapshot(AbstractEgress):
    """`snapshot size=N, on="alert"`: keep the last N records; save them when the event arrives (and with
    `after=M` the M records after the alert too)."""

    def open(self) -> None:
        self.size = check_count("snapshot", "size", self.params["size"], minimum=1)
        self.after = check_count("snapshot", "after", self.params["after"], minimum=0)
        self.records = RecentRecords()
        self.pending: list[Event] = []
        self.waiting: list[AfterPart] = []
        self.saved: list[str] = []
        self.engine = storage.engine(self.context.config)
        self.table = tables.ensure_snapshot_table(self.name, self.engine, self.params["table"])
        self.item = tables.item_text(self.context.config.item)

    def write(self, batch: pd.DataFrame) -> None:
        if not len(batch):
            return
        self.records.append(batch)
        self._save_due()
        # Keep `size` rows before the newest batch plus some slack: an alert raised in a parallel process
        # may arrive a few batches after the record that raised it.
        keep_after = min((w.position for w in self.waiting), default=None)
        self.records.trim(self.size + len(batch) + EVENT_SLACK_ROWS, keep_after)

    def on_event(self, event: Event) -> None:
        self.pending.append(event)
        self._save_due()

    def finish(self) -> None:
        self._save_due(final=True)

    def _save_due(self, final: bool = False) -> None:
        due = [e for e in self.pending if final or e.payload.get("position", -1) <= self.records.seen_up_to]
        for event in due:
            self.pending.remove(event)
            self._save(event)
        for part in list(self.waiting):
            if final or self.records.count_after(part.position) >= self.after:
                self.waiting.remove(part)
                self._insert(self.records.after(part.position, self.after), part, "after")

    def _save(self, event: Event) -> None:
        position = int(event.payload.get("position", self.records.seen_up_to))
        alert_id = event.payload.get("alert_id")
        if alert_id is not None and self._already_saved(alert_id):
            return  # a retried task replaying an alert whose snapshot an earlier try saved
        recent = self.records.up_to(position, self.size)
        if recent is None or recent.empty:
            log.warning(
                "snapshot: event `%s` refers to position %d, older than the %d records kept; nothing saved",
                event.name,
                position,
                self.records.held,
            )
            return
        part = AfterPart(str(uuid.uuid4()), event.name, position, alert_id)
        self._insert(recent, part, "before")
        self.saved.append(part.snapshot_id)
        if self.after:
            self.waiting.append(part)

    def _insert(self, frame: pd.DataFrame | None, part: AfterPart, which: str) -> None:
        rows = snapshot_rows(
            frame,
            snapshot_id=part.snapshot_id,
            event=part.event,
            position=part.position,
            alert_id=part.alert_id,
            saved_at=datetime.now(UTC),
            item=self.item,
        )
        if rows:
            with self.engine.begin() as conn:
                conn.execute(self.table.insert(), rows)
        log.info(
            "snapshot %s: saved %d records %s position %d on `%s`",
            part.snapshot_id,
            len(rows),
            "up to" if which == "before" else "after",
            part.position,
            part.event,
        )

    def _already_saved(self, alert_id: int) -> bool:
        with self.engine.connect() as conn:
            found = conn.execute(sa.select(self.table.c.id).where(self.table.c.alert_id == alert_id).limit(1))
            return found.first() is not None
