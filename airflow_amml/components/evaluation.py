"""The evaluation gate of continuous training (the MLOps level-1 loop of the paper's Fig. 1).

A new model and the current holder of an alias (`champion`) are compared on the same hold-out records, in
the target's original units: each model sees the records scaled with *its own* stored scaler statistics and
its forecasts are scaled back with them, so models trained on differently scaled data compare fairly.

Every hold-out record is a label: a forecast reads the records before the hold-out (the end of the training
records, ``context``) as far back as its history needs, so a model whose forecasts read a long history (a
seasonal model reads 840 hours) is scored on as many records as one that reads 24, and a new model and the
champion are scored on the *same* forecasts even when their histories or horizons differ.

A horizon model (``horizon: H``) is judged on every step, as the long-horizon literature (Informer, DLinear,
PatchTST) and darts' ``backtest`` do: the forecasts made at every origin whose next H values are in the
hold-out, the error of step ``s`` being the forecast for ``s`` records ahead against the value there. The
gate compares the mean over the steps both forecast.
"""

from __future__ import annotations

import logging
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from airflow_amml.models.errors import ModelDataError

log = logging.getLogger(__name__)

SCALER_KINDS = ("minmax", "zscore")  # the statistics these helpers can apply and undo


def to_original(values: np.ndarray, kind: str, stats: list[float]) -> np.ndarray:
    """Scaled values back in original units: min-max ``[low, high]`` as ``v * (high - low) + low``, z-score
    ``[mean, std]`` as ``v * std + mean``."""
    a, b = stats
    return values * (b - a) + a if kind == "minmax" else values * b + a


def to_scaled(values: np.ndarray, kind: str, stats: list[float]) -> np.ndarray:
    """Original values scaled as the scaler of `kind` does (a constant column, span or std 0, becomes 0)."""
    a, b = stats
    spread = (b - a) if kind == "minmax" else b
    return (values - a) / spread if spread else np.zeros_like(values)


def _rescale(frame: pd.DataFrame, source: dict[str, Any] | None, target: dict[str, Any] | None) -> pd.DataFrame:
    """Records scaled with the statistics `source` → scaled with `target` (None: original units)."""
    out = frame.copy()
    src_kind, dst_kind = (source or {}).get("kind", "minmax"), (target or {}).get("kind", "minmax")
    src = (source or {}).get("columns", {})
    dst = (target or {}).get("columns", {})
    for col in set(src) | set(dst):
        if col not in out.columns:
            continue
        values = out[col].to_numpy(dtype=np.float64)
        if col in src:
            values = to_original(values, src_kind, src[col])
        if col in dst:
            values = to_scaled(values, dst_kind, dst[col])
        out[col] = values
    return out


@dataclass(frozen=True)
class HoldoutErrors:
    """A model's errors on the hold-out, per step ahead (index ``s - 1`` for step ``s``), each the mean over
    the same ``windows`` forecasts: in original units (the model's scaler undone; the stream's units when
    the model has no statistics for its target), and in the model's scaled units when it has."""

    windows: int
    mae: np.ndarray
    mse: np.ndarray
    mae_scaled: np.ndarray | None = None
    mse_scaled: np.ndarray | None = None
    # repeat-the-last-value's errors on the same forecasts (the naive baseline of darts and statsforecast)
    last_mae: np.ndarray | None = None
    last_mse: np.ndarray | None = None
    # each forecast's absolute error per step, [windows, H], in the model's (scaled) units: for the intervals
    abs_errors: np.ndarray | None = None

    @property
    def horizon(self) -> int:
        return len(self.mae)

    def mean_mae(self, steps: int | None = None) -> float:
        """The MAE averaged over steps 1 … `steps` (default: all): over every window and step."""
        return float(np.mean(self.mae[:steps]))


def forecast_origins(records: int, labels_from: int, history: int, horizon: int) -> np.ndarray:
    """The records (indices) forecasts are made at when the labels start at record `labels_from`: each origin
    has its `history` records (it is at least ``history - 1``), and its next `horizon` records are labels."""
    return np.arange(max(labels_from - 1, history - 1), records - horizon)


def holdout_errors(
    model: Any,
    spec: Any,
    records: pd.DataFrame,
    stream_scaler: dict | None,
    model_scaler: dict | None,
    origins: np.ndarray | None = None,
) -> HoldoutErrors:
    """The per-step MAE and MSE of `model` on the forecasts made at `origins` (indices into `records`, each
    with its history and all ``horizon`` next records among them). Default: every origin of the records alone
    (the first is record ``history - 1``)."""
    from airflow_amml.models import keras_builder

    t = spec.training
    frame = _rescale(records, stream_scaler, model_scaler)
    if origins is None:
        origins = forecast_origins(len(frame), t.history, t.history, t.horizon)
    if len(origins) < 1:
        needs = "window" if t.history == t.window else "history (window + the seasonal means' reach)"
        raise ModelDataError(
            f"the hold-out has {len(frame)} records; {spec.ref} needs more than {needs} + horizon - 1 = "
            f"{t.history + t.horizon - 1}"
        )
    # predict's row i is the forecast made at record history - 1 + i
    predicted = keras_builder.predict(model, spec, frame)[origins - (t.history - 1)]
    target = frame[t.target].to_numpy(dtype=np.float64)
    actual = target[origins[:, None] + np.arange(1, t.horizon + 1)[None, :]]
    last = np.repeat(target[origins][:, None], t.horizon, axis=1)  # repeat-last, from the same origins
    m = len(origins)
    kind = (model_scaler or {}).get("kind", "minmax")
    stats = (model_scaler or {}).get("columns", {}).get(t.target)
    scaled = predicted - actual
    if not stats or kind not in SCALER_KINDS:
        naive = last - actual
        mae, mse = _mean_errors(scaled)
        return HoldoutErrors(m, mae, mse, None, None, *_mean_errors(naive), np.abs(scaled))
    original = to_original(actual, kind, stats)
    error = to_original(predicted, kind, stats) - original
    naive = to_original(last, kind, stats) - original
    return HoldoutErrors(
        m, *_mean_errors(error), *_mean_errors(scaled), *_mean_errors(naive), abs_errors=np.abs(scaled)
    )


def _mean_errors(error: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(MAE, MSE) of each step: the means over the forecasts (rows) of ``error``."""
    return np.abs(error).mean(axis=0), np.square(error).mean(axis=0)


def reported_steps(horizon: int) -> list[int]:
    """The steps whose errors a version stores (the registry keeps at most 100 metrics): 1, 2, 4, 8, … and
    the last, as the papers' tables pick a few horizons."""
    steps = [1 << k for k in range(horizon.bit_length()) if 1 << k <= horizon]
    return steps if steps[-1] == horizon else [*steps, horizon]


def holdout_metrics(errors: HoldoutErrors) -> dict[str, float]:
    """The registry's metrics of hold-out errors: ``holdout_mae``/``holdout_mse`` (original units, mean over
    the steps), ``holdout_mae_scaled``/``holdout_mse_scaled`` (the model's scaled units, as the papers
    report them), ``holdout_mae_vs_last``/``holdout_mse_vs_last`` (over repeat-the-last-value's on the same
    forecasts: below 1 beats it); a horizon model adds the first four for steps 1, 2, 4, …, H
    (``holdout_mae_h24``)."""
    series = {"mae": errors.mae, "mse": errors.mse}
    if errors.mae_scaled is not None and errors.mse_scaled is not None:
        series |= {"mae_scaled": errors.mae_scaled, "mse_scaled": errors.mse_scaled}
    metrics = {f"holdout_{name}": float(np.mean(values)) for name, values in series.items()}
    for name, last in (("mae", errors.last_mae), ("mse", errors.last_mse)):
        if last is not None and np.mean(last) > 0:  # below 1: better than repeating the last value
            metrics[f"holdout_{name}_vs_last"] = metrics[f"holdout_{name}"] / float(np.mean(last))
    if errors.horizon > 1:
        for step in reported_steps(errors.horizon):
            metrics |= {f"holdout_{name}_h{step}": float(values[step - 1]) for name, values in series.items()}
    return metrics


INTERVAL_LEVELS = (50, 80, 90, 95, 99)  # the coverages (%) a version stores its intervals for


def conformal_intervals(errors: HoldoutErrors) -> dict[str, Any]:
    """Split-conformal prediction intervals from the hold-out (as statsforecast's ``ConformalIntervals``
    computes them from its cross-validation windows): for coverage L % and each step, the half-width
    ``q`` is the ``ceil((n + 1) · L / 100)``-th smallest of the n forecasts' absolute errors, so that
    ``forecast ± q`` covers at least L % of them (of new ones too when the errors are exchangeable; those of
    a series' neighbouring windows are correlated, so the coverage is approximate). A level that needs more
    forecasts than there are is left out. In the model's scaled units; ``{}`` without the errors."""
    if errors.abs_errors is None or not len(errors.abs_errors):
        return {}
    ranked = np.sort(errors.abs_errors, axis=0)
    n = len(ranked)
    levels = {}
    for level in INTERVAL_LEVELS:
        k = math.ceil((n + 1) * level / 100)
        if k <= n:
            levels[str(level)] = [float(q) for q in ranked[k - 1]]
    return {"method": "split conformal, hold-out", "forecasts": n, "levels": levels} if levels else {}


@dataclass(frozen=True)
class Champion:
    """The version an alias points at, loaded: its registry entry, definition and Keras model."""

    entry: Any
    spec: Any
    model: Any


def load_champion(registry: Any, ref: str) -> Champion | None:
    """The version `ref` points at, loaded; None when there is no such version yet."""
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
    return Champion(entry, spec, model)


def with_context(context: pd.DataFrame, holdout: pd.DataFrame, reach: int) -> tuple[pd.DataFrame, int]:
    """The hold-out after the last `reach` records before it (what the first forecasts read): the records to
    score on, and the index of the hold-out's first record among them (the first label)."""
    before = context.iloc[max(0, len(context) - reach) :]
    return pd.concat([before, holdout], ignore_index=True), len(before)
