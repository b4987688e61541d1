"""The paper's ETTh1 experiment, made honest: the standard split, a persistence baseline, test errors.

    .venv/bin/python bench/experiment_ett.py [MODEL.yaml ...]     (default: the one-step models in dags/models/)

* Split (Informer/DLinear convention): train rows [0, 8640), validation [8640, 11520), test [11520, 14400).
* Min-max scaler fitted on the training rows only (all seven columns).
* Each model is trained with its YAML's settings (the paper's: LSTM tanh, MAE loss, adam, 20 epochs),
  validated (early stopping) on the validation rows, and scored on one-step OT forecasts over the validation
  rows — what a model is chosen on — and over the test rows: two tables.
* Persistence predicts the last observed OT. Errors are printed in the scaled space (what the paper's loss
  0.0130 and "prediction error 0.0075" are in) and in °C, with the ratios to persistence and to the ridge.
* Ridge: a linear baseline computed in the same run — the next hour's change of OT from the last 168 hours
  of OT minus the last value (NLinear's normalisation), ridge penalty chosen on the validation rows (so its
  validation figures are a little optimistic). (Long horizons: bench/forecast_protocol.py.)
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from airflow_amml.models import keras_builder  # noqa: E402
from airflow_amml.models.spec import load_model_spec  # noqa: E402

# the copy `source id="ett"` reads: $AMML_ETT_PATH, else the one shipped in the package
ETT = Path(os.environ.get("AMML_ETT_PATH") or ROOT / "airflow_amml" / "data" / "ett" / "ETTh1.csv")
COLUMNS = ["HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL", "OT"]
TRAIN, VALID, TEST = 8640, 11520, 14400


def main(paths: list[str]) -> None:
    frame = pd.read_csv(ETT)
    low, high = frame[COLUMNS].iloc[:TRAIN].min(), frame[COLUMNS].iloc[:TRAIN].max()
    scaled = frame.copy()
    scaled[COLUMNS] = (frame[COLUMNS] - low) / (high - low)
    span = float(high["OT"] - low["OT"])  # °C per scaled unit
    ot = scaled["OT"].to_numpy(dtype=np.float64)
    parts = {"validation": (TRAIN, VALID), "test": (VALID, TEST)}

    rows: dict[str, list[tuple]] = {part: [] for part in parts}
    for path in paths or sorted(str(p) for p in (ROOT / "dags" / "models").glob("*.yaml")):
        spec = load_model_spec(path)
        if spec.training.horizon != 1 and not paths:
            continue  # a horizon model: bench/forecast_protocol.py scores it
        window = spec.training.window
        started = time.perf_counter()
        model, history = keras_builder.train(spec, scaled.iloc[:TRAIN], validation=scaled.iloc[TRAIN - window : VALID])
        note = f"{len(history)} epochs, final loss {history[-1]['loss']:.4f}, {time.perf_counter() - started:.0f} s"
        for part, (lo, hi) in parts.items():
            rows_of = scaled.iloc[lo - window : hi]  # the rows plus one window of context before them
            predicted = keras_builder.predict(model, spec, rows_of)[: hi - lo, 0]
            rows[part].append(_errors(f"{spec.ref} ({spec.training.predict})", predicted, ot[lo:hi], note))
    ridge = ridge_change(ot)
    for part, (lo, hi) in parts.items():
        ridge_part = ridge[lo - TRAIN : hi - TRAIN]
        rows[part].append(_errors("ridge, 168 h of OT (change)", ridge_part, ot[lo:hi], "λ chosen on validation"))
        rows[part].append(_errors("persistence (last value)", ot[lo - 1 : hi - 1], ot[lo:hi], ""))

    for part, (lo, hi) in parts.items():
        persistence, ridge_row = rows[part][-1], rows[part][-2]
        print(f"\nETTh1 one-step OT forecast on the {part} rows [{lo}, {hi}); scaler fitted on rows [0, {TRAIN})")
        print(
            f"{'model':<32} {'MAE':>8} {'MSE':>9} {'MAE °C':>8} {'MSE °C²':>9} {'MSE/pers':>8} {'MAE/pers':>8} "
            f"{'MSE/ridge':>9} {'MAE/ridge':>9}  notes"
        )
        for name, mae, mse, note in rows[part]:
            print(
                f"{name:<32} {mae:8.4f} {mse:9.5f} {mae * span:8.3f} {mse * span**2:9.3f} "
                f"{mse / persistence[2]:8.3f} {mae / persistence[1]:8.3f} "
                f"{mse / ridge_row[2]:9.3f} {mae / ridge_row[1]:9.3f}  {note}"
            )
    print("\nthe paper reports a final training loss of 0.0130 and a prediction error of 0.0075 (scaled space)")


def ridge_change(ot: np.ndarray, lags: int = 168) -> np.ndarray:
    """One-step forecasts of OT over the validation and test rows [TRAIN, TEST): last value + ridge(window
    minus last value → change).

    Fitted on the windows inside the training rows; the penalty (per window, on the lag weights only) is the
    one of a small grid with the lowest validation MSE."""

    def design(lo: int, hi: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        view = np.lib.stride_tricks.sliding_window_view(ot[lo - lags : hi], lags + 1)
        x, last = view[:, :lags], view[:, lags - 1]
        return np.hstack([(x - last[:, None])[:, :-1], np.ones((len(x), 1))]), view[:, lags] - last, last

    a, y, _ = design(lags, TRAIN)
    av, yv, _ = design(TRAIN, VALID)

    def fit(penalty: float) -> np.ndarray:
        ridge = penalty * len(a) * np.eye(a.shape[1])
        ridge[-1, -1] = 0  # the intercept is not penalised
        return np.linalg.solve(a.T @ a + ridge, a.T @ y)

    best = min((1e-4, 1e-3, 1e-2, 1e-1, 1.0), key=lambda p: float(np.mean((av @ fit(p) - yv) ** 2)))
    at, _, last = design(TRAIN, TEST)
    return last + at @ fit(best)


def _errors(name: str, predicted: np.ndarray, truth: np.ndarray, note: str) -> tuple:
    error = np.asarray(predicted, dtype=np.float64) - truth
    return name, float(np.mean(np.abs(error))), float(np.mean(error**2)), note


if __name__ == "__main__":
    main(sys.argv[1:])
