"""Stateful, vectorised rolling statistics for streams that arrive in batches of any size.

Every class here is fed a stream piece by piece (``update(values)``) and returns one result per value, computed
from the stream up to and including that value. The results depend only on each value's position in the
stream, never on how the stream was cut into batches: a detector built on them gives the same scores whatever
``batch_rows`` is, and bit for bit, not merely to rounding. Memory is bounded by the window, not the stream.

* :class:`RollingMoments` — count, mean and variance of the last ``window`` finite values.
* :class:`RollingQuantiles` — quantiles of the last ``window`` finite values (order statistics: scipy's rank
  filter, or pandas where values are missing).
* :class:`Ewma` — exponentially weighted mean (``scipy.signal.lfilter`` with its state carried).
* :class:`Lag` — the stream shifted by ``k`` records.

Missing values (NaN, ±inf) are not counted: a window of ``window`` records holds at most that many values.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.ndimage import rank_filter
from scipy.signal import lfilter

MAX_WINDOW = 1_000_000  # records a window may hold: a column's state is a few arrays of this length


@dataclass(frozen=True)
class Moments:
    """Count of finite values, mean and population variance (ddof=0), one entry per stream position."""

    count: np.ndarray
    mean: np.ndarray
    var: np.ndarray

    def __len__(self) -> int:
        return len(self.count)

    def at(self, index: np.ndarray | slice) -> Moments:
        return Moments(self.count[index], self.mean[index], self.var[index])


class RollingMoments:
    """Count, mean and variance of the last ``window`` values, at every position of the stream.

    Why not ``pandas.rolling``: its running sums carry rounding from the start of the array they are given,
    so the same window gets a slightly different variance depending on where the batch began — and a
    near-constant window's variance, noise around 0, can then decide a flag. Here the stream is laid out in
    blocks of ``window`` records aligned to stream positions: the window ending at a position is a prefix of
    its block plus a suffix of the block before, each a sequential ``cumsum`` over one block's values, so
    every sum is computed from the same values in the same order whatever the batches were. Values are
    centred on a value inside the window (its block's first) so that the sum of squares does not cancel
    catastrophically for series far from zero.

    Per batch: one ``cumsum`` pass over the batch plus the current and previous block (bounded by
    2 × ``window``), vectorised over all the blocks a batch spans.
    """

    def __init__(self, window: int) -> None:
        if not 1 <= window <= MAX_WINDOW:
            raise ValueError(f"window must be from 1 to {MAX_WINDOW:,}, got {window}")
        self.window = window
        self.previous = np.full(window, np.nan)  # the last complete block (all NaN before there is one)
        self.current = np.empty(0)  # the values of the block being filled, so far
        self.anchor = np.nan  # the last finite value before the current block

    def update(self, values: np.ndarray) -> Moments:
        w = self.window
        values = np.asarray(values, dtype=np.float64)
        n, seen = len(values), len(self.current)
        data = np.concatenate([self.previous, self.current, values])
        rows = -(-len(data) // w)  # row 0 is the previous block, row 1 the current one, then the later ones
        blocks = np.full(rows * w, np.nan)
        blocks[: len(data)] = data
        blocks = blocks.reshape(rows, w)
        finite = np.isfinite(blocks)
        shifts, anchors = self._shifts(blocks, finite)

        # the window ending at offset o of row r: row r's values up to o, plus row r-1's values after o
        own = np.where(finite[1:], blocks[1:] - shifts[1:, None], 0.0)
        before = np.where(finite[:-1], blocks[:-1] - shifts[1:, None], 0.0)  # centred like the row it joins
        sums = []
        for mine, theirs in (
            (finite[1:].astype(np.float64), finite[:-1].astype(np.float64)),
            (own, before),
            (own * own, before * before),
        ):
            after = np.cumsum(theirs[:, ::-1], axis=1)[:, ::-1]  # after[r, o]: row r's sum from offset o on
            after = np.concatenate([after[:, 1:], np.zeros((rows - 1, 1))], axis=1)
            sums.append((np.cumsum(mine, axis=1) + after).reshape(-1)[seen : seen + n])
        count, s1, s2 = sums
        with np.errstate(invalid="ignore", divide="ignore"):
            mean_c = s1 / count
            var = s2 / count - mean_c * mean_c
            # what rounding alone can leave of a variance that is 0 (a constant window) counts as 0
            noise = 8.0 * np.finfo(np.float64).eps * np.maximum(count, 1.0) * (s2 / count)
        var = np.where(var > noise, var, 0.0)
        mean = np.repeat(shifts[1:], w)[seen : seen + n] + mean_c
        empty = count == 0
        mean[empty] = np.nan
        var[empty] = np.nan

        complete, partial = divmod(seen + n, w)  # blocks completed from row 1 on; values of the next one
        if complete:
            self.previous = blocks[complete].copy()
            self.anchor = anchors[complete + 1]
        self.current = blocks[complete + 1, :partial].copy() if partial else np.empty(0)
        return Moments(count, mean, var)

    def _shifts(self, blocks: np.ndarray, finite: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per row: the value its sums are centred on, and its anchor (the last finite value before the row).

        A row is centred on its first value, which lies in the window of every position of the row and before
        all of them (so the centring never looks ahead); failing that, on the anchor."""
        rows, w = blocks.shape
        last = blocks[np.arange(rows), np.where(finite, np.arange(w), 0).max(axis=1)]
        # anchors[r], r = 1..rows: row 1's is carried; row r+1's is row r's last finite value, or row r's anchor
        anchors = np.concatenate([[np.nan, self.anchor], np.where(finite.any(axis=1), last, np.nan)[1:]])
        anchors = pd.Series(anchors).ffill().to_numpy(copy=True)
        anchors[0] = np.nan
        shifts = np.where(finite[:, 0], blocks[:, 0], anchors[:rows])
        shifts = np.where(np.isnan(shifts), 0.0, shifts)
        shifts[0] = 0.0  # row 0 is only ever the block before another: centred with that one's shift
        return shifts, anchors


class RollingQuantiles:
    """Quantiles of the last ``window`` finite values at every position (linear interpolation, as numpy).

    Order statistics depend only on the values in the window, so ``pandas.rolling(...).quantile`` over the
    carried tail plus the batch is exact whatever the batch boundaries."""

    def __init__(self, window: int, quantiles: tuple[float, ...], min_periods: int = 1) -> None:
        if not 1 <= window <= MAX_WINDOW:
            raise ValueError(f"window must be from 1 to {MAX_WINDOW:,}, got {window}")
        self.window = window
        self.quantiles = quantiles
        self.min_periods = max(1, min(min_periods, window))
        self.tail = np.empty(0)

    def update(self, values: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
        """(each quantile, the number of finite values) of the window ending at each value."""
        values = np.asarray(values, dtype=np.float64)
        joined = np.concatenate([self.tail, values])
        clean = np.where(np.isfinite(joined), joined, np.nan)  # ±inf is missing, not an order statistic
        mine = slice(len(self.tail), None)
        full = self.window - 1  # from joined[full] on, a window spans `window` records
        if len(joined) > full and np.isfinite(clean).all():
            # no missing value: every window from `full` on holds `window` values, and order-statistic
            # filters give their quantiles several times faster than pandas' skiplist — the same numbers, bit
            # for bit (tests/detection/test_rolling_quantiles.py); the windows still filling at the stream's start
            # (only while the carried tail is short) go to pandas
            if len(self.tail) == full:  # the tail carries the window before the batch: all of the batch's are full
                out = [_full_windows(clean, self.window, q) for q in self.quantiles]
            else:  # the stream's first records: the windows still filling by pandas, then the full ones
                filling = pd.Series(clean[:full]).rolling(self.window, min_periods=self.min_periods)
                out = [
                    np.concatenate(
                        [filling.quantile(q, interpolation="linear").to_numpy(), _full_windows(clean, self.window, q)]
                    )[mine]
                    for q in self.quantiles
                ]
            count = np.minimum(np.arange(1.0, len(joined) + 1.0), self.window)
            count = np.where(count >= self.min_periods, count, np.nan)[mine]  # as pandas' count: NaN below
        else:
            rolling = pd.Series(clean).rolling(self.window, min_periods=self.min_periods)
            out = [rolling.quantile(q, interpolation="linear").to_numpy()[mine] for q in self.quantiles]
            count = rolling.count().to_numpy()[mine]
        self.tail = joined[-(self.window - 1) :] if self.window > 1 else np.empty(0)
        return out, count


def _full_windows(values: np.ndarray, window: int, q: float) -> np.ndarray:
    """Quantile q of each window of `window` values ending at values[window - 1:] (all finite), interpolated
    linearly between the order statistics around rank q·(window - 1) with pandas' own formula."""
    rank = q * (window - 1)
    low = int(rank)

    def order_statistic(k: int) -> np.ndarray:
        # origin (window - 1) // 2 shifts the filter's footprint to the `window` values ending at each position
        return rank_filter(values, k, size=window, origin=(window - 1) // 2, mode="nearest")[window - 1 :]

    below = order_statistic(low)
    if low == rank:
        return below
    above = order_statistic(low + 1)
    return below + (above - below) * (rank - low)


class Ewma:
    """y_t = alpha * x_t + (1 - alpha) * y_(t-1), starting from the first finite value; a missing x_t holds
    the last value seen (the average neither moves nor becomes NaN). ``lfilter``'s final state is carried,
    so the recursion continues exactly as if the stream were one array."""

    def __init__(self, alpha: float) -> None:
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"alpha must be in (0, 1], got {alpha}")
        self.alpha = alpha
        self.state: np.ndarray | None = None  # lfilter's state, None before the first finite value
        self.last = np.nan  # the last finite input, to hold over missing values

    def update(self, values: np.ndarray) -> np.ndarray:
        x = np.asarray(values, dtype=np.float64)
        held = _forward_fill(x, self.last)
        out = np.full(len(x), np.nan)
        start = 0
        if self.state is None:
            finite = np.flatnonzero(np.isfinite(held))
            if not len(finite):
                return out
            start = int(finite[0])
            # start the recursion at the first value: y_0 = x_0
            self.state = np.array([(1.0 - self.alpha) * held[start]])
            out[start] = held[start]
            start += 1
            self.last = held[start - 1]
        if start < len(x):
            out[start:], self.state = lfilter([self.alpha], [1.0, -(1.0 - self.alpha)], held[start:], zi=self.state)
        if len(held):
            self.last = held[-1] if np.isfinite(held[-1]) else self.last
        return out


class Lag:
    """The stream delayed by ``k`` records (NaN for the first ``k``)."""

    def __init__(self, k: int) -> None:
        self.k = k
        self.tail = np.full(k, np.nan)

    def update(self, values: np.ndarray) -> np.ndarray:
        if self.k == 0:
            return np.asarray(values, dtype=np.float64)
        joined = np.concatenate([self.tail, np.asarray(values, dtype=np.float64)])
        self.tail = joined[-self.k :]
        return joined[: len(joined) - self.k]


def previous(values: np.ndarray, carried: float) -> tuple[np.ndarray, float]:
    """The values shifted by one record (the first gets ``carried``), and the new value to carry."""
    out = np.empty(len(values))
    if len(values):
        out[0] = carried
        out[1:] = values[:-1]
        return out, values[-1]
    return out, carried


def _forward_fill(x: np.ndarray, last: float) -> np.ndarray:
    """Missing values replaced by the last finite value before them (``last`` before the first)."""
    finite = np.isfinite(x)
    if finite.all():
        return x
    idx = np.where(finite, np.arange(len(x)), -1)
    np.maximum.accumulate(idx, out=idx)
    filled = np.where(idx >= 0, x[np.maximum(idx, 0)], last)
    return filled
