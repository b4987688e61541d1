"""The catalog behind `source id=...`: Parquet streams in record batches and gives what a whole read gives."""

import pandas as pd
import pyarrow.parquet as pq
import pytest

from airflow_amml.components.catalog import iter_source
from airflow_amml.run_config import RunConfig
from airflow_amml.runtime.errors import PipelineError


@pytest.fixture(scope="module")
def ett_parquet(tmp_path_factory, ett_path):
    path = tmp_path_factory.mktemp("catalog") / "ett.parquet"
    # small row groups: a window and its warm-up cross the boundaries of record batches
    pd.read_csv(ett_path).to_parquet(path, index=False, row_group_size=1000)
    return path


@pytest.fixture
def parquet_reads(monkeypatch):
    """What the catalog asks of pyarrow: per `iter_batches` call, its keyword arguments and the sizes of the
    record batches taken from it so far."""
    calls = []
    real = pq.ParquetFile.iter_batches

    def spying(self, *args, **kwargs):
        call = {**kwargs, "batches": []}
        calls.append(call)
        for batch in real(self, *args, **kwargs):
            call["batches"].append(batch.num_rows)
            yield batch

    monkeypatch.setattr(pq.ParquetFile, "iter_batches", spying)
    return calls


def read(path, batch_rows, **kwargs):
    config = RunConfig.from_environment(sources={"e": {"path": str(path), "time_column": "date"}})
    return list(iter_source("e", config=config, batch_rows=batch_rows, **kwargs))


@pytest.mark.parametrize(
    "window",
    [
        {},
        {"start": "2017-01-01", "end": "2017-02-01"},
        {"start": "2017-01-01", "end": "2017-02-01", "warmup": 700},  # warm-up spans several batches
        {"start": "2016-07-01 03:00", "warmup": 10},  # fewer records before the window than asked for
        {"end": "2016-09-01", "cols": ["date", "OT"]},
    ],
)
def test_parquet_streams_the_same_records_as_a_whole_csv_read(ett_path, ett_parquet, tmp_path, window):
    csv_config = RunConfig.from_environment(sources={"c": {"path": str(ett_path), "time_column": "date"}})
    whole = pd.concat(list(iter_source("c", config=csv_config, **window)), ignore_index=True)
    frames = read(ett_parquet, 512, **window)
    streamed = pd.concat(frames, ignore_index=True)
    assert all(len(f) <= 512 for f in frames) and len(frames) > 2
    pd.testing.assert_frame_equal(streamed, whole, check_dtype=False)
    if window.get("warmup"):
        first = pd.Timestamp(window["start"])
        before = pd.to_datetime(streamed["date"]) < first
        assert before.sum() == min(window["warmup"], int((pd.to_datetime(whole["date"]) < first).sum()))


def test_parquet_is_read_lazily(ett_parquet, parquet_reads):
    """Memory does not grow with the file: frames come one record batch at a time, not after a whole read."""
    config = RunConfig.from_environment(sources={"e": {"path": str(ett_parquet)}})
    frames = iter_source("e", config=config, batch_rows=256)
    first = next(frames)
    assert len(first) == 256 and [c["batches"] for c in parquet_reads] == [[256]]


def test_unreadable_parquet_names_the_source_and_file(tmp_path):
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(PipelineError, match=r"data source `e`: cannot read .*bad\.parquet"):
        read(bad, 100)


@pytest.mark.parametrize("window", [{}, {"start": "2017-01-01"}])
def test_missing_column_names_what_the_source_has(ett_parquet, window):
    with pytest.raises(PipelineError, match=r"no column\(s\) \['nope'\]; it has \['date', 'HUFL'"):
        read(ett_parquet, 100, cols=["date", "nope"], **window)


def test_parquet_reads_only_the_columns_asked_for(ett_parquet, parquet_reads):
    windowed = pd.concat(read(ett_parquet, 4096, cols=["OT"], start="2017-01-01", end="2017-01-02"))
    asked = [c["columns"] for c in parquet_reads]
    assert asked == [["OT", "date"]], "the time column is read to cut the window, then dropped"
    assert list(windowed.columns) == ["OT"] and len(windowed) == 24
    read(ett_parquet, 4096, cols=["HUFL", "OT"])
    assert parquet_reads[-1]["columns"] == ["HUFL", "OT"]


def test_a_window_reads_only_the_row_groups_it_needs(ett_parquet, parquet_reads):
    """A day in 2017 with 700 records of warm-up, in a file of 18 row groups of 1,000 hours: the day lies in
    group 4 (hours 4000-4999 since 2016-07-01), the warm-up needs group 3; the statistics rule out the rest."""
    frames = read(ett_parquet, 512, start="2017-01-01", end="2017-01-02", warmup=700)
    assert [c["row_groups"] for c in parquet_reads] == [[3, 4]]
    assert sum(len(f) for f in frames) == 24 + 700
    assert read(ett_parquet, 512, start="2030-01-01") == [] and parquet_reads[-1]["row_groups"] == []


def test_an_unsorted_file_gives_the_same_window_and_warmup(ett_path, tmp_path):
    shuffled = pd.read_csv(ett_path).sample(frac=1.0, random_state=5).reset_index(drop=True)
    shuffled.to_csv(tmp_path / "s.csv", index=False)
    shuffled.to_parquet(tmp_path / "s.parquet", index=False, row_group_size=1000)
    window = {"start": "2017-01-01", "end": "2017-03-01", "warmup": 50}
    csv_config = RunConfig.from_environment(sources={"c": {"path": str(tmp_path / "s.csv"), "time_column": "date"}})
    csv = pd.concat(iter_source("c", config=csv_config, **window))
    parquet = pd.concat(read(tmp_path / "s.parquet", 700, **window))
    pd.testing.assert_frame_equal(parquet.reset_index(drop=True), csv.reset_index(drop=True), check_dtype=False)
