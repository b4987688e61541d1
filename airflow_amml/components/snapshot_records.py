"""The records a snapshot is cut from: the recent batches of a stream, kept just as long as a snapshot may
still need them, and the rows a snapshot table receives.

Every record's position in its stream is the index of its batch (assigned by the ingress, kept by filters),
so "the N records up to the alert" and "the M records after it" are slices by position, whichever batches
they arrived in.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from airflow_amml.sdk import PipelineError, normalize_value

# The most records a snapshot keeps before (or after) its alert: a pipeline's choice, memory is not
MAX_SNAPSHOT_ROWS = 1_000_000


def json_record(record: Mapping[Hashable, Any]) -> str:
    """One record as the alert and snapshot tables store it: JSON, NaN and NaT as null, times as text."""
    return json.dumps({str(k): normalize_value(v) for k, v in record.items()}, default=str)


@dataclass
class AfterPart:
    """A snapshot whose records after the alert are still to come."""

    snapshot_id: str
    event: str
    position: int  # the alert's
    alert_id: int | None


class RecentRecords:
    """The last batches of one stream, in stream order."""

    def __init__(self) -> None:
        self.batches: deque[pd.DataFrame] = deque()
        self.held = 0
        self.seen_up_to = -1  # the newest position seen

    def append(self, batch: pd.DataFrame) -> None:
        if len(batch):
            self.batches.append(batch)
            self.held += len(batch)
            self.seen_up_to = max(self.seen_up_to, int(batch.index.max()))

    def frame(self) -> pd.DataFrame | None:
        if not self.batches:
            return None
        return self.batches[0] if len(self.batches) == 1 else pd.concat(self.batches)

    def up_to(self, position: int, count: int, frame: pd.DataFrame | None = None) -> pd.DataFrame | None:
        """The last ``count`` records at or before ``position`` (``frame``: :meth:`frame`, if already made)."""
        frame = self.frame() if frame is None else frame
        if frame is None or count <= 0:
            return None
        return frame[frame.index <= position].tail(count)

    def count_after(self, position: int) -> int:
        return sum(int(np.count_nonzero(b.index.to_numpy() > position)) for b in self.batches)

    def after(self, position: int, count: int) -> pd.DataFrame | None:
        frame = self.frame()
        return None if frame is None else frame[frame.index > position].head(count)

    def trim(self, keep_rows: int, keep_after: int | None = None) -> None:
        """Forget the oldest batches while at least ``keep_rows`` records stay, and every record after
        position ``keep_after`` (a snapshot still waiting for them)."""
        while len(self.batches) > 1 and self.held - len(self.batches[0]) >= keep_rows:
            if keep_after is not None and int(self.batches[0].index.max()) > keep_after:
                return
            self.held -= len(self.batches.popleft())


def snapshot_rows(
    frame: pd.DataFrame | None,
    *,
    snapshot_id: str,
    event: str,
    position: int,
    alert_id: int | None,
    saved_at: datetime,
    item: str | None = None,
) -> list[dict[str, Any]]:
    """The rows of ``frame`` as one snapshot's rows in a snapshot table (``item``: a fanned-out run's, as text)."""
    if frame is None or frame.empty:
        return []
    return [
        {
            "snapshot_id": snapshot_id,
            "saved_at": saved_at,
            "event": event,
            "alert_position": position,
            "row_position": int(index),
            "record": json_record(record),
            "alert_id": alert_id,
            "item": item,
        }
        for index, record in zip(frame.index, frame.to_dict("records"))
    ]


def check_count(component: str, name: str, value: object, *, minimum: int) -> int:
    """A number of snapshot records: a whole number from ``minimum`` to MAX_SNAPSHOT_ROWS."""
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= MAX_SNAPSHOT_ROWS:
        raise PipelineError(
            f"`{component} {name}={value!r}`: expected a number of records from {minimum} to {MAX_SNAPSHOT_ROWS:,}",
            hint=f"keep fewer records, e.g. {name}=1000",
        )
    return value
