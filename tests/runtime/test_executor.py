"""The streaming executor: same results in both modes, join, failures that name the component, no orphans."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest

from airflow_amml.run_config import RunConfig
from airflow_amml.runtime.errors import PipelineError
from airflow_amml.runtime.executor import rebatch, run_pipeline
from compiler import ProgramCache, compile_source

ROOT = Path(__file__).resolve().parents[2]


def pipeline(text):
    return compile_source(text, "test.amml", cache=ProgramCache()).pipelines[0]


@pytest.mark.parametrize("mode", ["single", "multiprocess"])
def test_filter_derive_sink_gives_the_pandas_answer(tmp_path, mode, new_processes):
    out = tmp_path / "out.csv"
    run_pipeline(
        pipeline(
            f"normalsource col='val1', count=50000, seed=7 | filter cond=val1 > 1 | derive sq=val1 * val1 "
            f"| csv_sink path='{out}'"
        ),
        mode=mode,
    )
    import numpy as np

    expected = np.random.default_rng(7).normal(0, 1, 50000)
    expected = expected[expected > 1]
    got = pd.read_csv(out)
    assert len(got) == len(expected)
    assert np.allclose(got["val1"], expected) and np.allclose(got["sq"], expected**2)
    assert new_processes() == []


def _run_in_a_daemon(out: str) -> None:
    run_pipeline(pipeline(f"normalsource col='v', count=1000, seed=3 | filter cond=v > 0 | csv_sink path='{out}'"))


def test_a_pipeline_runs_inside_a_daemonic_process_as_in_a_celery_prefork_worker(tmp_path, new_processes):
    """Celery's prefork pool processes are daemons, and the task process Airflow forks from one inherits the
    flag: the executor must still start its component processes there."""
    import multiprocessing as mp

    import numpy as np

    out = tmp_path / "out.csv"
    daemon = mp.get_context("fork").Process(target=_run_in_a_daemon, args=(str(out),), daemon=True)
    daemon.start()
    daemon.join(120)
    assert daemon.exitcode == 0, "the pipeline failed inside the daemonic process"
    assert len(pd.read_csv(out)) == int((np.random.default_rng(3).normal(0, 1, 1000) > 0).sum())
    assert new_processes() == []


def test_join_merges_every_record_of_every_flow(tmp_path):
    out = tmp_path / "out.csv"
    result = run_pipeline(
        pipeline(
            "a = normalsource col='v', count=3000, seed=1\nb = normalsource col='v', count=2000, seed=2\n"
            f"join a, b | csv_sink path='{out}'"
        )
    )
    assert len(pd.read_csv(out)) == 5000
    sink = next(s for s in result.stages if s.name == "csv_sink")
    assert sink.upstream and result.counters[sink.id].records_in == 5000


def test_a_failing_component_is_named_and_no_process_is_left(tmp_path, new_processes):
    with pytest.raises(PipelineError) as info:
        run_pipeline(pipeline("normalsource col='v', count=100000 | filter cond=w > 0 | print"))
    message = str(info.value)
    assert "`filter` (position 2 in its pipe, line 1)" in message
    assert "record has no field `w`" in message
    assert "Traceback" not in message, "an error in the pipeline names what to fix; a traceback would not help"
    assert new_processes() == []


@pytest.mark.parametrize("mode", ["single", "multiprocess"])
def test_a_bug_in_a_component_keeps_its_traceback(mode, monkeypatch):
    """An exception that is not about the input is a bug to report: its traceback stays in the message."""
    from airflow_amml.components import progress

    def broken(self, batch):
        raise KeyError("internal")

    monkeypatch.setattr(progress.Derive, "process", broken)
    with pytest.raises(PipelineError) as info:
        run_pipeline(pipeline("normalsource col='v', count=10 | derive w=v | print limit=0"), mode=mode)
    message = str(info.value)
    assert "`derive`" in message and "KeyError" in message and "Original traceback" in message


def test_a_killed_component_stops_the_whole_chain(new_processes):
    # an endless source, a slow consumer; kill the consumer and expect a prompt, named failure
    pipe = pipeline("normalsource col='v', count=0 | filter cond=v > 0 | print limit=0")
    import threading

    def killer():
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            procs = new_processes()
            if len(procs) >= 3:
                procs[1].kill()  # the second component: filter
                return
            time.sleep(0.05)

    thread = threading.Thread(target=killer)
    thread.start()
    started = time.monotonic()
    with pytest.raises(PipelineError) as info:
        run_pipeline(pipe)
    thread.join()
    assert "died unexpectedly" in str(info.value)
    assert time.monotonic() - started < 15
    assert new_processes() == []


def test_sigterm_to_the_executor_terminates_every_child(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(
        textwrap.dedent("""
        from compiler import compile_source
        from airflow_amml.runtime.executor import run_pipeline
        run_pipeline(compile_source("normalsource col='v', count=0 | filter cond=v > 0 | print limit=0").pipelines[0])
    """)
    )
    proc = subprocess.Popen(
        [sys.executable, str(script)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    parent = psutil.Process(proc.pid)
    try:
        deadline = time.monotonic() + 30
        while len(parent.children()) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        kids = parent.children(recursive=True)
        assert len(kids) == 3
        proc.send_signal(signal.SIGTERM)  # as soon as the children exist: the signal may land during a fork
        proc.wait(timeout=60)
        _, alive = psutil.wait_procs(kids, timeout=10)
        assert alive == []
    finally:  # never leave the tree running if the test fails
        for p in [parent, *parent.children(recursive=True)] if parent.is_running() else []:
            p.kill()
        proc.wait(timeout=10)


def test_rebatch_coalesces_small_frames_and_splits_big_ones():
    frames = [pd.DataFrame({"x": range(i * 10, i * 10 + 10)}) for i in range(100)]
    batches = list(rebatch(iter(frames), rows=256, delay=60))
    assert [len(b) for b in batches] == [256, 256, 256, 232]
    assert pd.concat(batches)["x"].tolist() == list(range(1000))


def test_amml_run_cli(tmp_path):
    out = tmp_path / "o.csv"
    src = tmp_path / "p.amml"
    src.write_text(f"normalsource col='v', count=100, seed=1 | csv_sink path='{out}'\n")
    result = subprocess.run(
        [sys.executable, "-m", "airflow_amml.cli", "run", str(src)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert len(pd.read_csv(out)) == 100
    assert os.path.exists(out)


@pytest.mark.parametrize("mode", ["single", "multiprocess"])
def test_batch_rows_and_flush_delay_are_configuration(mode):
    """Records per batch and how long an ingress may hold them: Logstash's batch.size and batch.delay."""
    counted = pipeline("normalsource col='v', count=5000 | filter cond=v > -100 | print limit=0")
    result = run_pipeline(counted, mode=mode, config=RunConfig.from_environment(batch_rows=1000))
    assert [result.counters[s.id].batches_in for s in result.stages[1:]] == [5, 5]
    # 200 records paced over about half a second: held up to 1 s they go as one batch; up to 10 ms, as many
    paced = pipeline("normalsource col='v', count=200, rate=400 | print limit=0")
    held = run_pipeline(paced, mode=mode, config=RunConfig.from_environment(flush_delay=1.0))
    prompt = run_pipeline(paced, mode=mode, config=RunConfig.from_environment(flush_delay=0.01))
    assert held.counters[held.stages[-1].id].batches_in == 1
    assert prompt.counters[prompt.stages[-1].id].batches_in >= 10


@pytest.mark.parametrize(
    ("settings", "words"),
    [
        ({"batch_rows": 0}, "batch_rows must be a whole number of records ≥ 1, got 0"),
        ({"flush_delay": "fast"}, "flush_delay must be a number of seconds ≥ 0, got 'fast'"),
    ],
)
def test_bad_batching_settings_are_refused_before_anything_runs(settings, words, new_processes):
    with pytest.raises(PipelineError, match=words):
        run_pipeline(pipeline("normalsource count=10 | print"), config=RunConfig.from_environment(**settings))
    assert new_processes() == []


def test_amml_run_takes_batching_from_the_dag_block_and_the_command_line(tmp_path):
    src = tmp_path / "p.amml"
    src.write_text("dag d { batch_rows = 500 }\nnormalsource col='v', count=2000 | print limit=0\n")

    def batches(*flags):
        result = subprocess.run(
            [sys.executable, "-m", "airflow_amml.cli", "run", str(src), *flags],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        # the summary's row of `print`: component, records in, records out, batches in/out, busy, rate
        row = next(x.split() for x in result.stderr.splitlines() if x.startswith("  print "))
        return int(row[3].split("/")[0])

    assert batches() == 4
    assert batches("--batch-rows", "1000") == 2


def test_a_child_stopped_right_after_fork_never_runs_the_callers_code(tmp_path):
    """The first component fails at once, so the executor stops the others while it may still be forking
    them. A child signalled before multiprocessing's try/os._exit used to run the parent's handler there,
    raise, and go on running the caller's code: under pytest, a second test session (seen in CI). Run in a
    subprocess, so that such a runaway could not run this test session; 300 runs had 3 runaways before."""
    bad = tmp_path / "bad.log"
    bad.write_text("not json\n")
    script = textwrap.dedent(f"""
        import os
        from compiler import compile_source
        from airflow_amml.runtime.errors import PipelineError
        from airflow_amml.runtime.executor import run_pipeline

        me = os.getpid()
        text = "logsource path='{bad}' | filter cond=a > 1 | filter cond=a > 2 | filter cond=a > 3 | print"
        pipe = compile_source(text).pipelines[0]
        for _ in range(300):
            try:
                run_pipeline(pipe)
            except BaseException as exc:
                if os.getpid() != me:
                    print("RUNAWAY", os.getpid(), type(exc).__name__, exc, flush=True)
                    os._exit(3)
                if not isinstance(exc, PipelineError):
                    raise
        print("done")
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert "RUNAWAY" not in result.stdout, result.stdout
    assert result.returncode == 0 and result.stdout.strip().endswith("done"), result.stderr[-3000:]


def test_the_progress_log_names_a_stopped_component(monkeypatch, caplog):
    """A child stopped by SIGSTOP used to hang the pipeline without a word: the periodic progress log now
    names the component that has reported nothing for a while, and says its process is stopped. Its
    neighbours keep reporting (idle or blocked ones too), so only the stopped one is named."""
    import threading

    from airflow_amml.runtime import executor

    monkeypatch.setattr(executor, "PROGRESS_EVERY", 0.2)
    monkeypatch.setattr(executor, "STALL_AFTER", 2.0)  # 10 reports of an idle neighbour: room for a loaded machine
    stopped: list[psutil.Process] = []

    def stop_then_resume():
        deadline = time.monotonic() + 20
        while not stopped and time.monotonic() < deadline:
            stopped.extend(p for p in psutil.Process().children() if p.name() == "amml:derive")
            time.sleep(0.05)
        if not stopped:  # the assertion below says so; an IndexError here would only be printed
            return
        stopped[0].send_signal(signal.SIGSTOP)
        time.sleep(4)
        stopped[0].send_signal(signal.SIGCONT)

    thread = threading.Thread(target=stop_then_resume, daemon=True)
    thread.start()
    with caplog.at_level("INFO", logger="airflow_amml.runtime.executor"):
        result = run_pipeline(
            pipeline("normalsource col='v', count=400, rate=100 | derive w=v * 2 | filter cond=w > 0 | print limit=0")
        )
    thread.join(5)
    assert stopped, "the derive process was never seen"
    stalls = [r.getMessage() for r in caplog.records if r.levelname == "WARNING" and "no progress" in r.getMessage()]
    assert stalls, [r.getMessage() for r in caplog.records]
    assert any("`derive`" in m and "stopped" in m and f"kill -CONT {stopped[0].pid}" in m for m in stalls), stalls
    assert not any("`filter`" in m or "`print`" in m for m in stalls), stalls
    derive = next(s for s in result.stages if s.name == "derive")
    assert result.counters[derive.id].records_in == 400, "resumed, it finished the stream"


def test_one_stage_driver_counts_what_passes_and_cuts_what_goes_out():
    """Both modes run every component through a StageDriver: batches in, its results out (cut into pieces of
    at most piece_rows), what finish() yields after the end, and the counters of all that."""
    from airflow_amml.runtime.plan import make_plan
    from airflow_amml.runtime.stage_driver import StageDriver

    class Doubling:
        def process(self, batch):
            return pd.concat([batch, batch])

        def finish(self):
            yield pd.DataFrame({"v": [7]})
            yield pd.DataFrame({"v": []})  # empty frames are not sent

    stage = make_plan(pipeline("normalsource col='v' | derive w=v | print"))[1]
    sent = []
    driver = StageDriver(stage, Doubling(), sent.append, piece_rows=3)
    driver.feed(pd.DataFrame({"v": range(4)}))
    driver.end()
    assert [len(piece) for piece in sent] == [3, 3, 2, 1]
    counters = driver.counters
    assert (counters.records_in, counters.batches_in, counters.records_out, counters.batches_out) == (4, 1, 9, 4)


def test_events_are_wired_by_the_parameters_the_spec_declares():
    """alert's spec says its `event` parameter names what it emits, snapshot's that `on` names what it waits
    for: the plan pairs them by those values (or the declared default), never by parameter names it knows."""
    from airflow_amml.runtime.plan import emitters, listeners, make_plan

    stages = make_plan(
        pipeline(
            "r = normalsource col='v', count=10\n"
            "r | alert cond=v > 0, event='hot'\nr | snapshot on='hot'\nr | snapshot\nr | alert cond=v < 0"
        )
    )
    hot, waits_hot, waits_default, default = stages[1:]
    assert (hot.emits, waits_hot.listens_to, waits_default.listens_to, default.emits) == (
        "hot",
        "hot",
        "alert",
        "alert",
    )
    assert listeners(hot, stages) == [waits_hot] and listeners(default, stages) == [waits_default]
    assert emitters(waits_hot, stages) == [hot] and stages[0].emits is None and stages[0].listens_to is None


def test_a_spec_must_name_a_str_parameter_for_its_events():
    from compiler.component_spec import ComponentSpec, Kind, param

    with pytest.raises(ValueError, match="declares listens='on', which must name one of its `str` parameters"):
        ComponentSpec("waiter", Kind.EGRESS, "waits", (param("on", "int", "wrong type"),), listens="on")


def test_a_signal_stop_survives_the_trip_from_a_worker_process():
    import pickle

    from airflow_amml.runtime.errors import Terminated

    stopped = pickle.loads(pickle.dumps(Terminated(signal.SIGINT)))
    assert isinstance(stopped, Terminated) and stopped.signum == signal.SIGINT
