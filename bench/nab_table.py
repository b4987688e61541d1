"""The README's NAB table: each detector on the 28 shipped NAB series, by `amml evaluate`'s own scoring.

    .venv/bin/python bench/nab_table.py [--json]

Rows: the pipelines in bench/nab/ and the recommended one (airflow_amml/detection/pipelines/), then three
baselines scored the same way: never detecting (0 by definition), flagging every record, and uniform random
scores (mean of seeds 0–2). "optimised" columns choose one threshold per profile on these labels, as NAB's
scoreboard does; "fixed" is each pipeline's own flags, as a deployment runs. Event F1 counts every flagged
record outside a window as a false positive.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from airflow_amml.detection.evaluate import Detections, evaluate, score  # noqa: E402
from airflow_amml.detection.nab_corpus import load_corpus  # noqa: E402

DATA = ROOT / "airflow_amml" / "data" / "nab"
LABELS = DATA / "combined_windows.json"
PIPELINES = [
    *sorted((ROOT / "bench" / "nab").glob("*.amml")),
    ROOT / "airflow_amml" / "detection" / "pipelines" / "nab_recommended.amml",
]


def row(name: str, report, seconds: float | None) -> dict:
    report_json = report.to_json()
    pooled = report_json["all"]
    opt, fixed = pooled["nab_optimised_on_these_labels"], pooled["nab_fixed"]
    by_category = {
        name: group["nab_optimised_on_these_labels"]["standard"]["score"]
        for name, group in report_json["categories"].items()
        if group["windows"]
    }
    return {
        "detector": name,
        "categories": by_category,
        "standard": opt["standard"]["score"],
        "low_fp": opt["reward_low_FP_rate"]["score"],
        "low_fn": opt["reward_low_FN_rate"]["score"],
        "standard_fixed": fixed["standard"]["score"],
        "event_f1": pooled["event"]["f1"],
        "found": f"{pooled['event']['detected_windows']}/{pooled['windows']}",
        "mttd_rows": pooled["mean_time_to_detect"]["rows"],
        "seconds": seconds,
    }


def baselines(corpus) -> list[dict]:
    def scored(name: str, make) -> dict:
        detections = [Detections(s, make(s), make(s) >= 0.5) for s in corpus]
        return row(name, score(detections, pipeline=name, detector=name, score_column="anomaly_score",
                               flag_column="anomaly_flag", threshold=0.5), None)

    out = [scored("flag every record", lambda s: np.ones(len(s.times)))]
    randoms = []
    for seed in range(3):
        rng = np.random.default_rng(seed)
        scores = {id(s): rng.random(len(s.times)) for s in corpus}
        randoms.append(scored(f"random {seed}", lambda s, scores=scores: scores[id(s)]))
    mean = {k: float(np.mean([r[k] for r in randoms])) for k in ("standard", "low_fp", "low_fn", "standard_fixed")}
    categories = {c: float(np.mean([r["categories"][c] for r in randoms])) for c in randoms[0]["categories"]}
    out.append({**randoms[0], **mean, "categories": categories, "detector": "random (mean of 3 seeds)", "found": "—",
                "mttd_rows": None,
                "event_f1": float(np.mean([r["event_f1"] or 0 for r in randoms]))})
    return out


def fmt(value, digits=1) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = []
    for path in PIPELINES:
        started = time.perf_counter()
        report = evaluate(path, DATA, LABELS)
        rows.append(row(path.stem, report, time.perf_counter() - started))
    rows += baselines(load_corpus(DATA, LABELS))
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    categories = list(rows[0]["categories"])
    print("| detector | NAB standard | low FP | low FN | " + " | ".join(categories)
          + " | standard, fixed threshold | event F1 | windows found | MTTD (records) | seconds |")
    print("|---" * (10 + len(categories)) + "|")
    for r in rows:
        per_category = " | ".join(fmt(r["categories"].get(c)) for c in categories)
        print(f"| {r['detector']} | {fmt(r['standard'])} | {fmt(r['low_fp'])} | {fmt(r['low_fn'])} | {per_category} "
              f"| {fmt(r['standard_fixed'])} | {fmt(r['event_f1'], 3)} | {r['found']} | {fmt(r['mttd_rows'], 0)} "
              f"| {fmt(r['seconds'])} |")


if __name__ == "__main__":
    main()
