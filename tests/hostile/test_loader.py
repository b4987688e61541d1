"""Hostile .amml files against the Airflow loader (dags/amml_dags.py → operators/dag_factory.py).

The rule: whatever one file holds, the loader never raises (in Airflow 3.3 that hides every AMML DAG), no
other file's DAG is affected, and the file shows up as a failing `amml_error__…` DAG. And `amml lint` agrees:
what the loader turns into an error DAG, lint reports, so CI catches it before Airflow does.

Airflow reads its configuration at import time, so each load runs in a fresh interpreter with its own
AIRFLOW_HOME (parsing needs no metadata database)."""

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from compiler import AmmlError, ProgramCache, compile_file
from compiler.dag_block import duplicate_dag_ids, error_dag_id

ROOT = Path(__file__).resolve().parents[2]
GOOD = "dag good { schedule = '@daily'; start_date = '2024-01-01' }\nnormalsource | print\n"

# file name → text: each is refused by Airflow (or would break it) and must be refused by `amml lint` too
BAD_FILES = {
    "bad name!.amml": "normalsource | print\n",
    "long_id.amml": f"dag {'x' * 300} {{ }}\nnormalsource | print\n",
    "reserved.amml": "dag amml_error__mine { }\nnormalsource | print\n",
    "start_date.amml": "dag s { start_date = 'yesterday' }\nnormalsource | print\n",
    "ancient.amml": "dag anc { start_date = '0001-01-01' }\nnormalsource | print\n",
    "end_before_start.amml": "dag e { start_date = '2024-02-01'; end_date = '2024-01-01' }\nnormalsource | print\n",
    "timezone.amml": "dag t { schedule = '@daily'; timezone = 'Mars/Olympus_Mons' }\nnormalsource | print\n",
    "cron.amml": "dag c { schedule = '61 * * * *' }\nnormalsource | print\n",
    "cron_never.amml": "dag cn { schedule = '0 0 31 2 *' }\nnormalsource | print\n",
    "cron_seconds.amml": "dag cs { schedule = '* * * * * *' }\nnormalsource | print\n",
    "zero_interval.amml": "dag z { schedule = '0s' }\nnormalsource | print\n",
    "huge_delay.amml": "dag h { retry_delay = '99999999999d' }\nnormalsource | print\n",
    "continuous.amml": "dag co { schedule = '@continuous'; max_active_runs = 4 }\nnormalsource | print\n",
    "long_tag.amml": f"dag lt {{ tags = ['{'t' * 101}'] }}\nnormalsource | print\n",
    "tag_type.amml": "dag tt { tags = [1] }\nnormalsource | print\n",
    "long_owner.amml": f"dag lo {{ owner = '{'o' * 3000}' }}\nnormalsource | print\n",
    "long_description.amml": f"dag ld {{ description = '{'d' * 600}' }}\nnormalsource | print\n",
    "asset.amml": "dag a { schedule = ['airflow://reserved'] }\nnormalsource | print\n",
    "retries.amml": "dag r { retries = 3000000000 }\nnormalsource | print\n",
    "broken.amml": 'source id="ett" | fitler cond=OT > 1 | print\n',
}

LOAD = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
folder = sys.argv[1]
bag = DagBag(dag_folder=folder, bundle_path=folder, bundle_name="dags-folder")
print(json.dumps({
    "import_errors": {str(k): v for k, v in bag.import_errors.items()},
    "dags": {dag_id: {
        "description": dag.description, "doc": dag.doc_md, "tags": sorted(dag.tags),
        "schedule": str(dag.schedule), "paused": dag.is_paused_upon_creation,
        "start": dag.start_date.isoformat() if dag.start_date else None, "tasks": dag.task_ids,
    } for dag_id, dag in bag.dags.items()},
}))
"""


@pytest.fixture
def dags(tmp_path):
    folder = tmp_path / "dags"
    folder.mkdir()
    shutil.copy(ROOT / "dags" / "amml_dags.py", folder)
    (folder / "good.amml").write_text(GOOD)
    return folder


def load(folder, patch="", **env):
    """The DagBag's view of `folder` (as the dag processor sees it), in a fresh interpreter."""
    home = folder.parent / "airflow-home"
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(folder),
        "PYTHONPATH": str(ROOT),
        **env,
    }
    code = textwrap.dedent(patch) + LOAD  # `patch`: Python run first, to make a part of the loader fail
    result = subprocess.run(
        [sys.executable, "-c", code, str(folder)], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def lint(*paths):
    return subprocess.run(
        [sys.executable, "-m", "airflow_amml.cli", "lint", *map(str, paths)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def compiles(path):
    try:
        compile_file(path, cache=ProgramCache())
    except AmmlError:
        return False
    return True


def assert_error_dag(loaded, relative, *fragments):
    dag = loaded["dags"][error_dag_id(relative)]
    assert dag["description"].startswith("AMML ERROR: "), dag["description"]
    assert "amml-error" in dag["tags"]
    assert dag["paused"] is False and dag["schedule"] == "@once", "it runs once, so its failure shows on Home"
    assert dag["tasks"] == ["compile_error"]
    for fragment in fragments:
        assert fragment in dag["doc"], (fragment, dag["doc"][:2000])
    return dag


def test_lint_and_loader_refuse_the_same_files(dags):
    for name, text in BAD_FILES.items():
        (dags / name).write_text(text)
    assert [name for name in BAD_FILES if compiles(dags / name)] == [], "the compiler must refuse each one"
    result = lint(*(dags / name for name in BAD_FILES))
    assert result.returncode == 1
    assert f" ok, {len(BAD_FILES)} with errors ({len(BAD_FILES)} error(s))" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr

    loaded = load(dags)
    assert loaded["import_errors"] == {}, "a bad file must not hide the other DAGs"
    expected = {"good"} | {error_dag_id(name) for name in BAD_FILES}
    assert set(loaded["dags"]) == expected
    assert_error_dag(loaded, "bad name!.amml", "from the file name")
    assert_error_dag(loaded, "long_id.amml", "300 characters")
    assert_error_dag(loaded, "timezone.amml", "Mars/Olympus_Mons")
    assert_error_dag(loaded, "cron_never.amml", "never fires")
    assert_error_dag(loaded, "broken.amml", "broken.amml:1:19", "did you mean `filter`?")


def test_two_files_with_one_dag_id_are_both_errors_naming_each_other(dags):
    shutil.copy(ROOT / "dags" / "ett_train.amml", dags)
    (dags / "sub").mkdir()
    (dags / "sub" / "mine.amml").write_text("dag ett_train { }\nnormalsource | print\n")  # would replace it
    (dags / "good_copy.amml").write_text(GOOD)
    loaded = load(dags)
    assert loaded["import_errors"] == {}
    assert set(loaded["dags"]) == {
        error_dag_id(n) for n in ("ett_train.amml", "sub/mine.amml", "good.amml", "good_copy.amml")
    }
    assert_error_dag(loaded, "ett_train.amml", "`ett_train` is also declared by sub/mine.amml")
    assert_error_dag(loaded, "sub/mine.amml", "`ett_train` is also declared by ett_train.amml")
    assert_error_dag(loaded, "good.amml", "also declared by good_copy.amml")


def test_duplicates_do_not_depend_on_the_order_files_are_seen_in():
    forward = duplicate_dag_ids({"a.amml": "x", "b.amml": "x", "c.amml": "y", "d.amml": "x"})
    backward = duplicate_dag_ids(dict(reversed([("a.amml", "x"), ("b.amml", "x"), ("c.amml", "y"), ("d.amml", "x")])))
    assert (
        forward
        == backward
        == {"a.amml": ["b.amml", "d.amml"], "b.amml": ["a.amml", "d.amml"], "d.amml": ["a.amml", "b.amml"]}
    )


def test_error_dag_ids_are_unique_per_file_and_their_prefix_is_reserved(dags):
    (dags / "a-b.amml").write_text("normalsource | fitler | print\n")
    (dags / "a_b.amml").write_text("normalsource | fitler | print\n")
    (dags / "sneaky.amml").write_text(f"dag {error_dag_id('a_b.amml')} {{ }}\nnormalsource | print\n")
    assert len({error_dag_id("a-b.amml"), error_dag_id("a_b.amml"), error_dag_id("a/b.amml")}) == 3
    loaded = load(dags)
    assert set(loaded["dags"]) == {
        "good",
        error_dag_id("a-b.amml"),
        error_dag_id("a_b.amml"),
        error_dag_id("sneaky.amml"),
    }
    assert_error_dag(loaded, "a_b.amml", "unknown component `fitler`")
    assert_error_dag(loaded, "sneaky.amml", "must not start with `amml_error__`")


def test_a_dag_named_like_a_module_global_does_not_break_the_loader(dags):
    (dags / "dunder.amml").write_text("dag __file__ { }\nnormalsource | print\n")
    (dags / "load_dags.amml").write_text("normalsource | print\n")
    loaded = load(dags)
    assert loaded["import_errors"] == {}
    assert set(loaded["dags"]) == {"good", "__file__", "load_dags"}


def test_airflowignore_uses_airflows_own_rules(dags):
    for folder in ("skipped", "kept", "deep/skipped"):
        (dags / folder).mkdir(parents=True)
    (dags / "skipped" / "one.amml").write_text("dag one { }\nnormalsource | fitler | print\n")
    (dags / "deep" / "skipped" / "two.amml").write_text("dag two { }\nnormalsource | print\n")
    (dags / "kept" / "three.amml").write_text("dag three { }\nnormalsource | print\n")
    (dags / "kept" / "four_draft.amml").write_text("dag four { }\nnormalsource | print\n")
    (dags / ".airflowignore").write_text("# folders end with a slash\nskipped/\n*_draft.amml\n")
    assert set(load(dags)["dags"]) == {"good", "three"}

    (dags / ".airflowignore").write_text(r"kept/.*_draft\.amml" + "\n" + r"^skipped" + "\n")
    loaded = load(dags, AIRFLOW__CORE__DAG_IGNORE_FILE_SYNTAX="regexp")
    assert set(loaded["dags"]) == {"good", "two", "three"}


def test_docs_and_description_are_capped(dags):
    (dags / "huge.amml").write_text("normalsource | fitler | print\n")
    (dags / "fence.amml").write_text("dag fence { }\nnormalsource col='v' | filter cond=v != '```' | print\n")
    huge_error = """
        import operators.dag_factory
        from compiler import SourceError
        compile_file = operators.dag_factory.compile_file
        def huge(path, **kwargs):  # an error text of 5 MB (a probe once made 100 MB)
            if path.name == "huge.amml":
                raise SourceError("unknown component\\n" + "y" * 5_000_000, filename=str(path), line=1, column=16)
            return compile_file(path, **kwargs)
        operators.dag_factory.compile_file = huge
    """
    loaded = load(dags, patch=huge_error)
    huge = assert_error_dag(loaded, "huge.amml", "more characters")
    assert len(huge["doc"]) < 25_000 and len(huge["description"]) < 600
    fence = loaded["dags"]["fence"]
    assert "````\n" in fence["doc"], "a fence longer than any backtick run in the source: no Markdown escapes"


INTERNAL_FAILURES = {
    # the compile cache raising something other than OSError (a lone surrogate did: UnicodeEncodeError)
    "cache": """
        import compiler.cache
        def fail(self, key, program):
            raise UnicodeEncodeError("utf-8", "\\ud800", 0, 1, "surrogates not allowed")
        compiler.cache.ProgramCache.put = fail
    """,
    # Airflow refusing what the compiler let through (here: a cron the check no longer sees)
    # listing the folder failing (unreadable, a symlink loop)
    "folder": """
        import operators.dag_factory
        def fail(folder):
            raise PermissionError(13, "Permission denied", str(folder))
        operators.dag_factory.amml_files = fail
    """,
    "airflow": """
        import compiler.dag_block
        compiler.dag_block.check_cron = lambda expression, start: None
    """,
}


@pytest.mark.parametrize("failure", sorted(INTERNAL_FAILURES))
def test_the_loader_never_raises(dags, failure):
    (dags / "cron.amml").write_text("dag cron { schedule = '61 * * * *' }\nnormalsource | print\n")
    loaded = load(dags, patch=INTERNAL_FAILURES[failure])
    assert loaded["import_errors"] == {}
    if failure == "cache":  # every file fails to compile: each one says so, none raises
        assert set(loaded["dags"]) == {error_dag_id("good.amml"), error_dag_id("cron.amml")}
        assert_error_dag(loaded, "good.amml", "UnicodeEncodeError", "amml lint")
    elif failure == "folder":
        assert set(loaded["dags"]) == {error_dag_id(".")}
        assert_error_dag(loaded, ".", "could not list the .amml files", "Permission denied")
    else:
        assert set(loaded["dags"]) == {"good", error_dag_id("cron.amml")}
        dag = assert_error_dag(loaded, "cron.amml", "AirflowTimetableInvalid")
        assert "Traceback" not in dag["doc"]


def test_inside_a_task_only_its_error_dag_is_built(dags):
    (dags / "broken.amml").write_text(BAD_FILES["broken.amml"])
    loaded = load(dags, _AIRFLOW_PARSING_CONTEXT_DAG_ID=error_dag_id("broken.amml"))
    assert set(loaded["dags"]) == {error_dag_id("broken.amml")}
