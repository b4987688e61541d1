"""A fanned-out run's results stay separable: each row a sink writes carries the item, `sql_sink`'s key gains it
(a re-run of one item replaces only its rows, on SQLite and on a real PostgreSQL), and the file sinks write a
file per item, so that two mapped tasks running at once never write the same file."""

import dataclasses
import multiprocessing as mp

import pandas as pd
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from airflow_amml.registry.names import item_slug
from airflow_amml.run_config import RunConfig
from airflow_amml.runtime.errors import PipelineError
from airflow_amml.runtime.executor import run_pipeline
from compiler import ProgramCache, compile_source

SOURCE = "source id='tiny' | derive v = v + {seed}"
TAXI = "nab/realKnownCause/nyc_taxi"


def run(text, config, item=None):
    program = compile_source(text, "fan.amml", cache=ProgramCache())
    run_pipeline(program.pipelines[0], config=dataclasses.replace(config, item=item), mode="single")


def rows(url, sql):
    with sa.create_engine(url).connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(sql))]


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'out.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def config(tmp_path, db_url):
    return config_for(tmp_path, db_url)


@pytest.fixture
def files_config(tmp_path):
    """For the file sinks: the database does not matter."""
    return config_for(tmp_path, f"sqlite:///{tmp_path / 'out.db'}")


def config_for(tmp_path, db_url):
    tiny = tmp_path / "tiny.csv"
    pd.DataFrame({"k": [1, 2, 3], "v": [0.5, 1.5, 2.5]}).to_csv(tiny, index=False)
    return RunConfig(
        home=tmp_path,
        db_url=db_url,
        output_root=tmp_path / "out",
        dags_folder=tmp_path / "dags",
        sources={"tiny": {"path": str(tiny)}},
    )


def test_a_rerun_of_one_item_replaces_only_its_rows(config):
    sink = " | sql_sink table='scores', key=['k']"
    run(SOURCE.format(seed=1) + sink, config, ("series", TAXI))
    run(SOURCE.format(seed=2) + sink, config, ("series", "b"))
    b_before = rows(config.db_url, "select k, v from scores where series = 'b' order by k")
    run(SOURCE.format(seed=3) + sink, config, ("series", TAXI))  # the same keys, new values: replaced
    assert rows(config.db_url, "select series, count(*) from scores group by series order by series") == [
        ("b", 3),
        (TAXI, 3),
    ]
    assert rows(config.db_url, "select k, v from scores where series = 'b' order by k") == b_before
    taxi = rows(config.db_url, f"select k, v from scores where series = '{TAXI}' order by k")
    assert taxi == [(1, 3.5), (2, 4.5), (3, 5.5)], "the re-run's values, not the first run's"


def test_a_sink_without_key_still_appends_and_numbers_are_kept_as_numbers(config):
    for _ in range(2):
        run(SOURCE.format(seed=1) + " | sql_sink table='log'", config, ("shard", 7))
    assert rows(config.db_url, "select shard, count(*) from log group by shard") == [(7, 6)]


def test_a_table_from_before_the_fanout_gains_the_item_column(config):
    run(SOURCE.format(seed=1) + " | sql_sink table='scores', key=['k']", config)
    run(SOURCE.format(seed=2) + " | sql_sink table='scores', key=['k']", config, ("series", "a"))
    assert set(rows(config.db_url, "select series, count(*) from scores group by series")) == {
        ("a", 3),
        (None, 3),
    }, "the earlier rows are kept (NULL item); the item's rows are added"


def test_records_with_the_items_column_holding_another_value_are_refused(config):
    with pytest.raises(PipelineError, match=r"already have a column `series`.*'other' where this run's item is 'a'"):
        run(
            SOURCE.format(seed=1) + " | derive series = 'other' | sql_sink table='t', key=['k']",
            config,
            ("series", "a"),
        )
    run(SOURCE.format(seed=1) + " | derive series = 'a' | sql_sink table='t', key=['k']", config, ("series", "a"))
    assert rows(config.db_url, "select distinct series from t") == [("a",)]


def test_file_sinks_write_a_file_per_item_with_the_items_column(files_config):
    config = files_config
    for item in (TAXI, "b"):
        run(SOURCE.format(seed=1) + " | csv_sink path='scores.csv'", config, ("series", item))
        run(SOURCE.format(seed=1) + " | parquet_sink path='scores.parquet'", config, ("series", item))
    out = config.output_root
    taxi = f"scores.{item_slug(TAXI)}"
    assert "/" not in item_slug(TAXI) and taxi.startswith("scores.nab-realKnownCause-nyc_taxi-")
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"{taxi}.csv", f"{taxi}.parquet", "scores.b.csv", "scores.b.parquet"]
    )
    for stem, item in ((taxi, TAXI), ("scores.b", "b")):
        csv = pd.read_csv(out / f"{stem}.csv")
        assert list(csv.columns) == ["k", "v", "series"] and (csv["series"] == item).all() and len(csv) == 3
        assert pq.read_table(out / f"{stem}.parquet").column("series").to_pylist() == [item] * 3


def test_an_item_file_in_append_mode_grows_by_itself(files_config):
    config = files_config
    for _ in range(2):
        run(SOURCE.format(seed=1) + " | csv_sink path='log.csv', mode='append'", config, ("series", "a"))
    run(SOURCE.format(seed=1) + " | csv_sink path='log.csv', mode='append'", config, ("series", "b"))
    assert len(pd.read_csv(config.output_root / "log.a.csv")) == 6
    assert len(pd.read_csv(config.output_root / "log.b.csv")) == 3


def _write_item(config, item, barrier, results):
    program = compile_source(SOURCE.format(seed=1) + " | sql_sink table='fleet', key=['k']", "fan.amml")
    barrier.wait(60)
    try:
        run_pipeline(program.pipelines[0], config=dataclasses.replace(config, item=item), mode="single")
        results.put("ok")
    except Exception as exc:  # reported to the test, which shows it
        results.put(repr(exc))


def test_mapped_tasks_writing_one_new_table_at_once_all_land(config):
    """Four items start at the same moment on a table none of them finds: one creates it, the others append."""
    ctx = mp.get_context("fork")  # (the children only run the pipeline in-process)
    barrier, results = ctx.Barrier(4), ctx.Queue()
    procs = [ctx.Process(target=_write_item, args=(config, ("series", f"s{i}"), barrier, results)) for i in range(4)]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(60)
    assert outcomes == ["ok"] * 4
    assert rows(config.db_url, "select series, count(*) from fleet group by series order by series") == [
        (f"s{i}", 3) for i in range(4)
    ]
