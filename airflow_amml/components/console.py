"""`print`: records as a readable table on standard output."""

from __future__ import annotations

import logging
import sys

import pandas as pd

from airflow_amml.sdk import AbstractEgress, PipelineError

from .column_params import column_names, did_you_mean_columns

log = logging.getLogger(__name__)


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

    def finish(self) -> None:
        rows = "1 row" if self.printed == 1 else f"{self.printed:,} rows"
        log.info("%s: wrote %s to standard output", self.name, rows)

    def _known(self, batch: pd.DataFrame, cols: list[str]) -> list[str]:
        have = [str(c) for c in batch.columns]
        missing = [c for c in cols if c not in have]
        if missing:
            raise PipelineError(
                f"`print cols=...`: the records have no column(s) {missing}; they have {have}",
                hint=did_you_mean_columns(missing, have) or "name columns the records have",
            )
        return cols
