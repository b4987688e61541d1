"""Compiled pipeline → execution plan: the component graph with `join`/`split` folded into edges.

A join is just several upstreams writing into one inbox; a split is one component writing into several.
Neither needs a process of its own.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field

from compiler import build_graph, default_registry
from compiler.bytecode import Code, PipelineCode
from compiler.components import ComponentRegistry, ComponentSpec

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


def load_component_class(spec: ComponentSpec) -> type:
    module_name, _, class_name = spec.impl.partition(":")
    try:
        return getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise PipelineError(
            f"component `{spec.name}` has no runtime implementation ({spec.impl or 'none declared'}): {exc}"
        ) from exc
