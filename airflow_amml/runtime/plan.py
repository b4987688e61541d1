"""Compiled pipeline → execution plan: the component graph with `join`/`split` folded into edges.

A join is just several upstreams writing into one inbox; a split is one component writing into several.
Neither needs a process of its own.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Iterable
from dataclasses import dataclass, field

from compiler import build_graph, default_registry
from compiler.bytecode import Code, PipelineCode
from compiler.component_spec import ComponentSpec
from compiler.components import ComponentRegistry

from .errors import PipelineError


@dataclass
class Stage:
    id: int
    spec: ComponentSpec
    callback: Code | None
    position: int
    line: int
    column: int
    upstream: list[int] = field(default_factory=list)
    downstream: list[int] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def where(self) -> str:
        return f"`{self.name}` (position {self.position} in its pipe, line {self.line})"

    @functools.cached_property  # read for every event a single-process run delivers
    def emits(self) -> str | None:
        """The event this component sends, if its spec declares one: the value of the parameter that names it
        (alert's `event`)."""
        return self._event_named_by(self.spec.emits)

    @functools.cached_property
    def listens_to(self) -> str | None:
        """The event this component waits for, if its spec declares one (snapshot's `on`)."""
        return self._event_named_by(self.spec.listens)

    def _event_named_by(self, param_name: str | None) -> str | None:
        if param_name is None:
            return None
        # a name known only at run time (`on=params.event`) is not folded: the declared default stands in
        named = self.callback.static_values.get(param_name) if self.callback else None
        default = self.spec.param(param_name).default
        return named or (default if isinstance(default, str) else None)


def make_plan(pipeline: PipelineCode, registry: ComponentRegistry | None = None) -> list[Stage]:
    registry = registry or default_registry()
    graph = build_graph(pipeline)
    nodes = graph.nodes
    real = {n.id for n in nodes if n.component not in ("join", "split")}

    def targets(node_id: int) -> list[int]:
        found: list[int] = []
        for out in nodes[node_id].outputs:
            found.extend([out] if out in real else targets(out))
        return found

    stages = {
        n.id: Stage(n.id, registry[n.component], n.callback, n.position, n.line, n.column)
        for n in nodes
        if n.id in real
    }
    for stage in stages.values():
        stage.downstream = targets(stage.id)
        for d in stage.downstream:
            stages[d].upstream.append(stage.id)
    return list(stages.values())


def listeners(stage: Stage, stages: Iterable[Stage]) -> list[Stage]:
    """The components waiting for the event ``stage`` sends."""
    return [s for s in stages if stage.emits is not None and s.listens_to == stage.emits]


def emitters(stage: Stage, stages: Iterable[Stage]) -> list[Stage]:
    """The components sending the event ``stage`` waits for."""
    return [s for s in stages if stage.listens_to is not None and s.emits == stage.listens_to]


def load_component_class(spec: ComponentSpec) -> type:
    module_name, _, class_name = spec.impl.partition(":")
    try:
        return getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise PipelineError(
            f"component `{spec.name}` has no runtime implementation ({spec.impl or 'none declared'}): {exc}"
        ) from exc
