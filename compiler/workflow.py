"""Workflow bytecode → component graph, and the graph as text, Mermaid or Graphviz DOT.

The runtime builds its processes from the same :func:`build_graph`, so what `amml compile --emit graph`
shows is what runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import bytecode as bc


@dataclass
class Node:
    id: int
    component: str  # component name, or "join" / "split"
    callback: bc.Code | None = None
    line: int = 0
    column: int = 0
    position: int = 0  # 1-based position in its pipe (for error messages)
    inputs: list[int] = field(default_factory=list)
    outputs: list[int] = field(default_factory=list)

    @property
    def label(self) -> str:
        if self.callback is None or not self.callback.assigned:
            return self.component
        parts = []
        for name in self.callback.assigned:
            value = self.callback.static_values.get(name, "…")
            parts.append(f"{name}={value!r}" if name in self.callback.static_values else f"{name}=<expr>")
        return f"{self.component} " + ", ".join(parts)


@dataclass
class Graph:
    pipeline: str
    nodes: list[Node]

    def edges(self) -> list[tuple[int, int]]:
        return [(n.id, o) for n in self.nodes for o in n.outputs]

    def sources(self) -> list[Node]:
        return [n for n in self.nodes if not n.inputs]


def build_graph(pipeline: bc.PipelineCode) -> Graph:
    """Interpret the workflow bytecode of one pipeline."""
    nodes: list[Node] = []
    flows: dict[str, int] = {}
    tail: int | None = None
    making: Node | None = None
    callback: bc.Code | None = None
    position = 0

    def connect(src: int, dst: Node) -> None:
        nodes[src].outputs.append(dst.id)
        dst.inputs.append(src)

    for ins in pipeline.code:
        op: str = ins.op
        arg: Any = ins.arg
        if op == "WF_NEW_FLOW":
            tail, position = None, 0
        elif op == "WF_MAKE_COMPONENT":
            position += 1
            making = Node(len(nodes), arg, line=ins.line, column=ins.column, position=position)
        elif op == "WF_DEF_CALLBACK":
            callback = pipeline.callbacks[arg]
        elif op == "WF_ADD_CALLBACK":
            assert making is not None
            making.callback, callback = callback, None
        elif op == "WF_ADD_COMPONENT":
            assert making is not None
            nodes.append(making)
            if tail is not None:
                connect(tail, making)
            tail, making = making.id, None
        elif op == "WF_LOAD_FLOW":
            tail = flows[arg]
            position = 1
        elif op == "WF_JOIN":
            join = Node(len(nodes), "join", line=ins.line, column=ins.column, position=1)
            nodes.append(join)
            for name in arg.split(","):
                connect(flows[name], join)
            tail, position = join.id, 1
        elif op == "WF_SPLIT":
            assert tail is not None
            position += 1
            split = Node(len(nodes), "split", line=ins.line, column=ins.column, position=position)
            nodes.append(split)
            connect(tail, split)
            for name in arg.split(","):
                flows[name] = split.id
            tail = None
        elif op == "WF_ASSIGN":
            assert tail is not None
            flows[arg] = tail
        elif op == "WF_END":
            break
        else:  # pragma: no cover
            raise AssertionError(f"unknown workflow opcode {op}")
    return Graph(pipeline.name, nodes)


def render_text(graph: Graph) -> str:
    lines = [f"pipeline {graph.pipeline}"]
    for n in graph.nodes:
        src = f" <- {', '.join(f'[{i}]' for i in n.inputs)}" if n.inputs else ""
        lines.append(f"  [{n.id}] {n.label}{src}   (line {n.line})")
    return "\n".join(lines)


def _escape(text: str) -> str:
    return text.replace('"', "'")


def render_mermaid(graph: Graph) -> str:
    lines = ["flowchart LR", f"  %% pipeline {graph.pipeline}"]
    for n in graph.nodes:
        shape = ('(["', '"])') if n.component in ("join", "split") else ('["', '"]')
        lines.append(f"  n{n.id}{shape[0]}{_escape(n.label)}{shape[1]}")
    lines.extend(f"  n{a} --> n{b}" for a, b in graph.edges())
    return "\n".join(lines)


def render_dot(graph: Graph) -> str:
    lines = [f'digraph "{graph.pipeline}" {{', "  rankdir=LR;", "  node [shape=box];"]
    for n in graph.nodes:
        shape = ", shape=ellipse" if n.component in ("join", "split") else ""
        lines.append(f'  n{n.id} [label="{_escape(n.label)}"{shape}];')
    lines.extend(f"  n{a} -> n{b};" for a, b in graph.edges())
    lines.append("}")
    return "\n".join(lines)


RENDERERS = {"text": render_text, "mermaid": render_mermaid, "dot": render_dot}
