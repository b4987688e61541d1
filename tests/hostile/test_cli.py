"""The `amml` command line under hostile use, as a user runs it (a real subprocess): signals, bad options
and `--param` values, missing, binary and folder paths, files of the wrong kind, registry errors. The answer is
always one message and an exit status (1 input, 2 usage, 128 + signal), never a traceback."""

import os
import signal
import subprocess
import sys

import psutil
import pytest

from tests.conftest import ROOT

ENDLESS = 'normalsource col="v", mean=0, std=1, count=0 | print\n'
MODEL = """\
name: tiny
version: "0.1"
model:
  layers:
    - {type: LSTM, units: 8}
    - {type: Dense, units: 1}
training: {window: 12, target: OT}
"""


def amml(*args, cwd=ROOT, **kwargs):
    return subprocess.run(
        [sys.executable, "-m", "airflow_amml.cli", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        **kwargs,
    )


def no_traceback(result):
    assert "Traceback" not in result.stderr, result.stderr
    assert "Traceback" not in result.stdout, result.stdout


# ---- signals -----------------------------------------------------------------------------------------------


def start_endless(tmp_path, *options):
    """`amml run` of a pipeline that never ends, once its records are flowing (its first line printed)."""
    path = tmp_path / "endless.amml"
    path.write_text(ENDLESS)
    proc = subprocess.Popen(
        [sys.executable, "-m", "airflow_amml.cli", "run", str(path), *options],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "v", proc.stderr.read()  # the column header of `print`
    return proc, psutil.Process(proc.pid).children(recursive=True)


@pytest.mark.parametrize(
    ("sig", "status", "mode"),
    [(signal.SIGTERM, 143, "multiprocess"), (signal.SIGINT, 130, "multiprocess"), (signal.SIGTERM, 143, "single")],
)
def test_a_signal_stops_amml_run_with_one_line_and_128_plus_the_signal(tmp_path, sig, status, mode):
    proc, children = start_endless(tmp_path, "--mode", mode)
    assert mode == "single" or {c.name() for c in children} >= {"amml:normalsource", "amml:print"}
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == status, stderr
    assert stderr.rstrip().splitlines()[-1] == f"amml: stopped by {signal.Signals(sig).name}"
    assert "Traceback" not in stderr, stderr
    assert not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]


# ---- usage errors: exit 2 ------------------------------------------------------------------------------------

PARAMS = 'dag d {\n    params = {n: 3, rate: 0.5, name: "x", on: true}\n}\nnormalsource count=params.n | print\n'


@pytest.mark.parametrize(
    ("option", "words"),
    [
        ("n", "expected KEY=VALUE"),
        ("=3", "expected KEY=VALUE"),
        ("x.y=3", "expected KEY=VALUE"),
        ("m=3", "declares no parameter `m`; it declares `n`, `name`, `on`, `rate`"),
        ("nn=3", "did you mean `n`"),
        ("n=abc", "--param n=abc: expected an integer (the default is 3)"),
        ("n=2.5", "expected an integer"),
        ("n=true", "expected an integer"),
        ("rate=NaN", "expected a number"),
        ("rate=[1]", "expected a number"),
        ("on=1", "expected true or false"),
    ],
)
def test_bad_param_values_are_usage_errors(tmp_path, option, words):
    (tmp_path / "p.amml").write_text(PARAMS)
    result = amml("run", tmp_path / "p.amml", "--param", option)
    assert result.returncode == 2, result.stderr
    assert words in result.stderr and result.stderr.startswith("amml run: error: --param")
    no_traceback(result)


def test_good_param_values_are_typed_like_their_defaults(tmp_path):
    (tmp_path / "p.amml").write_text(PARAMS)
    result = amml("run", tmp_path / "p.amml", "--param", "n=2", "--param", "name=0.1", "--param", "rate=1")
    assert result.returncode == 0, result.stderr
    # the run's summary table: `print` received the n=2 records the typed param asked for
    [row] = [line.split() for line in result.stderr.splitlines() if line.strip().startswith("print ")]
    assert row[:3] == ["print", "2", "0"], result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["run", "x.amml", "--batch-rows", "0"],
        ["run", "x.amml", "--batch-rows", "many"],
        ["run", "x.amml", "--flush-delay", "nan"],
        ["run", "x.amml", "--flush-delay", "-1"],
        ["model", "gc", "--grace", "-5"],
        ["model", "gc", "--grace", "inf"],
        ["compile", "x.amml", "--emit", "python"],
        ["frobnicate"],
    ],
)
def test_bad_options_are_usage_errors(args):
    result = amml(*args)
    assert result.returncode == 2 and "error:" in result.stderr, result.stderr
    no_traceback(result)


def test_model_commands_with_missing_parts_are_usage_errors(tmp_path):
    (tmp_path / "m.keras").write_bytes(b"PK")
    result = amml("model", "register", tmp_path / "m.keras")
    assert result.returncode == 2 and "needs --definition NAME:VERSION" in result.stderr
    result = amml("model", "alias", "champion", "ett")
    assert result.returncode == 2 and "expected NAME/VERSION such as ett/3" in result.stderr
    no_traceback(result)


# ---- input errors: exit 1, one message -----------------------------------------------------------------------


@pytest.fixture
def odd_files(tmp_path):
    (tmp_path / "folder.amml").mkdir()
    (tmp_path / "binary.amml").write_bytes(b"\x00\xff\xfe" * 100)
    (tmp_path / "binary.yaml").write_bytes(b"\x00\xff\xfe" * 100)
    (tmp_path / "notes.txt").write_text("hello\n")
    (tmp_path / "fig.amml").write_text("normalsource | print\n")
    return tmp_path


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["run", "{d}/missing.amml"], "missing.amml: error: cannot read the file: No such file"),
        (["run", "{d}/folder.amml"], "cannot read the file: Is a directory"),
        (["run", "{d}/binary.amml"], "binary.amml: error: file is not UTF-8 text"),
        (["run", "{d}/fig.amml", "--pipeline", "trian"], "no pipeline `trian`"),
        (["compile", "{d}/fig.amml", "--pipeline", "trian"], "no pipeline `trian`"),
        (["compile", "{d}/binary.amml"], "file is not UTF-8 text"),
        (["compile", "{d}/missing.amml", "--emit", "ast"], "cannot read the file"),
        (["compile", "{d}"], "cannot read the file: Is a directory"),
        (["components", "fitler"], "unknown component `fitler`"),
        (["lint", "{d}/notes.txt"], "notes.txt: not an .amml pipeline, a .yaml/.yml model file or a folder"),
        (["lint", "{d}/nope.txt"], "nope.txt: no such file or folder"),
        (["lint", "{d}/binary.yaml"], "binary.yaml: model error: file is not UTF-8 text"),
        (["lint", "{d}/missing.yaml"], "missing.yaml: model error: cannot read the file"),
        (["model", "register", "{d}/binary.yaml"], "file is not UTF-8 text"),
        (["model", "register", "{d}", "--definition", "ett:0.1"], "is not a file"),
        (["model", "register", "{d}/nope.keras", "--definition", "ett:0.1"], "does not exist"),
        (["model", "show", "nothing@here"], "model registry: model not found"),
        (["model", "show", "../../etc"], "model registry: invalid value"),
        (["model", "alias", "champion", "ett/" + "9" * 5000], "model registry: invalid value"),
        (["model", "alias", "bad alias!", "ett/1"], "model registry: invalid value"),
    ],
)
def test_bad_input_is_one_message_and_exit_1(odd_files, args, words):
    result = amml(*(a.format(d=odd_files) for a in args), env={**os.environ, "AMML_HOME": str(odd_files / "h")})
    assert result.returncode == 1, (result.returncode, result.stderr)
    assert words in result.stderr, result.stderr
    no_traceback(result)


def test_lint_checks_a_yaml_file_as_a_model_not_as_a_pipeline(tmp_path):
    (tmp_path / "good.yaml").write_text(MODEL)
    (tmp_path / "bad.yml").write_text(MODEL.replace("units: 8", "units: 65536"))
    (tmp_path / "deep.yaml").write_text("model: " + "[" * 1000 + "]" * 1000 + "\ntraining: {}\n")
    result = amml("lint", tmp_path / "good.yaml")
    assert result.returncode == 0 and "1 file(s) checked: 1 ok" in result.stdout, result.stderr
    result = amml("lint", tmp_path / "bad.yml", tmp_path / "deep.yaml")
    assert result.returncode == 1
    assert f"{tmp_path / 'bad.yml'}:5:27: model error: `units` of layer 1 (`LSTM`) must be ≤ 4096" in result.stderr
    assert f"{tmp_path / 'deep.yaml'}:1:39: model error: the YAML nests values deeper than 32" in result.stderr
    assert "2 file(s) checked: 0 ok, 2 with errors" in result.stderr
    no_traceback(result)


def test_lint_of_a_folder_checks_both_kinds_and_each_file_once(tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "tiny.yaml").write_text(MODEL)
    (tmp_path / "models" / "deep.yaml").write_text("model: " + "[" * 1000 + "]" * 1000 + "\ntraining: {}\n")
    (tmp_path / "train.amml").write_text('normalsource col="OT" | train_lstm model="tiny:0.1" | print\n')
    result = amml("lint", tmp_path, tmp_path / "models" / "tiny.yaml", tmp_path / "train.amml")
    assert result.returncode == 1
    assert "deep.yaml:1:39" in result.stderr and "train.amml" not in result.stderr  # tiny:0.1 is still defined
    assert "3 file(s) checked: 2 ok, 1 with errors (1 error(s))" in result.stderr
    no_traceback(result)


def test_a_closed_pipe_is_not_a_traceback():
    proc = subprocess.Popen(
        f"{sys.executable} -m airflow_amml.cli components | head -c 10",
        shell=True,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out, err = proc.communicate(timeout=60)
    assert len(out) == 10 and "Traceback" not in err and "BrokenPipe" not in err, err


def test_an_unexpected_failure_is_one_line_unless_debugging(monkeypatch, capsys):
    """A bug (here: a command that raises RuntimeError) is reported on one line naming the error;
    AMML_DEBUG=1 lets the traceback through."""
    from airflow_amml import cli

    def broken(args):
        raise RuntimeError("something internal")

    monkeypatch.setitem(cli.MODEL_COMMANDS, "list", broken)
    before = signal.getsignal(signal.SIGTERM)
    assert cli.main(["model", "list"]) == 1
    err = capsys.readouterr().err
    assert (
        err == "amml: unexpected RuntimeError: something internal (this is a bug; AMML_DEBUG=1 shows the traceback)\n"
    )
    monkeypatch.setenv("AMML_DEBUG", "1")
    with pytest.raises(RuntimeError, match="something internal"):
        cli.main(["model", "list"])
    assert signal.getsignal(signal.SIGTERM) == before  # main() put back the handler it replaced


def test_lint_refuses_two_files_with_one_dag_id_as_the_loader_does(tmp_path):
    (tmp_path / "mine.amml").write_text('dag ett_train { schedule = null }\nnormalsource col="v", count=1 | print\n')
    (tmp_path / "ett_train.amml").write_text('normalsource col="v", count=1 | print\n')  # named by its file
    (tmp_path / "other.amml").write_text('normalsource col="v", count=1 | print\n')
    result = amml("lint", tmp_path)
    assert result.returncode == 1
    assert f"mine.amml: name error: the DAG id `ett_train` is also declared by {tmp_path}/ett_train.amml" in (
        result.stderr
    )
    assert f"ett_train.amml: name error: the DAG id `ett_train` is also declared by {tmp_path}/mine.amml" in (
        result.stderr
    )
    assert "3 file(s) checked: 1 ok, 2 with errors (2 error(s))" in result.stderr
    no_traceback(result)
