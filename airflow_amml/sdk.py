"""The API for writing AMML components: everything a component author imports, from one place.

A component is a class with a ``spec`` (what the compiler checks: name, kind, typed parameters, docs) and the
methods of its kind; a distribution makes it known under the entry point group ``amml.components``::

    from airflow_amml.sdk import AbstractProgress, ComponentSpec, Kind, PipelineError, param

    class Clip(AbstractProgress):
        # `clip col=..., high=..., cond=...`: cap `col` at `high` on the records where `cond` holds
        spec = ComponentSpec(
            "clip", Kind.PROGRESS, "Cap a column at a value where a condition holds.",
            (
                param("col", "str", "column to cap"),
                param("high", "expr", "the cap, per record"),
                param("cond", "cond", "records to cap (null counts as false)", True),
            ),
        )

        def process(self, batch):
            col = self.params["col"]
            if col not in batch.columns:
                raise PipelineError(f"`clip`: no column `{col}`; the records have {list(batch.columns)}",
                                    hint="name one of the columns")
            out = batch.copy()
            capped = out[col].clip(upper=self.column(batch, "high"))
            out[col] = capped.where(self.condition(batch), out[col])
            return out

    # pyproject.toml:  [project.entry-points."amml.components"]
    #                  clip = "my_package:Clip"

(``tests/test_sdk.py`` runs this very component.)

The base classes (see :mod:`airflow_amml.runtime.component` for the order of calls):

* :class:`AbstractIngress` produces batches from ``batches()``;
* :class:`AbstractProgress` transforms them in ``process(batch)``, then may return held-back records from
  ``finish()``;
* :class:`AbstractEgress` consumes them in ``write(batch)``, then flushes in ``finish()``.

Each has ``self.params`` (parameters that are the same for every record, defaults filled in),
``self.context`` (``run_params``, ``config`` — the run's :class:`RunConfig`: folders, databases — and
``emit_event``), ``open()``/``close()``, ``on_event(event)``, ``progress_note()`` (a few words the run's
progress lines and summary show, e.g. ``epoch 3/20``; a long ``finish()`` may yield ``None`` to report it),
and reads per-record parameters (``expr`` and
``cond``) from a batch with ``self.condition(batch, name)`` (a boolean keep-mask) and
``self.column(batch, name)`` (a Series). A component that evaluates several at once calls
``self.evaluate(batch)`` and converts each value with :func:`as_series` or :func:`as_mask`.

A failure the user can fix is a :class:`PipelineError` (say what is wrong, then ``hint=`` how to fix it);
the executor adds the component's name and line. Anything else is reported as a bug, with its traceback.
"""

from __future__ import annotations

from compiler import ComponentSpec, Kind, ParamType, param
from compiler.vm import normalize_value

from .run_config import RunConfig
from .runtime.batch_vm import as_mask
from .runtime.columns import Col, as_series
from .runtime.component import (
    AbstractComponent,
    AbstractEgress,
    AbstractIngress,
    AbstractProgress,
    ComponentContext,
    Event,
)
from .runtime.errors import PipelineError

__all__ = [
    "AbstractComponent",
    "AbstractEgress",
    "AbstractIngress",
    "AbstractProgress",
    "Col",
    "ComponentContext",
    "ComponentSpec",
    "Event",
    "Kind",
    "ParamType",
    "PipelineError",
    "RunConfig",
    "as_mask",
    "as_series",
    "normalize_value",
    "param",
]
