"""`amml evaluate PIPELINE.amml --data DIR --labels WINDOWS.json`: a detection pipeline scored on a labelled corpus.

How a run goes:

1. The pipeline is compiled; its one ``source id=ID`` is where each series goes in: for every labelled series
   ``DIR/<category>/<name>.csv`` the catalog entry ``ID`` is bound to that file (``RunConfig.sources``), and the
   pipeline runs once, from the series' first record to its last. By default in one process (``--mode single``):
   a series is a batch or a few, and forking a process per component per series costs more than it overlaps
   (7 s against 4 s for the 28 shipped series); the results are the same in both modes.
2. The pipeline's egresses are replaced by evaluation taps (:mod:`.tap`): nothing is printed, written or
   alerted; each record's score (``--score-column``, default ``anomaly_score``) and flag (``--flag-column``,
   default ``anomaly_flag``) are kept, by the record's position. A record the pipeline drops, or whose score is
   null, scores 0 and is not flagged.
3. The report, per category and pooled over the corpus:

   - the NAB score (:mod:`.nab_score`) for NAB's three profiles, *optimised on these labels* (one threshold per
     profile over the corpus, as NAB's scoreboard is made: it uses the labels) and *fixed* (how a deployment
     runs: the pipeline's flags, or ``score ≥ --threshold`` when the records have no flag column);
   - from the same fixed detections: event precision/recall/F1 in which every flagged record outside a window
     is a false positive, point-wise F1 and the mean time to detect (:mod:`.event_metrics`).

``--out DIR`` writes NAB's result files (``DIR/<category>/<detector>_<name>.csv``), which NAB's own scorer reads.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from airflow_amml.run import program_config
from airflow_amml.run_config import RunConfig
from airflow_amml.runtime.errors import PipelineError
from airflow_amml.runtime.executor import run_pipeline
from compiler import build_graph, compile_file, default_registry
from compiler.bytecode import PipelineCode, Program
from compiler.component_spec import Kind

from .event_metrics import EventCounts, event_counts
from .nab_corpus import DETECTOR_NAME, EvaluationError, LabelledSeries, load_corpus, write_results
from .nab_score import EMPTY, CostMatrix, RawScore, SeriesWorth, load_profiles, optimise_threshold, raw_score
from .tap import POSITION, read_taps, tapped_registry

ALL = "all"


@dataclass(frozen=True)
class Detections:
    """One series as the pipeline scored it: a score and a fixed decision per row."""

    series: LabelledSeries
    scores: np.ndarray
    flagged: np.ndarray


@dataclass
class Group:
    """A category (or the whole corpus): summed NAB scores per profile and pooled event counts."""

    name: str
    series: int = 0
    optimised: dict[str, RawScore] = field(default_factory=dict)
    fixed: dict[str, RawScore] = field(default_factory=dict)
    events: EventCounts = field(default_factory=EventCounts)

    def add(self, optimised: dict[str, RawScore], fixed: dict[str, RawScore], events: EventCounts) -> None:
        self.series += 1
        for profile in optimised:
            self.optimised[profile] = self.optimised.get(profile, EMPTY) + optimised[profile]
            self.fixed[profile] = self.fixed.get(profile, EMPTY) + fixed[profile]
        self.events = self.events + events


@dataclass(frozen=True)
class Report:
    pipeline: str
    detector: str
    score_column: str
    fixed_rule: str  # how the fixed detections were made, in words
    fixed_threshold: float | None  # None: the flag column
    flag_column: str | None
    profiles: dict[str, CostMatrix]
    thresholds: dict[str, float | None]  # optimised on the labels; None: no threshold beats never detecting
    groups: list[Group]  # the categories, then ALL

    def to_json(self) -> dict[str, Any]:
        def nab(scores: dict[str, RawScore], thresholds: dict[str, float | None] | None) -> dict[str, Any]:
            out = {}
            for name, raw in scores.items():
                entry = {
                    "score": raw.normalised(self.profiles[name]),
                    "raw": raw.raw,
                    "detected_windows": raw.detected_windows,
                    "false_positive_rows": raw.fp,
                }
                if thresholds is not None:
                    entry["threshold"] = thresholds[name]
                out[name] = entry
            return out

        def group(g: Group) -> dict[str, Any]:
            e = g.events
            return {
                "series": g.series,
                "windows": e.windows,
                "nab_optimised_on_these_labels": nab(g.optimised, self.thresholds),
                "nab_fixed": nab(g.fixed, None),
                "event": {
                    "precision": e.precision,
                    "recall": e.recall,
                    "f1": e.f1,
                    "detected_windows": e.detected_windows,
                    "false_positive_rows": e.false_positive_rows,
                },
                "point": {"precision": e.point_precision, "recall": e.point_recall, "f1": e.point_f1},
                "mean_time_to_detect": {"rows": e.mean_rows_to_detect, "seconds": e.mean_seconds_to_detect},
            }

        return {
            "pipeline": self.pipeline,
            "detector": self.detector,
            "score_column": self.score_column,
            "fixed": {"flag_column": self.flag_column, "threshold": self.fixed_threshold},
            "thresholds_optimised_on_these_labels": self.thresholds,
            "categories": {g.name: group(g) for g in self.groups if g.name != ALL},
            ALL: group(self.groups[-1]),
        }

    def to_text(self) -> str:
        from .report_text import render

        return render(self)


def evaluate(
    pipeline_file: Path | str,
    data_dir: Path | str,
    labels_file: Path | str,
    *,
    pipeline: str | None = None,
    score_column: str = "anomaly_score",
    flag_column: str = "anomaly_flag",
    threshold: float = 0.5,
    mode: str = "single",
    config: RunConfig | None = None,
    out_dir: Path | str | None = None,
    detector: str | None = None,
) -> Report:
    """Run the pipeline over every labelled series and score it (see the module docstring)."""
    if not math.isfinite(threshold):
        raise EvaluationError(f"--threshold {threshold}: expected a finite number", filename="--threshold")
    detector = detector or detector_name(Path(pipeline_file).stem)
    if out_dir is not None and not DETECTOR_NAME.match(detector):
        raise EvaluationError(
            f"detector name {detector!r}: NAB result files need letters and digits only",
            filename="--detector",
            hint="e.g. --detector ammlGaussian",
        )
    program = compile_file(pipeline_file)
    code = _the_pipeline(program, pipeline)
    source_id = _source_id(code, program)
    corpus = load_corpus(data_dir, labels_file)  # every label checked before anything runs
    folder = Path(pipeline_file).resolve().parent
    config = config or RunConfig.from_environment(model_paths=(folder / "models", folder))
    config = program_config(program, config)
    params = dict((program.dag or {}).get("params", {}))
    results = []
    with tempfile.TemporaryDirectory(prefix="amml-evaluate-") as tmp:
        taps = Path(tmp)
        registry = tapped_registry(taps, [score_column, flag_column])
        for series in corpus:
            bound = dataclasses.replace(config, sources={**config.sources, source_id: _entry(series)})
            _run(code, series, params, bound, mode, registry, program.filename)
            results.append(_collected(taps, series, score_column, flag_column, program.filename))
            for leftover in taps.iterdir():
                leftover.unlink()
    with_flags = {flags is not None for _, flags, reached in results if reached}
    if len(with_flags) > 1:
        raise EvaluationError(
            f"the records of some series have the flag column `{flag_column}`, of others not",
            filename=program.filename,
            hint="make every record carry the flag (or none: then --threshold decides)",
        )
    flags_seen = with_flags == {True}
    detections = [
        Detections(series, scores, flags if flags is not None else scores >= threshold)
        for series, (scores, flags, _) in zip(corpus, results)
    ]
    if out_dir is not None:
        for d in detections:
            write_results(out_dir, detector, d.series, d.scores)
    return score(
        detections,
        pipeline=str(pipeline_file),
        detector=detector,
        score_column=score_column,
        flag_column=flag_column if flags_seen else None,
        threshold=threshold,
    )


def score(
    detections: Sequence[Detections],
    *,
    pipeline: str,
    detector: str,
    score_column: str,
    flag_column: str | None,
    threshold: float,
) -> Report:
    """The report for detections already made (``flag_column`` None: the fixed detections are
    ``score ≥ threshold``)."""
    profiles = load_profiles()
    worth = [SeriesWorth.of(d.series.windows) for d in detections]
    pairs = [(w, d.scores) for w, d in zip(worth, detections)]
    thresholds = {name: optimise_threshold(pairs, cost) for name, cost in profiles.items()}
    groups: dict[str, Group] = {}
    pooled = Group(ALL)
    for w, d in zip(worth, detections):
        optimised = {n: raw_score(w, d.scores >= thresholds[n], cost) for n, cost in profiles.items()}
        fixed = {n: raw_score(w, d.flagged, cost) for n, cost in profiles.items()}
        events = event_counts(d.series.windows, d.flagged, d.series.times)
        for g in (groups.setdefault(d.series.category, Group(d.series.category)), pooled):
            g.add(optimised, fixed, events)
    rule = f"the records' flag `{flag_column}`" if flag_column else f"`{score_column}` ≥ {threshold:g}"
    return Report(
        pipeline=pipeline,
        detector=detector,
        score_column=score_column,
        fixed_rule=rule,
        fixed_threshold=None if flag_column else threshold,
        flag_column=flag_column,
        profiles=profiles,
        thresholds={n: (None if np.isinf(t) else t) for n, t in thresholds.items()},
        groups=[*groups.values(), pooled],
    )


def _the_pipeline(program: Program, name: str | None) -> PipelineCode:
    if name is not None:
        return program.pipeline(name)
    if len(program.pipelines) != 1:
        names = ", ".join(p.name for p in program.pipelines)
        raise EvaluationError(
            f"the file has {len(program.pipelines)} pipelines ({names}); evaluate runs one",
            filename=program.filename,
            hint="name it with --pipeline NAME",
        )
    return program.pipelines[0]


def _source_id(code: PipelineCode, program: Program) -> str:
    """The catalog id the pipeline reads with `source`, which evaluate binds to each series in turn."""
    nodes = build_graph(code).nodes
    registry = default_registry()
    sources = [n for n in nodes if n.component == "source"]
    where = {"filename": program.filename, "source": program.source}
    if not sources:
        raise EvaluationError(
            f"pipeline `{code.name}` reads no `source`; evaluate feeds each series to one",
            **where,
            hint='start the pipe with source id="nab"',
        )
    if not any(n.component in registry and registry[n.component].kind is Kind.EGRESS for n in nodes):
        raise EvaluationError(
            f"pipeline `{code.name}` has no egress whose records evaluate could read",
            **where,
            hint="end the pipe with an egress such as `print`: evaluate reads what reaches it",
        )
    ids = []
    for node in sources:
        value = node.callback.static_values.get("id") if node.callback is not None else None
        if not isinstance(value, str):
            raise EvaluationError(
                "evaluate binds each series to the source's `id`, which must be a constant here",
                **where,
                line=node.line,
                column=node.column,
                hint='write source id="nab"',
            )
        ids.append(value)
    if len(set(ids)) > 1:
        raise EvaluationError(
            f"pipeline `{code.name}` reads several sources ({', '.join(sorted(set(ids)))})",
            **where,
            line=sources[1].line,
            column=sources[1].column,
            hint="evaluate feeds each series to one source: keep one `source id=...`",
        )
    return ids[0]


def _run(
    code: PipelineCode, series: LabelledSeries, params: dict, config: RunConfig, mode: str, registry: Any, filename: str
) -> None:
    try:
        run_pipeline(code, run_params=params, config=config, mode=mode, registry=registry, filename=filename)
    except PipelineError as exc:
        exc.message = f"while scoring `{series.key}`: {exc.message}"
        raise


def _entry(series: LabelledSeries) -> dict[str, Any]:
    return {"path": str(series.path), "time_column": "timestamp"}


def _collected(
    taps: Path, series: LabelledSeries, score_column: str, flag_column: str, filename: str
) -> tuple[np.ndarray, np.ndarray | None, bool]:
    """(score per row, flag per row or None without a flag column, whether any record reached an egress)."""
    kept = read_taps(taps)
    useful = [(name, frame) for name, columns, frame in kept if score_column in columns or flag_column in columns]
    rows = series.windows.rows
    if not useful:
        if any(frame is not None for _, _, frame in kept):
            seen = "; ".join(f"`{name}` gets {columns}" for name, columns, _ in kept)
            raise EvaluationError(
                f"no record reaching the pipeline's egress has `{score_column}` or `{flag_column}` ({seen})",
                filename=filename,
                hint="put a detector before the egress (it adds anomaly_score and anomaly_flag), or name the "
                "columns with --score-column/--flag-column",
            )
        return np.zeros(rows), None, False  # no record reached an egress: nothing detected
    name, frame = useful[0]
    for other, again in useful[1:]:
        if not again.equals(frame):
            raise EvaluationError(
                f"the egresses `{name}` and `{other}` receive different scored records",
                filename=filename,
                hint="evaluate reads one scored stream: let one egress receive the detector's records",
            )
    position = frame[POSITION].to_numpy()
    if len(position) and (position.min() < 0 or position.max() >= rows or len(np.unique(position)) < len(position)):
        raise EvaluationError(
            f"`{series.key}`: the records reaching `{name}` do not carry their positions in the series "
            "(the batch index the source gives them)",
            filename=filename,
            hint="a component between the source and the egress renumbers its batches' index; keep the index",
        )
    scores = np.zeros(rows)
    flags = None
    if score_column in frame.columns:
        values = pd.to_numeric(frame[score_column], errors="coerce").to_numpy(dtype=float)
        scores[position] = np.nan_to_num(values, nan=0.0)
    if flag_column in frame.columns:
        flags = np.zeros(rows, dtype=bool)
        flags[position] = frame[flag_column].fillna(False).to_numpy(dtype=bool)
        if score_column not in frame.columns:
            scores = flags.astype(float)  # only flags: the score is the flag
    return scores, flags, True


def detector_name(stem: str) -> str:
    """A NAB detector name from a file name: letters and digits, camelCase (``nab_gaussian`` → ``nabGaussian``)."""
    words = [w for w in re.split(r"[^A-Za-z0-9]+", stem) if w]
    name = "".join([words[0], *(w[:1].upper() + w[1:] for w in words[1:])]) if words else ""
    return name[:64] or "amml"


def cmd_evaluate(args: Any, config: RunConfig) -> int:
    """`amml evaluate`'s body (the subcommand's options, and ``config``, come from ``airflow_amml.cli``)."""
    report = evaluate(
        args.file,
        args.data,
        args.labels,
        pipeline=args.pipeline,
        score_column=args.score_column,
        flag_column=args.flag_column,
        threshold=args.threshold,
        mode=args.mode,
        config=config,
        out_dir=args.out,
        detector=args.detector,
    )
    print(json.dumps(report.to_json(), indent=2) if args.json else report.to_text())
    return 0
