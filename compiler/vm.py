"""The record VM: callback bytecode evaluated on one record (a dict), value by value with
:mod:`compiler.semantics`. It is the reference for the vectorised VM, which runs the same bytecode over
columns of a batch and lives with the runtime (``airflow_amml.runtime.batch_vm``), where numpy is.

* :func:`eval_record` evaluates every parameter on one record;
* :func:`eval_static` only the instructions that read no record field (once per run);
* :func:`eval_per_record` only the others (the batch VM's record-by-record fallback).

Pure Python: the compiler package may import it at DAG-parse time without paying for numpy.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Mapping
from typing import Any

from . import bytecode as bc
from . import semantics as sem
from .semantics import SemanticError


class MissingFieldError(SemanticError):
    def __init__(self, name: str, available: list[str]) -> None:
        from .errors import did_you_mean, one_of

        hint = did_you_mean(name, available)
        msg = f"record has no field `{name}`; it has {one_of(available)}"
        super().__init__(msg + (f"; {hint}" if hint else ""))
        self.field = name


class MissingParamError(SemanticError):
    def __init__(self, name: str, available: list[str]) -> None:
        from .errors import one_of

        super().__init__(f"run parameter `{name}` is not set; the run has {one_of(available)}")
        self.param = name


def eval_static(code: bc.Code, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Evaluate the parameters that do not depend on the record (constants and run parameters)."""
    return _run_record(code, None, params or {}, 0, code.static_end)


def eval_record(code: bc.Code, record: Mapping[str, Any], params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Evaluate every parameter of ``code`` on one record."""
    return _run_record(code, record, params or {}, 0, len(code.instructions))


def eval_per_record(code: bc.Code, record: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """Evaluate only the parameters that depend on the record (the part after ``code.static_end``)."""
    return _run_record(code, record, params, code.static_end, len(code.instructions))


def normalize_value(value: Any) -> Any:
    """Bring a value from the outside world into the VM's domain (numpy scalars, NaN, timestamps).

    numpy and pandas values can only exist once their module is loaded, so they are recognised through
    ``sys.modules`` instead of an import that would load them into the compiler.
    """
    np = sys.modules.get("numpy")
    if np is not None and isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "isoformat"):
        return str(value)
    pd = sys.modules.get("pandas")
    if pd is not None and (value is pd.NA or value is pd.NaT):
        return None
    return value


# Opcode → the semantics function the record VM applies; the batch VM falls back to the same functions.
BINARY_FUNCTIONS: dict[int, Callable[[Any, Any], Any]] = {
    bc.ADD: sem.add,
    bc.SUB: sem.sub,
    bc.MUL: sem.mul,
    bc.DIV: sem.div,
    bc.MOD: sem.mod,
    bc.POW: sem.power,
    bc.AND: sem.and_,
    bc.OR: sem.or_,
}
COMPARE_SYMBOLS = {
    bc.CMP_EQ: "==",
    bc.CMP_NE: "!=",
    bc.CMP_LT: "<",
    bc.CMP_LE: "<=",
    bc.CMP_GT: ">",
    bc.CMP_GE: ">=",
}


def _run_record(
    code: bc.Code, record: Mapping[str, Any] | None, params: Mapping[str, Any], start: int, stop: int
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    stack: list[Any] = []
    consts, names, instructions = code.consts, code.names, code.instructions
    pc = start
    while pc < stop:
        ins = instructions[pc]
        op = ins.op
        pc += 1
        if op == bc.LOAD_CONST:
            stack.append(consts[ins.arg])
        elif op == bc.LOAD_VALUE:
            name = names[ins.arg]
            if record is None or name not in record:
                raise MissingFieldError(name, list(record or ()))
            stack.append(normalize_value(record[name]))
        elif op == bc.LOAD_PARAM:
            name = names[ins.arg]
            if name not in params:
                raise MissingParamError(name, list(params))
            stack.append(params[name])
        elif op == bc.ASSIGN:
            out[names[ins.arg]] = stack.pop()
        elif op in BINARY_FUNCTIONS:
            right = stack.pop()
            stack[-1] = BINARY_FUNCTIONS[op](stack[-1], right)
        elif op in COMPARE_SYMBOLS:
            right = stack.pop()
            stack[-1] = sem.compare(COMPARE_SYMBOLS[op], stack[-1], right)
        elif op == bc.NEG:
            stack[-1] = sem.neg(stack[-1])
        elif op == bc.POS:
            stack[-1] = sem.pos(stack[-1])
        elif op == bc.NOT:
            stack[-1] = sem.not_(stack[-1])
        elif op == bc.JUMP_IF_FALSE:
            stack[-1] = sem.truth(stack[-1])
            if stack[-1] is False:
                pc = ins.arg
        elif op == bc.JUMP_IF_TRUE:
            stack[-1] = sem.truth(stack[-1])
            if stack[-1] is True:
                pc = ins.arg
        elif op == bc.CALL:
            args = stack[len(stack) - ins.argc :]
            del stack[len(stack) - ins.argc :]
            stack.append(sem.FUNCTIONS[names[ins.arg]][0](*args))
        elif op == bc.CALL_METHOD:
            args = stack[len(stack) - ins.argc :]
            del stack[len(stack) - ins.argc :]
            stack[-1] = sem.METHODS[names[ins.arg]][0](stack[-1], *args)
        else:  # pragma: no cover - the compiler emits only known opcodes
            raise AssertionError(f"unknown opcode {op}")
    return out
