"""The evaluation gate of continuous training (the MLOps level-1 loop of the paper's Fig. 1).

A new model and the current holder of an alias (`champion`) are compared on the same hold-out records, in
the target's original units: each model sees the records scaled with *its own* stored scaler statistics and
its forecasts are scaled back with them, so models trained on differently scaled data compare fairly.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from airflow_amml.models.errors import ModelDataError

log = logging.getLogger(__name__)


def _rescale(frame: pd.DataFrame, source: dict[str, Any] | None, target: dict[str, Any] | None) -> pd.DataFrame:
    """Records scaled with min-max statistics `source` → scaled with `target` (None: original units)."""
    out = frame.copy()
    src = (source or {}).get("columns", {})
    dst = (target or {}).get("columns", {})
    for col in set(src) | set(dst):
        if col not in out.columns:
            continue
        values = out[col].to_numpy(dtype=np.float64)
        if col in src:
            low, high = src[col]
            values = values * (high - low) + low
        if col in dst:
            low, high = dst[col]
            values = (values - low) / (high - low) if high != low else np.zeros_like(values)
        out[col] = values
    return out


def holdout_mae(
    model: Any, spec: Any, holdout: pd.DataFrame, stream_scaler: dict | None, model_scaler: dict | None
) -> float:
    """One-step MAE of `model` on the hold-out records, in the target's original units."""
    from airflow_amml.models import keras_builder

    t = spec.training
    frame = _rescale(holdout, stream_scaler, model_scaler)
    forecasts = keras_builder.predict(model, spec, frame)[:, 0]
    n = len(frame) - t.window  # forecasts whose next value is in the hold-out
    if n < 1:
        raise ModelDataError(f"the hold-out has {len(frame)} records; {spec.ref} needs more than window={t.window}")
    predicted = forecasts[:n]
    actual = frame[t.target].to_numpy(dtype=np.float64)[t.window : t.window + n]
    stats = (model_scaler or {}).get("columns", {}).get(t.target)
    if stats:  # back to original units
        low, high = stats
        predicted = predicted * (high - low) + low
        actual = actual * (high - low) + low
    return float(np.mean(np.abs(predicted - actual)))


def champion_mae(
    registry: Any, ref: str, holdout: pd.DataFrame, stream_scaler: dict | None
) -> tuple[Any, float] | None:
    """(entry, MAE) of the version `ref` points at, or None when there is no such version yet."""
    from airflow_amml.models import keras_builder
    from airflow_amml.models.spec import parse_model_spec
    from airflow_amml.registry import ModelNotFoundError

    try:
        entry = registry.resolve(ref)
    except ModelNotFoundError:
        return None
    spec = parse_model_spec(registry.get_definition(entry.definition), entry.definition)
    with tempfile.TemporaryDirectory(prefix="amml-champion-") as tmp:
        _, path = registry.download(ref, Path(tmp))
        model = keras_builder.load_model(path, spec)
    return entry, holdout_mae(model, spec, holdout, stream_scaler, entry.scaler or None)
