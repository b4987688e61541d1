"""A checked :class:`~airflow_amml.models.spec.ModelSpec` → a Keras model; windows, training, prediction.

TensorFlow/Keras is imported inside the functions only (importing this module costs nothing), so the
compiler, ``amml lint`` and DAG parsing never load it.

Windows. For a time-ordered frame of ``n`` rows, the window ending at row ``t`` holds the ``features`` of
rows ``t - window + 1 … t`` (``inputs: relative``: minus their values at row ``t``) and is labelled with the
``target`` of rows ``t + 1 … t + horizon`` (``predict: delta``: minus the target at row ``t``, the last
observed value). :func:`make_windows` returns the ``n - window - horizon + 1`` windows whose labels exist;
:func:`predict` forecasts for all ``n - window + 1`` windows (also the last ones, whose future is not known
yet): row ``i`` of its result is the forecast made at frame row ``window - 1 + i`` for the ``horizon`` rows
after it.

Input transforms (all from the window's own records, so nothing after the forecast origin is used):
``inputs: relative``; ``decomposition`` (DLinear's moving-average split: the channels are the features'
seasonal parts, then their trends); ``time_features`` (sine and cosine of the hour of day and day of week of
each record, from ``time_column``, and of their multiples up to ``time_harmonics``). ``heads: per_channel``
gives each channel its own copy of the layers and sums their outputs (DLinear's "one linear head each").
Training logs one line per epoch; ``solver: least_squares`` solves a linear model's weights in one step
(ridge regression: the minimum of Keras's own objective) and logs one line.
"""

from __future__ import annotations

import contextlib
import glob
import importlib.util
import logging
import math
import os
import re
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from airflow_amml.models.budget import LEAST_SQUARES_CHUNK_BYTES
from airflow_amml.models.errors import ModelDataError
from airflow_amml.models.spec import (
    MAX_BATCH_SIZE,
    MAX_EPOCHS,
    MAX_PARAMETERS,
    ModelSpec,
    format_bytes,
    training_budget_problem,
)

if TYPE_CHECKING:
    import keras

__all__ = ["build_model", "load_model", "make_windows", "predict", "save_model", "train"]

EpochCallback = Callable[[int, dict[str, Any]], None]
log = logging.getLogger(__name__)

EVALUATE_BATCH = 4096  # windows per batch when the loss of solved weights is computed
PREDICT_CHUNK_BYTES = 64 * 1024**2  # windows built at once for a forecast (a batch may hold 65,536 records)
MAX_MODEL_FILE_BYTES = 2 * 1024**3  # a .keras file, unpacked: 50M parameters with optimizer state is ~800 MB


def _keras() -> Any:
    """Keras (and TensorFlow under it), imported once, here only, without TensorFlow's start-up noise.

    On a machine without an NVIDIA GPU every run used to print TensorFlow's probing of CUDA to stderr — which
    an Airflow task log shows as ERROR lines: the start-up INFO lines that TensorFlow writes before its own
    logging applies ``TF_CPP_MIN_LOG_LEVEL`` (oneDNN, "Could not find cuda drivers", CPU features), then
    "failed call to cuInit" on first use. So, unless the user set them: ``TF_CPP_MIN_LOG_LEVEL=2`` (warnings
    and errors of TensorFlow's C++ side stay hidden, as before); the start-up lines below that level are
    dropped from stderr while TensorFlow is imported (:func:`_tf_startup_filter`); and where there is no
    NVIDIA device (nor a pluggable-device plugin), ``TF_ENABLED_DEVICE_TYPES=CPU``, so that CUDA is never
    probed. A machine with a GPU keeps the CUDA platform, its messages and its GPU.
    """
    if "keras" in sys.modules:
        return sys.modules["keras"]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if not _has_gpu_device():
        os.environ.setdefault("TF_ENABLED_DEVICE_TYPES", "CPU")
    with _tf_startup_filter(_min_log_level()):
        import keras
    return keras


def _has_gpu_device() -> bool:
    """An NVIDIA device (or WSL's GPU bridge), or a TensorFlow pluggable-device plugin, is present."""
    if glob.glob("/dev/nvidia*") or os.path.exists("/proc/driver/nvidia") or os.path.exists("/dev/dxg"):
        return True
    spec = importlib.util.find_spec("tensorflow")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        plugins = Path(folder).parent / "tensorflow-plugins"
        if plugins.is_dir() and any(plugins.iterdir()):
            return True
    return False


def _min_log_level() -> int:
    try:
        return int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0"))
    except ValueError:
        return 0


# TensorFlow's C++ log lines (absl's format): a severity letter, then date, time, thread, file:line]
_ABSL_LINE = re.compile(rb"([IWEF])\d{4} [\d:.]+ +\d+ [^ \]]+:\d+\] ")  # before init the time is since 1970
_ABSL_PREAMBLE = b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
_SEVERITY = {b"I": 0, b"W": 1, b"E": 2, b"F": 3}


@contextlib.contextmanager
def _tf_startup_filter(min_level: int) -> Iterator[None]:
    """While TensorFlow loads, drop its C++ log lines below ``min_level`` from stderr (file descriptor 2).

    TensorFlow's libraries log from their static initialisers, before ``TF_CPP_MIN_LOG_LEVEL`` takes effect,
    so the level is applied here: fd 2 is a pipe whose reader thread passes every other line on at once
    (Python's own output, a fatal message, anything unknown); fatal lines are never dropped.
    """
    if min_level <= 0:
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
        read_end, write_end = os.pipe()
    except (OSError, ValueError):  # no usable stderr: nothing to filter
        yield
        return
    os.dup2(write_end, 2)
    os.close(write_end)
    reader = threading.Thread(target=_pass_on, args=(read_end, saved, min_level), name="amml-tf-stderr", daemon=True)
    reader.start()
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        os.dup2(saved, 2)  # closes the pipe's last write end: the reader sees the end and stops
        reader.join()
        os.close(saved)


def _pass_on(read_end: int, out: int, min_level: int) -> None:
    with os.fdopen(read_end, "rb", buffering=0) as pipe:
        pending = b""
        dropping = False  # inside a dropped multi-line message (CPU features)
        while chunk := pipe.read(65536):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                dropping = _drop(line, min_level, dropping)
                if not dropping:
                    os.write(out, line + b"\n")
        if pending:
            os.write(out, pending)


def _drop(line: bytes, min_level: int, dropping: bool) -> bool:
    """Whether a line is a TensorFlow start-up log line below the level (or the rest of one)."""
    if line == _ABSL_PREAMBLE:
        return True
    match = _ABSL_LINE.match(line)
    if match:
        return _SEVERITY[match.group(1)] < min(min_level, 3)
    return dropping and line.startswith(b"To enable the following instructions:")


def build_model(spec: ModelSpec, member: int | None = None) -> keras.Model:
    """A compiled Keras model: ``Input(shape=(window, channels))`` then the spec's layers.

    A model without recurrent layers (Fig. 8's plain DNN) sees each window flattened to
    ``window × channels`` inputs. With ``heads: per_channel`` each channel goes through its own copy of the
    layers (built-in layers only, so the file loads with ``safe_mode``) and the copies' outputs are added.
    ``member``: an ensemble's member number, in the model's name (:func:`mean_of_members` nests them).
    """
    keras = _keras()
    t = spec.training
    name = _model_name(spec) + (f"_member_{member}" if member else "")
    window = keras.Input(shape=t.input_shape, name="window")
    channels = t.input_shape[1]
    if spec.heads == "per_channel" and channels > 1:
        outputs = []
        for c in range(channels):
            # [window, channels] → [channels, window] → crop to channel c → [window, 1]
            x = keras.layers.Permute((2, 1), name=f"channels_first_{c}")(window)
            x = keras.layers.Cropping1D((c, channels - 1 - c), name=f"channel_{c}")(x)
            x = keras.layers.Permute((2, 1), name=f"channel_window_{c}")(x)
            for layer in _layers(keras, spec, suffix=f"_ch{c}"):
                x = layer(x)
            outputs.append(x)
        output = keras.layers.Add(name="sum_of_heads")(outputs)
        model = keras.Model(window, output, name=name)
    else:
        model = keras.Sequential([window, *_layers(keras, spec)], name=name)
    model.compile(loss=t.loss, optimizer=_optimizer(keras, spec))
    return model


def mean_of_members(spec: ModelSpec, members: list[keras.Model]) -> keras.Model:
    """An ensemble as one compiled Keras model: the window into each member, the mean of their forecasts
    out (built-in layers only: the file loads with ``safe_mode``, and serving needs nothing new)."""
    keras = _keras()
    window = keras.Input(shape=spec.training.input_shape, name="window")
    mean = keras.layers.Average(name="mean_of_members")([member(window) for member in members])
    model = keras.Model(window, mean, name=_model_name(spec))
    model.compile(loss=spec.training.loss, optimizer=_optimizer(keras, spec))
    return model


def _model_name(spec: ModelSpec) -> str:
    """The Keras model's name: the definition's ref as an identifier (`ett_h96_0_2`)."""
    return re.sub(r"\W", "_", f"{spec.name}_{spec.version}")


def _layers(keras: Any, spec: ModelSpec, suffix: str = "") -> list[Any]:
    """New Keras layers for the spec's layers (a Flatten first when none is recurrent)."""
    out = []
    if not any(layer.is_recurrent for layer in spec.layers):
        out.append(keras.layers.Flatten(name=f"flatten{suffix}"))
    for i, layer in enumerate(spec.layers, 1):
        if layer.type == "Input":  # its shape is checked against `training` and inferred from it
            continue
        kwargs = layer.kwargs
        l2 = kwargs.pop("l2", None)
        if l2:
            kwargs["kernel_regularizer"] = keras.regularizers.L2(l2)
            if layer.is_recurrent:
                kwargs["recurrent_regularizer"] = keras.regularizers.L2(l2)
        out.append(getattr(keras.layers, layer.type)(**kwargs, name=f"{layer.type.lower()}_{i}{suffix}"))
    return out


def _optimizer(keras: Any, spec: ModelSpec) -> Any:
    t = spec.training
    classes = {
        "adam": keras.optimizers.Adam,
        "adamw": keras.optimizers.AdamW,
        "sgd": keras.optimizers.SGD,
        "rmsprop": keras.optimizers.RMSprop,
        "adagrad": keras.optimizers.Adagrad,
    }
    kwargs: dict[str, float] = {}
    if t.learning_rate is not None:
        kwargs["learning_rate"] = t.learning_rate
    if t.clipnorm is not None:
        kwargs["clipnorm"] = t.clipnorm
    return classes[t.optimizer](**kwargs)


# ---- windows ---------------------------------------------------------------------------------------------


def _columns(frame: pd.DataFrame, spec: ModelSpec) -> tuple[np.ndarray, np.ndarray]:
    """(input channels of each record as float32 [n, channels], target as float64 [n]), with clear errors for
    missing or bad columns. The features first, then the time channels, then the seasonal means (NaN on the
    first ``history - window`` records, which lack the past the means reach back to)."""
    t = spec.training
    needed = list(dict.fromkeys([*t.features, t.target]))
    missing = [c for c in [*needed, *([t.time_column] if t.time_features else [])] if c not in frame.columns]
    if missing:
        raise ModelDataError(
            f"model {spec.ref} needs the column(s) {', '.join(missing)}; "
            f"the data has {', '.join(map(str, frame.columns))}"
        )
    for c in needed:
        if not pd.api.types.is_numeric_dtype(frame[c]) or pd.api.types.is_bool_dtype(frame[c]):
            raise ModelDataError(f"model {spec.ref}: column {c} must be numeric; it is {frame[c].dtype}")
        nulls = int(frame[c].isna().sum())
        if nulls:
            raise ModelDataError(f"model {spec.ref}: column {c} has {nulls} missing value(s); drop or fill them first")
        infinite = int(np.isinf(frame[c].to_numpy(dtype=np.float64)).sum())
        if infinite:  # an inf would make every weight of a solve, or every loss of a fit, NaN
            raise ModelDataError(
                f"model {spec.ref}: column {c} has {infinite} infinite value(s); drop or clip them first"
            )
    features = frame[list(t.features)].to_numpy(dtype=np.float32)
    target = frame[t.target].to_numpy(dtype=np.float64)
    if t.time_features:
        features = np.concatenate([features, time_channels(frame, spec)], axis=1)
    if t.seasonal_days:
        features = np.concatenate([features, seasonal_means(target, t.seasonal_period, t.seasonal_days)], axis=1)
    return features, target


def seasonal_means(target: np.ndarray, period: int, days: tuple[int, ...]) -> np.ndarray:
    """float32 [n, len(days)]: at record s, channel j is the mean over k = 1 … days[j] of the change into the
    next record ``period · k`` records earlier, ``target[s + 1 - P k] - target[s - P k]`` (NaN where s < P k):
    for hourly records and P = 24, how the hour after this one changed on the same hour of the last K days."""
    change = np.diff(target, append=np.nan)  # change[i] = target[i + 1] - target[i]
    total = np.zeros(len(target))
    out = np.empty((len(target), len(days)))
    for k in range(1, max(days) + 1):
        lag = period * k
        total[:lag] = np.nan  # these records have no change `lag` records before them
        total[lag:] += change[: len(target) - lag]
        if k in days:
            out[:, days.index(k)] = total / k
    return out.astype(np.float32)


def time_channels(frame: pd.DataFrame, spec: ModelSpec) -> np.ndarray:
    """float32 [n, 2 × harmonics × time features]: for each time feature, sin(k·a) and cos(k·a) for k = 1 …
    ``time_harmonics``, where a is the angle of each record's hour of day (period 24) or day of week (period 7,
    Monday = 0), from the spec's ``time_column`` (datetimes, or text pandas can parse)."""
    t = spec.training
    try:
        with warnings.catch_warnings():  # text in no single format is parsed one by one: slower, not wrong
            warnings.simplefilter("ignore", UserWarning)
            stamps = pd.to_datetime(frame[t.time_column])
    except (ValueError, TypeError) as exc:
        raise ModelDataError(
            f"model {spec.ref}: column {t.time_column} (the time of its time features) is not a time: {exc}"
        ) from None
    if stamps.isna().any():
        raise ModelDataError(
            f"model {spec.ref}: column {t.time_column} has {int(stamps.isna().sum())} missing time(s); "
            "drop or fill them first"
        )
    phases = {"hour_of_day": (stamps.dt.hour + stamps.dt.minute / 60) / 24, "day_of_week": stamps.dt.day_of_week / 7}
    out = []
    for name in t.time_features:
        angle = 2 * np.pi * phases[name].to_numpy(dtype=np.float64)
        for k in range(1, t.time_harmonics + 1):
            out += [np.sin(k * angle), np.cos(k * angle)]
    return np.stack(out, axis=1).astype(np.float32)


def moving_average(x: np.ndarray, length: int) -> np.ndarray:
    """DLinear's trend of each window: the mean of ``length`` (odd) records centred on each record, the
    window's first and last records repeated ``(length - 1) / 2`` times at its ends. ``x``: [m, window, f]."""
    pad = (length - 1) // 2
    padded = np.concatenate([np.repeat(x[:, :1], pad, axis=1), x, np.repeat(x[:, -1:], pad, axis=1)], axis=1)
    sums = np.cumsum(padded, axis=1, dtype=np.float64)
    sums = np.concatenate([np.zeros_like(sums[:, :1]), sums], axis=1)
    return ((sums[:, length:] - sums[:, :-length]) / length).astype(np.float32)


def _input_windows(features: np.ndarray, spec: ModelSpec) -> np.ndarray:
    """All windows: [n - window + 1, window, channels] float32, C-contiguous, the input transforms applied
    (``inputs: relative``: the feature channels minus their last row; then the decomposition)."""
    t = spec.training
    view = np.lib.stride_tricks.sliding_window_view(features, t.window, axis=0)  # [m, f, window]
    x = np.array(view.transpose(0, 2, 1), dtype=np.float32, order="C")  # a copy: the view is read-only
    values = len(t.features)
    if t.inputs == "relative":
        x[:, :, :values] -= x[:, -1:, :values]
    if t.moving_average:
        trend = moving_average(x[:, :, :values], t.moving_average)
        x = np.concatenate([x[:, :, :values] - trend, trend, x[:, :, values:]], axis=2)
    return x


def _needed(spec: ModelSpec, horizon: int = 0) -> str:
    """How many records one example (or, with horizon 0, one forecast) needs, said as its parts."""
    t = spec.training
    if t.history == t.window:
        return f"window {'+ horizon ' if horizon else ''}= {t.window + horizon} rows"
    parts = [f"window {t.window}", f"the seasonal means' {t.history - t.window} records before it"]
    parts += [f"horizon {horizon}"] if horizon else []
    return f"{t.history + horizon} rows ({' + '.join(parts)})"


def make_windows(frame: pd.DataFrame, spec: ModelSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Training examples from a time-ordered frame: ``(X, y, last)``.

    ``X``: float32 ``[m, window, n_features]`` (``inputs: relative``: each window minus its last row);
    ``y``: float32 ``[m, horizon]``, the target 1..horizon rows after each window (``predict: delta``: minus
    ``last``); ``last``: float64 ``[m]``, the target at each window's last row.
    ``m = len(frame) - history - horizon + 1``: the first window ends at row ``history - 1`` (``window - 1``
    without seasonal means; with them the first records lack the past their means reach back to).
    """
    t = spec.training
    features, target = _columns(frame, spec)
    n = len(frame)
    m = n - t.history - t.horizon + 1
    if m < 1:
        raise ModelDataError(
            f"model {spec.ref} needs at least {_needed(spec, t.horizon)} to make one training example; got {n}"
        )
    skip = t.history - t.window  # records read only by the seasonal means of the first window's records
    x = _input_windows(features[skip : n - t.horizon], spec)
    ends = np.arange(t.history - 1, t.history - 1 + m)  # the last row of each window
    last = target[ends]
    y = target[ends[:, None] + np.arange(1, t.horizon + 1)[None, :]]
    if t.predict == "delta":
        y = y - last[:, None]
    return x, y.astype(np.float32), last


# ---- training --------------------------------------------------------------------------------------------


def train(
    spec: ModelSpec,
    frame: pd.DataFrame,
    epochs: int | None = None,
    batch_size: int | None = None,
    on_epoch: EpochCallback | None = None,
    validation: pd.DataFrame | None = None,
) -> tuple[keras.Model, list[dict[str, Any]]]:
    """Build and train the model on a time-ordered frame; return ``(model, history)``.

    The validation data are the last ``validation_split`` of the windows (time order, never random), or the
    windows of ``validation`` when given (e.g. the rows after the training part, starting ``window`` rows
    earlier so that its first forecast follows the training data). ``history`` has one
    ``{"epoch": 1.., "loss": float, "val_loss": float | None}`` per epoch run; ``on_epoch(epoch, that
    dict)`` is called after each epoch. ``epochs``/``batch_size`` override the spec's.

    With ``solver: least_squares`` the weights are solved for instead (:func:`solve_least_squares`, on the
    same training windows) and set on the built model, so it saves, loads and predicts as a trained one;
    the history is that one step (``epoch`` 1), and ``epochs``/``batch_size`` are ignored (the log says so).

    With ``ensemble`` each member is built and trained in turn, seeded with its seed, on the same windows
    (their epochs' entries carry ``"member": 1..``); the model returned is :func:`mean_of_members`, and the
    history ends with its own losses: ``{"epoch": the most a member ran, "loss", "val_loss", "members": n}``.
    """
    keras = _keras()
    t = spec.training
    epochs_given, batch_given = epochs, batch_size
    epochs = t.epochs if epochs is None else epochs
    batch_size = t.batch_size if batch_size is None else batch_size
    for label, v, top in (("epochs", epochs, MAX_EPOCHS), ("batch_size", batch_size, MAX_BATCH_SIZE)):
        if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= top:
            raise ModelDataError(f"{label} must be an integer from 1 to {top:,}; got {v!r}")
    rows = len(frame) + (len(validation) if validation is not None else 0)
    problem = training_budget_problem(spec, rows=rows, batch_size=batch_size)
    if problem is not None:  # refused before the windows are built
        raise ModelDataError(problem)
    x, y, _ = make_windows(frame, spec)
    val: tuple[np.ndarray, np.ndarray] | None = None
    if validation is not None:
        xv, yv, _ = make_windows(validation, spec)
        val = (xv, yv)
    elif t.validation_split > 0 and len(x) > 1:
        n_val = min(len(x) - 1, max(1, math.floor(len(x) * t.validation_split)))
        val = (x[-n_val:], y[-n_val:])
        x, y = x[:-n_val], y[:-n_val]

    if t.solver == "least_squares":
        model = build_model(spec)
        overridden = {k: v for k, v in (("epochs", epochs_given), ("batch_size", batch_given)) if v is not None}
        return model, _fit_least_squares(model, spec, (x, y), val, on_epoch, overridden)
    if not t.ensemble_seeds:
        if t.seed is not None:
            keras.utils.set_random_seed(t.seed)
        model = build_model(spec)
        return model, _fit(keras, model, spec, (x, y), val, epochs, batch_size, on_epoch)
    members, history = [], []
    for number, seed in enumerate(t.ensemble_seeds, 1):
        keras.utils.set_random_seed(seed)
        member = build_model(spec, member=number)
        history += _fit(keras, member, spec, (x, y), val, epochs, batch_size, on_epoch, member=number)
        members.append(member)
    model = mean_of_members(spec, members)
    # the registered model's own losses (what `loss`/`val_loss` of a version say), after the members' epochs
    entry: dict[str, Any] = {
        "epoch": max(h["epoch"] for h in history),
        "loss": _mean_model_loss(model, len(members), x, y),
        "val_loss": None if val is None else _mean_model_loss(model, len(members), *val),
        "members": len(members),
    }
    log.info("%s", ensemble_line(spec, entry))
    return model, [*history, entry]


def _fit(
    keras: Any,
    model: keras.Model,
    spec: ModelSpec,
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray] | None,
    epochs: int,
    batch_size: int,
    on_epoch: EpochCallback | None,
    member: int | None = None,
) -> list[dict[str, Any]]:
    """Keras's ``fit`` with the spec's callbacks; the history of its epochs (an ensemble's: with ``member``)."""
    t = spec.training
    history: list[dict[str, Any]] = []

    class _Record(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            self.started = time.monotonic()

        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            logs = logs or {}
            val_loss = logs.get("val_loss")
            entry = {
                "epoch": epoch + 1,
                "loss": float(logs["loss"]),
                "val_loss": None if val_loss is None else float(val_loss),
                **({"member": member} if member else {}),
            }
            if t.lr_schedule is not None:  # the rate this epoch ran with (a plateau lowers it after this)
                entry["lr"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
            history.append(entry)
            log.info("%s", epoch_line(spec, entry, epochs, time.monotonic() - self.started))
            if on_epoch is not None:
                on_epoch(entry["epoch"], dict(entry))

    callbacks: list[Any] = [_Record()]  # first: it records the epoch's rate before a plateau changes it
    if t.lr_schedule is not None:
        callbacks.append(_schedule_callback(keras, spec, model, epochs, has_validation=val is not None))
    es = t.early_stopping
    if es is not None:
        monitor = es.monitor if (es.monitor == "loss" or val is not None) else "loss"
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor=monitor,
                patience=es.patience,
                min_delta=es.min_delta,
                restore_best_weights=es.restore_best_weights,
            )
        )
    model.fit(
        *train,
        epochs=epochs,
        batch_size=batch_size,
        validation_data=val,
        shuffle=t.shuffle,
        callbacks=callbacks,
        verbose=0,
    )
    return history


def _fit_least_squares(
    model: keras.Model,
    spec: ModelSpec,
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray] | None,
    on_epoch: EpochCallback | None,
    overridden: dict[str, int],
) -> list[dict[str, Any]]:
    """``solver: least_squares``: solve for the one Dense layer's weights, set them on ``model``, and return
    the history of that one step — the losses Keras computes with those weights (the l2 penalty included)."""
    started = time.monotonic()
    dense = next(layer for layer in spec.layers if layer.type == "Dense")
    kernel, bias = solve_least_squares(*train, l2=dense.get("l2") or 0.0, use_bias=dense.get("use_bias", True))
    _set_linear_weights(model, spec, kernel, bias)
    entry: dict[str, Any] = {"epoch": 1, "loss": _keras_loss(model, *train), "val_loss": None}
    if val is not None:
        entry["val_loss"] = _keras_loss(model, *val)
    line = least_squares_line(spec, entry, len(train[0]), kernel.shape[0], time.monotonic() - started)
    if overridden:  # `train_lstm epoch=20` of a pipeline written for gradient training still runs
        settings = ", ".join(f"{k}={v}" for k, v in overridden.items())
        line += f" ({settings} ignored: a least-squares solve has no epochs or batches)"
    log.info("%s", line)
    if on_epoch is not None:
        on_epoch(1, dict(entry))
    return [entry]


def solve_least_squares(
    x: np.ndarray, y: np.ndarray, l2: float = 0.0, use_bias: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """``(kernel [D, H], bias [H])`` minimising Keras's objective for a linear Dense layer and the mse loss:
    the mean over the N examples and H outputs of the squared error, plus ``l2 · ||kernel||²`` (the bias is
    not penalised). Setting its gradient to 0 gives, on data centred by their means (the bias absorbs them),
    ``(XcᵀXc + N·H·l2·I) K = XcᵀYc`` and ``bias = ȳ − x̄K``. ``x``: [N, ...] (flattened as Keras's Flatten
    does); XᵀX is accumulated in float64 a chunk of windows at a time, so the float64 copy stays bounded.
    Without a penalty the minimum-norm solution (the Gram matrix may be singular: relative inputs have a
    column of zeros)."""
    n, horizon = len(x), y.shape[1]
    flat = x.reshape(n, -1)
    inputs = flat.shape[1]
    x_mean = flat.mean(axis=0, dtype=np.float64) if use_bias else np.zeros(inputs)
    y_mean = y.mean(axis=0, dtype=np.float64) if use_bias else np.zeros(horizon)
    gram = np.zeros((inputs, inputs))
    cross = np.zeros((inputs, horizon))
    rows = max(1, LEAST_SQUARES_CHUNK_BYTES // (8 * (inputs + horizon)))
    for start in range(0, n, rows):
        xc = flat[start : start + rows].astype(np.float64) - x_mean
        gram += xc.T @ xc
        cross += xc.T @ (y[start : start + rows].astype(np.float64) - y_mean)
    if l2 > 0:
        gram[np.diag_indices(inputs)] += n * horizon * l2
        kernel = np.linalg.solve(gram, cross)
    else:
        kernel = np.linalg.lstsq(gram, cross, rcond=None)[0]
    return kernel, y_mean - x_mean @ kernel


def _set_linear_weights(model: keras.Model, spec: ModelSpec, kernel: np.ndarray, bias: np.ndarray) -> None:
    """Put a solved linear map into the model's Dense layer — with per-channel heads, channel c's rows of it
    (the flattened window interleaves the channels) into head c, the bias into the first head."""
    index = next(i for i, layer in enumerate(spec.layers, 1) if layer.type == "Dense")
    use_bias = next(layer for layer in spec.layers if layer.type == "Dense").get("use_bias", True)
    channels = spec.input_shape[1]
    if spec.heads == "per_channel" and channels > 1:
        no_bias = np.zeros_like(bias)
        heads = [(f"dense_{index}_ch{c}", kernel[c::channels], no_bias if c else bias) for c in range(channels)]
    else:
        heads = [(f"dense_{index}", kernel, bias)]
    for name, k, b in heads:
        weights = [k.astype(np.float32), *([b.astype(np.float32)] if use_bias else [])]
        model.get_layer(name).set_weights(weights)


def _keras_loss(model: keras.Model, x: np.ndarray, y: np.ndarray) -> float:
    """The compiled loss on (x, y) as Keras reports it (its ``val_loss``): the mse plus the l2 penalty."""
    return float(model.evaluate(x, y, batch_size=EVALUATE_BATCH, verbose=0))


def _mean_model_loss(model: keras.Model, members: int, x: np.ndarray, y: np.ndarray) -> float:
    """An ensemble's loss on (x, y): the loss of the mean forecast plus the members' mean l2 penalty — on the
    scale of one member's `loss`/`val_loss` (Keras's own loss of the mean model adds every member's penalty,
    so it would grow with the number of members)."""
    keras = _keras()
    penalties = [float(keras.ops.convert_to_numpy(p)) for p in model.losses]
    return _keras_loss(model, x, y) - sum(penalties) * (members - 1) / members


def least_squares_line(spec: ModelSpec, entry: dict[str, Any], windows: int, inputs: int, seconds: float) -> str:
    """``ett_step:0.2 solved by least squares - 0.4s - 8,472 windows x 1,513 inputs - loss: 0.0012 - ...``."""
    return (
        f"{spec.ref} solved by least squares - {seconds:.1f}s - {windows:,} windows x {inputs:,} inputs - "
        f"loss: {format_loss(entry['loss'])} - val_loss: {format_loss(entry.get('val_loss'))}"
    )


def epoch_line(spec: ModelSpec, entry: dict[str, Any], epochs: int, seconds: float | None = None) -> str:
    """One epoch's log line, as Keras' progress bar writes it:
    ``ett:0.1 epoch 3/20 - 6.5s - loss: 0.0205 - val_loss: 0.0115 - lr: 0.0005`` (an ensemble's member:
    ``ett_h96:0.2 member 2/3 epoch 3/80 - …``)."""
    members = len(spec.training.ensemble_seeds)
    member = f" member {entry['member']}/{members}" if entry.get("member") else ""
    parts = [f"{spec.ref}{member} epoch {entry['epoch']}/{epochs}"]
    if seconds is not None:
        parts.append(f"{seconds:.1f}s")
    parts += [f"loss: {format_loss(entry['loss'])}", f"val_loss: {format_loss(entry.get('val_loss'))}"]
    if "lr" in entry:
        parts.append(f"lr: {entry['lr']:.3g}")
    return " - ".join(parts)


def ensemble_line(spec: ModelSpec, entry: dict[str, Any]) -> str:
    """``ett_h96:0.2 mean of 3 members - loss: 0.0412 - val_loss: 0.0890``."""
    return (
        f"{spec.ref} mean of {entry['members']} members - loss: {format_loss(entry['loss'])} - "
        f"val_loss: {format_loss(entry.get('val_loss'))}"
    )


def epochs_run(history: list[dict[str, Any]]) -> str:
    """``12 epochs``, ``1 epoch``; an ensemble's: ``3 members, 80 epochs each`` (``…, 31–80 epochs`` when
    early stopping ended them at different epochs)."""
    if not history[-1].get("members"):
        return f"{len(history)} epoch{'s' if len(history) != 1 else ''}"
    ran: dict[int, int] = {}
    for h in history[:-1]:
        ran[h["member"]] = max(ran.get(h["member"], 0), h["epoch"])
    low, high = min(ran.values()), max(ran.values())
    each = f"{high} epoch{'s' if high != 1 else ''} each" if low == high else f"{low}–{high} epochs"
    return f"{len(ran)} members, {each}"


def format_loss(value: float | None) -> str:
    """A loss as Keras shows one: 4 decimals, or 4 significant digits below 0.001 — the same rule for `loss`
    and `val_loss`, so that the two line up."""
    if value is None:
        return "-"
    return f"{value:.4f}" if value == 0 or abs(value) >= 1e-3 else f"{value:.3e}"


def _schedule_callback(keras: Any, spec: ModelSpec, model: Any, epochs: int, has_validation: bool) -> Any:
    """The Keras callback of the spec's learning-rate schedule, from the optimizer's starting rate."""
    schedule = spec.training.lr_schedule
    base = float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))
    if schedule.type == "plateau":
        monitor = schedule.monitor if (schedule.monitor == "loss" or has_validation) else "loss"
        return keras.callbacks.ReduceLROnPlateau(
            monitor=monitor, factor=schedule.factor, patience=schedule.patience, min_lr=schedule.min_learning_rate
        )
    return keras.callbacks.LearningRateScheduler(lambda epoch, _lr: scheduled_rate(schedule, base, epoch, epochs))


def scheduled_rate(schedule: Any, base: float, epoch: int, epochs: int) -> float:
    """The rate of epoch ``epoch`` (0-based) under a ``step`` or ``cosine`` schedule starting at ``base``."""
    if schedule.type == "step":
        return base * schedule.factor ** (epoch // schedule.every)
    span = schedule.epochs or epochs
    low = schedule.min_learning_rate
    return low + (base - low) * 0.5 * (1 + math.cos(math.pi * min(epoch, span) / span))


# ---- prediction ------------------------------------------------------------------------------------------


def predict(model: keras.Model, spec: ModelSpec, frame: pd.DataFrame, batch_size: int = 1024) -> np.ndarray:
    """Forecast levels for every window of the frame: float64 ``[len(frame) - history + 1, horizon]``.

    Row ``i`` is the forecast made at frame row ``history - 1 + i`` for the ``horizon`` rows after it
    (``history`` is ``window`` without seasonal means); the first ``len(frame) - history - horizon + 1``
    rows line up with ``make_windows(frame, spec)``. With ``predict: delta`` the model's changes are added
    to the last observed target value.
    """
    t = spec.training
    features, target = _columns(frame, spec)
    if len(frame) < t.history:
        raise ModelDataError(f"model {spec.ref} needs at least {_needed(spec)} to forecast; got {len(frame)}")
    features = features[t.history - t.window :]  # the records only the seasonal means read are not windowed
    # windows are built a chunk at a time: all of a 65,536-record batch's at once could be gigabytes
    n_windows = len(frame) - t.history + 1
    chunk = max(1, PREDICT_CHUNK_BYTES // (t.window * t.input_shape[1] * 4 * (3 if t.moving_average else 1)))
    parts = []
    for start in range(0, n_windows, chunk):
        x = _input_windows(features[start : start + chunk + t.window - 1], spec)
        parts.append(np.asarray(model.predict(x, batch_size=batch_size, verbose=0), dtype=np.float64))
    out = np.concatenate(parts).reshape(n_windows, -1)
    if out.shape[1] != t.horizon:
        raise ModelDataError(
            f"model {spec.ref} outputs {out.shape[1]} value(s) per window; the spec's horizon is {t.horizon}"
        )
    if t.predict == "delta":
        out = out + target[t.history - 1 :][:, None]
    return out


# ---- files -----------------------------------------------------------------------------------------------


def save_model(model: keras.Model, path: str | Path) -> Path:
    """Save in the native ``.keras`` format (architecture, weights; no pickled Python code)."""
    path = Path(path)
    if path.suffix != ".keras":
        raise ModelDataError(f"model files use the .keras format; the path must end in .keras, got {path.name}")
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(path)
    return path


def load_model(path: str | Path, spec: ModelSpec | None = None) -> keras.Model:
    """Load a ``.keras`` file for inference (``safe_mode=True``: no arbitrary code; not compiled).

    The file's unpacked size is checked before Keras reads it, and with ``spec`` the model must be the one
    the spec describes: its input ``[window, features]``, ``horizon`` outputs, at most MAX_PARAMETERS.
    """
    _check_model_file(Path(path))
    keras = _keras()
    model = keras.models.load_model(str(path), safe_mode=True, compile=False)
    if spec is not None:
        check_model_matches(model, spec)
    return model


def _check_model_file(path: Path) -> None:
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
    except (OSError, zipfile.BadZipFile) as exc:
        raise ModelDataError(f"{path.name} is not a readable .keras file: {exc}") from None
    if unpacked > MAX_MODEL_FILE_BYTES:
        raise ModelDataError(
            f"{path.name} unpacks to {format_bytes(unpacked)}; model files are limited to "
            f"{format_bytes(MAX_MODEL_FILE_BYTES)}"
        )


def check_model_matches(model: keras.Model, spec: ModelSpec) -> None:
    """A loaded model must take the spec's windows and give its horizon (a file registered by hand may not)."""
    t = spec.training
    expected_in = (None, *t.input_shape)
    got_in = tuple(model.input_shape) if not isinstance(model.input_shape, list) else None
    got_out = model.output_shape if not isinstance(model.output_shape, list) else None
    if got_in != expected_in or got_out is None or tuple(got_out) != (None, t.horizon):
        raise ModelDataError(
            f"the model file takes {got_in} and gives {got_out}, but definition {spec.ref} needs windows "
            f"{expected_in} and {t.horizon} forecast(s) per window: it was not built from this definition"
        )
    if model.count_params() > MAX_PARAMETERS:
        raise ModelDataError(f"the model file has {model.count_params():,} parameters; at most {MAX_PARAMETERS:,}")
