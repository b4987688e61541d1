"""Sinks to files: `csv_sink` and `parquet_sink`.

A sink's `path` comes from the pipeline (or a trigger param), so it is checked first: files only under the
output root (:func:`airflow_amml.storage.output_file`). Both write to a temporary file beside the target and
rename it into place when the stream ends, so a failed run never leaves a truncated file behind.
"""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path

import pandas as pd

from airflow_amml import storage
from airflow_amml.sdk import AbstractEgress, PipelineError


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


class CsvSink(AbstractEgress):
    """`csv_sink path=...`: write to a CSV file under the output root, atomically (a temporary file renamed
    at the end; in append mode the old file is copied into it first, streamed, not read into memory)."""

    def open(self) -> None:
        self.path = storage.output_file(self.name, self.params["path"], ".csv", self.context.config)
        self.tmp: Path | None = None  # made by the first write: a run failing before it leaves no file
        self.header = True

    def write(self, batch: pd.DataFrame) -> None:
        batch.to_csv(self._temporary(), mode="a", header=self.header, index=False)
        self.header = False

    def finish(self) -> None:
        self._temporary().replace(self.path)

    def close(self) -> None:
        if self.tmp is not None:
            self.tmp.unlink(missing_ok=True)

    def _temporary(self) -> Path:
        if self.tmp is None:
            self.tmp = temporary_beside(self.name, self.path)
            if self.params["mode"] == "append" and self.path.is_file():
                shutil.copyfile(self.path, self.tmp)
                self.header = self.path.stat().st_size == 0
        return self.tmp


class ParquetSink(AbstractEgress):
    """`parquet_sink path=...`: written to a temporary file, renamed into place when the stream ends, so a
    failed run never leaves a truncated file behind."""

    def open(self) -> None:
        self.path = storage.output_file(self.name, self.params["path"], ".parquet", self.context.config)
        self.tmp: Path | None = None  # made by the first write: a run failing before it leaves no file
        self.writer = None

    def write(self, batch: pd.DataFrame) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if self.writer is None:
            table = pa.Table.from_pandas(batch, preserve_index=False)
            self.tmp = temporary_beside(self.name, self.path)
            self.writer = pq.ParquetWriter(self.tmp, table.schema)
        else:
            table = pa.Table.from_pandas(batch, schema=self.writer.schema, preserve_index=False)
        self.writer.write_table(table)

    def finish(self) -> None:
        if self.writer is None:  # an empty stream still produces a (schema-less) file
            self.tmp = temporary_beside(self.name, self.path)
            pd.DataFrame().to_parquet(self.tmp)
        else:
            self.writer.close()
            self.writer = None
        self.tmp.replace(self.path)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self.tmp is not None:
            self.tmp.unlink(missing_ok=True)
