"""`difference`: each column's change since an earlier record — ``x[t] - x[t - lag]`` — as new columns.

The lag is a number of records, or a duration on a time column (``lag='1D'``: the change since the latest
record at least a day older, whatever the sampling). A detector that scores these columns sees jumps (lag 1)
and departures from yesterday's or last week's shape (``'1D'``, ``'7D'``) instead of the raw level. Causal
and batch-independent: the records the lag reaches back to are carried from batch to batch.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from airflow_amml.sdk import AbstractProgress, PipelineError
from compiler.value_checks import DURATION_EXAMPLES, duration_seconds

from .column_params import record_times
from .scalers import numeric_columns

# Records carried for a duration lag (a week of 1-second data would be 604,800): memory stays bounded
MAX_CARRIED_RECORDS = 1_000_000


class Difference(AbstractProgress):
    def open(self) -> None:
        lag = self.params["lag"]
        self.records: int | None = None
        self.duration: np.timedelta64 | None = None
        if isinstance(lag, int) and not isinstance(lag, bool):
            if not 1 <= lag <= MAX_CARRIED_RECORDS:
                raise PipelineError(
                    f"`difference lag={lag}`: expected 1 to {MAX_CARRIED_RECORDS:,} records",
                    hint="lag=1 is the change since the previous record",
                )
            self.records = lag
        else:
            seconds = duration_seconds(lag)
            if not seconds:
                raise PipelineError(
                    f"`difference lag={lag!r}`: expected a number of records or a positive duration",
                    hint=f"e.g. lag=1, or a duration such as {DURATION_EXAMPLES} (a duration needs time='...')",
                )
            self.duration = np.timedelta64(seconds, "s").astype("timedelta64[ns]")
        self.cols: list[str] | None = list(self.params["cols"]) if self.params["cols"] is not None else None
        self.time_col: str | None = self.params["time"]
        self.suffix = str(self.params["suffix"])
        self.tail_values: np.ndarray | None = None  # (records, columns): what the lag may still reach
        self.tail_times = np.empty(0, dtype="datetime64[ns]")

    def process(self, batch: pd.DataFrame) -> pd.DataFrame:
        cols = self._columns(batch)
        if not len(batch):  # nothing to difference, nothing to carry
            return batch.assign(**{f"{col}{self.suffix}": np.empty(0) for col in cols})
        values = batch[cols].to_numpy(dtype=np.float64, na_value=np.nan)
        if self.tail_values is None:
            self.tail_values = np.empty((0, len(cols)))
        joined = np.concatenate([self.tail_values, values])
        start = len(self.tail_values)
        if self.records is not None:
            back = np.arange(start, len(joined)) - self.records
            self.tail_values = joined[-self.records :]
        else:
            # A clock that steps back (NAB's machine temperature has one) is read as standing still: the
            # running maximum keeps the times sorted, so each record still finds the records before it.
            times = np.concatenate([self.tail_times, record_times("difference", batch, self.time_col)])
            times[start:] = np.maximum.accumulate(
                np.maximum(times[start:], times[start - 1] if start else times[start])
            )
            # the latest record at least `lag` older than each of this batch's records
            back = np.searchsorted(times, times[start:] - self.duration, side="right") - 1
            keep = max(0, int(np.searchsorted(times, times[-1] - self.duration, side="right")) - 1)
            if len(times) - keep > MAX_CARRIED_RECORDS:
                raise PipelineError(
                    f"`difference lag={self.params['lag']!r}`: the lag spans more than {MAX_CARRIED_RECORDS:,} records",
                    hint="use a shorter lag, or fewer records per unit of time",
                )
            self.tail_values, self.tail_times = joined[keep:], times[keep:]
        earlier = np.where((back >= 0)[:, None], joined[np.maximum(back, 0)], np.nan)
        out = batch.copy()
        for i, col in enumerate(cols):
            out[f"{col}{self.suffix}"] = values[:, i] - earlier[:, i]
        return out

    def _columns(self, batch: pd.DataFrame) -> list[str]:
        if self.cols is None:
            time = self.time_col
            self.cols = [c for c in numeric_columns(batch) if c != time]
        missing = [c for c in self.cols if c not in batch.columns]
        if missing:
            raise PipelineError(
                f"`difference`: no column(s) {missing}; the records have {list(batch.columns)}",
                hint="name numeric columns in cols=[...]",
            )
        return self.cols
