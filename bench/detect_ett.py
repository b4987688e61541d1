"""ETTh1 with injected anomalies: the forecast-residual detectors and the Gaussian baseline, by anomaly type.

Run from the project root::

    .venv/bin/python bench/detect_ett.py [--epochs 5] [--seed 11] [--count 4] [--keep DIR]

What it does (everything in a temporary folder, or ``--keep DIR``; its own AMML home, so the user's registry
is not touched):

1. Corpus. OT of ETTh1's test rows [11520, 14400) (the standard split; 2,880 hours), four copies, one per
   anomaly type (`airflow_amml.detection.inject`: spikes, level shifts, stuck sensor, slow drift), each with
   ``--count`` anomalies of its type placed after NAB's probationary period (the first 432 rows), with seed
   ``--seed`` (+ the type's number). Written in NAB's layout: ``<type>/ETTh1_OT.csv`` (``timestamp,value``) and
   ``windows.json``; a window runs from an anomaly's first changed hour to 12 hours after its last.
2. Model. The shipped ``dags/models/ett-delta-0.1.yaml`` (OT only, 48-hour window, predicts the change), trained
   with ``amml run`` for ``--epochs`` epochs (default 5; its YAML says 60 with early stopping) on the training
   rows [0, 8640), scaler fitted on them, rows [8640, 11520) held out: `train_lstm` chooses the residual
   threshold on the hold-out's forecast errors and stores it with the version (`ett_delta/1`).
3. ``amml evaluate`` (``--json``) of each detector pipeline over the corpus:

   (a) ``lstm``: ``rename value='OT' | minmax_scaler model=… | lstm model=… | residual_detector col='OT',
       pred='prediction', model=…`` — the registered model's forecast residuals against its stored threshold;
   (a+alarm) the same, flags through ``alarm min_count=2, window=6, suppress=24`` (dags/ett_watch.amml's policy);
   (a, online) the same forecast, its threshold chosen on the stream as (b) chooses it (no ``model=``);
   (b) ``ewma``: ``residual_detector col='value'`` — an online EWMA forecast, threshold chosen on the stream;
   (c) ``gaussian``: ``gaussian_detector cols=['value']`` — NAB's windowed Gaussian, the baseline;
   (d) ``flatline``: ``flatline_detector cols=['value']`` — a stuck sensor (12 records without a change); it
       is meant for the ``stuck`` rows and flags nothing else by design.

Printed per anomaly type and pooled: the NAB standard score optimised on these labels and with the fixed
flags, event precision/recall/F1 (every flagged hour outside a window is a false positive), and the mean time
to detect in hours. Nothing is tuned on these labels: every detector runs with its defaults.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from airflow_amml.detection.inject import KINDS, inject, nab_windows  # noqa: E402 - after the sys.path fix
from airflow_amml.detection.windows import probation_length  # noqa: E402

ETT = Path(os.environ.get("AMML_ETT_PATH") or ROOT / "airflow_amml" / "data" / "ett" / "ETTh1.csv")
TRAIN, VALID, TEST = 8640, 11520, 14400
MODEL = "ett_delta"
SERIES = "ETTh1_OT.csv"

_FORECAST = (
    f"source id='nab' | rename value='OT' | minmax_scaler model='{MODEL}' | lstm model='{MODEL}' "
    f"| residual_detector col='OT', pred='prediction', model='{MODEL}'"
)
PIPELINES = {
    "lstm": f"{_FORECAST} | print limit=0",
    "lstm+alarm": f"{_FORECAST}, flag='raw_flag' "
    "| alarm flag='raw_flag', output='anomaly_flag', min_count=2, window=6, suppress=24 | print limit=0",
    # the same forecast, its threshold chosen on the stream (the last `window` errors, every `refit`) as for ewma
    "lstm-online": f"source id='nab' | rename value='OT' | minmax_scaler model='{MODEL}' | lstm model='{MODEL}' "
    "| residual_detector col='OT', pred='prediction' | print limit=0",
    "ewma": "source id='nab' | residual_detector col='value' | print limit=0",
    "gaussian": "source id='nab' | gaussian_detector cols=['value'] | print limit=0",
    "flatline": "source id='nab' | flatline_detector cols=['value'] | print limit=0",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=5, help="training epochs of the registered model")
    parser.add_argument("--seed", type=int, default=11, help="seed of the injected anomalies")
    parser.add_argument("--count", type=int, default=4, help="anomalies of each type")
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it (corpus, pipelines, registry)")
    args = parser.parse_args()
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        run(args, args.keep.resolve())
    else:
        with tempfile.TemporaryDirectory(prefix="amml-detect-ett-") as tmp:
            run(args, Path(tmp))


def run(args: argparse.Namespace, work: Path) -> None:
    env = {**os.environ, "AMML_HOME": str(work / "amml-home"), "AMML_ETT_PATH": str(ETT), "PYTHONPATH": str(ROOT)}
    data, labels = write_corpus(work, args.seed, args.count)
    train(work, env, args.epochs)
    reports = {}
    for name, text in PIPELINES.items():
        pipeline = work / f"{name.replace('+', '_')}.amml"
        pipeline.write_text(text + "\n")
        reports[name] = amml(env, "evaluate", pipeline, "--data", data, "--labels", labels, "--json")
    print_table(reports, args)


def write_corpus(work: Path, seed: int, count: int) -> tuple[Path, Path]:
    frame = pd.read_csv(ETT).iloc[VALID:TEST]
    times = list(frame["date"])
    skip = probation_length(len(frame))
    data, windows = work / "corpus", {}
    print(f"injected into OT of ETTh1 rows [{VALID}, {TEST}) ({times[0]} to {times[-1]}), seed {seed}:")
    for number, kind in enumerate(KINDS):
        done = inject(frame["OT"].to_numpy(), [kind] * count, seed=seed + number, skip=skip)
        (data / kind).mkdir(parents=True, exist_ok=True)
        pd.DataFrame({"timestamp": times, "value": done.values}).to_csv(data / kind / SERIES, index=False)
        windows[f"{kind}/{SERIES}"] = nab_windows(times, done.anomalies)
        described = ", ".join(f"{times[a.start]} ({a.end - a.start} h, {a.size:+.2f} °C)" for a in done.anomalies)
        print(f"  {kind:<12} {described}")
    labels = work / "windows.json"
    labels.write_text(json.dumps(windows, indent=1))
    return data, labels


def train(work: Path, env: dict[str, str], epochs: int) -> None:
    """The shipped definition trained on the training rows, the validation rows held out (see the docstring)."""
    shutil.copytree(ROOT / "dags" / "models", work / "models", dirs_exist_ok=True)
    pipeline = work / "train.amml"
    pipeline.write_text(
        f"source id='ett', limit={VALID} | select cols=['date', 'OT'] | minmax_scaler fit_rows={TRAIN} "
        f"| train_lstm model='{MODEL}:0.1', epoch={epochs}, holdout={VALID - TRAIN} | print limit=0\n"
    )
    amml(env, "run", pipeline, parse=False)
    entry = amml(env, "model", "show", MODEL)
    metrics = entry["metrics"]
    print(
        f"model {entry['name']}/{entry['version']} ({entry['definition']}, {metrics.get('epochs')} epochs on rows "
        f"[0, {TRAIN})): hold-out MAE {metrics.get('holdout_mae', float('nan')):.4f} °C, stored residual "
        f"threshold {metrics['residual_threshold']:.4f} (mean {metrics['residual_mean']:.4f}, scaled units)"
    )


def amml(env: dict[str, str], *args: object, parse: bool = True) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "airflow_amml.cli", *map(str, args)], env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        sys.exit(f"amml {' '.join(map(str, args))} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout) if parse else {}


def print_table(reports: dict[str, dict], args: argparse.Namespace) -> None:
    print()
    print(
        f"{'type':<12} {'detector':<11} {'NAB std opt':>11} {'NAB fixed':>9} {'found':>6} {'FP rows':>7} "
        f"{'precision':>9} {'recall':>6} {'event F1':>8} {'MTTD h':>7}"
    )
    groups = [*KINDS, "all"]
    for group in groups:
        for name, report in reports.items():
            g = report["all"] if group == "all" else report["categories"][group]
            e, delay = g["event"], g["mean_time_to_detect"]["seconds"]
            print(
                f"{group:<12} {name:<11} {g['nab_optimised_on_these_labels']['standard']['score']:>11.1f} "
                f"{g['nab_fixed']['standard']['score']:>9.1f} {e['detected_windows']:>3}/{g['windows']:<2} "
                f"{e['false_positive_rows']:>7} {_num(e['precision'], 9)} {_num(e['recall'], 6)} "
                f"{_num(e['f1'], 8)} {_num(None if delay is None else delay / 3600, 7, 1)}"
            )
        print()
    print(
        f"(model: {args.epochs} epochs; anomalies: seed {args.seed}, {args.count} of each type; NAB standard "
        "profile; 'opt': one threshold per detector chosen on these labels, as NAB's scoreboard; 'fixed': the "
        "detectors' own flags)"
    )


def _num(value: float | None, width: int, digits: int = 3) -> str:
    return f"{'—':>{width}}" if value is None else f"{value:>{width}.{digits}f}"


if __name__ == "__main__":
    main()
