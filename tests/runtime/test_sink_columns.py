"""Records that gained a column (as `lstm` gained `model_version`) still land in what an earlier run wrote:
`sql_sink` adds the column to the existing table, `csv_sink mode='append'` widens the file's header."""

import logging

import pandas as pd
import pytest
import sqlalchemy as sa

from airflow_amml.run_config import RunConfig
from airflow_amml.runtime.errors import PipelineError
from airflow_amml.runtime.executor import run_pipeline
from compiler import ProgramCache, compile_source

OLD = "normalsource col='v', count=3, seed=1 | derive k = v * 10"
NEW = OLD + ", model_version = 'ett/3'"


def run(text, config):
    run_pipeline(compile_source(text, "s.amml", cache=ProgramCache()).pipelines[0], config=config, mode="single")


@pytest.fixture
def config(tmp_path):
    return RunConfig.from_environment(db_url=f"sqlite:///{tmp_path / 'out.db'}", output_root=tmp_path)


def test_sql_sink_adds_a_new_column_to_the_existing_table(config, caplog):
    run(f"{OLD} | sql_sink table='pred', key=['k']", config)
    with caplog.at_level(logging.WARNING, logger="airflow_amml.components.sql_sink"):
        run(f"{NEW} | sql_sink table='pred', key=['k']", config)  # the same keys: replaced
        run(f"{NEW.replace('seed=1', 'seed=2')} | sql_sink table='pred', key=['k']", config)
    engine = sa.create_engine(config.db_url)
    with engine.connect() as conn:
        columns = {c["name"]: str(c["type"]) for c in sa.inspect(conn).get_columns("pred")}
        versions = conn.execute(sa.text("select model_version from pred")).scalars().all()
    assert columns["model_version"] == "TEXT"
    assert versions == ["ett/3"] * 6, "the replaced rows and the new ones carry it"
    # (other loggers' INFO lines reach caplog too when an earlier test in the session configured logging)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == [
        "sql_sink: added column(s) model_version to the existing table pred (its earlier rows hold NULL there)"
    ]


def test_sql_sink_types_new_columns_as_pandas_would_and_quotes_their_names(config):
    run(f"{OLD} | sql_sink table='t'", config)
    odd = 'x"; drop table t; --'
    run(f"{OLD} | derive n = 1, f = 0.5, b = v > 0, s = 'a' | rename n='{odd}' | sql_sink table='t'", config)
    with sa.create_engine(config.db_url).connect() as conn:
        columns = {c["name"]: str(c["type"]) for c in sa.inspect(conn).get_columns("t")}
        assert conn.execute(sa.text("select count(*) from t")).scalar() == 6
    assert {name: columns[name] for name in (odd, "f", "b", "s")} == {
        odd: "BIGINT",
        "f": "FLOAT",
        "b": "BOOLEAN",
        "s": "TEXT",
    }


def test_sql_sink_indexes_the_key_once_so_replacing_rows_does_not_scan_the_table(config):
    run(f"{OLD} | sql_sink table='keyed', key=['k', 'v']", config)
    run(f"{OLD} | sql_sink table='keyed', key=['k', 'v']", config)  # a re-run: the index is there already
    run(f"{OLD} | sql_sink table='plain'", config)
    engine = sa.create_engine(config.db_url)
    with engine.connect() as conn:
        keyed = [i["column_names"] for i in sa.inspect(conn).get_indexes("keyed")]
        plain = sa.inspect(conn).get_indexes("plain")
        rows = conn.execute(sa.text("select count(*) from keyed")).scalar()
    assert keyed == [["k", "v"]] and plain == [] and rows == 3


def test_a_key_column_the_table_lacks_is_still_an_error(config):
    run(f"{OLD} | sql_sink table='t'", config)
    with pytest.raises(PipelineError, match=r"key column\(s\) \['model_version'\] are not columns of the existing"):
        run(f"{NEW} | sql_sink table='t', key=['model_version']", config)


def test_csv_append_widens_the_header_and_keeps_every_value_under_its_column(config, tmp_path):
    path = tmp_path / "pred.csv"
    run(f"{OLD} | derive note = 'a, \"quoted\" text' | csv_sink path='{path}'", config)
    before = pd.read_csv(path)
    run(f"{NEW} | csv_sink path='{path}', mode='append'", config)
    after = pd.read_csv(path)
    assert list(after.columns) == ["v", "k", "note", "model_version"]
    assert len(after) == 6
    pd.testing.assert_frame_equal(after.iloc[:3][["v", "k", "note"]], before)  # the old rows, unchanged
    assert after["model_version"].iloc[:3].isna().all() and (after["model_version"].iloc[3:] == "ett/3").all()
    assert after["note"].iloc[3:].isna().all(), "a column the new records lack is left empty"
