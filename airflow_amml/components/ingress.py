"""Ingress components: where records come from."""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np
import pandas as pd

from airflow_amml.runtime.component import AbstractIngress

from .catalog import read_source

# Rows generated per frame when no rate is set: large enough to be cheap, small enough to stream.
GENERATE_ROWS = 8192


class NormalSource(AbstractIngress):
    """`normalsource col='val1', mean=0, std=1`: Gaussian values in column `col` (the paper's generator)."""

    def batches(self) -> Iterator[pd.DataFrame]:
        p = self.params
        rng = np.random.default_rng(p["seed"])
        total, rate = int(p["count"]), float(p["rate"])
        produced = 0
        started = time.monotonic()
        while total == 0 or produced < total:
            if rate > 0:
                due = int((time.monotonic() - started) * rate) + 1 - produced
                if due <= 0:
                    time.sleep(min(0.01, 1.0 / rate))
                    yield pd.DataFrame()  # lets the batcher flush what has waited long enough
                    continue
                size = due
            else:
                size = GENERATE_ROWS
            if total:
                size = min(size, total - produced)
            values = rng.normal(float(p["mean"]), float(p["std"]), size)
            yield pd.DataFrame({p["col"]: values})
            produced += size


class CatalogSource(AbstractIngress):
    """`source id="ett"`: a named data set from the catalog, optionally limited to a time window."""

    def batches(self) -> Iterator[pd.DataFrame]:
        p = self.params
        frame = read_source(p["id"], start=p["start"], end=p["end"], cols=p["cols"], settings=self.context.settings)
        if p["limit"] is not None:
            frame = frame.iloc[: int(p["limit"])]
        for offset in range(0, len(frame), GENERATE_ROWS):
            yield frame.iloc[offset : offset + GENERATE_ROWS].reset_index(drop=True)
