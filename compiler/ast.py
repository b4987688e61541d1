"""The AMML abstract syntax tree: plain frozen dataclasses, one per grammar construct.

Every node carries a :class:`Pos` so that errors found later (semantic checks, folding) can still point at
file:line:column.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Pos:
    line: int
    column: int
    end_column: int | None = None


NOWHERE = Pos(1, 1)


# ---- expressions (callback scripts) ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Expr:
    pos: Pos


@dataclass(frozen=True, slots=True)
class Const(Expr):
    value: Any  # None, bool, int, float, str


@dataclass(frozen=True, slots=True)
class ListExpr(Expr):
    items: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class DictExpr(Expr):
    items: tuple[tuple[str, Expr], ...]


@dataclass(frozen=True, slots=True)
class Field(Expr):
    """A read of a record field: ``val1`` or ```oil temp```."""

    name: str


@dataclass(frozen=True, slots=True)
class ParamRef(Expr):
    """A run parameter, ``params.epochs``: constant during a run, known only when it starts."""

    name: str


@dataclass(frozen=True, slots=True)
class Unary(Expr):
    op: str  # '-' or '+'
    operand: Expr


@dataclass(frozen=True, slots=True)
class Binary(Expr):
    op: str  # + - * / % **
    left: Expr
    right: Expr


@dataclass(frozen=True, slots=True)
class Compare(Expr):
    op: str  # == != < <= > >=
    left: Expr
    right: Expr


@dataclass(frozen=True, slots=True)
class BoolOp(Expr):
    op: str  # 'and' or 'or'
    left: Expr
    right: Expr


@dataclass(frozen=True, slots=True)
class Not(Expr):
    operand: Expr


@dataclass(frozen=True, slots=True)
class Call(Expr):
    func: str
    args: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class MethodCall(Expr):
    """``expr.method(args)``; only whitelisted methods survive the checker."""

    obj: Expr
    method: str
    args: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Attribute(Expr):
    """``expr.name`` without a call: always an error, kept so the error can say why."""

    obj: Expr
    name: str


def children(node: Expr) -> tuple[Expr, ...]:
    """The sub-expressions of ``node`` (for walks that must not recurse: see ``parser.MAX_DEPTH``)."""
    if isinstance(node, Unary | Not):
        return (node.operand,)
    if isinstance(node, Binary | Compare | BoolOp):
        return (node.left, node.right)
    if isinstance(node, Call):
        return node.args
    if isinstance(node, ListExpr):
        return node.items
    if isinstance(node, MethodCall):
        return (node.obj, *node.args)
    if isinstance(node, Attribute):
        return (node.obj,)
    if isinstance(node, DictExpr):
        return tuple(value for _, value in node.items)
    return ()


# ---- workflow --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    value: Expr
    pos: Pos


@dataclass(frozen=True, slots=True)
class Step:
    """``name key=expr, ...``: a component, or (without parameters) a reference to a named flow."""

    name: str
    params: tuple[Param, ...]
    pos: Pos


@dataclass(frozen=True, slots=True)
class Join:
    flows: tuple[tuple[str, Pos], ...]
    pos: Pos


@dataclass(frozen=True, slots=True)
class Split:
    flows: tuple[tuple[str, Pos], ...]
    pos: Pos


@dataclass(frozen=True, slots=True)
class Pipe:
    head: Step | Join
    steps: tuple[Step, ...]
    split: Split | None
    pos: Pos


@dataclass(frozen=True, slots=True)
class FlowDef:
    """``name = pipe``: names the output of a pipe so that later pipes can read it."""

    name: str
    pipe: Pipe
    pos: Pos


@dataclass(frozen=True, slots=True)
class FlowStmt:
    pipe: Pipe
    pos: Pos


Statement = FlowDef | FlowStmt


@dataclass(frozen=True, slots=True)
class ForEach:
    """``for VAR in ITEMS`` of a fanned-out pipeline. ``kind`` says what ITEMS is, ``value`` holds it:

    * ``"list"``: a list literal, ``value`` its :class:`ListExpr` (folded and checked by the checker);
    * ``"param"``: ``params.NAME``, ``value`` the name;
    * ``"catalog"``: ``catalog(...)``, ``value`` the :class:`Call` (the checker wants one string in it);
    * ``"pipeline"``: ``PIPELINE.COLUMN``, ``value`` ``(pipeline, column)``.
    """

    variable: str
    kind: str
    value: Any
    pos: Pos  # of the variable
    items_pos: Pos


@dataclass(frozen=True, slots=True)
class PipelineBlock:
    name: str
    after: tuple[tuple[str, Pos], ...]
    statements: tuple[Statement, ...]
    pos: Pos
    foreach: ForEach | None = None


@dataclass(frozen=True, slots=True)
class Setting:
    name: str
    value: Expr
    pos: Pos


@dataclass(frozen=True, slots=True)
class DagBlock:
    name: str | None
    settings: tuple[Setting, ...]
    pos: Pos


@dataclass(frozen=True, slots=True)
class Module:
    filename: str
    items: tuple[Statement | PipelineBlock | DagBlock, ...] = field(default=())
