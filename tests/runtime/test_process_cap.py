"""`max_processes`: a run uses at most that many component processes (adjacent stages share one), gives the
same records as without a cap, and still fails whole, naming the component, with no process left behind."""

import threading
import time

import pandas as pd
import psutil
import pytest
import sqlalchemy as sa

from airflow_amml import storage
from airflow_amml.run_config import RunConfig
from airflow_amml.runtime.errors import PipelineError
from airflow_amml.runtime.executor import run_pipeline
from airflow_amml.runtime.grouping import process_groups
from airflow_amml.runtime.plan import make_plan
from compiler import ProgramCache, compile_source

CAPS = [None, 2, 1]


def pipeline(text):
    return compile_source(text, "cap.amml", cache=ProgramCache()).pipelines[0]


def config(tmp_path, cap):
    # small batches: many messages, so that fused stages interleave with what arrives from other processes
    home = tmp_path / f"home-{cap}"
    return RunConfig.from_environment(home=home, output_root=tmp_path / "out", max_processes=cap, batch_rows=2000)


def sorted_frame(path):
    frame = pd.read_csv(path)
    return frame.sort_values(list(frame.columns)).reset_index(drop=True)


LINEAR = (
    "normalsource col='v', count=20000, seed=4 | filter cond=v > 0 | derive w=v * 2 | select cols=['v', 'w'] "
    "| csv_sink path='{out}/linear.csv'"
)
JOIN_SPLIT = (
    "a = normalsource col='v', count=3000, seed=1\nb = normalsource col='v', count=2000, seed=2\n"
    "join a, b | derive w=v * 3 | split x, y\nx | csv_sink path='{out}/x.csv'\n"
    "y | filter cond=w > 1 | csv_sink path='{out}/y.csv'"
)

# under a cap of 2: [normalsource, filter] [normalsource, csv_sink] — a source sharing its process with a stage
# that reads from another process (it must not starve that inbox while it reads)
LATE_JOIN = (
    "a = normalsource col='v', count=30000, seed=1 | filter cond=v > 0\n"
    "b = normalsource col='v', count=20000, seed=2\njoin a, b | csv_sink path='{out}/joined.csv'"
)


@pytest.mark.parametrize(
    ("text", "outputs"),
    [(LINEAR, ["linear.csv"]), (JOIN_SPLIT, ["x.csv", "y.csv"]), (LATE_JOIN, ["joined.csv"])],
    ids=["linear", "join-split", "late-join"],
)
def test_every_cap_gives_the_records_of_one_process_per_component(tmp_path, text, outputs, new_processes):
    got = {}
    for cap in CAPS:
        out = tmp_path / "out" / str(cap)
        out.mkdir(parents=True)
        result = run_pipeline(pipeline(text.format(out=cap)), config=config(tmp_path, cap))
        got[cap] = [sorted_frame(out / name) for name in outputs]
        # the summary still has one row per component, whatever shared a process
        assert {s.id for s in result.stages} == set(result.counters)
        assert all(f"  {s.name} " in result.summary() for s in result.stages)
    assert len(got[None][0]) > 1000
    for cap in CAPS[1:]:
        for uncapped, capped in zip(got[None], got[cap], strict=True):
            pd.testing.assert_frame_equal(uncapped, capped)
    assert new_processes() == []


def test_events_reach_a_listener_in_another_fused_process(tmp_path):
    """alert → snapshot: with a cap of 2 the alert and the snapshot run in different processes, each with a
    neighbour; with 1 in the same one. The alert fires once and the snapshot keeps the same records."""
    text = (
        "readings = normalsource col='v', count=3000, seed=3\nreadings | alert cond=v > 2.5, cooldown=1000000\n"
        "readings | derive w=v | print limit=0\nreadings | snapshot size=10"
    )
    seen = {}
    for cap in CAPS:
        cfg = config(tmp_path, cap)
        groups = process_groups(make_plan(pipeline(text)), cap)
        run_pipeline(pipeline(text), config=cfg)
        with storage.engine(cfg).connect() as conn:
            alerts = conn.execute(sa.text("select position from amml_alerts")).fetchall()
            rows = conn.execute(sa.text("select row_position from amml_snapshots order by 1")).fetchall()
        seen[cap] = (alerts, rows, [tuple(s.name for s in g) for g in groups])
    assert len(seen[None][0]) == 1 and len(seen[None][1]) == 10
    assert seen[2][0] == seen[1][0] == seen[None][0]
    assert seen[2][1] == seen[1][1] == seen[None][1]
    alert_process = next(g for g in seen[2][2] if "alert" in g)
    assert "snapshot" not in alert_process, seen[2][2]


def amml_children():
    found = []
    for p in psutil.Process().children():
        try:
            name = p.name()
        except psutil.Error:  # gone meanwhile
            continue
        if name.startswith("amml:"):
            found.append((p.pid, name))
    return found


def test_a_run_never_has_more_component_processes_than_its_cap(tmp_path, new_processes):
    text = (
        "normalsource col='v', count=900, rate=600 | filter cond=v > 0 | derive w=v * 2 | select cols=['w'] "
        "| print limit=0"
    )
    expected_titles = {"amml:" + "+".join(s.name for s in g) for g in process_groups(make_plan(pipeline(text)), 2)}
    samples: list[list[tuple[int, str]]] = []
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            samples.append(amml_children())
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        result = run_pipeline(pipeline(text), config=config(tmp_path, 2))
    finally:
        stop.set()
        sampler.join(5)
    assert max(len(s) for s in samples) == 2, "a 5-component pipeline under a cap of 2 runs in exactly 2"
    titles = {name for sample in samples for _, name in sample}
    assert expected_titles <= titles, "a fused process is named by its components, whole"
    # (for an instant after the fork the kernel's 15-byte name may be set before the command line is)
    assert all(t in expected_titles or any(e.startswith(t) and len(t) == 15 for e in expected_titles) for t in titles)
    assert any("+" in t for t in titles)
    assert result.counters[result.stages[-1].id].records_in > 0
    assert new_processes() == []


@pytest.mark.parametrize("cap", [2, 1])
def test_a_failing_component_in_a_fused_process_is_named(tmp_path, cap, new_processes):
    with pytest.raises(PipelineError) as info:
        run_pipeline(
            pipeline("normalsource col='v', count=100000 | derive u=v | filter cond=w > 0 | print limit=0"),
            config=config(tmp_path, cap),
        )
    message = str(info.value)
    assert "`filter` (position 3 in its pipe, line 1)" in message
    assert "record has no field `w`" in message
    assert new_processes() == []


def test_a_killed_fused_process_stops_the_others_and_names_its_components(tmp_path, new_processes):
    text = "normalsource col='v', count=0 | filter cond=v > 0 | derive w=v | print limit=0"  # endless
    killed = []

    def killer():
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            children = amml_children()
            if len(children) == 2:
                victim = next(pid for pid, name in children if name.startswith("amml:normalsource"))
                psutil.Process(victim).kill()
                killed.append(victim)
                return
            time.sleep(0.05)

    thread = threading.Thread(target=killer)
    thread.start()
    with pytest.raises(PipelineError) as info:
        run_pipeline(pipeline(text), config=config(tmp_path, 2))
    thread.join()
    assert killed, "the fused process was never seen"
    message = str(info.value)
    assert "died unexpectedly" in message and "its process ran `normalsource`, `filter`" in message
    assert new_processes() == []


def test_groups_are_contiguous_balanced_and_only_send_forward():
    stages = make_plan(pipeline("normalsource col='v' | filter cond=v > 0 | derive w=v | zscore_scaler | print"))
    names = [[s.name for s in g] for g in process_groups(stages, 2)]
    # weights 1, 1, 1, 3 (a scaler fits a model), 1: the heaviest group as light as it can be
    assert names == [["normalsource", "filter", "derive"], ["zscore_scaler", "print"]]
    assert [len(g) for g in process_groups(stages, None)] == [1] * 5 == [len(g) for g in process_groups(stages, 9)]
    assert [len(g) for g in process_groups(stages, 1)] == [5]

    late = [[s.name for s in g] for g in process_groups(make_plan(pipeline(LATE_JOIN.format(out="o"))), 2)]
    assert late == [["normalsource", "filter"], ["normalsource", "csv_sink"]]

    joined = make_plan(pipeline(JOIN_SPLIT.format(out="o")))
    for cap in range(1, len(joined) + 1):
        groups = process_groups(joined, cap)
        number = {s.id: i for i, g in enumerate(groups) for s in g}
        assert len(groups) == cap and sorted(number) == sorted(s.id for s in joined)
        assert all(number[d] >= number[s.id] for s in joined for d in s.downstream), "no edge goes back"
