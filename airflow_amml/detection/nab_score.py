"""The NAB score (Lavin & Ahmad, ICMLA 2015), from its published definition in numenta/NAB (``nab/sweeper.py``,
``nab/optimizer.py``, ``nab/runner.py``).

For one series and a profile's weights ``tp``, ``fp``, ``fn`` (``profiles.json``), with σ(y) = 2/(1 + e^(5y)) − 1
(σ = −1 for y > 3):

- a *detection* is a row whose anomaly score is ≥ the threshold; rows of the probationary period
  (:func:`~airflow_amml.detection.windows.probation_length`) are not scored;
- a window of width w whose last row is r is worth ``tp · σ(−(r − i + 1)/w) / σ(−1)`` for its earliest detection,
  at row i: ``tp`` at its first row, falling to σ(−1/w)/σ(−1)·tp ≈ 0 at its last. Later detections in the same
  window add nothing; a window without one costs ``−fn``;
- a detection outside every window costs by its distance past the window before it: ``fp · σ((i − r)/(w − 1))``
  (r, w: that window's last row and width), about 0 just after it and −fp from three widths on; before the first
  window, −fp;
- the raw score of a corpus is the sum over its series; it is normalised to
  ``100 · (raw − null)/(perfect − null)`` with the null detector (no detection: ``−fn`` per window) at 0 and the
  perfect one (each window at its first row, nothing else: ``tp`` per window) at 100.

NAB's scoreboard sets one threshold per detector and profile: the one that maximises the raw score summed over
the whole corpus (``optimizer.py`` sweeps every distinct anomaly score, highest first). That uses the labels;
:func:`optimise_threshold` does exactly that, :func:`raw_score` scores a fixed threshold (or any detections).

Choices where NAB's code does not decide: a window of one row has no width past it, so a detection after it
counts its distance in rows (NAB would divide by zero); a window wholly inside the probationary period is not
scored, nor counted in null and perfect (NAB's data has none). Scores that are NaN never detect.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd

from .windows import SeriesWindows

SHIPPED_PROFILES = Path(__file__).resolve().parents[1] / "data" / "nab" / "profiles.json"


@dataclass(frozen=True)
class CostMatrix:
    """A scoring profile's weights: true positive (a detected window), false positive, false negative."""

    tp: float
    fp: float
    fn: float


def load_profiles(path: Path | str = SHIPPED_PROFILES) -> dict[str, CostMatrix]:
    """NAB's profiles file (``config/profiles.json``): name → cost matrix."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    return {
        name: CostMatrix(
            float(m["CostMatrix"]["tpWeight"]), float(m["CostMatrix"]["fpWeight"]), float(m["CostMatrix"]["fnWeight"])
        )
        for name, m in data.items()
    }


def scaled_sigmoid(position: np.ndarray | float) -> np.ndarray:
    """NAB's σ(y) = 2/(1 + e^(5y)) − 1, and −1 for y > 3: σ(−1) = 0.98661, σ(0) = 0, σ(1) = −0.98661."""
    y = np.asarray(position, dtype=float)
    return np.where(y > 3.0, -1.0, 2.0 / (1.0 + np.exp(5.0 * np.minimum(y, 3.0))) - 1.0)


MAX_TP = float(scaled_sigmoid(-1.0))


@dataclass(frozen=True)
class SeriesWorth:
    """What a detection at each scored row of one series is worth, before the profile's weights: in a window,
    ``σ(position)/σ(−1)`` (in (0, 1]); outside, σ of its distance past the previous window (in [−1, 0])."""

    windows: SeriesWindows
    window: np.ndarray  # per scored row: its window's number, -1 outside
    worth: np.ndarray  # per scored row

    @classmethod
    def of(cls, windows: SeriesWindows) -> SeriesWorth:
        row = np.arange(windows.rows)
        window = windows.window_of_rows()
        inside = window >= 0
        worth = np.empty(windows.rows)
        if windows.count:
            k = window[inside]
            width = windows.right[k] - windows.left[k] + 1
            worth[inside] = scaled_sigmoid(-(windows.right[k] - row[inside] + 1) / width) / MAX_TP
        # outside: relative to the last window that ended before the row (none: the farthest, σ = −1)
        before = np.searchsorted(windows.right, row[~inside], side="left") - 1
        has_window = before >= 0
        past = np.full(len(before), 4.0)
        if has_window.any():
            prev = before[has_window]
            width = windows.right[prev] - windows.left[prev] + 1
            past[has_window] = (row[~inside][has_window] - windows.right[prev]) / np.maximum(width - 1, 1)
        worth[~inside] = scaled_sigmoid(past)
        scored = windows.scored()
        return cls(windows, window[scored], worth[scored])

    def weighted(self, cost: CostMatrix) -> np.ndarray:
        return np.where(self.window >= 0, cost.tp * self.worth, cost.fp * self.worth)

    @property
    def scored_windows(self) -> int:
        return int(self.windows.scored_windows().sum())


@dataclass(frozen=True)
class RawScore:
    """One series' (or a corpus's, summed) raw NAB score with NAB's counts of scored rows."""

    raw: float
    windows: int
    detected_windows: int
    tp: int
    fp: int
    fn: int
    tn: int

    def __add__(self, other: RawScore) -> RawScore:
        return RawScore(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))

    def normalised(self, cost: CostMatrix) -> float | None:
        """100 · (raw − null)/(perfect − null); None without a window (null and perfect are both 0)."""
        null, perfect = -cost.fn * self.windows, cost.tp * self.windows
        return None if perfect == null else 100.0 * (self.raw - null) / (perfect - null)


EMPTY = RawScore(0.0, 0, 0, 0, 0, 0, 0)


def raw_score(series: SeriesWorth, detected: np.ndarray, cost: CostMatrix) -> RawScore:
    """The raw score of one series for the rows ``detected`` (a boolean per row of the series)."""
    hit = np.asarray(detected, dtype=bool)[series.windows.scored()]
    inside = series.window >= 0
    false_positive = float(cost.fp * series.worth[hit & ~inside].sum())
    best = np.full(series.windows.count, -np.inf)
    np.maximum.at(best, series.window[hit & inside], series.worth[hit & inside])  # the earliest is the best
    scored = series.windows.scored_windows()
    found = np.isfinite(best) & scored
    true_positive = float(cost.tp * best[found].sum())
    missed = int(scored.sum() - found.sum())
    tp, fp = int((hit & inside).sum()), int((hit & ~inside).sum())
    return RawScore(
        raw=true_positive + false_positive - cost.fn * missed,
        windows=int(scored.sum()),
        detected_windows=int(found.sum()),
        tp=tp,
        fp=fp,
        fn=int(inside.sum()) - tp,
        tn=int((~inside).sum()) - fp,
    )


@dataclass(frozen=True)
class Sweep:
    """Raw corpus score for every distinct threshold, highest first; ``thresholds[0]`` is +inf (no detection)."""

    thresholds: np.ndarray
    raw: np.ndarray

    def best(self) -> tuple[float, float]:
        """(threshold, raw score) of the best threshold; among equal scores the highest threshold, as NAB."""
        k = int(np.argmax(self.raw))
        return float(self.thresholds[k]), float(self.raw[k])


def sweep(corpus: Sequence[tuple[SeriesWorth, np.ndarray]], cost: CostMatrix) -> Sweep:
    """The raw score of ``corpus`` (pairs of a series and its anomaly scores, one per row) at every threshold,
    as NAB's ``Sweeper.calcScoreByThreshold`` walks them: every scored row of every series sorted by anomaly
    score, highest first, once; lowering the threshold past a score turns its rows into detections. A row
    outside windows adds its weighted worth; a row in a window raises the window's value to the best worth
    detected in it so far (the window starts at −fn)."""
    scores, window, worth, null = [], [], [], 0.0
    offset = 0
    for series, anomaly_scores in corpus:
        scores.append(np.asarray(anomaly_scores, dtype=float)[series.windows.scored()])
        window.append(np.where(series.window >= 0, series.window + offset, -1))
        worth.append(series.weighted(cost))
        offset += series.windows.count
        null -= cost.fn * series.scored_windows
    s, w, v = (np.concatenate(a) if a else np.empty(0) for a in (scores, window, worth))
    keep = ~np.isnan(s)
    s, w, v = s[keep], w[keep].astype(np.int64), v[keep]
    order = np.argsort(-s, kind="stable")
    s, w, v = s[order], w[order], v[order]
    change = np.where(w < 0, v, 0.0)
    inside = np.flatnonzero(w >= 0)
    if len(inside):
        # each window's value as its rows are detected: the running best, from −fn
        best = pd.Series(v[inside]).groupby(w[inside]).cummax()
        previous = best.groupby(w[inside]).shift(1).fillna(-cost.fn)
        change[inside] = (best - previous).to_numpy()
    raw = null + np.cumsum(change)
    ends = np.flatnonzero(np.r_[s[1:] != s[:-1], True]) if len(s) else np.empty(0, dtype=np.int64)
    return Sweep(np.r_[np.inf, s[ends]], np.r_[null, raw[ends]])


def optimise_threshold(corpus: Sequence[tuple[SeriesWorth, np.ndarray]], cost: CostMatrix) -> float:
    """NAB's threshold for ``corpus``: the one maximising the summed raw score (+inf: no threshold does better
    than never detecting)."""
    return sweep(corpus, cost).best()[0]


def corpus_scores(
    corpus: Mapping[str, tuple[SeriesWorth, np.ndarray]], cost: CostMatrix, threshold: float
) -> dict[str, RawScore]:
    """Each series' raw score when its rows with an anomaly score ≥ ``threshold`` are detections."""
    return {
        name: raw_score(series, np.asarray(scores, dtype=float) >= threshold, cost)
        for name, (series, scores) in corpus.items()
    }
