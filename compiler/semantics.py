"""The meaning of every callback operation on single values: the reference semantics.

The record VM (``compiler.vm``) calls these directly; constant folding calls them at compile time; the
vectorised VM (``airflow_amml.runtime.batch_vm``) must give the same answers column-wise (a hypothesis test
checks it).

Values are ``None`` (null), ``bool``, ``int`` (64-bit), ``float`` (finite), ``str``.

Rules, chosen so that a stream never dies on one odd record and both VMs can agree:

* null in, null out: any arithmetic, comparison or function (except ``coalesce``, ``is_null``, ``if``)
  with a null argument gives null.
* A result that is not a finite number is null: ``x / 0``, ``x % 0``, ``sqrt(-1)``, ``log(0)``, overflow
  of floats. Integer ``+ - * %`` stay integers; a result outside 64 bits is null.
* ``/`` and ``**`` always give floats. ``bool`` counts as 0/1 in arithmetic.
* Comparing an int with a float compares them as floats. ``==``/``!=`` between a string and a number
  are false/true; ordering them is a type error.
* ``and``/``or``/``not`` use three-valued (SQL) logic: ``false and null`` is false, ``true and null`` is
  null. Numbers are true when non-zero. A filter keeps a record only when its condition is true.
* Type errors (``'a' + 1``, ``len(3)``) raise :class:`SemanticError`; the runtime reports it with the
  component and the record.
* No operation builds a string longer than :data:`MAX_STRING` characters (``+``, ``.replace()``,
  ``lower``/``upper``): it raises :class:`StringLimitError` instead, checked before the string is built.

Transcendental functions and ``**`` go through numpy's float64 routines (imported lazily), because
numpy's vectorised loops may differ from libm in the last bit and the two VMs must agree exactly.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from .errors import AmmlError

INT_MIN = -(2**63)
INT_MAX = 2**63 - 1
# The longest string an operation may build (`+`, `.replace()`, `lower`/`upper`): without a bound,
# nine chained `.replace('a', 'aaaaaaaaaa')` make a 10^9-character string from a one-letter one.
MAX_STRING = 65_536


class SemanticError(AmmlError):
    """A type error while evaluating a callback. Raised deep inside an operation that knows no position, it
    is always reported by a caller that adds one (the compiler's constant folding, the VM naming the record),
    so its text is the bare message."""

    label = "runtime error"

    def __str__(self) -> str:
        return self.message


class StringLimitError(SemanticError):
    """An operation would build a string longer than :data:`MAX_STRING` characters (refused before it is
    built)."""


def check_string_length(length: int, what: str) -> None:
    """Refuse a string of ``length`` characters before ``what`` builds it."""
    if length > MAX_STRING:
        raise StringLimitError(
            f"{what} would make a string of {length} characters; strings are limited to {MAX_STRING}"
        )


def type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, (list, tuple)):
        return "list"
    return type(value).__name__


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, str)


def _int_or_null(value: int) -> int | None:
    return value if INT_MIN <= value <= INT_MAX else None


def _float_or_null(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _num(value: Any, op: str, other: Any) -> int | float:
    if isinstance(value, bool):
        return int(value)
    if is_number(value):
        return value
    raise SemanticError(f"cannot apply `{op}` to {type_name(value)} and {type_name(other)}")


def _np() -> Any:
    import numpy

    return numpy


# ---- arithmetic ----------------------------------------------------------------------------------


def add(a: Any, b: Any) -> Any:
    if a is None or b is None:
        return None
    if isinstance(a, str) and isinstance(b, str):
        check_string_length(len(a) + len(b), "`+`")
        return a + b
    x, y = _num(a, "+", b), _num(b, "+", a)
    if isinstance(x, int) and isinstance(y, int):
        return _int_or_null(x + y)
    return _float_or_null(float(x) + float(y))


def sub(a: Any, b: Any) -> Any:
    if a is None or b is None:
        return None
    x, y = _num(a, "-", b), _num(b, "-", a)
    if isinstance(x, int) and isinstance(y, int):
        return _int_or_null(x - y)
    return _float_or_null(float(x) - float(y))


def mul(a: Any, b: Any) -> Any:
    if a is None or b is None:
        return None
    if isinstance(a, str) or isinstance(b, str):
        raise SemanticError(f"cannot apply `*` to {type_name(a)} and {type_name(b)} (no string repetition)")
    x, y = _num(a, "*", b), _num(b, "*", a)
    if isinstance(x, int) and isinstance(y, int):
        return _int_or_null(x * y)
    return _float_or_null(float(x) * float(y))


def div(a: Any, b: Any) -> Any:
    if a is None or b is None:
        return None
    x, y = _num(a, "/", b), _num(b, "/", a)
    if y == 0:
        return None
    return _float_or_null(float(x) / float(y))


def mod(a: Any, b: Any) -> Any:
    if a is None or b is None:
        return None
    x, y = _num(a, "%", b), _num(b, "%", a)
    if y == 0:
        return None
    if isinstance(x, int) and isinstance(y, int):
        return _int_or_null(x % y)
    return _float_or_null(float(x) % float(y))


def power(a: Any, b: Any) -> Any:
    if a is None or b is None:
        return None
    x, y = float(_num(a, "**", b)), float(_num(b, "**", a))
    np = _np()
    with np.errstate(all="ignore"):
        # An array exponent, never a scalar one: numpy special-cases a scalar exponent of 2, 0.5 or -1
        # (x*x, sqrt, 1/x), which can differ in the last bit from its general loop used on columns.
        return _float_or_null(float(np.power(np.array([x]), np.array([y]))[0]))


def power_magnitude(a: Any, b: Any) -> float:
    """log10 of |a ** b|, computed without computing a ** b (to refuse huge constants cheaply)."""
    x, y = abs(float(_num(a, "**", b))), float(_num(b, "**", a))
    if x == 0:
        return -math.inf if y > 0 else math.inf
    return y * math.log10(x)


def neg(a: Any) -> Any:
    if a is None:
        return None
    x = _num(a, "-", None) if not isinstance(a, str) else _fail_unary("-", a)
    if isinstance(x, int):
        return _int_or_null(-x)
    return -x


def pos(a: Any) -> Any:
    if a is None:
        return None
    if isinstance(a, str):
        _fail_unary("+", a)
    return int(a) if isinstance(a, bool) else a


def _fail_unary(op: str, a: Any) -> Any:
    raise SemanticError(f"cannot apply unary `{op}` to {type_name(a)}")


# ---- comparison ----------------------------------------------------------------------------------


def compare(op: str, a: Any, b: Any) -> bool | None:
    if a is None or b is None:
        return None
    a_str, b_str = isinstance(a, str), isinstance(b, str)
    if a_str != b_str:
        if op == "==":
            return False
        if op == "!=":
            return True
        raise SemanticError(f"cannot compare {type_name(a)} with {type_name(b)} using `{op}`")
    if not a_str:
        a, b = _num(a, op, b), _num(b, op, a)
        if isinstance(a, float) or isinstance(b, float):
            a, b = float(a), float(b)
    return _COMPARE[op](a, b)


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


# ---- logic ---------------------------------------------------------------------------------------


def truth(a: Any) -> bool | None:
    if a is None or isinstance(a, bool):
        return a
    if is_number(a):
        return a != 0
    raise SemanticError(f"expected a condition (bool or number), got {type_name(a)}")


def and_(a: Any, b: Any) -> bool | None:
    x, y = truth(a), truth(b)
    if x is False or y is False:
        return False
    if x is None or y is None:
        return None
    return True


def or_(a: Any, b: Any) -> bool | None:
    x, y = truth(a), truth(b)
    if x is True or y is True:
        return True
    if x is None or y is None:
        return None
    return False


def not_(a: Any) -> bool | None:
    x = truth(a)
    return None if x is None else not x


# ---- built-in functions --------------------------------------------------------------------------


def _unary_math(name: str, domain: Callable[[float], bool] = lambda _: True) -> Callable[[Any], Any]:
    def fn(a: Any) -> Any:
        if a is None:
            return None
        x = float(_num(a, name, None))
        if not domain(x):
            return None
        np = _np()
        with np.errstate(all="ignore"):
            return _float_or_null(float(getattr(np, name)(np.float64(x))))

    fn.__name__ = name
    return fn


def f_abs(a: Any) -> Any:
    if a is None:
        return None
    x = _num(a, "abs", None)
    return _int_or_null(abs(x)) if isinstance(x, int) else abs(x)


ROUND_DIGITS_LIMIT = 400


def round_digits(ndigits: int) -> int:
    """numpy's ``round`` takes a C int; beyond ±400 digits its result is NaN (null) anyway, so clamp."""
    return max(-ROUND_DIGITS_LIMIT, min(ROUND_DIGITS_LIMIT, ndigits))


def f_round(a: Any, ndigits: Any = 0) -> Any:
    if a is None or ndigits is None:
        return None
    if not isinstance(ndigits, int) or isinstance(ndigits, bool):
        raise SemanticError(f"round() takes an int number of digits, got {type_name(ndigits)}")
    np = _np()
    x = float(_num(a, "round", None))
    with np.errstate(all="ignore"):
        return _float_or_null(float(np.round(np.float64(x), round_digits(ndigits))))


def f_min(*args: Any) -> Any:
    return _extreme(args, min, "min")


def f_max(*args: Any) -> Any:
    return _extreme(args, max, "max")


def _extreme(args: tuple[Any, ...], pick: Callable[..., Any], name: str) -> Any:
    if any(a is None for a in args):
        return None
    if all(isinstance(a, str) for a in args):
        return pick(args)
    nums = [_num(a, name, None) for a in args]
    if any(isinstance(n, float) for n in nums):
        return pick(float(n) for n in nums)
    return pick(nums)


def f_coalesce(*args: Any) -> Any:
    for a in args:
        if a is not None:
            return a
    return None


def f_is_null(a: Any) -> bool:
    return a is None


def f_if(cond: Any, then: Any, otherwise: Any) -> Any:
    return then if truth(cond) is True else otherwise


def f_int(a: Any) -> Any:
    if a is None:
        return None
    if isinstance(a, str):
        try:
            return _int_or_null(int(a.strip()))
        except ValueError:
            return None
    x = _num(a, "int", None)
    return _int_or_null(int(x)) if isinstance(x, int) else _int_or_null(math.trunc(x))


def f_float(a: Any) -> Any:
    if a is None:
        return None
    if isinstance(a, str):
        try:
            return _float_or_null(float(a.strip()))
        except ValueError:
            return None
    return _float_or_null(float(_num(a, "float", None)))


def f_str(a: Any) -> Any:
    """A number's text (at most a few dozen characters); a string is returned as it is, nothing is built."""
    if a is None:
        return None
    if isinstance(a, bool):
        return "true" if a else "false"
    if isinstance(a, float):
        return repr(a)
    return str(a)


def _replace(s: str, old: str, new: str) -> str:
    """str.replace, refused when its result would be too long: the length is known from a count."""
    count = len(s) + 1 if old == "" else s.count(old)  # '' matches before every character and at the end
    check_string_length(len(s) + count * (len(new) - len(old)), ".replace()")
    return s.replace(old, new)


def _change_case(name: str, convert: Callable[[str], str]) -> Callable[[str], str]:
    """lower/upper: a case mapping never shortens a string (and at most triples it: 'ΐ'.upper() is 3
    characters), so the input's length is checked first and the result's after."""

    def fn(s: str) -> str:
        check_string_length(len(s), f"{name}()")
        result = convert(s)
        check_string_length(len(result), f"{name}()")
        return result

    return fn


_lower = _change_case("lower", str.lower)
_upper = _change_case("upper", str.upper)


def _str_fn(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapped(s: Any, *args: Any) -> Any:
        if s is None or any(a is None for a in args):
            return None
        if not isinstance(s, str):
            raise SemanticError(f"{name}() needs a string, got {type_name(s)}")
        for a in args:
            if not isinstance(a, str):
                raise SemanticError(f"{name}() needs string arguments, got {type_name(a)}")
        return fn(s, *args)

    wrapped.__name__ = name
    return wrapped


# name → (implementation, min args, max args or None for any number)
FUNCTIONS: dict[str, tuple[Callable[..., Any], int, int | None]] = {
    "abs": (f_abs, 1, 1),
    "sqrt": (_unary_math("sqrt", lambda x: x >= 0), 1, 1),
    "log": (_unary_math("log", lambda x: x > 0), 1, 1),
    "log10": (_unary_math("log10", lambda x: x > 0), 1, 1),
    "exp": (_unary_math("exp"), 1, 1),
    "floor": (_unary_math("floor"), 1, 1),
    "ceil": (_unary_math("ceil"), 1, 1),
    "round": (f_round, 1, 2),
    "pow": (power, 2, 2),
    "min": (f_min, 1, None),
    "max": (f_max, 1, None),
    "coalesce": (f_coalesce, 1, None),
    "is_null": (f_is_null, 1, 1),
    "if": (f_if, 3, 3),
    "int": (f_int, 1, 1),
    "float": (f_float, 1, 1),
    "str": (f_str, 1, 1),
    "len": (_str_fn("len", len), 1, 1),
    "lower": (_str_fn("lower", _lower), 1, 1),
    "upper": (_str_fn("upper", _upper), 1, 1),
}

# Whitelisted string methods: `name.lower()` is `lower(name)`. Nothing else is reachable.
METHODS: dict[str, tuple[Callable[..., Any], int, int]] = {
    "lower": (_str_fn("lower", _lower), 0, 0),
    "upper": (_str_fn("upper", _upper), 0, 0),
    "strip": (_str_fn("strip", str.strip), 0, 0),
    "startswith": (_str_fn("startswith", str.startswith), 1, 1),
    "endswith": (_str_fn("endswith", str.endswith), 1, 1),
    "contains": (_str_fn("contains", lambda s, sub: sub in s), 1, 1),
    "replace": (_str_fn("replace", _replace), 2, 2),
}

# Functions whose result is null only when an argument is null or a domain error occurs: all but these.
NULL_AWARE = frozenset({"coalesce", "is_null", "if"})

BINARY: dict[str, Callable[[Any, Any], Any]] = {
    "+": add,
    "-": sub,
    "*": mul,
    "/": div,
    "%": mod,
    "**": power,
}
