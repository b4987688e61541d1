"""The component class hierarchy of the paper (Fig. 6), working on columnar batches.

    AbstractComponent
    ├── AbstractIngress   produces batches: ``batches()`` is iterated until it ends
    ├── AbstractProgress  transforms: ``process(batch)`` per batch, then ``finish()`` at end of stream
    └── AbstractEgress    consumes: ``write(batch)`` per batch, then ``finish()``

Order of calls on every component: ``open()`` → (batches | process… | write…) → ``finish()`` → ``close()``.
``close()`` runs even after a failure. ``on_event(event)`` may be called between batches when another
component emits an event this one accepts (the paper's alert → snapshot, Fig. 7).

A batch is a pandas DataFrame: one row per record, one column per field. Per-record parameters
(``cond=OT > 10``) are evaluated vectorised over the batch: :meth:`condition` gives a condition as a
keep-mask, :meth:`column` an expression as a Series, :meth:`evaluate` all of them at once.

Component authors import these classes from :mod:`airflow_amml.sdk`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from airflow_amml.run_config import RunConfig
from compiler import vm
from compiler.bytecode import Code
from compiler.components import ComponentSpec, Kind

from . import batch_vm
from .columns import as_series


@dataclass(frozen=True)
class Event:
    name: str
    source: str  # component that emitted it
    payload: dict[str, Any] = field(default_factory=dict)


class ComponentContext:
    """What the executor gives a component: run parameters, an event emitter, and the run's configuration
    (:class:`~airflow_amml.run_config.RunConfig`: where to read and write, which databases; without one, the
    environment's)."""

    def __init__(
        self,
        *,
        run_params: Mapping[str, Any] | None = None,
        config: RunConfig | None = None,
        emit_event: Any = None,
    ) -> None:
        self.run_params = dict(run_params or {})
        self.config = config if config is not None else RunConfig.from_environment()
        self._emit_event = emit_event

    def emit_event(self, event: Event) -> None:
        if self._emit_event is not None:
            self._emit_event(event)


class AbstractComponent:
    kind: ClassVar[Kind]

    def __init__(self, spec: ComponentSpec, callback: Code | None, context: ComponentContext) -> None:
        self.spec = spec
        self.callback = callback
        self.context = context
        self.params = self._static_params()

    @property
    def name(self) -> str:
        return self.spec.name

    def _static_params(self) -> dict[str, Any]:
        params = {p.name: p.default for p in self.spec.params if not p.required}
        if self.callback is not None:
            params.update(vm.eval_static(self.callback, self.context.run_params))
        return params

    def evaluate(self, batch: pd.DataFrame) -> dict[str, Any]:
        """Per-record parameters over a batch: name → a :class:`~airflow_amml.runtime.columns.Col`, or a
        scalar when the value is the same for every record (``as_series``/``as_mask`` convert either)."""
        if self.callback is None:
            return {}
        static = {k: self.params[k] for k in self.callback.assigned if k in self.params}
        try:
            return batch_vm.eval_batch(self.callback, batch, len(batch), self.context.run_params, static=static)
        except batch_vm.RecordError as exc:
            raise exc.at(batch.index) from None  # the batch's index is each record's position in the stream

    def condition(self, batch: pd.DataFrame, name: str = "cond") -> np.ndarray:
        """A per-record condition as a keep-mask (true only where it is true); a value that is no
        condition (a string) fails naming its record."""
        try:
            return batch_vm.as_mask(self._per_record(batch, name), len(batch))
        except batch_vm.RecordError as exc:
            raise exc.at(batch.index) from None

    def column(self, batch: pd.DataFrame, name: str) -> pd.Series:
        """A per-record expression's values, one per record of ``batch`` (a constant is repeated)."""
        return as_series(self._per_record(batch, name), batch.index)

    def _per_record(self, batch: pd.DataFrame, name: str) -> Any:
        values = self.evaluate(batch)
        return values[name] if name in values else self.params[name]  # not given: its default

    def open(self) -> None:
        """Acquire resources (files, connections, models)."""

    def close(self) -> None:
        """Release resources; called even when the pipeline failed."""

    def on_event(self, event: Event) -> None:
        """React to an event from another component."""

    def progress_note(self) -> str | None:
        """A few words on where the component is (``"epoch 3/20"``), shown in the run's progress lines and
        its summary beside the counters; None: nothing to add. Called between batches, in the component's
        own process."""
        return None


class AbstractIngress(AbstractComponent):
    kind = Kind.INGRESS

    def batches(self) -> Iterator[pd.DataFrame]:
        raise NotImplementedError


class AbstractProgress(AbstractComponent):
    kind = Kind.PROGRESS

    def process(self, batch: pd.DataFrame) -> pd.DataFrame | None:
        raise NotImplementedError

    def finish(self) -> pd.DataFrame | None:
        """End of stream: return what is still held back (e.g. a fitted scaler's buffer), or None."""
        return None


class AbstractEgress(AbstractComponent):
    kind = Kind.EGRESS

    def write(self, batch: pd.DataFrame) -> None:
        raise NotImplementedError

    def finish(self) -> None:
        """End of stream: flush what is buffered."""
