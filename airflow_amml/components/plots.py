"""The paper's figures as PNG files: loss per epoch (Fig. 16) and prediction vs label (Fig. 17)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # no display on workers
    import matplotlib.pyplot as plt

    return plt


def _save(plt: Any, fig: Any, ax: Any, path: Path) -> Path:
    """The finish both figures share: grid, legend, PNG at 100 dpi, the figure closed (workers draw many)."""
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_loss(history: list[dict[str, Any]], path: Path, title: str) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    epochs = [h["epoch"] for h in history]
    ax.plot(epochs, [h["loss"] for h in history], marker="o", label="loss")
    if any(h.get("val_loss") is not None for h in history):
        ax.plot(epochs, [h.get("val_loss") for h in history], marker="o", label="val_loss")
    ax.set(xlabel="epoch", ylabel="loss", title=f"{title}: loss per epoch")
    return _save(plt, fig, ax, path)


def plot_prediction(frame: pd.DataFrame, predicted: np.ndarray, spec: Any, path: Path) -> Path:
    """Forecast made at each window's end vs the value that followed (one step ahead)."""
    plt = _pyplot()
    t = spec.training
    target = frame[t.target].to_numpy(dtype=np.float64)
    n = len(target) - t.window  # forecasts that have a label
    fig, ax = plt.subplots(figsize=(9, 4))
    ax.plot(np.arange(n), target[t.window : t.window + n], label="label", linewidth=1.2)
    ax.plot(np.arange(n), predicted[:n], label="prediction", linewidth=1.2)
    ax.set(
        xlabel="record (the last records of the training stream)",
        ylabel=t.target,
        title=f"{spec.ref}: one-step prediction vs label",
    )
    return _save(plt, fig, ax, path)
