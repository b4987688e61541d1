"""`items column="COL"`: the distinct values of a column, in first-seen order, handed on as the items another
pipeline fans out over (``pipeline detect for series in find.series``).

The sink runs in a component process; the list reaches the process that runs the pipeline (``amml run``, the
Airflow operator, which pushes it to XCom ``amml_items``) as a small JSON file: ``airflow_amml.run`` names a
fresh file in the reserved run parameter ``ITEMS_FILE_PARAM`` for a pipeline with an `items` sink, and reads it
back when the pipeline has finished. (A name with double underscores: no AMML file can read or set it, and the
run sets it last, over whatever the trigger form sent.)

Bounded: more than ``MAX_FANOUT_ITEMS`` distinct values, or one longer than ``MAX_ITEM_CHARS``, fail the run
with a message naming the count, before anything is handed on.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any

import pandas as pd

from airflow_amml.sdk import AbstractEgress, PipelineError
from compiler.bytecode import MAX_FANOUT_ITEMS

from .column_params import did_you_mean_columns

log = logging.getLogger(__name__)

ITEMS_FILE_PARAM = "__amml_items_file"
# An item names a task instance (`series=nab/realKnownCause/nyc_taxi`) and goes into sink columns and model
# names: a short text. Airflow keeps a rendered map index in a VARCHAR(250).
MAX_ITEM_CHARS = 200


class Items(AbstractEgress):
    """`items column="COL"`: collect the distinct values of COL (first-seen order) for a fan-out downstream."""

    def open(self) -> None:
        self.column_name = self.params["column"]
        self.seen: dict[Any, None] = {}  # an ordered set

    def write(self, batch: pd.DataFrame) -> None:
        if self.column_name not in batch.columns:
            have = [str(c) for c in batch.columns]
            raise PipelineError(
                f"`items column={self.column_name!r}`: the records have no such column; they have {have}",
                hint=did_you_mean_columns([self.column_name], have) or "name a column the records have",
            )
        column = batch[self.column_name]
        for value in column[column.notna()].unique():  # missing values (None, NaN, NaT, <NA>) are no items
            item = item_value(value)
            if item is None or item in self.seen:
                continue
            self.seen[item] = None
            if len(self.seen) > MAX_FANOUT_ITEMS:
                raise PipelineError(
                    f"`items column={self.column_name!r}`: more than {MAX_FANOUT_ITEMS} distinct values "
                    f"({len(self.seen)} so far); a pipeline fans out over at most {MAX_FANOUT_ITEMS} items",
                    hint="filter the records first (`| filter cond=...`), or collect a coarser column",
                )

    def finish(self) -> None:
        items = list(self.seen)
        log.info("%s: %d item(s) of column %s: %s", self.name, len(items), self.column_name, _preview(items))
        target = self.context.run_params.get(ITEMS_FILE_PARAM)
        if target:
            write_items(Path(target), items)

    def progress_note(self) -> str | None:
        return f"{len(self.seen)} item(s)" if getattr(self, "seen", None) else None


def item_value(value: Any) -> str | int | float | None:
    """A column value as an item (str, int or float); None for a missing value (null, NaN, NaT), which is
    skipped. Anything else (a timestamp, a bool) becomes its text."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT:
        return None
    if hasattr(value, "item") and not isinstance(value, str):  # numpy scalars
        try:
            value = value.item()
        except (ValueError, TypeError):
            pass
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, float) and math.isinf(value):
        raise PipelineError(f"`items`: {value} is not an item (an item names a task instance)",
                            hint="filter such records first: `| filter cond=...`")
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        value = str(value)
    if isinstance(value, str) and len(value) > MAX_ITEM_CHARS:
        raise PipelineError(
            f"`items`: the value {value[:40]!r}… is {len(value)} characters long; an item has at most "
            f"{MAX_ITEM_CHARS}",
            hint="collect a column of short names or ids",
        )
    return value


def write_items(path: Path, items: list[Any]) -> None:
    """Write the list atomically (a reader never sees half a file)."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(items, ensure_ascii=False), encoding="utf-8")
    os.replace(partial, path)


def read_items(path: Path) -> list[Any] | None:
    """The list an `items` sink wrote to ``path``; None when it wrote none (the pipeline failed before)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    items = json.loads(text)
    if not isinstance(items, list) or len(items) > MAX_FANOUT_ITEMS:  # written by the sink above, but check
        raise PipelineError(f"the items file {path} does not hold a list of at most {MAX_FANOUT_ITEMS} items")
    return items


def _preview(items: list[Any], shown: int = 5) -> str:
    text = ", ".join(map(str, items[:shown]))
    return text + (f", … ({len(items) - shown} more)" if len(items) > shown else "")
