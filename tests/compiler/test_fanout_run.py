"""`amml run` of a fanned-out pipeline as a user runs it (a real subprocess): once per item, one after the
other or `--parallel N` at once; an item that fails is named with its item, the others still run, and the exit
status says that one failed. `amml lint` reports fan-out errors with file:line:col."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

FAN = """dag fan { params = {cols: ["p", "q"]} }
pipeline find { normalsource col="v", count=30, seed=4 | derive name="s" + str(v > 0) | items column="name" }
pipeline lit for series in ["col_a", "col_b", "col_c"] { normalsource col=series, count=2, seed=1 | print }
pipeline par for c in params.cols { normalsource col=c, count=2 | print }
pipeline up for c in find.name { normalsource col=c, count=2 | print }
"""
# the second item fails at run time (no such catalog id), the first and third still run
ITEMS = '"nab/artificialNoAnomaly/art_flatline", "nab/none", "nab/artificialNoAnomaly/art_noisy"'
FAILING = f"pipeline p for s in [{ITEMS}] {{\n    source id=s | print limit=0\n}}\n"


def amml(*args, cwd, timeout=240):
    env = {**os.environ, "AMML_HOME": str(Path(cwd) / "home")}
    return subprocess.run([sys.executable, "-m", "airflow_amml.cli", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_run_runs_each_item_and_the_upstreams_items(tmp_path):
    (tmp_path / "fan.amml").write_text(FAN)
    result = amml("run", "fan.amml", "--mode", "single", "--param", 'cols=["p", "zz"]', cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    headers = {line.strip() for line in result.stdout.splitlines()}
    # each item's run printed its own column: the literal list, the --param list, the upstream's items
    assert {"col_a", "col_b", "col_c", "p", "zz", "strue", "sfalse"} <= headers
    assert "q" not in headers, "--param replaced the default list"
    assert "pipeline lit: 3 item(s): 3 ok, 0 failed" in result.stderr
    assert "pipeline up: 2 item(s): 2 ok, 0 failed" in result.stderr


def test_parallel_runs_every_item_in_worker_processes(tmp_path):
    (tmp_path / "fan.amml").write_text(FAN)
    result = amml("run", "fan.amml", "--pipeline", "lit", "--parallel", "2", "--mode", "single", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert {"col_a", "col_b", "col_c"} <= {line.strip() for line in result.stdout.splitlines()}
    assert "pipeline lit: 3 item(s), 2 at a time" in result.stderr


def test_a_failing_item_is_named_and_the_others_still_run(tmp_path):
    (tmp_path / "bad.amml").write_text(FAILING)
    result = amml("run", "bad.amml", "--mode", "single", "--parallel", "2", cwd=tmp_path)
    assert result.returncode == 1
    assert "p: s=nab/none: bad.amml:2:5: pipeline failed: component `source`" in result.stderr, result.stderr[-3000:]
    assert "unknown data source `nab/none`" in result.stderr
    assert "pipeline p: 3 item(s): 2 ok, 1 failed (p: s=nab/none)" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_catalog_glob_matching_nothing_and_a_param_that_is_not_a_list_are_refused(tmp_path):
    (tmp_path / "cat.amml").write_text('pipeline p for s in catalog("nab/none*") { source id=s | print }\n')
    result = amml("run", "cat.amml", cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "catalog(\"nab/none*\") matches none of the catalog's" in result.stderr
    (tmp_path / "fan.amml").write_text(FAN)
    result = amml("run", "fan.amml", "--pipeline", "par", "--param", "cols=3", cwd=tmp_path)
    assert result.returncode == 2 and "--param cols=3: expected a JSON list" in result.stderr


def test_run_of_a_downstream_alone_says_its_items_come_from_the_upstream(tmp_path):
    (tmp_path / "fan.amml").write_text(FAN)
    result = amml("run", "fan.amml", "--pipeline", "up", cwd=tmp_path)
    assert result.returncode == 1
    assert "pipeline up: find.name: the items of pipeline `find` are known only once it has run" in result.stderr


def test_lint_reports_fan_out_errors_with_their_position(tmp_path):
    (tmp_path / "bad.amml").write_text('dag d { params = {s: "x"} }\npipeline p for s in catalog(1) { source id=s '
                                       '| print }\n')
    result = amml("lint", "bad.amml", cwd=tmp_path)
    assert result.returncode == 1
    assert "bad.amml:2:16: name error: the loop variable `s` has the name of a run parameter" in result.stderr
    assert "bad.amml:2:21: type error: `catalog(...)` takes one string" in result.stderr


# the fan-out is written before the pipeline whose items it reads: `amml run` runs `find` first, as Airflow does
REVERSED = """pipeline up for c in find.name { normalsource col=c, count=2 | print }
pipeline find { normalsource col="v", count=30, seed=4 | derive name="s" + str(v > 0) | items column="name" }
"""
# `find` collects nothing (no record has v > 100): the fan-out is skipped, not failed
QUIET = """pipeline find { normalsource col="v", count=30, seed=4 | filter cond=v > 100 | derive name="x"
    | items column="name" }
pipeline up for c in find.name { normalsource col=c, count=2 | print }
"""
# an item fails: what runs after the fan-out does not run
AFTER_FAILED = f"""pipeline p for s in [{ITEMS}] {{ source id=s | print limit=0 }}
pipeline report after p {{ normalsource col="done", count=1 | print }}
"""


def test_run_runs_pipelines_in_dependency_order_not_file_order(tmp_path):
    (tmp_path / "rev.amml").write_text(REVERSED)
    result = amml("run", "rev.amml", "--mode", "single", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert {"strue", "sfalse"} <= {line.strip() for line in result.stdout.splitlines()}
    assert "pipeline up: 2 item(s): 2 ok, 0 failed" in result.stderr


def test_an_upstream_that_collects_no_items_skips_the_fan_out(tmp_path):
    (tmp_path / "quiet.amml").write_text(QUIET)
    result = amml("run", "quiet.amml", "--mode", "single", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "pipeline up: skipped, find.name holds no items" in result.stderr


def test_what_runs_after_a_fan_out_with_a_failed_item_does_not_run(tmp_path):
    (tmp_path / "after.amml").write_text(AFTER_FAILED)
    result = amml("run", "after.amml", "--mode", "single", cwd=tmp_path)
    assert result.returncode == 1
    assert "pipeline report: not run, it runs after p, which failed for some item(s)" in result.stderr
    assert "done" not in {line.strip() for line in result.stdout.splitlines()}
