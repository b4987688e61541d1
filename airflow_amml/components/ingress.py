"""Ingress components: where records come from."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import pandas as pd

from airflow_amml import storage
from airflow_amml.sdk import AbstractIngress, PipelineError
from compiler.value_checks import Re2Pattern

from .catalog import iter_source

# Rows generated per frame when no rate is set: large enough to be cheap, small enough to stream.
GENERATE_ROWS = 8192
# Bounds on what one log line and one batch of log records may hold (a log is untrusted input)
MAX_LINE_CHARS = 1 << 20
LOG_BATCH_CHARS = 16 << 20
MAX_FIELDS = 1024


class NormalSource(AbstractIngress):
    """`normalsource col='val1', mean=0, std=1`: Gaussian values in column `col` (the paper's generator)."""

    def batches(self) -> Iterator[pd.DataFrame]:
        p = self.params
        if not float(p["std"]) >= 0:
            raise PipelineError(f"`normalsource std={p['std']!r}`: a standard deviation is ≥ 0", hint="e.g. std=1")
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
                size = min(due, GENERATE_ROWS)  # a huge rate catching up must not allocate it all at once
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
        for name in ("warmup", "limit"):
            value = p[name]
            if (value is not None or name == "warmup") and (
                isinstance(value, bool) or not isinstance(value, int) or value < 0
            ):  # a run parameter may be null: no limit, but a warm-up is a number
                raise PipelineError(f"`source {name}={value!r}`: expected a whole number ≥ 0", hint=f"e.g. {name}=24")
        start, end = p["start"], p["end"]
        config = self.context.config
        warmup = int(p["warmup"])
        if p["warmup_for"] is not None:  # the model that forecasts from these records: its history before the window
            from .scaler_stats import stored_history

            # `warmup` on top: a detector scoring the first record's forecast error needs the record before too
            warmup += stored_history(p["warmup_for"], config) - 1
        if start is None and end is None and config.data_interval:
            start, end = config.data_interval  # a scheduled/backfilled run reads its window
        from airflow_amml.runtime.executor import Batching

        frames = iter_source(
            p["id"],
            start=start,
            end=end,
            warmup=warmup,
            cols=p["cols"],
            config=config,
            # the executor's batch size: rebatch passes these frames through as they are
            batch_rows=Batching.of(config).rows,
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

    The file is read under the input root (:func:`airflow_amml.storage.input_file`). Patterns run on RE2,
    whose matching time is linear in the line: a pattern such as `(a+)+$` cannot hang the run. A line longer
    than :data:`MAX_LINE_CHARS`, or that cannot be parsed, stops the pipeline with the file and line number
    (nothing is skipped silently); blank lines are ignored."""

    def open(self) -> None:
        self.path = storage.input_file(self.name, self.params["path"], self.context.config)
        self.regex = compile_pattern(self.params["pattern"]) if self.params["format"] == "regex" else None

    def batches(self) -> Iterator[pd.DataFrame]:
        rows: list[dict] = []
        held = 0  # characters of the lines in `rows`: a batch is bounded in bytes as well as in lines
        try:
            handle = open(self.path, encoding="utf-8", errors="replace")
        except OSError as exc:
            raise PipelineError(f"`logsource`: cannot open {self.path}: {exc.strerror}") from exc
        with handle:
            for number, line in enumerate(_bounded_lines(handle, self.path), start=1):
                if not line.strip():
                    continue
                rows.append(self._record(line, number))
                held += len(line)
                if len(rows) >= GENERATE_ROWS or held >= LOG_BATCH_CHARS:
                    yield _frame(rows, self.path, number)
                    rows, held = [], 0
        if rows:
            yield _frame(rows, self.path, number)

    def _record(self, line: str, number: int) -> dict:
        where = f"{self.path}:{number}"
        if self.regex is not None:
            match = self.regex.match(line)
            if match is None:
                raise PipelineError(
                    f"{where}: line does not match the pattern: {line[:80]!r}",
                    hint="fix the pattern (it must match from the start of the line), or the line",
                )
            return match.groupdict()
        try:
            record = json.loads(line)
        except RecursionError:
            raise PipelineError(f"{where}: the JSON line is nested too deeply: {line[:80]!r}") from None
        except ValueError as exc:
            raise PipelineError(f"{where}: not a JSON line ({getattr(exc, 'msg', exc)}): {line[:80]!r}") from exc
        if not isinstance(record, dict):
            raise PipelineError(f"{where}: a JSON line must be an object, got {line[:80]!r}")
        if len(record) > MAX_FIELDS:
            raise PipelineError(f"{where}: a record has at most {MAX_FIELDS} fields, this one {len(record)}")
        return record


def compile_pattern(pattern: object) -> Any:
    """``pattern`` compiled by RE2 (linear-time matching), with at least one named group."""
    if not isinstance(pattern, str) or not pattern:
        raise PipelineError(
            "`logsource format='regex'` needs `pattern` with named groups",
            hint="e.g. pattern='(?P<ts>\\S+) (?P<level>\\w+) (?P<msg>.*)'",
        )
    regex, problem = Re2Pattern.compile(pattern)  # what `amml lint` checks in a constant pattern
    if problem is not None:
        raise PipelineError(f"`logsource pattern={pattern!r}`: {problem[0]}", hint=problem[1])
    return regex


def _bounded_lines(handle: TextIO, path: Path) -> Iterator[str]:
    """The file's lines without their line ends, each read with a bound: a file without line breaks
    (or /dev/zero behind a link) cannot fill memory."""
    number = 0
    while line := handle.readline(MAX_LINE_CHARS + 1):
        number += 1
        if len(line) > MAX_LINE_CHARS and not line.endswith("\n"):
            raise PipelineError(
                f"{path}:{number}: a line has more than {MAX_LINE_CHARS:,} characters",
                hint="split the file into lines (one record per line)",
            )
        yield line.rstrip("\n")


def _frame(rows: list[dict], path: Path, number: int) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    if len(frame.columns) > MAX_FIELDS:  # records with ever new field names: the width of a batch is bounded
        raise PipelineError(
            f"{path}: the records up to line {number} have {len(frame.columns)} different fields, "
            f"more than {MAX_FIELDS}",
            hint="log a fixed set of fields per line",
        )
    return frame
