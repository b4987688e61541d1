"""Hostile model YAML and what training does with it: deep or aliased documents, huge files, absurd sizes, a
broken file next to good ones, a stream too large to train on, a model file that is not what its definition
says, and TensorFlow's start-up noise. Every refusal names file:line:column (or the component) and a limit."""

import os
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from airflow_amml.components.lstm import definition_yaml
from airflow_amml.models import keras_builder, spec
from airflow_amml.models.spec import (
    MAX_FILE_BYTES,
    MAX_PARAMETERS,
    AmmlModelError,
    estimate_training,
    find_model_files,
    load_model_spec,
    parse_model_spec,
    train_memory_limit,
)
from airflow_amml.registry import ModelRegistry
from airflow_amml.run_config import RunConfig
from airflow_amml.runtime.errors import PipelineError
from airflow_amml.runtime.executor import run_pipeline
from compiler import ProgramCache, compile_source
from compiler.errors import AmmlCompileErrors
from tests.conftest import ROOT

GOOD = """\
name: tiny
version: "0.1"
model:
  layers:
    - {type: LSTM, units: 8}
    - {type: Dense, units: 1}
training:
  epochs: 2
  batch_size: 64
  window: 12
  target: OT
"""
DEEP = "[" * 1000 + "]" * 1000
LAUGHS = (
    'name: lol\nversion: "1"\n'
    "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
    "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
    "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
    "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
    "f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
    "g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]\n"
    "h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g, *g]\n"
    "model: {layers: [{type: Dense, units: 1, <<: {z: *h}}]}\ntraining: {target: OT}\n"
)


def edit(old, new, text=GOOD):
    assert old in text, old
    return text.replace(old, new, 1)


def refused(text, filename="m.yaml") -> AmmlModelError:
    with pytest.raises(AmmlModelError) as info:
        parse_model_spec(text, filename)
    return info.value


def located(e, line, column, *words):
    assert (e.line, e.column) == (line, column), str(e)
    assert str(e).startswith(f"m.yaml:{line}:{column}: model error: "), str(e)
    for w in words:
        assert w in e.message, (w, e.message)


# ---- the YAML itself ---------------------------------------------------------------------------------------


def test_deep_yaml_is_refused_at_its_position_not_a_recursion_error():
    e = refused(edit("training:\n", f"extra: {DEEP}\ntraining:\n"))
    located(e, 7, 39, "deeper than 32 levels")
    e = refused("model:\n" + "".join(f"{'  ' * i}k{i}:\n" for i in range(1, 100)) + "training: {}\n")
    assert e.line == 32 and "deeper than 32" in e.message  # k31: the 33rd level (the root mapping is the first)


def test_billion_laughs_is_refused_before_it_expands():
    start = time.process_time()
    e = refused(LAUGHS)
    assert time.process_time() - start < 5  # expanded, it would be 10^8 values: minutes and gigabytes
    assert "more than 10,000 values (aliases expanded)" in e.message and e.line == 6


def test_an_alias_inside_itself_is_refused():
    located(refused(edit("training:\n", "loop: &a [*a]\ntraining:\n")), 7, 11, "refers to the value that contains it")
    located(refused(edit("training:\n", "loop: &a {<<: *a}\ntraining:\n")), 7, 15, "contains it")


def test_an_oversized_file_is_refused_without_reading_it_all(tmp_path):
    huge = tmp_path / "huge.yaml"
    huge.write_text(GOOD + "# " + "x" * (4 * MAX_FILE_BYTES) + "\n")
    with pytest.raises(AmmlModelError, match=r"limited to 256\.0 KiB"):
        load_model_spec(huge)
    with pytest.raises(AmmlModelError, match=r"limited to 256\.0 KiB"):
        parse_model_spec(huge.read_text())
    assert find_model_files(tmp_path) == [huge]  # listed (it says it is a model), so loading it says why not


def test_a_device_named_yaml_is_read_no_further_than_the_limit(tmp_path):
    (tmp_path / "zero.yaml").symlink_to("/dev/zero")
    with pytest.raises(AmmlModelError, match="limited to"):
        load_model_spec(tmp_path / "zero.yaml")


def test_numbers_and_strings_that_are_too_long():
    located(refused(edit("units: 8}", "units: " + "9" * 5000 + "}")), 5, 27, "must be a number", "5,000 characters")
    located(refused(edit("target: OT", "target: " + "x" * 300)), 11, 11, "300 characters long; at most 256")
    located(refused(edit("epochs: 2", "x" * 300 + ": 2")), 8, 3, "must be names", "300 characters")
    long_description = edit('version: "0.1"\n', 'version: "0.1"\ndescription: ' + "d" * 20_000 + "\n")
    located(refused(long_description), 3, 14, "`description` is 20,000 characters long")


# ---- sizes ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "line", "column", "words"),
    [
        ("units: 8}", "units: 65536}", 5, 27, ["`units` of layer 1 (`LSTM`) must be ≤ 4096; got 65536"]),
        ("window: 12", "window: 8000", 10, 11, ["`training.window` must be ≤ 2048; got 8000"]),
        ("epochs: 2", "epochs: 1000000000", 8, 11, ["`training.epochs` must be ≤ 100000"]),
        ("batch_size: 64", "batch_size: 10000000", 9, 15, ["`training.batch_size` must be ≤ 65536"]),
        ("units: 1}", "units: 2000}", 11, 12, ["`training.horizon` must be ≤ 1024"]),  # and units 2000
        ("  target: OT", "  target: OT\n  horizon: 5000", 12, 12, ["`training.horizon` must be ≤ 1024"]),
        ("  target: OT", "  target: OT\n  optimizer: {name: sgd, learning_rate: 1e9}", 12, 41, ["must be ≤ 10"]),
        (
            "  target: OT",
            "  target: OT\n  early_stopping: {patience: 99999999, monitor: loss}",
            12,
            30,
            ["patience` must be ≤ 10000"],
        ),
    ],
)
def test_per_key_maxima(old, new, line, column, words):
    text = edit(old, new)
    if "units: 2000}" in new:
        text = edit("window: 12", "window: 12\n  horizon: 2000", text)
    with pytest.raises((AmmlModelError, AmmlCompileErrors)) as info:
        parse_model_spec(text, "m.yaml")
    errors = info.value.errors if isinstance(info.value, AmmlCompileErrors) else [info.value]
    assert any((e.line, e.column) == (line, column) and all(w in e.message for w in words) for e in errors), [
        str(e) for e in errors
    ]


def test_too_many_layers_and_features():
    layers = "".join("    - {type: Dense, units: 4}\n" for _ in range(40))
    located(refused(edit("    - {type: LSTM, units: 8}\n", layers)), 37, 7, "41 layers; at most 32")
    features = "[" + ", ".join(f"c{i}" for i in range(2000)) + "]"
    located(refused(edit("  target: OT", f"  target: OT\n  features: {features}")), 12, 13, "2,000 columns")


def test_parameters_are_counted_and_capped():
    e = refused(edit("units: 8}", "units: 8000}"))
    assert "must be ≤ 4096" in e.message  # one key first: its maximum
    # stacked: the first must return sequences, so fix that first and the count is what is left
    text = edit(
        "    - {type: LSTM, units: 8}\n",
        "    - {type: LSTM, units: 4096, return_sequences: true}\n    - {type: LSTM, units: 4096}\n",
    )
    e = refused(text)
    assert "134," in e.message and f"at most {MAX_PARAMETERS:,}" in e.message and e.line == 6  # the biggest layer
    assert e.hint and "fewer units" in e.hint
    ett = load_model_spec(ROOT / "dags" / "models" / "ett-0.1.yaml")
    assert estimate_training(ett).parameters == 4 * (32 * (7 + 32) + 32) + 33  # what Keras counts: 5,153


def test_training_memory_is_estimated_and_capped(monkeypatch):
    e = refused(edit("batch_size: 64", "batch_size: 65536", edit("units: 8}", "units: 2048}")))
    located(e, 9, 15, "training model tiny:0.1 needs about", "GiB", "the limit is 4.0 GiB (AMML_TRAIN_MEMORY_LIMIT)")
    assert "batch_size" in e.hint and "AMML_TRAIN_MEMORY_LIMIT" in e.hint
    monkeypatch.setenv("AMML_TRAIN_MEMORY_LIMIT", "100KiB")
    assert train_memory_limit() == 100 * 1024
    assert "the limit is 100.0 KiB" in refused(GOOD).message
    monkeypatch.setenv("AMML_TRAIN_MEMORY_LIMIT", "lots")
    e = refused(GOOD)
    assert "AMML_TRAIN_MEMORY_LIMIT='lots' is not a memory size" in e.message and "8GiB" in e.hint
    for raw, size in (("8GiB", 8 * 1024**3), ("512M", 512 * 1024**2), ("2e9", 2 * 10**9), ("1000", 1000)):
        monkeypatch.setenv("AMML_TRAIN_MEMORY_LIMIT", raw)
        assert train_memory_limit() == size


# ---- one bad model file among good ones --------------------------------------------------------------------


def test_a_broken_model_file_does_not_break_the_others(tmp_path, caplog):
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "good.yaml").write_text(GOOD)
    (folder / "deep.yaml").write_text(f"model: {DEEP}\ntraining: {{target: OT}}\n")
    (folder / "laughs.yaml").write_text(LAUGHS)
    assert {p.name for p in find_model_files(folder)} == {"good.yaml", "deep.yaml", "laughs.yaml"}
    registry = ModelRegistry.from_config()
    assert definition_yaml(registry, "tiny:0.1", RunConfig.from_environment(model_paths=[folder])) == GOOD
    assert "skipping the model file" in caplog.text and "deep.yaml" in caplog.text
    with pytest.raises(PipelineError, match="its model file has errors") as info:  # the broken one is asked for
        definition_yaml(registry, "lol:1", RunConfig.from_environment(model_paths=[folder]))
    assert "laughs.yaml:6:4" in str(info.value)
    with pytest.raises(PipelineError, match="2 model file\\(s\\) have errors"):
        definition_yaml(registry, "other:1", RunConfig.from_environment(model_paths=[folder]))


# ---- at train time -----------------------------------------------------------------------------------------


def test_train_lstm_stops_when_the_stream_outgrows_the_budget(tmp_path, monkeypatch):
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "tiny.yaml").write_text(GOOD)
    lint_time = estimate_training(parse_model_spec(GOOD)).total_bytes
    monkeypatch.setenv("AMML_TRAIN_MEMORY_LIMIT", str(lint_time + 2 * 1024**2))  # fits, with room for ~2 MiB
    parse_model_spec(GOOD)  # lint passes
    text = "normalsource col='OT', mean=0, std=1, count=200000 | train_lstm model='tiny:0.1' | print"
    program = compile_source(text, "big.amml", cache=ProgramCache())
    with pytest.raises(PipelineError) as info:
        run_pipeline(program.pipelines[0], config=RunConfig.from_environment(model_paths=[folder]), mode="single")
    e = info.value
    assert e.component == "train_lstm" and "`train_lstm` stopped after" in e.message
    assert "the limit is 2." in e.message and "(AMML_TRAIN_MEMORY_LIMIT)" in e.message


@pytest.mark.parametrize(("key", "value"), [("epoch", 10**12), ("batch_size", 0), ("holdout", -5)])
def test_train_lstm_parameters_are_bounded(tmp_path, key, value):
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "tiny.yaml").write_text(GOOD)
    text = f"normalsource col='OT', mean=0, std=1, count=100 | train_lstm model='tiny:0.1', {key}={value} | print"
    program = compile_source(text, "p.amml", cache=ProgramCache())
    with pytest.raises(PipelineError, match=f"`train_lstm {key}={value}`: expected"):
        run_pipeline(program.pipelines[0], config=RunConfig.from_environment(model_paths=[folder]), mode="single")


def test_a_bad_promote_alias_fails_before_any_training(tmp_path, monkeypatch):
    from airflow_amml.models import keras_builder as builder

    def no_training(*args, **kwargs):
        raise AssertionError("training started although the alias can never be set")

    monkeypatch.setattr(builder, "train", no_training)
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "tiny.yaml").write_text(GOOD)
    text = "normalsource col='OT', count=100 | train_lstm model='tiny:0.1', promote='../champion' | print"
    program = compile_source(text, "p.amml", cache=ProgramCache())
    with pytest.raises(PipelineError) as info:
        run_pipeline(program.pipelines[0], config=RunConfig.from_environment(model_paths=[folder]), mode="single")
    assert "`train_lstm promote=`" in info.value.message and info.value.hint, str(info.value)


def test_keras_train_refuses_a_frame_over_the_budget_before_windowing(monkeypatch):
    tiny = parse_model_spec(GOOD)
    monkeypatch.setenv("AMML_TRAIN_MEMORY_LIMIT", str(estimate_training(tiny).total_bytes + 1024))
    frame = pd.DataFrame({"OT": np.zeros(100_000)})
    with pytest.raises(ValueError, match=r"training model tiny:0\.1 needs about"):
        keras_builder.train(tiny, frame)
    with pytest.raises(ValueError, match="epochs must be an integer from 1 to 100,000"):
        keras_builder.train(tiny, frame, epochs=10**9)


def test_predict_builds_windows_a_chunk_at_a_time_and_gives_the_same_forecasts(monkeypatch):
    tiny = parse_model_spec(GOOD)
    model = keras_builder.build_model(tiny)
    frame = pd.DataFrame({"OT": np.sin(np.arange(500) / 10)})
    whole = keras_builder.predict(model, tiny, frame)
    monkeypatch.setattr(keras_builder, "PREDICT_CHUNK_BYTES", 12 * 4 * 7)  # 7 windows at a time
    built = []
    real = keras_builder._input_windows
    monkeypatch.setattr(keras_builder, "_input_windows", lambda f, s: built.append(len(f)) or real(f, s))
    chunked = keras_builder.predict(model, tiny, frame)
    assert max(built) == 7 + 12 - 1 and len(built) == -(-489 // 7)
    np.testing.assert_allclose(chunked, whole, rtol=1e-6)


def test_a_model_file_that_is_not_its_definition_is_refused(tmp_path):
    tiny = parse_model_spec(GOOD)
    other = parse_model_spec(edit("window: 12", "window: 24"))
    path = keras_builder.save_model(keras_builder.build_model(other), tmp_path / "m.keras")
    assert keras_builder.load_model(path, other) is not None
    with pytest.raises(ValueError, match="it was not built from this definition"):
        keras_builder.load_model(path, tiny)
    (tmp_path / "junk.keras").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match=r"is not a readable \.keras file"):
        keras_builder.load_model(tmp_path / "junk.keras", tiny)


def test_model_memory_limits_are_documented_with_their_values():
    assert (spec.MAX_UNITS, spec.MAX_WINDOW, spec.MAX_LAYERS, spec.MAX_PARAMETERS) == (4096, 2048, 32, 50_000_000)
    assert spec.DEFAULT_TRAIN_MEMORY == 4 * 1024**3


# ---- TensorFlow's noise --------------------------------------------------------------------------------------

TRAIN_AND_PREDICT = f"""
import numpy as np, pandas as pd
from airflow_amml.models import keras_builder
from airflow_amml.models.spec import parse_model_spec
spec = parse_model_spec({GOOD!r})
frame = pd.DataFrame({{"OT": np.sin(np.arange(200) / 10)}})
model, history = keras_builder.train(spec, frame, epochs=1)
print(keras_builder.predict(model, spec, frame).shape)
import tensorflow as tf
print([d.device_type for d in tf.config.list_physical_devices()])
"""


def run_python(code, **env):
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TF_")}
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env={**clean, **env}, capture_output=True, text=True, timeout=300
    )


def test_training_and_prediction_on_a_cpu_print_no_tensorflow_errors():
    assert not keras_builder._has_gpu_device()  # the CI machines have no GPU: this is the case being tested
    result = run_python(TRAIN_AND_PREDICT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:2] == ["(189, 1)", "['CPU']"]
    for noise in ("cuInit", "cuda", "oneDNN", "absl::InitializeLog", "cpu_feature_guard"):
        assert noise not in result.stderr, result.stderr
    assert not [line for line in result.stderr.splitlines() if keras_builder._ABSL_LINE.match(line.encode())]


def test_a_user_who_asks_for_tensorflow_logs_gets_them():
    result = run_python(TRAIN_AND_PREDICT, TF_CPP_MIN_LOG_LEVEL="0")
    assert result.returncode == 0, result.stderr
    assert "oneDNN custom operations are on" in result.stderr


def test_the_startup_filter_keeps_python_output_errors_and_fatal_lines():
    keep = [b"Traceback (most recent call last):", b"E0000 00:00:17.1  7 cuda_dnn.cc:1] real error", b"x"]
    drop = [
        b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
        b"I0000 00:00:1796116550.827060    7232 port.cc:153] oneDNN custom operations are on.",
        b"W0000 00:00:1796116550.827060    7232 stub.cc:3] a warning",
    ]
    assert [keras_builder._drop(line, 2, False) for line in keep] == [False, False, False]
    assert [keras_builder._drop(line, 2, False) for line in drop] == [True, True, True]
    assert keras_builder._drop(b"To enable the following instructions: AVX2", 2, True)
    assert not keras_builder._drop(b"F0000 00:00:1.0  1 x.cc:1] fatal", 9, False)


def test_the_lint_path_never_imports_tensorflow():
    code = (
        "import sys\nfrom airflow_amml.cli import main\n"
        "assert main(['lint', 'dags']) == 0\n"
        "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))\n"
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("[]"), result.stdout
