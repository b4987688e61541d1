"""Egress components: where records end."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pandas as pd

from airflow_amml import storage
from airflow_amml.sdk import AbstractEgress, PipelineError

from .sinks import column_names, temporary_beside


class Print(AbstractEgress):
    """`print`: records as a readable table on standard output."""

    def open(self) -> None:
        self.printed = 0
        self.cols = column_names(self.name, "cols", self.params["cols"])

    def write(self, batch: pd.DataFrame) -> None:
        limit = self.params["limit"]
        if limit is not None:
            batch = batch.iloc[: max(0, int(limit) - self.printed)]
        if self.cols:
            batch = batch[self._known(batch, self.cols)]
        if len(batch):
            # fixed column widths, so that rows printed batch by batch still line up under the header
            text = batch.to_string(
                index=False, header=self.printed == 0, col_space=12, float_format=lambda v: f"{v:.6g}"
            )
            sys.stdout.write(text + "\n")
            sys.stdout.flush()
            self.printed += len(batch)

    def _known(self, batch: pd.DataFrame, cols: list[str]) -> list[str]:
        from compiler.errors import did_you_mean

        have = [str(c) for c in batch.columns]
        missing = [c for c in cols if c not in have]
        if missing:
            hint = " ".join(h for h in (did_you_mean(c, have) for c in missing) if h)
            raise PipelineError(
                f"`print cols=...`: the records have no column(s) {missing}; they have {have}",
                hint=hint or "name columns the records have",
            )
        return cols


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
