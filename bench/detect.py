"""Benchmark: the streaming anomaly detectors through the multiprocess executor, against per-record River.

Run from the project root::

    .venv/bin/python bench/detect.py [--rows 2000000] [--repeat 2] [--river-rows 50000] [--window 1000]
        [--only robust_detector ...]

River (https://riverml.xyz) is needed only here: if ``import river`` fails, the script installs it into the
running interpreter's environment with pip (``river==0.26.1``, which adds only ``narwhals``) and says so.

Everything is measured in this one run and printed; nothing is asserted on timing (the script stops only when
a result is wrong: a record count differs, or AMML's Gaussian scores differ from River's on the same records).

What is measured
----------------
Data: ``--rows`` records (default 2,000,000) of a 5-minute series with a daily cycle, Gaussian noise and a spike
every 10,000 records, as ``timestamp`` (datetime) and ``value`` columns written once to a Parquet file and
registered as the catalog source ``s``.

1. AMML: ``source id='s' | <detector> | print limit=0`` run with ``run_pipeline(..., mode="multiprocess")`` (one
   process per component; ``print limit=0`` receives every batch and writes nothing). records/s = rows / wall
   seconds of the call (process start-up, reading the file and stopping included), best of ``--repeat``.
   Also ``source | print limit=0`` alone: the transport's own rate, a ceiling for any detector in the middle.
   The window of the rolling detectors is ``--window`` (default 1,000).

2. River, per record, in this process, on the first ``--river-rows`` records (its rate does not depend on the
   length of the stream):

   * ``rolling z``: the Gaussian detector written per record with River: ``utils.Rolling(stats.Var,
     window_size=window, ddof=0)`` holds the window; each record is scored with erf(|x - mean| / std / √2)
     from the window *before* it, then learnt. Its scores are checked against AMML's ``gaussian_detector`` (same window,
     min_periods=1, std floored alike) on those records.
   * ``GaussianScorer``: River's own Gaussian detector, ``anomaly.GaussianScorer(window_size=window,
     grace_period=1)`` (score 2·|CDF(y) - 0.5|, the same score), ``score_one`` then ``learn_one`` per record.
   * ``HalfSpaceTrees``: ``preprocessing.MinMaxScaler() | anomaly.HalfSpaceTrees(seed=42)`` (River's defaults:
     10 trees, height 8, window 250), ``score_one`` then ``learn_one`` per record.

   Ratios: each AMML detector's records/s over each River baseline's. Targets: >= 1M records/s for the rolling detectors
   and >= 50x River.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from airflow_amml.run_config import RunConfig  # noqa: E402 - after the sys.path fix
from airflow_amml.runtime.executor import run_pipeline  # noqa: E402
from compiler import ProgramCache, compile_source  # noqa: E402

RIVER = "river==0.26.1"


def detectors(window: int) -> dict[str, str]:
    return {
        "(none: transport only)": "",
        "threshold_detector": "threshold_detector cols=['value'], low=0, high=20",
        "gaussian_detector": f"gaussian_detector cols=['value'], window={window}",
        "robust_detector": f"robust_detector cols=['value'], window={window}",
        "flatline_detector": "flatline_detector cols=['value']",
        "seasonal_detector": "seasonal_detector cols=['value'], time='timestamp'",
        "residual_detector": "residual_detector col='value'",
        "gaussian | anomaly_likelihood": f"gaussian_detector cols=['value'], window={window} | anomaly_likelihood",
    }


ROLLING = ("gaussian_detector", "robust_detector")


def build_data(rows: int, folder: Path) -> Path:
    rng = np.random.default_rng(7)
    stamps = pd.date_range("2020-01-01", periods=rows, freq="5min")
    day = stamps.hour.to_numpy() + stamps.minute.to_numpy() / 60
    value = 10 + 2 * np.sin(2 * np.pi * day / 24) + rng.normal(0, 0.5, rows)
    value[5000::10_000] += 8
    path = folder / "series.parquet"
    pd.DataFrame({"timestamp": stamps, "value": value}).to_parquet(path, row_group_size=1 << 16)
    return path


def timed(fn):
    gc.collect()
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def amml(path: Path, rows: int, repeat: int, window: int, only: list[str] | None = None) -> dict[str, float]:
    config = RunConfig.from_environment(sources={"s": {"path": str(path), "time_column": "timestamp"}})
    rates = {}
    print(f"1. AMML, multiprocess, {rows:,} records, best of {repeat}")
    for label, detector in detectors(window).items():
        if only and detector and label not in only:
            continue
        text = f"source id='s' | {detector} | print limit=0" if detector else "source id='s' | print limit=0"
        pipeline = compile_source(text, "bench.amml", cache=ProgramCache()).pipelines[0]
        best = math.inf
        for _ in range(repeat):
            wall, result = timed(lambda: run_pipeline(pipeline, config=config, mode="multiprocess"))  # noqa: B023
            arrived = result.counters[result.stages[-1].id].records_in
            if arrived != rows:
                raise SystemExit(f"{label}: {arrived:,} records reached the sink, expected {rows:,}")
            best = min(best, wall)
        rates[label] = rows / best
        print(f"   {label:<32} {best:6.2f} s  {rates[label] / 1e6:6.2f}M records/s")
    return rates


def ensure_river() -> None:
    try:
        importlib.import_module("river")
    except ImportError:
        print(f"River is not installed: installing {RIVER} into {sys.prefix} for this benchmark (pip) ...")
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", RIVER], check=True)
        importlib.invalidate_caches()


def river_rolling_z(values: np.ndarray, window: int) -> np.ndarray:
    from river import stats, utils

    rolling = utils.Rolling(stats.Var, window_size=window, ddof=0)
    scores = np.zeros(len(values))
    seen = 0
    for i, x in enumerate(values.tolist()):
        if seen:
            mean, var = rolling.obj.mean.get(), rolling.get()
            std = math.sqrt(var) if var > 0 else 1e-6
            scores[i] = math.erf(abs(x - mean) / std / math.sqrt(2))
        rolling.update(x)
        seen += 1
    return scores


def river_gaussian_scorer(values: np.ndarray, window: int) -> np.ndarray:
    from river import anomaly

    model = anomaly.GaussianScorer(window_size=window, grace_period=1)
    scores = np.zeros(len(values))
    for i, y in enumerate(values.tolist()):
        scores[i] = model.score_one(None, y)
        model.learn_one(None, y)
    return scores


def river_hst(values: np.ndarray) -> np.ndarray:
    from river import anomaly, preprocessing

    model = preprocessing.MinMaxScaler() | anomaly.HalfSpaceTrees(seed=42)
    scores = np.zeros(len(values))
    for i, x in enumerate(values.tolist()):
        record = {"value": x}
        scores[i] = model.score_one(record)
        model.learn_one(record)
    return scores


def river(path: Path, rows: int, window: int) -> dict[str, float]:
    ensure_river()
    import river as river_package

    values = pd.read_parquet(path, columns=["value"])["value"].to_numpy()[:rows]
    print(f"2. River {river_package.__version__}, per record, {rows:,} records")
    rates = {}
    wall, z = timed(lambda: river_rolling_z(values, window))
    rates["rolling z"] = rows / wall
    print(f"   rolling z (window {window:,})            {wall:6.2f} s  {rates['rolling z'] / 1e3:8.1f}k records/s")
    wall, _ = timed(lambda: river_gaussian_scorer(values, window))
    rates["GaussianScorer"] = rows / wall
    print(f"   GaussianScorer (window {window:,})       {wall:6.2f} s  {rates['GaussianScorer'] / 1e3:8.1f}k records/s")
    wall, _ = timed(lambda: river_hst(values))
    rates["HalfSpaceTrees"] = rows / wall
    print(f"   HalfSpaceTrees                    {wall:6.2f} s  {rates['HalfSpaceTrees'] / 1e3:8.1f}k records/s")

    # the same detection: AMML's gaussian_detector on the same records gives River's scores
    from airflow_amml.components.detectors import GaussianDetector
    from airflow_amml.runtime.component import ComponentContext
    from compiler import default_registry

    spec = default_registry().get("gaussian_detector")
    ours = GaussianDetector(spec, None, ComponentContext())
    ours.params.update(window=window, min_periods=1, cols=["value"])
    ours.open()
    got = ours.process(pd.DataFrame({"value": values}))["anomaly_score"].to_numpy()
    worst = float(np.max(np.abs(got - z)))
    if worst > 1e-6:
        raise SystemExit(f"AMML's gaussian_detector differs from River's rolling z by up to {worst:g}")
    print(f"   AMML gaussian_detector == River rolling z on these records (largest difference {worst:.1e})")
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--river-rows", type=int, default=50_000)
    parser.add_argument("--window", type=int, default=1000)
    parser.add_argument(
        "--only", nargs="+", metavar="DETECTOR", help="measure only these detectors (and the transport)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="amml-bench-detect-") as tmp:
        path = build_data(args.rows, Path(tmp))
        ours = amml(path, args.rows, args.repeat, args.window, args.only)
        theirs = river(path, min(args.river_rows, args.rows), args.window)
    print("3. ratios (AMML records/s over River's, measured above)")
    print(f"   {'detector':<32} {'M rec/s':>8} {'x rolling z':>12} {'x Gaussian':>11} {'x HST':>8}  target")
    for label, value in ours.items():
        if label.startswith("("):
            continue
        target = ">= 1M/s and >= 50x" if label in ROLLING else ">= 50x"
        print(
            f"   {label:<32} {value / 1e6:8.2f} {value / theirs['rolling z']:12.0f} "
            f"{value / theirs['GaussianScorer']:11.0f} {value / theirs['HalfSpaceTrees']:8.0f}  {target}"
        )


if __name__ == "__main__":
    main()
