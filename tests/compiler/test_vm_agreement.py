"""The record VM and the batch VM must agree exactly (see the rules at the top of compiler/semantics.py).

Hypothesis property tests generate callback expressions over the fields ``a``, ``b``, ``c`` and tables
whose columns are int64, float64 (NaN = null), bool, or strings (object dtype or pandas' own string
dtype). Every expression is evaluated row by row with :func:`compiler.vm.eval_record` and once on the whole
DataFrame with :func:`airflow_amml.runtime.batch_vm.eval_batch`; the two must either both raise
``SemanticError`` or give the same value on every row.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from airflow_amml.runtime import batch_vm
from airflow_amml.runtime.columns import as_pylist
from compiler import vm
from compiler.errors import AmmlError, AmmlTypeError
from compiler.expressions import compile_expression
from compiler.semantics import FUNCTIONS, INT_MAX, INT_MIN, METHODS, SemanticError

FIELDS = ("a", "b", "c")

# ---- values --------------------------------------------------------------------------------------

EDGE_INTS = [0, 1, -1, 2, -2, 3, 7, -7, 10, 100, 3037000499, 3037000500, -3037000500,
             2**31, 2**53 + 1, 2**62, -(2**62), 2**62 + 12345, INT_MAX, INT_MAX - 1, INT_MIN, INT_MIN + 1]
EDGE_FLOATS = [0.0, -0.0, 0.5, -0.5, 1.0, -1.0, 2.5, -2.5, 3.0, 1e-300, 5e-324, 1e300, -1e300, 1e308,
               -1e308, 1.7976931348623157e308, 2.0**62, 2.0**63, -(2.0**63), 4.5, 709.0, 710.0]
EDGE_STRS = ["", "x", "X", "abc", "ABC", "a", "xa", "Hello World", "42", " 7 ", "-3", "3.5", "1e400", "nan",
             "true", "ß", "İ", "ﬁ", "éx", "a\u0000b"]

ints = st.one_of(st.sampled_from(EDGE_INTS), st.integers(-10, 10), st.integers(INT_MIN, INT_MAX))
floats = st.one_of(
    st.sampled_from(EDGE_FLOATS),
    st.integers(-10, 10).map(float),
    st.floats(allow_nan=False, allow_infinity=False),
)
strs = st.one_of(st.sampled_from(EDGE_STRS), st.text(max_size=4))

# column kind → (strategy of one value, None stands for null; how to build the pandas column)
COLUMN_KINDS: dict[str, Any] = {
    "int": (ints, lambda vals: pd.Series(vals, dtype=np.int64)),
    "float": (st.one_of(floats, st.just(math.nan), st.sampled_from([math.inf, -math.inf])),
              lambda vals: pd.Series(vals, dtype=np.float64)),
    "bool": (st.booleans(), lambda vals: pd.Series(vals, dtype=bool)),
    "object_str": (st.one_of(strs, st.none()), lambda vals: pd.Series(vals, dtype=object)),
    "pandas_str": (st.one_of(strs, st.none()), lambda vals: pd.Series(vals, dtype="str")),
}
NUMERIC_KINDS = ("int", "float")
ALL_KINDS = tuple(COLUMN_KINDS)


@st.composite
def tables(draw: st.DrawFn, kinds: dict[str, tuple[str, ...]]) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """A DataFrame and the same rows as plain Python dicts (NaN/None for nulls, as a reader gives them)."""
    n = draw(st.integers(1, 7)) if draw(st.integers(0, 9)) else 0
    columns: dict[str, pd.Series] = {}
    raw: dict[str, list[Any]] = {}
    for name in FIELDS:
        kind = draw(st.sampled_from(kinds[name]))
        value_strategy, build = COLUMN_KINDS[kind]
        values = draw(st.lists(value_strategy, min_size=n, max_size=n))
        raw[name] = values
        columns[name] = build(values)
    frame = pd.DataFrame(columns)
    rows = [{name: raw[name][i] for name in FIELDS} for i in range(n)]
    return frame, rows


# ---- expressions ---------------------------------------------------------------------------------

INT_LITERALS = [0, 1, 2, 3, 7, 10, 100, 3037000500, 2**62, INT_MAX]
FLOAT_LITERALS = [0.0, 0.5, 1.0, 2.5, 1e-300, 1e300, 1e308, 1.7976931348623157e308, 709.0, 2.0**63]
STR_LITERALS = ["''", "'x'", "'X'", "'abc'", "'a'", "'42'", "' 7 '", "'3.5'", "\"a\"", "'ß'"]

num_literals = st.one_of(
    st.integers(0, 20).map(str),
    st.sampled_from(INT_LITERALS).map(str),
    st.sampled_from(FLOAT_LITERALS).map(repr),
)
bool_literals = st.sampled_from(["true", "false", "null"])
string_literals = st.sampled_from(STR_LITERALS)

BINARY_OPS = ["+", "-", "*", "/", "%", "**"]
COMPARE_OPS = ["==", "!=", "<", "<=", ">", ">="]
MATH_FUNCTIONS = ["abs", "sqrt", "log", "log10", "exp", "floor", "ceil", "float", "int"]
UNARY_FUNCTIONS = [*MATH_FUNCTIONS, "str", "len", "is_null", "lower", "upper"]
VARIADIC_FUNCTIONS = ["min", "max", "coalesce"]
assert set(UNARY_FUNCTIONS) | set(VARIADIC_FUNCTIONS) | {"round", "pow", "if"} == set(FUNCTIONS)

NUM, BOOL, STR, ANY = "num", "bool", "str", "any"


@st.composite
def typed_expression(draw: st.DrawFn, kind: str, num_fields: tuple[str, ...], str_fields: tuple[str, ...],
                     depth: int = 4) -> str:
    """A well-typed expression of ``kind`` (so that most examples compute something rather than fail).

    ``ANY`` mixes the types inside ``if``/``coalesce``/``min``, which is where the batch VM must not unify
    a column's ints, floats and bools.
    """
    if kind == ANY:
        kind = draw(st.sampled_from([NUM, BOOL, STR]))
    if depth == 0 or draw(st.integers(0, 9)) < 3:
        fields = st.sampled_from(num_fields)
        leaves = {
            NUM: st.one_of(fields, fields, num_literals),
            BOOL: st.one_of(bool_literals, st.tuples(fields, st.sampled_from(COMPARE_OPS), num_literals).map(
                lambda t: f"({t[0]} {t[1]} {t[2]})")),
            STR: st.one_of(st.sampled_from(str_fields), string_literals) if str_fields
            else st.one_of(string_literals, fields.map(lambda f: f"str({f})")),
        }[kind]
        return draw(leaves)

    def sub(k: str) -> str:
        return draw(typed_expression(k, num_fields, str_fields, depth - 1))

    def pick(options: list[str]) -> str:
        return draw(st.sampled_from(options))

    if kind == NUM:
        rule = draw(st.integers(0, 11))
        if rule == 0:
            return f"({sub(NUM)} {pick(BINARY_OPS)} {sub(NUM)})"
        if rule == 1:
            return f"({pick(['-', '+'])}{sub(NUM)})"
        if rule == 2:
            return f"{pick(MATH_FUNCTIONS)}({sub(NUM)})"
        if rule == 3:
            digits = draw(st.one_of(st.integers(-3, 3).map(str), st.just(sub(NUM))))
            return f"round({sub(NUM)})" if draw(st.booleans()) else f"round({sub(NUM)}, {digits})"
        if rule == 4:
            return f"pow({sub(NUM)}, {sub(NUM)})"
        if rule == 5:
            args = [sub(NUM) for _ in range(draw(st.integers(1, 3)))]
            return f"{pick(VARIADIC_FUNCTIONS)}({', '.join(args)})"
        if rule == 6:
            return f"if({sub(BOOL)}, {sub(NUM)}, {sub(NUM)})"
        if rule == 7:
            return f"{pick(['len', 'int', 'float'])}({sub(STR)})"
        if rule == 8:  # bools count as 0/1 in arithmetic
            return f"({sub(BOOL)} {pick(['+', '-', '*'])} {sub(NUM)})"
        if rule == 9:
            return f"{pick(['min', 'max', 'coalesce'])}({sub(NUM)}, {sub(ANY)})"
        if rule == 10:
            return f"({sub(NUM)} {pick(BINARY_OPS)} {pick(['0', '0.0', '1', '2', '-1', '3037000500'])})"
        return f"({sub(NUM)} % {sub(NUM)})"
    if kind == BOOL:
        rule = draw(st.integers(0, 9))
        if rule == 0:
            return f"({sub(NUM)} {pick(COMPARE_OPS)} {sub(NUM)})"
        if rule == 1:
            return f"({sub(STR)} {pick(COMPARE_OPS)} {sub(STR)})"
        if rule == 2:
            return f"({sub(ANY)} {pick(['==', '!='])} {sub(ANY)})"
        if rule == 3:
            return f"({sub(BOOL)} {pick(['and', 'or'])} {sub(BOOL)})"
        if rule == 4:
            return f"(not {sub(pick([BOOL, NUM]))})"
        if rule == 5:  # numbers are conditions too: true when non-zero
            return f"({sub(NUM)} {pick(['and', 'or'])} {sub(pick([BOOL, NUM]))})"
        if rule == 6:
            return f"is_null({sub(ANY)})"
        if rule == 7:
            return f"{sub(STR)}.{pick(['contains', 'startswith', 'endswith'])}({sub(STR)})"
        if rule == 8:
            return f"if({sub(BOOL)}, {sub(BOOL)}, {sub(BOOL)})"
        return f"coalesce({sub(BOOL)}, {sub(BOOL)})"
    rule = draw(st.integers(0, 6))
    if rule == 0:
        return f"str({sub(ANY)})"
    if rule == 1:
        return f"{sub(STR)}.{pick(['lower', 'upper', 'strip'])}()"
    if rule == 2:
        return f"{pick(['lower', 'upper'])}({sub(STR)})"
    if rule == 3:
        return f"({sub(STR)} + {sub(STR)})"
    if rule == 4:
        return f"{sub(STR)}.replace({pick(STR_LITERALS)}, {sub(STR)})"
    if rule == 5:
        return f"if({sub(BOOL)}, {sub(STR)}, {sub(STR)})"
    return f"{pick(VARIADIC_FUNCTIONS)}({sub(STR)}, {sub(STR)})"


def _wild_extend(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    def call(name: str, n_args: int) -> st.SearchStrategy[str]:
        return st.lists(children, min_size=n_args, max_size=n_args).map(lambda xs: f"{name}({', '.join(xs)})")

    return st.one_of(
        st.tuples(children, st.sampled_from(BINARY_OPS + COMPARE_OPS + ["and", "or"]), children).map(
            lambda t: f"({t[0]} {t[1]} {t[2]})"),
        st.tuples(st.sampled_from(["-", "+", "not "]), children).map(lambda t: f"({t[0]}{t[1]})"),
        st.tuples(st.sampled_from(UNARY_FUNCTIONS), children).map(lambda t: f"{t[0]}({t[1]})"),
        st.tuples(st.sampled_from(VARIADIC_FUNCTIONS), st.lists(children, min_size=1, max_size=3)).map(
            lambda t: f"{t[0]}({', '.join(t[1])})"),
        call("if", 3),
        call("pow", 2),
        call("round", 2),
        st.tuples(children, st.sampled_from(sorted(METHODS))).map(
            lambda t: f"{t[0]}.{t[1]}({', '.join(['{0}'] * METHODS[t[1]][1])})".format("'a'")),
    )


def wild_expressions() -> st.SearchStrategy[str]:
    """Any combination of the operators and functions: mostly type errors, which both VMs must raise."""
    leaves = st.one_of(st.sampled_from(FIELDS), num_literals, bool_literals, string_literals)
    return st.recursive(leaves, _wild_extend, max_leaves=8)


# ---- comparing results ---------------------------------------------------------------------------


def same_value(x: Any, y: Any) -> bool:
    """None only equals None, a bool only a bool, a str only a str; numbers compare by value (an int may
    equal a float), except that 0.0 and -0.0 differ: str() tells them apart."""
    if x is None or y is None:
        return x is None and y is None
    if isinstance(x, bool) or isinstance(y, bool):
        return isinstance(x, bool) and isinstance(y, bool) and x == y
    if isinstance(x, str) or isinstance(y, str):
        return isinstance(x, str) and isinstance(y, str) and x == y
    if isinstance(x, (int, float)) and isinstance(y, (int, float)):
        if isinstance(x, float) and isinstance(y, float) and x == 0 and y == 0:
            return math.copysign(1, x) == math.copysign(1, y)
        return x == y
    return False


def run_record(code: Any, rows: list[dict[str, Any]]) -> list[Any] | SemanticError:
    values = []
    for row in rows:
        try:
            values.append(vm.eval_record(code, row)["value"])
        except SemanticError as exc:
            return exc
    return values


def run_batch(code: Any, frame: pd.DataFrame) -> list[Any] | SemanticError:
    try:
        result = batch_vm.eval_batch(code, frame, len(frame))
    except SemanticError as exc:
        return exc
    return as_pylist(result["value"], len(frame))


def check_agreement(text: str, frame: pd.DataFrame, rows: list[dict[str, Any]]) -> None:
    try:
        code = compile_expression(text)
    except AmmlError:
        assume(False)
        return
    by_record = run_record(code, rows)
    by_batch = run_batch(code, frame)
    data = {name: [row[name] for row in rows] for name in FIELDS}
    dtypes = {name: str(frame[name].dtype) for name in FIELDS}
    where = f"expression: {text}\ndata: {data}\ndtypes: {dtypes}"
    if isinstance(by_record, SemanticError) or isinstance(by_batch, SemanticError):
        assert isinstance(by_record, SemanticError) and isinstance(by_batch, SemanticError), (
            f"only one VM raised\n{where}\nrecord VM: {by_record!r}\nbatch VM: {by_batch!r}"
        )
        return
    assert len(by_batch) == len(rows), f"{where}\nbatch VM gave {len(by_batch)} values for {len(rows)} rows"
    for i, (r, b) in enumerate(zip(by_record, by_batch)):
        assert same_value(r, b), f"row {i} differs\n{where}\nrecord VM: {by_record!r}\nbatch VM: {by_batch!r}"


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=typed_expression(ANY, FIELDS, ()), table=tables({name: NUMERIC_KINDS for name in FIELDS}))
def test_numeric_columns_agree(text: str, table: tuple[pd.DataFrame, list[dict[str, Any]]]) -> None:
    check_agreement(text, *table)


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    text=typed_expression(ANY, ("a", "b"), ("c",)),
    table=tables({"a": (*NUMERIC_KINDS, "bool"), "b": NUMERIC_KINDS, "c": ("object_str", "pandas_str")}),
)
def test_string_and_bool_columns_agree(text: str, table: tuple[pd.DataFrame, list[dict[str, Any]]]) -> None:
    check_agreement(text, *table)


@settings(max_examples=500, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(text=wild_expressions(), table=tables({name: ALL_KINDS for name in FIELDS}))
def test_ill_typed_expressions_fail_alike(
    text: str, table: tuple[pd.DataFrame, list[dict[str, Any]]]
) -> None:
    check_agreement(text, *table)


# ---- the documented semantics, by example --------------------------------------------------------


def evaluate_both(text: str, data: dict[str, list[Any]]) -> list[Any]:
    """Evaluate on both VMs, check they agree, and return the values (or raise SemanticError)."""
    n = len(next(iter(data.values())))
    rows = [{k: v[i] for k, v in data.items()} for i in range(n)]
    frame = pd.DataFrame(data)
    code = compile_expression(text)
    by_record, by_batch = run_record(code, rows), run_batch(code, frame)
    if isinstance(by_record, SemanticError) or isinstance(by_batch, SemanticError):
        assert isinstance(by_record, SemanticError) and isinstance(by_batch, SemanticError)
        raise by_record
    assert all(same_value(r, b) for r, b in zip(by_record, by_batch, strict=True)), (by_record, by_batch)
    return by_record


def constant(text: str) -> Any:
    return vm.eval_record(compile_expression(text), {})["value"]


def test_division_by_zero_is_null() -> None:
    assert constant("1 / 0") is None
    assert constant("1 % 0") is None
    assert constant("1.5 / 0.0") is None
    assert evaluate_both("a / b", {"a": [1, 0, -1, 6], "b": [0, 0, 0, 3]}) == [None, None, None, 2.0]
    assert evaluate_both("a % b", {"a": [1, 7], "b": [0, 4]}) == [None, 3]


def test_kleene_logic() -> None:
    assert constant("null and false") is False
    assert constant("false and null") is False
    assert constant("true and null") is None
    assert constant("null or true") is True
    assert constant("false or null") is None
    assert constant("not null") is None
    t, f, n = True, False, None
    a = [t, t, t, f, f, f, n, n, n]
    b = [t, f, n, t, f, n, t, f, n]
    frame_a = [1.0 if x else 0.0 if x is False else math.nan for x in a]
    frame_b = [1.0 if x else 0.0 if x is False else math.nan for x in b]
    assert evaluate_both("(a == 1) and (b == 1)", {"a": frame_a, "b": frame_b}) == [t, f, n, f, f, f, n, f, n]
    assert evaluate_both("(a == 1) or (b == 1)", {"a": frame_a, "b": frame_b}) == [t, t, t, t, f, n, t, n, n]


def test_int_overflow_is_null() -> None:
    assert constant("9223372036854775807 + 1") is None
    assert constant("(-9223372036854775807 - 1) - 1") is None
    assert constant("4611686018427387904 * 2") is None
    assert constant("9223372036854775806 + 1") == INT_MAX
    assert evaluate_both("a + 1", {"a": [INT_MAX, 1]}) == [None, 2]
    assert evaluate_both("a * a", {"a": [3037000500, 3037000499]}) == [None, 3037000499**2]
    assert evaluate_both("-a", {"a": [INT_MIN, INT_MAX]}) == [None, -INT_MAX]
    assert evaluate_both("abs(a)", {"a": [INT_MIN, -5]}) == [None, 5]


def test_float_overflow_is_null() -> None:
    assert constant("1e308 * 10") is None
    assert evaluate_both("a * 10", {"a": [1e308, 1.5]}) == [None, 15.0]
    assert evaluate_both("exp(a)", {"a": [1000.0, 0.0]}) == [None, 1.0]


def test_string_plus_number_raises() -> None:
    with pytest.raises(AmmlTypeError, match="cannot apply `\\+` to str and int"):
        compile_expression("'a' + 1")
    with pytest.raises(SemanticError):
        evaluate_both("a + 1", {"a": pd.Series(["a", "b"], dtype=object)})
    with pytest.raises(SemanticError):
        evaluate_both("len(a)", {"a": [3, 4]})


def test_sqrt_and_log_outside_their_domain_are_null() -> None:
    assert constant("sqrt(-1)") is None
    assert constant("log(0)") is None
    assert evaluate_both("sqrt(a)", {"a": [-1.0, 4.0, math.nan]}) == [None, 2.0, None]
    assert evaluate_both("log(a)", {"a": [0, -3, 1]}) == [None, None, 0.0]


def test_nulls_propagate_but_not_through_null_aware_functions() -> None:
    data = {"a": [math.nan, 2.0]}
    assert evaluate_both("a + 1", data) == [None, 3.0]
    assert evaluate_both("a < 1", data) == [None, False]
    assert evaluate_both("coalesce(a, 0)", data) == [0, 2.0]
    assert evaluate_both("is_null(a)", data) == [True, False]
    assert evaluate_both("if(a > 1, 'big', 'small')", data) == ["small", "big"]


def test_methods_are_the_whitelisted_ones() -> None:
    assert set(METHODS) >= {"lower", "upper", "contains"}
    data = {"a": pd.Series(["AbC", None, "xyz"], dtype=object)}
    assert evaluate_both("a.lower()", data) == ["abc", None, "xyz"]
    assert evaluate_both("a.upper().contains('X')", data) == [False, None, True]


# ---- regressions: disagreements the property tests found -----------------------------------------


def test_a_type_error_a_record_skips_is_no_error() -> None:
    """`and`/`or` skip their right side per record; the batch evaluates it for all, and must not fail."""
    data = {"a": [0, 1], "c": pd.Series(["x", None], dtype=object)}
    assert evaluate_both("(a > 0) and (c + 1 > 0)", data) == [False, None]
    assert evaluate_both("(a == 0) or (c + 1 > 0)", data) == [True, None]
    with pytest.raises(SemanticError):
        evaluate_both("(a >= 0) and (c + 1 > 0)", data)  # row 0 meets 'x' + 1


def test_an_empty_batch_never_raises() -> None:
    frame = pd.DataFrame({"a": pd.Series([], dtype=np.int64)})
    code = compile_expression("if(1, 0, a).replace('a', 'b')")
    assert as_pylist(batch_vm.eval_batch(code, frame)["value"], 0) == []


def test_mixed_columns_keep_each_value_type() -> None:
    data = {"a": [0, 1, 3037000500]}
    assert evaluate_both("str(if(a > 0, 1, 2.5))", data) == ["2.5", "1", "1"]
    assert evaluate_both("str(coalesce(a * a, 0.5))", data) == ["0", "1", "0.5"]
    assert evaluate_both("str(if(a > 0, a > 1, 1))", data) == ["1", "false", "true"]
    big = {"a": [2**62 + 1, INT_MAX]}  # a + 1 overflows in row 2: the column holds an int and a float
    assert evaluate_both("coalesce(a + 1, 0.5) - a", big) == [1, 0.5 - INT_MAX]


def test_infinite_inputs_are_null() -> None:
    assert evaluate_both("is_null(a)", {"a": [math.inf, -math.inf, 1.0]}) == [True, True, False]


def test_min_and_max_keep_the_first_of_equal_values() -> None:
    assert evaluate_both("str(min(a, -a))", {"a": [0.0, 1.0]}) == ["0.0", "-1.0"]
    assert evaluate_both("str(max(-a, a))", {"a": [0.0, 1.0]}) == ["-0.0", "1.0"]


def test_power_is_bit_for_bit_the_same() -> None:
    """numpy special-cases scalar exponents 2, 0.5 and -1; both VMs must use the same routine."""
    data = {"a": [19.0, 3.0, 7.1], "b": [0.5, 2.0, -1.0]}
    by_column = evaluate_both("a ** b", data)
    assert evaluate_both("pow(a, b)", data) == by_column
    assert [evaluate_both(f"a ** {e}", {"a": [x]})[0] for x, e in zip(data["a"], data["b"])] == by_column
    assert [constant(f"{x} ** {e}") for x, e in zip(data["a"], data["b"])] == by_column


def test_round_with_any_number_of_digits() -> None:
    assert evaluate_both("round(a, 99999999999)", {"a": [1.5, 0.0]}) == [None, None]
    assert evaluate_both("round(a, -99999999999)", {"a": [1.5, 0.0]}) == [None, None]
    assert evaluate_both("round(a, 1)", {"a": [1.25, 2.0]}) == [1.2, 2.0]


def test_literals_beyond_64_bits_are_refused() -> None:
    with pytest.raises(AmmlError, match="64-bit float"):
        compile_expression("1e400")
    with pytest.raises(AmmlError, match="does not fit in 64 bits"):
        compile_expression("9" * 5000)
