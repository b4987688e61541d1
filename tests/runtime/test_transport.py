"""Batches through shared memory: identical frames on both sides, and no segment outlives its run."""

import os
import pickle
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from airflow_amml.run_config import RunConfig
from airflow_amml.runtime import transport
from airflow_amml.runtime.errors import PipelineError
from airflow_amml.runtime.executor import run_pipeline
from compiler import ProgramCache, compile_source

ROOT = Path(__file__).resolve().parents[2]


def pipeline(text):
    return compile_source(text, "test.amml", cache=ProgramCache()).pipelines[0]


def left_by_this_process():
    """Segments of runs whose parent is this test process."""
    return transport.segments(f"{transport.NAME_PREFIX}{os.getpid()}_")


def frame(rows, start=1000):
    rng = np.random.default_rng(3)
    df = pd.DataFrame(
        {
            "f": rng.normal(size=rows),
            "f32": rng.normal(size=rows).astype("float32"),
            "i": np.arange(rows, dtype="int64"),
            "i8": (np.arange(rows) % 100).astype("int8"),
            "b": np.arange(rows) % 3 == 0,
            "o": np.array([f"obj{i}" if i % 7 else None for i in range(rows)], dtype=object),
            "s": pd.array([f"s{i % 11}" for i in range(rows)], dtype="string"),
            "t": pd.date_range("2024-01-01", periods=rows, freq="s"),
            "tz": pd.date_range("2024-01-01", periods=rows, freq="min", tz="Europe/Berlin"),
            "c": pd.Categorical([("lo", "mid", "hi")[i % 3] for i in range(rows)]),
            "ni": pd.array([None if i % 5 == 0 else i for i in range(rows)], dtype="Int64"),
        }
    )
    # stream positions, as a filter leaves them: not 0..n-1, not contiguous
    df.index = pd.Index(np.arange(start, start + 2 * rows, 2), dtype="int64")
    df.attrs["scaler"] = {"min": {"f": -3.5}, "max": {"f": 4.25}, "rows": rows}
    return df


def same(a, b):
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    assert list(a.dtypes) == list(b.dtypes)
    assert type(a.index) is type(b.index) and a.index.equals(b.index)
    assert a.attrs == b.attrs


@pytest.mark.parametrize("rows", [10, 100_000])
def test_round_trip_keeps_dtypes_index_attrs_and_objects(rows):
    channel = transport.Transport()
    df = frame(rows)
    [message] = channel.pack(df)
    assert isinstance(message, transport._Shared if rows > 1000 else transport._InBand)
    if rows > 1000:
        # only the header travels: the object columns, not the numeric data
        assert len(pickle.dumps(message)) < 0.2 * df.memory_usage(deep=True).sum()
        assert transport.segments(channel.prefix) == [message.name]
    got = transport.unpack(message)
    same(df, got)
    assert transport.segments(channel.prefix) == []  # the receiver unlinked it
    got.iloc[0, 0] = 99.0  # writable, and not shared with the sender
    assert df.iloc[0, 0] != 99.0


def test_range_index_and_empty_and_sliced_frames():
    channel = transport.Transport(inband_bytes=0)
    df = pd.DataFrame({"v": np.arange(200_000, dtype=float), "w": np.arange(200_000)})
    df.index = pd.RangeIndex(500, 200_500)
    for piece in (df, df.iloc[65_536:131_072], df.iloc[:0], df[["v"]].iloc[::3]):
        [message] = channel.pack(piece)
        same(piece, transport.unpack(message))
    assert transport.segments(channel.prefix) == []


def test_a_split_gives_every_receiver_its_own_copy():
    channel = transport.Transport()
    df = frame(50_000)
    messages = channel.pack(df, 3)
    assert len({m.name for m in messages}) == 3
    frames = [transport.unpack(m) for m in messages]
    frames[0].iloc[:, 0] = 0.0
    same(df, frames[1])
    same(df, frames[2])
    assert transport.segments(channel.prefix) == []


def test_discard_and_cleanup_remove_unread_segments():
    channel = transport.Transport()
    messages = channel.pack(frame(20_000), 2)
    transport.discard(messages[0])
    assert transport.segments(channel.prefix) == [messages[1].name]
    assert transport.cleanup(channel.prefix) == [messages[1].name]
    assert transport.segments(channel.prefix) == []


def test_sweep_removes_segments_of_a_dead_parent_only():
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    stale = transport.Transport(f"{transport.NAME_PREFIX}{pid}_0123456789ab_")
    mine = transport.Transport()
    [old] = stale.pack(frame(20_000))
    [live] = mine.pack(frame(20_000))
    assert old.name not in transport.sweep_stale(older_than=3600)  # too young
    # (other dead parents' segments may be swept too: a run killed earlier on this machine leaves some)
    assert old.name in transport.sweep_stale(older_than=0)
    assert transport.segments(mine.prefix) == [live.name]
    transport.unpack(live)


def test_a_slow_receiver_gets_every_batch_intact(tmp_path, new_processes):
    """1.5M records in 23 batches into a CSV sink far slower than its source: the inbox stays full (the
    source waits on it with its next segment written) and every value must arrive as it was sent."""
    out = tmp_path / "o.csv"
    run_pipeline(pipeline(f"normalsource col='v', count=1500000, seed=11 | csv_sink path='{out}'"))
    assert np.array_equal(pd.read_csv(out)["v"].to_numpy(), np.random.default_rng(11).normal(0, 1, 1_500_000))
    assert left_by_this_process() == []
    assert new_processes() == []


@pytest.mark.parametrize("mode", ["single", "multiprocess"])
def test_split_pipeline_gives_the_pandas_answer_and_leaves_no_segment(tmp_path, mode, new_processes):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    run_pipeline(
        pipeline(
            "normalsource col='val1', count=300000, seed=7 | filter cond=val1 > 0.5 | derive sq=val1 * val1 "
            f"| split x, y\nx | csv_sink path='{a}'\ny | filter cond=val1 > 1 | csv_sink path='{b}'"
        ),
        mode=mode,
    )
    expected = np.random.default_rng(7).normal(0, 1, 300000)
    expected = expected[expected > 0.5]
    got = pd.read_csv(a)
    assert len(got) == len(expected)
    assert np.allclose(got["val1"], expected) and np.allclose(got["sq"], expected**2)
    assert np.allclose(pd.read_csv(b)["val1"], expected[expected > 1])
    assert left_by_this_process() == []
    assert new_processes() == []


def test_a_failing_component_leaves_no_segment(new_processes):
    # the source fills the filter's inbox with shared-memory batches; the filter fails on the first one
    with pytest.raises(PipelineError, match="record has no field `w`"):
        run_pipeline(pipeline("normalsource col='v', count=2000000 | filter cond=w > 0 | print"))
    assert left_by_this_process() == []
    assert new_processes() == []


@pytest.mark.parametrize("victim", [0, 1])  # the producer (source), the consumer (filter)
def test_a_killed_component_leaves_no_segment(victim, new_processes):
    pipe = pipeline("normalsource col='v', count=0 | filter cond=v > 0 | print limit=0")

    def killer():
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            procs = new_processes()
            if len(procs) >= 3:
                time.sleep(0.5)  # mid-stream: batches flowing
                procs[victim].kill()
                return
            time.sleep(0.05)

    thread = threading.Thread(target=killer)
    thread.start()
    with pytest.raises(PipelineError, match="died unexpectedly"):
        run_pipeline(pipe)
    thread.join()
    assert left_by_this_process() == []
    assert new_processes() == []


def test_no_resource_tracker_warnings(tmp_path):
    out = tmp_path / "o.csv"
    script = tmp_path / "run.py"
    script.write_text(
        textwrap.dedent(f"""
        import os
        from compiler import compile_source
        from airflow_amml.runtime import transport
        from airflow_amml.runtime.errors import PipelineError
        from airflow_amml.runtime.executor import run_pipeline
        run_pipeline(compile_source("normalsource col='v', count=500000 | split a, b\\n"
                                    "a | csv_sink path='{out}'\\nb | print limit=0").pipelines[0])
        try:
            run_pipeline(compile_source("normalsource col='v', count=2000000 | filter cond=w > 0 | print")
                         .pipelines[0])
        except PipelineError:
            pass
        print("left", transport.segments(f"amml_{{os.getpid()}}_"))
    """)
    )
    result = subprocess.run([sys.executable, str(script)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "left []" in result.stdout
    assert "leaked" not in result.stderr and "resource_tracker" not in result.stderr, result.stderr
    assert len(pd.read_csv(out)) == 500_000


def test_switched_off_batches_travel_as_they_are(monkeypatch):
    monkeypatch.setenv("AMML_SHM_TRANSPORT", "0")
    df = frame(100_000)
    messages = transport.Transport(enabled=RunConfig.from_environment().shm_transport).pack(df, 2)
    assert all(m is df for m in messages) and transport.unpack(messages[0]) is df


def test_a_full_tmpfs_falls_back_to_the_pipe(monkeypatch):
    def full(name, raws, offsets):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(transport, "_write_segment", full)
    df = frame(100_000)
    [message] = transport.Transport().pack(df)
    assert isinstance(message, transport._InBand)
    same(df, transport.unpack(pickle.loads(pickle.dumps(message))))
