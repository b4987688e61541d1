"""The paper's figures as PNG files: loss per epoch (Fig. 16) and prediction vs label (Fig. 17; for a
horizon model, a fan: the next H records forecast from a few origins); for a horizon model with a hold-out,
its error at each step ahead beside repeat-the-last-value's.

The figures have the same size, so that the version page shows them side by side. The prediction plot is in
the label's original units: :func:`prediction_series` undoes the scaling the model was trained on (the
min-max or z-score statistics `train_lstm` stores with the version), and puts the records' time stamps on the
x axis when they have a time column.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .evaluation import SCALER_KINDS, to_original

FIGSIZE = (9, 4)  # inches, at 100 dpi: 900 x 400 pixels, both figures
DPI = 100
TIME_COLUMNS = ("timestamp", "date", "time")  # looked for when the model names no time column the records have


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # no display on workers
    import matplotlib.pyplot as plt

    return plt


def _save(plt: Any, fig: Any, ax: Any, path: Path) -> Path:
    """The finish both figures share: grid, legend, PNG, the figure closed (workers draw many). No tight
    bounding box: the PNG keeps FIGSIZE exactly."""
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def plot_loss(history: list[dict[str, Any]], path: Path, title: str, loss: str | None = None) -> Path:
    """Loss (and validation loss) per epoch, as a PNG."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=FIGSIZE)
    draw_loss(ax, history, title, loss)
    return _save(plt, fig, ax, path)


def draw_loss(ax: Any, history: list[dict[str, Any]], title: str, loss: str | None = None) -> None:
    """The loss curves on `ax`; the x axis has whole epochs only, also for a single one."""
    from matplotlib.ticker import MaxNLocator

    epochs = [int(h["epoch"]) for h in history]
    members = history[-1].get("members") if history else None
    if not members:
        _draw_losses(ax, history, "")
    else:  # an ensemble: each member's curves, and the mean model's losses as stars after them
        for number in range(1, members + 1):
            _draw_losses(ax, [h for h in history if h.get("member") == number], f" (member {number})")
        mean = history[-1]
        for key in ("loss", "val_loss"):
            if mean.get(key) is not None:
                ax.plot([mean["epoch"]], [mean[key]], marker="*", markersize=12, linestyle="", label=f"{key} (mean)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    if epochs:  # half an epoch of margin: one epoch sits in the middle above its tick, not on 0.96 … 1.04
        ax.set_xlim(min(epochs) - 0.5, max(epochs) + 0.5)
    ax.set(xlabel="epoch", ylabel=f"loss ({loss})" if loss else "loss", title=f"{title}: loss per epoch")


def _draw_losses(ax: Any, history: list[dict[str, Any]], suffix: str) -> None:
    epochs = [int(h["epoch"]) for h in history]
    ax.plot(epochs, [h["loss"] for h in history], marker="o", label=f"loss{suffix}")
    if any(h.get("val_loss") is not None for h in history):
        ax.plot(epochs, [h.get("val_loss") for h in history], marker="o", label=f"val_loss{suffix}")


def plot_step_errors(errors: Any, path: Path, title: str, units: str) -> Path:
    """A horizon model's hold-out MAE at each step ahead, and repeat-the-last-value's on the same forecasts
    (:class:`~.evaluation.HoldoutErrors`; in the target's original units, `units` names them)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=FIGSIZE)
    steps = np.arange(1, errors.horizon + 1)
    ax.plot(steps, errors.mae, label="model")
    if errors.last_mae is not None:
        ax.plot(steps, errors.last_mae, linestyle="--", label="repeat the last value")
    ax.set(
        xlabel="steps ahead",
        ylabel=f"MAE ({units})",
        title=f"{title}: hold-out error by step ({errors.windows:,} forecasts)",
    )
    ax.set_xlim(0.5, errors.horizon + 0.5)
    return _save(plt, fig, ax, path)


@dataclass(frozen=True)
class PredictionSeries:
    """What the prediction plot draws: one-step forecasts and the labels they forecast, aligned."""

    x: np.ndarray  # datetime64 time stamps of the labels, or record positions 0..n-1
    label: np.ndarray
    prediction: np.ndarray
    ylabel: str  # the target column, and the units it is in
    time_column: str | None  # where `x` came from (None: record positions)


def prediction_series(
    frame: pd.DataFrame, predicted: np.ndarray, training: Any, scaler: dict[str, Any] | None
) -> PredictionSeries:
    """The label after each window of `frame` and the model's one-step forecast of it (``predicted[i]`` is made
    at record ``history - 1 + i``, as `keras_builder.predict` returns it: ``history`` is the window, and with
    seasonal means the records they reach back to before it), both in the target's original units
    when `scaler` (a scaler's statistics: ``{"kind": "minmax" | "zscore", "columns": {col: stats}}``) scaled
    it: min-max ``[low, high]`` is undone as ``v * (high - low) + low``, z-score ``[mean, std]`` as
    ``v * std + mean``."""
    history, target = training.history, training.target
    n = max(0, min(len(frame) - history, len(predicted)))  # forecasts that have a label
    label = frame[target].to_numpy(dtype=np.float64)[history : history + n]
    prediction = np.asarray(predicted, dtype=np.float64)[:n]
    original, ylabel = _original_units(target, scaler)
    column = _time_column(frame, getattr(training, "time_column", None))
    if column is not None:
        x = _stamps(frame[column]).to_numpy()[history : history + n]
    else:
        x = np.arange(n)
    return PredictionSeries(x, original(label), original(prediction), ylabel, column)


def _original_units(target: str, scaler: dict[str, Any] | None) -> tuple[Any, str]:
    """(values → the target's original units, the y label saying which units they are in)."""
    kind = (scaler or {}).get("kind")
    stats = (scaler or {}).get("columns", {}).get(target)
    if stats is not None and kind in SCALER_KINDS:
        return (lambda v: to_original(v, kind, stats)), f"{target} (original units)"
    return (lambda v: v), (f"{target} ({kind}-scaled)" if stats is not None else target)


@dataclass(frozen=True)
class FanSeries:
    """What the prediction plot of a horizon model draws: the label from the first forecast origin on, and
    the forecasts made at a few origins over the ``horizon`` records after each (as far as the label goes)."""

    x: np.ndarray  # time stamps (or record positions) of the labels
    label: np.ndarray
    origins: tuple[int, ...]  # positions in `x`/`label` of the records the forecasts were made at
    forecasts: tuple[np.ndarray, ...]  # forecasts[k][s - 1]: made at origins[k] for the record s after it
    ylabel: str
    time_column: str | None


def fan_series(
    frame: pd.DataFrame, predicted: np.ndarray, training: Any, scaler: dict[str, Any] | None, origins: int = 4
) -> FanSeries:
    """The forecasts of a horizon model made at `origins` records spread evenly over `frame`'s forecasts
    that have all their ``horizon`` labels (the first and the last of them among them; a frame too short
    for one: its first forecast, as far as the labels go), and the label from the first origin on, in the
    target's original units. ``predicted[i]`` is made at record ``history - 1 + i`` for the ``horizon``
    records after it, as `keras_builder.predict` returns it."""
    history, target = training.history, training.target
    predicted = np.asarray(predicted, dtype=np.float64).reshape(len(predicted), -1)
    horizon = predicted.shape[1]
    complete = max(1, len(frame) - history - horizon + 1)  # forecasts whose every step has a label
    picks = tuple(dict.fromkeys(np.linspace(0, complete - 1, max(1, origins)).round().astype(int).tolist()))
    original, ylabel = _original_units(target, scaler)
    label = original(frame[target].to_numpy(dtype=np.float64)[history - 1 :])
    forecasts = tuple(original(predicted[i, : max(0, len(label) - 1 - i)]) for i in picks)
    column = _time_column(frame, getattr(training, "time_column", None))
    x = _stamps(frame[column]).to_numpy()[history - 1 :] if column is not None else np.arange(len(label))
    return FanSeries(x, label, picks, forecasts, ylabel, column)


def _time_column(frame: pd.DataFrame, preferred: str | None) -> str | None:
    """The records' time column: the model's `time_column`, else the first datetime column, else one named
    timestamp/date/time; only if every value reads as a time stamp (a plot never fails a training)."""
    candidates = [preferred] if preferred else []
    candidates += [c for c in frame.columns if pd.api.types.is_datetime64_any_dtype(frame[c])]
    candidates += list(TIME_COLUMNS)
    for column in dict.fromkeys(candidates):
        if column in frame.columns and len(frame):
            try:
                stamps = _stamps(frame[column])
            except (TypeError, ValueError, OverflowError):
                continue
            if not stamps.isna().any():
                return str(column)
    return None


def _stamps(values: pd.Series) -> pd.Series:
    return pd.to_datetime(values, errors="coerce", format="ISO8601" if values.dtype == object else None)


def plot_prediction(
    frame: pd.DataFrame,
    predicted: np.ndarray,
    spec: Any,
    path: Path,
    scaler: dict[str, Any] | None = None,
    records: str = "the last training records",
) -> Path:
    """Forecast made at each window's end vs the value that followed (one step ahead), in original units;
    for a horizon model, the fan of :func:`fan_series` (the next ``horizon`` records from a few origins).
    `records` says in the title which records these are (the hold-out, or the last training records)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=FIGSIZE)
    horizon = spec.training.horizon
    if horizon > 1:
        fan = fan_series(frame, predicted, spec.training, scaler)
        ax.plot(fan.x, fan.label, label="label", linewidth=1.2, color="C0")
        for k, (origin, forecast) in enumerate(zip(fan.origins, fan.forecasts, strict=True)):
            steps = fan.x[origin + 1 : origin + 1 + len(forecast)]
            ax.plot(steps, forecast, linewidth=1.2, color="C1", label="forecast" if k == 0 else None)
            ax.plot(fan.x[origin : origin + 1], fan.label[origin : origin + 1], "o", color="C1", markersize=4)
        series_column, ylabel = fan.time_column, fan.ylabel
        title = f"{spec.ref}: the next {horizon} records forecast from {len(fan.origins)} origins vs label on {records}"
    else:
        series = prediction_series(frame, predicted, spec.training, scaler)
        ax.plot(series.x, series.label, label="label", linewidth=1.2)
        ax.plot(series.x, series.prediction, label="prediction", linewidth=1.2)
        series_column, ylabel = series.time_column, series.ylabel
        title = f"{spec.ref}: one-step prediction vs label on {records}"
    if series_column is not None:
        fig.autofmt_xdate()  # slanted dates that do not overlap
    ax.set(xlabel=series_column or "record", ylabel=ylabel, title=title)
    return _save(plt, fig, ax, path)
