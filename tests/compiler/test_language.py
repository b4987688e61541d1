"""The language as a user writes it: the paper's examples, flows, pipelines, dag blocks."""

from pathlib import Path

import pytest

from compiler import ProgramCache, build_graph, compile_file, compile_source
from compiler.workflow import render_dot, render_mermaid, render_text

FIXTURES = Path(__file__).parent.parent / "fixtures" / "paper"
DAGS = Path(__file__).parent.parent.parent / "dags"


def compile_fresh(text, filename="test.amml"):
    return compile_source(text, filename, cache=ProgramCache())


def components(program, pipeline="main"):
    return [n.component for n in build_graph(program.pipeline(pipeline)).nodes]


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.amml")) + sorted(DAGS.glob("*.amml")), ids=lambda p: p.name)
def test_every_example_compiles(path):
    program = compile_file(path, cache=ProgramCache())
    assert program.pipelines
    for pipeline in program.pipelines:
        graph = build_graph(pipeline)
        assert graph.sources(), "every pipeline starts at an ingress"


def test_paper_filter_example_verbatim():
    program = compile_fresh("normalsource col='val1', mean=0, std=1 | filter cond=val1 > 1 | print")
    assert components(program) == ["normalsource", "filter", "print"]
    normal, flt, _ = build_graph(program.pipelines[0]).nodes
    assert normal.callback.static_values == {"col": "val1", "mean": 0, "std": 1}
    assert flt.callback.fields == ("val1",)
    assert flt.callback.per_record == ("cond",)


def test_paper_training_example_verbatim():
    program = compile_fresh('source id="ett" | minmax_scaler | train_lstm model="ett:0.1", epoch=20 | print')
    nodes = build_graph(program.pipelines[0]).nodes
    assert [n.component for n in nodes] == ["source", "minmax_scaler", "train_lstm", "print"]
    assert nodes[2].callback.static_values == {"model": "ett:0.1", "epoch": 20}
    assert [(a.id, b) for a in nodes for b in a.outputs] == [(0, 1), (1, 2), (2, 3)]


def test_pipe_continues_over_lines_both_ways():
    text = "source id='ett' |\n  minmax_scaler\n  | print"
    assert components(compile_fresh(text)) == ["source", "minmax_scaler", "print"]


def test_join_merges_named_flows():
    program = compile_file(FIXTURES / "fig4_join.amml", cache=ProgramCache())
    graph = build_graph(program.pipelines[0])
    join = next(n for n in graph.nodes if n.component == "join")
    assert [graph.nodes[i].component for i in join.inputs] == ["normalsource"] * 3
    assert [graph.nodes[i].component for i in join.outputs] == ["stats"]


def test_split_and_reuse_feed_several_readers():
    explicit = build_graph(compile_file(FIXTURES / "split.amml", cache=ProgramCache()).pipelines[0])
    split = next(n for n in explicit.nodes if n.component == "split")
    assert sorted(explicit.nodes[i].component for i in split.outputs) == ["csv_sink", "train_lstm"]

    reused = build_graph(compile_fresh("s = source id='ett'\ns | print\ns | csv_sink path='x.csv'").pipelines[0])
    source = reused.nodes[0]
    assert sorted(reused.nodes[i].component for i in source.outputs) == ["csv_sink", "print"]


def test_flows_may_be_used_before_their_definition():
    program = compile_fresh("s | print\ns = source id='ett' | minmax_scaler")
    assert components(program) == ["source", "minmax_scaler", "print"]


def test_pipeline_blocks_and_after():
    program = compile_file(FIXTURES / "pipelines.amml", cache=ProgramCache())
    assert [p.name for p in program.pipelines] == ["prepare", "train"]
    assert program.pipeline("train").after == ("prepare",)


def test_dag_block_settings_and_params():
    program = compile_file(DAGS / "ett_train.amml", cache=ProgramCache())
    assert program.dag_name == "ett_train"
    assert program.dag["params"] == {"epochs": 20, "model": "ett:0.1"}
    assert program.dag["schedule"] is None
    train = build_graph(program.pipelines[0]).nodes[2]
    assert train.callback.params == ("model", "epochs")
    assert train.callback.static_end == len(train.callback.instructions), "run params are static"


def test_dag_block_sets_the_executors_batching():
    from compiler.dag_block import runtime_settings

    program = compile_fresh("dag d { schedule = null; batch_rows = 1000; flush_delay = 0.01 }\nnormalsource | print")
    assert runtime_settings(program.dag) == {"batch_rows": 1000, "flush_delay": 0.01}
    assert runtime_settings(None) == {}


def test_constant_folding_leaves_only_constants():
    program = compile_fresh("source id='e' + 't', limit=2 * 3 + 1 | filter cond=OT > 10 * 2 | print")
    nodes = build_graph(program.pipelines[0]).nodes
    assert nodes[0].callback.static_values == {"id": "et", "limit": 7}
    assert 20 in nodes[1].callback.consts and 10 not in nodes[1].callback.consts


def test_quoted_field_names_and_keywords():
    program = compile_fresh("source id='x' | filter cond=`oil temp` > 1 and `join` == 2 | print")
    assert build_graph(program.pipelines[0]).nodes[1].callback.fields == ("oil temp", "join")


def test_comments_semicolons_and_blank_lines():
    text = "# header\n\nsource id='ett'  # the data\n  | print ; normalsource | print\n"
    graph = build_graph(compile_fresh(text).pipelines[0])
    assert [n.component for n in graph.nodes] == ["source", "print", "normalsource", "print"]


def test_graph_renderers_show_every_edge():
    graph = build_graph(compile_file(FIXTURES / "fig4_join.amml", cache=ProgramCache()).pipelines[0])
    assert render_text(graph).count("<-") == 3
    assert render_mermaid(graph).count("-->") == 5
    assert render_dot(graph).count("->") == 5
