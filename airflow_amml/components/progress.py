"""Progress components: transform batches."""

from __future__ import annotations

import pandas as pd

from airflow_amml.sdk import AbstractProgress, PipelineError, as_series


class Filter(AbstractProgress):
    """`filter cond=...`: keep the records whose condition is true."""

    def process(self, batch: pd.DataFrame) -> pd.DataFrame:
        return batch[self.condition(batch)]


class Select(AbstractProgress):
    def process(self, batch: pd.DataFrame) -> pd.DataFrame:
        return batch[list(self.params["cols"])]


class Drop(AbstractProgress):
    def process(self, batch: pd.DataFrame) -> pd.DataFrame:
        return batch.drop(columns=list(self.params["cols"]))


class Rename(AbstractProgress):
    def process(self, batch: pd.DataFrame) -> pd.DataFrame:
        return batch.rename(columns={k: v for k, v in self.params.items() if isinstance(v, str)})


class Derive(AbstractProgress):
    """`derive name=expression, ...`: add or replace columns computed per record."""

    def process(self, batch: pd.DataFrame) -> pd.DataFrame:
        values = self.evaluate(batch)
        out = batch.copy()
        for name in self.callback.assigned if self.callback else ():
            out[name] = as_series(values.get(name, self.params.get(name)), batch.index)
        return out


class Stats(AbstractProgress):
    """`stats ops=['mean', 'std']`: one summary record at the end of the stream, or with `window=N` the
    statistics of the last N records added to every record (columns `<col>_<op>`)."""

    def open(self) -> None:
        self.ops = list(self.params["ops"])
        self.window = self.params["window"]
        self.tail: pd.DataFrame | None = None
        self.total: pd.DataFrame | None = None

    def _cols(self, batch: pd.DataFrame) -> list[str]:
        from .scalers import numeric_columns

        return list(self.params["cols"] or numeric_columns(batch))

    def process(self, batch: pd.DataFrame) -> pd.DataFrame | None:
        cols = self._cols(batch)
        if self.window is None:
            values = batch[cols].astype("float64")
            part = pd.DataFrame(
                {
                    "count": values.count(),
                    "mean": values.mean(),
                    "m2": values.var(ddof=0) * values.count(),
                    "min": values.min(),
                    "max": values.max(),
                }
            )
            self.total = part if self.total is None else _merge_moments(self.total, part.fillna(0.0))
            return None
        window = int(self.window)
        joined = batch if self.tail is None else pd.concat([self.tail, batch])
        rolling = joined[cols].astype("float64").rolling(window, min_periods=1)
        out = batch.copy()
        for op in self.ops:
            computed = (
                rolling.count() if op == "count" else getattr(rolling, op)(**({"ddof": 0} if op == "std" else {}))
            )
            for col in cols:
                out[f"{col}_{op}"] = computed[col].to_numpy()[-len(batch) :]
        self.tail = joined.iloc[-(window - 1) :] if window > 1 else None
        return out

    def finish(self) -> pd.DataFrame | None:
        if self.window is not None or self.total is None:
            return None
        t = self.total
        std = (t["m2"] / t["count"]).pow(0.5)
        result = {
            "count": t["count"],
            "mean": t["mean"],
            "sum": t["mean"] * t["count"],
            "min": t["min"],
            "max": t["max"],
            "std": std,
        }
        row = {f"{col}_{op}": float(result[op][col]) for col in t.index for op in self.ops}
        return pd.DataFrame([row])


def _merge_moments(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """Chan et al.'s parallel update of (count, mean, M2): exact and numerically stable across batches."""
    import numpy as np

    n = a["count"] + b["count"]
    delta = b["mean"] - a["mean"]
    safe_n = n.where(n > 0, 1)
    return pd.DataFrame(
        {
            "count": n,
            "mean": a["mean"] + delta * b["count"] / safe_n,
            "m2": a["m2"] + b["m2"] + delta**2 * a["count"] * b["count"] / safe_n,
            "min": np.fmin(a["min"], b["min"]),
            "max": np.fmax(a["max"], b["max"]),
        }
    )


class Window(AbstractProgress):
    """`window size=N, step=S`: one record per window of N consecutive records, with the columns
    `<col>_0 … <col>_<N-1>` (oldest first) of the chosen columns, plus the other fields of the window's
    last record (its timestamp, say). Windows span batch boundaries."""

    def open(self) -> None:
        self.size = int(self.params["size"])
        self.step = int(self.params["step"])
        if self.size < 1 or self.step < 1:
            raise PipelineError(f"`window` needs size ≥ 1 and step ≥ 1; got size={self.size}, step={self.step}")
        self.tail: pd.DataFrame | None = None
        self.seen = 0  # records before the current batch

    def process(self, batch: pd.DataFrame) -> pd.DataFrame | None:
        import numpy as np
        from numpy.lib.stride_tricks import sliding_window_view

        from .scalers import numeric_columns

        joined = batch if self.tail is None else pd.concat([self.tail, batch])
        first = self.seen - (0 if self.tail is None else len(self.tail))  # stream index of joined's first row
        self.seen += len(batch)
        self.tail = joined.iloc[-(self.size - 1) :] if self.size > 1 else None
        if len(joined) < self.size:
            return None
        ends = np.arange(self.size - 1, len(joined))  # row in `joined` where each window ends
        ends = ends[(first + ends - (self.size - 1)) % self.step == 0]
        if not len(ends):
            return None
        cols = list(self.params["cols"] or numeric_columns(batch))
        out = joined.iloc[ends].copy()
        for col in cols:
            windows = sliding_window_view(joined[col].to_numpy(dtype=np.float64), self.size)
            picked = windows[ends - (self.size - 1)]
            for k in range(self.size):
                out[f"{col}_{k}"] = picked[:, k]
        return out
