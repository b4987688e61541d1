"""RollingQuantiles: the same numbers as pandas' rolling quantile over the whole stream, bit for bit, whatever
the batches — on the fast path (no missing value: scipy's rank filter), the pandas path, and mixes of both."""

import itertools

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_amml.detection.rolling import RollingQuantiles

QUANTILES = (0.25, 0.5, 0.75)


def fed(x, window, cuts, min_periods=1, quantiles=QUANTILES):
    rolling = RollingQuantiles(window, quantiles, min_periods)
    bounds = [0, *sorted(c for c in cuts if c <= len(x)), len(x)]
    parts = [rolling.update(x[a:b]) for a, b in itertools.pairwise(bounds)]
    return [np.concatenate([p[0][i] for p in parts]) for i in range(len(quantiles))], np.concatenate(
        [p[1] for p in parts]
    )


def pandas_reference(x, window, min_periods=1, quantiles=QUANTILES):
    rolling = pd.Series(np.where(np.isfinite(x), x, np.nan)).rolling(window, min_periods=min_periods)
    return [rolling.quantile(q, interpolation="linear").to_numpy() for q in quantiles], rolling.count().to_numpy()


@settings(max_examples=300, deadline=None)
@given(
    xs=st.lists(st.one_of(st.floats(-1e6, 1e6), st.sampled_from([0.0, 1.0, 2.0]), st.just(float("nan"))), max_size=80),
    window=st.integers(1, 12),
    min_periods=st.integers(1, 12),
    cuts=st.lists(st.integers(0, 80), max_size=6),
    finite=st.booleans(),
)
def test_quantiles_are_pandas_quantiles_of_the_whole_stream(xs, window, min_periods, cuts, finite):
    x = np.asarray(xs, dtype=float)
    if finite:  # the fast path throughout
        x = np.nan_to_num(x, nan=3.0)
    got, count = fed(x, window, cuts, min_periods)
    want, want_count = pandas_reference(x, window, min(min_periods, window))
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
    np.testing.assert_array_equal(count, want_count)


@pytest.mark.parametrize("window", [999, 1000, 1001])
def test_long_windows_with_ties_and_wide_ranges_are_bit_identical(window):
    # even and odd windows (the filter's footprint is placed differently), interpolated ranks (0.25·999 =
    # 249.75) and exact ones (0.5·1001 = 500), ties (rounded values), and values from 1e-8 to 1e8
    rng = np.random.default_rng(window)
    x = np.concatenate([rng.normal(size=3000) * 1e8, np.round(rng.normal(size=3000)), rng.normal(size=3000) * 1e-8])
    got, count = fed(x, window, [500, 1500, 1501, 7000], quantiles=(0.1, 0.25, 0.5, 0.75))
    want, want_count = pandas_reference(x, window, quantiles=(0.1, 0.25, 0.5, 0.75))
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
    np.testing.assert_array_equal(count, want_count)
