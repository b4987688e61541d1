"""Benchmark: what a process cap (`max_processes`, env ``AMML_MAX_PROCESSES``) costs and saves.

Run from the project root::

    .venv/bin/python bench/processes.py [--rows 2000000] [--repeat 3]

One six-component pipeline, ``normalsource | filter | derive | derive | derive | print limit=0``, runs with no
cap (six component processes), then caps of 4, 2 and 1, each ``--repeat`` times, in this one run. Reported per
cap: component processes (the parent not counted), the best wall time of the ``run_pipeline`` call (forks and
shutdown included), records/s, and the peak summed RSS of this process and all its descendants (sampled every
20 ms); then both as ratios to no cap. Nothing about speed is asserted; the script fails only when a run
delivers a wrong record count (a bug).

What to expect: the stages here are cheap, so what a batch costs between two processes (pickling, shared memory,
a pipe, a wake-up) outweighs what running them in parallel gains, and a fused run is faster as well as
smaller. A heavy stage (a training, a model) is where a process of its own pays: the grouping keeps such
stages apart where the cap allows (:mod:`airflow_amml.runtime.grouping`).
On this machine (2 cores, 1,000,000 records, best of 2): records/s 1.00 / 1.14 / 2.31 / 2.10 and peak RSS
1.00 / 0.74 / 0.48 / 0.34 for no cap (6 processes) / 4 / 2 / 1.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from airflow_amml.run_config import RunConfig  # noqa: E402 - after the sys.path fix
from airflow_amml.runtime.executor import run_pipeline  # noqa: E402
from airflow_amml.runtime.grouping import process_groups  # noqa: E402
from airflow_amml.runtime.plan import make_plan  # noqa: E402
from compiler import ProgramCache, compile_source  # noqa: E402

MB = 1024**2
CAPS = [None, 4, 2, 1]
TEXT = (
    "normalsource col='v', count={rows}, seed=1 | filter cond=v > -1 | derive w=v * 2 | derive x=w + v "
    "| derive y=x * x | print limit=0"
)


class TreeRss:
    """The peak summed RSS of this process and its descendants, sampled every ``interval`` seconds."""

    def __init__(self, interval: float = 0.02) -> None:
        self.interval = interval
        self.me = psutil.Process()
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> None:
        total = 0
        for proc in [self.me, *self.me.children(recursive=True)]:
            try:
                total += proc.memory_info().rss
            except psutil.Error:  # exited between listing and reading
                pass
        self.peak = max(self.peak, total)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def __enter__(self) -> TreeRss:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def measure(rows: int, cap: int | None, repeat: int) -> tuple[int, float, int]:
    """(component processes, best wall seconds, peak tree RSS in bytes) of ``repeat`` runs under ``cap``."""
    pipeline = compile_source(TEXT.format(rows=rows), "bench.amml", cache=ProgramCache()).pipelines[0]
    config = RunConfig.from_environment(max_processes=cap)
    processes = len(process_groups(make_plan(pipeline), cap))
    best, peak = float("inf"), 0
    for _ in range(repeat):
        with TreeRss() as rss:
            start = time.perf_counter()
            result = run_pipeline(pipeline, config=config)
            wall = time.perf_counter() - start
        sink = result.counters[result.stages[-1].id]
        filtered = result.counters[result.stages[1].id].records_out
        if sink.records_in != filtered or result.counters[result.stages[0].id].records_out != rows:
            raise SystemExit(f"cap {cap}: the sink got {sink.records_in:,} records, expected {filtered:,}")
        best, peak = min(best, wall), max(peak, rss.peak)
    return processes, best, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    results = {cap: measure(args.rows, cap, args.repeat) for cap in CAPS}
    _, base_wall, base_rss = results[None]
    print(f"{args.rows:,} records, best of {args.repeat}; ratios against no cap, measured in this run")
    print(
        f"{'max_processes':>13}  {'processes':>9}  {'best':>7}  {'records/s':>11}  {'ratio':>5}  "
        f"{'peak RSS':>9}  {'ratio':>5}"
    )
    for cap, (processes, wall, rss) in results.items():
        print(
            f"{cap!s:>13}  {processes:>9}  {wall:6.2f}s  {args.rows / wall:>11,.0f}  {base_wall / wall:5.2f}  "
            f"{rss / MB:>6.0f} MB  {rss / base_rss:5.2f}"
        )


if __name__ == "__main__":
    main()
