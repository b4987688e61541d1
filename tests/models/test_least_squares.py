"""`solver: least_squares`: the weights minimise Keras's own objective (its gradient is 0 there), they are a
ridge regression, the validation windows are left out, the file refuses what the solve cannot honour, and
the solved model saves, loads and predicts like a trained one. Real Keras on tiny data."""

import logging
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from airflow_amml.models import keras_builder as kb
from airflow_amml.models import parse_model_spec
from airflow_amml.models.spec import AmmlModelError
from compiler.errors import AmmlCompileErrors

LINEAR = """\
name: ls
version: "1"
model:
  HEADS
  layers:
    - {type: Dense, units: 2, l2: 0.05}
training:
  solver: least_squares
  loss: mse
  target: OT
  window: 4
  horizon: 2
  validation_split: 0.25
  EXTRA
"""


def linear(extra="", heads="", layers=None):
    text = LINEAR.replace("EXTRA", extra).replace("HEADS", heads)
    if layers is not None:
        text = text.replace("    - {type: Dense, units: 2, l2: 0.05}\n", layers)
    return parse_model_spec(text, "ls.yaml")


def _frame(n=60, seed=3):
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return pd.DataFrame(
        {
            "OT": np.sin(t / 4.0) + 0.3 * rng.standard_normal(n),
            "load": np.cos(t / 7.0) + 0.3 * rng.standard_normal(n),
            "date": pd.date_range("2017-01-01", periods=n, freq="h"),
        }
    )


def _gradient_norm(model, x, y):
    """The norm of the gradient of Keras's training loss (mse + the l2 penalty) at the model's weights."""
    import tensorflow as tf

    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(y - model(x))) + tf.add_n(model.losses)
    grads = tape.gradient(loss, model.trainable_variables)
    return max(float(tf.norm(g)) for g in grads), float(loss)


def _training_windows(spec, frame):
    """The windows the solve trains on: all but the last `validation_split` of them, as train() splits."""
    x, y, _ = kb.make_windows(frame, spec)
    n_val = int(len(x) * spec.training.validation_split)
    return x[:-n_val], y[:-n_val], x[-n_val:], y[-n_val:]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("extra", "heads"),
    [
        ("", ""),
        ("features: [OT, load]\n  inputs: relative\n  predict: delta", ""),
        ("features: [OT, load]\n  time_features: [hour_of_day]\n  time_harmonics: 2", "heads: per_channel"),
    ],
    ids=["one-channel", "relative-two-channels", "per-channel-heads-with-time"],
)
def test_the_solved_weights_are_where_keras_loss_has_zero_gradient(extra, heads):
    spec = linear(extra, heads)
    frame = _frame()
    model, history = kb.train(spec, frame)
    x, y, xv, yv = _training_windows(spec, frame)
    norm, loss = _gradient_norm(model, x, y)
    # float32 weights: the gradient is zero up to rounding (~1e-8 here)
    assert norm < 1e-4 * max(1.0, loss)
    entry = history[0]
    assert len(history) == 1 and entry["epoch"] == 1
    assert entry["loss"] == pytest.approx(loss, rel=1e-4)
    assert entry["val_loss"] == pytest.approx(_gradient_norm(model, xv, yv)[1], rel=1e-4)
    # … which weights 1 % off do not have (so the bound above can fail)
    dense = next(layer for layer in model.layers if layer.name.startswith("dense_1"))
    solved = dense.get_weights()
    dense.set_weights([solved[0] * 1.01, *solved[1:]])
    assert _gradient_norm(model, x, y)[0] > 1e-4 * max(1.0, loss)
    dense.set_weights(solved)
    # gradient descent from the solved weights cannot lower the training loss (it is the minimum)
    model.compile(loss="mse", optimizer="sgd")
    model.fit(x, y, epochs=3, batch_size=len(x), shuffle=False, verbose=0)
    assert _gradient_norm(model, x, y)[1] >= loss * (1 - 1e-5)


def test_it_is_the_ridge_regression_of_a_hand_computed_case():
    # 3 examples, 2 inputs, 1 output; penalty l2 = 0.5 on the kernel: N·H·l2 = 1.5 on the diagonal
    x = np.array([[[1.0], [0.0]], [[0.0], [1.0]], [[1.0], [1.0]]], dtype=np.float32)  # [3, 2, 1]
    y = np.array([[1.0], [2.0], [4.0]], dtype=np.float32)
    kernel, bias = kb.solve_least_squares(x, y, l2=0.5)
    # x̄ = (2/3, 2/3), ȳ = 7/3; Xc = [[1/3, -2/3], [-2/3, 1/3], [1/3, 1/3]], Yc = [-4/3, -1/3, 5/3]
    # XcᵀXc = [[2/3, -1/3], [-1/3, 2/3]] + 1.5 I = [[13/6, -1/3], [-1/3, 13/6]]; XcᵀYc = [1/3, 4/3]
    # K = [[13/6, 1/3], [1/3, 13/6]] · 36/165 (the inverse) · [1/3, 4/3] = [42, 108] / 165 = [14/55, 36/55]
    np.testing.assert_allclose(kernel[:, 0], [14 / 55, 36 / 55], rtol=1e-12)
    np.testing.assert_allclose(bias, [7 / 3 - (2 / 3) * (50 / 55)], rtol=1e-12)  # ȳ − x̄K
    # without a bias the data are not centred: (XᵀX + 1.5 I) K = XᵀY, XᵀX = [[2, 1], [1, 2]], XᵀY = [5, 6]
    kernel, bias = kb.solve_least_squares(x, y, l2=0.5, use_bias=False)
    np.testing.assert_allclose(kernel[:, 0], np.linalg.solve([[3.5, 1], [1, 3.5]], [5, 6]), rtol=1e-12)
    np.testing.assert_array_equal(bias, [0.0])
    # no penalty and a singular Gram matrix (the second input is always 0): the minimum-norm solution
    kernel, bias = kb.solve_least_squares(np.stack([x[:, 0], 0 * x[:, 0]], axis=1), y)
    # input 1 is [1, 0, 1] for y = [1, 2, 4]: the slope is the mean of y at 1 minus y at 0, (1 + 4) / 2 - 2
    np.testing.assert_allclose(kernel[:, 0], [0.5, 0.0], atol=1e-12)
    np.testing.assert_allclose(bias, [2.0], atol=1e-12)


def test_chunked_accumulation_is_the_same_solve(monkeypatch):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((50, 3, 2)).astype(np.float32)
    y = rng.standard_normal((50, 2)).astype(np.float32)
    whole = kb.solve_least_squares(x, y, l2=0.01)
    monkeypatch.setattr(kb, "LEAST_SQUARES_CHUNK_BYTES", 8 * 8 * 7)  # 7 windows at a time
    chunked = kb.solve_least_squares(x, y, l2=0.01)
    np.testing.assert_allclose(chunked[0], whole[0], rtol=1e-10)
    np.testing.assert_allclose(chunked[1], whole[1], rtol=1e-10)


@pytest.mark.slow
def test_the_validation_windows_are_left_out_of_the_solve(caplog):
    spec = linear()
    frame = _frame()
    x, y, _ = kb.make_windows(frame, spec)  # 55 windows: the last 13 (a quarter) validate
    kernel, bias = kb.solve_least_squares(x[:-13], y[:-13], l2=0.05)
    with caplog.at_level(logging.INFO, logger="airflow_amml.models.keras_builder"):
        model, history = kb.train(spec, frame, epochs=20, batch_size=8)  # a pipeline's epoch=20: ignored
    dense = model.get_layer("dense_1")
    np.testing.assert_allclose(dense.kernel.numpy(), kernel, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dense.bias.numpy(), bias, rtol=1e-5, atol=1e-6)
    with_val = kb.solve_least_squares(x, y, l2=0.05)[0]
    assert not np.allclose(with_val, kernel, rtol=1e-3)  # the split matters: it is honoured, not a no-op
    # the validation loss is Keras's on the last 13 windows: mse + penalty
    penalty = 0.05 * float(np.sum(np.square(dense.kernel.numpy())))
    mse = float(np.mean(np.square(model.predict(x[-13:], verbose=0) - y[-13:])))
    assert history[0]["val_loss"] == pytest.approx(mse + penalty, rel=1e-4)
    (line,) = [r.getMessage() for r in caplog.records if r.name == "airflow_amml.models.keras_builder"]
    assert line.startswith("ls:1 solved by least squares - ") and "42 windows x 4 inputs" in line
    assert f"val_loss: {kb.format_loss(history[0]['val_loss'])}" in line
    assert "epochs=20, batch_size=8 ignored" in line


@pytest.mark.slow
def test_validation_frame_is_used_when_given():
    spec = linear()
    frame = _frame(80)
    model, history = kb.train(spec, frame.iloc[:60], validation=frame.iloc[56:])
    x, y, _ = kb.make_windows(frame.iloc[:60], spec)
    np.testing.assert_allclose(
        model.get_layer("dense_1").kernel.numpy(), kb.solve_least_squares(x, y, 0.05)[0], rtol=1e-5, atol=1e-6
    )
    xv, yv, _ = kb.make_windows(frame.iloc[56:], spec)
    assert history[0]["val_loss"] == pytest.approx(_gradient_norm(model, xv, yv)[1], rel=1e-4)


@pytest.mark.slow
def test_a_solved_model_saves_loads_and_predicts_the_same(tmp_path):
    spec = linear("features: [OT, load]\n  inputs: relative\n  predict: delta", "heads: per_channel")
    frame = _frame()
    model, _ = kb.train(spec, frame)
    before = kb.predict(model, spec, frame)
    loaded = kb.load_model(kb.save_model(model, tmp_path / "ls.keras"), spec)
    np.testing.assert_array_equal(kb.predict(loaded, spec, frame), before)
    # the per-channel heads hold the channels' rows of one joint solve; the bias is in the first head
    x, y = _training_windows(spec, frame)[:2]
    kernel, bias = kb.solve_least_squares(x, y, 0.05)
    np.testing.assert_allclose(loaded.get_layer("dense_1_ch1").kernel.numpy(), kernel[1::2], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(loaded.get_layer("dense_1_ch0").bias.numpy(), bias, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(loaded.get_layer("dense_1_ch1").bias.numpy(), [0.0, 0.0])


def _error(text: str) -> AmmlModelError:
    with pytest.raises(AmmlModelError) as info:
        parse_model_spec(text, "ls.yaml")
    return info.value


def _errors(text: str) -> list[AmmlModelError]:
    with pytest.raises(AmmlCompileErrors) as info:
        parse_model_spec(text, "ls.yaml")
    return list(info.value.errors)


def _text(extra="", layers=None, loss="loss: mse"):
    text = LINEAR.replace("EXTRA", extra).replace("HEADS", "").replace("loss: mse", loss)
    return text if layers is None else text.replace("    - {type: Dense, units: 2, l2: 0.05}\n", layers)


@pytest.mark.parametrize(
    ("layers", "line", "column", "words"),
    [
        ("    - {type: Dense, units: 8}\n    - {type: Dense, units: 2}\n", 7, 14, "has 2 layer(s)"),
        ("    - {type: LSTM, units: 8}\n    - {type: Dense, units: 2}\n", 6, 14, "(`LSTM`, `Dense`)"),
        ("    - {type: Dense, units: 2, activation: relu}\n", 6, 43, "the activation `relu`"),
        ("    - {type: Dropout, rate: 0.1}\n    - {type: Dense, units: 2}\n", 6, 14, "`Dropout`"),
    ],
)
def test_only_one_linear_dense_layer_is_solved(layers, line, column, words):
    e = _error(_text(layers=layers))
    assert (e.filename, e.line, e.column) == ("ls.yaml", line, column)
    assert "`solver: least_squares`" in e.message and words in e.message
    assert "solver: gradient" in e.hint


def test_an_input_layer_and_a_linear_activation_are_fine():
    spec = parse_model_spec(
        _text(layers="    - {type: Input}\n    - {type: Dense, units: 2, activation: linear}\n"), "ls.yaml"
    )
    assert spec.training.solver == "least_squares"


def test_the_loss_must_be_mse():
    e = _error(_text(loss="loss: mae"))
    assert (e.line, e.column) == (9, 9) and "`mae`" in e.message and e.hint.startswith("write `loss: mse`")
    e = _error(_text(loss=""))  # the default loss is mae: the error points at the solver
    assert (e.line, e.column) == (8, 11) and "(the default)" in e.message


def test_keys_of_gradient_descent_are_refused_each_at_its_line():
    extra = "epochs: 20\n  batch_size: 64\n  optimizer: adam\n  shuffle: false\n  seed: 1\n"
    extra += "  early_stopping: {patience: 3}\n  lr_schedule: {type: cosine}"
    errors = _errors(_text(extra))
    assert [(e.line, e.column) for e in errors] == [(14, 3), (15, 3), (16, 3), (17, 3), (18, 3), (19, 3), (20, 3)]
    keys = ["epochs", "batch_size", "optimizer", "shuffle", "seed", "early_stopping", "lr_schedule"]
    for e, key in zip(errors, keys):
        assert f"`training.{key}` steers gradient descent" in e.message and e.hint.startswith(f"remove `{key}`")


def test_unknown_solver_and_round_trip():
    e = _error(_text().replace("solver: least_squares", "solver: least_square"))
    assert (e.line, e.column) == (8, 11) and "least_squares" in (e.hint or "")
    import yaml

    spec = linear()
    d = spec.to_dict()
    assert d["training"]["solver"] == "least_squares" and "epochs" not in d["training"]
    assert parse_model_spec(yaml.safe_dump(d, sort_keys=False)) == spec
    gradient = parse_model_spec(_text().replace("solver: least_squares", "solver: gradient"))
    assert gradient.training.solver == "gradient" and "solver" not in gradient.to_dict()["training"]


@pytest.mark.parametrize("chunk", [1 << 20, 4 << 20])
def test_the_budget_bounds_what_the_solve_allocates(monkeypatch, chunk):
    """The training budget's estimate of a solve (the normal equations, not an optimizer's state) is at least
    what the solve allocates, traced by tracemalloc (numpy reports its buffers to it), and not far above it."""
    import tracemalloc

    from airflow_amml.models import budget
    from airflow_amml.models.spec import estimate_training

    monkeypatch.setattr(kb, "LEAST_SQUARES_CHUNK_BYTES", chunk)
    monkeypatch.setattr(budget, "LEAST_SQUARES_CHUNK_BYTES", chunk)
    text = LINEAR.replace("window: 4", "window: 512").replace("EXTRA", "features: [OT, load]").replace("HEADS", "")
    spec = parse_model_spec(text)  # 512 records x 2 channels and the bias: an 8 MiB Gram matrix
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3000, 512, 2)).astype(np.float32)
    y = rng.standard_normal((3000, 2)).astype(np.float32)
    estimate = estimate_training(spec)
    tracemalloc.start()
    try:
        kb.solve_least_squares(x, y, l2=0.05)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    solve_bytes = estimate.parameter_bytes + estimate.activation_bytes
    assert peak <= solve_bytes <= 1.5 * peak
    assert estimate.parameter_bytes < 2 * peak, "no optimizer state counted"


LS_MODEL = """
name: ridge
version: "0.1"
model:
  layers:
    - {type: Dense, units: 1, l2: 0.001}
training:
  solver: least_squares
  loss: mse
  window: 24
  target: OT
  features: [HUFL, OT]
  inputs: relative
  predict: delta
"""


@pytest.mark.slow
def test_train_lstm_solves_registers_and_ignores_a_pipelines_epochs(tmp_path, caplog):
    from airflow_amml.registry import ModelRegistry
    from airflow_amml.run_config import RunConfig
    from airflow_amml.runtime.executor import run_pipeline
    from compiler import ProgramCache, compile_source

    models = tmp_path / "models"
    models.mkdir()
    (models / "ridge.yaml").write_text(LS_MODEL)
    config = RunConfig.from_environment(model_paths=[models], runs_dir=tmp_path / "runs", output_root=tmp_path)
    epochs = tmp_path / "epochs.csv"
    text = "source id='ett', limit=1200 | minmax_scaler | train_lstm model='ridge:0.1', epoch=20 "
    text += f"| csv_sink path='{epochs}'"
    with caplog.at_level(logging.INFO, logger="airflow_amml.models.keras_builder"):
        run_pipeline(compile_source(text, "ls.amml", cache=ProgramCache()).pipelines[0], config=config, mode="single")
    history = pd.read_csv(epochs)
    assert list(history["epoch"]) == [1] and np.isfinite(history[["loss", "val_loss"]].to_numpy()).all()
    assert any("solved by least squares" in r.getMessage() and "epochs=20" in r.getMessage() for r in caplog.records)
    entry = ModelRegistry.from_config().resolve("ridge")
    assert entry.params["solver"] == "least_squares" and "optimizer" not in entry.params
    assert entry.metrics["epochs"] == 1 and entry.metrics["val_loss"] == pytest.approx(history["val_loss"][0])
    # the registered file is the solved model: it predicts what the solve gives on the same records
    frame = pd.read_csv(os.environ["AMML_ETT_PATH"]).iloc[:1200]
    low, high = frame[["HUFL", "OT"]].min(), frame[["HUFL", "OT"]].max()
    scaled = (frame[["HUFL", "OT"]] - low) / (high - low)
    spec = parse_model_spec(LS_MODEL, "ridge.yaml")
    x, y, _ = kb.make_windows(scaled, spec)
    n_val = int(len(x) * 0.1)
    kernel, bias = kb.solve_least_squares(x[:-n_val], y[:-n_val], l2=0.001)
    with tempfile.TemporaryDirectory() as tmp:
        _, path = ModelRegistry.from_config().download("ridge/1", Path(tmp))
        model = kb.load_model(path, spec)
        got = kb.predict(model, spec, scaled)[:, 0]
    expected = x.reshape(len(x), -1).astype(np.float64) @ kernel[:, 0] + bias[0] + kb.make_windows(scaled, spec)[2]
    np.testing.assert_allclose(got[: len(expected)], expected, rtol=1e-4, atol=1e-5)
