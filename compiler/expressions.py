"""Callback scripts → callback bytecode: constant folding, safety checks and code generation.

Folding uses the very functions the VMs use (:mod:`compiler.semantics`), so a folded constant is exactly
what the runtime would have computed. Work that could explode (``10 ** 10 ** 10``) is refused before it
is done, not after.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from . import ast
from . import bytecode as bc
from . import semantics as sem
from .errors import AmmlLimitError, AmmlNameError, AmmlSafetyError, AmmlTypeError, SourceError, did_you_mean, one_of

MAX_POWER_DIGITS = 308  # a float constant larger than ~1e308 is infinite: refuse it
STRING_LIMIT_HINT = (f"strings are limited to {sem.MAX_STRING} characters; build long text outside AMML "
                     "(a catalog entry, a file) and read it as a field")


def _err(cls: type[SourceError], msg: str, pos: ast.Pos, hint: str | None = None) -> SourceError:
    return cls(msg, line=pos.line, column=pos.column, hint=hint)


def _check_name(name: str, pos: ast.Pos) -> None:
    if name.startswith("__") or name.endswith("__"):
        raise _err(
            AmmlSafetyError,
            f"`{name}`: names with double underscores are not allowed in AMML",
            pos,
            "double-underscore names are reserved; rename the field with `rename` upstream",
        )


# ---- folding ---------------------------------------------------------------------------------------


def fold(node: ast.Expr) -> ast.Expr:
    """Return ``node`` with every constant sub-expression replaced by a :class:`~compiler.ast.Const`."""
    if isinstance(node, ast.Const):
        if isinstance(node.value, int) and not isinstance(node.value, bool):
            if not sem.INT_MIN <= node.value <= sem.INT_MAX:
                raise _err(AmmlLimitError, f"integer {node.value} does not fit in 64 bits", node.pos,
                           "write it as a float, e.g. 1e20")
        if isinstance(node.value, float) and not math.isfinite(node.value):
            raise _err(AmmlLimitError, "number too large for a 64-bit float (the limit is about 1.8e308)",
                       node.pos)
        if isinstance(node.value, str) and len(node.value) > sem.MAX_STRING:
            raise _err(AmmlLimitError, f"string of {len(node.value)} characters", node.pos, STRING_LIMIT_HINT)
        return node
    if isinstance(node, ast.Field):
        _check_name(node.name, node.pos)
        return node
    if isinstance(node, ast.ParamRef):
        _check_name(node.name, node.pos)
        return node
    if isinstance(node, ast.ListExpr):
        items = tuple(fold(i) for i in node.items)
        if not all(isinstance(i, ast.Const) for i in items):
            raise _err(AmmlTypeError, "list elements must be constants", node.pos,
                       "lists are for constant parameters such as cols=['HUFL', 'OT']")
        return ast.Const(node.pos, [i.value for i in items])
    if isinstance(node, ast.DictExpr):
        raise _err(AmmlTypeError, "a `{...}` mapping is only allowed in a dag block setting", node.pos)
    if isinstance(node, ast.Attribute):
        _check_name(node.name, node.pos)
        raise _err(
            AmmlSafetyError,
            f"attribute access `.{node.name}` is not allowed",
            node.pos,
            f"callbacks can call these string methods: {one_of(sem.METHODS)}; "
            "run parameters are read as `params.NAME`",
        )
    if isinstance(node, ast.Unary):
        return _fold_unary(node)
    if isinstance(node, ast.Binary):
        return _fold_binary(node)
    if isinstance(node, ast.Compare):
        left, right = fold(node.left), fold(node.right)
        if isinstance(left, ast.Const) and isinstance(right, ast.Const):
            return ast.Const(node.pos, _apply(node.pos, sem.compare, node.op, left.value, right.value))
        return ast.Compare(node.pos, node.op, left, right)
    if isinstance(node, ast.BoolOp):
        left, right = fold(node.left), fold(node.right)
        fn = sem.and_ if node.op == "and" else sem.or_
        if isinstance(left, ast.Const) and isinstance(right, ast.Const):
            return ast.Const(node.pos, _apply(node.pos, fn, left.value, right.value))
        return ast.BoolOp(node.pos, node.op, left, right)
    if isinstance(node, ast.Not):
        operand = fold(node.operand)
        if isinstance(operand, ast.Const):
            return ast.Const(node.pos, _apply(node.pos, sem.not_, operand.value))
        return ast.Not(node.pos, operand)
    if isinstance(node, ast.Call):
        return _fold_call(node)
    if isinstance(node, ast.MethodCall):
        return _fold_method(node)
    raise AssertionError(f"unknown node {node!r}")  # pragma: no cover


def _apply(pos: ast.Pos, fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except sem.StringLimitError as exc:
        raise _err(AmmlLimitError, f"constant {exc}; it was not computed", pos, STRING_LIMIT_HINT) from None
    except sem.SemanticError as exc:
        raise _err(AmmlTypeError, str(exc), pos) from None


def _fold_unary(node: ast.Unary) -> ast.Expr:
    operand = fold(node.operand)
    if isinstance(operand, ast.Const):
        fn = sem.neg if node.op == "-" else sem.pos
        return ast.Const(node.pos, _apply(node.pos, fn, operand.value))
    return ast.Unary(node.pos, node.op, operand)


def _fold_binary(node: ast.Binary) -> ast.Expr:
    left, right = fold(node.left), fold(node.right)
    if not (isinstance(left, ast.Const) and isinstance(right, ast.Const)):
        if node.op == "*" and any(isinstance(x, ast.Const) and isinstance(x.value, str) for x in (left, right)):
            raise _err(AmmlTypeError, "strings cannot be repeated with `*`", node.pos)
        return ast.Binary(node.pos, node.op, left, right)
    a, b = left.value, right.value
    if isinstance(a, list) or isinstance(b, list):
        raise _err(AmmlTypeError, f"cannot apply `{node.op}` to a list", node.pos)
    if node.op == "**" and a is not None and b is not None:
        magnitude = _apply(node.pos, sem.power_magnitude, a, b)
        if magnitude > MAX_POWER_DIGITS:
            raise _err(
                AmmlLimitError,
                f"constant `{a!r} ** {b!r}` is too large (about 10^{magnitude:.3g}); it was not computed",
                node.pos,
            )
    return ast.Const(node.pos, _apply(node.pos, sem.BINARY[node.op], a, b))


def _fold_call(node: ast.Call) -> ast.Expr:
    _check_name(node.func, node.pos)
    if node.func not in sem.FUNCTIONS:
        hint = did_you_mean(node.func, sem.FUNCTIONS) or f"built-in functions: {one_of(sem.FUNCTIONS, 30)}"
        raise _err(AmmlNameError, f"unknown function `{node.func}`", node.pos, hint)
    fn, low, high = sem.FUNCTIONS[node.func]
    _check_arity(node.func, len(node.args), low, high, node.pos)
    args = tuple(fold(a) for a in node.args)
    if all(isinstance(a, ast.Const) for a in args):
        values = [a.value for a in args]
        if any(isinstance(v, list) for v in values):
            raise _err(AmmlTypeError, f"{node.func}() does not take a list", node.pos)
        return ast.Const(node.pos, _apply(node.pos, fn, *values))
    return ast.Call(node.pos, node.func, args)


def _fold_method(node: ast.MethodCall) -> ast.Expr:
    _check_name(node.method, node.pos)
    if node.method not in sem.METHODS:
        raise _err(
            AmmlSafetyError,
            f"method `.{node.method}()` is not allowed",
            node.pos,
            (did_you_mean(node.method, sem.METHODS) or "") + f" allowed methods: {one_of(sem.METHODS)}",
        )
    fn, low, high = sem.METHODS[node.method]
    _check_arity(f".{node.method}", len(node.args), low, high, node.pos)
    obj = fold(node.obj)
    args = tuple(fold(a) for a in node.args)
    if isinstance(obj, ast.Const) and all(isinstance(a, ast.Const) for a in args):
        return ast.Const(node.pos, _apply(node.pos, fn, obj.value, *(a.value for a in args)))
    return ast.MethodCall(node.pos, obj, node.method, args)


def _check_arity(name: str, count: int, low: int, high: int | None, pos: ast.Pos) -> None:
    if count < low or (high is not None and count > high):
        want = f"{low}" if low == high else (f"at least {low}" if high is None else f"{low} to {high}")
        raise _err(AmmlTypeError, f"{name}() takes {want} argument(s), got {count}", pos)


def reads(node: ast.Expr) -> tuple[set[str], set[str]]:
    """(record fields, run parameters) read by a folded expression."""
    fields: set[str] = set()
    params: set[str] = set()
    stack = [node]
    while stack:  # a loop, not recursion: the tree may be as deep as the parser allows
        n = stack.pop()
        if isinstance(n, ast.Field):
            fields.add(n.name)
        elif isinstance(n, ast.ParamRef):
            params.add(n.name)
        stack.extend(ast.children(n))
    return fields, params


# ---- code generation -------------------------------------------------------------------------------


@dataclass
class CallbackBuilder:
    """Accumulates one component's callback: constant table, name table, instructions."""

    consts: list[Any] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    code: list[bc.Instr] = field(default_factory=list)
    fields: list[str] = field(default_factory=list)
    params: list[str] = field(default_factory=list)
    assigned: list[str] = field(default_factory=list)
    static_values: dict[str, Any] = field(default_factory=dict)
    _const_index: dict[tuple[str, str], int] = field(default_factory=dict)
    _name_index: dict[str, int] = field(default_factory=dict)

    def const(self, value: Any) -> int:
        key = (type(value).__name__, repr(value))
        if key not in self._const_index:
            self._const_index[key] = len(self.consts)
            self.consts.append(value)
        return self._const_index[key]

    def name(self, value: str) -> int:
        if value not in self._name_index:
            self._name_index[value] = len(self.names)
            self.names.append(value)
        return self._name_index[value]

    def emit(self, op: int, arg: int = 0, argc: int = 0) -> int:
        self.code.append(bc.Instr(op, arg, argc))
        return len(self.code) - 1

    def assign(self, name: str, expr: ast.Expr) -> None:
        if isinstance(expr, ast.Const):
            self.static_values[name] = expr.value
        self.expr(expr)
        self.emit(bc.ASSIGN, self.name(name))
        self.assigned.append(name)

    def expr(self, node: ast.Expr) -> None:
        if isinstance(node, ast.Const):
            self.emit(bc.LOAD_CONST, self.const(node.value))
        elif isinstance(node, ast.Field):
            if node.name not in self.fields:
                self.fields.append(node.name)
            self.emit(bc.LOAD_VALUE, self.name(node.name))
        elif isinstance(node, ast.ParamRef):
            if node.name not in self.params:
                self.params.append(node.name)
            self.emit(bc.LOAD_PARAM, self.name(node.name))
        elif isinstance(node, ast.Unary):
            self.expr(node.operand)
            self.emit(bc.UNARY_OPS[node.op])
        elif isinstance(node, ast.Binary):
            self.expr(node.left)
            self.expr(node.right)
            self.emit(bc.BINARY_OPS[node.op])
        elif isinstance(node, ast.Compare):
            self.expr(node.left)
            self.expr(node.right)
            self.emit(bc.COMPARE_OPS[node.op])
        elif isinstance(node, ast.BoolOp):
            self.expr(node.left)
            jump = self.emit(bc.JUMP_IF_FALSE if node.op == "and" else bc.JUMP_IF_TRUE)
            self.expr(node.right)
            self.emit(bc.AND if node.op == "and" else bc.OR)
            self.code[jump] = bc.Instr(self.code[jump].op, len(self.code))
        elif isinstance(node, ast.Not):
            self.expr(node.operand)
            self.emit(bc.NOT)
        elif isinstance(node, ast.Call):
            for a in node.args:
                self.expr(a)
            self.emit(bc.CALL, self.name(node.func), len(node.args))
        elif isinstance(node, ast.MethodCall):
            self.expr(node.obj)
            for a in node.args:
                self.expr(a)
            self.emit(bc.CALL_METHOD, self.name(node.method), len(node.args))
        else:  # pragma: no cover
            raise AssertionError(f"cannot generate code for {node!r}")

    def build(self, static_end: int) -> bc.Code:
        return bc.Code(
            consts=tuple(self.consts),
            names=tuple(self.names),
            instructions=tuple(self.code),
            static_end=static_end,
            fields=tuple(self.fields),
            params=tuple(self.params),
            assigned=tuple(self.assigned),
            static_values=dict(self.static_values),
        )


def compile_callback(assignments: list[tuple[str, ast.Expr]]) -> bc.Code:
    """Compile ``name = folded expression`` pairs; the ones that read no field come first."""
    builder = CallbackBuilder()
    static = [(n, e) for n, e in assignments if not reads(e)[0]]
    per_record = [(n, e) for n, e in assignments if reads(e)[0]]
    for name, expr in static:
        builder.assign(name, expr)
    static_end = len(builder.code)
    for name, expr in per_record:
        builder.assign(name, expr)
    return builder.build(static_end)


def compile_expression(text: str) -> bc.Code:
    """Compile a single expression as the callback ``value = <text>`` (tests, the REPL, benchmarks)."""
    from .parser import parse

    module = parse(f"x = _expr_ value={text}")
    stage = module.items[0].pipe.head
    return compile_callback([("value", fold(stage.params[0].value))])
