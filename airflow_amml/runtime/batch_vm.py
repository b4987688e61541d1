"""The vectorised callback VM: each instruction runs once per batch, on numpy columns.

It evaluates the same bytecode as the record VM (:mod:`compiler.vm`, the reference) and must give the same
answer for every record (``tests/compiler/test_vm_agreement.py`` checks it with hypothesis). Numeric work
has vectorised fast paths; anything else (strings, mixed object columns) falls back to the scalar semantics
element by element, so the two can never disagree on meaning.

A failure on one record of a batch is a :class:`RecordError` naming the record (its row, and its position in
the stream once the component has set it) and the values it read.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from compiler import bytecode as bc
from compiler import semantics as sem
from compiler.semantics import SemanticError
from compiler.vm import (
    BINARY_FUNCTIONS,
    COMPARE_SYMBOLS,
    MissingFieldError,
    MissingParamError,
    eval_per_record,
    eval_static,
)

from .columns import Col, Value, col_from_array, col_from_pylist


class RecordError(SemanticError):
    """A callback failed on one record of a batch: says which record and the values it read.

    ``row`` is the record's place in the batch; the component that evaluated the batch sets ``position``
    (the record's place in the stream, the batch's index) with :meth:`at`.
    """

    def __init__(self, cause: SemanticError, row: int, values: Mapping[str, Any]) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.row = row
        self.position: int | None = None
        self.values = dict(values)

    def at(self, index: Any) -> RecordError:
        """Name the record by its position in the stream, ``index[row]`` (a batch's index)."""
        try:
            self.position = int(index[self.row])
        except (IndexError, TypeError, ValueError):
            self.position = None
        return self

    def __str__(self) -> str:
        where = f"record {self.position}" if self.position is not None else f"row {self.row} of its batch"
        shown = ", ".join(f"{name}={_short(value)}" for name, value in list(self.values.items())[:6])
        more = ", …" if len(self.values) > 6 else ""
        return f"{self.cause} (at {where}" + (f": {shown}{more})" if shown else ")")


def _short(value: Any, limit: int = 40) -> str:
    text = repr(value[: limit + 1] if isinstance(value, str) else value)  # never the repr of a huge string
    return text if len(text) <= limit else text[:limit] + "…"


def _or_masks(*masks: np.ndarray | None) -> np.ndarray | None:
    result = None
    for m in masks:
        if m is not None:
            result = m if result is None else np.logical_or(result, m)
    return result


def _is_numeric(v: Value) -> bool:
    if isinstance(v, Col):
        return v.kind in "biuf"
    return sem.is_number(v)


def _is_int(v: Value) -> bool:
    if isinstance(v, Col):
        return v.kind in "biu"
    return isinstance(v, int)


def _num_values(v: Value) -> Any:
    """numpy operand of a numeric value: bools become int64 (bool + bool is 2, as in Python)."""
    if isinstance(v, Col):
        return v.values.astype(np.int64) if v.kind == "b" else v.values
    return int(v) if isinstance(v, bool) else v


def _num_kind(v: Value) -> str:
    """'b', 'i' or 'f': whether a numeric value is, record by record, a bool, an int or a float."""
    if isinstance(v, Col):
        return "i" if v.kind == "u" else v.kind
    return "b" if isinstance(v, bool) else "i" if isinstance(v, int) else "f"


def _mask(v: Value) -> np.ndarray | None:
    return v.mask if isinstance(v, Col) else None


def _finite(result: np.ndarray, mask: np.ndarray | None) -> Col:
    """Nulls where a float result is NaN or infinite (one cheap reduction when all is well)."""
    if result.ndim == 0:
        result = np.atleast_1d(result)
    total = np.add.reduce(result) if result.size else 0.0
    if math.isfinite(total):
        return Col(result, mask)
    return Col(result, _or_masks(mask, ~np.isfinite(result)))


class BatchEval:
    """Evaluates a :class:`~compiler.bytecode.Code` once over ``n`` records given as columns."""

    def __init__(self, columns: Mapping[str, Any], n: int, params: Mapping[str, Any]) -> None:
        self.columns = columns
        self.n = n
        self.params = params
        self._loaded: dict[str, Col] = {}

    # -- helpers ------------------------------------------------------------------------------------

    def full(self, value: Any) -> Col:
        if isinstance(value, Col):
            return value
        if value is None:
            return Col(np.zeros(self.n, dtype=bool), np.ones(self.n, dtype=bool))
        if isinstance(value, bool):
            return Col(np.full(self.n, value, dtype=bool))
        return col_from_pylist([value] * self.n)

    def elementwise(self, fn: Callable[..., Any], *args: Value) -> Value:
        """Apply a scalar function row by row: the slow path that defines what the fast paths must match."""
        if not any(isinstance(a, Col) for a in args):
            return fn(*args)
        columns = [a.to_pylist() if isinstance(a, Col) else [a] * self.n for a in args]
        return col_from_pylist([fn(*row) for row in zip(*columns)])

    def load(self, name: str) -> Col:
        col = self._loaded.get(name)
        if col is None:
            if name not in self.columns:
                raise MissingFieldError(name, list(self.columns))
            col = self._loaded[name] = col_from_array(self.columns[name])
        return col

    # -- arithmetic ---------------------------------------------------------------------------------

    def binary(self, op: int, a: Value, b: Value) -> Value:
        if a is None or b is None:
            return None
        if not (isinstance(a, Col) or isinstance(b, Col)):
            return BINARY_FUNCTIONS[op](a, b)
        if not (_is_numeric(a) and _is_numeric(b)):
            return self.elementwise(BINARY_FUNCTIONS[op], a, b)
        x, y = _num_values(a), _num_values(b)
        mask = _or_masks(_mask(a), _mask(b))
        with np.errstate(all="ignore"):
            if op in (bc.ADD, bc.SUB, bc.MUL) and _is_int(a) and _is_int(b):
                return self._int_arith(op, x, y, mask)
            if op == bc.DIV:
                zero = np.asarray(y == 0)
                return _finite(np.true_divide(x, y, dtype=np.float64), _or_masks(mask, _broadcast(zero, self.n)))
            if op == bc.MOD:
                zero = _broadcast(np.asarray(y == 0), self.n)
                if _is_int(a) and _is_int(b):
                    safe_y = np.where(zero, 1, y) if isinstance(y, np.ndarray) else (y or 1)
                    return Col(np.atleast_1d(np.mod(x, safe_y)), _or_masks(mask, zero))
                return _finite(np.mod(x, y, dtype=np.float64), _or_masks(mask, zero))
            if op == bc.POW:  # an array exponent, as in semantics.power
                y = y if isinstance(y, np.ndarray) else np.full(self.n, y, dtype=np.float64)
                return _finite(np.power(x, y, dtype=np.float64), mask)
            ufunc = {bc.ADD: np.add, bc.SUB: np.subtract, bc.MUL: np.multiply}[op]
            return _finite(ufunc(x, y, dtype=np.float64), mask)

    def _int_arith(self, op: int, x: Any, y: Any, mask: np.ndarray | None) -> Col:
        x64 = np.asarray(x, dtype=np.int64)
        y64 = np.asarray(y, dtype=np.int64)
        # Two cheap reductions usually prove that no record can overflow; only then skip the exact check.
        bx, by = _abs_bound(x64), _abs_bound(y64)
        if (bx * by if op == bc.MUL else bx + by) <= sem.INT_MAX:
            r = {bc.ADD: np.add, bc.SUB: np.subtract, bc.MUL: np.multiply}[op](x64, y64)
            return Col(np.broadcast_to(r, (self.n,)).copy() if r.ndim == 0 else r, mask)
        if op == bc.ADD:
            r = np.add(x64, y64)
            overflow = ((x64 ^ r) & (y64 ^ r)) < 0
        elif op == bc.SUB:
            r = np.subtract(x64, y64)
            overflow = ((x64 ^ y64) & (x64 ^ r)) < 0
        else:
            r = np.multiply(x64, y64)
            safe_x = np.where(x64 == 0, 1, x64)
            overflow = (x64 != 0) & ((r // safe_x != y64) | ((x64 == -1) & (y64 == sem.INT_MIN)))
            overflow |= (y64 == -1) & (x64 == sem.INT_MIN)
        overflow = _broadcast(overflow, self.n)
        return Col(np.broadcast_to(r, (self.n,)).copy() if r.ndim == 0 else r, _or_masks(mask, overflow))

    def unary(self, op: int, a: Value) -> Value:
        scalar_fn = {bc.NEG: sem.neg, bc.POS: sem.pos}[op]
        if not isinstance(a, Col):
            return scalar_fn(a)
        if not _is_numeric(a):
            return self.elementwise(scalar_fn, a)
        x = _num_values(a)
        if op == bc.POS:
            return Col(x, a.mask)
        if a.kind in "biu":
            return Col(np.negative(x), _or_masks(a.mask, x == sem.INT_MIN))
        return Col(np.negative(x), a.mask)

    # -- comparison ---------------------------------------------------------------------------------

    def compare(self, op: int, a: Value, b: Value) -> Value:
        if a is None or b is None:
            return None
        symbol = COMPARE_SYMBOLS[op]
        if not (isinstance(a, Col) or isinstance(b, Col)):
            return sem.compare(symbol, a, b)
        if not (_is_numeric(a) and _is_numeric(b)):
            return self.elementwise(lambda p, q: sem.compare(symbol, p, q), a, b)
        ufunc = _CMP_UFUNC[op]
        result = ufunc(_num_values(a), _num_values(b))
        return Col(_broadcast(np.asarray(result), self.n), _or_masks(_mask(a), _mask(b)))

    # -- logic --------------------------------------------------------------------------------------

    def truth(self, a: Value) -> Value:
        if not isinstance(a, Col):
            return sem.truth(a)
        if a.kind == "b":
            return a
        if a.kind in "iuf":
            return Col(a.values != 0, a.mask)
        return self.elementwise(sem.truth, a)

    def logic(self, op: int, a: Value, b: Value) -> Value:
        x, y = self.truth(a), self.truth(b)
        if not (isinstance(x, Col) or isinstance(y, Col)):
            return BINARY_FUNCTIONS[op](x, y)
        x, y = self.full(x), self.full(y)
        if x.mask is None and y.mask is None:  # no nulls: plain boolean algebra
            ufunc = np.logical_and if op == bc.AND else np.logical_or
            return Col(ufunc(x.values, y.values))
        xm = x.mask if x.mask is not None else np.zeros(self.n, dtype=bool)
        ym = y.mask if y.mask is not None else np.zeros(self.n, dtype=bool)
        xv, yv = x.values.astype(bool), y.values.astype(bool)
        if op == bc.AND:
            decided = (~xv & ~xm) | (~yv & ~ym)  # a known false decides `and`
            return Col(xv & yv, (xm | ym) & ~decided)
        decided = (xv & ~xm) | (yv & ~ym)  # a known true decides `or`
        return Col((xv & ~xm) | (yv & ~ym), (xm | ym) & ~decided)

    def not_(self, a: Value) -> Value:
        x = self.truth(a)
        if not isinstance(x, Col):
            return sem.not_(x)
        return Col(np.logical_not(x.values), x.mask)

    def all_false(self, a: Value) -> bool:
        if isinstance(a, Col):
            return a.mask is None and not a.values.any()
        return a is False

    def all_true(self, a: Value) -> bool:
        if isinstance(a, Col):
            return a.mask is None and bool(a.values.all())
        return a is True

    # -- calls --------------------------------------------------------------------------------------

    def call(self, name: str, args: list[Value]) -> Value:
        fast = _FAST_FUNCTIONS.get(name)
        if fast is not None and any(isinstance(a, Col) for a in args):
            result = fast(self, *args)
            if result is not NotImplemented:
                return result
        return self.elementwise(sem.FUNCTIONS[name][0], *args)

    def method(self, name: str, obj: Value, args: list[Value]) -> Value:
        return self.elementwise(sem.METHODS[name][0], obj, *args)


def _abs_bound(arr: np.ndarray) -> int:
    """The largest absolute value in an int64 array (as a Python int, so it cannot overflow)."""
    if arr.ndim == 0:
        return abs(int(arr))
    if arr.size == 0:
        return 0
    return max(abs(int(arr.min())), abs(int(arr.max())))


def _broadcast(arr: np.ndarray, n: int) -> np.ndarray:
    return np.broadcast_to(arr, (n,)) if arr.ndim == 0 else arr


_CMP_UFUNC = {
    bc.CMP_EQ: np.equal,
    bc.CMP_NE: np.not_equal,
    bc.CMP_LT: np.less,
    bc.CMP_LE: np.less_equal,
    bc.CMP_GT: np.greater,
    bc.CMP_GE: np.greater_equal,
}


# ---- vectorised built-ins (each must match its scalar twin in compiler.semantics) -----------------


def _math_fast(fn: Any, domain: Callable[[np.ndarray], np.ndarray] | None = None) -> Callable[..., Value]:
    def fast(ev: BatchEval, a: Value) -> Value:
        if a is None:
            return None
        if not _is_numeric(a):
            return NotImplemented
        x = np.asarray(_num_values(a), dtype=np.float64)
        bad = domain(x) if domain is not None else None
        with np.errstate(all="ignore"):
            return _finite(fn(x), _or_masks(_mask(a), bad))

    return fast


def _abs_fast(ev: BatchEval, a: Value) -> Value:
    if not _is_numeric(a):
        return NotImplemented
    x = _num_values(a)
    if a.kind in "biu":
        return Col(np.abs(x), _or_masks(a.mask, x == sem.INT_MIN))
    return Col(np.abs(x), a.mask)


def _round_fast(ev: BatchEval, a: Value, ndigits: Value = 0) -> Value:
    if not _is_numeric(a) or not isinstance(ndigits, int) or isinstance(ndigits, bool):
        return NotImplemented
    x = np.asarray(_num_values(a), dtype=np.float64)
    with np.errstate(all="ignore"):
        return _finite(np.round(x, sem.round_digits(ndigits)), _mask(a))


def _pow_fast(ev: BatchEval, a: Value, b: Value) -> Value:
    return ev.binary(bc.POW, a, b)


def _extreme_fast(better: Any) -> Callable[..., Value]:
    """Like Python's min/max: a later value replaces the pick only when strictly better (min(0.0, -0.0) is
    0.0, where np.minimum gives -0.0)."""

    def fast(ev: BatchEval, *args: Value) -> Value:
        if any(a is None for a in args):
            return None
        if not all(_is_numeric(a) for a in args):
            return NotImplemented
        as_float = not all(_is_int(a) for a in args)
        values = [np.asarray(_num_values(a), dtype=np.float64 if as_float else np.int64) for a in args]
        result = values[0]
        for v in values[1:]:
            result = np.where(better(v, result), v, result)
        return Col(_broadcast(np.asarray(result), ev.n), _or_masks(*(_mask(a) for a in args)))

    return fast


def _is_null_fast(ev: BatchEval, a: Value) -> Value:
    if not isinstance(a, Col):
        return a is None
    return Col(a.mask.copy() if a.mask is not None else np.zeros(ev.n, dtype=bool))


def _if_fast(ev: BatchEval, cond: Value, then: Value, otherwise: Value) -> Value:
    if not all(_is_numeric(v) for v in (then, otherwise) if v is not None) or then is None or otherwise is None:
        return NotImplemented
    if _num_kind(then) != _num_kind(otherwise):  # a bool, an int and a float stay what they are
        return NotImplemented
    t = ev.truth(cond)
    if not isinstance(t, Col):
        return then if t is True else otherwise
    picked = t.values.astype(bool) if t.mask is None else t.values.astype(bool) & ~t.mask
    values = np.where(picked, *(v.values if isinstance(v, Col) else v for v in (then, otherwise)))
    then_mask = _mask(then) if _mask(then) is not None else np.zeros(ev.n, dtype=bool)
    other_mask = _mask(otherwise) if _mask(otherwise) is not None else np.zeros(ev.n, dtype=bool)
    return Col(_broadcast(values, ev.n), np.where(picked, then_mask, other_mask))


def _float_fast(ev: BatchEval, a: Value) -> Value:
    if not _is_numeric(a):
        return NotImplemented
    return Col(np.asarray(_num_values(a), dtype=np.float64), a.mask)


_FAST_FUNCTIONS: dict[str, Callable[..., Value]] = {
    "abs": _abs_fast,
    "sqrt": _math_fast(np.sqrt, lambda x: x < 0),
    "log": _math_fast(np.log, lambda x: x <= 0),
    "log10": _math_fast(np.log10, lambda x: x <= 0),
    "exp": _math_fast(np.exp),
    "floor": _math_fast(np.floor),
    "ceil": _math_fast(np.ceil),
    "round": _round_fast,
    "pow": _pow_fast,
    "min": _extreme_fast(np.less),
    "max": _extreme_fast(np.greater),
    "is_null": _is_null_fast,
    "if": _if_fast,
    "float": _float_fast,
}


def eval_batch(
    code: bc.Code,
    columns: Mapping[str, Any],
    n: int | None = None,
    params: Mapping[str, Any] | None = None,
    *,
    static: Mapping[str, Any] | None = None,
) -> dict[str, Value]:
    """Evaluate ``code`` on a batch given as columns (a DataFrame or a mapping of arrays).

    Returns parameter name → :class:`Col` (per-record values) or a plain scalar (same for every record).
    Pass ``static`` (from :func:`eval_static`) to skip re-evaluating the once-per-run part.
    """
    if n is None:
        n = len(columns) if hasattr(columns, "columns") else len(next(iter(columns.values()), ()))
    ev = BatchEval(columns, n, params or {})
    out: dict[str, Value] = {}
    if static is None:
        out.update(eval_static(code, params))
    else:
        out.update(static)
    try:
        _run_batch(code, ev, out)
    except (MissingFieldError, MissingParamError):
        raise
    except SemanticError:
        # The batch also evaluates what a record skips (the right side of an `and`/`or` that record
        # already decided; everything, when there are no records): the error counts only if a record
        # meets it. Redo this batch record by record, which raises exactly when the record VM does.
        _run_rows(code, ev, out)
    return out


def _run_rows(code: bc.Code, ev: BatchEval, out: dict[str, Value]) -> None:
    columns = {name: ev.load(name).to_pylist() for name in code.fields}
    results = []
    for i in range(ev.n):
        record = {name: values[i] for name, values in columns.items()}
        try:
            results.append(eval_per_record(code, record, ev.params))
        except SemanticError as exc:
            raise RecordError(exc, i, record) from None
    for name in code.per_record:
        out[name] = col_from_pylist([r[name] for r in results])


def _run_batch(code: bc.Code, ev: BatchEval, out: dict[str, Value]) -> None:
    stack: list[Value] = []
    consts, names, instructions = code.consts, code.names, code.instructions
    pc, stop = code.static_end, len(instructions)
    while pc < stop:
        ins = instructions[pc]
        op = ins.op
        pc += 1
        if op == bc.LOAD_CONST:
            stack.append(consts[ins.arg])
        elif op == bc.LOAD_VALUE:
            stack.append(ev.load(names[ins.arg]))
        elif op == bc.LOAD_PARAM:
            name = names[ins.arg]
            if name not in ev.params:
                raise MissingParamError(name, list(ev.params))
            stack.append(ev.params[name])
        elif op == bc.ASSIGN:
            out[names[ins.arg]] = stack.pop()
        elif op in (bc.AND, bc.OR):
            right = stack.pop()
            stack[-1] = ev.logic(op, stack[-1], right)
        elif op in COMPARE_SYMBOLS:
            right = stack.pop()
            stack[-1] = ev.compare(op, stack[-1], right)
        elif op in BINARY_FUNCTIONS:
            right = stack.pop()
            stack[-1] = ev.binary(op, stack[-1], right)
        elif op in (bc.NEG, bc.POS):
            stack[-1] = ev.unary(op, stack[-1])
        elif op == bc.NOT:
            stack[-1] = ev.not_(stack[-1])
        elif op == bc.JUMP_IF_FALSE:
            stack[-1] = ev.truth(stack[-1])
            if ev.all_false(stack[-1]):
                pc = ins.arg
        elif op == bc.JUMP_IF_TRUE:
            stack[-1] = ev.truth(stack[-1])
            if ev.all_true(stack[-1]):
                pc = ins.arg
        elif op == bc.CALL:
            args = stack[len(stack) - ins.argc :]
            del stack[len(stack) - ins.argc :]
            stack.append(ev.call(names[ins.arg], args))
        elif op == bc.CALL_METHOD:
            args = stack[len(stack) - ins.argc :]
            del stack[len(stack) - ins.argc :]
            stack[-1] = ev.method(names[ins.arg], stack[-1], args)
        else:  # pragma: no cover
            raise AssertionError(f"unknown opcode {op}")


def _truths(values: list[Any]) -> list[bool | None]:
    truths = []
    for row, v in enumerate(values):
        try:
            truths.append(sem.truth(v))
        except SemanticError as exc:
            raise RecordError(exc, row, {"condition": v}) from None
    return truths


def as_mask(value: Value, n: int) -> np.ndarray:
    """A condition's result as a boolean keep-mask: true only where the value is true (null → false)."""
    if isinstance(value, Col):
        if value.kind in "iuf":
            value = Col(value.values != 0, value.mask)
        elif value.kind != "b":
            value = col_from_pylist(_truths(value.to_pylist()))
        keep = value.values.astype(bool)
        return keep & ~value.mask if value.mask is not None else keep
    truth = sem.truth(value)
    return np.full(n, truth is True, dtype=bool)
