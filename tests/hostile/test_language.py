"""Hostile input to the language: huge strings, deep nesting, odd encodings, oversized pipelines.

Every case must end in an AmmlError at the right file:line:column (or, at run time, a PipelineError naming
the component and the record), quickly and in bounded memory: never a traceback, a RecursionError, or a
gigabyte of anything.
"""

from __future__ import annotations

import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import compiler
from airflow_amml.runtime import batch_vm
from compiler import vm
from compiler.checker import (
    MAX_COMPONENTS_PER_FILE,
    MAX_COMPONENTS_PER_PIPELINE,
    MAX_PARAMS_PER_COMPONENT,
    MAX_PIPELINES_PER_FILE,
    MAX_STATEMENTS_PER_PIPELINE,
)
from compiler.errors import AmmlCompileErrors, AmmlError, AmmlLimitError, AmmlSyntaxError
from compiler.expressions import compile_expression
from compiler.parser import MAX_DEPTH, MAX_ITEMS, MAX_NESTING
from compiler.semantics import MAX_STRING, SemanticError, StringLimitError

ROOT = Path(__file__).resolve().parents[2]
FILE = "hostile.amml"


def compile_text(text: str) -> compiler.Program:
    return compiler.compile_source(text, FILE, cache=compiler.ProgramCache())


def compile_error(text: str) -> AmmlError:
    with pytest.raises(AmmlError) as info:
        compile_text(text)
    return info.value


def derive(expression: str) -> str:
    return f"source id='ett' | derive x={expression} | print"


def peak_memory(fn) -> int:
    """Bytes allocated at the peak while ``fn`` ran (it may raise)."""
    tracemalloc.start()
    try:
        fn()
    except Exception:  # the caller checks the outcome separately
        pass
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return peak


# ---- 1. strings are bounded: constant folding, record VM, batch VM --------------------------------

NINE_REPLACES = "'a'" + ".replace('a', 'aaaaaaaaaa')" * 9  # the 309-byte file that built 10^9 characters


def test_chained_replace_is_refused_at_compile_time_without_building_it() -> None:
    text = derive(NINE_REPLACES)
    assert peak_memory(lambda: compile_text(text)) < 20_000_000
    error = compile_error(text)
    assert isinstance(error, AmmlLimitError)
    # the fifth .replace would make 100,000 characters: the error points at it
    assert (error.line, error.column) == (1, text.index("replace") + 1 + 4 * len(".replace('a', 'aaaaaaaaaa')"))
    assert f"limited to {MAX_STRING}" in str(error) and f"{FILE}:1:" in str(error)


@pytest.mark.parametrize(
    "expression",
    [
        f"'{'x' * (MAX_STRING // 2 + 1)}' + '{'y' * (MAX_STRING // 2 + 1)}'",
        f"upper('{'ß' * (MAX_STRING // 2 + 1)}')",  # ß → SS: twice as long
        f"'{'ß' * (MAX_STRING // 2 + 1)}'.upper()",
        f"'{'x' * (MAX_STRING + 1)}'",  # a literal over the limit
        f"'{'x' * 300}'.replace('', '{'y' * 300}')",
    ],
    ids=["concatenation", "upper", "upper-method", "literal", "replace-empty"],
)
def test_string_constants_over_the_limit_are_limit_errors(expression: str) -> None:
    error = compile_error(derive(expression))
    assert isinstance(error, AmmlLimitError), error
    assert error.line == 1 and error.column is not None and error.column >= 28


def test_strings_up_to_the_limit_are_fine() -> None:
    half = "x" * (MAX_STRING // 2)
    program = compile_text(derive(f"'{half}' + '{half}'"))
    assert len(program.pipelines[0].callbacks[1].static_values["x"]) == MAX_STRING


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("a + a", "x" * (MAX_STRING // 2 + 1)),
        ("a.replace('x', 'xxxxxxxxxx')", "x" * 10_000),
        ("a.replace('', '-')", "x" * MAX_STRING),
        ("a.lower()", "X" * (MAX_STRING + 1)),
        ("upper(a)", "ß" * (MAX_STRING // 2 + 1)),
    ],
    ids=["plus", "replace", "replace-empty", "lower", "upper"],
)
def test_run_time_strings_over_the_limit_fail_alike_in_both_vms(expression: str, value: str) -> None:
    code = compile_expression(expression)
    with pytest.raises(StringLimitError):
        vm.eval_record(code, {"a": value})
    frame = pd.DataFrame({"a": pd.Series(["ok", value, "fine"], dtype=object)})
    with pytest.raises(batch_vm.RecordError) as info:
        batch_vm.eval_batch(code, frame, len(frame))
    assert info.value.row == 1 and isinstance(info.value.cause, StringLimitError)
    assert batch_vm.eval_batch(code, frame.iloc[[0, 2]], 2)  # the short ones alone are fine


def test_a_replace_at_run_time_is_refused_before_the_string_is_built() -> None:
    code = compile_expression("a.replace('a', '" + "b" * 1000 + "')")
    value = "a" * 60_000  # the result would be 60 million characters
    assert peak_memory(lambda: vm.eval_record(code, {"a": value})) < 5_000_000
    frame = pd.DataFrame({"a": pd.Series([value] * 4, dtype=object)})
    assert peak_memory(lambda: batch_vm.eval_batch(code, frame, len(frame))) < 5_000_000


# ---- 2. nesting: brackets in comments and strings, real positions, no RecursionError ---------------


def test_brackets_in_comments_and_strings_do_not_count() -> None:
    compile_text("# note (see\n" * (MAX_NESTING + 1) + "source id='ett' | print")
    compile_text(derive("'" + "(" * 100 + "' + \"" + "[" * 100 + '"'))
    compile_text(derive(f"`{'(' * 100}`"))


def test_brackets_in_code_still_count_at_the_bracket() -> None:
    text = derive("(" * (MAX_NESTING + 1) + "1" + ")" * (MAX_NESTING + 1))
    error = compile_error(text)
    assert "brackets nested" in error.message
    assert (error.line, error.column) == (1, text.index("(") + MAX_NESTING + 1)


@pytest.mark.parametrize(
    ("expression", "operator"),
    [
        ("- " * 2000 + "OT", "-"),
        ("not " * 2000 + "OT", "not"),
        ("+-" * 1000 + "1", "+"),
        ("OT + " * 2000 + "OT", "+"),
        (" and ".join(["OT"] * 2000), "and"),
        ("OT" + ".lower()" * 2000, "lower"),
        ("2 ** " * 2000 + "2", "**"),
    ],
    ids=["minus", "not", "signs", "plus-chain", "and-chain", "method-chain", "power-chain"],
)
def test_deep_expressions_are_limit_errors_at_a_real_position(expression: str, operator: str) -> None:
    text = "\n\n" + derive(expression)
    error = compile_error(text)
    assert isinstance(error, AmmlLimitError) and "nested more than" in error.message
    assert error.line == 3 and error.column > 1  # not 1:1
    token = text.split("\n")[2][error.column - 1 :]
    assert token.startswith((operator, "OT", "-", "2")), token[:20]  # an operator or an operand


def test_expressions_up_to_the_depth_limit_compile_and_print() -> None:
    for expression in [
        "- " * (MAX_DEPTH - 1) + "OT",
        "OT + " * (MAX_DEPTH - 1) + "OT",
        "OT" + ".lower()" * (MAX_DEPTH - 1),
        "abs(" * 63 + "-" * (MAX_DEPTH - 64) + "OT" + ")" * 63,
    ]:
        compile_text(derive(expression))
        for item in compiler.parse_source(derive(expression)).items:
            assert repr(item)  # the AST printer (`amml compile --emit ast`) recurses too


def test_emit_ast_of_deep_input_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    deep = tmp_path / "deep.amml"
    deep.write_text(derive("- " * 5000 + "OT") + "\n", encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "airflow_amml.cli", "compile", str(deep), "--emit", "ast"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and "RecursionError" not in result.stderr
    assert f"{deep}:1:" in result.stderr and "nested more than" in result.stderr


def test_a_long_chain_of_flows_needs_no_recursion() -> None:
    lines = ["f0 = source id='ett'", *(f"f{i} = f{i - 1}" for i in range(1, 200)), "f199 | print"]
    compile_text("\n".join(lines))
    cycle = [f"f{i} = f{(i + 1) % 200}" for i in range(200)]
    assert "cycle" in compile_error("\n".join(cycle)).message


def test_errors_on_a_huge_line_show_an_excerpt_around_the_caret() -> None:
    derives = " | ".join("derive " + ", ".join(f"x{i}=nosuch{i}()" for i in range(250)) for _ in range(60))
    text = f"source id='ett' | {derives} | print"  # 15,000 errors on a line of 400,000 characters
    error = compile_error(text)
    rendered = str(error)
    assert len(rendered) < 100_000, len(rendered)
    assert isinstance(error, AmmlCompileErrors)
    for e in error.errors[:100]:
        source_line, caret_line = e.context().split("\n")
        column = caret_line.index("^") - caret_line.index("|") - 2  # 0-based within the excerpt
        shown = source_line[source_line.index("|") + 2 :]
        assert len(shown) <= 2 * 60 + 2
        assert shown[column] == text[e.column - 1], (e.column, shown)


def test_an_excerpt_keeps_short_lines_and_tabs_as_they_are() -> None:
    error = compile_error("source id='ett'\t| nosuch | print")
    assert error.context().split("\n") == ["   1 | source id='ett' | nosuch | print", "     | " + " " * 18 + "^"]


# ---- 3. a byte-order mark is not a syntax error ----------------------------------------------------


def test_a_byte_order_mark_is_accepted_and_columns_stay_right(tmp_path: Path) -> None:
    path = tmp_path / "bom.amml"
    path.write_bytes(b"\xef\xbb\xbf" + b"source id='ett' | print\n")
    assert compiler.compile_file(path, cache=compiler.ProgramCache()).pipelines[0].name == "main"
    error = compile_error("\ufeffsource id='ett' | nosuch | print")
    assert (error.line, error.column) == (1, 19)
    assert error.context().split("\n")[0] == "   1 | source id='ett' | nosuch | print"
    assert compiler.parse_source("\ufeffsource id='ett' | print").items


# ---- 4. escapes that give no character -------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        derive("'\\ud800'"),
        derive("'ok' + \"\\udfff\""),
        derive("'\\U0000dc00'"),
        "source id='\\ud83d' | print",
        "dag d { params = {'\\ud800': 1} }\nsource id='ett' | print",
    ],
    ids=["high", "low", "long-escape", "parameter", "dict-key"],
)
def test_lone_surrogate_escapes_are_syntax_errors_with_a_position(text: str) -> None:
    error = compile_error(text)
    assert isinstance(error, AmmlSyntaxError) and "surrogate" in error.message
    assert error.line is not None and error.column is not None
    str(error).encode("utf-8")  # the message itself is text


def test_escapes_giving_real_characters_are_fine_and_cacheable(tmp_path: Path) -> None:
    text = derive("'\\ud83d\\ude00' + '\\U0001f600' + '\\N{DEGREE SIGN}'")
    with pytest.raises(AmmlSyntaxError):  # a surrogate pair written as two escapes is still two surrogates
        compile_text(text)
    program = compile_text(derive("'\\U0001f600' + '\\N{DEGREE SIGN}' + '\\xe9'"))
    cache = compiler.ProgramCache(tmp_path)
    cache.put("k", program)
    assert compiler.ProgramCache(tmp_path).get("k").to_json() == program.to_json()


# ---- 5. a type error at run time names the component and the record --------------------------------


def test_a_type_error_names_the_record_in_the_stream() -> None:
    from airflow_amml.run_config import RunConfig
    from airflow_amml.runtime.errors import PipelineError
    from airflow_amml.runtime.executor import run_pipeline

    count, seed = 300, 7
    values = np.random.default_rng(seed).normal(0, 1, count)
    first = int(np.flatnonzero(values > 2)[0])  # beyond the first batch of 10
    assert first >= 10
    program = compile_text(
        f"normalsource col='val1', count={count}, seed={seed} "
        "| derive s=if(val1 > 2, 'pos', 1) | derive t=s + 1 | print"
    )
    with pytest.raises(PipelineError) as info:
        run_pipeline(program.pipelines[0], mode="single", config=RunConfig.from_environment(batch_rows=10))
    message = info.value.message
    assert "`derive`" in message and "cannot apply `+` to str and int" in message
    assert f"record {first}" in message and "s='pos'" in message


def test_a_filter_on_a_string_names_the_record() -> None:
    from airflow_amml.components.progress import Filter
    from airflow_amml.runtime.component import ComponentContext

    program = compile_text("source id='ett' | filter cond=name | print")
    stage = compiler.build_graph(program.pipelines[0]).nodes[1]
    component = Filter(compiler.default_registry().get("filter"), stage.callback, ComponentContext())
    batch = pd.DataFrame({"name": [1, 0, "x"]}, index=pd.RangeIndex(500, 503))
    with pytest.raises(SemanticError, match="record 502"):
        component.process(batch)


# ---- 6. pipelines, files, parameters and lists are bounded -----------------------------------------


def test_components_per_pipeline_are_limited_at_the_first_one_too_many() -> None:
    fits = "source id='ett'" + " | minmax_scaler" * (MAX_COMPONENTS_PER_PIPELINE - 2) + " | print"
    compile_text(fits)
    text = "source id='ett'" + " | minmax_scaler" * 10_000 + " | print"
    error = compile_error(text)
    assert isinstance(error, AmmlLimitError) and f"more than {MAX_COMPONENTS_PER_PIPELINE} components" in error.message
    # the source is the first component: the 65th is the 64th minmax_scaler
    assert error.column == len("source id='ett'") + (MAX_COMPONENTS_PER_PIPELINE - 1) * len(" | minmax_scaler") + 4
    assert "pipeline" in error.hint and "process" in error.hint


def test_components_per_file_and_pipelines_per_file_are_limited() -> None:
    per = MAX_COMPONENTS_PER_PIPELINE
    block = "source id='ett'" + " | minmax_scaler" * (per - 2) + " | print"
    many_components = "\n".join(f"pipeline p{i} {{ {block} }}" for i in range(MAX_COMPONENTS_PER_FILE // per + 1))
    error = compile_error(many_components)
    assert f"more than {MAX_COMPONENTS_PER_FILE} components" in error.message
    assert error.line == MAX_COMPONENTS_PER_FILE // per + 1
    many_pipelines = "\n".join(
        f"pipeline p{i} {{ source id='ett' | print }}" for i in range(MAX_PIPELINES_PER_FILE + 50)
    )
    error = compile_error(many_pipelines + "\npipeline last after p100 { source id='ett' | print }")
    assert isinstance(error, AmmlLimitError) and error.line == MAX_PIPELINES_PER_FILE + 1  # one error, not 51


def test_statements_parameters_and_lists_are_limited() -> None:
    flows = [
        "f0 = source id='ett'",
        *(f"f{i} = f{i - 1}" for i in range(1, MAX_STATEMENTS_PER_PIPELINE + 5)),
        f"f{MAX_STATEMENTS_PER_PIPELINE + 4} | print",
    ]
    error = compile_error("\n".join(flows))
    assert "statements" in error.message and error.line == MAX_STATEMENTS_PER_PIPELINE + 1
    params = ", ".join(f"c{i}=1" for i in range(MAX_PARAMS_PER_COMPONENT + 1))
    error = compile_error(f"source id='ett' | derive {params} | print")
    assert "parameters" in error.message and error.column == f"source id='ett' | derive {params}".rindex("c") + 1
    items = ", ".join(["'a'"] * (MAX_ITEMS + 1))
    error = compile_error(f"source id='ett' | select cols=[{items}] | print")
    assert f"more than {MAX_ITEMS}" in error.message
    assert error.column == len("source id='ett' | select cols=[") + MAX_ITEMS * len("'a', ") + 1


def test_the_shipped_files_fit_the_limits() -> None:
    for path in [*sorted((ROOT / "dags").glob("*.amml")), *sorted((ROOT / "tests/fixtures").rglob("*.amml"))]:
        compiler.compile_file(path, cache=compiler.ProgramCache())


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("normalsource col='v' | csv_sink path='evil.py'", "a .csv file is expected, not 'evil.py'"),
        ("normalsource col='v' | parquet_sink path='x.csv'", "a .parquet file is expected"),
        ("normalsource col='v' | sql_sink table='amml_model_versions'", "are AMML's own tables"),
        ("normalsource col='v' | sql_sink table='a; drop table b'", "a table name is a letter or `_`"),
        ("normalsource col='v' | snapshot table='x y'", "a table name is a letter"),
        ("logsource path='a.log', format='regex', pattern='(a)\\\\1' | print", "not a pattern RE2 accepts"),
        ("logsource path='a.log', format='regex', pattern='a+' | print", "the pattern has no named groups"),
    ],
)
def test_constant_values_the_run_would_refuse_are_lint_errors(text, words):
    """Lint says now what the run would say later: the same rules (compiler/value_checks.py) at both ends."""
    with pytest.raises(AmmlError) as info:
        compiler.compile_source(text, "p.amml", cache=compiler.ProgramCache())
    assert words in str(info.value) and info.value.hint, str(info.value)


def test_constant_values_the_run_accepts_pass_lint():
    for text in (
        "normalsource col='v' | csv_sink path='out/x.CSV'",
        "normalsource col='v' | snapshot",
        "logsource path='a.log', format='regex', pattern='(?P<level>\\\\w+) (?P<msg>.*)' | print",
    ):
        compiler.compile_source(text, "p.amml", cache=compiler.ProgramCache())


# ---- fan-out: what a file (or its data) can make a fanned-out pipeline do ----------------------------------


def test_a_huge_item_list_is_refused_at_parse_time_in_bounded_memory() -> None:
    items = ", ".join(f"{i}" for i in range(MAX_ITEMS + 500))
    text = f"pipeline p for s in [{items}] {{ source id=s | print }}"
    assert peak_memory(lambda: compile_text(text)) < 100_000_000
    error = compile_error(text)
    assert isinstance(error, AmmlLimitError) and f"more than {MAX_ITEMS} values in one list" in error.message


def test_a_loop_variable_shadowing_a_param_and_a_glob_that_is_code_are_refused() -> None:
    error = compile_error('dag d { params = {id: "ett"} }\npipeline p for id in ["a"] { source id=id | print }')
    assert (error.line, error.column) == (2, 16) and "has the name of a run parameter" in error.message
    error = compile_error('pipeline p for s in catalog(__import__("os")) { source id=s | print }')
    assert error.line == 1 and "Traceback" not in str(error)


def test_an_items_sink_refuses_more_than_1024_distinct_values_naming_the_count(tmp_path) -> None:
    from airflow_amml.run import run_program
    from airflow_amml.run_config import RunConfig
    from airflow_amml.runtime.errors import PipelineError

    program = compile_text('normalsource col="v", count=5000 | items column="v"')
    with pytest.raises(PipelineError, match=r"more than 1024 distinct values \(1025 so far\)"):
        run_program(program, config=RunConfig(home=tmp_path), mode="single", items_out={})


@pytest.mark.parametrize(
    "values",
    [
        pd.array(["a", None, "b", "a"], dtype="string"),
        pd.array([3, None, 4, 3], dtype="Int64"),
        [1.5, float("nan"), 2.5, 1.5],
        pd.to_datetime(["2024-01-01", None, "2024-01-02", "2024-01-01"]),
    ],
    ids=["string-with-NA", "Int64-with-NA", "float-with-NaN", "datetime-with-NaT"],
)
def test_an_items_sink_skips_missing_values_whatever_their_dtype(values) -> None:
    from airflow_amml.components.items import Items
    from airflow_amml.runtime.component import ComponentContext

    program = compile_text('normalsource col="v", count=1 | items column="v"')
    stage = compiler.build_graph(program.pipelines[0]).nodes[1]
    sink = Items(compiler.default_registry().get("items"), stage.callback, ComponentContext())
    sink.params = {"column": "v"}
    sink.open()
    sink.write(pd.DataFrame({"v": values}))
    got = list(sink.seen)
    assert len(got) == 2 and not any(str(item) in ("<NA>", "nan", "NaT", "None") for item in got), got
    assert all(isinstance(item, str | int | float) and not isinstance(item, bool) for item in got), got
    if str(pd.Series(values).dtype) == "Int64":
        assert got == [3, 4] and all(type(item) is int for item in got)


def test_an_items_sink_refuses_an_infinite_value() -> None:
    from airflow_amml.components.items import item_value
    from airflow_amml.runtime.errors import PipelineError

    with pytest.raises(PipelineError, match="inf is not an item"):
        item_value(float("inf"))
