"""Hostile input to sources, sinks and SQL: nothing from a pipeline or a trigger param reaches SQL text, a
path outside its root, a special file, a backtracking regex engine or unbounded memory."""

import os

import pandas as pd
import pytest
import sqlalchemy as sa

from airflow_amml.components.catalog import iter_source
from airflow_amml.components.ingress import GENERATE_ROWS, NormalSource
from airflow_amml.run_config import RunConfig
from airflow_amml.runtime.component import ComponentContext
from airflow_amml.runtime.errors import PipelineError
from airflow_amml.runtime.executor import run_pipeline
from airflow_amml.runtime.plan import make_plan
from compiler import ProgramCache, compile_source
from compiler.errors import AmmlError

INJECTED = 'v" , (select password from secrets) as "v2'


def run(text, run_params=None, config=None, mode="single"):
    program = compile_source(text, "hostile.amml", cache=ProgramCache())
    return run_pipeline(program.pipelines[0], run_params=run_params, config=config, mode=mode)


def run_param(text, value, **kwargs):
    """Run `text`, which reads `value` as `params.v`: a run parameter (a trigger form's), which lint cannot
    see, so the run itself must refuse what lint refuses in a constant."""
    return run(f"dag d {{ params = {{v: ''}} }}\n{text}", run_params={"v": value}, **kwargs)


def lint_refuses(text, words):
    with pytest.raises(AmmlError, match=words):
        compile_source(text, "hostile.amml", cache=ProgramCache())


def component(text):
    """The first component of a one-line pipeline, built as the executor builds it (not opened)."""
    stage = make_plan(compile_source(text, "hostile.amml", cache=ProgramCache()).pipelines[0])[0]
    return NormalSource(stage.spec, stage.callback, ComponentContext())


@pytest.fixture
def roots(tmp_path, monkeypatch):
    """An output root and an input root inside the test's folder, with a dags folder beside them."""
    out, inp, dags = tmp_path / "out", tmp_path / "in", tmp_path / "dags"
    for folder in (out, inp, dags):
        folder.mkdir()
    monkeypatch.setenv("AMML_OUTPUT_ROOT", str(out))
    monkeypatch.setenv("AMML_INPUT_ROOT", str(inp))
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(dags))
    return out, inp, dags


# ---- SQL sources ---------------------------------------------------------------------------------------


@pytest.fixture
def secret_db(tmp_path):
    """A database with a table the catalog exposes (`readings`) and one it does not (`secrets`)."""
    url = f"sqlite:///{tmp_path / 'src.db'}"
    engine = sa.create_engine(url)
    pd.DataFrame({"ts": pd.date_range("2017-01-01", periods=48, freq="h"), "v": range(48)}).to_sql(
        "readings", engine, index=False
    )
    pd.DataFrame({"password": ["hunter2"]}).to_sql("secrets", engine, index=False)
    return url


def sql_sources(url):
    return {
        "t": {"url": url, "table": "readings", "time_column": "ts"},
        "q": {"url": url, "query": "select ts, v from readings", "time_column": "ts"},
        "s": {"url": url, "table": "main.readings", "time_column": "ts"},  # schema-qualified
    }


def sql_config(url):
    return RunConfig.from_environment(sources=sql_sources(url))


@pytest.mark.parametrize("source_id", ["t", "q", "s"])
def test_sql_source_cols_from_a_trigger_param_never_reach_the_sql(secret_db, source_id):
    text = f"dag d {{ params = {{cols: [\"v\"]}} }}\nsource id='{source_id}', cols=params.cols | print"
    with pytest.raises(PipelineError, match=r"has no column\(s\)") as caught:
        run(text, run_params={"cols": [INJECTED]}, config=sql_config(secret_db))
    assert "hunter2" not in str(caught.value) and "`source`" in str(caught.value)


@pytest.mark.parametrize("source_id", ["t", "q", "s"])
def test_sql_source_selects_columns_and_binds_the_window(secret_db, source_id):
    frames = iter_source(
        source_id, config=sql_config(secret_db), cols=["v"], start="2017-01-01 10:00", end="2017-01-02"
    )
    frame = pd.concat(list(frames))
    assert list(frame.columns) == ["v"] and frame["v"].tolist() == list(range(10, 24))


def test_sql_source_unknown_column_suggests_the_nearest(secret_db):
    with pytest.raises(PipelineError, match=r"no column\(s\) \['vv'\]; it has \['ts', 'v'\]") as caught:
        list(iter_source("t", config=sql_config(secret_db), cols=["vv"]))
    assert caught.value.hint == "did you mean `v`?"


@pytest.mark.parametrize("bound", ["2017-01-01' or 1=1 --", "", "not a time"])
def test_sql_source_window_bound_that_is_not_a_time_is_refused(secret_db, bound):
    with pytest.raises(PipelineError, match="is not a time"):
        list(iter_source("t", config=sql_config(secret_db), start=bound))


def test_source_cols_as_a_lone_string_is_not_read_as_letters(secret_db):
    with pytest.raises(PipelineError, match="must be a list of column names"):
        list(iter_source("t", config=sql_config(secret_db), cols="v"))


# ---- file sinks: the output root -----------------------------------------------------------------------

SINKS = [("csv_sink", ".csv"), ("parquet_sink", ".parquet")]


@pytest.mark.parametrize(("sink", "ext"), SINKS)
def test_file_sink_writes_relative_paths_under_the_output_root(roots, sink, ext):
    out, _, _ = roots
    run(f"normalsource count=5 | {sink} path='reports/day{ext}'")
    written = out / "reports" / f"day{ext}"
    frame = pd.read_csv(written) if ext == ".csv" else pd.read_parquet(written)
    assert len(frame) == 5 and sorted(p.name for p in (out / "reports").iterdir()) == [f"day{ext}"]


@pytest.mark.parametrize(("sink", "ext"), SINKS)
@pytest.mark.parametrize("where", ["../escaped", "../../escaped", "{tmp}/escaped", "reports/../../escaped"])
def test_file_sink_refuses_paths_leaving_the_output_root(roots, tmp_path, sink, ext, where):
    path = where.format(tmp=tmp_path) + ext
    with pytest.raises(PipelineError, match=rf"`{sink}` .*the path leaves the folder .* \(AMML_OUTPUT_ROOT\)"):
        run(f"normalsource count=5 | {sink} path='{path}'")
    assert not list(tmp_path.rglob("escaped*"))


@pytest.mark.parametrize(("sink", "ext"), SINKS)
def test_file_sink_refuses_a_symlink_pointing_out_of_the_root(roots, tmp_path, sink, ext):
    out, _, _ = roots
    (out / "link").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (tmp_path / "elsewhere").mkdir()
    with pytest.raises(PipelineError, match="the path leaves the folder"):
        run(f"normalsource count=5 | {sink} path='link/x{ext}'")
    assert not list((tmp_path / "elsewhere").iterdir())


@pytest.mark.parametrize(("sink", "ext"), SINKS)
@pytest.mark.parametrize("name", ["evil.py", "evil", "evil.csv.py", "evil.CSV.sh"])
def test_file_sink_refuses_other_extensions(roots, sink, ext, name):
    out, _, _ = roots
    with pytest.raises(PipelineError, match=rf"`{sink}`.*a \{ext} file is expected") as caught:
        run_param(f"normalsource count=5 | {sink} path=params.v", name)
    assert ext in caught.value.hint and not list(out.iterdir())
    lint_refuses(f"normalsource count=5 | {sink} path='{name}'", rf"a \{ext} file is expected")


@pytest.mark.parametrize(("sink", "ext"), SINKS)
def test_file_sink_never_writes_into_the_dags_folder(roots, monkeypatch, sink, ext):
    """Even when the output root is configured to contain the dags folder."""
    _, _, dags = roots
    monkeypatch.setenv("AMML_OUTPUT_ROOT", str(dags.parent))
    with pytest.raises(PipelineError, match=r"in the Airflow dags folder .* whose files Airflow runs"):
        run(f"normalsource count=5 | {sink} path='dags/data{ext}'")
    assert not list(dags.iterdir())


@pytest.mark.parametrize(("sink", "ext"), SINKS)
def test_file_sink_refuses_special_files_and_folders(roots, sink, ext):
    out, _, _ = roots
    os.mkfifo(out / f"fifo{ext}")
    (out / f"folder{ext}").mkdir()
    with pytest.raises(PipelineError, match="is a device, FIFO or socket, not a regular file"):
        run(f"normalsource count=5 | {sink} path='fifo{ext}'")
    with pytest.raises(PipelineError, match="is a folder, not a file"):
        run(f"normalsource count=5 | {sink} path='folder{ext}'")
    assert (out / f"fifo{ext}").is_fifo() and (out / f"folder{ext}").is_dir()


@pytest.mark.parametrize("path", ["/dev/null", "/dev/null.csv", "/dev/null/../null.csv"])
def test_file_sink_refuses_dev_null(roots, path):
    with pytest.raises(PipelineError, match="the path leaves the folder"):
        run_param("normalsource count=5 | csv_sink path=params.v", path)
    assert os.path.exists("/dev/null") and not os.path.isfile("/dev/null")


def test_csv_sink_appends_by_streaming_the_old_file(roots):
    out, _, _ = roots
    run("normalsource count=3, seed=1 | csv_sink path='a.csv'")
    run("normalsource count=4, seed=2 | csv_sink path='a.csv', mode='append'")
    assert len(pd.read_csv(out / "a.csv")) == 7 and [p.name for p in out.iterdir()] == ["a.csv"]


# ---- logsource: the input root, RE2, bounded lines -----------------------------------------------------


def test_logsource_reads_only_under_the_input_root(roots, tmp_path):
    _, inp, _ = roots
    (tmp_path / "secret.log").write_text('{"a": 1}\n')
    os.mkfifo(inp / "pipe.log")
    with pytest.raises(PipelineError, match=r"`logsource` .*the path leaves the folder .* \(AMML_INPUT_ROOT\)"):
        run("logsource path='../secret.log' | print")
    with pytest.raises(PipelineError, match="not a regular file"):
        run("logsource path='pipe.log' | print")  # opening a FIFO would wait forever for a writer


@pytest.mark.timeout(120)  # only a guard: with a backtracking engine this match takes longer than the universe
def test_logsource_catastrophic_pattern_runs_in_linear_time(roots):
    _, inp, _ = roots
    (inp / "a.log").write_text("a" * 50_000 + "!\n")
    from airflow_amml.components.ingress import compile_pattern

    assert type(compile_pattern("(?P<x>(a+)+$)")).__module__.startswith("re2")
    with pytest.raises(PipelineError, match=r"a\.log:1: line does not match the pattern"):
        run("logsource path='a.log', format='regex', pattern='(?P<x>(a+)+$)' | print")


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [("(?P<x>a)\\\\1", "invalid escape sequence"), ("(?P<x>(?=a))", "invalid perl operator"), ("(?P<x>a", "missing")],
)
def test_logsource_pattern_re2_refuses_names_the_component_with_a_hint(roots, pattern, expected):
    _, inp, _ = roots
    (inp / "a.log").write_text("a\n")
    with pytest.raises(PipelineError, match=rf"`logsource pattern=.*not a pattern RE2 accepts: {expected}") as caught:
        run_param("logsource path='a.log', format='regex', pattern=params.v | print", pattern.replace("\\\\", "\\"))
    assert "backreferences" in caught.value.hint
    lint_refuses(f"logsource path='a.log', format='regex', pattern='{pattern}' | print", "not a pattern RE2 accepts")


def test_logsource_long_line_and_deep_json_are_errors_not_memory(roots):
    _, inp, _ = roots
    (inp / "long.log").write_text('{"a": "' + "x" * (2 << 20) + '"}\n')
    (inp / "deep.log").write_text('{"ok": 1}\n' + "[" * 200_000 + "\n")
    with pytest.raises(PipelineError, match=r"long\.log:1: a line has more than 1,048,576 characters"):
        run("logsource path='long.log' | print")
    with pytest.raises(PipelineError, match=r"deep\.log:2: (the JSON line is nested too deeply|not a JSON line)"):
        run("logsource path='deep.log' | print")


def test_logsource_records_with_ever_new_fields_are_bounded(roots):
    _, inp, _ = roots
    (inp / "wide.log").write_text("".join(f'{{"f{i}": {i}}}\n' for i in range(2000)))
    with pytest.raises(PipelineError, match=r"wide\.log: the records up to line \d+ have \d+ different fields"):
        run("logsource path='wide.log' | print")


def test_normalsource_huge_rate_generates_bounded_frames():
    source = component("normalsource count=0, rate=1e18 | print")
    frames = source.batches()
    next(frames)
    assert len(next(frames)) <= GENERATE_ROWS


# ---- SQL sinks -----------------------------------------------------------------------------------------


def rows(sql):
    from airflow_amml import storage

    with storage.engine(RunConfig.from_environment()).connect() as conn:
        return conn.execute(sa.text(sql)).fetchall()


def test_sql_sink_key_missing_from_the_existing_table_names_its_columns():
    run("normalsource col='v', count=3 | sql_sink table='t'")
    with pytest.raises(
        PipelineError,
        match=r"key column\(s\) \['w'\] are not columns of the existing table, "
        r"which has \['v'\]",
    ) as caught:
        run("normalsource col='w', count=3 | derive v = w | sql_sink table='t', key=['w']")
    assert "`sql_sink table='t'`" in str(caught.value)


def test_sql_sink_key_missing_from_the_records_suggests_the_nearest():
    with pytest.raises(PipelineError, match=r"key column\(s\) \['vv'\] are not in the records") as caught:
        run("normalsource col='v', count=3 | sql_sink table='t', key=['vv']")
    assert caught.value.__cause__.hint == "name key columns the records have (or add them upstream, e.g. with `derive`)"
    assert "did you mean `v`?" in str(caught.value)


def test_sql_sink_adds_a_new_record_column_and_refuses_a_type_the_table_cannot_hold():
    run("normalsource col='v', count=3 | sql_sink table='t'")
    # a new column (e.g. `lstm`'s model_version) is added, nullable: the earlier rows hold NULL there
    run("normalsource col='v', count=3 | derive x = v | sql_sink table='t'")
    assert rows("select count(*), count(x) from t") == [(6, 3)]
    # its name is quoted, never SQL text
    run("""normalsource col='v', count=1 | rename v='x"; drop table t; --' | sql_sink table='t'""")
    assert rows("select count(*) from t") == [(7,)]
    with pytest.raises(PipelineError, match=r"column `v` of the table holds numbers .* but the records have 'a'"):
        run("normalsource col='n', count=3 | derive v = 'a' | drop cols=['n'] | sql_sink table='t'")
    assert rows("select count(*) from t") == [(7,)]


@pytest.mark.parametrize(
    "table", ['x"; drop table t; --', "amml_alerts", "amml_model_versions", "alembic_version", "sqlite_master", ""]
)
def test_sql_sink_refuses_unsafe_or_reserved_table_names(table):
    with pytest.raises(PipelineError, match=r"`sql_sink table=.*(a table name is|AMML's own tables)"):
        run_param("normalsource count=3 | sql_sink table=params.v", table)
    lint_refuses(f"normalsource count=3 | sql_sink table='{table}'", "(a table name is|AMML's own tables)")


def test_sql_sink_refuses_a_database_url_from_the_pipeline(tmp_path, monkeypatch):
    evil = tmp_path / "evil.py"
    with pytest.raises(PipelineError, match=r"`sql_sink db=...`: a database URL; a pipeline names one of"):
        run(f"normalsource count=3 | sql_sink table='t', db='sqlite:///{evil}'")
    assert not evil.exists()
    monkeypatch.setenv("AMML_DATABASES", f'{{"warehouse": "sqlite:///{tmp_path / "wh.db"}"}}')
    with pytest.raises(PipelineError, match=r"unknown database `wherehouse`.*did you mean `warehouse`"):
        run("normalsource count=3 | sql_sink table='t', db='wherehouse'")
    run("normalsource count=3 | sql_sink table='t', db='warehouse'")
    with sa.create_engine(f"sqlite:///{tmp_path / 'wh.db'}").connect() as conn:
        assert conn.execute(sa.text("select count(*) from t")).scalar() == 3


def test_sql_sink_replaces_keys_of_a_batch_larger_than_one_statement_allows():
    text = "normalsource col='v', count=5000, seed=1 | derive k = v * 1000, j = v | sql_sink table='t', key=['k', 'j']"
    run(text)
    run(text)
    assert rows("select count(*) from t") == [(5000,)]


# ---- snapshot and alert ----------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [10**12, 0, -5])
def test_snapshot_size_is_bounded(size):
    with pytest.raises(PipelineError, match=r"`snapshot size=.*expected a number of records from 1 to 1,000,000"):
        run(f"a = normalsource count=3\na | alert cond=value > 100\na | snapshot size={size}")


@pytest.mark.parametrize("table", ["amml_alerts", "amml_model_versions", "bad name"])
def test_snapshot_refuses_amml_tables_and_bad_names(table):
    with pytest.raises(PipelineError, match=r"`snapshot table="):
        run_param("a = normalsource count=3\na | alert cond=value > 100\na | snapshot table=params.v", table)
    lint_refuses(f"a = normalsource count=3\na | alert cond=value > 100\na | snapshot table='{table}'", "table")


def test_snapshot_refuses_an_existing_table_of_another_shape():
    run("normalsource col='v', count=3 | sql_sink table='sink_rows'")
    with pytest.raises(PipelineError, match=r"the table exists and is not a snapshot table"):
        run("a = normalsource count=3\na | alert cond=value > 100\na | snapshot table='sink_rows'")


def test_alert_event_name_longer_than_its_column_is_refused():
    with pytest.raises(PipelineError, match=r"`alert event=...`: an event name has at most 200 characters"):
        run(f"normalsource count=3 | alert cond=value > 100, event='{'e' * 201}'")


def test_print_unknown_column_suggests_the_nearest():
    with pytest.raises(PipelineError, match=r"`print cols=...`: the records have no column\(s\) \['valeu'\]") as caught:
        run("normalsource count=3 | print cols=['valeu']")
    assert caught.value.__cause__.hint == "did you mean `value`?"
