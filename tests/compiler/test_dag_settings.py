"""The dag block's `on_empty` and `param_descriptions` settings, mappings over several lines, and the parameter
texts graph labels show (decompiled from the callback bytecode)."""

import pytest

from compiler import build_graph, compile_source
from compiler.errors import AmmlCompileErrors, SourceError
from compiler.workflow import parameter_texts

from .test_cli import amml

DESCRIBED = """\
dag hot_days {
    params = {threshold: 30, source: "ett"}
    param_descriptions = {  # one entry a line
        threshold: "hours above this °C are kept",

        source: "the data set",  # a trailing comma and a comment
    }
    on_empty = "fail"
}
source id=params.source | filter cond=OT > params.threshold | print
"""


def errors_of(text):
    with pytest.raises(SourceError) as caught:
        compile_source(text, "f.amml")
    error = caught.value
    return error.errors if isinstance(error, AmmlCompileErrors) else [error]


def test_param_descriptions_and_on_empty_compile_into_the_dag_settings():
    dag = compile_source(DESCRIBED, "hot_days.amml").dag
    assert dag["param_descriptions"] == {"threshold": "hours above this °C are kept", "source": "the data set"}
    assert dag["on_empty"] == "fail"
    assert dag["params"] == {"threshold": 30, "source": "ett"}


def test_a_mapping_may_span_lines_but_a_block_still_ends_at_its_brace():
    program = compile_source('dag d {\n  params = {\n    a: 1\n  }\n  retries = 2\n}\nnormalsource | print\n')
    assert program.dag == {"params": {"a": 1}, "retries": 2}
    # an empty mapping over two lines; a one-line block after it
    assert compile_source("dag d { params = {\n} }\nnormalsource | print\n").dag == {"params": {}}
    # outside a mapping, a line break still ends the statement
    program = compile_source('normalsource col="v" | derive w = v\nnormalsource col="x" | print\n')
    assert len(build_graph(program.pipelines[0]).nodes) == 4


def test_bad_settings_are_errors_at_their_position_with_a_hint():
    text = (
        "dag d {\n"
        "    params = {threshold: 30}\n"
        '    param_descriptions = {threshhold: "x", threshold: 3}\n'
        '    on_empty = "fial"\n'
        "}\n"
        "normalsource | print\n"
    )
    unknown, not_text, on_empty = errors_of(text)
    assert (unknown.line, unknown.column) == (3, 39)  # at the entry's value
    assert "describes `threshhold`, which `params` does not declare" in unknown.message
    assert unknown.hint == "did you mean `threshold`?"
    assert (not_text.line, not_text.column) == (3, 55) and "must give `threshold` a text" in not_text.message
    assert (on_empty.line, on_empty.column) == (4, 16)
    assert "must be 'warn' or 'fail'; got 'fial'" in on_empty.message and on_empty.hint == "did you mean `fail`?"


def test_a_description_without_params_says_how_to_declare_it_and_long_ones_are_refused():
    [error] = errors_of('dag d { param_descriptions = {epochs: "training epochs"} }\nnormalsource | print\n')
    assert error.hint == "declare it with its default: params = {epochs: ...}"
    long = "x" * 1001
    [error] = errors_of(f'dag d {{ params = {{a: 1}}; param_descriptions = {{a: "{long}"}} }}\nnormalsource | print\n')
    assert "1001 characters; at most 1000" in error.message


def test_amml_lint_reports_a_bad_setting_with_file_line_and_column(tmp_path):
    bad = tmp_path / "bad.amml"
    bad.write_text('dag bad {\n    on_empty = "never"\n}\nnormalsource | print\n')
    result = amml("lint", bad)
    assert result.returncode == 1
    assert f"{bad}:2:16: type error: dag setting `on_empty` must be 'warn' or 'fail'; got 'never'" in result.stderr
    assert "hint: " in result.stderr


EXPRESSIONS = [
    "OT > 40 and HUFL > 10",
    "-(v + 1) * 2 ** -v",
    "not (v > 1 or v < params.a) and abs(v) > 0",
    "(2 - v) - (3 - v)",
    "2 - (3 - v)",
    "v ** 2 ** 3",
    "(v ** 2) ** 3",
    "name.upper().startswith(\"X\")",
    "`oil temp` / 2 % 3",
    "params.a",
]


@pytest.mark.parametrize("expression", EXPRESSIONS)
def test_a_parameter_text_compiles_back_to_the_same_bytecode(expression):
    """What the graph labels and the docs show is the program that runs: compiling the shown text again gives
    the same instructions (parentheses where precedence needs them, none lost)."""

    def code(text):
        program = compile_source(f"dag d {{ params = {{a: 1}} }}\nnormalsource | derive w = {text} | print\n")
        return build_graph(program.pipelines[0]).nodes[1].callback

    first = code(expression)
    shown = parameter_texts(first)["w"]
    again = code(shown)
    assert (again.instructions, again.consts, again.names) == (first.instructions, first.consts, first.names), shown


def test_parameter_texts_show_constants_as_amml_and_run_parameters_by_name():
    program = compile_source(DESCRIBED, "hot_days.amml")
    source, filt, _ = build_graph(program.pipelines[0]).nodes
    assert parameter_texts(source.callback) == {"id": "params.source"}
    assert parameter_texts(filt.callback) == {"cond": "OT > params.threshold"}
    program = compile_source('normalsource | select cols=["a", "b"] | alert cond=true, message="say \\"hi\\""\n')
    _, select, alert = build_graph(program.pipelines[0]).nodes
    assert select.label == 'select cols=["a", "b"]'
    assert parameter_texts(alert.callback)["message"] == '"say \\"hi\\""'
    assert "<expr>" not in alert.label
