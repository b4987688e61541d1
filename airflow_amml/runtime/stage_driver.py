"""One component at work, in either executor mode: batches in, its results out, and the counters of both.

The single-process mode calls the next stage's driver as a driver's outlet; a child process puts the
output on queues to the next processes. What happens to a batch inside a stage is written once, here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import pandas as pd

from compiler.component_spec import Kind

from .component import AbstractComponent
from .plan import Stage


@dataclass
class Counters:
    """What went through one component; ``busy_seconds`` is the time spent inside its own calls (also in
    ``finish()``, e.g. a training); ``note`` is what the component says about where it is (``epoch 3/20``)."""

    records_in: int = 0
    records_out: int = 0
    batches_in: int = 0
    batches_out: int = 0
    busy_seconds: float = 0.0
    note: str | None = None

    def rate(self, kind: Kind) -> str:
        """Records handled per busy second (an ingress: records out), or '-' without any."""
        records = self.records_out if kind is Kind.INGRESS else self.records_in
        if not records or self.busy_seconds <= 0:
            return "-"
        return f"{records / self.busy_seconds:,.0f}/s"

    def progress_line(self, stage: Stage) -> str:
        """One component's progress, for the run's periodic progress lines."""
        line = f"{stage.name}: in {self.records_in:,}, out {self.records_out:,}, busy {self.busy_seconds:.1f}s"
        return f"{line}, {self.note}" if self.note else line


class SendersDone:
    """Of the ``expected`` senders into one box, how many have said they will send no more: the upstreams
    writing an inbox (a join has several), or the components emitting the events one listens to."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.seen = 0

    def one_more(self) -> None:
        self.seen += 1

    @property
    def all(self) -> bool:
        return self.seen >= self.expected


def _nothing() -> None:
    return None


class StageDriver:
    """Feed one component batches, end its stream, count what goes in and out and the time spent in its own
    calls, and hand what it returns to ``outlet``. ``piece_rows`` cuts what goes out into pieces of at most
    that many records (None: whole)."""

    def __init__(
        self,
        stage: Stage,
        component: AbstractComponent,
        outlet: Callable[[pd.DataFrame], None],
        piece_rows: int | None = None,
    ) -> None:
        self.stage = stage
        self.component = component
        self.outlet = outlet
        self.piece_rows = piece_rows
        self.counters = Counters()
        self._writes = stage.spec.kind is Kind.EGRESS

    def run_ingress(self, batches: Iterable[pd.DataFrame], between_batches: Callable[[], None] = _nothing) -> None:
        """Send an ingress's batches on as they come, to the end of its stream (a source that never ends or
        paces itself must deliver as it goes, and memory must stay flat). Waiting for a batch counts as busy."""
        for _ in self.ingress_steps(batches):
            between_batches()

    def ingress_steps(self, batches: Iterable[pd.DataFrame]) -> Iterator[None]:
        """:meth:`run_ingress` one batch at a time: each step reads and sends one batch, so that a process
        running more than this stage can do other work between two batches."""
        t = time.monotonic()
        for batch in batches:
            self.counters.busy_seconds += time.monotonic() - t
            self.send(batch)
            yield
            t = time.monotonic()

    def feed(self, batch: pd.DataFrame) -> None:
        """One batch in: an egress writes it; a progress component's result goes on."""
        counters = self.counters
        counters.records_in += len(batch)
        counters.batches_in += 1
        t = time.monotonic()
        if self._writes:
            self.component.write(batch)
            counters.busy_seconds += time.monotonic() - t
        else:
            out = self.component.process(batch)
            counters.busy_seconds += time.monotonic() - t
            if out is not None and len(out):
                self.send(out)

    def end(self, between_frames: Callable[[], None] = _nothing) -> None:
        """The input stream has ended: finish, and send on what finishing returns. The time inside
        ``finish()`` counts as busy — also while a generator computes its next frame (train_lstm trains
        there); ``between_frames`` runs after each frame it yields (``None`` too: a heartbeat that lets the
        child report its progress while the training goes on)."""
        t = time.monotonic()
        for frame in finished_frames(self.component.finish()):
            self.counters.busy_seconds += time.monotonic() - t
            if frame is not None and not self._writes:
                self.send(frame)
            between_frames()
            t = time.monotonic()
        self.counters.busy_seconds += time.monotonic() - t

    def report(self) -> Counters:
        """The counters, with the component's latest progress note."""
        self.counters.note = self.component.progress_note()
        return self.counters

    def send(self, frame: pd.DataFrame) -> None:
        # A component may return far more than a batch (a whole-stream scaler releases everything at the end):
        # between processes, one huge pickle blocks the next stage until it is all through the pipe and
        # doubles the memory.
        rows = self.piece_rows or max(1, len(frame))
        for start in range(0, len(frame), rows):
            piece = frame.iloc[start : start + rows] if len(frame) > rows else frame
            self.counters.records_out += len(piece)
            self.counters.batches_out += 1
            self.outlet(piece)


def finished_frames(out: Any) -> Iterator[pd.DataFrame | None]:
    """What `finish()` returned: nothing, one frame, or an iterator of frames (``None`` for "nothing yet");
    empty frames come out as ``None``."""
    if out is None:
        return
    if isinstance(out, pd.DataFrame):
        if len(out):
            yield out
        return
    for frame in out:
        yield frame if frame is not None and len(frame) else None
