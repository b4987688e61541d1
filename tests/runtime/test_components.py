"""Built-in components on real data (ETTh1, the copy shipped in the package), in both executor modes."""

import itertools
import json

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from airflow_amml import storage
from airflow_amml.run_config import RunConfig
from airflow_amml.runtime.errors import PipelineError
from airflow_amml.runtime.executor import run_pipeline
from compiler import ProgramCache, compile_file, compile_source

MODES = ["single", "multiprocess"]


def run(text, mode="multiprocess", **kwargs):
    return run_pipeline(compile_source(text, "test.amml", cache=ProgramCache()).pipelines[0], mode=mode, **kwargs)


def db():
    return storage.engine(RunConfig.from_environment())


def query(sql):
    with db().connect() as conn:
        return conn.execute(sa.text(sql)).fetchall()


@pytest.mark.parametrize("mode", MODES)
def test_source_ett_reads_the_whole_file(tmp_path, ett_path, mode):
    out = tmp_path / "ett.csv"
    run(f"source id='ett' | csv_sink path='{out}'", mode)
    assert pd.read_csv(out).equals(pd.read_csv(ett_path))


def test_source_warmup_reads_records_before_the_window(tmp_path):
    out = tmp_path / "w.csv"
    run(f"source id='ett', start='2017-01-01', end='2017-01-02', warmup=5 | csv_sink path='{out}'")
    dates = pd.read_csv(out)["date"]
    assert len(dates) == 29 and dates.iloc[0] == "2016-12-31 19:00:00" and dates.iloc[5] == "2017-01-01 00:00:00"


def test_source_time_window_reads_only_its_interval(tmp_path):
    out = tmp_path / "day.csv"
    run(f"source id='ett', start='2017-01-01', end='2017-01-02T00:00:00' | csv_sink path='{out}'")
    dates = pd.to_datetime(pd.read_csv(out)["date"])
    assert (
        len(dates) == 24
        and dates.min() == pd.Timestamp("2017-01-01")
        and dates.max() == pd.Timestamp("2017-01-01 23:00")
    )


@pytest.mark.parametrize("mode", MODES)
def test_minmax_scaler_fits_the_stream_and_inverse_restores_it(tmp_path, ett_path, mode):
    scaled, restored = tmp_path / "scaled.csv", tmp_path / "restored.csv"
    run(f"source id='ett' | minmax_scaler | csv_sink path='{scaled}'", mode)
    frame = pd.read_csv(scaled)
    assert frame["OT"].min() == 0 and frame["OT"].max() == 1
    run(f"source id='ett' | minmax_scaler cols=['OT'] | minmax_inverse | csv_sink path='{restored}'", mode)
    assert np.allclose(pd.read_csv(restored)["OT"], pd.read_csv(ett_path)["OT"])


def test_scaler_fit_rows_uses_only_the_first_records(tmp_path, ett_path):
    out = tmp_path / "s.csv"
    run(f"source id='ett' | zscore_scaler cols=['OT'], fit_rows=8640 | csv_sink path='{out}'")
    ot = pd.read_csv(ett_path)["OT"]
    expected = (ot - ot[:8640].mean()) / ot[:8640].std(ddof=0)
    assert np.allclose(pd.read_csv(out)["OT"], expected)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("fit_rows", [None, 100_000])  # the whole stream, or more than one batch of it
def test_scalers_fit_across_batches_as_numpy_does_on_the_whole(tmp_path, mode, fit_rows):
    """150,000 records arrive in three batches; the incremental fit must equal one fit over the records."""
    source = "normalsource col='v', mean=5, std=3, count=150000, seed=3"
    run(f"{source} | parquet_sink path='{tmp_path / 'raw.parquet'}'", mode)
    values = pd.read_parquet(tmp_path / "raw.parquet")["v"].to_numpy()
    fitted = values if fit_rows is None else values[:fit_rows]
    option = "" if fit_rows is None else f" fit_rows={fit_rows}"
    for scaler, expected in [
        ("minmax_scaler", (values - fitted.min()) / (fitted.max() - fitted.min())),
        ("zscore_scaler", (values - fitted.mean()) / fitted.std()),
    ]:
        out = tmp_path / f"{scaler}.parquet"
        result = run(f"{source} | {scaler}{option} | parquet_sink path='{out}'", mode)
        assert result.counters[result.stages[1].id].batches_in >= 3
        assert np.allclose(pd.read_parquet(out)["v"].to_numpy(), expected, rtol=1e-12, atol=1e-12), scaler


@pytest.mark.parametrize("mode", MODES)
def test_stats_over_the_stream_and_a_window(tmp_path, ett_path, mode):
    whole, rolling = tmp_path / "w.csv", tmp_path / "r.csv"
    run(
        f"source id='ett' | stats cols=['OT'], ops=['count', 'mean', 'std', 'min', 'max'] | csv_sink path='{whole}'",
        mode,
    )
    ot = pd.read_csv(ett_path)["OT"]
    row = pd.read_csv(whole).iloc[0]
    assert row["OT_count"] == len(ot)
    assert np.isclose(row["OT_mean"], ot.mean()) and np.isclose(row["OT_std"], ot.std(ddof=0))
    assert row["OT_min"] == ot.min() and row["OT_max"] == ot.max()
    run(f"source id='ett' | stats cols=['OT'], ops=['mean'], window=24 | csv_sink path='{rolling}'", mode)
    assert np.allclose(pd.read_csv(rolling)["OT_mean"], ot.rolling(24, min_periods=1).mean())


def test_select_drop_rename_derive(tmp_path):
    out = tmp_path / "o.csv"
    run(
        f"source id='ett', limit=10 | select cols=['date', 'OT'] | derive F = OT * 9 / 5 + 32, hot = OT > 20 "
        f"| rename OT='oil' | drop cols=['date'] | csv_sink path='{out}'"
    )
    frame = pd.read_csv(out)
    assert list(frame.columns) == ["oil", "F", "hot"]
    assert np.allclose(frame["F"], frame["oil"] * 9 / 5 + 32)
    assert (frame["hot"] == (frame["oil"] > 20)).all()


@pytest.mark.parametrize("mode", MODES)
def test_alert_records_and_snapshot_saves_the_records_before_it(mode):
    program = compile_file("dags/ett_watch.amml", cache=ProgramCache())
    run_pipeline(program.pipeline("hot_oil"), run_params=program.dag["params"], mode=mode)
    alerts = query("select position, record from amml_alerts order by position")
    ett = pd.read_csv(storage.os.environ["AMML_ETT_PATH"])
    hot = ett.index[(ett["OT"] > 40) & (ett["HUFL"] > 10)]
    assert alerts[0][0] == hot[0] and json.loads(alerts[0][1])["OT"] == ett["OT"][hot[0]]
    assert all(b[0] - a[0] > 24 for a, b in itertools.pairwise(alerts)), "cooldown=24 spaces the alerts"
    snapshots = query(
        "select alert_position, count(*), max(row_position), min(row_position) "
        "from amml_snapshots group by snapshot_id order by alert_position"
    )
    assert [s[0] for s in snapshots] == [a[0] for a in alerts], "one snapshot per alert"
    for position, count, last, first in snapshots:
        assert last == position and count == min(48, position + 1) and first == position - count + 1


def test_sql_sink_with_a_key_is_idempotent():
    text = "source id='ett', limit=100 | sql_sink table='ett_rows', key=['date']"
    run(text)
    run(text)
    assert query("select count(*), count(distinct date) from ett_rows")[0] == (100, 100)


def test_parquet_sink_writes_atomically(tmp_path):
    out = tmp_path / "o.parquet"
    run(f"source id='ett', start='2017-01-01', end='2017-01-02' | parquet_sink path='{out}'")
    assert len(pd.read_parquet(out)) == 24
    with pytest.raises(PipelineError):
        run(f"source id='ett' | derive x = OT + 'a' | parquet_sink path='{tmp_path / 'bad.parquet'}'")
    assert not list(tmp_path.glob("bad.parquet*")), "a failed run leaves no partial file"


def test_window_spans_batch_boundaries(tmp_path, ett_path, monkeypatch):
    import airflow_amml.runtime.executor as executor

    monkeypatch.setattr(executor, "BATCH_ROWS", 1000)  # many batches (single mode runs in this process)
    out = tmp_path / "w.csv"
    run(f"source id='ett' | window size=24, step=5, cols=['OT'] | csv_sink path='{out}'", "single")
    ot = pd.read_csv(ett_path)["OT"].to_numpy()
    frame = pd.read_csv(out)
    starts = range(0, len(ot) - 23, 5)
    assert len(frame) == len(starts)
    for k in (0, 11, 23):
        assert np.allclose(frame[f"OT_{k}"], [ot[s + k] for s in starts])


def test_logsource_reads_json_lines_and_regex(tmp_path):
    log = tmp_path / "app.log"
    log.write_text('{"level": "info", "ms": 3}\n{"level": "error", "ms": 12}\n')
    out = tmp_path / "o.csv"
    run(f"logsource path='{log}' | filter cond=ms > 5 | csv_sink path='{out}'")
    assert pd.read_csv(out).to_dict("records") == [{"level": "error", "ms": 12}]
    text = tmp_path / "web.log"
    text.write_text("GET /a 200\nPOST /b 500\n")
    run(
        f"logsource path='{text}', format='regex', pattern='(?P<verb>\\\\w+) (?P<path>\\\\S+) (?P<status>\\\\d+)' "
        f"| filter cond=int(status) >= 500 | csv_sink path='{out}'"
    )
    assert pd.read_csv(out).to_dict("records") == [{"verb": "POST", "path": "/b", "status": 500}]


def test_sql_source_with_a_time_window(tmp_path, ett_path):
    url = f"sqlite:///{tmp_path / 'src.db'}"
    ett = pd.read_csv(ett_path, parse_dates=["date"])
    ett.to_sql("readings", sa.create_engine(url), index=False)
    out = tmp_path / "o.csv"
    sources = {"db": {"url": url, "table": "readings", "time_column": "date"}}
    run(
        f"source id='db', start='2017-03-01', end='2017-03-03', cols=['date', 'OT'] | csv_sink path='{out}'",
        config=RunConfig.from_environment(sources=sources),
    )
    frame = pd.read_csv(out)
    assert list(frame.columns) == ["date", "OT"] and len(frame) == 48
