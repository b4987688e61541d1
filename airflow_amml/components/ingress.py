"""Ingress components: where records come from."""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np
import pandas as pd

from airflow_amml.runtime.component import AbstractIngress

from .catalog import iter_source

# Rows generated per frame when no rate is set: large enough to be cheap, small enough to stream.
GENERATE_ROWS = 8192


class NormalSource(AbstractIngress):
    """`normalsource col='val1', mean=0, std=1`: Gaussian values in column `col` (the paper's generator)."""

    def batches(self) -> Iterator[pd.DataFrame]:
        p = self.params
        rng = np.random.default_rng(p["seed"])
        total, rate = int(p["count"]), float(p["rate"])
        produced = 0
        started = time.monotonic()
        while total == 0 or produced < total:
            if rate > 0:
                due = int((time.monotonic() - started) * rate) + 1 - produced
                if due <= 0:
                    time.sleep(min(0.01, 1.0 / rate))
                    yield pd.DataFrame()  # lets the batcher flush what has waited long enough
                    continue
                size = due
            else:
                size = GENERATE_ROWS
            if total:
                size = min(size, total - produced)
            values = rng.normal(float(p["mean"]), float(p["std"]), size)
            yield pd.DataFrame({p["col"]: values})
            produced += size


class CatalogSource(AbstractIngress):
    """`source id="ett"`: a named data set from the catalog, optionally limited to a time window."""

    def batches(self) -> Iterator[pd.DataFrame]:
        p = self.params
        start, end = p["start"], p["end"]
        if start is None and end is None and self.context.settings.get("data_interval"):
            start, end = self.context.settings["data_interval"]  # a scheduled/backfilled run reads its window
        from airflow_amml.runtime.executor import BATCH_ROWS

        frames = iter_source(
            p["id"],
            start=start,
            end=end,
            warmup=int(p["warmup"]),
            cols=p["cols"],
            settings=self.context.settings,
            # the executor's batch size: rebatch passes these frames through as they are
            batch_rows=self.context.settings.get("batch_rows", BATCH_ROWS),
        )
        left = None if p["limit"] is None else int(p["limit"])
        for frame in frames:
            if left is not None:
                if left <= 0:
                    return
                frame = frame.iloc[:left]
                left -= len(frame)
            yield frame


class LogSource(AbstractIngress):
    """`logsource path=..., format='jsonl'|'regex', pattern=...`: one record per log line.

    A line that cannot be parsed stops the pipeline with the file and line number (nothing is skipped
    silently); blank lines are ignored."""

    def open(self) -> None:
        import re

        from airflow_amml.runtime.errors import PipelineError

        p = self.params
        self.regex = None
        if p["format"] == "regex":
            if not p["pattern"]:
                raise PipelineError(
                    "`logsource format='regex'` needs `pattern` with named groups, e.g. "
                    "pattern='(?P<ts>\\S+) (?P<level>\\w+) (?P<msg>.*)'"
                )
            try:
                self.regex = re.compile(p["pattern"])
            except re.error as exc:
                raise PipelineError(f"`logsource`: invalid pattern: {exc}") from exc
            if not self.regex.groupindex:
                raise PipelineError("`logsource`: the pattern has no named groups (?P<name>...)")

    def batches(self) -> Iterator[pd.DataFrame]:
        import json

        from airflow_amml.runtime.errors import PipelineError

        path = self.params["path"]
        rows: list[dict] = []
        try:
            handle = open(path, encoding="utf-8", errors="replace")
        except OSError as exc:
            raise PipelineError(f"`logsource`: cannot open {path}: {exc.strerror}") from exc
        with handle:
            for number, line in enumerate(handle, start=1):
                line = line.rstrip("\n")
                if not line.strip():
                    continue
                if self.regex is None:
                    try:
                        record = json.loads(line)
                    except ValueError as exc:
                        raise PipelineError(f"{path}:{number}: not a JSON line ({exc.msg}): {line[:80]!r}") from exc
                    if not isinstance(record, dict):
                        raise PipelineError(f"{path}:{number}: a JSON line must be an object, got {line[:80]!r}")
                else:
                    match = self.regex.match(line)
                    if match is None:
                        raise PipelineError(f"{path}:{number}: line does not match the pattern: {line[:80]!r}")
                    record = match.groupdict()
                rows.append(record)
                if len(rows) >= GENERATE_ROWS:
                    yield pd.DataFrame(rows)
                    rows = []
        if rows:
            yield pd.DataFrame(rows)
