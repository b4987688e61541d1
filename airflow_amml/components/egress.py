"""Egress components: where records end."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from airflow_amml.runtime.component import AbstractEgress


class Print(AbstractEgress):
    """`print`: records as a readable table on standard output."""

    def open(self) -> None:
        self.printed = 0

    def write(self, batch: pd.DataFrame) -> None:
        limit = self.params["limit"]
        if limit is not None:
            batch = batch.iloc[: max(0, int(limit) - self.printed)]
        if self.params["cols"]:
            batch = batch[list(self.params["cols"])]
        if len(batch):
            # fixed column widths, so that rows printed batch by batch still line up under the header
            text = batch.to_string(
                index=False, header=self.printed == 0, col_space=12, float_format=lambda v: f"{v:.6g}"
            )
            sys.stdout.write(text + "\n")
            sys.stdout.flush()
            self.printed += len(batch)


class CsvSink(AbstractEgress):
    """`csv_sink path=...`: write to a CSV file, atomically (a temp file renamed at the end)."""

    def open(self) -> None:
        self.path = Path(self.params["path"])
        self.tmp = self.path.with_name(self.path.name + ".part")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.params["mode"] == "append" and self.path.exists():
            self.tmp.write_bytes(self.path.read_bytes())
            self.header = False
        else:
            self.tmp.write_text("")
            self.header = True

    def write(self, batch: pd.DataFrame) -> None:
        batch.to_csv(self.tmp, mode="a", header=self.header, index=False)
        self.header = False

    def finish(self) -> None:
        self.tmp.replace(self.path)

    def close(self) -> None:
        self.tmp.unlink(missing_ok=True)
