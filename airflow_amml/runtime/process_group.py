"""The stages one component process runs, and how batches and events move between them and other processes.

::

    process 0: [source ──call──► filter] ──(stage, batch)──► inbox of 1 ──► process 1: [derive ──call──► sink]
                                 events: a call to a listener here, (stage, event) to its process's event box

* Without a cap every process runs one stage; with ``max_processes`` (:mod:`.grouping`) a process runs a chain
  of them. Inside a process a batch goes on by a call, depth first, as in ``mode="single"``: no pickling, no
  queue. To a stage in another process it goes through that process's one inbox as ``(stage id, message)``
  (a :mod:`.transport` message; ``None``: one upstream of that stage has ended).
* The loop: a batch from each source here in turn, then whatever has arrived, then every stage whose upstreams
  (and event emitters) have all ended is ended (``finish()``) — until every stage here has ended. A process only
  waits for input when none of its sources has more to read, so a fused source never starves its inbox.
* Each stage keeps its own driver and counters: progress lines and the end summary stay per component.
"""

from __future__ import annotations

import contextlib
import functools
import queue
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from multiprocessing.connection import wait
from typing import Any

import pandas as pd

from compiler.component_spec import Kind

from . import transport
from .component import ComponentContext, Event
from .plan import Stage, emitters, listeners, load_component_class
from .stage_driver import Counters, SendersDone, StageDriver

EVENTS_END = "__events_end__"
_EXHAUSTED = object()


class StageFailed(Exception):
    """A stage of this process raised: which one, and what (the caller reports it to the parent)."""

    def __init__(self, stage: Stage, error: BaseException) -> None:
        super().__init__(f"{stage.name}: {error}")
        self.stage = stage
        self.error = error


@dataclass(frozen=True)
class Wiring:
    """What one component process is connected to: the single argument of its entry point."""

    group: tuple[Stage, ...]  # the stages it runs, in a topological order
    stages: tuple[Stage, ...]  # the whole plan
    process_of: Mapping[int, int]  # stage id → the number of the process that runs it
    inboxes: tuple  # per process: its inbox, None when nothing comes to it from another process
    event_boxes: tuple  # per process: where events for its listeners arrive, None when it has no listener
    context_args: dict
    batching: Any  # executor.Batching
    channel: transport.Transport
    control: Any  # to the parent: progress now and then, then done (per stage) or a failure

    @property
    def number(self) -> int:
        return self.process_of[self.group[0].id]

    @property
    def title(self) -> str:
        """The components it runs, for the process title: ``source+filter``."""
        return "+".join(stage.name for stage in self.group)

    def flush(self) -> None:
        """Wait until what this process put on a queue is in its pipe: os._exit skips the feeder threads."""
        mine = {self.number}
        for box in [self.control, *_others(self.inboxes, mine), *_others(self.event_boxes, mine)]:
            box.close()
            box.join_thread()


def _others(boxes: tuple, mine: set[int]) -> list:
    return [box for i, box in enumerate(boxes) if box is not None and i not in mine]


class GroupRun:
    """Drive the stages of one process to the end of their streams.

    :param heartbeat: called whenever the loop gets control (the caller reports progress when it is due)
    :param on_done: called with each stage and its counters as the stage ends
    :param batches_of: an ingress's batches (the executor's rebatching)
    :param idle_timeout: the longest wait for input before the heartbeat runs again
    """

    def __init__(
        self,
        wiring: Wiring,
        *,
        heartbeat: Callable[[], None],
        on_done: Callable[[Stage, Counters], None],
        batches_of: Callable[[Any], Iterator[pd.DataFrame]],
        idle_timeout: float,
    ) -> None:
        self.wiring = wiring
        self.heartbeat = heartbeat
        self.on_done = on_done
        self.batches_of = batches_of
        self.idle_timeout = idle_timeout
        self.here = {s.id: s for s in wiring.group}
        self.drivers: dict[int, StageDriver] = {}
        self.upstreams_done = {s.id: SendersDone(len(s.upstream)) for s in wiring.group}
        self.emitters_done = {s.id: SendersDone(len(emitters(s, wiring.stages))) for s in wiring.group}
        self.listeners = {s.id: [ls.id for ls in listeners(s, wiring.stages)] for s in wiring.group}
        self.ended: set[int] = set()
        self.pending_events: list[tuple[int, Event]] = []
        self.inbox = wiring.inboxes[wiring.number]
        self.event_box = wiring.event_boxes[wiring.number]

    def open(self) -> None:
        """Make and open every component, in order (``close()`` closes those that exist, whatever happens)."""
        for stage in self.wiring.group:
            context = ComponentContext(**self.wiring.context_args, emit_event=functools.partial(self._emit, stage))
            cls = load_component_class(stage.spec)
            component = self._guard(stage, cls, stage.spec, stage.callback, context)
            outlet = functools.partial(self._pass_on, stage)
            self.drivers[stage.id] = StageDriver(stage, component, outlet, piece_rows=self.wiring.batching.rows)
            self._guard(stage, component.open)

    def close(self) -> None:
        for driver in self.drivers.values():
            with contextlib.suppress(Exception):  # after the run or a failure: nothing left to report to
                driver.component.close()

    def reports(self) -> list[tuple[int, Counters]]:
        return [(stage_id, driver.report()) for stage_id, driver in self.drivers.items()]

    def run(self) -> None:
        sources = {
            s.id: self.drivers[s.id].ingress_steps(self.batches_of(self.drivers[s.id].component))
            for s in self.wiring.group
            if s.spec.kind is Kind.INGRESS
        }
        self._end_ready()  # (a stage with nothing to wait for)
        while len(self.ended) < len(self.here):
            for stage_id, steps in list(sources.items()):
                if self._guard(self.here[stage_id], next, steps, _EXHAUSTED) is _EXHAUSTED:
                    del sources[stage_id]
                    self._ended(self.here[stage_id])
                self.heartbeat()
            self._receive(wait_for=None if sources else self.idle_timeout)
            self._end_ready()
            self.heartbeat()
            if not sources and self.inbox is None and self.event_box is None and len(self.ended) < len(self.here):
                waiting = [s.name for s in self.wiring.group if s.id not in self.ended]
                raise RuntimeError(f"stages {waiting} wait for input that nothing can send (a broken plan)")

    # ---- what arrives from other processes ----

    def _receive(self, wait_for: float | None) -> None:
        """Take in what has arrived; with ``wait_for``, wait up to that long for something to arrive."""
        boxes = [box for box in (self.inbox, self.event_box) if box is not None]
        if wait_for is not None and boxes:
            wait([box._reader for box in boxes], timeout=wait_for)
        for box, take in ((self.inbox, self._take_batch), (self.event_box, self._take_event)):
            while box is not None:
                try:
                    stage_id, message = box.get_nowait()
                except queue.Empty:
                    break
                take(self.here[stage_id], message)

    def _take_batch(self, stage: Stage, message: Any) -> None:
        batch = transport.unpack(message)
        if batch is None:
            self.upstreams_done[stage.id].one_more()
        else:
            self._feed(stage, batch)

    def _take_event(self, stage: Stage, event: Event) -> None:
        if event.name == EVENTS_END:
            self.emitters_done[stage.id].one_more()
        else:
            self._guard(stage, self.drivers[stage.id].component.on_event, event)

    # ---- what goes on ----

    def _pass_on(self, stage: Stage, piece: pd.DataFrame) -> None:
        """The outlet of ``stage``'s driver: to other processes first (they work meanwhile), then by a call."""
        outside = [d for d in stage.downstream if d not in self.here]
        if outside:
            # one message per receiver: each owns (and unlinks) its own shared-memory segment
            for d, message in zip(outside, self.wiring.channel.pack(piece, len(outside)), strict=True):
                self._inbox_of(d).put((d, message))
        for d in stage.downstream:
            if d in self.here:
                self._feed(self.here[d], piece)

    def _feed(self, stage: Stage, batch: pd.DataFrame) -> None:
        self._deliver_events()
        self._guard(stage, self.drivers[stage.id].feed, batch)
        self._deliver_events()

    def _emit(self, stage: Stage, event: Event) -> None:
        for listener in self.listeners[stage.id]:
            if listener in self.here:
                self.pending_events.append((listener, event))
            else:
                self._event_box_of(listener).put((listener, event))

    def _deliver_events(self) -> None:
        while self.pending_events:
            listener, event = self.pending_events.pop(0)
            self._guard(self.here[listener], self.drivers[listener].component.on_event, event)

    # ---- ends of streams ----

    def _end_ready(self) -> None:
        """End every stage whose upstreams and emitters have all ended (an end may make the next ready)."""
        progressed = True
        while progressed:
            progressed = False
            for stage in self.wiring.group:
                ready = self.upstreams_done[stage.id].all and self.emitters_done[stage.id].all
                if stage.id in self.ended or stage.spec.kind is Kind.INGRESS or not ready:
                    continue
                self._deliver_events()
                self._guard(stage, self.drivers[stage.id].end, self.heartbeat)  # a long finish() reports too
                self._deliver_events()
                self._ended(stage)
                progressed = True

    def _ended(self, stage: Stage) -> None:
        """``stage`` has sent its last batch: tell its receivers, here or elsewhere, and the parent."""
        self.ended.add(stage.id)
        for d in stage.downstream:
            if d in self.here:
                self.upstreams_done[d].one_more()
            else:
                self._inbox_of(d).put((d, None))
        for listener in self.listeners[stage.id]:
            if listener in self.here:
                self.emitters_done[listener].one_more()
            else:
                self._event_box_of(listener).put((listener, Event(EVENTS_END, stage.name)))
        self.on_done(stage, self.drivers[stage.id].report())

    def _inbox_of(self, stage_id: int) -> Any:
        return self.wiring.inboxes[self.wiring.process_of[stage_id]]

    def _event_box_of(self, stage_id: int) -> Any:
        return self.wiring.event_boxes[self.wiring.process_of[stage_id]]

    def _guard(self, stage: Stage, fn: Any, *args: Any) -> Any:
        """``fn(*args)``, an exception in it told as ``stage``'s (unless a stage further down raised it)."""
        try:
            return fn(*args)
        except StageFailed:
            raise
        except BaseException as exc:
            raise StageFailed(stage, exc) from exc
