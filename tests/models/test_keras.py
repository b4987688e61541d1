"""Windows (exact values, level and delta), prediction alignment, and one small real Keras training on ETTh1."""

import math

import numpy as np
import pandas as pd
import pytest

from airflow_amml.models import keras_builder as kb
from airflow_amml.models import parse_model_spec

SMALL = """\
name: small
version: "1"
model:
  layers:
    - {type: LSTM, units: 4}
    - {type: Dense, units: 2}
training: {target: OT, features: [a, OT], window: 3, horizon: 2, predict: PREDICT}
"""


def small(predict="level"):
    return parse_model_spec(SMALL.replace("PREDICT", predict), "small.yaml")


@pytest.fixture
def frame():
    ot = [10.0, 11.0, 13.0, 16.0, 20.0, 25.0, 31.0, 38.0]  # changes 1, 2, 3, ...
    return pd.DataFrame(
        {"a": np.arange(8, dtype=float), "OT": ot, "other": list("abcdefgh")},
        index=pd.date_range("2016-07-01", periods=8, freq="h"),
    )


def test_windows_level(frame):
    x, y, last = kb.make_windows(frame, small("level"))
    assert x.dtype == np.float32 and y.dtype == np.float32 and last.dtype == np.float64
    assert x.shape == (4, 3, 2) and y.shape == (4, 2) and last.shape == (4,)  # 8 - 3 - 2 + 1 windows
    np.testing.assert_array_equal(x[0], [[0, 10], [1, 11], [2, 13]])
    np.testing.assert_array_equal(x[3], [[3, 16], [4, 20], [5, 25]])
    np.testing.assert_array_equal(y, [[16, 20], [20, 25], [25, 31], [31, 38]])
    np.testing.assert_array_equal(last, [13, 16, 20, 25])
    assert x.flags["C_CONTIGUOUS"]


def test_windows_delta(frame):
    x, y, last = kb.make_windows(frame, small("delta"))
    np.testing.assert_array_equal(x[1], [[1, 11], [2, 13], [3, 16]])
    np.testing.assert_array_equal(y, [[3, 7], [4, 9], [5, 11], [6, 13]])  # target[t+k] - target[t]
    np.testing.assert_array_equal(y + last[:, None], kb.make_windows(frame, small("level"))[1])


def test_windows_relative_inputs(frame):
    spec = parse_model_spec(SMALL.replace("PREDICT", "delta, inputs: relative"), "small.yaml")
    x, y, _ = kb.make_windows(frame, spec)
    np.testing.assert_array_equal(x[0], [[-2, -3], [-1, -2], [0, 0]])  # each window minus its last row
    np.testing.assert_array_equal(x[3], [[-2, -9], [-1, -5], [0, 0]])
    np.testing.assert_array_equal(y, kb.make_windows(frame, small("delta"))[1])
    # the fake model forecasts the window's last OT, which is 0 in relative windows: a change of 0
    np.testing.assert_array_equal(kb.predict(_Fake(), spec, frame)[:, 0], frame["OT"].to_numpy()[2:])


def test_windows_default_features_one_step():
    spec = parse_model_spec(
        "name: s\nversion: '1'\nmodel: {layers: [{type: Dense, units: 1}]}\ntraining: {target: v, window: 2}\n"
    )
    x, y, last = kb.make_windows(pd.DataFrame({"v": [1.0, 2.0, 4.0, 8.0]}), spec)
    np.testing.assert_array_equal(x[..., 0], [[1, 2], [2, 4]])
    np.testing.assert_array_equal(y[:, 0], [4, 8])
    np.testing.assert_array_equal(last, [2, 4])


class _Fake:
    """Stands in for a Keras model: forecasts a constant, or the last OT of each window, for every step."""

    def __init__(self, value=None):
        self.value = value

    def predict(self, x, batch_size=None, verbose=0):
        assert x.dtype == np.float32
        col = x[:, -1, 1:2] if self.value is None else np.full((len(x), 1), self.value, dtype=np.float32)
        return np.repeat(col, 2, axis=1)


def test_predict_is_aligned_to_window_ends(frame):
    level = kb.predict(_Fake(), small("level"), frame)  # the model returns the last OT of each window
    assert level.shape == (6, 2) and level.dtype == np.float64  # 8 - 3 + 1 windows, the last two without labels
    np.testing.assert_array_equal(level[:, 0], frame["OT"].to_numpy()[2:])  # row i ↔ frame row window - 1 + i
    delta = kb.predict(_Fake(1.5), small("delta"), frame)  # a change of +1.5 from the last observed OT
    np.testing.assert_array_equal(delta, np.repeat(frame["OT"].to_numpy()[2:, None] + 1.5, 2, axis=1))
    _, y, last = kb.make_windows(frame, small("delta"))
    np.testing.assert_array_equal(kb.predict(_Fake(0.0), small("delta"), frame)[: len(y), 0], last)


def test_window_errors(frame):
    with pytest.raises(ValueError, match=r"needs the column\(s\) a; the data has OT, other"):
        kb.make_windows(frame.drop(columns=["a"]), small())
    with pytest.raises(ValueError, match="column OT has 1 missing value"):
        kb.make_windows(frame.assign(OT=frame["OT"].where(frame["a"] != 4)), small())
    with pytest.raises(ValueError, match="column a must be numeric"):
        kb.make_windows(frame.assign(a=frame["other"]), small())
    with pytest.raises(ValueError, match=r"at least window \+ horizon = 5 rows.*got 4"):
        kb.make_windows(frame.iloc[:4], small())
    with pytest.raises(ValueError, match="at least window = 3 rows"):
        kb.predict(_Fake(), small(), frame.iloc[:2])


# ---- TensorFlow ------------------------------------------------------------------------------------------

STACKED = """\
name: stacked
version: "0.2"
model:
  layers:
    - {type: Input, shape: [6, 2]}
    - {type: LSTM, units: 4, return_sequences: true, dropout: 0.1}
    - {type: Dropout, rate: 0.2}
    - {type: GRU, units: 3, activation: relu}
    - {type: Dense, units: 2, activation: linear, use_bias: false}
training: {target: OT, features: [a, OT], window: 6, horizon: 2, optimizer: {name: sgd, learning_rate: 0.05}}
"""

DNN = """\
name: dnn
version: "1"
model:
  layers:
    - {type: Dense, units: 8, activation: relu}
    - {type: Dense, units: 1}
training: {target: OT, features: [a, b, c, d, e, OT], window: 1, loss: mse, optimizer: rmsprop}
"""

ETT_SMALL = """\
name: ett_small
version: "0.1"
model:
  layers:
    - {type: LSTM, units: 8, activation: tanh}
    - {type: Dense, units: 1}
training:
  loss: mae
  optimizer: {name: adam, learning_rate: 0.005}
  epochs: 20
  batch_size: 64
  validation_split: 0.1
  early_stopping: {patience: 5}
  window: 24
  target: OT
  features: [HUFL, HULL, MUFL, MULL, LUFL, LULL, OT]
  seed: 7
"""


@pytest.mark.slow
def test_build_model_shapes():
    keras = pytest.importorskip("keras")
    stacked = kb.build_model(parse_model_spec(STACKED))
    assert stacked.input_shape == (None, 6, 2) and stacked.output_shape == (None, 2)
    assert [type(layer).__name__ for layer in stacked.layers] == ["LSTM", "Dropout", "GRU", "Dense"]
    assert isinstance(stacked.optimizer, keras.optimizers.SGD)
    assert math.isclose(float(stacked.optimizer.learning_rate), 0.05, rel_tol=1e-6)
    assert stacked.layers[0].return_sequences and stacked.layers[3].use_bias is False
    dnn = kb.build_model(parse_model_spec(DNN))  # Fig. 8: six inputs, one output, no recurrent layer
    assert dnn.input_shape == (None, 1, 6) and dnn.output_shape == (None, 1)
    assert [type(layer).__name__ for layer in dnn.layers] == ["Flatten", "Dense", "Dense"]
    assert isinstance(dnn.optimizer, keras.optimizers.RMSprop)


@pytest.mark.slow
def test_train_save_load_predict_on_etth1(ett_path, tmp_path):
    pytest.importorskip("keras")
    spec = parse_model_spec(ETT_SMALL, "ett_small.yaml")
    cols = list(spec.training.features)
    data = pd.read_csv(ett_path, nrows=2000)
    data[cols] = (data[cols] - data[cols].min()) / (data[cols].max() - data[cols].min())
    seen = []
    model, history = kb.train(spec, data, epochs=2, on_epoch=lambda epoch, logs: seen.append((epoch, logs)))
    assert [h["epoch"] for h in history] == [1, 2] and [e for e, _ in seen] == [1, 2]
    assert seen[-1][1] == history[-1]
    losses = [h["loss"] for h in history]
    assert all(math.isfinite(v) for v in losses) and all(math.isfinite(h["val_loss"]) for h in history)
    assert losses[1] < losses[0]

    pred = kb.predict(model, spec, data)
    assert pred.shape == (2000 - 24 + 1, 1) and np.isfinite(pred).all()
    _, y, _ = kb.make_windows(data, spec)
    assert float(np.mean(np.abs(pred[: len(y)] - y))) < 0.5  # scaled space: it learned something sensible

    path = kb.save_model(model, tmp_path / "registry" / "ett_small-0.1.keras")
    assert path.is_file()
    loaded = kb.load_model(path)
    np.testing.assert_array_equal(kb.predict(loaded, spec, data), pred)
    with pytest.raises(ValueError, match=r"\.keras"):
        kb.save_model(model, tmp_path / "model.h5")


# ---- forecasting: decomposition, time features, per-channel heads, L2, schedules, the epoch log ----------

FORECAST = """\
name: fc
version: "1"
model:
  HEADS
  layers:
    - {type: Dense, units: 2, l2: 0.5}
training:
  target: OT
  window: 5
  horizon: 2
  epochs: 3
  batch_size: 4
  loss: mse
  optimizer: {name: adam, learning_rate: 0.01}
  EXTRA
"""


def forecast(extra="", heads=""):
    return parse_model_spec(FORECAST.replace("EXTRA", extra).replace("HEADS", heads), "fc.yaml")


def test_decomposition_is_dlinears_moving_average():
    spec = forecast("decomposition: {moving_average: 3}")
    ot = [1.0, 2.0, 6.0, 3.0, 8.0, 0.0, 0.0]
    x, y, _ = kb.make_windows(pd.DataFrame({"OT": ot}), spec)
    assert x.shape == (1, 5, 2)  # one window of 5 + 2 rows: channels (seasonal, trend)
    # the first window [1, 2, 6, 3, 8], its ends repeated once: [1, 1, 2, 6, 3, 8, 8]; means of 3:
    # (1+1+2)/3, (1+2+6)/3, (2+6+3)/3, (6+3+8)/3, (3+8+8)/3
    trend = np.array([4, 9, 11, 17, 19]) / 3
    np.testing.assert_allclose(x[0, :, 1], trend, rtol=1e-6)
    np.testing.assert_allclose(x[0, :, 0], np.array([1, 2, 6, 3, 8]) - trend, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(y, [[0.0, 0.0]])
    # relative inputs first, then the split: the window minus its last value 8 is [-7, -6, -2, -5, 0]
    rel = forecast("decomposition: {moving_average: 3}\n  inputs: relative\n  predict: delta")
    x, _, _ = kb.make_windows(pd.DataFrame({"OT": ot}), rel)
    np.testing.assert_allclose(x[0, :, 1], trend - 8, rtol=1e-6)
    np.testing.assert_allclose(x[0].sum(axis=1), [-7, -6, -2, -5, 0], atol=1e-6)  # seasonal + trend = input


def test_time_features_are_sine_and_cosine_of_each_record():
    spec = forecast("time_features: [hour_of_day, day_of_week]\n  inputs: relative\n  predict: delta")
    stamps = pd.date_range("2016-07-01 04:00", periods=8, freq="h")  # a Friday (weekday 4)
    frame = pd.DataFrame({"date": stamps.astype(str), "OT": np.arange(8.0)})
    x, _, _ = kb.make_windows(frame, spec)
    assert x.shape == (2, 5, 5)  # OT, then sin/cos of the hour, sin/cos of the weekday
    np.testing.assert_array_equal(x[0, :, 0], [-4, -3, -2, -1, 0])  # OT is made relative...
    hours = np.arange(4, 9)  # ...the time channels are not: rows 04:00 … 08:00
    np.testing.assert_allclose(x[0, :, 1], np.sin(2 * np.pi * hours / 24), atol=1e-6)
    np.testing.assert_allclose(x[0, :, 2], np.cos(2 * np.pi * hours / 24), atol=1e-6)
    assert x[0, 2, 1] == pytest.approx(1.0) and x[0, 2, 2] == pytest.approx(0.0, abs=1e-6)  # 06:00: a quarter day
    np.testing.assert_allclose(x[0, :, 3], np.sin(2 * np.pi * 4 / 7), atol=1e-6)
    np.testing.assert_allclose(x[0, :, 4], np.cos(2 * np.pi * 4 / 7), atol=1e-6)
    # datetimes work as well as text; a missing or unparseable time column is a clear error
    np.testing.assert_array_equal(kb.make_windows(frame.assign(date=stamps), spec)[0], x)
    with pytest.raises(ValueError, match=r"needs the column\(s\) date"):
        kb.make_windows(frame.drop(columns=["date"]), spec)
    with pytest.raises(ValueError, match=r"column date .* is not a time"):
        kb.make_windows(frame.assign(date="soon"), spec)


def test_time_harmonics_are_multiples_of_the_angle():
    spec = forecast("time_features: [hour_of_day]\n  time_harmonics: 2\n  inputs: relative\n  predict: delta")
    stamps = pd.date_range("2016-07-01 04:00", periods=8, freq="h")
    x, _, _ = kb.make_windows(pd.DataFrame({"date": stamps, "OT": np.arange(8.0)}), spec)
    assert x.shape == (2, 5, 5) == (2, *spec.training.input_shape)  # OT, sin a, cos a, sin 2a, cos 2a
    # 06:00 is a quarter day, a = π/2: sin a = 1, cos a = 0, sin 2a = sin π = 0, cos 2a = cos π = -1
    np.testing.assert_allclose(x[0, 2, 1:], [1, 0, 0, -1], atol=1e-6)
    # 04:00, a = π/3: sin 2a = sin(2π/3) = √3/2, cos 2a = -1/2
    np.testing.assert_allclose(x[0, 0, 3:], [np.sqrt(3) / 2, -0.5], atol=1e-6)


@pytest.mark.slow
def test_per_channel_heads_sum_one_dense_per_channel(tmp_path):
    pytest.importorskip("keras")
    from airflow_amml.models.budget import layer_parameters

    spec = forecast("features: [a, OT]\n  decomposition: {moving_average: 3}", heads="heads: per_channel")
    model = kb.build_model(spec)  # 4 channels: a and OT seasonal, a and OT trend
    assert model.input_shape == (None, 5, 4) and model.output_shape == (None, 2)
    assert model.count_params() == sum(layer_parameters(spec)) == 4 * (5 * 2 + 2)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 5, 4)).astype(np.float32)
    by_hand = np.zeros((3, 2))
    for c in range(4):  # the output is the sum of each channel's own linear map
        kernel, bias = model.get_layer(f"dense_1_ch{c}").get_weights()
        by_hand += x[:, :, c] @ kernel + bias
    np.testing.assert_allclose(model.predict(x, verbose=0), by_hand, rtol=1e-5, atol=1e-5)
    path = kb.save_model(model, tmp_path / "fc.keras")  # built-in layers only: loads with safe_mode
    np.testing.assert_allclose(kb.load_model(path, spec).predict(x, verbose=0), by_hand, rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_l2_adds_its_penalty_to_the_loss():
    pytest.importorskip("keras")
    model = kb.build_model(forecast())
    kernel = model.get_layer("dense_1").kernel
    assert len(model.losses) == 1  # 0.5 × the sum of the squared kernel weights
    penalty = 0.5 * float(np.sum(np.square(np.asarray(kernel))))
    assert float(np.asarray(model.losses[0])) == pytest.approx(penalty, rel=1e-5)
    recurrent = parse_model_spec(
        "name: r\nversion: '1'\nmodel: {layers: [{type: GRU, units: 3, l2: 0.1}, {type: Dense, units: 1}]}\n"
        "training: {target: OT, window: 4}\n"
    )
    gru = kb.build_model(recurrent).get_layer("gru_1")
    assert gru.kernel_regularizer is not None and gru.recurrent_regularizer is not None
    assert float(gru.kernel_regularizer.l2) == pytest.approx(0.1)


def _series(n=80):
    return pd.DataFrame({"OT": np.sin(np.arange(n) / 3.0)})


@pytest.mark.slow
@pytest.mark.parametrize(
    ("schedule", "rates"),
    [
        # step: 0.01 × 0.5^(epoch // 2)
        ("{type: step, every: 2, factor: 0.5}", [0.01, 0.01, 0.005, 0.005]),
        # cosine over 4 epochs from 0.01 to 0: 0.01 × (1 + cos(π e / 4)) / 2 = 0.01, 0.008536, 0.005, 0.001464
        ("{type: cosine, epochs: 4}", [0.01, 0.0085355, 0.005, 0.0014645]),
    ],
)
def test_learning_rate_follows_the_schedule(schedule, rates):
    pytest.importorskip("keras")
    model, history = kb.train(forecast(f"lr_schedule: {schedule}"), _series(), epochs=4)
    np.testing.assert_allclose([h["lr"] for h in history], rates, rtol=1e-4)
    assert float(np.asarray(model.optimizer.learning_rate)) == pytest.approx(rates[-1], rel=1e-4)


@pytest.mark.slow
def test_plateau_lowers_the_rate_when_the_loss_stops_improving():
    pytest.importorskip("keras")
    # at a rate of 1e-7 the loss cannot improve by Keras's min_delta (1e-4): after epoch 1 (the first value is
    # an improvement) every epoch halves the rate (patience 0), from the end of epoch 2 on
    text = "lr_schedule: {type: plateau, patience: 0, factor: 0.5, monitor: loss}"
    spec = parse_model_spec(FORECAST.replace("EXTRA", text).replace("HEADS", "").replace("0.01}", "0.0000001}"))
    _, history = kb.train(spec, _series(), epochs=4)
    np.testing.assert_allclose([h["lr"] for h in history], [1e-7, 1e-7, 5e-8, 2.5e-8], rtol=1e-4)


@pytest.mark.slow
def test_one_log_line_per_epoch_with_the_same_precision(caplog):
    pytest.importorskip("keras")
    import logging
    import re

    with caplog.at_level(logging.INFO, logger="airflow_amml.models.keras_builder"):
        _, history = kb.train(forecast("lr_schedule: {type: step, every: 1, factor: 0.5}"), _series(), epochs=2)
    lines = [r.getMessage() for r in caplog.records if r.name == "airflow_amml.models.keras_builder"]
    assert len(lines) == 2
    for line, entry in zip(lines, history):
        # as Keras writes an epoch: `fc:1 epoch 1/2 - 0.4s - loss: 0.0205 - val_loss: 0.0115 - lr: 0.001`
        match = re.fullmatch(r"fc:1 epoch (\d)/2 - \d+\.\ds - loss: (\S+) - val_loss: (\S+) - lr: (\S+)", line)
        assert match, line
        assert int(match[1]) == entry["epoch"]
        assert match[2] == kb.format_loss(entry["loss"]) and match[3] == kb.format_loss(entry["val_loss"])
        assert float(match[4]) == pytest.approx(entry["lr"], rel=1e-3)
    # one rule for both losses: 4 decimals, 4 significant digits below 0.001
    assert [kb.format_loss(v) for v in (0.02046, 0.0114739, 0.00012345, 0.0, None)] == [
        "0.0205",
        "0.0115",
        "1.234e-04",
        "0.0000",
        "-",
    ]
    assert "lr" not in kb.train(forecast(), _series(), epochs=1)[1][0]  # no schedule: no rate in the history


@pytest.mark.slow
def test_an_ensemble_forecasts_the_mean_of_its_members_each_trained_as_one_model(tmp_path, caplog):
    pytest.importorskip("keras")
    import logging

    frame = _series()
    with caplog.at_level(logging.INFO, logger="airflow_amml.models.keras_builder"):
        model, history = kb.train(forecast("ensemble: {seeds: [3, 5]}"), frame, epochs=2)
    # the ensemble's lines only (the trainings below log too where an earlier test left the level at INFO)
    lines = [r.getMessage() for r in caplog.records if r.name == "airflow_amml.models.keras_builder"]
    # each member is the model `seed: 3` (or 5) trains alone: same windows, settings and seed
    singles = [kb.train(forecast(f"seed: {seed}"), frame, epochs=2) for seed in (3, 5)]
    by_hand = np.mean([kb.predict(single, forecast(), frame) for single, _ in singles], axis=0)
    spec = forecast("ensemble: {seeds: [3, 5]}")
    forecasts = kb.predict(model, spec, frame)
    np.testing.assert_allclose(forecasts, by_hand, rtol=1e-5, atol=1e-6)
    assert not np.allclose(*[kb.predict(single, forecast(), frame) for single, _ in singles])  # seeds differ
    # the history: each member's epochs, as the single trainings record them, then the mean model's losses
    assert [(h.get("member"), h["epoch"]) for h in history] == [(1, 1), (1, 2), (2, 1), (2, 2), (None, 2)]
    for number, (_, single_history) in enumerate(singles, 1):
        member = [h for h in history if h.get("member") == number]
        np.testing.assert_allclose([h["loss"] for h in member], [h["loss"] for h in single_history], rtol=1e-5)
    mean = history[-1]
    assert mean["members"] == 2 and mean["val_loss"] is not None
    x, y, _ = kb.make_windows(frame, spec)
    n_val = math.floor(len(x) * 0.1)  # the last tenth of the windows validate, as for one model
    l2 = 0.5 * sum(float(np.sum(np.square(w))) for w in model.get_weights()[::2]) / 2  # mean of the kernels' penalties
    mse = float(np.mean(np.square(model.predict(x[-n_val:], verbose=0) - y[-n_val:])))
    assert mean["val_loss"] == pytest.approx(mse + l2, rel=1e-4)
    assert len(lines) == 5 and lines[0].startswith("fc:1 member 1/2 epoch 1/2 - ")
    assert lines[2].startswith("fc:1 member 2/2 epoch 1/2")
    assert lines[-1] == f"fc:1 mean of 2 members - loss: {kb.format_loss(mean['loss'])} - val_loss: " + kb.format_loss(
        mean["val_loss"]
    )
    # one model file, loaded with safe_mode, checked against the definition: the same forecasts
    path = kb.save_model(model, tmp_path / "fc.keras")
    loaded = kb.load_model(path, spec)
    assert loaded.count_params() == 2 * (5 * 2 + 2)
    np.testing.assert_allclose(kb.predict(loaded, spec, frame), forecasts, rtol=1e-6, atol=1e-7)


@pytest.mark.slow
def test_each_member_of_an_ensemble_runs_the_whole_schedule_from_its_start():
    pytest.importorskip("keras")
    spec = forecast("ensemble: {seeds: [3, 5]}\n  lr_schedule: {type: step, every: 1, factor: 0.5}")
    _, history = kb.train(spec, _series(), epochs=2)
    assert [(h.get("member"), h.get("lr")) for h in history[:-1]] == [
        (1, pytest.approx(0.01)), (1, pytest.approx(0.005)), (2, pytest.approx(0.01)), (2, pytest.approx(0.005)),
    ]  # fmt: skip
