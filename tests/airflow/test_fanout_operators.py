"""The fan-out's two operators in this process: a mapped pipeline task runs for its item (RunConfig.item, the
process cap) and an `items` pipeline pushes its list; the `<pipeline>_items` task resolves a run parameter, a
catalog glob or an upstream's list, and fails readably on what cannot be fanned out over. (The mapped DAG
itself runs with dag.test() in test_dags.py.)"""

import pytest
from airflow.sdk import conf
from airflow.sdk.exceptions import AirflowFailException

from airflow_amml import run
from operators.fanout import AmmlItemsOperator
from operators.pipeline import ITEMS_XCOM_KEY, AmmlPipelineOperator

FILE = """dag fan { params = {cols: ["p", "q"], model: "m"}; max_processes = 2 }
pipeline find { normalsource col="v", count=30, seed=2 | derive name="s" + str(v > 0) | items column="name" }
pipeline lit for series in ["a", "b", "c"] { normalsource col=series, count=3 | print limit=0 }
"""


class FakeTi:
    def __init__(self, xcoms=None):
        self.pushed = {}
        self.xcoms = xcoms or {}

    def xcom_push(self, key, value):
        self.pushed[key] = value

    def xcom_pull(self, task_ids, key):
        return self.xcoms.get((task_ids, key))


@pytest.fixture
def amml_file(tmp_path, monkeypatch):
    monkeypatch.setenv("AMML_HOME", str(tmp_path / "home"))
    path = tmp_path / "fan.amml"
    path.write_text(FILE)
    return path


def spy_runs(monkeypatch):
    seen = []
    real = run.run_pipeline

    def spying(pipeline, **kwargs):
        seen.append(kwargs)
        return real(pipeline, **kwargs)

    monkeypatch.setattr(run, "run_pipeline", spying)
    return seen


@pytest.mark.parametrize(("environment", "cap"), [(None, 2), ("5", 2), ("1", 1)])
def test_a_mapped_instance_runs_for_its_item_under_the_smaller_process_cap(amml_file, monkeypatch, environment, cap):
    if environment is None:
        monkeypatch.delenv("AMML_MAX_PROCESSES", raising=False)
    else:
        monkeypatch.setenv("AMML_MAX_PROCESSES", environment)
    seen = spy_runs(monkeypatch)
    task = AmmlPipelineOperator(task_id="lit", amml_file=str(amml_file), pipeline="lit", item="b", max_processes=2,
                                mode="single")
    result = task.execute({"run_id": "r", "params": {"cols": ["p", "q"]}})
    [call] = seen
    assert call["config"].item == ("series", "b")
    assert call["run_params"]["series"] == "b", "the loop variable is bound to the item"
    assert call["config"].max_processes == cap
    assert result["components"]["1:normalsource"]["records_out"] == 3


def test_a_fanned_out_task_without_an_item_fails_saying_it_must_be_expanded(amml_file):
    task = AmmlPipelineOperator(task_id="lit", amml_file=str(amml_file), pipeline="lit")
    with pytest.raises(AirflowFailException, match=r"runs for each `series` in \[\"a\", \"b\", \"c\"\].*expand"):
        task.execute({"run_id": "r"})


def test_an_items_pipeline_pushes_its_distinct_values_in_first_seen_order(amml_file):
    ti = FakeTi()
    AmmlPipelineOperator(task_id="find", amml_file=str(amml_file), pipeline="find", mode="single").execute(
        {"run_id": "r", "ti": ti}
    )
    assert sorted(ti.pushed[ITEMS_XCOM_KEY]) == ["sfalse", "strue"] and len(ti.pushed[ITEMS_XCOM_KEY]) == 2


def items_task(kind, value, amml_file):
    return AmmlItemsOperator(task_id="p_items", amml_file=str(amml_file), pipeline="p", kind=kind, value=value)


def test_the_items_task_resolves_the_runs_list_and_the_upstreams_list(amml_file):
    assert items_task("param", "cols", amml_file).execute({"params": {"cols": ["x", 2]}}) == ["x", 2]
    ti = FakeTi({("find", ITEMS_XCOM_KEY): ["strue", "sfalse"]})
    assert items_task("pipeline", "find", amml_file).execute({"ti": ti}) == ["strue", "sfalse"]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        pytest.param({"cols": "abc"}, "params.cols must be a list of strings or numbers to fan out over; it is str",
                     id="not-a-list"),
        pytest.param({"cols": []}, "params.cols is an empty list", id="empty"),
        pytest.param({"cols": ["a", {"b": 1}]}, "must hold only strings and numbers; it holds dict", id="a-mapping"),
        pytest.param({"cols": ["x" * 500]}, "an item of 500 characters; an item has at most 200", id="long-item"),
        pytest.param({"cols": ["a", "b", "c"]}, "holds 3 items; more than Airflow's [core] max_map_length of 2",
                     id="over-max-map-length"),
    ],
)
def test_the_items_task_fails_readably_on_what_cannot_be_fanned_out(amml_file, params, message):
    before = conf.get("core", "max_map_length")
    conf.set("core", "max_map_length", "2")
    try:
        with pytest.raises(AirflowFailException) as info:
            items_task("param", "cols", amml_file).execute({"params": params})
    finally:
        conf.set("core", "max_map_length", before)
    assert message in str(info.value)


def test_a_catalog_glob_resolves_to_the_matching_ids_and_one_matching_nothing_fails(amml_file):
    ids = items_task("catalog", "nab/realKnownCause/*", amml_file).execute({"run_id": "r"})
    assert "nab/realKnownCause/nyc_taxi" in ids and ids == sorted(ids) and len(ids) == 7
    with pytest.raises(AirflowFailException, match=r"catalog\('nab/nothing\*'\) matches none of the catalog's \d+"):
        items_task("catalog", "nab/nothing*", amml_file).execute({"run_id": "r"})


def test_an_upstream_that_collected_nothing_hands_on_an_empty_list_and_airflow_skips_the_fan_out(amml_file):
    ti = FakeTi({("find", ITEMS_XCOM_KEY): []})
    assert items_task("pipeline", "find", amml_file).execute({"ti": ti}) == []


def test_the_items_task_refuses_an_item_given_twice(amml_file):
    with pytest.raises(AirflowFailException, match=r"params.cols holds the item '1' twice"):
        items_task("param", "cols", amml_file).execute({"params": {"cols": [1, "1"]}})


def test_the_items_task_waits_for_what_its_pipeline_runs_after(tmp_path):
    from compiler import ProgramCache, compile_source
    from operators.dag_factory import build_dag

    path = tmp_path / "after.amml"
    path.write_text(
        'pipeline prepare { normalsource col="v", count=1 | print }\n'
        'pipeline detect for s in catalog("nab/*") after prepare { source id=s | print limit=0 }\n'
    )
    dag = build_dag(compile_source(path.read_text(), str(path), cache=ProgramCache()), path)
    assert dag.get_task("detect_items").upstream_task_ids == {"prepare"}
    assert dag.get_task("detect").upstream_task_ids == {"prepare", "detect_items"}
