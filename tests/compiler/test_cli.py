"""`amml lint` and `amml compile` as a user runs them (a real subprocess, the installed entry point)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def amml(*args, cwd=ROOT):
    return subprocess.run(
        [sys.executable, "-m", "airflow_amml.cli", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_lint_passes_on_the_shipped_dags():
    result = amml("lint", "dags", "tests/fixtures/paper")
    assert result.returncode == 0, result.stderr
    assert "0 with errors" in result.stdout


def test_lint_reports_every_error_of_every_file_and_exits_1(tmp_path):
    (tmp_path / "good.amml").write_text("normalsource | print\n")
    (tmp_path / "one.amml").write_text("source id='ett' | fitler cond=OT > 1 | print\n")
    (tmp_path / "two.amml").write_text("source id=1 | print\nnormalsource sed=3 | print\n")
    result = amml("lint", tmp_path)
    assert result.returncode == 1
    assert f"{tmp_path / 'one.amml'}:1:19: name error: unknown component `fitler`" in result.stderr
    assert f"{tmp_path / 'two.amml'}:1:11: type error" in result.stderr
    assert f"{tmp_path / 'two.amml'}:2:14: name error" in result.stderr
    assert "3 file(s) checked: 1 ok, 2 with errors (3 error(s))" in result.stderr


def test_lint_of_a_missing_file_is_an_error(tmp_path):
    result = amml("lint", tmp_path / "nope.amml")
    assert result.returncode == 1
    assert "cannot read the file" in result.stderr


def test_compile_emits_bytecode_graph_and_json():
    fig5 = "tests/fixtures/paper/fig5_filter.amml"
    bytecode = amml("compile", fig5)
    assert bytecode.returncode == 0
    assert "WF_MAKE_COMPONENT filter" in bytecode.stdout and "CMP_GT" in bytecode.stdout
    mermaid = amml("compile", "tests/fixtures/paper/fig4_join.amml", "--emit", "graph", "--format", "mermaid")
    assert mermaid.stdout.startswith("flowchart LR") and mermaid.stdout.count("-->") == 5
    dot = amml("compile", fig5, "--emit", "graph", "--format", "dot")
    assert "n0 -> n1;" in dot.stdout
    assert amml("compile", fig5, "--emit", "json").stdout.startswith("{")
    assert "Step(name='filter'" in amml("compile", fig5, "--emit", "ast").stdout


def test_compile_unknown_pipeline_names_the_ones_that_exist():
    result = amml("compile", "tests/fixtures/paper/pipelines.amml", "--pipeline", "trian")
    assert result.returncode == 1
    assert "`prepare`, `train`" in result.stderr and "did you mean `train`?" in result.stderr


def test_components_lists_parameters():
    result = amml("components", "train_lstm")
    assert result.returncode == 0
    assert "epoch: int" in result.stdout


def test_compiler_imports_no_airflow_tensorflow_or_numpy():
    code = (
        "import sys, compiler\n"
        "compiler.compile_source(open('dags/ett_train.amml').read(), 'x.amml')\n"
        "heavy = [m for m in ('airflow', 'tensorflow', 'numpy', 'pandas', 'airflow_amml') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "[]", result.stderr
