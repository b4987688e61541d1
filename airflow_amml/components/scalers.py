"""Scalers: fit on the stream (all of it, or its first `fit_rows` records), then transform.

The fitted statistics travel with every output batch in ``DataFrame.attrs["amml.scaler"]`` so that a
component downstream (``minmax_inverse``, ``train_lstm`` storing them with the model) can use them
without refitting.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd

from airflow_amml.runtime.component import AbstractProgress
from airflow_amml.runtime.errors import PipelineError

SCALER_ATTR = "amml.scaler"


def numeric_columns(batch: pd.DataFrame) -> list[str]:
    return [
        c for c in batch.columns if pd.api.types.is_numeric_dtype(batch[c]) and not pd.api.types.is_bool_dtype(batch[c])
    ]


class _FittingScaler(AbstractProgress):
    """Buffers until fitted, then transforms every batch."""

    kind_name = ""

    def open(self) -> None:
        self.buffer: list[pd.DataFrame] = []
        self.buffered = 0
        self.stats: dict[str, list[float]] | None = None
        if self.params.get("model"):  # use the statistics the model was trained with: never refit on new data
            from .models import stored_scaler

            stored = stored_scaler(self.params["model"], self.context.settings)
            if stored.get("kind") != self.kind_name:
                raise PipelineError(
                    f"`{self.name} model={self.params['model']!r}`: that model was trained with a "
                    f"{stored.get('kind')} scaler, not {self.kind_name}"
                )
            cols = self.params.get("cols")
            self.stats = {c: v for c, v in stored["columns"].items() if not cols or c in cols}

    def process(self, batch: pd.DataFrame) -> pd.DataFrame | None:
        if self.stats is not None:
            return self.transform(batch)
        self.buffer.append(batch)
        self.buffered += len(batch)
        fit_rows = self.params.get("fit_rows")
        if fit_rows is not None and self.buffered >= int(fit_rows):
            released = list(self._fit_and_release(int(fit_rows)))
            return pd.concat(released) if len(released) > 1 else released[0]
        return None

    def finish(self) -> Iterator[pd.DataFrame] | None:
        if self.stats is None and self.buffer:
            return self._fit_and_release(None)
        return None

    def _fit_and_release(self, rows: int | None) -> Iterator[pd.DataFrame]:
        """Fit on the first ``rows`` buffered records (all when None), then the buffered batches, scaled.

        The batches are released one by one, not concatenated: a whole-stream fit holds every record, and
        a copy of all of them would double the peak memory."""
        held, self.buffer = self.buffer, []
        first = held[0]
        cols = self.params.get("cols") or numeric_columns(first)
        missing = [c for c in cols if c not in first.columns]
        if missing:
            raise PipelineError(f"`{self.name}`: no column(s) {missing}; the records have {list(first.columns)}")
        sample, count = [], 0
        for batch in held:
            if rows is not None and count >= rows:
                break
            part = batch if rows is None else batch.iloc[: rows - count]
            sample.append(part[cols])
            count += len(part)
        self.stats = {
            c: self.fit(np.concatenate([part[c].to_numpy(dtype=np.float64) for part in sample])) for c in cols
        }
        del sample
        return (self.transform(batch) for batch in held)

    def transform(self, batch: pd.DataFrame) -> pd.DataFrame:
        assert self.stats is not None
        out = batch.copy(deep=False)  # copy-on-write: the columns replaced below are new, the others shared
        for col, stat in self.stats.items():
            out[col] = self.apply(batch[col].to_numpy(dtype=np.float64), stat)
        out.attrs[SCALER_ATTR] = {"kind": self.kind_name, "columns": self.stats}
        return out

    def fit(self, values: np.ndarray) -> list[float]:
        raise NotImplementedError

    def apply(self, values: np.ndarray, stat: list[float]) -> np.ndarray:
        raise NotImplementedError


class MinMaxScaler(_FittingScaler):
    """`minmax_scaler`: (x - min) / (max - min); a constant column becomes 0."""

    kind_name = "minmax"

    def fit(self, values: np.ndarray) -> list[float]:
        return [float(np.nanmin(values)), float(np.nanmax(values))]

    def apply(self, values: np.ndarray, stat: list[float]) -> np.ndarray:
        low, high = stat
        span = high - low
        return (values - low) / span if span else np.zeros_like(values)


class ZScoreScaler(_FittingScaler):
    """`zscore_scaler`: (x - mean) / std (population std); a constant column becomes 0."""

    kind_name = "zscore"

    def fit(self, values: np.ndarray) -> list[float]:
        return [float(np.nanmean(values)), float(np.nanstd(values))]

    def apply(self, values: np.ndarray, stat: list[float]) -> np.ndarray:
        mean, std = stat
        return (values - mean) / std if std else np.zeros_like(values)


class MinMaxInverse(AbstractProgress):
    """`minmax_inverse`: undo the min-max scaling recorded on the batches by the scaler upstream."""

    def open(self) -> None:
        self.stored = None
        if self.params.get("model"):
            from .models import stored_scaler

            self.stored = stored_scaler(self.params["model"], self.context.settings)

    def process(self, batch: pd.DataFrame) -> pd.DataFrame:
        scaler = batch.attrs.get(SCALER_ATTR) or self.stored
        if not scaler or scaler.get("kind") != "minmax":
            raise PipelineError(
                "`minmax_inverse` found no min-max statistics on its input; put a `minmax_scaler` upstream"
            )
        cols = self.params.get("cols") or [c for c in scaler["columns"] if c in batch.columns]
        out = batch.copy()
        for col in cols:
            if col not in scaler["columns"]:
                raise PipelineError(
                    f"`minmax_inverse`: column `{col}` was not scaled; scaled: {list(scaler['columns'])}"
                )
            low, high = scaler["columns"][col]
            out[col] = out[col].to_numpy(dtype=np.float64) * (high - low) + low
        out.attrs.pop(SCALER_ATTR, None)
        return out
