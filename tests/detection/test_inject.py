"""Injected anomalies (airflow_amml/detection/inject.py): the labels are exactly the changed rows, each kind
changes its rows as defined, and a seed gives the same anomalies again."""

import numpy as np
import pandas as pd
import pytest

from airflow_amml.detection.inject import KINDS, LENGTHS, SIZES, Anomaly, inject, nab_windows
from airflow_amml.detection.nab_corpus import load_corpus

EVERY_KIND = [kind for kind in KINDS for _ in range(2)]


@pytest.fixture(scope="module")
def ot(ett_path):
    """ETTh1's test rows of OT: quantised readings, so neighbouring values are often equal."""
    return pd.read_csv(ett_path)["OT"].to_numpy()[11520:14400]


def test_the_labels_are_the_changed_rows_and_each_kind_is_what_it_says(ot):
    done = inject(ot, EVERY_KIND, seed=3, skip=432)
    assert sorted(a.kind for a in done.anomalies) == sorted(EVERY_KIND)
    changed = done.values != ot
    # a stuck run repeats the value before it: a row that already had that value is labelled but unchanged
    unchanged_in_stuck = np.zeros(len(ot), dtype=bool)
    for a in done.anomalies:
        if a.kind == "stuck":
            unchanged_in_stuck[a.start : a.end] = ot[a.start : a.end] == ot[a.start - 1]
    assert np.array_equal(changed | unchanged_in_stuck, done.labels)
    assert not (changed & ~done.labels).any(), "nothing outside the labels changed"
    assert done.labels[:432].sum() == 0, "nothing in the skipped rows"
    scale = np.std(np.diff(ot))
    for a in done.anomalies:
        low, high = LENGTHS[a.kind]
        assert low <= a.end - a.start <= high
        got = done.values[a.start : a.end] - ot[a.start : a.end]
        if a.kind == "stuck":
            assert np.all(done.values[a.start : a.end] == ot[a.start - 1]) and a.size == 0
        else:
            assert SIZES[a.kind][0] * scale <= abs(a.size) <= SIZES[a.kind][1] * scale
            # a drift of size d over n rows adds d·k/n on its k-th row (k = 1..n); a spike or a shift adds d
            n = a.end - a.start
            want = a.size * np.arange(1, n + 1) / n if a.kind == "drift" else np.full(n, a.size)
            assert got == pytest.approx(want, abs=1e-9)
    gaps = [b.start - a.end for a, b in zip(done.anomalies, done.anomalies[1:])]
    assert min(gaps) >= 48, "anomalies are apart by at least the gap"


def test_the_same_seed_gives_the_same_anomalies_and_another_seed_others(ot):
    before = ot.copy()
    first, again, other = (inject(ot, EVERY_KIND, seed=s, skip=432) for s in (3, 3, 4))
    assert first.anomalies == again.anomalies and np.array_equal(first.values, again.values)
    assert first.anomalies != other.anomalies
    assert np.array_equal(ot, before), "the input is not changed"


def test_anomalies_that_cannot_fit_and_unknown_kinds_are_refused(ot):
    with pytest.raises(ValueError, match="do not fit"):
        inject(ot[:500], ["drift"] * 4, seed=1)
    with pytest.raises(ValueError, match="unknown anomaly kind"):
        inject(ot, ["spikes"], seed=1)


def test_windows_run_from_the_anomaly_to_the_tolerance_after_it_and_load_as_nab_labels(tmp_path):
    # by hand: 10 hourly rows; a spike at row 2 and a shift on rows 5-6; tolerance 2
    # → windows rows 2..4 and 5+1+2 = 8 → rows 5..8
    times = pd.date_range("2024-01-01", periods=10, freq="h").strftime("%Y-%m-%d %H:%M:%S")
    anomalies = [Anomaly("spike", 2, 3, 5.0), Anomaly("level_shift", 5, 7, 1.0)]
    windows = nab_windows(list(times), anomalies, tolerance=2)
    assert windows == [[times[2], times[4]], [times[5], times[8]]]
    (tmp_path / "spike").mkdir()
    pd.DataFrame({"timestamp": times, "value": np.arange(10.0)}).to_csv(tmp_path / "spike" / "s.csv", index=False)
    (tmp_path / "windows.json").write_text(pd.Series({"spike/s.csv": windows}).to_json())
    [series] = load_corpus(tmp_path, tmp_path / "windows.json")
    assert list(series.windows.left) == [2, 5] and list(series.windows.right) == [4, 8]
    with pytest.raises(ValueError, match="reaches the level_shift"):
        nab_windows(list(times), anomalies, tolerance=3)
