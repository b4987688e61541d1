"""Scalers: fit on the stream (all of it, or its first `fit_rows` records), then transform.

The fitted statistics travel with every output batch in ``DataFrame.attrs[SCALER_ATTR]`` (see
``scaler_stats.py``) so that a component downstream (``minmax_inverse``, ``train_lstm`` storing them with the
model) can use them without refitting.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd

from airflow_amml.sdk import AbstractProgress, PipelineError

from .scaler_stats import SCALER_ATTR, stored_scaler


def numeric_columns(batch: pd.DataFrame) -> list[str]:
    return [
        c for c in batch.columns if pd.api.types.is_numeric_dtype(batch[c]) and not pd.api.types.is_bool_dtype(batch[c])
    ]


class _FittingScaler(AbstractProgress):
    """Buffers until fitted, then transforms every batch.

    The fit is incremental: each batch's summary (e.g. min and max per column) is folded into the running
    one as the batch arrives, so at the end of the stream only the batches themselves remain to be scaled
    and released, one by one."""

    kind_name = ""

    def open(self) -> None:
        self.buffer: list[pd.DataFrame] = []
        self.cols: list[str] | None = None
        self.summaries: dict[str, tuple[float, ...]] = {}
        self.fitted_rows = 0
        self.stats: dict[str, list[float]] | None = None
        if self.params.get("model"):  # use the statistics the model was trained with: never refit on new data
            stored = stored_scaler(self.params["model"], self.context.config)
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
        fit_rows = self.params.get("fit_rows")
        self._fold(batch if fit_rows is None else batch.iloc[: max(0, int(fit_rows) - self.fitted_rows)])
        self.buffer.append(batch)
        if fit_rows is not None and self.fitted_rows >= int(fit_rows):
            released = list(self._release())
            return pd.concat(released) if len(released) > 1 else released[0]
        return None

    def finish(self) -> Iterator[pd.DataFrame] | None:
        if self.stats is None and self.buffer:
            return self._release()
        return None

    def _fold(self, part: pd.DataFrame) -> None:
        if self.cols is None:
            self.cols = list(self.params.get("cols") or numeric_columns(part))
            missing = [c for c in self.cols if c not in part.columns]
            if missing:
                raise PipelineError(f"`{self.name}`: no column(s) {missing}; the records have {list(part.columns)}")
        if not len(part):
            return
        for col in self.cols:
            summary = self.summarize(part[col].to_numpy(dtype=np.float64))
            seen = self.summaries.get(col)
            self.summaries[col] = summary if seen is None else self.combine(seen, summary)
        self.fitted_rows += len(part)

    def _release(self) -> Iterator[pd.DataFrame]:
        """Fix the statistics, then the buffered batches, scaled. They are released one by one, not
        concatenated: a whole-stream fit holds every record, and a copy of all of them would double the
        peak memory."""
        assert self.cols is not None
        self.stats = {c: self.finalize(self.summaries[c]) for c in self.cols}
        held, self.buffer = self.buffer, []
        return (self.transform(batch) for batch in held)

    def transform(self, batch: pd.DataFrame) -> pd.DataFrame:
        assert self.stats is not None
        out = batch.copy(deep=False)  # copy-on-write: the columns replaced below are new, the others shared
        for col, stat in self.stats.items():
            out[col] = self.apply(batch[col].to_numpy(dtype=np.float64), stat)
        out.attrs[SCALER_ATTR] = {"kind": self.kind_name, "columns": self.stats}
        return out

    def summarize(self, values: np.ndarray) -> tuple[float, ...]:
        """What the fit needs to know of some values (NaN ignored)."""
        raise NotImplementedError

    def combine(self, a: tuple[float, ...], b: tuple[float, ...]) -> tuple[float, ...]:
        """The summary of two sets of values, from theirs."""
        raise NotImplementedError

    def finalize(self, summary: tuple[float, ...]) -> list[float]:
        """The statistics stored with the scaler (and with a model trained on its output)."""
        raise NotImplementedError

    def apply(self, values: np.ndarray, stat: list[float]) -> np.ndarray:
        raise NotImplementedError


class MinMaxScaler(_FittingScaler):
    """`minmax_scaler`: (x - min) / (max - min); a constant column becomes 0."""

    kind_name = "minmax"

    def summarize(self, values: np.ndarray) -> tuple[float, ...]:
        finite = values[~np.isnan(values)]
        return (float(finite.min()), float(finite.max())) if len(finite) else (np.nan, np.nan)

    def combine(self, a: tuple[float, ...], b: tuple[float, ...]) -> tuple[float, ...]:
        return (float(np.fmin(a[0], b[0])), float(np.fmax(a[1], b[1])))

    def finalize(self, summary: tuple[float, ...]) -> list[float]:
        return [summary[0], summary[1]]

    def apply(self, values: np.ndarray, stat: list[float]) -> np.ndarray:
        low, high = stat
        span = high - low
        if not span:
            return np.zeros_like(values)
        out = np.subtract(values, low)
        out /= span
        return out


class ZScoreScaler(_FittingScaler):
    """`zscore_scaler`: (x - mean) / std (population std); a constant column becomes 0."""

    kind_name = "zscore"

    def summarize(self, values: np.ndarray) -> tuple[float, ...]:
        finite = values[~np.isnan(values)]
        if not len(finite):
            return (0.0, 0.0, 0.0)
        mean = float(finite.mean())
        return (float(len(finite)), mean, float(np.square(finite - mean).sum()))

    def combine(self, a: tuple[float, ...], b: tuple[float, ...]) -> tuple[float, ...]:
        # Chan et al.'s pairwise update of count, mean and sum of squared deviations: stable for long streams
        (n_a, mean_a, m2_a), (n_b, mean_b, m2_b) = a, b
        n = n_a + n_b
        if not n:
            return a
        delta = mean_b - mean_a
        return (n, mean_a + delta * n_b / n, m2_a + m2_b + delta * delta * n_a * n_b / n)

    def finalize(self, summary: tuple[float, ...]) -> list[float]:
        n, mean, m2 = summary
        return [mean, float(np.sqrt(m2 / n))] if n else [np.nan, np.nan]

    def apply(self, values: np.ndarray, stat: list[float]) -> np.ndarray:
        mean, std = stat
        if not std:
            return np.zeros_like(values)
        out = np.subtract(values, mean)
        out /= std
        return out


class _InverseScaler(AbstractProgress):
    """Undo the scaling recorded on the batches by the scaler upstream (or stored with a model version):
    every scaled column present, or `cols`; `lstm`'s forecast columns are recorded with the target's
    statistics, so they come back in the target's units."""

    kind_name = ""
    scaler_name = ""

    def open(self) -> None:
        self.stored = None
        if self.params.get("model"):
            self.stored = stored_scaler(self.params["model"], self.context.config)

    def process(self, batch: pd.DataFrame) -> pd.DataFrame:
        scaler = batch.attrs.get(SCALER_ATTR) or self.stored
        if not scaler or scaler.get("kind") != self.kind_name:
            found = f" (it has {scaler.get('kind')} statistics)" if scaler else ""
            raise PipelineError(
                f"`{self.name}` found no {self.kind_name} statistics on its input{found}; "
                f"put a `{self.scaler_name}` upstream",
                hint=f"undo each scaler with its own inverse: `{self.scaler_name}` → `{self.name}`",
            )
        cols = self.params.get("cols") or [c for c in scaler["columns"] if c in batch.columns]
        out = batch.copy()
        for col in cols:
            if col not in scaler["columns"]:
                raise PipelineError(f"`{self.name}`: column `{col}` was not scaled; scaled: {list(scaler['columns'])}")
            out[col] = self.unapply(out[col].to_numpy(dtype=np.float64), scaler["columns"][col])
        out.attrs.pop(SCALER_ATTR, None)
        return out

    def unapply(self, values: np.ndarray, stat: list[float]) -> np.ndarray:
        raise NotImplementedError


class MinMaxInverse(_InverseScaler):
    """`minmax_inverse`: x * (max - min) + min."""

    kind_name = "minmax"
    scaler_name = "minmax_scaler"

    def unapply(self, values: np.ndarray, stat: list[float]) -> np.ndarray:
        low, high = stat
        return values * (high - low) + low


class ZScoreInverse(_InverseScaler):
    """`zscore_inverse`: x * std + mean (a constant column, scaled to 0, comes back as its mean)."""

    kind_name = "zscore"
    scaler_name = "zscore_scaler"

    def unapply(self, values: np.ndarray, stat: list[float]) -> np.ndarray:
        mean, std = stat
        return values * std + mean
