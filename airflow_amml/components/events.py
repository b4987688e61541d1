"""Surveillance (Fig. 7): `alert` raises events, `snapshot` saves its buffer of recent records on them.

Every record has a stream position (the batch index, assigned by the ingress and kept through filters).
An alert event carries the position of the record that raised it; `snapshot` saves the `size` records up
to and including that position, waiting if its own input has not reached it yet. So both components can
run in parallel processes and the saved snapshot is still exactly "the records before the alert".
"""

from __future__ import annotations

import json
import logging
import uuid
from collections import deque
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from airflow_amml import storage, tables
from airflow_amml.sdk import AbstractEgress, Event, PipelineError, normalize_value

log = logging.getLogger(__name__)

# Records kept beyond `size`, so that an event arriving late still finds the records that preceded it.
EVENT_SLACK_ROWS = 65_536
# The most records a snapshot keeps: `size` is a pipeline's (or trigger param's) choice, memory is not
MAX_SNAPSHOT_ROWS = 1_000_000
# The alerts table's String(200) columns: a longer value fails on PostgreSQL only, so it is refused everywhere
MAX_NAME_CHARS = 200


def _json_record(row: pd.Series) -> str:
    return json.dumps({k: normalize_value(v) for k, v in row.items()}, default=str)


class Alert(AbstractEgress):
    """`alert cond=...`: record an alert and send an event for every record where `cond` holds."""

    def open(self) -> None:
        for param in ("event", "message"):
            if not isinstance(self.params[param], str):
                raise PipelineError(f"`alert {param}={self.params[param]!r}`: expected a string")
        if len(self.params["event"]) > MAX_NAME_CHARS:
            raise PipelineError(
                f"`alert event=...`: an event name has at most {MAX_NAME_CHARS} characters, "
                f"got {len(self.params['event'])}",
                hint="use a short name, e.g. event='hot_oil'",
            )
        self.engine = storage.engine(None, self.context.settings)
        tables.ensure(self.engine, tables.alerts)
        self.quiet_until = -1  # stream position before which the alert may not fire again (cooldown)
        self.fired = 0

    def write(self, batch: pd.DataFrame) -> None:
        keep = self.condition(batch)  # a cond that is no condition fails naming its record
        if not keep.any():
            return
        rows = []
        cooldown = int(self.params["cooldown"])
        for i in np.flatnonzero(keep):
            position = int(batch.index[i])
            if position < self.quiet_until:
                continue
            self.quiet_until = position + cooldown + 1 if cooldown else -1
            record = batch.iloc[i]
            rows.append(
                {
                    "created_at": datetime.now(UTC),
                    "component": self.name,
                    "event": self.params["event"],
                    "level": self.params["level"],
                    "message": self.params["message"],
                    "position": int(position),
                    "record": _json_record(record),
                }
            )
        if not rows:
            return
        with self.engine.begin() as conn:  # recorded (committed) before anyone is told
            conn.execute(tables.alerts.insert(), rows)
        for row in rows:
            self.fired += 1
            log.warning(
                "ALERT [%s] %s at position %s: %s", row["level"], row["message"], row["position"], row["record"]
            )
            self.context.emit_event(
                Event(self.params["event"], self.name, {"position": row["position"], "message": row["message"]})
            )


class Snapshot(AbstractEgress):
    """`snapshot size=N, on="alert"`: keep the last N records; save them when the event arrives."""

    def open(self) -> None:
        self.size = self.params["size"]
        if isinstance(self.size, bool) or not isinstance(self.size, int) or not 1 <= self.size <= MAX_SNAPSHOT_ROWS:
            raise PipelineError(
                f"`snapshot size={self.size!r}`: expected a number of records from 1 to {MAX_SNAPSHOT_ROWS:,}",
                hint="keep fewer records, e.g. size=1000",
            )
        self.buffer: deque[pd.DataFrame] = deque()
        self.held = 0
        self.seen_up_to = -1
        self.pending: list[Event] = []
        self.saved: list[str] = []
        self.engine = storage.engine(None, self.context.settings)
        self.table = tables.ensure_snapshot_table(self.name, self.engine, self.params["table"])

    def write(self, batch: pd.DataFrame) -> None:
        if not len(batch):
            return
        self.buffer.append(batch)
        self.held += len(batch)
        self.seen_up_to = max(self.seen_up_to, int(batch.index.max()))
        self._save_due()
        # Keep `size` rows before the newest batch plus some slack: an alert raised in a parallel process
        # may arrive a few batches after the record that raised it.
        keep = self.size + len(batch) + EVENT_SLACK_ROWS
        while len(self.buffer) > 1 and self.held - len(self.buffer[0]) >= keep:
            self.held -= len(self.buffer.popleft())

    def on_event(self, event: Event) -> None:
        self.pending.append(event)
        self._save_due()

    def finish(self) -> None:
        self._save_due(final=True)

    def _save_due(self, final: bool = False) -> None:
        due = [e for e in self.pending if final or e.payload.get("position", -1) <= self.seen_up_to]
        for event in due:
            self.pending.remove(event)
            self._save(event)

    def _save(self, event: Event) -> None:
        position = int(event.payload.get("position", self.seen_up_to))
        if not self.buffer:
            return
        recent = pd.concat(self.buffer) if len(self.buffer) > 1 else self.buffer[0]
        recent = recent[recent.index <= position].tail(self.size)
        if recent.empty:
            log.warning(
                "snapshot: event `%s` refers to position %d, older than the %d records kept; nothing saved",
                event.name,
                position,
                self.held,
            )
            return
        snapshot_id = str(uuid.uuid4())
        now = datetime.now(UTC)
        rows = [
            {
                "snapshot_id": snapshot_id,
                "saved_at": now,
                "event": event.name,
                "alert_position": position,
                "row_position": int(idx),
                "record": _json_record(row),
            }
            for idx, row in recent.iterrows()
        ]
        with self.engine.begin() as conn:
            conn.execute(self.table.insert(), rows)
        self.saved.append(snapshot_id)
        log.info(
            "snapshot %s: saved %d records up to position %d on `%s`", snapshot_id, len(rows), position, event.name
        )
