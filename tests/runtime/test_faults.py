"""Bad input and faults: each ends in a clear error, without a hang or an orphan process, and what a sink
had already acknowledged stays."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import psutil
import pytest
import sqlalchemy as sa

from airflow_amml import storage
from airflow_amml.run_config import RunConfig
from airflow_amml.runtime.errors import PipelineError
from airflow_amml.runtime.executor import run_pipeline
from compiler import ProgramCache, compile_source

ROOT = Path(__file__).resolve().parents[2]
MODES = ["single", "multiprocess"]


def run(text, mode="multiprocess", **kwargs):
    return run_pipeline(compile_source(text, "faults.amml", cache=ProgramCache()).pipelines[0], mode=mode, **kwargs)


def failure(text, mode="multiprocess", **kwargs):
    me = psutil.Process()
    before = {p.pid for p in me.children(recursive=True)}  # e.g. the session's PostgreSQL and HDFS servers
    with pytest.raises(PipelineError) as info:
        run(text, mode, **kwargs)
    assert [p for p in me.children(recursive=True) if p.pid not in before] == [], "no process is left behind"
    return str(info.value)


@pytest.mark.parametrize("mode", MODES)
def test_missing_file(tmp_path, mode):
    sources = {"gone": {"path": str(tmp_path / "nope.csv")}}
    message = failure("source id='gone' | print", mode, config=RunConfig.from_environment(sources=sources))
    assert "`source` (position 1" in message and "nope.csv does not exist" in message


@pytest.mark.parametrize("mode", MODES)
def test_unreadable_csv_row(tmp_path, mode):
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n3,4,5,6\n")
    config = RunConfig.from_environment(sources={"bad": {"path": str(bad)}})
    message = failure("source id='bad' | print", mode, config=config)
    assert "cannot read" in message and "line 3" in message


@pytest.mark.parametrize("mode", MODES)
def test_an_unreachable_registry_is_named_with_its_hint_once(mode):
    """A component's own error (here the registry's, a closed port) reads as the registry's words, not as a
    Python class name, and its hint is given once, under the component's error."""
    config = RunConfig.from_environment(registry_url="postgresql+psycopg://nobody@127.0.0.1:1/registry")
    message = failure("source id='ett', limit=5 | minmax_scaler model='ett' | print", mode, config=config)
    assert "`minmax_scaler` (position 2" in message
    assert "failed: model registry: registry error: cannot reach" in message
    assert "RegistryError" not in message and message.count("hint: ") == 1, message
    assert "check that the database server is up" in message


def test_a_components_error_with_several_errors_keeps_each_with_its_caret_and_hint():
    """A registered definition that no longer parses fails inside a component: the stage's error carries
    every error of it, each with its line, caret and hint (not a count of them)."""
    from airflow_amml.models.spec import parse_model_spec
    from airflow_amml.runtime.executor import _describe
    from compiler.errors import AmmlError

    with pytest.raises(AmmlError) as info:
        parse_model_spec('name: x\nversion: "0.1"\nbogus: 1\n', "model x:0.1")
    text = _describe(info.value)
    assert text.count("model x:0.1:") == 3 and "unknown top-level key `bogus`" in text
    assert "   3 | bogus: 1\n     | ^" in text and "hint: add `training:` with at least `target: OT`" in text


def test_a_null_warmup_from_a_run_parameter_is_refused_with_a_hint():
    message = failure("source id='ett', warmup=params.w | print", "single", run_params={"w": None})
    assert "`source warmup=None`: expected a whole number ≥ 0" in message and "hint: e.g. warmup=24" in message


def test_unknown_source_lists_the_catalog():
    message = failure("source id='etth' | print")
    assert "unknown data source `etth`" in message and "`ett`" in message and "did you mean" in message


@pytest.mark.parametrize("mode", MODES)
def test_wrong_column_in_a_callback_names_column_and_component(mode):
    message = failure("source id='ett' | filter cond=TO > 1 | print", mode)
    assert "`filter` (position 2 in its pipe, line 1)" in message
    assert "record has no field `TO`" in message and "did you mean `OT`?" in message


@pytest.mark.parametrize("mode", MODES)
def test_type_error_mid_stream_keeps_what_the_sink_acknowledged(mode):
    # the sink commits each batch; the derive fails on a later batch (`date` becomes text only there)
    text = "source id='ett' | derive bad = if(OT > 45, date + 1, 0) | sql_sink table='rows_seen'"
    message = failure(text, mode)
    assert "`derive` (position 2" in message and "cannot apply `+` to str and int" in message


def test_snapshot_saved_before_a_failure_stays_saved(tmp_path):
    # a 2-second stream: the alert fires early and the snapshot is saved; the pipeline fails only at the end
    # of the stream (the summary record of `stats` meets a type error)
    text = textwrap.dedent("""
        readings = normalsource col='v', count=4000, rate=2000, seed=3
        readings | alert cond=v > 2.5, cooldown=1000000
        readings | snapshot size=10
        readings | stats cols=['v'], ops=['mean'] | derive boom = 'x' + v_mean | print
    """)
    program = compile_source(text, "faults.amml", cache=ProgramCache())
    with pytest.raises(PipelineError, match="cannot apply `\\+` to str and float"):
        run_pipeline(program.pipelines[0])
    with storage.engine(RunConfig.from_environment()).connect() as conn:
        alerts = conn.execute(sa.text("select position from amml_alerts")).fetchall()
        snapshot = conn.execute(sa.text("select max(row_position), count(*) from amml_snapshots")).fetchone()
    assert len(alerts) == 1
    assert snapshot == (alerts[0][0], min(10, alerts[0][0] + 1))


@pytest.mark.parametrize("mode", MODES)
def test_sink_that_cannot_write(tmp_path, mode):
    blocked = tmp_path / "file-not-dir"
    blocked.write_text("")
    message = failure(f"source id='ett' | csv_sink path='{blocked}/out.csv'", mode)
    assert "`csv_sink` (position 2" in message


def test_a_component_that_raises_stops_an_endless_source_quickly():
    message = failure("normalsource col='v', count=0 | derive x = v + 'a' | print limit=0")
    assert "`derive`" in message


def test_bad_log_line_names_file_and_line(tmp_path):
    log = tmp_path / "app.log"
    log.write_text('{"level": "info", "ms": 3}\n\n{"level": "error", "ms": 12}\nnot json\n')
    message = failure(f"logsource path='{log}' | print")
    assert f"{log}:4: not a JSON line" in message


def test_third_party_component_through_an_entry_point(tmp_path):
    """A real distribution on sys.path declares `amml.components`; the compiler and runtime pick it up."""
    pkg = tmp_path / "site"
    (pkg / "amml_double").mkdir(parents=True)
    (pkg / "amml_double" / "__init__.py").write_text(
        textwrap.dedent("""
        from airflow_amml.sdk import AbstractProgress, ComponentSpec, Kind, param

        class Double(AbstractProgress):
            spec = ComponentSpec("double", Kind.PROGRESS, "Multiply a column by two.",
                                 (param("col", "str", "column to double"),))

            def process(self, batch):
                out = batch.copy()
                out[self.params["col"]] = out[self.params["col"]] * 2
                return out
    """)
    )
    dist = pkg / "amml_double-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: amml-double\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[amml.components]\ndouble = amml_double:Double\n")
    out = tmp_path / "out.csv"
    script = (
        "from compiler import compile_source\n"
        "from airflow_amml.runtime.executor import run_pipeline\n"
        f"p = compile_source(\"normalsource col='v', count=5, seed=1 | double col='v' | csv_sink path='{out}'\")\n"
        "run_pipeline(p.pipelines[0])\n"
        "try:\n"
        "    compile_source(\"normalsource | double cl='v' | print\")\n"
        "except Exception as exc:\n"
        "    print(exc)\n"
    )
    env = {**__import__("os").environ, "PYTHONPATH": f"{pkg}:{ROOT}"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "`double` has no parameter `cl`" in result.stdout and "did you mean `col`?" in result.stdout
    import numpy as np

    expected = np.random.default_rng(1).normal(0, 1, 5) * 2
    assert np.allclose(pd.read_csv(out)["v"], expected)
