"""Workflow bytecode → component graph, and the graph as text, Mermaid or Graphviz DOT.

The runtime builds its processes from the same :func:`build_graph`, so what `amml compile --emit graph`
shows is what runs. A node's parameters are shown as AMML text decompiled from its callback bytecode
(:func:`parameter_texts`): `model=params.model`, `cond=OT > params.threshold`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from . import bytecode as bc

# Longest parameter value a graph label shows (the whole text is in the source beside it)
MAX_LABEL_VALUE = 60


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
    loop_variable: str | None = None  # of a fanned-out pipeline: shown bare (`id=series`), as the file writes it

    @property
    def parameters(self) -> list[tuple[str, str]]:
        """(name, AMML text of its value) of each parameter the node's source sets, long values shortened."""
        if self.callback is None:
            return []
        texts = parameter_texts(self.callback, self.loop_variable)
        return [(name, _shorten(text)) for name, text in texts.items()]

    @property
    def label(self) -> str:
        parameters = self.parameters
        if not parameters:
            return self.component
        return f"{self.component} " + ", ".join(f"{name}={text}" for name, text in parameters)


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
            making = Node(len(nodes), arg, line=ins.line, column=ins.column, position=position,
                          loop_variable=pipeline.foreach.variable if pipeline.foreach else None)
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


# ---- parameter values as AMML text -------------------------------------------------------------------

# Binding strength of an expression's top operator, for the parentheses its operands need (the grammar's order)
_ATOM, _POWER, _UNARY, _PRODUCT, _SUM, _COMPARE, _NOT, _AND, _OR = 9, 8, 7, 6, 5, 4, 3, 2, 1
_BINARY = {
    bc.ADD: ("+", _SUM),
    bc.SUB: ("-", _SUM),
    bc.MUL: ("*", _PRODUCT),
    bc.DIV: ("/", _PRODUCT),
    bc.MOD: ("%", _PRODUCT),
    bc.POW: ("**", _POWER),
    bc.AND: ("and", _AND),
    bc.OR: ("or", _OR),
}
_COMPARE_TEXT = {code: symbol for symbol, code in bc.COMPARE_OPS.items()}
_UNARY_TEXT = {bc.NEG: "-", bc.POS: "+", bc.NOT: "not "}


def parameter_texts(code: bc.Code, loop_variable: str | None = None) -> dict[str, str]:
    """{parameter: its value as AMML text} for one component's callback, in the order it binds them:
    constants as literals, run parameters as `params.NAME` (the loop variable of a fanned-out pipeline bare,
    as written: the compiler reads the item as a run parameter of its name), record fields by name. A reading
    of the bytecode (each ASSIGN pops the expression built since the one before), so it shows what runs."""
    out: dict[str, str] = {}
    stack: list[tuple[str, int]] = []  # (text, binding strength)
    names = code.names
    try:
        for ins in code.instructions:
            op = ins.op
            if op == bc.LOAD_CONST:
                stack.append((literal(code.consts[ins.arg]), _ATOM))
            elif op == bc.LOAD_VALUE:
                name = names[ins.arg]
                stack.append((name if name.isidentifier() else f"`{name}`", _ATOM))
            elif op == bc.LOAD_PARAM:
                name = names[ins.arg]
                stack.append((name if name == loop_variable else f"params.{name}", _ATOM))
            elif op == bc.ASSIGN:
                out[names[ins.arg]] = stack.pop()[0]
            elif op in _BINARY or op in _COMPARE_TEXT:
                symbol, strength = _BINARY.get(op) or (_COMPARE_TEXT[op], _COMPARE)
                right, left = stack.pop(), stack.pop()
                # left-associative, except ** (right-associative); comparisons do not chain
                left_min = strength + 1 if op == bc.POW or strength == _COMPARE else strength
                right_min = _UNARY if op == bc.POW else strength + 1  # `2 ** -v` needs none
                stack.append((f"{_wrap(left, left_min)} {symbol} {_wrap(right, right_min)}", strength))
            elif op in _UNARY_TEXT:
                operand = stack.pop()
                strength = _NOT if op == bc.NOT else _UNARY
                stack.append((f"{_UNARY_TEXT[op]}{_wrap(operand, strength)}", strength))
            elif op in (bc.JUMP_IF_FALSE, bc.JUMP_IF_TRUE):
                continue  # the short cut of `and`/`or`; the AND/OR that follows names the operator
            elif op in (bc.CALL, bc.CALL_METHOD):
                args = [text for text, _ in stack[len(stack) - ins.argc :]] if ins.argc else []
                del stack[len(stack) - ins.argc :]
                call = f"{names[ins.arg]}({', '.join(args)})"
                if op == bc.CALL_METHOD:
                    call = f"{_wrap(stack.pop(), _ATOM)}.{call}"
                stack.append((call, _ATOM))
            else:  # an opcode this reading does not know: show the parameters found so far
                break
    except IndexError:  # not bytecode the compiler made; a label is not worth an exception
        pass
    for name in code.assigned:
        out.setdefault(name, "…")
    return out


def literal(value: Any) -> str:
    """A constant as AMML writes it: "text", true, null, [1, 2], {a: 1}."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(literal(v) for v in value) + "]"
    if isinstance(value, dict):
        items = (f"{k if str(k).isidentifier() else literal(str(k))}: {literal(v)}" for k, v in value.items())
        return "{" + ", ".join(items) + "}"
    return repr(value)


def _wrap(operand: tuple[str, int], least: int) -> str:
    text, strength = operand
    return text if strength >= least else f"({text})"


def _shorten(text: str, limit: int = MAX_LABEL_VALUE) -> str:
    return text if len(text) <= limit else f"{text[: limit - 1]}…"


# ---- renderers ----------------------------------------------------------------------------------------


def render_text(graph: Graph) -> str:
    lines = [f"pipeline {graph.pipeline}"]
    for n in graph.nodes:
        src = f" <- {', '.join(f'[{i}]' for i in n.inputs)}" if n.inputs else ""
        lines.append(f"  [{n.id}] {n.label}{src}   (line {n.line})")
    return "\n".join(lines)


def _mermaid_text(text: str) -> str:
    # Mermaid's quoted labels end at `"` and read `#...;` as an entity: write both as entities
    return text.replace("#", "#35;").replace('"', "#quot;")


def render_mermaid(graph: Graph) -> str:
    lines = ["flowchart LR", f"  %% pipeline {graph.pipeline}"]
    for n in graph.nodes:
        shape = ('(["', '"])') if n.component in ("join", "split") else ('["', '"]')
        lines.append(f"  n{n.id}{shape[0]}{_mermaid_text(n.label)}{shape[1]}")
    lines.extend(f"  n{a} --> n{b}" for a, b in graph.edges())
    return "\n".join(lines)


def dot_string(text: str) -> str:
    r"""`text` as a DOT quoted string: a backslash doubled (else Graphviz reads `\n`, `\l`, `\N`, … in a label
    as its escapes), a quote escaped, line breaks as spaces."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ").replace("\r", " ") + '"'


def render_dot(graph: Graph) -> str:
    """The graph for Graphviz: one box per component, its name over its parameters (one a line, left-aligned);
    joins and splits as ellipses."""
    return "\n".join([*_dot_head(graph.pipeline), *_dot_nodes(graph, "n"), "}"])


def render_program_dot(graphs: list[Graph], after: dict[str, tuple[str, ...]]) -> str:
    """Several pipelines (the tasks of one DAG) in one picture: a box around each pipeline, labelled with its
    name, and a dashed arrow from a pipeline to each one that runs after it."""
    lines = _dot_head("pipelines")
    lines.append("  compound=true;")
    anchors: dict[str, str] = {}
    for k, graph in enumerate(graphs):
        lines.append(f"  subgraph cluster_{k} {{")
        lines.append(f'    label={dot_string(f"pipeline {graph.pipeline}")}; style="rounded,dashed"; color="#90a4ae";')
        lines.append(f'    id="pipeline-{k}";')
        lines.extend("  " + line for line in _dot_nodes(graph, f"p{k}n"))
        lines.append("  }")
        if graph.nodes:
            anchors[graph.pipeline] = f"p{k}n{graph.nodes[-1].id}"
    for k, graph in enumerate(graphs):
        for upstream in after.get(graph.pipeline, ()):
            if upstream in anchors and graph.nodes:
                lines.append(f'  {anchors[upstream]} -> p{k}n{graph.nodes[0].id} [style=dashed, label="then"];')
    lines.append("}")
    return "\n".join(lines)


def _dot_head(name: str) -> list[str]:
    return [
        f"digraph {dot_string(name)} {{",
        '  rankdir=LR; fontname="Helvetica"; fontsize=12;',
        '  node [shape=box, style="rounded", fontname="Helvetica", fontsize=11];',
        '  edge [color="#555555"];',
    ]


def _dot_nodes(graph: Graph, prefix: str) -> list[str]:
    lines = []
    for n in graph.nodes:
        shape = ", shape=ellipse" if n.component in ("join", "split") else ""
        # a label of several lines: the name centred (`\n`), each parameter left-aligned (`\l`), escaped first
        rows = [dot_string(n.component)[1:-1] + "\\n"]
        rows += [dot_string(f"{name}={text}")[1:-1] + "\\l" for name, text in n.parameters]
        lines.append(f'  {prefix}{n.id} [id="{prefix}{n.id}", label="{"".join(rows)}"{shape}];')
    lines.extend(f"  {prefix}{a} -> {prefix}{b};" for a, b in graph.edges())
    return lines


RENDERERS = {"text": render_text, "mermaid": render_mermaid, "dot": render_dot}
