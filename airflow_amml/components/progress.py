"""Progress components: transform batches."""

from __future__ import annotations

import pandas as pd

from airflow_amml.runtime.component import AbstractProgress
from compiler import vm
from compiler.vm import Col


def _as_series(value: object, n: int, index: pd.Index) -> pd.Series:
    values = vm.as_pylist(value, n) if not isinstance(value, Col) else None
    if isinstance(value, Col):
        if value.mask is None:
            return pd.Series(value.values, index=index)
        return pd.Series(value.to_pylist(), index=index)
    return pd.Series(values, index=index)


class Filter(AbstractProgress):
    """`filter cond=...`: keep the records whose condition is true."""

    def process(self, batch: pd.DataFrame) -> pd.DataFrame:
        keep = vm.as_mask(self.evaluate(batch)["cond"], len(batch))
        return batch[keep]


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
            out[name] = _as_series(values.get(name, self.params.get(name)), len(batch), batch.index)
        return out
