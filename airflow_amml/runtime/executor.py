"""Run a compiled pipeline: components in processes of their own, columnar batches through bounded queues.

::

    parent (run_pipeline)
      │  forks one process per component (at most max_processes), then only watches: the control queue + sentinels
      ▼
    [ingress] ──inbox──► [progress] ──inbox──► [egress]        inbox = multiprocessing.Queue(INBOX_BATCHES)
        │                    │                     │
        └────────────── control queue ─────────────┘            Done(counters) | Failure(traceback)
                         event queues ───────────► components that accept events (alert → snapshot)

    max_processes=2:  [ingress+progress] ──inbox──► [egress]   (a batch goes from ingress to progress by a call)

* What travels is a pandas DataFrame (a micro-batch) or ``None`` (end of stream). A big batch's column data
  goes through shared memory, only its pickled header through the pipe (see :mod:`.transport`). A join is several
  upstreams writing one inbox (the reader counts their ends); a split is one writer to several inboxes.
* Backpressure: inboxes hold at most ``INBOX_BATCHES`` batches, so a slow sink slows its source and memory
  stays flat.
* Lifecycle: when a component raises or dies, the parent terminates every child (SIGTERM, then SIGKILL)
  and raises :class:`PipelineError` naming the component. SIGTERM/SIGINT to the parent does the same.
  Children are forked (``spawn`` re-imports ``__main__``, which hangs inside Airflow's task runner), reset
  the signal handlers they inherit, and ask the kernel to kill them if the parent dies.

``mode="single"`` runs the same plan in this process, depth first, for debugging and small data. Both modes
drive each component through one :class:`~.stage_driver.StageDriver` (feed, end, counters); they differ only in
what carries its output: a call to the next driver, or a queue to the next process. With ``max_processes``
(:class:`RunConfig`) below the number of components, adjacent stages share a process (:mod:`.grouping` chooses
which, :mod:`.process_group` runs them: calls inside, queues between); one process can run any plan.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import gc
import logging
import multiprocessing as mp
import os
import queue
import signal
import threading
import time
import traceback
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from typing import Any

import pandas as pd
import psutil

from airflow_amml.run_config import RunConfig
from compiler.bytecode import PipelineCode
from compiler.component_spec import Kind
from compiler.components import ComponentRegistry

from . import transport
from .component import AbstractComponent, ComponentContext, Event
from .errors import PipelineError, Terminated
from .grouping import process_groups
from .plan import Stage, load_component_class, make_plan
from .process_group import GroupRun, StageFailed, Wiring
from .stage_driver import Counters, SendersDone, StageDriver

log = logging.getLogger(__name__)

# Batches an inbox may hold: enough to keep both cores busy, small enough that memory stays flat.
INBOX_BATCHES = 4
# An ingress flushes a batch at this many rows, or when its oldest row has waited FLUSH_DELAY seconds.
BATCH_ROWS = 65_536
FLUSH_DELAY = 0.05
# How long children get to exit after SIGTERM before SIGKILL.
TERMINATE_GRACE = 3.0
PROGRESS_EVERY = 10.0
# A component that has reported nothing for this long (a child reports every PROGRESS_EVERY, idle or not,
# whenever its loop gets control) is named in the log with its process state: stopped, or stuck in one call.
STALL_AFTER = 3 * PROGRESS_EVERY
_STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}


@dataclass(frozen=True)
class Batching:
    """How an ingress groups records: ``rows`` per batch at most, and no record held longer than ``delay``
    seconds (a slow stream still delivers promptly). Set per DAG with ``batch_rows``/``flush_delay`` in the
    `dag` block, or in the :class:`RunConfig` of :func:`run_pipeline` (checked there)."""

    rows: int = BATCH_ROWS
    delay: float = FLUSH_DELAY

    @classmethod
    def of(cls, config: RunConfig) -> Batching:
        """The config's batching; what it leaves unset (None) is the default."""
        rows = BATCH_ROWS if config.batch_rows is None else config.batch_rows
        return cls(rows, FLUSH_DELAY if config.flush_delay is None else config.flush_delay)


@dataclass
class RunResult:
    pipeline: str
    counters: dict[int, Counters] = field(default_factory=dict)
    stages: list[Stage] = field(default_factory=list)
    seconds: float = 0.0
    item: tuple[str, Any] | None = None  # a fanned-out run's (variable, value), named in the summary

    def summary(self) -> str:
        """One block for the end of the log: per component, records in and out, batches, the time spent in
        its own calls and the records it handled per second of it, and its last note (``3 epochs``)."""
        header = ("component", "records in", "records out", "batches", "busy", "rate", "")
        rows = [
            (
                stage.name,
                f"{c.records_in:,}",
                f"{c.records_out:,}",
                f"{c.batches_in}/{c.batches_out}",
                f"{c.busy_seconds:.2f}s",
                c.rate(stage.spec.kind),
                c.note or "",
            )
            for stage in self.stages
            if (c := self.counters.get(stage.id)) is not None
        ]
        widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]

        def line(row: tuple[str, ...]) -> str:
            cells = [row[0].ljust(widths[0]), *(cell.rjust(w) for cell, w in zip(row[1:-1], widths[1:-1]))]
            return ("  " + "  ".join(cells) + ("  " + row[-1] if row[-1] else "")).rstrip()

        which = f"pipeline {self.pipeline}" + (f" ({self.item[0]}={self.item[1]})" if self.item else "")
        return "\n".join([f"{which} finished in {self.seconds:.2f}s", line(header), *map(line, rows)])


@dataclass(frozen=True)
class _Done:
    stage: int
    counters: Counters


@dataclass(frozen=True)
class _Failure:
    stage: int
    error: str
    traceback: str | None
    hint: str | None = None


@dataclass(frozen=True)
class _Progress:
    stage: int
    counters: Counters


def run_pipeline(
    pipeline: PipelineCode,
    *,
    run_params: Mapping[str, Any] | None = None,
    config: RunConfig | None = None,
    mode: str = "multiprocess",
    registry: ComponentRegistry | None = None,
    filename: str = "<pipeline>",
) -> RunResult:
    """Run one compiled pipeline to the end; raise :class:`PipelineError` if any component fails.

    ``config`` is what every component reads (None: :meth:`RunConfig.from_environment`); the parameters are
    the run's (a program's dag-block defaults are merged in by :func:`airflow_amml.run.run_program`)."""
    config = config if config is not None else RunConfig.from_environment()
    stages = make_plan(pipeline, registry)
    batching = Batching.of(config)
    context_args = {"run_params": run_params, "config": config}
    if mode == "single":
        result = _SingleProcess(pipeline.name, stages, context_args, filename, batching).run()
    elif mode == "multiprocess":
        multi = _MultiProcess(pipeline.name, stages, context_args, filename, batching, config.max_processes)
        result = multi.run()
    else:
        raise ValueError(f"mode must be 'multiprocess' or 'single', got {mode!r}")
    result.item = config.item
    log.info("%s", result.summary())  # the run's one summary (`amml run` and the operator log nothing more)
    return result


def _instantiate(stage: Stage, context: ComponentContext) -> AbstractComponent:
    cls = load_component_class(stage.spec)
    return cls(stage.spec, stage.callback, context)


def _describe(exc: BaseException) -> str:
    """The error as the user should read it: our own errors speak for themselves; others show their type."""
    from compiler.errors import AmmlError

    if isinstance(exc, PipelineError):
        return exc.message
    if isinstance(exc, AmmlError):  # a callback's, a registry's, a model file's…: its text, less the hint we add
        text, hint = str(exc), f"\nhint: {exc.hint}" if exc.hint else ""
        return text[: -len(hint)] if hint and text.endswith(hint) else text
    return f"{type(exc).__name__}: {exc}"


def _stage_error(
    stage: Stage, what: str, filename: str, tb: str | None = None, hint: str | None = None
) -> PipelineError:
    """An error that names the component, its place in the pipe and its line in the file."""
    return PipelineError(
        f"component {stage.where} {what}",
        component=stage.name,
        traceback=tb,
        line=stage.line,
        column=stage.column,
        filename=filename,
        hint=hint,
    )


def _failure(stage: Stage, exc: BaseException, tb: str, filename: str) -> PipelineError:
    hint = getattr(exc, "hint", None)
    return _stage_error(stage, f"failed: {_describe(exc)}", filename, _traceback_for(exc, tb), hint)


def _traceback_for(exc: BaseException, tb: str) -> str | None:
    """A traceback helps to report a bug, never to fix an input: errors about the pipeline or its data (ours,
    which name what to change) go without one; anything else keeps it."""
    from compiler.errors import AmmlError
    from compiler.semantics import SemanticError

    return None if isinstance(exc, AmmlError | SemanticError) else tb


def rebatch(
    frames: Iterator[pd.DataFrame], rows: int = BATCH_ROWS, delay: float = FLUSH_DELAY
) -> Iterator[pd.DataFrame]:
    """Coalesce an ingress's frames into batches of about ``rows`` records, never holding one longer than
    ``delay`` seconds (checked when the next frame arrives; a source that waits should yield empty frames).

    The index of every batch is the records' position in the stream (0, 1, 2, ...), which later
    components keep (a filter keeps the positions of the records it passes): events refer to it."""
    position = 0
    for batch in _coalesce(frames, rows, delay):
        batch.index = pd.RangeIndex(position, position + len(batch))
        position += len(batch)
        yield batch


def _coalesce(frames: Iterator[pd.DataFrame], rows: int, delay: float) -> Iterator[pd.DataFrame]:
    held: list[pd.DataFrame] = []
    count, since = 0, 0.0
    for frame in frames:
        if len(frame):
            if not held:
                since = time.monotonic()
            held.append(frame)
            count += len(frame)
        while count >= rows:
            batch = pd.concat(held, ignore_index=True) if len(held) > 1 else held[0]
            yield batch.iloc[:rows].reset_index(drop=True)
            rest = batch.iloc[rows:]
            held, count = ([rest] if len(rest) else []), len(rest)
            since = time.monotonic()
        if held and time.monotonic() - since >= delay:
            yield pd.concat(held, ignore_index=True) if len(held) > 1 else held[0]
            held, count = [], 0
    if held:
        yield pd.concat(held, ignore_index=True) if len(held) > 1 else held[0]


# ---- single process ------------------------------------------------------------------------------


class _SingleProcess:
    """The plan run in this process, depth first: a batch goes all the way down before the next is read."""

    def __init__(self, name: str, stages: list[Stage], context_args: dict, filename: str, batching: Batching) -> None:
        self.name = name
        self.batching = batching
        self.stages = {s.id: s for s in stages}
        self.filename = filename
        self.upstreams_done = {s.id: SendersDone(len(s.upstream)) for s in stages}
        self.pending_events: list[Event] = []
        self.context = ComponentContext(**context_args, emit_event=self.pending_events.append)
        self.drivers: dict[int, StageDriver] = {}

    def run(self) -> RunResult:
        start = time.monotonic()
        try:
            for stage in self.stages.values():
                component = self._guard(stage, _instantiate, stage, self.context)
                self.drivers[stage.id] = StageDriver(stage, component, functools.partial(self._pass_on, stage))
                self._guard(stage, component.open)
            for stage in self.stages.values():
                if stage.spec.kind is Kind.INGRESS:
                    self._guard(stage, self._read, self.drivers[stage.id])
                    self._end(stage)
        finally:
            for driver in self.drivers.values():
                with contextlib.suppress(Exception):
                    driver.component.close()
        counters = {stage_id: driver.report() for stage_id, driver in self.drivers.items()}
        return RunResult(self.name, counters, list(self.stages.values()), time.monotonic() - start)

    def _guard(self, stage: Stage, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except PipelineError as exc:
            if exc.component:  # already names its component (raised further down the chain)
                raise
            raise _failure(stage, exc, traceback.format_exc(), self.filename) from exc
        except Exception as exc:
            raise _failure(stage, exc, traceback.format_exc(), self.filename) from exc

    def _read(self, driver: StageDriver) -> None:
        driver.run_ingress(rebatch(driver.component.batches(), self.batching.rows, self.batching.delay))

    def _pass_on(self, stage: Stage, batch: pd.DataFrame) -> None:
        """The outlet of ``stage``'s driver: the batch through each downstream component, events between."""
        for d in stage.downstream:
            self._deliver_events()
            self._guard(self.stages[d], self.drivers[d].feed, batch)
            self._deliver_events()

    def _deliver_events(self) -> None:
        while self.pending_events:
            event = self.pending_events.pop(0)
            for stage in self.stages.values():
                if stage.listens_to == event.name:
                    self._guard(stage, self.drivers[stage.id].component.on_event, event)

    def _end(self, stage: Stage) -> None:
        """``stage`` has sent its last batch: end each downstream component whose every upstream has ended."""
        for d in stage.downstream:
            upstreams_done = self.upstreams_done[d]
            upstreams_done.one_more()
            if upstreams_done.all:
                down = self.stages[d]
                self._guard(down, self.drivers[d].end)
                self._deliver_events()
                self._end(down)


# ---- component processes --------------------------------------------------------------------------


class _MultiProcess:
    """The plan in component processes: one per stage, or, with ``max_processes``, at most that many, each
    running a contiguous group of stages (:func:`.grouping.process_groups`)."""

    def __init__(
        self,
        name: str,
        stages: list[Stage],
        context_args: dict,
        filename: str,
        batching: Batching,
        max_processes: int | None = None,
    ) -> None:
        self.name = name
        self.batching = batching
        self.stages = stages
        self.by_id = {s.id: s for s in stages}
        self.context_args = context_args
        self.filename = filename
        self.ctx = mp.get_context("fork")
        self.groups = process_groups(stages, max_processes)

    def run(self) -> RunResult:
        start = time.monotonic()
        # Import every component's module here, once: forked children inherit it instead of each importing
        # (and, without .pyc files, compiling) its module again at every run. A bad implementation fails
        # here, before any process starts.
        for stage in self.stages:
            try:
                load_component_class(stage.spec)
            except PipelineError as exc:
                raise _failure(stage, exc, traceback.format_exc(), self.filename) from exc
        process_of = {stage.id: number for number, group in enumerate(self.groups) for stage in group}
        inboxes = tuple(self._inbox(group, process_of) for group in self.groups)
        event_boxes = tuple(
            self.ctx.Queue() if any(s.listens_to is not None for s in group) else None for group in self.groups
        )
        control = self.ctx.Queue()
        transport.sweep_stale()
        # one segment-name prefix per run: what `finally` sweeps
        channel = transport.Transport(enabled=self.context_args["config"].shm_transport)
        wirings = [
            Wiring(
                group,
                tuple(self.stages),
                process_of,
                inboxes,
                event_boxes,
                self.context_args,
                self.batching,
                channel,
                control,
            )
            for group in self.groups
        ]
        processes: dict[int, Any] = {}
        counters: dict[int, Counters] = {}
        received: list[int] = []  # signals seen by the handler, even if its exception got swallowed
        previous = _install_termination_handlers(processes, received)
        try:
            # Objects that exist now are moved out of the collector's sight while the children fork: a child
            # then never walks them in a garbage collection, and so never writes to (and copies) the pages
            # it shares with this process (the gc.freeze recipe of the Python documentation).
            gc.freeze()
            # SIGTERM/SIGINT wait while we fork. A child starts with this process's Python handlers; one
            # signalled a moment after fork (say, stopped at once because a sibling has already failed) would
            # run them before multiprocessing's try/os._exit, raise here, and go on running the caller's code
            # (under pytest: a second test session). The child unblocks them once its own handlers are set.
            _not_a_daemon()
            blocked = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
            try:
                for number, wiring in enumerate(wirings):
                    # daemon: an interpreter that exits never waits for a component (multiprocessing joins
                    # non-daemon children at exit, which hangs if one is still streaming)
                    proc = self.ctx.Process(
                        target=_child_main, args=(wiring,), name=f"amml:{self.name}:{wiring.title}", daemon=True
                    )
                    processes[number] = proc  # known before it exists: a signal during start() stops it
                    proc.start()
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
                gc.unfreeze()
            self._watch(processes, control, counters, received)
        finally:
            _terminate(processes.values())
            _restore_handlers(previous)
            for q in [*filter(None, inboxes), *filter(None, event_boxes), control]:
                q.cancel_join_thread()
                q.close()
            # segments still queued (a failure) or half written/read by a killed child: no child is left
            transport.cleanup(channel.prefix)
        return RunResult(self.name, counters, self.stages, time.monotonic() - start)

    def _inbox(self, group: tuple[Stage, ...], process_of: Mapping[int, int]) -> Any | None:
        """The inbox of the process running ``group``: None when no stage of it reads from another process;
        else INBOX_BATCHES batches for each stage that does (one stage alone: as many as before a cap)."""
        number = process_of[group[0].id]
        readers = sum(1 for s in group if any(process_of[u] != number for u in s.upstream))
        return self.ctx.Queue(INBOX_BATCHES * readers) if readers else None

    def _watch(
        self, processes: dict[int, Any], control: Any, counters: dict[int, Counters], received: list[int]
    ) -> None:
        running = dict(processes)  # process number → process
        done: set[int] = set()  # stage ids
        last_progress = time.monotonic()
        stalls = _StallWatch(time.monotonic())
        shown: dict[int, Counters] = {}  # what each component's last progress line said

        def handle(msg: Any) -> None:
            if isinstance(msg, _Failure):
                stage = self.by_id[msg.stage]
                raise _stage_error(stage, f"failed: {msg.error}", self.filename, msg.traceback, msg.hint)
            if isinstance(msg, (_Done, _Progress)):
                counters[msg.stage] = msg.counters
                stalls.reported(msg.stage, time.monotonic())
            if isinstance(msg, _Done):
                done.add(msg.stage)

        while running:
            # The handler's Terminated can be swallowed: raised inside an at-fork hook (logging's
            # _releaseLock runs after every fork), a __del__ or a weakref callback, it is only printed.
            if received:
                raise Terminated(received[0])
            ready = wait([control._reader, *(p.sentinel for p in running.values())], timeout=1.0)
            while True:  # drain the control queue before looking at exits: a Failure explains an exit
                try:
                    handle(control.get_nowait())
                except queue.Empty:
                    break
            for number, proc in list(running.items()):
                if proc.sentinel in ready or not proc.is_alive():
                    proc.join(0.5)
                    if proc.exitcode is None:
                        continue
                    # A process flushes its Done (or Failure) messages to the pipe before it exits, but other
                    # processes' messages may be ahead of them: read until they show up.
                    group = self.groups[number]
                    deadline = time.monotonic() + 2.0
                    while not all(s.id in done for s in group) and time.monotonic() < deadline:
                        try:
                            handle(control.get(timeout=max(0.01, deadline - time.monotonic())))
                        except queue.Empty:
                            break
                    unfinished = [s for s in group if s.id not in done]
                    if unfinished or proc.exitcode != 0:
                        raise self._died(group, unfinished, proc.exitcode)
                    del running[number]
            if time.monotonic() - last_progress > PROGRESS_EVERY:
                last_progress = time.monotonic()
                at_work = {s.id: proc.pid for number, proc in running.items() for s in self.groups[number]}
                # one line for each component at work since its last line (records, busy time or note
                # changed): not for a finished one, nor one idle while it waits for records
                for stage in self.stages:
                    now = counters.get(stage.id)
                    if now is None or stage.id not in at_work or stage.id in done:
                        continue
                    if now != shown.get(stage.id, Counters(note=now.note)):  # (before: nothing done yet)
                        shown[stage.id] = now
                        log.info("progress  %s", now.progress_line(stage))
                unfinished_work = {sid: pid for sid, pid in at_work.items() if sid not in done}
                for stage_id in stalls.stalled(unfinished_work, last_progress):
                    log.warning(
                        "progress  %s",
                        _stall_message(
                            self.by_id[stage_id], unfinished_work[stage_id], last_progress - stalls.last[stage_id]
                        ),
                    )

    def _died(self, group: tuple[Stage, ...], unfinished: list[Stage], exitcode: int | None) -> PipelineError:
        """A process ended without saying its stages were done: named by the first of them still at work."""
        what = f"died unexpectedly (exit code {exitcode})"
        if len(group) > 1:
            names = ", ".join(f"`{s.name}`" for s in group)
            what += f"; its process ran {names} (max_processes fuses stages into one process)"
        return _stage_error((unfinished or list(group))[0], what, self.filename)


class _StallWatch:
    """When each component last reported; which running ones have been silent for STALL_AFTER seconds
    (each named once per silence, not at every tick)."""

    def __init__(self, now: float) -> None:
        self.start = now
        self.last: dict[int, float] = {}
        self.warned: set[int] = set()

    def reported(self, stage_id: int, now: float) -> None:
        self.last[stage_id] = now
        self.warned.discard(stage_id)

    def stalled(self, running: Mapping[int, Any], now: float) -> list[int]:
        silent = []
        for stage_id in running:
            self.last.setdefault(stage_id, self.start)
            if now - self.last[stage_id] >= STALL_AFTER and stage_id not in self.warned:
                self.warned.add(stage_id)
                silent.append(stage_id)
        return silent


def _stall_message(stage: Stage, pid: int, seconds: float) -> str:
    try:
        state = psutil.Process(pid).status()
    except psutil.Error:
        state = "gone"
    head = f"{stage.where}, pid {pid}, has made no progress for {seconds:.0f}s"
    if state == psutil.STATUS_STOPPED:
        return f"{head}: its process is stopped (SIGSTOP or a debugger); `kill -CONT {pid}` resumes it"
    return f"{head}: its process is {state}, busy in one call or blocked by the next component"


def _install_termination_handlers(processes: dict[int, Any], received: list[int]) -> dict[int, Any]:
    if threading.current_thread() is not threading.main_thread():
        return {}

    def handler(signum: int, frame: Any) -> None:
        received.append(signum)
        if len(received) > 1:  # asked twice: do not wait for any cleanup
            for proc in processes.values():
                with contextlib.suppress(Exception):
                    if proc.pid is not None:
                        os.kill(proc.pid, signal.SIGKILL)
            os._exit(128 + signum)
        raise Terminated(signum)

    previous = {}
    for sig in (signal.SIGTERM, signal.SIGINT):
        previous[sig] = signal.signal(sig, handler)
    return previous


def _restore_handlers(previous: dict[int, Any]) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)


def _terminate(processes: Any) -> None:
    alive = [p for p in processes if p._popen is not None and p.is_alive()]
    for p in alive:
        with contextlib.suppress(ProcessLookupError):
            p.terminate()
    deadline = time.monotonic() + TERMINATE_GRACE
    for p in alive:
        p.join(max(0.0, deadline - time.monotonic()))
    for p in alive:
        if p.is_alive():
            with contextlib.suppress(ProcessLookupError):
                p.kill()
            p.join(1.0)


def _not_a_daemon() -> None:
    """A task process forked from a Celery prefork worker inherits the pool process's daemon flag (billiard makes
    its daemonic pool process multiprocessing's current one, and Airflow's supervisor forks the task from it);
    multiprocessing would then refuse to start the components ("daemonic processes are not allowed to have
    children"). This process is no daemon: its parent waits for it, and its children die with it (PDEATHSIG)."""
    current = mp.current_process()
    if current.daemon:
        current._config["daemon"] = False  # multiprocessing keeps the flag there; there is no public setter


# ---- inside a child -------------------------------------------------------------------------------


def _die_with_parent(name: str) -> None:
    """Linux: have the kernel SIGKILL this process when its parent dies (no orphans, even on SIGKILL), and
    name it `amml:<components>` so that `ps`/`top`/psutil show which components a process runs. The kernel's
    name holds 15 bytes; a longer one (`amml:normalsource+filter`) also goes into the command line, where
    psutil finds it whole."""
    title = f"amml:{name}"
    if len(title) > 15:
        with contextlib.suppress(Exception):
            import setproctitle  # an Airflow dependency: there wherever a task runs

            setproctitle.setproctitle(title)
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig, pr_set_name = 1, 15
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL)
        libc.prctl(pr_set_name, title[:15].encode())


def _child_main(wiring: Wiring) -> None:
    # Forked from a parent that may have its own handlers (Airflow's task runner ignores SIGTERM in its
    # children): SIGTERM must kill us; SIGINT is the parent's to handle.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)  # blocked by the parent while it forked
    _die_with_parent(wiring.title)
    control = wiring.control
    batching = wiring.batching
    run = None
    try:
        reports = _ProgressReports(control)
        run = GroupRun(
            wiring,
            heartbeat=lambda: reports.when_due(run),
            on_done=lambda stage, counters: control.put(_Done(stage.id, counters)),
            batches_of=lambda component: rebatch(component.batches(), batching.rows, batching.delay),
            idle_timeout=min(1.0, PROGRESS_EVERY),  # wake at least this often to report
        )
        run.open()
        run.run()
    except BaseException as exc:
        stage, error = (exc.stage, exc.error) if isinstance(exc, StageFailed) else (wiring.group[0], exc)
        tb = _traceback_for(error, "".join(traceback.format_exception(error)))
        control.put(_Failure(stage.id, _describe(error), tb, getattr(error, "hint", None)))
    finally:
        if run is not None:
            run.close()
        wiring.flush()
        os._exit(0)


class _ProgressReports:
    """The counters of this process's components to the parent every PROGRESS_EVERY seconds, whenever its loop
    gets control: the parent's stall watch takes a long silence for a stuck component."""

    def __init__(self, control: Any) -> None:
        self.control = control
        self.last = time.monotonic()

    def when_due(self, run: GroupRun | None) -> None:
        now = time.monotonic()
        if run is not None and now - self.last > PROGRESS_EVERY:
            self.last = now
            for stage_id, counters in run.reports():
                if stage_id not in run.ended:
                    self.control.put(_Progress(stage_id, counters))
