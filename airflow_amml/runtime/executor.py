"""Run a compiled pipeline: every component in its own process, columnar batches through bounded queues.

::

    parent (run_pipeline)
      │  forks one process per component, then only watches: the control queue + every child's sentinel
      ▼
    [ingress] ──inbox──► [progress] ──inbox──► [egress]        inbox = multiprocessing.Queue(INBOX_BATCHES)
        │                    │                     │
        └────────────── control queue ─────────────┘            Done(counters) | Failure(traceback)
                         event queues ───────────► components that accept events (alert → snapshot)

* What travels is a pandas DataFrame (a micro-batch) or ``None`` (end of stream). A big batch's column data
  goes through shared memory, only its pickled header through the pipe (see :mod:`.transport`). A join is several
  upstreams writing one inbox (the reader counts their ends); a split is one writer to several inboxes.
* Backpressure: inboxes hold at most ``INBOX_BATCHES`` batches, so a slow sink slows its source and memory
  stays flat.
* Lifecycle: when a component raises or dies, the parent terminates every child (SIGTERM, then SIGKILL)
  and raises :class:`PipelineError` naming the component. SIGTERM/SIGINT to the parent does the same.
  Children are forked (``spawn`` re-imports ``__main__``, which hangs inside Airflow's task runner), reset
  the signal handlers they inherit, and ask the kernel to kill them if the parent dies.

``mode="single"`` runs the same plan in this process, depth first, for debugging and small data.
"""

from __future__ import annotations

import contextlib
import ctypes
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

from compiler.bytecode import PipelineCode
from compiler.components import ComponentRegistry, Kind

from . import transport
from .component import AbstractComponent, ComponentContext, Event
from .errors import PipelineError
from .plan import Stage, load_component_class, make_plan

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
EVENTS_END = "__events_end__"
_STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}


@dataclass(frozen=True)
class Batching:
    """How an ingress groups records: ``rows`` per batch at most, and no record held longer than ``delay``
    seconds (a slow stream still delivers promptly). Set per DAG with ``batch_rows``/``flush_delay`` in the
    `dag` block, or in ``settings`` of :func:`run_pipeline`."""

    rows: int = BATCH_ROWS
    delay: float = FLUSH_DELAY

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any] | None) -> Batching:
        settings = settings or {}
        rows, delay = settings.get("batch_rows", BATCH_ROWS), settings.get("flush_delay", FLUSH_DELAY)
        if isinstance(rows, bool) or not isinstance(rows, int) or rows < 1:
            raise PipelineError(f"batch_rows must be a whole number of records ≥ 1, got {rows!r}")
        if isinstance(delay, bool) or not isinstance(delay, int | float) or not delay >= 0:
            raise PipelineError(f"flush_delay must be a number of seconds ≥ 0, got {delay!r}")
        return cls(rows, float(delay))


@dataclass
class Counters:
    records_in: int = 0
    records_out: int = 0
    batches_in: int = 0
    batches_out: int = 0
    busy_seconds: float = 0.0

    def line(self, stage: Stage) -> str:
        return (
            f"{stage.name:<16} in {self.records_in:>10,}  out {self.records_out:>10,}  "
            f"batches {self.batches_in:>6}/{self.batches_out:<6}  busy {self.busy_seconds:7.2f}s"
        )


@dataclass
class RunResult:
    pipeline: str
    counters: dict[int, Counters] = field(default_factory=dict)
    stages: list[Stage] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> str:
        lines = [f"pipeline {self.pipeline}: finished in {self.seconds:.2f}s"]
        lines.extend("  " + self.counters[s.id].line(s) for s in self.stages if s.id in self.counters)
        return "\n".join(lines)


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
    settings: Mapping[str, Any] | None = None,
    mode: str = "multiprocess",
    registry: ComponentRegistry | None = None,
    filename: str = "<pipeline>",
) -> RunResult:
    """Run one compiled pipeline to the end; raise :class:`PipelineError` if any component fails."""
    stages = make_plan(pipeline, registry)
    batching = Batching.from_settings(settings)
    context_args = {"run_params": run_params, "settings": settings}
    if mode == "single":
        return _SingleProcess(pipeline.name, stages, context_args, filename, batching).run()
    if mode == "multiprocess":
        return _MultiProcess(pipeline.name, stages, context_args, filename, batching).run()
    raise ValueError(f"mode must be 'multiprocess' or 'single', got {mode!r}")


def _instantiate(stage: Stage, context: ComponentContext) -> AbstractComponent:
    cls = load_component_class(stage.spec)
    return cls(stage.spec, stage.callback, context)


def _describe(exc: BaseException) -> str:
    """The error as the user should read it: our own errors speak for themselves; others show their type."""
    from compiler.semantics import SemanticError

    if isinstance(exc, PipelineError):
        return exc.message
    if isinstance(exc, SemanticError):
        return str(exc)
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
    def __init__(self, name: str, stages: list[Stage], context_args: dict, filename: str, batching: Batching) -> None:
        self.name = name
        self.batching = batching
        self.stages = {s.id: s for s in stages}
        self.filename = filename
        self.counters = {s.id: Counters() for s in stages}
        self.ends: dict[int, int] = {s.id: 0 for s in stages}
        self.pending_events: list[Event] = []
        self.context = ComponentContext(**context_args, emit_event=self.pending_events.append)
        self.components: dict[int, AbstractComponent] = {}

    def run(self) -> RunResult:
        start = time.monotonic()
        try:
            for stage in self.stages.values():
                self.components[stage.id] = self._guard(stage, _instantiate, stage, self.context)
                self._guard(stage, self.components[stage.id].open)
            for stage in self.stages.values():
                if stage.spec.kind is Kind.INGRESS:
                    # one batch at a time: a source that never ends (count=0) or paces itself (rate=...)
                    # must deliver as it goes, and memory must stay flat
                    batches = rebatch(self.components[stage.id].batches(), self.batching.rows, self.batching.delay)
                    while (batch := self._guard(stage, next, batches, None)) is not None:
                        self._emit(stage, batch)
                    self._end(stage)
        finally:
            for component in self.components.values():
                with contextlib.suppress(Exception):
                    component.close()
        return RunResult(self.name, self.counters, list(self.stages.values()), time.monotonic() - start)

    def _guard(self, stage: Stage, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except PipelineError as exc:
            if exc.component:  # already names its component (raised further down the chain)
                raise
            raise _failure(stage, exc, traceback.format_exc(), self.filename) from exc
        except Exception as exc:
            raise _failure(stage, exc, traceback.format_exc(), self.filename) from exc

    def _emit(self, stage: Stage, batch: pd.DataFrame) -> None:
        counters = self.counters[stage.id]
        counters.records_out += len(batch)
        counters.batches_out += 1
        for d in stage.downstream:
            self._receive(self.stages[d], batch)

    def _receive(self, stage: Stage, batch: pd.DataFrame) -> None:
        self._deliver_events()
        counters = self.counters[stage.id]
        counters.records_in += len(batch)
        counters.batches_in += 1
        component = self.components[stage.id]
        t = time.monotonic()
        if stage.spec.kind is Kind.EGRESS:
            self._guard(stage, component.write, batch)
            counters.busy_seconds += time.monotonic() - t
        else:
            out = self._guard(stage, component.process, batch)
            counters.busy_seconds += time.monotonic() - t
            if out is not None and len(out):
                self._emit(stage, out)
        self._deliver_events()

    def _deliver_events(self) -> None:
        while self.pending_events:
            event = self.pending_events.pop(0)
            for stage in self.stages.values():
                if event.name in _accepted_events(stage):
                    self._guard(stage, self.components[stage.id].on_event, event)

    def _end(self, stage: Stage) -> None:
        for d in stage.downstream:
            down = self.stages[d]
            self.ends[d] += 1
            if self.ends[d] == len(down.upstream):
                component = self.components[d]
                out = self._guard(down, component.finish)
                self._deliver_events()
                if down.spec.kind is not Kind.EGRESS:
                    for frame in self._guard(down, lambda o=out: list(_frames(o))):
                        self._emit(down, frame)
                self._end(down)


def _frames(out: Any) -> Iterator[pd.DataFrame]:
    """What `finish()` returned: nothing, one frame, or an iterator of frames."""
    if out is None:
        return
    if isinstance(out, pd.DataFrame):
        if len(out):
            yield out
        return
    for frame in out:
        if frame is not None and len(frame):
            yield frame


def _accepted_events(stage: Stage) -> set[str]:
    names = set(stage.spec.accepts_events)
    on = (stage.callback.static_values.get("on") if stage.callback else None) or None
    if on:
        names = {on}
    return names


def _emitted_event(stage: Stage) -> set[str]:
    if not stage.spec.emits_events:
        return set()
    name = stage.callback.static_values.get("event") if stage.callback else None
    return {name} if name else set(stage.spec.emits_events)


# ---- one process per component --------------------------------------------------------------------


class _MultiProcess:
    def __init__(self, name: str, stages: list[Stage], context_args: dict, filename: str, batching: Batching) -> None:
        self.name = name
        self.batching = batching
        self.stages = stages
        self.by_id = {s.id: s for s in stages}
        self.context_args = context_args
        self.filename = filename
        self.ctx = mp.get_context("fork")

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
        inboxes = {s.id: self.ctx.Queue(INBOX_BATCHES) for s in self.stages if s.upstream}
        events = {s.id: self.ctx.Queue() for s in self.stages if _accepted_events(s)}
        control = self.ctx.Queue()
        transport.sweep_stale()
        channel = transport.Transport()  # one segment-name prefix per run: what `finally` sweeps
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
            blocked = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
            try:
                for stage in self.stages:
                    # daemon: an interpreter that exits never waits for a component (multiprocessing joins
                    # non-daemon children at exit, which hangs if one is still streaming)
                    proc = self.ctx.Process(
                        target=_child_main,
                        args=(stage, inboxes, events, control, self.context_args, self.by_id, channel, self.batching),
                        name=f"amml:{self.name}:{stage.name}",
                        daemon=True,
                    )
                    processes[stage.id] = proc  # known before it exists: a signal during start() still stops it
                    proc.start()
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
                gc.unfreeze()
            self._watch(processes, control, counters, received)
        finally:
            _terminate(processes.values())
            _restore_handlers(previous)
            for q in [*inboxes.values(), *events.values(), control]:
                q.cancel_join_thread()
                q.close()
            # segments still queued (a failure) or half written/read by a killed child: no child is left
            transport.cleanup(channel.prefix)
        result = RunResult(self.name, counters, self.stages, time.monotonic() - start)
        log.info("%s", result.summary())
        return result

    def _watch(
        self, processes: dict[int, Any], control: Any, counters: dict[int, Counters], received: list[int]
    ) -> None:
        running = dict(processes)
        done: set[int] = set()
        last_progress = time.monotonic()
        stalls = _StallWatch(time.monotonic())

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
            for stage_id, proc in list(running.items()):
                if proc.sentinel in ready or not proc.is_alive():
                    proc.join(0.5)
                    if proc.exitcode is None:
                        continue
                    # A component flushes its Done (or Failure) to the pipe before it exits, but other
                    # components' messages may be ahead of it: read until it shows up.
                    deadline = time.monotonic() + 2.0
                    while stage_id not in done and time.monotonic() < deadline:
                        try:
                            handle(control.get(timeout=max(0.01, deadline - time.monotonic())))
                        except queue.Empty:
                            break
                    if stage_id not in done or proc.exitcode != 0:
                        what = f"died unexpectedly (exit code {proc.exitcode})"
                        raise _stage_error(self.by_id[stage_id], what, self.filename)
                    del running[stage_id]
            if time.monotonic() - last_progress > PROGRESS_EVERY:
                last_progress = time.monotonic()
                for stage in self.stages:
                    if stage.id in counters:
                        log.info("progress  %s", counters[stage.id].line(stage))
                for stage_id in stalls.stalled(running, last_progress):
                    log.warning("progress  %s", _stall_message(self.by_id[stage_id], running[stage_id].pid,
                                                               last_progress - stalls.last[stage_id]))


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


class Terminated(BaseException):
    """Raised in the parent by SIGTERM/SIGINT so that `finally` blocks stop every child; ``signum`` says which
    (a command line exits with 128 + signum)."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"received signal {signal.Signals(signum).name}")
        self.signum = signum


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


# ---- inside a child -------------------------------------------------------------------------------


def _die_with_parent(name: str) -> None:
    """Linux: have the kernel SIGKILL this process when its parent dies (no orphans, even on SIGKILL), and
    name it `amml:<component>` so that `ps`/`top` show which component a process runs."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig, pr_set_name = 1, 15
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL)
        libc.prctl(pr_set_name, f"amml:{name}"[:15].encode())


def _child_main(
    stage: Stage,
    inboxes: dict,
    events: dict,
    control: Any,
    context_args: dict,
    stages: dict[int, Stage],
    channel: transport.Transport,
    batching: Batching,
) -> None:
    # Forked from a parent that may have its own handlers (Airflow's task runner ignores SIGTERM in its
    # children): SIGTERM must kill us; SIGINT is the parent's to handle.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)  # blocked by the parent while it forked
    _die_with_parent(stage.name)
    counters = Counters()
    emitted = _emitted_event(stage)
    subscribers = [events[s.id] for s in stages.values() if s.id in events and _accepted_events(s) & emitted]

    def emit_event(event: Event) -> None:
        for q in subscribers:
            q.put(event)

    component = None
    try:
        component = _instantiate(stage, ComponentContext(**context_args, emit_event=emit_event))
        component.open()
        outboxes = [inboxes[d] for d in stage.downstream]
        if stage.spec.kind is Kind.INGRESS:
            _run_ingress(stage, component, outboxes, counters, control, channel, batching)
        else:
            emitters = sum(1 for s in stages.values() if _emitted_event(s) & _accepted_events(stage))
            _run_consumer(
                stage,
                component,
                inboxes[stage.id],
                events.get(stage.id),
                emitters,
                outboxes,
                counters,
                control,
                channel,
                batching.rows,
            )
        for box in outboxes:
            box.put(None)
        for q in subscribers:  # tell listeners that no more events will come from this component
            q.put(Event(EVENTS_END, stage.name))
        control.put(_Done(stage.id, counters))
    except BaseException as exc:
        tb = _traceback_for(exc, traceback.format_exc())
        control.put(_Failure(stage.id, _describe(exc), tb, getattr(exc, "hint", None)))
    finally:
        if component is not None:
            with contextlib.suppress(Exception):
                component.close()
        control.close()
        control.join_thread()
        # flush what this process put on any queue before leaving: os._exit skips the feeder threads
        for box in [*inboxes.values(), *events.values()]:
            box.close()
            box.join_thread()
        os._exit(0)


def _send(
    outboxes: list, batch: pd.DataFrame, counters: Counters, channel: transport.Transport, batch_rows: int
) -> None:
    # A component may return far more than a batch (a whole-stream scaler releases everything at the end):
    # one huge pickle blocks the next stage until it is all through the pipe and doubles the memory.
    for start in range(0, len(batch), batch_rows):
        piece = batch.iloc[start : start + batch_rows] if len(batch) > batch_rows else batch
        counters.records_out += len(piece)
        counters.batches_out += 1
        # one message per receiver: each owns (and unlinks) its own shared-memory segment
        for box, message in zip(outboxes, channel.pack(piece, len(outboxes)), strict=True):
            box.put(message)


def _run_ingress(
    stage: Stage,
    component: AbstractComponent,
    outboxes: list,
    counters: Counters,
    control: Any,
    channel: transport.Transport,
    batching: Batching,
) -> None:
    t = last_progress = time.monotonic()
    for batch in rebatch(component.batches(), batching.rows, batching.delay):
        counters.busy_seconds += time.monotonic() - t
        _send(outboxes, batch, counters, channel, batching.rows)
        t = time.monotonic()
        if t - last_progress > PROGRESS_EVERY:
            last_progress = t
            control.put(_Progress(stage.id, counters))


def _run_consumer(
    stage: Stage,
    component: AbstractComponent,
    inbox: Any,
    event_box: Any,
    emitters: int,
    outboxes: list,
    counters: Counters,
    control: Any,
    channel: transport.Transport,
    batch_rows: int,
) -> None:
    ends = 0
    events_ended = [0]
    last_progress = time.monotonic()
    while ends < len(stage.upstream):
        _drain_events(component, event_box, events_ended)
        if time.monotonic() - last_progress > PROGRESS_EVERY:  # also while idle: the parent sees we are alive
            last_progress = time.monotonic()
            control.put(_Progress(stage.id, counters))
        try:
            batch = transport.unpack(inbox.get(timeout=0.1 if event_box is not None else min(1.0, PROGRESS_EVERY)))
        except queue.Empty:
            continue
        if batch is None:
            ends += 1
            continue
        counters.records_in += len(batch)
        counters.batches_in += 1
        t = time.monotonic()
        if stage.spec.kind is Kind.EGRESS:
            component.write(batch)
            counters.busy_seconds += time.monotonic() - t
        else:
            out = component.process(batch)
            counters.busy_seconds += time.monotonic() - t
            if out is not None and len(out):
                _send(outboxes, out, counters, channel, batch_rows)
    # Events may still be on their way from components running in parallel: wait until every emitter
    # has said it is done (if one dies instead, the parent stops the whole pipeline).
    while event_box is not None and events_ended[0] < emitters:
        _drain_events(component, event_box, events_ended, block=True)
    _drain_events(component, event_box, events_ended)
    t = time.monotonic()
    out = component.finish()
    counters.busy_seconds += time.monotonic() - t
    if stage.spec.kind is not Kind.EGRESS:
        for frame in _frames(out):  # e.g. train_lstm yields one record per epoch as training goes
            _send(outboxes, frame, counters, channel, batch_rows)


def _drain_events(component: AbstractComponent, event_box: Any, ended: list[int], block: bool = False) -> None:
    if event_box is None:
        return
    while True:
        try:
            event = event_box.get(timeout=0.5) if block else event_box.get_nowait()
        except queue.Empty:
            return
        if event.name == EVENTS_END:
            ended[0] += 1
            if block:
                return
        else:
            component.on_event(event)
