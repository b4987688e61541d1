"""Fan-out in the language: `pipeline NAME for VAR in ITEMS { ... }` compiles to a pipeline that carries its
`foreach`, reads the item as a run parameter where a parameter value is exactly the loop variable, and every
mistake is an error at file:line:column with a hint."""

from __future__ import annotations

import pytest

from compiler import ProgramCache, build_graph, compile_source, disassemble
from compiler.bytecode import ForEach, Program
from compiler.errors import AmmlCompileErrors, AmmlError
from compiler.vm import eval_static

FILE = "fan.amml"


def compile_text(text: str) -> Program:
    return compile_source(text, FILE, cache=ProgramCache())


def errors_of(text: str) -> list[AmmlError]:
    with pytest.raises(AmmlError) as info:
        compile_text(text)
    error = info.value
    return list(error.errors) if isinstance(error, AmmlCompileErrors) else [error]


def only_error(text: str) -> AmmlError:
    [error] = errors_of(text)
    return error


FIND = 'pipeline find { normalsource col="v", count=5 | derive name="s" + str(v > 0) | items column="name" }\n'


def test_each_kind_of_items_compiles_to_its_foreach():
    program = compile_text(
        'dag fan { params = {cols: ["a", "b"]}; map_concurrency = 2; max_processes = 3 }\n'
        + FIND
        + 'pipeline lit for c in ["x", "y"] { normalsource col=c | print limit=0 }\n'
        'pipeline num for n in [2, 3] { normalsource col="v", count=n | print limit=0 }\n'
        'pipeline par for c in params.cols after lit { normalsource col=c | print limit=0 }\n'
        'pipeline cat for s in catalog("nab/realKnownCause/*") { source id=s | print limit=0 }\n'
        "pipeline up for c in find.name { normalsource col=c | print limit=0 }\n"
    )
    loops = {p.name: p.foreach for p in program.pipelines}
    assert loops == {
        "find": None,
        "lit": ForEach("c", "list", ("x", "y")),
        "num": ForEach("n", "list", (2, 3)),
        "par": ForEach("c", "param", "cols"),
        "cat": ForEach("s", "catalog", "nab/realKnownCause/*"),
        "up": ForEach("c", "pipeline", ("find", "name")),
    }
    assert program.pipeline("up").after == ("find",), "a fan-out over a pipeline's items runs after it"
    assert program.pipeline("par").after == ("lit",)
    assert program.dag["map_concurrency"] == 2 and program.dag["max_processes"] == 3
    # the serialised form keeps it (the compile cache and the loader read programs back)
    assert Program.from_json(program.to_json()) == program
    assert "; pipeline cat for s in catalog(\"nab/realKnownCause/*\")" in disassemble(program)


def test_the_bare_loop_variable_is_the_item_and_is_shown_as_written():
    program = compile_text('pipeline p for series in ["nab/a", "nab/b"] { source id=series | print limit=0 }')
    source = build_graph(program.pipeline("p")).nodes[0]
    assert source.parameters == [("id", "series")], "the docs and graph show what the file says"
    assert source.callback.params == ("series",), "read as a run parameter of the loop variable's name"
    assert eval_static(source.callback, {"series": "nab/b"}) == {"id": "nab/b"}


def test_a_pipeline_without_for_is_unchanged():
    program = compile_text('source id="ett" | print limit=0')
    assert program.pipelines[0].foreach is None
    assert "foreach" not in program.to_json()


def test_for_and_in_still_name_columns_in_expressions():
    program = compile_text('pipeline p for x in ["a"] { normalsource col=x | filter cond=`in` > 0 or for < 1 '
                           '| print limit=0 }')
    assert build_graph(program.pipeline("p")).nodes[1].callback.fields == ("in", "for")


@pytest.mark.parametrize(
    ("text", "where", "message", "hint"),
    [
        pytest.param('dag d { params = {series: "x"} }\npipeline p for series in ["a"] { source id=series | print }',
                     (2, 16), "the loop variable `series` has the name of a run parameter", "rename one",
                     id="shadows-a-param"),
        pytest.param('pipeline p for s in nope.col { source id=s | print }', (1, 21),
                     "there is no other pipeline `nope`", "ends with `| items", id="unknown-upstream"),
        pytest.param('pipeline a { source id="ett" | print }\npipeline p for s in a.OT { source id=s | print }',
                     (2, 21), "pipeline `a` must end with `| items column=\"OT\"`; it has no `items` sink",
                     'end a pipe of `a` with `| items column="OT"`', id="upstream-without-items"),
        pytest.param(FIND + 'pipeline p for s in find.other { normalsource col=s | print }', (2, 21),
                     "its `items` sink collects `name`", 'items column="other"', id="upstream-other-column"),
        pytest.param('pipeline p for s in catalog() { source id=s | print }', (1, 21),
                     "`catalog(...)` takes one string", 'catalog("nab/realKnownCause/*")', id="catalog-no-string"),
        pytest.param('pipeline p for s in catalog("a", "b") { source id=s | print }', (1, 21),
                     "`catalog(...)` takes one string", "`*` any text", id="catalog-two-strings"),
        pytest.param('pipeline p for s in catalog(3) { source id=s | print }', (1, 21),
                     "`catalog(...)` takes one string", "`*` any text", id="catalog-number"),
        pytest.param('dag d { params = {ids: "a"} }\npipeline p for s in params.ids { source id=s | print }',
                     (2, 21), "`params.ids` must default to a non-empty list", "params = {ids: [", id="param-not-list"),
        pytest.param('dag d { params = {ids: []} }\npipeline p for s in params.ids { source id=s | print }',
                     (2, 21), "must default to a non-empty list", "params = {ids: [", id="param-empty-list"),
        pytest.param('pipeline p for s in params.ids { source id=s | print }', (1, 21),
                     "run parameter `params.ids` is not declared", "declare it", id="param-undeclared"),
        pytest.param('pipeline p for s in [] { source id=s | print }', (1, 21), "the list of items is empty",
                     "at least one item", id="empty-list"),
        pytest.param('pipeline p for s in ["a", true] { source id=s | print }', (1, 27),
                     "an item must be a string or a number", "e.g.", id="bool-item"),
        pytest.param('pipeline p for s in ["a"] { source id="ett" | print }', (1, 16),
                     "no parameter uses `s`", "source id=s", id="loop-variable-unused"),
        pytest.param('pipeline p for s in ["a"] { source id=s | filter cond=s > 1 | print }', (1, 55),
                     "`s` in `cond=` of `filter` is a record column here, not the loop variable",
                     "params.NAME", id="loop-variable-in-callback"),
        pytest.param('pipeline p for n in [2, "two"] { normalsource col="v", count=n | print }', (1, 62),
                     "parameter `count` of `normalsource` (the item `n`) must be int; got str 'two'", "count=20",
                     id="item-of-the-wrong-type"),
        pytest.param('dag d { params = {ns: [1, 2.5]} }\npipeline p for n in params.ns { normalsource col="v", '
                     'count=n | print }', (2, 61), "must be int; got float 2.5", None, id="default-item-wrong-type"),
        pytest.param('pipeline p for s in catalog("nab/*") { normalsource col="v", count=s | print }', (1, 68),
                     "catalog ids are strings", "source id=s", id="catalog-item-to-a-number"),
        pytest.param('pipeline p for s in 3 { source id=s | print }', (1, 21),
                     "a fanned-out pipeline iterates over a list", "catalog(", id="items-not-a-kind"),
        pytest.param('pipeline p for join in ["a"] { source id=join | print }', (1, 16),
                     "`join` is a keyword", "for series in", id="keyword-variable"),
        pytest.param('dag d { map_concurrency = 2 }\nsource id="ett" | print', (1, 9),
                     "`map_concurrency` limits the items of a fanned-out pipeline", "fan a pipeline out",
                     id="map-concurrency-without-fan-out"),
        pytest.param('dag d { map_concurrency = 0 }\npipeline p for s in ["a"] { source id=s | print }', (1, 27),
                     "must be at least 1", None, id="map-concurrency-zero"),
        pytest.param('dag d { max_processes = 100 }\nsource id="ett" | print', (1, 25),
                     "must be at most 64", None, id="max-processes-too-many"),
        pytest.param(FIND + 'pipeline f2 { normalsource col="v" | items column="v"\n'
                     'normalsource col="w" | items column="w" }', (3, 24), "more than one `items` sink",
                     "keep one", id="two-items-sinks"),
        pytest.param('pipeline p for s in params.x { source id=s | print }\npipeline p_items { source id="ett" '
                     '| print }', (1, 21), "needs the task `p_items`", "rename", id="items-task-id-taken"),
        pytest.param('pipeline p for s in ["a", "b", "a"] { source id=s | print }', (1, 32),
                     "the item 'a' is in the list twice", "name each item once", id="item-twice"),
        pytest.param('pipeline p for n in [1, "1"] { normalsource col="v", count=n | print }', (1, 25),
                     "the item '1' is in the list twice", "kept by item", id="same-text-twice"),
        pytest.param('dag d { params = {ids: ["a", "a"]} }\npipeline p for s in params.ids { source id=s | print }',
                     (2, 21), "defaults to a list holding 'a' twice", "name each item once", id="default-twice"),
        pytest.param(f'pipeline p for {"v" * 41} in ["a"] {{ source id={"v" * 41} | print }}', (1, 16),
                     "has 41 characters; at most 40", "a short name", id="loop-variable-too-long"),
        pytest.param('dag d { params = {__amml_items_file: "/tmp/x"} }\nsource id="ett" | print', (1, 18),
                     "names starting with `__` are reserved for AMML", "rename it", id="reserved-param-name"),
        pytest.param(FIND + 'pipeline q for s in find.name { normalsource col=s | items column="v" }\n'
                     'pipeline r for t in q.v { normalsource col=t | print }', (3, 21),
                     "pipeline `q` is fanned out itself", "fan out over", id="upstream-fanned-out"),
    ],
)
def test_every_fan_out_mistake_is_an_error_at_its_position(text, where, message, hint):
    matching = [e for e in errors_of(text) if message in e.message]
    assert matching, [str(e) for e in errors_of(text)]
    error = matching[0]
    assert (error.line, error.column) == where, str(error)
    assert f"{FILE}:{where[0]}:{where[1]}:" in str(error)
    if hint is not None:
        assert hint in (error.hint or ""), str(error)


def test_a_list_over_the_limit_is_refused_at_the_first_item_too_many():
    items = ", ".join(f'"s{i}"' for i in range(1025))
    error = only_error(f"pipeline p for s in [{items}] {{ source id=s | print }}")
    assert "1025 items; a fanned-out pipeline runs for at most 1024" in error.message
    assert error.column == 22 + sum(len(f'"s{i}", ') for i in range(1024))
    assert compile_text(f"pipeline p for s in [{items.rsplit(', ', 1)[0]}] {{ source id=s | print }}")


def test_a_param_default_over_the_limit_is_refused():
    items = ", ".join(f'"s{i}"' for i in range(1025))
    error = only_error(f"dag d {{ params = {{ids: [{items}]}} }}\npipeline p for s in params.ids "
                       "{ source id=s | print }")
    assert "defaults to 1025 items" in error.message and (error.line, error.column) == (2, 21)
