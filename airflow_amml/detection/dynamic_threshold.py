"""Hundman et al. 2018's non-parametric dynamic threshold on smoothed forecast errors (telemanom, Orion).

For errors e with mean μ and standard deviation σ, the threshold is ε = μ + z·σ with z from :data:`Z_GRID`
maximising

    (Δμ/μ + Δσ/σ) / (|e_a| + |E_seq|²)

where Δμ and Δσ are the drops in mean and std when the errors above ε are left out, e_a is the set of errors
above ε and E_seq the runs of consecutive ones. As telemanom's ``find_epsilon`` does: only z that leave some
error above, at most 5 runs and fewer than half the errors above are candidates, ties go to the larger z,
and without a candidate z is :data:`Z_DEFAULT`. Missing errors (NaN) are neither above nor counted.

:func:`threshold` computes it for one window (the reference, and what training stores with a model);
:func:`thresholds` for many windows at once, vectorised: only errors above μ + 2.5σ (the lowest ε tried) can
be above any ε, so after one pass over each window the grid is searched on those few errors alone.
"""

from __future__ import annotations

import numpy as np

Z_GRID = np.arange(2.5, 12.0, 0.5)  # telemanom: 2.5σ to 11.5σ in steps of 0.5
Z_DEFAULT = 12.0  # no z qualifies (telemanom's sd_lim)
MAX_RUNS = 5
ROWS_AT_ONCE = 256  # windows whose candidate masks are built together (bounds the memory of `thresholds`)


def threshold(errors: np.ndarray) -> tuple[float, float]:
    """(μ, ε) of one window of errors; (NaN, NaN) if it has no finite error."""
    e = np.asarray(errors, dtype=np.float64)
    finite = np.isfinite(e)
    n = int(finite.sum())
    if not n:
        return np.nan, np.nan
    mean, std = float(e[finite].mean()), float(e[finite].std())
    eps = mean + Z_GRID * std
    above = np.where(finite, e, -np.inf)[None, :] > eps[:, None]
    n_above = above.sum(axis=1)
    runs = above[:, 0].astype(np.int64) + (above[:, 1:] & ~above[:, :-1]).sum(axis=1)
    s1 = np.where(above, e, 0.0).sum(axis=1)
    s2 = np.where(above, e * e, 0.0).sum(axis=1)
    z = _best_z(np.array([n]), np.array([mean]), np.array([std]), n_above[None], runs[None], s1[None], s2[None])
    return mean, mean + float(z[0]) * std


def thresholds(windows: np.ndarray, count: np.ndarray, mean: np.ndarray, var: np.ndarray) -> np.ndarray:
    """ε of each row of ``windows`` (R × W, NaN for missing errors), given each row's count of finite errors,
    mean and population variance (e.g. from :class:`~airflow_amml.detection.rolling.RollingMoments`)."""
    rows = len(windows)
    out = np.empty(rows)
    std = np.sqrt(np.maximum(var, 0.0))
    for first in range(0, rows, ROWS_AT_ONCE):  # one step per ROWS_AT_ONCE windows, not per record
        part = slice(first, min(rows, first + ROWS_AT_ONCE))
        out[part] = mean[part] + _grid_search(windows[part], count[part], mean[part], std[part]) * std[part]
    return out


def _grid_search(windows: np.ndarray, n: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    r, c = np.nonzero(windows > (mean + Z_GRID[0] * std)[:, None])  # candidates, by row then position
    v = windows[r, c]
    # the candidate just before in the same window, if the position before is one (else it is not above)
    prev = np.full(len(v), -np.inf)
    follows = np.zeros(len(v), dtype=bool)
    follows[1:] = (r[1:] == r[:-1]) & (c[1:] == c[:-1] + 1)
    prev[1:][follows[1:]] = v[:-1][follows[1:]]
    eps = mean[r][:, None] + Z_GRID[None, :] * std[r][:, None]  # K × G
    above = v[:, None] > eps
    starts = above & ~(prev[:, None] > eps)
    per_candidate = (above, starts, np.where(above, v[:, None], 0.0), np.where(above, (v * v)[:, None], 0.0))
    n_above, runs, s1, s2 = (_sum_by_row(a, r, len(windows)) for a in per_candidate)
    return _best_z(n, mean, std, n_above, runs, s1, s2)


def _sum_by_row(values: np.ndarray, rows: np.ndarray, count: int) -> np.ndarray:
    """Sum the candidates' rows (K × G, sorted by window) into one row per window (count × G)."""
    out = np.zeros((count, values.shape[1]))
    if len(rows):
        present, first = np.unique(rows, return_index=True)
        out[present] = np.add.reduceat(values.astype(np.float64), first, axis=0)
    return out


def _best_z(
    n: np.ndarray,
    mean: np.ndarray,
    std: np.ndarray,
    n_above: np.ndarray,
    runs: np.ndarray,
    s1_above: np.ndarray,
    s2_above: np.ndarray,
) -> np.ndarray:
    """Per row, the z of Hundman's criterion, from each z's count, runs and sums of the errors above ε."""
    n, mean, std = (np.asarray(a, dtype=np.float64)[:, None] for a in (n, mean, std))
    with np.errstate(invalid="ignore", divide="ignore"):
        n_below = n - n_above
        m_below = (n * mean - s1_above) / n_below
        var_below = (n * (std * std + mean * mean) - s2_above) / n_below - m_below * m_below
        sd_below = np.sqrt(np.maximum(var_below, 0.0))
        objective = ((mean - m_below) / mean + (std - sd_below) / std) / (n_above + runs * runs)
    valid = (n_above > 0) & (runs <= MAX_RUNS) & (n_above < 0.5 * n) & np.isfinite(objective)
    scored = np.where(valid, objective, -np.inf)
    last_best = scored.shape[1] - 1 - np.argmax(scored[:, ::-1], axis=1)  # the largest z among the best
    return np.where(valid.any(axis=1), Z_GRID[last_best], Z_DEFAULT)


# ---- a threshold learnt when a forecasting model is trained ---------------------------------------------

DEFAULT_SMOOTH = 3  # the span of the EWMA over absolute errors (residual_detector's `smooth` default)
STORED_METRICS = ("residual_mean", "residual_threshold", "residual_smooth")  # stored with the model version


def residual_threshold(actual: np.ndarray, predicted: np.ndarray, smooth: int = DEFAULT_SMOOTH) -> dict[str, float]:
    """The dynamic threshold of a model's one-step errors on some records, as metrics to register with the
    model version; ``residual_detector model=...`` reads them back instead of choosing a threshold online.
    The errors are smoothed as the detector smooths them (an EWMA of span ``smooth`` from the first one)."""
    from .rolling import Ewma

    errors = np.abs(np.asarray(actual, dtype=np.float64) - np.asarray(predicted, dtype=np.float64))
    smoothed = Ewma(2.0 / (smooth + 1.0)).update(errors)
    mean, eps = threshold(smoothed)
    return {
        "residual_mean": mean,
        "residual_threshold": eps,
        "residual_smooth": smooth,
        "residual_records": int(np.isfinite(errors).sum()),
    }
