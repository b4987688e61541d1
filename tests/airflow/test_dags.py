"""AMML files in a dags folder become Airflow DAGs; a pipeline runs inside a real Airflow task (dag.test()).

Airflow reads its configuration at import time, so every Airflow step runs in a fresh interpreter with its own
AIRFLOW_HOME (SQLite metadata database made by `airflow db migrate`). A fresh interpreter's first dag.test()
costs ~8 s before any task runs (Airflow's imports, its in-process execution API building its versioned
routes), later ones a fraction of a second: the runs that can share a metadata database and an AMML home share
one interpreter (`dag_runs`), and so do the DagBag loads (`loaded`)."""

import json
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from compiler.dag_block import error_dag_id
from tests.airflow.airflow_home import airflow_home

ROOT = Path(__file__).resolve().parents[2]
BROKEN = error_dag_id("broken.amml")  # amml_error__broken_<hash of the path>

HOT_DAYS = """
dag hot_days {
    schedule = "@daily"
    start_date = "2016-07-01"
    params = {threshold: 30}
    param_descriptions = {threshold: "hours above this °C are kept"}
}
source id="ett" | filter cond=OT > params.threshold | sql_sink table="hot_hours", key=["date"]
"""
# The same, failing a run whose interval has no data
STRICT_DAYS = HOT_DAYS.replace("dag hot_days {", 'dag strict_days {\n    on_empty = "fail"')
# Fan-out of each kind whose items need no catalog: a literal list, a run parameter, another pipeline's items
FAN_DEMO = """
dag fan_demo { params = {cols: ["p", "q", "r"]}; map_concurrency = 2; max_processes = 2 }
pipeline find { normalsource col="v", count=40, seed=1 | derive name="s" + str(v > 0) | items column="name" }
pipeline lit for series in ["a", "b", "c"] { normalsource col=series, count=3 | print limit=0 }
pipeline par for c in params.cols { normalsource col=c, count=4 | print limit=0 }
pipeline up for c in find.name { normalsource col=c, count=5 | print limit=0 }
"""


@pytest.fixture(scope="module")
def airflow_env(tmp_path_factory):
    home = tmp_path_factory.mktemp("airflow-home")
    dags = home / "dags"
    shutil.copytree(ROOT / "dags", dags)
    (dags / "ett_retrain.amml").write_text(  # the shipped DAG, with a small training set for the test
        (ROOT / "dags" / "ett_retrain.amml").read_text().replace("2688", "600")
    )
    (dags / "broken.amml").write_text('source id="ett" | fitler cond=OT > 1 | print\n')
    (dags / "hot_days.amml").write_text(HOT_DAYS)
    (dags / "strict_days.amml").write_text(STRICT_DAYS)
    (dags / "fan_demo.amml").write_text(FAN_DEMO)
    env = airflow_home(home, dags)
    return env, dags


def run_python(env, code, *, with_log=False):
    """Run `code` in a fresh interpreter; the JSON its last line prints (and, `with_log`, all it wrote: dag.test()
    prints the task logs)."""
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-4000:]
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    return (answer, result.stdout + result.stderr) if with_log else answer


LOAD = """
    import json, os
    from airflow.dag_processing.dagbag import DagBag

    def ids(dag_folder, context=None):  # the DAG ids of a DagBag, parsed (`context`) as for a task of that DAG
        if context:
            os.environ["_AIRFLOW_PARSING_CONTEXT_DAG_ID"] = context  # read by get_parsing_context() at parse
        try:
            return sorted(DagBag(dag_folder=dag_folder, bundle_path=dag_folder, bundle_name="dags-folder").dag_ids)
        finally:
            os.environ.pop("_AIRFLOW_PARSING_CONTEXT_DAG_ID", None)

    bag = DagBag(dag_folder="{dags}", bundle_path="{dags}", bundle_name="dags-folder")
    print(json.dumps({{
        "dag_ids": sorted(bag.dag_ids),
        "import_errors": {{str(k): v for k, v in bag.import_errors.items()}},
        "predict_timetable": type(bag.dags["ett_predict"].timetable).__name__,
        "predict_tasks": [t.task_id for t in bag.dags["ett_predict"].tasks],
        "train_params": dict(bag.dags["ett_train"].params),
        "train_param_types": {{k: bag.dags["ett_train"].params.get_param(k).schema.get("type")
                               for k in ("epochs", "model")}},
        "hot_days_param": bag.dags["hot_days"].params.get_param("threshold").dump(),
        "train_doc": bag.dags["ett_train"].doc_md,
        "on_empty": {{d: bag.dags[d].get_task("main").on_empty for d in ("hot_days", "strict_days")}},
        "train_links": [link.name for link in bag.dags["ett_train"].get_task("main").operator_extra_links],
        "watch_tags": sorted(bag.dags["ett_watch"].tags),
        "watch_doc": bag.dags["ett_watch"].doc_md,
        "error_description": bag.dags["{broken}"].description,
        "error_doc": bag.dags["{broken}"].doc_md,
        # inside a task (Airflow sets the parsing context), the loader builds just the DAG being run
        "task_ids": ids(dag_folder="{dags}", context="ett_watch"),
        "ignoring_ids": ids(dag_folder="{ignoring}"),
    }}))
"""


@pytest.fixture(scope="module")
def loaded(airflow_env):
    """What the DagBag of the dags folder holds (LOAD), read in one interpreter; also the DAG ids seen inside a
    task and in a copy of the folder with an .airflowignore."""
    env, dags = airflow_env
    ignoring = dags.parent / "dags-ignoring"
    shutil.copytree(dags, ignoring)
    (ignoring / ".airflowignore").write_text("# keep the broken one out\nbroken.amml\nett_w*\n")
    return run_python(env, LOAD.format(dags=dags, broken=BROKEN, ignoring=ignoring))


def test_every_amml_file_becomes_a_dag_and_a_broken_one_is_shown_not_hidden(loaded):
    result = loaded
    assert result["dag_ids"] == [
        BROKEN,
        "ett_forecast",
        "ett_forecast_predict",  # another helper's new DAG (issue 14's session): drop if it does not land
        "ett_predict",
        "ett_retrain",
        "ett_train",
        "ett_watch",
        "fan_demo",
        "hot_days",
        "nab_evaluation",  # dags/nab_evaluation.py, a Python DAG beside the AMML loader
        "nab_watch",
        "strict_days",
    ]
    assert result["import_errors"] == {}, "one broken file must not hide the other DAGs"
    assert result["predict_timetable"] == "CronDataIntervalTimetable", "scheduled runs get a real data interval"
    assert result["predict_tasks"] == ["main"]
    assert result["train_params"] == {"epochs": 20, "model": "ett:0.1"}
    assert result["train_param_types"] == {"epochs": "integer", "model": "string"}
    assert result["watch_tags"] == ["amml", "ett", "surveillance"]
    assert result["hot_days_param"]["description"] == "hours above this °C are kept", "the trigger form's help"
    assert result["hot_days_param"]["value"] == 30 and result["hot_days_param"]["schema"]["type"] == "integer"
    assert result["on_empty"] == {"hot_days": "warn", "strict_days": "fail"}
    assert result["train_links"] == ["Registered model"]
    assert "broken.amml:1:19: name error: unknown component `fitler`" in result["error_description"]


DAG_RUNS = """
    import json, os, pendulum
    import sqlalchemy as sa
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models import TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    bag = DagBag(dag_folder="{dags}", bundle_path="{dags}", bundle_name="dags-folder")
    answer = {{}}

    # hot_days' run for 2016-07-03 .. 2016-07-04, twice
    answer["scheduled"] = [str(bag.dags["hot_days"].test(logical_date=pendulum.datetime(2016, 7, 4, tz="UTC")).state)
                           for _ in range(2)]

    # ETTh1 ends in June 2018: the day before 2019-01-02 has no data
    answer["empty"] = {{d: str(bag.dags[d].test(logical_date=pendulum.datetime(2019, 1, 2, tz="UTC")).state)
                        for d in ("hot_days", "strict_days")}}

    dag = bag.dags["fan_demo"]
    shape = {{t.task_id: [type(t).__name__, t.map_index_template, t.max_active_tis_per_dagrun,
                          sorted(t.upstream_task_ids)] for t in dag.tasks}}
    shape["par_params"] = dict(dag.params)
    watch = bag.dags["nab_watch"]
    shape["nab_watch"] = {{t.task_id: [type(t).__name__, t.map_index_template, t.max_active_tis_per_dagrun]
                           for t in watch.tasks}}
    run = dag.test(run_conf={{"cols": ["x", "y"]}})  # the trigger form's list replaces the default p, q, r
    with create_session() as session:
        tis = session.query(TaskInstance).filter_by(dag_id="fan_demo", run_id=run.run_id).all()
        xcoms = session.execute(sa.select(XComModel.task_id, XComModel.map_index, XComModel.value).where(
            XComModel.run_id == run.run_id, XComModel.key == "return_value", XComModel.map_index >= 0))
        named = {{(ti.task_id, ti.map_index): ti.rendered_map_index for ti in tis}}
        records = {{named[(task, index)]: value["components"]["1:normalsource"]["records_out"]
                    for task, index, value in xcoms}}
    answer["fan_out"] = {{"shape": shape, "run": {{
        "state": str(run.state),
        "instances": sorted([ti.task_id, ti.rendered_map_index, str(ti.state)] for ti in tis if ti.map_index >= 0),
        "records": records,
    }}}}

    # last, as on a worker (Airflow sets the parsing context of the task's DAG): only the error DAG is built
    os.environ["_AIRFLOW_PARSING_CONTEXT_DAG_ID"] = "{broken}"
    worker = DagBag(dag_folder="{dags}", bundle_path="{dags}", bundle_name="dags-folder")
    answer["error_run"] = {{"dag_ids": sorted(worker.dag_ids), "state": str(worker.dags["{broken}"].test().state)}}
    print(json.dumps(answer))
"""


@pytest.fixture(scope="module")
def dag_runs(airflow_env, ett_path):
    """The dag.test() runs of hot_days, strict_days, fan_demo and the broken file's error DAG, in one
    interpreter (their tables, hot_hours and the error DAG's none, do not meet), and what they logged."""
    env, dags = airflow_env
    env = {**env, "AMML_ETT_PATH": str(ett_path)}
    answer, log = run_python(env, DAG_RUNS.format(dags=dags, broken=BROKEN), with_log=True)
    return env, answer, log


def test_a_fanned_out_pipeline_is_one_mapped_task_named_by_its_items(dag_runs):
    """A real dag.test() of each kind of fan-out: one mapped task instance per item, named `VAR=item`, the
    trigger form's list replacing the default, and another pipeline's `items` sink feeding a fan-out."""
    result = dag_runs[1]["fan_out"]
    shape = result["shape"]
    assert shape["lit"] == ["MappedOperator", "series={{ task.item }}", 2, []]
    assert shape["par_items"][0] == "AmmlItemsOperator" and shape["par"][3] == ["par_items"]
    assert shape["up_items"][3] == ["find"] and shape["up"][3] == ["find", "up_items"]
    assert shape["find"] == ["AmmlPipelineOperator", None, None, []]
    assert shape["par_params"] == {"cols": ["p", "q", "r"]}
    assert shape["nab_watch"] == {
        "detect_items": ["AmmlItemsOperator", None, None],
        "detect": ["MappedOperator", "series={{ task.item }}", 4],
    }
    run = result["run"]
    assert run["state"] == "success"
    literal = [["lit", f"series={name}", "success"] for name in "abc"]
    upstream = [["up", "c=sfalse", "success"], ["up", "c=strue", "success"]]
    assert run["instances"] == sorted([*literal, *upstream, ["par", "c=x", "success"], ["par", "c=y", "success"]])
    # each instance ran its own pipeline (the counters it returned: its source made `count` records)
    assert run["records"] == {"series=a": 3, "series=b": 3, "series=c": 3, "c=x": 4, "c=y": 4,
                                   "c=strue": 5, "c=sfalse": 5}


def test_the_docs_show_the_source_parameters_and_pipelines_as_the_ui_renders_them(airflow_env, loaded):
    """Airflow 3.3's UI renders doc_md with react-markdown + remark-gfm and shows a fenced block as code only
    when it names a language: the source keeps its lines, parameters are a table, components a list with the
    parameters as written (`model=params.model`), and the errors of a broken file a list."""
    _, dags = airflow_env
    result = loaded
    source = (ROOT / "dags" / "ett_train.amml").read_text().rstrip()
    doc = result["train_doc"]
    assert f"```amml\n{source}\n```" in doc, "the whole source, its line breaks kept, in a block with a language"
    assert "| `epochs` | `20` | training epochs |" in doc
    assert "3. `train_lstm` `model=params.model`, `epoch=params.epochs`" in doc
    assert "[Open the pipeline graph](dags/ett_train/plugin/amml-pipeline)" in doc
    watch = result["watch_doc"]
    assert '`snapshot` `size=48`, `on="alert"` ← 2' in watch, "the second reader of a named flow says whence"
    for raw in ("<expr>", "flowchart", "mermaid"):
        assert raw not in doc and raw not in watch
    error_doc = result["error_doc"]
    assert f"- `` {dags / 'broken.amml'}:1:19: name error: unknown component `fitler` ``" in error_doc
    assert "  ```text\n" in error_doc and "  hint: did you mean `filter`?" in error_doc


def test_the_error_dag_of_a_broken_file_fails_its_run(dag_runs):
    """So that Home counts the file among the failed DAGs (its latest run failed), not as a healthy DAG."""
    error_run = dag_runs[1]["error_run"]
    # built as on a worker: only this DAG (a Python DAG file is parsed whatever the context)
    assert error_run["dag_ids"] == [BROKEN, "nab_evaluation"]
    assert error_run["state"] == "failed"


def test_a_scheduled_run_reads_its_interval_and_reruns_are_idempotent(dag_runs, ett_path):
    env, answer, _ = dag_runs
    assert answer["scheduled"] == ["success", "success"]  # the run for 2016-07-03 .. 2016-07-04, twice
    engine = sa.create_engine(f"sqlite:///{env['AMML_HOME']}/amml.db")
    with engine.connect() as conn:
        rows = conn.execute(sa.text("select date from hot_hours order by date")).scalars().all()
    ett = pd.read_csv(ett_path)
    day = ett[(ett["date"] >= "2016-07-03") & (ett["date"] < "2016-07-04") & (ett["OT"] > 30)]
    assert rows == list(day["date"]), "exactly the day's hot hours, once each, after two runs"


def test_an_interval_without_data_warns_and_fails_when_the_dag_says_so(dag_runs):
    _, answer, output = dag_runs  # dag.test() prints the task logs
    assert answer["empty"] == {"hot_days": "success", "strict_days": "failed"}
    warning = (
        "no data in the interval 2019-01-01T00:00:00+00:00 – 2019-01-02T00:00:00+00:00: "
        '`source id="ett"` (line {line}) read 0 records'
    )
    assert warning.format(line=8) in output, "hot_days warns, naming the interval and the source"
    assert warning.format(line=9) in output, "strict_days warns too"
    assert "AirflowException: no data in the interval" in output and 'on_empty = "fail"' in output


RETRAIN = """
    import json, pendulum
    from airflow.dag_processing.dagbag import DagBag
    bag = DagBag(dag_folder="{dags}", bundle_path="{dags}", bundle_name="dags-folder")
    dag = bag.dags["ett_retrain"]
    states = [str(dag.test(logical_date=pendulum.datetime(2017, 3, day, tz="UTC"), run_conf={{"epochs": 1}}).state)
              for day in (5, 12)]
    from airflow_amml.registry import ModelRegistry  # what the runs left in the registry
    r = ModelRegistry.from_config()
    print(json.dumps({{"states": states, "champion": r.resolve("ett@champion").version,
                      "versions": [{{"version": v.version, "metrics": v.metrics, "dag_id": v.lineage.dag_id,
                                    "start": v.lineage.data_interval_start, "scaler": v.scaler}}
                                   for v in r.list_versions("ett")]}}))
"""


def test_retraining_promotes_only_a_better_model(airflow_env, ett_path):
    """Two weekly runs of ett_retrain: the first becomes champion; the second only if it beats it."""
    env, dags = airflow_env
    env = {**env, "AMML_ETT_PATH": str(ett_path), "AMML_HOME": env["AMML_HOME"] + "-retrain"}
    state = run_python(env, RETRAIN.format(dags=dags))
    assert state["states"] == ["success", "success"]
    first, second = state["versions"]
    assert first["dag_id"] == "ett_retrain" and first["start"].startswith("2017-02-26")
    assert "champion_holdout_mae" not in first["metrics"], "nothing to compare with on the first run"
    assert second["metrics"]["champion_version"] == 1
    better = second["metrics"]["holdout_mae"] < second["metrics"]["champion_holdout_mae"]
    assert state["champion"] == (2 if better else 1)
    # the scaler saw the 600 training hours before the run's week only, never the week held out
    ett = pd.read_csv(ett_path)
    stamps = pd.to_datetime(ett["date"])
    for version in state["versions"]:
        first = int((stamps >= pd.Timestamp(version["start"]).tz_convert(None)).argmax())
        training = ett["OT"].iloc[first - 600 : first]
        assert version["scaler"]["columns"]["OT"] == pytest.approx([training.min(), training.max()])


def test_task_parsing_builds_only_its_dag_and_airflowignore_is_honoured(loaded):
    # inside a task, the loader builds just the DAG being run (a Python DAG file is parsed whatever the context)
    assert loaded["task_ids"] == ["ett_watch", "nab_evaluation"]
    visible = loaded["ignoring_ids"]  # a copy of the folder with an .airflowignore of `broken.amml` and `ett_w*`
    assert "ett_watch" not in visible and BROKEN not in visible and "ett_train" in visible


TRAIN_THEN_PREDICT = """
    import json, pendulum
    from airflow.dag_processing.dagbag import DagBag
    from airflow_amml.registry import ModelRegistry
    from airflow_amml.runtime import executor
    executor.PROGRESS_EVERY = 1.0  # the tasks run in this process: progress lines every second, not every 10
    bag = DagBag(dag_folder="{dags}", bundle_path="{dags}", bundle_name="dags-folder")
    train = bag.dags["ett_train"].test(run_conf={{"epochs": 1}})
    # what the task stored, read back from Airflow's database, and the extra links as the api-server serves them
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    with create_session() as session:
        xcoms = {{x.key: XComModel.deserialize_value(x) for x in session.scalars(
            XComModel.get_many(run_id=train.run_id, dag_ids="ett_train", task_ids="main", key=None))}}
    from fastapi.testclient import TestClient
    from airflow.api_fastapi.app import create_app
    api = TestClient(create_app())
    links = api.get(f"/api/v2/dags/ett_train/dagRuns/{{train.run_id}}/taskInstances/main/links")
    ModelRegistry.from_config().set_alias("ett", "champion", 1)
    predict = bag.dags["ett_predict"].test(logical_date=pendulum.datetime(2017, 11, 2, tz="UTC"))
    from operators.links import model_url  # under this Airflow's configuration ([api] base_url)
    print(json.dumps({{"states": [str(train.state), str(predict.state)], "xcoms": xcoms,
                      "links": [links.status_code, links.json()], "ett_1_url": model_url("ett/1")}}, default=str))
"""


def test_ett_train_then_ett_predict(airflow_env, ett_path):
    """The paper's two workflows with dag.test(): a manual training run, then one day of predictions."""
    env, dags = airflow_env
    # ETTh1's rows from 2017-09-01 to 2017-11-02 (1,512 hours) as the `ett` data set: the run of 2017-11-01 and
    # its 23 hours of warmup are in it, and the training reads a tenth of ETTh1 (what it registers, logs and
    # links does not depend on how many rows it read; on all 17,420 hours the epoch alone takes ~15 s)
    ett = pd.read_csv(ett_path)
    part = dags.parent / "ett-2017-09-01-to-2017-11-02.csv"
    ett[(ett["date"] >= "2017-09-01") & (ett["date"] < "2017-11-03")].to_csv(part, index=False)
    env = {
        **env,
        "AMML_ETT_PATH": str(part),
        "AMML_HOME": env["AMML_HOME"] + "-paper",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
    }  # the api-server app's caller: an admin
    result, log = run_python(env, TRAIN_THEN_PREDICT.format(dags=dags), with_log=True)
    assert result["states"] == ["success", "success"]
    # the training task names the version it registered: XCom, its return value, and the extra link (a deep
    # link into Airflow's own page of the plugin, which shows the registry page in its frame)
    xcoms = result["xcoms"]
    assert xcoms["amml_models"] == ["ett/1"] and xcoms["return_value"]["models"] == ["ett/1"]
    url = result["ett_1_url"]
    assert "amml/ui/models/ett/versions/1" in url, url
    assert xcoms["_link_RegisteredModelLink"] == url
    assert result["links"] == [200, {"extra_links": {"Registered model": url}, "total_entries": 1}]
    # the task log says it once (the registry and train_lstm say it at DEBUG), the URL not in parentheses
    # (the log view would make a link of "(http://…)" that takes the ")" along)
    # (beside the end summary's train_lstm row, whose note reads "1 epoch, registered ett/1 @champion")
    said = [line for line in log.splitlines() if "registered" in line and "ett/1" in line and "epoch" not in line]
    assert len(said) == 1 and re.search(rf"registered model ett/1, its page: {re.escape(url)}(\s|$)", said[0]), said
    progress = [line for line in log.splitlines() if "progress  " in line]
    assert any("progress  train_lstm: in 1,512, out 0" in line for line in progress), progress
    assert "in 0, out 0, busy 0.0s" not in log, "a component that has done nothing yet has no progress line"
    engine = sa.create_engine(f"sqlite:///{env['AMML_HOME']}/amml.db")
    with engine.connect() as conn:
        hours = conn.execute(sa.text("select date from ett_predictions order by date")).scalars().all()
    assert len(hours) == 24 and hours[0] == "2017-11-01 00:00:00" and hours[-1] == "2017-11-01 23:00:00"
