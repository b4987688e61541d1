"""Streaming anomaly detectors: each adds a score in [0, 1] and a boolean flag to every record.

    source id='ett' | gaussian_detector cols=['OT'] | alarm | alert cond=alarm

Every detector is causal — the score of a record uses only the records up to it — and keeps its state across
batches with the helpers of :mod:`airflow_amml.detection.rolling`, so its output does not depend on
``batch_rows``. Work per batch is vectorised over the batch (plus a carried tail bounded by the window).

Common parameters: ``cols`` (default: every numeric column, except the scores and flags of detectors
upstream), ``combine`` (how the columns' scores make the record's: ``max`` — flagged when any column is —,
``mean``, or ``min`` — flagged when all are), ``threshold`` (a record is flagged when its score is at least
this), ``score`` and ``flag`` (the names of the columns added, so detectors can be stacked).

Scores from a z-value use the two-sided normal tail: ``score = 1 - 2·Q(|z|) = erf(|z|/√2)``, the probability
that a normal value lies closer to the mean (0 at the mean, 0.6827 at 1σ, 0.9973 at 3σ). NAB's windowed
Gaussian reports ``1 - Q(|z|) = (1 + score) / 2``: the same order, so the same NAB score after its threshold
optimisation. A record whose value is missing, or that comes before a detector has enough history, scores 0
and is not flagged.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view
from scipy.special import erf, ndtr

from airflow_amml.detection.dynamic_threshold import STORED_METRICS, thresholds
from airflow_amml.detection.rolling import (
    MAX_WINDOW,
    Ewma,
    Lag,
    Moments,
    RollingMoments,
    RollingQuantiles,
    previous,
)
from airflow_amml.sdk import AbstractProgress, PipelineError, RunConfig
from compiler.value_checks import DURATION_EXAMPLES, duration_seconds

from .column_params import record_times, time_column

DETECTOR_ATTR = "amml.detector_columns"  # score and flag columns added upstream: not data to score again
STD_FLOOR = 1e-6  # NAB's: a window whose values are all equal has std 0, and any other value is then anomalous
IQR_TO_SIGMA = 1.3489795003921634  # IQR of the standard normal: IQR / 1.349 estimates σ


def two_sided_score(z: np.ndarray) -> np.ndarray:
    """erf(|z|/√2): 0 at the mean, → 1 far from it; NaN (no statistics yet) scores 0."""
    return np.where(np.isnan(z), 0.0, erf(np.abs(z) / math.sqrt(2.0)))


SIGMA_SCALE = 20.0  # `scale='sigma'`: |z| / 20, so a score keeps growing up to 20σ


def sigma_score(z: np.ndarray) -> np.ndarray:
    """min(|z| / 20, 1): linear in the distance, where erf saturates past 5σ (1 - 1e-7) and every big outlier
    looks alike — what a post-processor comparing scores with their own history needs."""
    return np.where(np.isnan(z), 0.0, np.minimum(np.abs(z) / SIGMA_SCALE, 1.0))


def z_values(x: np.ndarray, centre: np.ndarray, spread: np.ndarray) -> np.ndarray:
    """(x - centre) / spread, with a zero spread floored at :data:`STD_FLOOR` (a value equal to the centre is
    then z = 0, any other is far out)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return (x - centre) / np.where(spread > 0, spread, STD_FLOOR)


class _Detector(AbstractProgress):
    """Resolves the columns, scores each with per-column state, combines, and adds the score and flag."""

    default_threshold = 0.5
    needs_columns = True  # False: the detector can score without a column (a `cond`)

    def open(self) -> None:
        for out in ("score", "flag"):
            if not isinstance(self.params.get(out), str) or not self.params[out]:
                raise PipelineError(f"`{self.name} {out}=`: expected the name of the column to add")
        if self.params.get("score") == self.params.get("flag"):
            raise PipelineError(
                f"`{self.name}`: `score` and `flag` both name the column {self.params['score']!r}",
                hint="give them different names, e.g. score='s2', flag='f2'",
            )
        self.combine = self.params.get("combine", "max")
        self.cols: list[str] | None = None
        self.states: dict[str, Any] = {}
        self.z_score = sigma_score if self.params.get("scale") == "sigma" else two_sided_score
        self.setup()
        given = self.params.get("threshold")
        self.threshold = self._number("threshold", 0.0, 1.0, self.default_threshold if given is None else given)

    def setup(self) -> None:
        """Check this detector's own parameters."""

    # ---- parameters ---------------------------------------------------------------------------------

    def _min_periods(self, window: int) -> int:
        """Records a window needs before it scores: `min_periods`, by default min(30, window)."""
        if self.params.get("min_periods") is None:
            return min(30, window)
        return self._count("min_periods", 1, window)

    def _number(self, name: str, low: float, high: float, value: Any = None) -> float:
        value = self.params.get(name) if value is None else value
        if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
            raise PipelineError(
                f"`{self.name} {name}={value!r}`: expected a number from {low:g} to {high:g}",
                hint=f"e.g. {name}={(low + high) / 2:g}" if high < 10 else None,
            )
        return float(value)

    def _count(self, name: str, low: int = 1, high: int = MAX_WINDOW) -> int:
        value = self.params.get(name)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            hint = (
                f"a window holds at most {high:,} records (its state is kept in memory); use a shorter one"
                if isinstance(value, int) and value > high
                else f"e.g. {name}={max(low, 100)}"
            )
            raise PipelineError(
                f"`{self.name} {name}={value!r}`: expected a whole number of records from {low:,} to {high:,}",
                hint=hint,
            )
        return value

    # ---- per batch ----------------------------------------------------------------------------------

    def process(self, batch: pd.DataFrame) -> pd.DataFrame:
        cols = self._columns(batch)
        scores = [self.score(col, self._values(batch, col), batch) for col in cols]
        extra = self.extra_score(batch)
        if extra is not None:
            scores.append(extra)
        if not scores:
            combined = np.zeros(len(batch))
        elif len(scores) == 1:
            combined = scores[0]
        else:
            stacked = np.vstack(scores)
            combined = {"max": np.max, "mean": np.mean, "min": np.min}[self.combine](stacked, axis=0)
        combined = np.clip(np.nan_to_num(combined, nan=0.0), 0.0, 1.0)
        out = batch.copy(deep=False)
        out[self.params["score"]] = combined
        out[self.params["flag"]] = combined >= self.threshold
        added = list(batch.attrs.get(DETECTOR_ATTR, ()))
        out.attrs[DETECTOR_ATTR] = [*added, *(c for c in (self.params["score"], self.params["flag"]) if c not in added)]
        return out

    def score(self, col: str, values: np.ndarray, batch: pd.DataFrame) -> np.ndarray:
        """Scores in [0, 1] of one column's values in this batch (NaN counts as 0)."""
        raise NotImplementedError

    def extra_score(self, batch: pd.DataFrame) -> np.ndarray | None:
        """A score that is not one column's (the threshold detector's `cond`)."""
        return None

    def default_columns(self, batch: pd.DataFrame) -> list[str]:
        skip = {*batch.attrs.get(DETECTOR_ATTR, ()), self.params["score"], self.params["flag"]}
        return [
            c
            for c in batch.columns
            if c not in skip and pd.api.types.is_numeric_dtype(batch[c]) and not pd.api.types.is_bool_dtype(batch[c])
        ]

    def _columns(self, batch: pd.DataFrame) -> list[str]:
        if self.cols is None:
            cols = self.params.get("cols")
            self.cols = list(cols) if cols else self.default_columns(batch)
            if not self.cols and self.needs_columns:
                raise PipelineError(
                    f"`{self.name}`: the records have no numeric column to score; they have {list(batch.columns)}",
                    hint="name the columns with cols=[...]",
                )
        missing = [c for c in self.cols if c not in batch.columns]
        if missing:
            raise PipelineError(
                f"`{self.name}`: no column(s) {missing}; the records have {list(batch.columns)}",
                hint="name columns the records have in cols=[...]",
            )
        return self.cols

    def _values(self, batch: pd.DataFrame, col: str) -> np.ndarray:
        series = batch[col]
        if not pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
            raise PipelineError(
                f"`{self.name}`: column `{col}` holds {series.dtype} values, not numbers",
                hint="score numeric columns only (cols=[...]), or convert it upstream with `derive`",
            )
        return series.to_numpy(dtype=np.float64, na_value=np.nan)

    def state(self, col: str) -> Any:
        if col not in self.states:
            self.states[col] = self.new_state()
        return self.states[col]

    def new_state(self) -> Any:
        return None


# ---- 1. bounds ------------------------------------------------------------------------------------------


class ThresholdDetector(_Detector):
    """`threshold_detector cols=['OT'], high=40`: flag values beyond fixed bounds, or where `cond` holds.

    Inside the bounds the score is 0; a value a distance d beyond one scores 0.5 + 0.5·(1 - exp(-d/scale)),
    so every value beyond a bound is flagged (threshold 0.5) and the score grows with the distance. `cond`
    scores 1 where it holds."""

    def setup(self) -> None:
        self.low, self.high = self.params.get("low"), self.params.get("high")
        for name, value in (("low", self.low), ("high", self.high)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
                raise PipelineError(f"`threshold_detector {name}={value!r}`: expected a number")
        if self.low is not None and self.high is not None and self.low > self.high:
            raise PipelineError(f"`threshold_detector`: low={self.low} is above high={self.high}", hint="swap them")
        self.has_cond = self.callback is not None and "cond" in self.callback.assigned
        self.needs_columns = self.low is not None or self.high is not None
        if not self.needs_columns and not self.has_cond:
            raise PipelineError(
                "`threshold_detector` needs a bound (`low=`, `high=`) or a condition (`cond=`)",
                hint="e.g. threshold_detector cols=['OT'], high=40",
            )
        scale = self.params.get("scale")
        if scale is None:
            scale = (self.high - self.low) if self.low is not None and self.high is not None else 1.0
        self.scale = self._number("scale", 0.0, math.inf, scale) or 1.0

    def default_columns(self, batch: pd.DataFrame) -> list[str]:
        if self.low is None and self.high is None:
            return []  # only `cond`: no column is compared with anything
        return super().default_columns(batch)

    def score(self, col: str, values: np.ndarray, batch: pd.DataFrame) -> np.ndarray:
        beyond = np.zeros(len(values))
        if self.low is not None:
            beyond = np.fmax(beyond, self.low - values)
        if self.high is not None:
            beyond = np.fmax(beyond, values - self.high)
        outside = beyond > 0
        return np.where(outside, 0.5 + 0.5 * (1.0 - np.exp(-beyond / self.scale)), 0.0)

    def extra_score(self, batch: pd.DataFrame) -> np.ndarray | None:
        if not self.has_cond:
            return None
        return self.condition(batch).astype(np.float64)


# ---- 2. windowed Gaussian -------------------------------------------------------------------------------


class _WindowedState:
    def __init__(self, window: int) -> None:
        self.moments = RollingMoments(window)
        self.seen = 0  # records of this column so far
        self.carried = Moments(np.array([0.0]), np.array([np.nan]), np.array([np.nan]))  # at the last refresh


class GaussianDetector(_Detector):
    """`gaussian_detector window=6400`: NAB's windowed Gaussian. A record's z-value is its distance from the
    mean of the `window` records before it, in their standard deviations (population std; all equal → the
    std is floored at 1e-6, as NAB does). As in NAB's detector the window excludes the current record, and
    with `step=S` its statistics are refreshed only every S records once it is full (NAB: window 6400,
    step 100); the default `step=1` refreshes them at every record."""

    default_threshold = 0.9973

    def setup(self) -> None:
        self.window = self._count("window")
        self.step = self._count("step", 1, self.window)
        self.min_periods = self._min_periods(self.window)

    def new_state(self) -> _WindowedState:
        return _WindowedState(self.window)

    def score(self, col: str, values: np.ndarray, batch: pd.DataFrame) -> np.ndarray:
        st: _WindowedState = self.state(col)
        n, start = len(values), st.seen
        here = st.moments.update(values)  # the window ending at each record, the record included
        # the statistics each record is scored with: those of the last refresh before it (NAB's stepBuffer)
        positions = np.arange(start, start + n)
        used = self._refresh_point(positions)
        inside = used >= start
        stats = self._pick(here, st.carried, used - start, inside)
        if n:
            following = int(self._refresh_point(np.array([start + n]))[0])  # what the next record will use
            if following >= start:
                st.carried = here.at(slice(following - start, following - start + 1))
        st.seen += n
        z = z_values(values, stats.mean, np.sqrt(stats.var))
        return np.where(stats.count >= self.min_periods, self.z_score(z), 0.0)

    def _refresh_point(self, i: np.ndarray) -> np.ndarray:
        """The position whose window scores record i: i-1 while the window fills, then the last of every
        `step` records (NAB slides its window when its step buffer is full)."""
        w, s = self.window, self.step
        return np.where(i <= w, i - 1, w - 1 + s * ((i - w) // s))

    @staticmethod
    def _pick(here: Moments, carried: Moments, index: np.ndarray, inside: np.ndarray) -> Moments:
        safe = np.where(inside, index, 0)
        if not len(here):
            return here

        def one(a: np.ndarray, b: np.ndarray) -> np.ndarray:
            return np.where(inside, a[safe], b[0])

        return Moments(one(here.count, carried.count), one(here.mean, carried.mean), one(here.var, carried.var))


# ---- 3. robust rolling ----------------------------------------------------------------------------------


class _QuantileState:
    def __init__(self, window: int) -> None:
        self.quantiles = RollingQuantiles(window, (0.25, 0.5, 0.75))
        self.before = (np.nan, np.nan, np.nan, 0.0)  # q1, median, q3, count of the window before the batch


class RobustDetector(_Detector):
    """`robust_detector window=1000`: robust z = (x - median) / (IQR / 1.349) over the `window` records
    before the current one; IQR / 1.349 estimates σ for normal data and ignores up to a quarter of outliers
    in the window. A window whose IQR is 0 floors it like the Gaussian detector's std."""

    default_threshold = 0.9973

    def setup(self) -> None:
        self.window = self._count("window")
        self.min_periods = self._min_periods(self.window)

    def new_state(self) -> _QuantileState:
        return _QuantileState(self.window)

    def score(self, col: str, values: np.ndarray, batch: pd.DataFrame) -> np.ndarray:
        st: _QuantileState = self.state(col)
        (q1, median, q3), count = st.quantiles.update(values)
        # the window before each record: the previous record's window (carried across the batch edge)
        prev = [np.concatenate([[b], a[:-1]]) for a, b in zip((q1, median, q3, count), st.before)]
        if len(values):
            st.before = (q1[-1], median[-1], q3[-1], count[-1])
        q1p, medp, q3p, countp = prev
        z = z_values(values, medp, (q3p - q1p) / IQR_TO_SIGMA)
        return np.where(countp >= self.min_periods, self.z_score(z), 0.0)


# ---- 3b. stuck sensor ----------------------------------------------------------------------------------


class _RunState:
    def __init__(self) -> None:
        self.last = np.nan  # the previous record's value (NaN: none, or missing)
        self.run = 0  # records in the run ending at the previous record (0 after a missing value)
        self.start = np.datetime64("NaT", "ns")  # when that run began (duration mode)


class FlatlineDetector(_Detector):
    """`flatline_detector records=12`: a stuck sensor — a column whose value has not changed by more than
    `tolerance` from one record to the next for at least `records` consecutive records, or for a duration
    (`records='1h'`, measured on the `time` column from the run's first record).

    A record's run is the records since the value last moved by more than `tolerance` (itself included: a
    value unlike the one before has run 1); a missing value has run 0 and ends the run. The score is
    min(run / (2·records), 1) — for a duration D, min(elapsed / (2·D), 1), elapsed being 0 at the run's
    first record — so it grows with the run, and the default threshold 0.5 flags a run once it is `records`
    long (or has lasted D). Only the current run length (and its start) is carried across batches."""

    def setup(self) -> None:
        tolerance = self.params.get("tolerance", 0.0)
        if isinstance(tolerance, bool) or not isinstance(tolerance, int | float) or not 0 <= tolerance < math.inf:
            raise PipelineError(
                f"`{self.name} tolerance={tolerance!r}`: expected a change of 0 or more",
                hint="tolerance=0 counts only exactly equal values as stuck; e.g. tolerance=0.01 allows noise",
            )
        self.tolerance = float(tolerance)
        length = self.params.get("records", 12)
        self.records: int | None = None
        self.duration: np.timedelta64 | None = None
        if isinstance(length, int) and not isinstance(length, bool):
            self.records = self._count("records", 2)
        else:
            seconds = duration_seconds(length)
            if not seconds:
                raise PipelineError(
                    f"`{self.name} records={length!r}`: expected a number of records or a positive duration",
                    hint=f"e.g. records=12, or a duration such as {DURATION_EXAMPLES} (with time='...')",
                )
            self.duration = np.timedelta64(seconds, "s").astype("timedelta64[ns]")
        self.time_col: str | None = self.params.get("time")
        self.stamps: np.ndarray | None = None

    def new_state(self) -> _RunState:
        return _RunState()

    def default_columns(self, batch: pd.DataFrame) -> list[str]:
        return [c for c in super().default_columns(batch) if c != self.time_col]

    def process(self, batch: pd.DataFrame) -> pd.DataFrame:
        if self.duration is not None:
            self.stamps = record_times(self.name, batch, self.time_col)
        return super().process(batch)

    def score(self, col: str, values: np.ndarray, batch: pd.DataFrame) -> np.ndarray:
        st: _RunState = self.state(col)
        n = len(values)
        if not n:
            return np.zeros(0)
        before, _ = previous(values, st.last)
        with np.errstate(invalid="ignore"):
            moved = ~(np.abs(values - before) <= self.tolerance)  # NaN on either side: not the same value
        positions = np.arange(n)
        # the last position at or before each record where a run began (-1: it began before the batch)
        began = np.maximum.accumulate(np.where(moved, positions, -1))
        missing = ~np.isfinite(values)
        if self.duration is None:
            run = np.where(began >= 0, positions - began + 1, st.run + positions + 1)
            run[missing] = 0
            st.run, st.last = int(run[-1]), values[-1]
            return np.minimum(run / (2.0 * self.records), 1.0)
        stamps = self.stamps
        start = np.where(began >= 0, stamps[np.maximum(began, 0)], st.start)
        elapsed = np.maximum((stamps - start) / self.duration, 0.0)  # a clock stepping back: 0, not negative
        elapsed[missing] = 0.0
        st.start, st.last = start[-1], values[-1]
        return np.minimum(elapsed / 2.0, 1.0)


# ---- 4. seasonal baseline -------------------------------------------------------------------------------

PERIODS = {"hour_of_day": 24, "day_of_week": 7, "hour_of_week": 168}


class _SlotState:
    """Per slot: the exponentially weighted mean's and variance's filter states, and the record count."""

    def __init__(self, slots: int) -> None:
        self.mean = np.full(slots, np.nan)
        self.var = np.zeros(slots)
        self.count = np.zeros(slots, dtype=np.int64)


class SeasonalDetector(_Detector):
    """`seasonal_detector time='timestamp', period='hour_of_week'`: the expected value and spread of each
    slot (hour of day, day of week, or hour of week) from the records seen in that slot so far, as
    exponentially weighted mean and variance (each new record in a slot weighs `alpha`): a record is scored
    against its slot's statistics before it. Suits series with daily or weekly patterns (taxi demand,
    traffic, load)."""

    default_threshold = 0.9973

    def setup(self) -> None:
        self.alpha = self._number("alpha", 1e-6, 1.0)
        self.slots = PERIODS[self.params.get("period", "hour_of_week")]
        self.min_periods = self._count("min_periods", 1, 1_000_000)
        self.time_col: str | None = self.params.get("time")

    def default_columns(self, batch: pd.DataFrame) -> list[str]:
        return [c for c in super().default_columns(batch) if c != self._time_column(batch)]

    def _time_column(self, batch: pd.DataFrame) -> str:
        self.time_col = time_column("seasonal_detector", batch, self.time_col, needs="no timestamp column")
        return self.time_col

    def process(self, batch: pd.DataFrame) -> pd.DataFrame:
        col = self._time_column(batch)
        try:
            stamps = pd.to_datetime(batch[col], format="ISO8601" if batch[col].dtype == object else None)
        except (ValueError, TypeError) as exc:
            raise PipelineError(
                f"`seasonal_detector`: column `{col}` does not hold timestamps: {exc}",
                hint="name the timestamp column with time='...'",
            ) from None
        if stamps.isna().any():
            where = int(np.flatnonzero(stamps.isna().to_numpy())[0])
            raise PipelineError(
                f"`seasonal_detector`: record {batch.index[where]} has no timestamp in `{col}`",
                hint="drop such records upstream: filter cond=...",
            )
        period = self.params.get("period", "hour_of_week")
        hours, days = stamps.dt.hour.to_numpy(), stamps.dt.day_of_week.to_numpy()
        self.slot_of = {"hour_of_day": hours, "day_of_week": days, "hour_of_week": days * 24 + hours}[period]
        return super().process(batch)

    def new_state(self) -> _SlotState:
        return _SlotState(self.slots)

    def score(self, col: str, values: np.ndarray, batch: pd.DataFrame) -> np.ndarray:
        from scipy.signal import lfilter

        st: _SlotState = self.state(col)
        a = self.alpha
        scores = np.zeros(len(values))
        finite = np.isfinite(values)
        slots = self.slot_of
        order = np.argsort(np.where(finite, slots, self.slots), kind="stable")  # by slot, then stream order
        bounds = np.searchsorted(np.where(finite, slots, self.slots)[order], np.arange(self.slots + 1))
        for slot in np.flatnonzero(np.diff(bounds)):  # one step per slot present, not per record
            idx = order[bounds[slot] : bounds[slot + 1]]
            x = values[idx]
            mean_before = np.empty(len(x))
            var_before = np.empty(len(x))
            if np.isnan(st.mean[slot]):  # the slot's first record starts its statistics
                st.mean[slot], st.var[slot] = x[0], 0.0
                mean_before[0], var_before[0] = np.nan, np.nan
                rest = slice(1, None)
            else:
                rest = slice(0, None)
            xs = x[rest]
            if len(xs):
                # m_t = (1-a)·m_(t-1) + a·x_t, and v_t = (1-a)·(v_(t-1) + a·(x_t - m_(t-1))^2) (West, 1979)
                m, _ = lfilter([a], [1.0, -(1.0 - a)], xs, zi=[(1.0 - a) * st.mean[slot]])
                m_prev = np.concatenate([[st.mean[slot]], m[:-1]])
                d = (xs - m_prev) ** 2
                v, _ = lfilter([a * (1.0 - a)], [1.0, -(1.0 - a)], d, zi=[(1.0 - a) * st.var[slot]])
                v_prev = np.concatenate([[st.var[slot]], v[:-1]])
                mean_before[rest], var_before[rest] = m_prev, v_prev
                st.mean[slot], st.var[slot] = m[-1], v[-1]
            counts = st.count[slot] + np.arange(len(x))  # records of the slot before each one
            st.count[slot] += len(x)
            # the variance starts at 0 with the slot's first record, and would long be too small (and flag
            # everything); divided by its weights' sum (1 - a)(1 - (1 - a)^(k - 1)) after k records it is not
            with np.errstate(invalid="ignore", divide="ignore"):
                var_before = var_before / ((1.0 - a) * (1.0 - (1.0 - a) ** (counts - 1.0)))
            z = z_values(x, mean_before, np.sqrt(var_before))
            scores[idx] = np.where(counts >= self.min_periods, self.z_score(z), 0.0)
        return scores


# ---- 5. forecast residuals with a dynamic threshold ----------------------------------------------------


class _ResidualState:
    def __init__(self, alpha: float, smooth: int, shift: int, window: int) -> None:
        self.forecast = Ewma(alpha)
        self.forecast_before = np.nan  # the EWMA up to the record before the batch: its forecast
        self.pred = Lag(shift)
        self.smoothed = Ewma(2.0 / (smooth + 1.0))
        self.errors = np.full(window, np.nan)  # the smoothed errors of the `window` records before the batch
        self.moments = RollingMoments(window)  # their count, mean and variance
        self.moments_before = Moments(np.array([0.0]), np.array([np.nan]), np.array([np.nan]))
        self.seen = 0
        self.level: tuple[float, float] = (np.nan, np.nan)  # (mean, epsilon) in force


class ResidualDetector(_Detector):
    """`residual_detector col='OT'`: the error of a one-step forecast, smoothed, against a dynamic threshold.

    The forecast is an exponentially weighted moving average of `col` up to the record before (weight
    `alpha`), or with `pred=COL` a column already present (e.g. the `lstm` component's prediction). The
    absolute errors are smoothed by an EWMA of span `smooth`; every `refit` records the threshold epsilon is
    chosen on the last `window` smoothed errors by Hundman et al. 2018's criterion (as in telemanom and
    Orion's `find_anomalies`; see :mod:`airflow_amml.detection.dynamic_threshold`). The score is 0 at the
    errors' mean, 0.5 at epsilon (the default threshold) and 1 at twice epsilon's distance from the mean.
    With `model=`, the mean, epsilon and smoothing span stored with that model version when `train_lstm`
    trained it (on its hold-out records, else its training records) are used instead, for every record."""

    def setup(self) -> None:
        self.col = self.params.get("col")
        if not isinstance(self.col, str) or not self.col:
            raise PipelineError("`residual_detector` needs `col=`, the column whose forecast errors are scored")
        self.alpha = self._number("alpha", 1e-6, 1.0)
        self.smooth = self._count("smooth", 1, MAX_WINDOW)
        self.window = self._count("window", 10, MAX_WINDOW)
        self.refit = self._count("refit", 1, MAX_WINDOW)
        self.pred_col = self.params.get("pred")
        self.shift = self._count("pred_shift", 0, MAX_WINDOW)
        self.stored: tuple[float, float] | None = None
        if self.params.get("model"):
            mean, eps, smooth = stored_threshold(self.params["model"], self.context.config)
            self.stored, self.smooth = (mean, eps), smooth
        self.min_periods = 100 if self.params.get("min_periods") is None else self._count("min_periods", 2, self.window)

    def default_columns(self, batch: pd.DataFrame) -> list[str]:
        return [self.col]

    def _columns(self, batch: pd.DataFrame) -> list[str]:
        self.cols = [self.col]
        if self.pred_col is not None and self.pred_col not in batch.columns:
            raise PipelineError(
                f"`residual_detector pred={self.pred_col!r}`: no such column; the records have {list(batch.columns)}",
                hint="put the forecasting component (e.g. `lstm model=...`) upstream, or name its output column",
            )
        return super()._columns(batch)

    def new_state(self) -> _ResidualState:
        return _ResidualState(self.alpha, self.smooth, self.shift, self.window)

    def score(self, col: str, values: np.ndarray, batch: pd.DataFrame) -> np.ndarray:
        st: _ResidualState = self.state(col)
        n = len(values)
        if self.pred_col is not None:
            forecast = st.pred.update(self._values(batch, self.pred_col))
        else:
            level = st.forecast.update(values)  # the EWMA up to and including each record
            forecast = np.concatenate([[st.forecast_before], level[:-1]]) if n else level
            if n:
                st.forecast_before = level[-1]
        error = np.abs(values - forecast)
        smoothed = st.smoothed.update(np.where(np.isfinite(error), error, np.nan))
        smoothed = np.where(np.isfinite(error), smoothed, np.nan)  # a record without an error is not scored
        mean, eps = self._thresholds(st, smoothed)
        with np.errstate(invalid="ignore", divide="ignore"):
            # errors that were all equal leave epsilon at their mean: any larger error is then anomalous
            score = np.where(eps > mean, 0.5 * (smoothed - mean) / (eps - mean), np.where(smoothed > mean, 1.0, 0.0))
        return np.where(np.isfinite(score), np.clip(score, 0.0, 1.0), 0.0)

    def _thresholds(self, st: _ResidualState, smoothed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The (mean, epsilon) each record is scored with: from the last refit at or before it, on the smoothed
        errors of the `window` records before that refit. All the refits of a batch are computed at once."""
        n, start, w = len(smoothed), st.seen, self.window
        if self.stored is not None:  # learnt at training time: the same threshold for every record
            return np.full(n, self.stored[0]), np.full(n, self.stored[1])
        here = st.moments.update(smoothed)  # of the window ending at each record of the batch
        history = np.concatenate([st.errors, smoothed])  # history[k] is stream position start - w + k
        refits = np.arange(-(-start // self.refit) * self.refit, start + n, self.refit)
        means, epss = np.full(n, st.level[0]), np.full(n, st.level[1])
        if len(refits):
            # the window before refit r ends at r - 1: in this batch, or the previous batch's last record
            at = refits - 1 - start
            before = np.maximum(at, 0)
            count = np.where(at >= 0, here.count[before], st.moments_before.count[0])
            mean = np.where(at >= 0, here.mean[before], st.moments_before.mean[0])
            var = np.where(at >= 0, here.var[before], st.moments_before.var[0])
            windows = sliding_window_view(history, w)[refits - start]  # history[r - start : r - start + w]
            eps = thresholds(windows, count, mean, var)
            enough = count >= self.min_periods
            level_mean = pd.Series(np.where(enough, mean, np.nan)).ffill().to_numpy()
            level_eps = pd.Series(np.where(enough, eps, np.nan)).ffill().to_numpy()
            # each refit's level holds until the next; before the first enough one, the carried level
            held = np.searchsorted(refits, np.arange(start, start + n), side="right") - 1
            inside = held >= 0
            means = np.where(
                inside & ~np.isnan(level_mean[np.maximum(held, 0)]), level_mean[np.maximum(held, 0)], means
            )
            epss = np.where(inside & ~np.isnan(level_eps[np.maximum(held, 0)]), level_eps[np.maximum(held, 0)], epss)
            if enough.any():
                st.level = (float(level_mean[-1]), float(level_eps[-1]))
        if n:
            st.moments_before = here.at(slice(n - 1, n))
        st.errors = history[-w:]
        st.seen += n
        return means, epss


def stored_threshold(model_ref: str, config: RunConfig) -> tuple[float, float, int]:
    """(mean, epsilon, smoothing span) of the residual threshold `train_lstm` stored with a model version (in a
    fanned-out run the item's model: :func:`~.scaler_stats.run_model_ref`)."""
    from airflow_amml.registry import ModelRegistry, RegistryError

    from .scaler_stats import fanout_hint, run_model_ref

    try:
        entry = ModelRegistry.from_config(config).resolve(run_model_ref("residual_detector", model_ref, config))
    except RegistryError as exc:
        raise PipelineError(
            f"`residual_detector model={model_ref!r}`: {exc.message}", hint=fanout_hint(model_ref, config, exc.hint)
        ) from exc
    missing = [m for m in STORED_METRICS if not isinstance(entry.metrics.get(m), int | float)]
    if missing:
        raise PipelineError(
            f"`residual_detector model={model_ref!r}`: version {entry.ref} has no stored residual threshold "
            f"(metrics {missing} are missing)",
            hint="train it again with this version of `train_lstm`, or leave `model=` out to choose the "
            "threshold on the stream",
        )
    mean, eps, smooth = (entry.metrics[m] for m in STORED_METRICS)
    return float(mean), float(eps), int(smooth)


# ---- 6. anomaly likelihood ------------------------------------------------------------------------------

RED_ZONE = 1e-5  # NuPIC's redThreshold 0.99999 as a tail probability
YELLOW_ZONE = 1e-3  # NuPIC's yellowThreshold 0.999: a red record after a red one is reported at this


def log_likelihood(likelihood: np.ndarray) -> np.ndarray:
    """NuPIC's log scale: log(1.0000000001 - L) / log(1 - 0.9999999999); L = 0.5 → 0.030, 0.99999 → 0.5."""
    return np.log(1.0000000001 - likelihood) / -23.02585084720009


class _LikelihoodState:
    def __init__(self, average: int, history: int) -> None:
        self.short = RollingMoments(average)  # the short-term mean of the raw score
        self.long = RollingMoments(history)  # the long-term distribution of that mean
        self.metric = RollingMoments(history)  # the metric's own variance (NuPIC's flat-metric rule)
        self.seen = 0
        self.distribution = (0.5, 1e3)  # NuPIC's null distribution until the first estimate
        # the long-term window (count, mean, var) and the metric's variance at the last record of the batch
        self.before: tuple[float, float, float, float | None] = (0.0, np.nan, np.nan, None)
        self.red_before = False  # was the previous record's (unfiltered) tail probability in the red zone?


class AnomalyLikelihood(_Detector):
    """`anomaly_likelihood input='anomaly_score'`: HTM's anomaly likelihood of any raw score column.

    The short-term mean of the raw score over the last `average` records is compared with the distribution
    (mean, std) of that mean over the last `history` records, re-estimated every `reestimate` records:
    likelihood = 1 - Q((short mean - mean) / std) (Ahmad et al. 2017, eq. 6 — NuPIC's code takes the tail on
    both sides; the paper's one-sided form is used here, so unusually *low* raw scores are not anomalous).
    As NuPIC does: the first `learning` + `estimation` records get 0.5; the distribution's mean is at least
    0.03 and its variance at least 0.0003; with `value=COL`, a metric whose variance over the window is
    below 1.5e-5 gets the broad null distribution (flat series are not anomalous); a record in the red zone
    (likelihood ≥ 0.99999) right after another is reported at 0.999. `scale='log'` (the default, as NAB's
    HTM results) reports log(1.0000000001 - L) / log(1e-10) (0.5 ≈ likelihood 0.99999)."""

    def setup(self) -> None:
        self.input = self.params.get("input")
        if not isinstance(self.input, str) or not self.input:
            raise PipelineError("`anomaly_likelihood input=`: expected the name of the raw score column")
        self.average = self._count("average")
        self.history = self._count("history")
        self.learning = self._count("learning", 0)
        self.estimation = self._count("estimation", 1)
        self.reestimate = self._count("reestimate")
        if self.estimation > self.history:
            raise PipelineError(
                f"`anomaly_likelihood`: estimation={self.estimation} records do not fit history={self.history}",
                hint="make history at least as long as estimation",
            )
        self.probation = self.learning + self.estimation
        self.value_col = self.params.get("value")
        self.log_scale = self.params.get("scale", "log") == "log"
        self.default_threshold = 0.5 if self.log_scale else 1.0 - RED_ZONE  # NuPIC's red zone either way

    def _columns(self, batch: pd.DataFrame) -> list[str]:
        self.cols = [self.input]
        return super()._columns(batch)

    def new_state(self) -> _LikelihoodState:
        return _LikelihoodState(self.average, self.history)

    def score(self, col: str, values: np.ndarray, batch: pd.DataFrame) -> np.ndarray:
        st: _LikelihoodState = self.state(col)
        n, start = len(values), st.seen
        positions = np.arange(start, start + n)
        raw = np.where(np.isfinite(values), values, 0.0)  # a record without a raw score counts as 0 (normal)
        short = st.short.update(raw).mean
        # the distribution is estimated from the short means after the learning period
        long = st.long.update(np.where(positions >= self.learning, short, np.nan))
        metric = None
        if self.value_col is not None:
            metric = st.metric.update(
                np.where(positions >= self.learning, self._values(batch, self.value_col), np.nan)
            ).var
        # re-estimation points: the first record after probation, then every `reestimate` records; the
        # estimate at r uses the records before r
        refits = np.maximum(self.probation, (positions // self.reestimate) * self.reestimate)
        points = np.unique(refits[(refits >= start) & (positions >= self.probation)])
        # the window before each point ends at r - 1: in this batch, or the previous batch's last record
        at = points - 1 - start
        inside, safe = at >= 0, np.maximum(at, 0)
        before_count, before_mean, before_var, before_metric = st.before

        def window(values: np.ndarray | None, carried: float | None) -> np.ndarray:
            if values is None:
                return np.full(len(points), np.nan if carried is None else carried)
            return np.where(inside, values[safe] if n else np.nan, np.nan if carried is None else carried)

        dist_mean, dist_std = self._estimate(
            window(long.count, before_count),
            window(long.mean, before_mean),
            window(long.var, before_var),
            window(metric, before_metric),
        )
        # each record: the distribution of the last point at or before it, else the carried one
        held = np.searchsorted(points, positions, side="right") - 1
        mean = np.where(held >= 0, dist_mean[np.maximum(held, 0)] if len(points) else 0.0, st.distribution[0])
        std = np.where(held >= 0, dist_std[np.maximum(held, 0)] if len(points) else 1.0, st.distribution[1])
        if len(points):
            st.distribution = (float(dist_mean[-1]), float(dist_std[-1]))
        if n:
            st.before = (long.count[-1], long.mean[-1], long.var[-1], None if metric is None else metric[-1])
        tail = 1.0 - ndtr((short - mean) / std)  # Q(z)
        red = tail <= RED_ZONE
        red_before = np.concatenate([[st.red_before], red[:-1]]) if n else red
        if n:
            st.red_before = bool(red[-1])
        tail = np.where(red & red_before, YELLOW_ZONE, tail)
        likelihood = np.where(positions >= self.probation, 1.0 - tail, 0.5)
        st.seen += n
        return log_likelihood(likelihood) if self.log_scale else likelihood

    @staticmethod
    def _estimate(
        count: np.ndarray, mean: np.ndarray, var: np.ndarray, metric_var: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """NuPIC's estimateNormal with its lower bounds (mean ≥ 0.03, variance ≥ 0.0003), or its null
        distribution (mean 0.5, std 1000) for an empty window or a flat metric (variance < 1.5e-5)."""
        null = ~(count > 0) | (np.isfinite(metric_var) & (metric_var < 1.5e-5))
        mean = np.where(null, 0.5, np.maximum(np.nan_to_num(mean, nan=0.0), 0.03))
        std = np.where(null, 1e3, np.sqrt(np.maximum(np.nan_to_num(var, nan=0.0), 0.0003)))
        return mean, std
