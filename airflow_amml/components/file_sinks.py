"""Sinks to files: `csv_sink` and `parquet_sink`.

A sink's `path` comes from the pipeline (or a trigger param), so it is checked first: files only under the
output root (:func:`airflow_amml.storage.output_file`). Both write to a temporary file beside the target and
rename it into place when the stream ends, so a failed run never leaves a truncated file behind. Each logs
at the end how many rows it wrote, and where.

In a fanned-out run each item has its own file (``out.csv`` → ``out.<item slug>.csv``) and every row the
item's column (:mod:`.item_column`, which says why not one shared file).
"""

from __future__ import annotations

import csv
import logging
import os
import secrets
import shutil
from pathlib import Path

import pandas as pd

from airflow_amml import storage
from airflow_amml.sdk import AbstractEgress, PipelineError

from .item_column import item_path, with_item

log = logging.getLogger(__name__)
REWRITE_CHUNK_ROWS = 65_536  # rows of an appended-to CSV file rewritten at once under a wider header


def temporary_beside(component: str, path: Path) -> Path:
    """A new empty file next to ``path``, to be renamed over it at the end (so a failed run never leaves a
    truncated file). Created exclusively: never an existing file, nor a link planted under that name."""
    tmp = path.with_name(f"{path.name}.{secrets.token_hex(4)}.part")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    except OSError as exc:
        raise PipelineError(
            f"`{component}`: cannot write in {path.parent}: {exc.strerror or exc}",
            hint="choose a path in a folder this process may write",
        ) from exc
    return tmp


def log_written(component: str, rows: int, path: Path, how: str = "") -> None:
    log.info("%s: wrote %s row%s to %s%s", component, f"{rows:,}", "" if rows == 1 else "s", path, how)


class CsvSink(AbstractEgress):
    """`csv_sink path=...`: write to a CSV file under the output root, atomically (a temporary file renamed
    at the end; in append mode the old file is copied into it first, streamed, not read into memory).

    Appending records with columns the file lacks (a pipeline that gained one, e.g. `lstm`'s
    `model_version`) widens the file's header, and its earlier rows are left empty there; the columns of
    every row then line up under the header (records that lack one of its columns leave it empty)."""

    def open(self) -> None:
        config = self.context.config
        self.path = storage.output_file(self.name, self.params["path"], ".csv", config)
        if config.item is not None:  # the item's own file, checked as the path given is
            self.path = storage.output_file(self.name, str(item_path(self.path, config)), ".csv", config)
        self.tmp: Path | None = None  # made by the first write: a run failing before it leaves no file
        self.header = True
        self.columns: list[str] | None = None  # the file's header, once the first write has decided it
        self.written = 0

    def progress_note(self) -> str | None:
        return f"file {self.path.name}"

    def write(self, batch: pd.DataFrame) -> None:
        batch = with_item(self.name, batch, self.context.config)
        tmp = self._temporary([str(c) for c in batch.columns])
        if [str(c) for c in batch.columns] != self.columns:
            batch = batch.set_axis([str(c) for c in batch.columns], axis=1).reindex(columns=self.columns)
        batch.to_csv(tmp, mode="a", header=self.header, index=False)
        self.header = False
        self.written += len(batch)

    def finish(self) -> None:
        self._temporary(None).replace(self.path)
        log_written(self.name, self.written, self.path, " (appended)" if self.params["mode"] == "append" else "")

    def close(self) -> None:
        if self.tmp is not None:
            self.tmp.unlink(missing_ok=True)

    def _temporary(self, columns: list[str] | None) -> Path:
        """The temporary file, made at the first call: in append mode with the old file's rows, under a
        header that also has the records' ``columns`` (None: no records)."""
        if self.tmp is None:
            self.tmp = temporary_beside(self.name, self.path)
            self.columns = columns
            if self.params["mode"] == "append" and self.path.is_file() and self.path.stat().st_size:
                old = csv_header(self.path)
                added = [c for c in columns or () if c not in old]
                self.columns = old + added
                if added:
                    rewrite_under(self.path, self.tmp, self.columns)
                    log.warning(
                        "%s: the records have column(s) %s that %s has not: added to its header (its earlier "
                        "rows are empty there)",
                        self.name,
                        ", ".join(added),
                        self.path.name,
                    )
                else:
                    shutil.copyfile(self.path, self.tmp)
                self.header = False
        return self.tmp


def csv_header(path: Path) -> list[str]:
    """The column names in the first line of a CSV file."""
    with path.open(newline="") as file:
        return next(csv.reader(file), [])


def rewrite_under(source: Path, target: Path, columns: list[str]) -> None:
    """Copy a CSV file's rows into ``target`` under the header ``columns`` (its own, and more, left empty),
    a chunk at a time; every value kept as the text it was."""
    chunks = pd.read_csv(source, dtype=str, keep_default_na=False, na_filter=False, chunksize=REWRITE_CHUNK_ROWS)
    header = True
    for chunk in chunks:
        chunk.reindex(columns=columns).to_csv(target, mode="a", header=header, index=False)
        header = False
    if header:  # a file with a header and no rows
        pd.DataFrame(columns=columns).to_csv(target, mode="a", index=False)


class ParquetSink(AbstractEgress):
    """`parquet_sink path=...`: written to a temporary file, renamed into place when the stream ends, so a
    failed run never leaves a truncated file behind."""

    def open(self) -> None:
        config = self.context.config
        self.path = storage.output_file(self.name, self.params["path"], ".parquet", config)
        if config.item is not None:  # the item's own file, checked as the path given is
            self.path = storage.output_file(self.name, str(item_path(self.path, config)), ".parquet", config)
        self.tmp: Path | None = None  # made by the first write: a run failing before it leaves no file
        self.writer = None
        self.written = 0

    def progress_note(self) -> str | None:
        return f"file {self.path.name}"

    def write(self, batch: pd.DataFrame) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        batch = with_item(self.name, batch, self.context.config)
        if self.writer is None:
            table = pa.Table.from_pandas(batch, preserve_index=False)
            self.tmp = temporary_beside(self.name, self.path)
            self.writer = pq.ParquetWriter(self.tmp, table.schema)
        else:
            table = pa.Table.from_pandas(batch, schema=self.writer.schema, preserve_index=False)
        self.writer.write_table(table)
        self.written += len(batch)

    def finish(self) -> None:
        if self.writer is None:  # an empty stream still produces a (schema-less) file
            self.tmp = temporary_beside(self.name, self.path)
            pd.DataFrame().to_parquet(self.tmp)
        else:
            self.writer.close()
            self.writer = None
        self.tmp.replace(self.path)
        log_written(self.name, self.written, self.path)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self.tmp is not None:
            self.tmp.unlink(missing_ok=True)
