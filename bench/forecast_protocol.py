"""The long-horizon forecasting protocol of Informer, DLinear and PatchTST on ETTh1, for the shipped models.

    nice .venv/bin/python bench/forecast_protocol.py [--horizons 24,96] [--models a.yaml,b.yaml]
                                                     [--epochs N] [--quick]

The protocol (univariate setting "S" of the papers' code, ``Dataset_ETT_hour``):

* the oil temperature OT of the shipped ETTh1 (``airflow_amml/data/ett/ETTh1.csv``), z-scored with the mean
  and standard deviation of the training rows [0, 8640) (the other columns too, for models that read them);
* a model sees the last L values and forecasts the next H; L = 96 or 336, H = 24, 48, 96, 168, 192, 336, 720;
* training windows lie inside rows [0, 8640), validation windows inside [8640 - L, 11520), test windows
  inside [11520 - L, 14400): every window whose input and H future values are in the range, so the forecast
  targets are the same rows for every L (2881 - H windows);
* MSE and MAE on the z-scaled values, averaged over every test window and every step (the papers' code drops
  the last incomplete test batch, ``drop_last=True``; here no window is dropped).

Baselines computed in the same run: repeat-last (every step forecasts the last observed value) and NLinear
(subtract the window's last value, one linear map L → H with a bias fitted by least squares on the training
windows, add the value back), for L = 96 and L = 336. Least-squares NLinear with L = 336 lands within 0.2 % of
the published NLinear figures (0.053/0.177 at H=96, 0.081/0.226 at 336, 0.080/0.226 at 720), which checks
the protocol.

Each shipped model (``dags/models/*.yaml`` whose horizon is one of ``--horizons``) is trained through
``airflow_amml.models.keras_builder.train`` as ``train_lstm`` trains it — with the YAML's settings —, on the
training rows, validated (early stopping, learning-rate plateaus) on the validation rows (a ``solver:
least_squares`` model is solved on the training rows alone, as ``train_lstm`` solves it), and scored on the
test windows. Printed: one table H × model (MSE/MAE), then each model's ratios to NLinear (L = 336), then
the coverage on the test windows of each model's conformal prediction intervals (``lstm level=``) calibrated
on its validation windows as ``train_lstm`` calibrates them on a hold-out (``conformal_intervals``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ETT = Path(os.environ.get("AMML_ETT_PATH") or ROOT / "airflow_amml" / "data" / "ett" / "ETTh1.csv")
COLUMNS = ["HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL", "OT"]
TARGET = "OT"
TRAIN, VALID, TEST = 8640, 11520, 14400
HORIZONS = (24, 48, 96, 168, 192, 336, 720)
BASELINE_WINDOWS = (96, 336)
REFERENCE = "NLinear L=336"
# the figures of the papers (univariate ETTh1), for the reader; nothing is compared to them automatically
PUBLISHED = {
    "NLinear (paper)": {96: (0.053, 0.177), 192: (0.069, 0.204), 336: (0.081, 0.226), 720: (0.080, 0.226)},
    "PatchTST/42 (paper)": {96: (0.055, 0.179), 192: (0.071, 0.205), 336: (0.081, 0.225), 720: (0.087, 0.232)},
}


@dataclass(frozen=True)
class Score:
    mse: float
    mae: float
    note: str = ""
    coverage: dict[str, float] | None = None  # conformal level → share of test (window, step) errors inside


def load_scaled() -> pd.DataFrame:
    """ETTh1 with every value column z-scored by the statistics of the training rows; ``date`` kept."""
    frame = pd.read_csv(ETT)
    train = frame[COLUMNS].iloc[:TRAIN]
    scaled = frame.copy()
    scaled[COLUMNS] = (frame[COLUMNS] - train.mean()) / train.std(ddof=0)
    return scaled


def windows(series: np.ndarray, lo: int, hi: int, length: int, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """(inputs [m, L], futures [m, H]) of every window with input and future inside rows [lo, hi)."""
    view = np.lib.stride_tricks.sliding_window_view(series[lo:hi], length + horizon)
    return view[:, :length], view[:, length:]


def score(predicted: np.ndarray, truth: np.ndarray, note: str = "") -> Score:
    error = np.asarray(predicted, dtype=np.float64) - truth
    return Score(float(np.mean(error**2)), float(np.mean(np.abs(error))), note)


def repeat_last(z: np.ndarray, horizon: int) -> Score:
    x, y = windows(z, VALID - 1, TEST, 1, horizon)  # the input length does not matter: one value is used
    return score(np.repeat(x[:, -1:], horizon, axis=1), y)


def nlinear_least_squares(z: np.ndarray, length: int, horizon: int) -> Score:
    """NLinear (Zeng et al. 2023): ŷ = W (x - x_L) + b + x_L, W and b by least squares on the training windows.

    The last column of x - x_L is always 0, so it is left out of the fit (W's last column is then 0)."""
    x, y = windows(z, 0, TRAIN, length, horizon)
    design = np.hstack([(x - x[:, -1:])[:, :-1], np.ones((len(x), 1))])
    weights, *_ = np.linalg.lstsq(design, y - x[:, -1:], rcond=None)
    xt, yt = windows(z, VALID - length, TEST, length, horizon)
    predicted = np.hstack([(xt - xt[:, -1:])[:, :-1], np.ones((len(xt), 1))]) @ weights + xt[:, -1:]
    return score(predicted, yt)


def shipped_model(path: Path, scaled: pd.DataFrame, epochs: int | None) -> tuple[str, int, Score]:
    """Train a model file as train_lstm does (keras_builder.train with its YAML's settings); score it on the
    test windows (forecasts of the target, in z-scaled units). The note carries its validation figures (the
    windows of rows [8640 - L, 11520), which early stopping also watched)."""
    from airflow_amml.models import keras_builder
    from airflow_amml.models.spec import load_model_spec

    spec = load_model_spec(path)
    t = spec.training
    started = time.process_time()
    wall = time.perf_counter()
    if t.solver == "least_squares":  # as train_lstm solves it: the spec's own validation_split, no epochs
        model, history = keras_builder.train(spec, scaled.iloc[:TRAIN])
    else:
        validation = scaled.iloc[TRAIN - t.history : VALID]
        model, history = keras_builder.train(spec, scaled.iloc[:TRAIN], epochs=epochs, validation=validation)
    seconds = time.perf_counter() - wall, time.process_time() - started
    scores, errors = {}, {}
    for part, (lo, hi) in {"validation": (TRAIN, VALID), "test": (VALID, TEST)}.items():
        rows = scaled.iloc[lo - t.history : hi]  # the records the first forecast reads come before the rows
        _, y, last = keras_builder.make_windows(rows, spec)
        truth = y.astype(np.float64) + (last[:, None] if t.predict == "delta" else 0.0)
        predicted = keras_builder.predict(model, spec, rows)[: len(truth)]
        scores[part], errors[part] = score(predicted, truth), np.abs(predicted - truth)
    val = scores["validation"]
    coverage = _conformal_coverage(errors["validation"], errors["test"])
    steps = "solved by least squares" if t.solver == "least_squares" else keras_builder.epochs_run(history)
    note = (
        f"{steps}, validation MSE/MAE {val.mse:.5f}/{val.mae:.5f} (what it was chosen on), "
        f"{seconds[0]:.0f} s wall, {seconds[1]:.0f} s CPU"
    )
    return spec.ref, t.horizon, Score(scores["test"].mse, scores["test"].mae, note, coverage)


def _conformal_coverage(calibration: np.ndarray, test: np.ndarray) -> dict[str, float]:
    """Each level's share of the test errors [windows, H] within the half-widths the calibration errors give."""
    from airflow_amml.components.evaluation import HoldoutErrors, conformal_intervals

    n, horizon = calibration.shape
    intervals = conformal_intervals(HoldoutErrors(n, np.zeros(horizon), np.zeros(horizon), abs_errors=calibration))
    return {level: float(np.mean(test <= np.asarray(w))) for level, w in intervals.get("levels", {}).items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--horizons", help=f"comma-separated horizons (default {','.join(map(str, HORIZONS))})")
    parser.add_argument("--models", help="comma-separated model files (default: dags/models/*.yaml)")
    parser.add_argument("--epochs", type=int, help="override the models' epochs (exploration)")
    parser.add_argument("--quick", action="store_true", help="H = 24 and 96 only, at most 5 epochs")
    args = parser.parse_args(argv)
    horizons = tuple(int(h) for h in args.horizons.split(",")) if args.horizons else HORIZONS
    epochs = args.epochs
    if args.quick:
        horizons = tuple(h for h in horizons if h in (24, 96)) or (24, 96)
        epochs = min(epochs or 5, 5)
    paths = (
        [Path(p) for p in args.models.split(",")] if args.models else sorted((ROOT / "dags" / "models").glob("*.yaml"))
    )

    scaled = load_scaled()
    z = scaled[TARGET].to_numpy(dtype=np.float64)
    results: dict[int, dict[str, Score]] = {h: {} for h in horizons}
    for h in horizons:
        results[h]["repeat-last"] = repeat_last(z, h)
        for length in BASELINE_WINDOWS:
            results[h][f"NLinear L={length}"] = nlinear_least_squares(z, length, h)
    notes: dict[str, str] = {}
    from airflow_amml.models.spec import load_model_spec

    for path in paths:
        spec = load_model_spec(path)
        if spec.training.horizon not in horizons:
            continue
        ref, h, s = shipped_model(path, scaled, epochs)
        results[h][ref] = s
        notes[ref] = f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}: {s.note}"
        print(f"trained {ref} (H={h}): MSE {s.mse:.4f} MAE {s.mae:.4f}; {s.note}", flush=True)

    print(
        f"\nETTh1 univariate OT, z-scored on rows [0, {TRAIN}); test windows over rows [{VALID} - L, {TEST}); "
        "MSE/MAE over every window and step"
    )
    columns = list(dict.fromkeys(name for h in horizons for name in results[h]))
    published = [name for name in PUBLISHED if any(h in PUBLISHED[name] for h in horizons)]
    width = max(15, *(len(c) for c in columns))
    print(f"{'H':>4}  " + "  ".join(f"{c:>{width}}" for c in [*columns, *published]))
    for h in horizons:
        cells = [f"{results[h][c].mse:.4f}/{results[h][c].mae:.4f}" if c in results[h] else "" for c in columns]
        cells += [f"{PUBLISHED[p][h][0]:.3f}/{PUBLISHED[p][h][1]:.3f}" if h in PUBLISHED[p] else "" for p in published]
        print(f"{h:>4}  " + "  ".join(f"{c:>{width}}" for c in cells))

    print(f"\nratios to {REFERENCE} (MSE ratio / MAE ratio; < 1 is better)")
    for h in horizons:
        ref = results[h][REFERENCE]
        for name, s in results[h].items():
            if name != REFERENCE:
                print(f"{h:>4}  {name:<{width}}  {s.mse / ref.mse:6.3f} / {s.mae / ref.mae:6.3f}")
    for name, note in notes.items():
        print(f"{name}: {note}")
    covered = [(h, name, s.coverage) for h in horizons for name, s in results[h].items() if s.coverage]
    if covered:
        levels = list(covered[0][2])
        print("\nconformal intervals calibrated on the validation windows: share of test errors inside (nominal %)")
        print(f"{'H':>4}  {'model':<{width}}  " + "  ".join(f"{level:>6}" for level in levels))
        for h, name, cov in covered:
            print(f"{h:>4}  {name:<{width}}  " + "  ".join(f"{100 * cov.get(lv, np.nan):6.1f}" for lv in levels))


if __name__ == "__main__":
    main()
