"""The AMML model language: a Keras model and its training, defined in YAML (paper §III.2, Fig. 8 and 11).

A model file has two parts: ``model`` (the layers) and ``training`` (loss, optimizer, epochs, and how the
stream of records becomes windows: ``window``, ``horizon``, ``target``, ``features``, ``predict``)::

    name: ett
    version: "0.1"
    model:
      layers:
        - {type: LSTM, units: 32, activation: tanh}
        - {type: Dense, units: 1}
    training: {loss: mae, optimizer: adam, epochs: 20, window: 24, target: OT}

The file is read with the YAML *node* API (``yaml.compose``), never into plain dicts first, so every error
names file:line:column of the offending key or value, the valid choices and, when one is close, a
"did you mean". Nothing unknown is ignored. All errors of a file are collected: one is raised alone, several
together as :class:`~compiler.errors.AmmlCompileErrors`.

This module imports neither TensorFlow nor numpy: it runs in ``amml lint`` and at DAG-parse time.
Layer, loss, optimizer and activation names are case-insensitive and stored in their canonical spelling.

Limits. A model file is written by people but read by every worker, so nothing in it may cost unbounded
time or memory: the YAML itself is bounded before any Python object is built (:data:`MAX_FILE_BYTES`,
:data:`MAX_YAML_DEPTH`, :data:`MAX_YAML_NODES` counting aliases expanded, so a "billion laughs" file is
refused), every number has a maximum (:data:`MAX_UNITS`, :data:`MAX_WINDOW`, :data:`MAX_LAYERS`, ...), and
the whole model must fit a training budget: at most :data:`MAX_PARAMETERS` parameters and an estimated
training memory (:func:`estimate_training`: weights, gradients, optimizer state, one batch's activations and,
once the number of records is known, the windows the training materialises) within
``AMML_TRAIN_MEMORY_LIMIT`` (default 4 GiB; :func:`train_memory_limit`). Lint checks what it can know;
``train_lstm`` checks again with the records it received (:func:`training_budget_problem`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from compiler.errors import AmmlCompileErrors, did_you_mean, one_of

from .bounded_yaml import MAX_YAML_DEPTH, MAX_YAML_NODES, BoundedLoader, YamlLimitError
from .budget import (
    DEFAULT_TRAIN_MEMORY,
    MAX_PARAMETERS,
    TRAIN_MEMORY_ENV,
    TrainingEstimate,
    estimate_training,
    format_bytes,
    layer_parameters,
    train_memory_limit,
    training_budget_problem,
)
from .errors import AmmlModelError

__all__ = [
    "ACTIVATIONS",
    "DEFAULT_TRAIN_MEMORY",
    "INPUT_MODES",
    "LAYER_TYPES",
    "LOSSES",
    "MAX_BATCH_SIZE",
    "MAX_EPOCHS",
    "MAX_FEATURES",
    "MAX_FILE_BYTES",
    "MAX_HISTORY",
    "MAX_HORIZON",
    "MAX_LAYERS",
    "MAX_PARAMETERS",
    "MAX_TIME_HARMONICS",
    "MAX_UNITS",
    "MAX_WINDOW",
    "MAX_YAML_DEPTH",
    "MAX_YAML_NODES",
    "OPTIMIZERS",
    "PREDICT_MODES",
    "RECURRENT_LAYERS",
    "SCHEDULES",
    "SOLVERS",
    "TIME_FEATURES",
    "AmmlModelError",
    "EarlyStoppingSpec",
    "LayerSpec",
    "ModelSpec",
    "ScheduleSpec",
    "TrainingEstimate",
    "TrainingSpec",
    "declared_ref",
    "estimate_training",
    "find_model_files",
    "format_bytes",
    "load_model_spec",
    "parse_model_spec",
    "train_memory_limit",
    "training_budget_problem",
]


# ---- the language ---------------------------------------------------------------------------------------

ACTIVATIONS = (
    "elu", "exponential", "gelu", "hard_sigmoid", "leaky_relu", "linear", "mish", "relu", "relu6", "selu",
    "sigmoid", "silu", "softmax", "softplus", "softsign", "swish", "tanh",
)  # fmt: skip
LOSSES = ("mae", "mse", "huber", "mape")
LOSS_ALIASES = {
    "mean_absolute_error": "mae",
    "mean_squared_error": "mse",
    "mean_absolute_percentage_error": "mape",
}
OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop", "adagrad")
PREDICT_MODES = ("level", "delta")
INPUT_MODES = ("level", "relative")
MONITORS = ("loss", "val_loss")
RECURRENT_LAYERS = ("LSTM", "GRU")
HEADS = ("shared", "per_channel")
# how the weights are found: Keras's gradient descent (`fit`), or one exact solve of the same objective
# (a linear model with the mse loss: ridge regression, keras_builder.solve_least_squares)
SOLVERS = ("gradient", "least_squares")
# training keys that only steer gradient descent: refused with `solver: least_squares`, which would ignore them
GRADIENT_ONLY_KEYS = (
    "optimizer", "lr_schedule", "early_stopping", "epochs", "batch_size", "shuffle", "seed", "ensemble",
)  # fmt: skip
TIME_FEATURES = ("hour_of_day", "day_of_week")
# learning-rate schedules and the settings each takes (README "Models")
SCHEDULES: dict[str, tuple[str, ...]] = {
    "step": ("type", "every", "factor"),
    "cosine": ("type", "epochs", "min_learning_rate"),
    "plateau": ("type", "patience", "factor", "min_learning_rate", "monitor"),
}

# ---- limits (README "Models": keep the two in step) ---------------------------------------------------------

MAX_FILE_BYTES = 256 * 1024  # the shipped model files are under 2 KiB
MAX_LAYERS = 32
MAX_UNITS = 4096
MAX_WINDOW = 2048
MAX_HORIZON = 1024
MAX_FEATURES = 1024
MAX_EPOCHS = 100_000
MAX_BATCH_SIZE = 65_536
MAX_PATIENCE = 10_000
MAX_TIME_HARMONICS = 12  # sine and cosine of 1..12 times the angle: every shape of a 24-hour day
MAX_SEASONAL_PERIOD = 10_080  # records in a season (a week of minutes; a year of days is 366)
MAX_SEASONAL_DAYS = 366  # periods a seasonal mean reaches back over
MAX_SEASONAL_CHANNELS = 16
MAX_ENSEMBLE_MEMBERS = 10  # N-BEATS's ensembles are larger, but each member here is a whole training
MAX_HISTORY = 16_384  # records one forecast reads: the window and the seasonal means' reach before it
MAX_LEARNING_RATE = 10.0
MAX_STRING_CHARS = 256  # names: target, features, layer types, choices, keys
MAX_DESCRIPTION_CHARS = 10_000
MAX_L2 = 10.0
MAX_NUMBER_CHARS = 100  # a longer literal is not a number anyone meant (and `int()` of 5000 digits raises)

_NAME_RE = re.compile(r"(?!.*\.\.)[A-Za-z_][A-Za-z0-9_.-]{0,99}\Z")  # the registry's pattern (`..` never)
_VERSION_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}\Z")


@dataclass(frozen=True)
class _Arg:
    """One argument of a layer (or key of a training mapping): its type, range and whether it is required."""

    kind: str  # int | float | bool | choice | shape
    doc: str
    required: bool = False
    minimum: float | None = None
    maximum: float | None = None
    below: float | None = None  # exclusive upper bound
    choices: tuple[str, ...] = ()


_UNITS = _Arg("int", "the number of units (outputs)", required=True, minimum=1, maximum=MAX_UNITS)
_ACTIVATION = _Arg("choice", "activation function", choices=ACTIVATIONS)
_BOOL = _Arg("bool", "true or false")
_FRACTION = _Arg("float", "fraction in [0, 1)", minimum=0, below=1)
# L2 weight penalty (added to the loss): on a Dense layer's kernel; on a recurrent layer's kernel and recurrent kernel
_L2 = _Arg("float", "L2 penalty factor on the layer's weights", minimum=0, maximum=MAX_L2)
_RECURRENT = {
    "units": _UNITS,
    "activation": _ACTIVATION,
    "recurrent_activation": _ACTIVATION,
    "return_sequences": _BOOL,
    "dropout": _FRACTION,
    "recurrent_dropout": _FRACTION,
    "use_bias": _BOOL,
    "l2": _L2,
}
LAYER_TYPES: dict[str, dict[str, _Arg]] = {
    "Input": {"shape": _Arg("shape", "[window, number of features]; inferred from `training` when omitted")},
    "LSTM": _RECURRENT,
    "GRU": _RECURRENT,
    "Dense": {"units": _UNITS, "activation": _ACTIVATION, "use_bias": _BOOL, "l2": _L2},
    "Dropout": {"rate": _Arg("float", "the fraction of inputs dropped, in [0, 1)", required=True, minimum=0, below=1)},
}
_LAYER_BY_LOWER = {t.lower(): t for t in LAYER_TYPES}

_TOP_KEYS = ("name", "version", "description", "model", "training")
_MODEL_KEYS = ("layers", "heads")
_TRAINING_KEYS = (
    "loss", "optimizer", "epochs", "batch_size", "validation_split", "early_stopping", "window", "horizon",
    "target", "features", "predict", "inputs", "seed", "shuffle", "lr_schedule", "time_features", "time_column",
    "time_harmonics", "decomposition", "solver", "seasonal_means", "ensemble",
)  # fmt: skip
_OPTIMIZER_KEYS = ("name", "learning_rate", "clipnorm")
_EARLY_STOPPING_KEYS = ("patience", "monitor", "min_delta", "restore_best_weights")
_DECOMPOSITION_KEYS = ("moving_average",)
_SEASONAL_KEYS = ("period", "days")
_ENSEMBLE_KEYS = ("seeds",)


# ---- the checked definition ------------------------------------------------------------------------------


@dataclass(frozen=True)
class LayerSpec:
    """One layer: its canonical type and the arguments given in the file (in file order, values normalised).

    Arguments not given keep Keras's defaults. ``line``/``column`` locate the layer in its file and do not
    take part in equality.
    """

    type: str
    args: tuple[tuple[str, Any], ...] = ()
    line: int = field(default=0, compare=False)
    column: int = field(default=0, compare=False)

    @property
    def kwargs(self) -> dict[str, Any]:
        return dict(self.args)

    def get(self, key: str, default: Any = None) -> Any:
        return self.kwargs.get(key, default)

    @property
    def is_recurrent(self) -> bool:
        return self.type in RECURRENT_LAYERS

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type}
        for key, value in self.args:
            out[key] = list(value) if isinstance(value, tuple) else value
        return out


@dataclass(frozen=True)
class EarlyStoppingSpec:
    patience: int = 3
    monitor: str = "val_loss"
    min_delta: float = 0.0
    restore_best_weights: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "patience": self.patience,
            "monitor": self.monitor,
            "min_delta": self.min_delta,
            "restore_best_weights": self.restore_best_weights,
        }


@dataclass(frozen=True)
class ScheduleSpec:
    """A learning-rate schedule, applied at the start of each epoch (``plateau``: at its end, on ``monitor``).

    ``step``: the rate times ``factor`` every ``every`` epochs; ``cosine``: from the optimizer's rate down to
    ``min_learning_rate`` along half a cosine over ``epochs`` epochs (default: the training's), then flat;
    ``plateau``: times ``factor`` when ``monitor`` has not improved for ``patience`` epochs, not below
    ``min_learning_rate`` (Keras's ReduceLROnPlateau).
    """

    type: str
    every: int = 10
    factor: float = 0.5
    epochs: int | None = None
    min_learning_rate: float = 0.0
    patience: int = 3
    monitor: str = "val_loss"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type}
        for key in SCHEDULES[self.type][1:]:
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out


@dataclass(frozen=True)
class TrainingSpec:
    """How to train: the loss and optimizer, and how records become (window → horizon) examples.

    ``features`` are the input columns of each window (default: the target alone); the model sees
    ``window`` consecutive records and forecasts ``target`` 1..``horizon`` records after the last of them,
    either as the value itself (``predict: level``) or as its change from the last observed value
    (``predict: delta``). ``inputs: relative`` feeds each window minus its last record (per feature; NLinear's
    normalisation), so the model sees the recent shape of the series and not its level, which may drift
    outside the range seen in training; it goes with ``predict: delta``.

    Input transforms, applied to each window in this order: ``inputs: relative``; ``decomposition`` (DLinear:
    each feature becomes two channels, its trend — the moving average of ``moving_average`` records, the
    window's ends repeated so that it keeps its length — and the rest, the seasonal part); ``time_features``
    (``hour_of_day``, ``day_of_week`` of each record of the window, from ``time_column``, as sine and cosine:
    two channels each, never made relative; with ``time_harmonics: n`` the sine and cosine of 1..n times each
    angle, ``2 n`` channels each, so that a linear map can shape a daily cycle that is not a sinusoid);
    ``seasonal_means: {period: P, days: [K1, …]}`` (one channel per K, never made relative: at each record
    ``s``, the mean over k = 1 … K of the target's change into the next record P·k records earlier,
    ``target[s + 1 - P k] - target[s - P k]`` — with P = 24 hourly records, how the next hour changed on the
    same hour of the last K days; past values only, so a forecast reads :attr:`history` records). So a
    window has ``input_shape[1]`` channels.

    ``solver``: ``gradient`` (Keras's ``fit`` with the optimizer, epochs, batches) or ``least_squares``: for
    one linear ``Dense`` layer and the ``mse`` loss, the weights that minimise the same objective (the mean
    squared error plus the layer's ``l2`` penalty) in one solve, on the same training windows; the keys of
    gradient descent (:data:`GRADIENT_ONLY_KEYS`) are refused with it.

    ``ensemble: {seeds: [7, 1, 2]}`` (``ensemble_seeds``): the model is trained once per seed, each member on
    the same windows with the same settings, and forecasts the mean of the members' forecasts (N-BEATS's
    ensembles; darts' ``NaiveEnsembleModel``): the spread between seeds averages out. ``seed`` is refused
    beside it, and it is a key of gradient descent.
    """

    target: str
    features: tuple[str, ...]
    loss: str = "mae"
    optimizer: str = "adam"
    learning_rate: float | None = None
    clipnorm: float | None = None
    epochs: int = 10
    batch_size: int = 32
    validation_split: float = 0.1
    early_stopping: EarlyStoppingSpec | None = None
    window: int = 24
    horizon: int = 1
    predict: str = "level"
    inputs: str = "level"
    seed: int | None = 0
    shuffle: bool = True
    lr_schedule: ScheduleSpec | None = None
    time_features: tuple[str, ...] = ()
    time_column: str = "date"
    time_harmonics: int = 1
    moving_average: int | None = None
    solver: str = "gradient"
    seasonal_period: int | None = None
    seasonal_days: tuple[int, ...] = ()
    ensemble_seeds: tuple[int, ...] = ()

    @property
    def value_channels(self) -> int:
        """Channels made from the features (two per feature with the decomposition)."""
        return len(self.features) * (2 if self.moving_average else 1)

    @property
    def input_shape(self) -> tuple[int, int]:
        time = 2 * self.time_harmonics * len(self.time_features)
        return (self.window, self.value_channels + time + len(self.seasonal_days))

    @property
    def history(self) -> int:
        """The records one forecast reads: its window and, with ``seasonal_means``, the ``period × max(days)``
        records before the window's first that its first record's means reach back to. Training windows,
        forecasts and a stream's carried-over tail all count from it (``window`` without seasonal means)."""
        return self.window + (self.seasonal_period or 0) * max(self.seasonal_days, default=0)

    def to_dict(self) -> dict[str, Any]:
        optimizer: Any = self.optimizer
        if self.learning_rate is not None or self.clipnorm is not None:
            optimizer = {"name": self.optimizer}
            if self.learning_rate is not None:
                optimizer["learning_rate"] = self.learning_rate
            if self.clipnorm is not None:
                optimizer["clipnorm"] = self.clipnorm
        gradient = {
            "optimizer": optimizer,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "early_stopping": self.early_stopping.to_dict() if self.early_stopping else None,
            # an ensemble's members have the seeds of `ensemble` (the file refuses `seed` beside it)
            **({"ensemble": {"seeds": list(self.ensemble_seeds)}} if self.ensemble_seeds else {"seed": self.seed}),
            "shuffle": self.shuffle,
            **({"lr_schedule": self.lr_schedule.to_dict()} if self.lr_schedule else {}),
        }
        return {
            "loss": self.loss,
            # the keys of gradient descent, or the solver that has none (the file refuses them together)
            **(gradient if self.solver == "gradient" else {"solver": self.solver}),
            "validation_split": self.validation_split,
            "window": self.window,
            "horizon": self.horizon,
            "target": self.target,
            "features": list(self.features),
            "predict": self.predict,
            "inputs": self.inputs,
            **(
                {"time_features": list(self.time_features), "time_column": self.time_column}
                if self.time_features
                else {}
            ),
            **({"time_harmonics": self.time_harmonics} if self.time_harmonics != 1 else {}),
            **({"decomposition": {"moving_average": self.moving_average}} if self.moving_average else {}),
            **(
                {"seasonal_means": {"period": self.seasonal_period, "days": list(self.seasonal_days)}}
                if self.seasonal_days
                else {}
            ),
        }


@dataclass(frozen=True)
class ModelSpec:
    """A checked model definition. Equality compares the definition, not the text it was written as."""

    name: str
    version: str
    description: str
    layers: tuple[LayerSpec, ...]
    training: TrainingSpec
    heads: str = "shared"  # per_channel: each input channel through its own copy of the layers, outputs summed
    source: str = field(default="", compare=False, repr=False)
    sha256: str = field(default="", compare=False)
    filename: str = field(default="<string>", compare=False)

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"

    @property
    def input_shape(self) -> tuple[int, int]:
        return self.training.input_shape

    def to_dict(self) -> dict[str, Any]:
        """The normalised definition, in the shape of the YAML file (parsing its YAML dump gives an equal spec)."""
        return {
            "name": self.name,
            "version": self.version,
            "description": self.description,
            "model": {
                "layers": [layer.to_dict() for layer in self.layers],
                **({"heads": self.heads} if self.heads != "shared" else {}),
            },
            "training": self.training.to_dict(),
        }


# ---- public API ------------------------------------------------------------------------------------------


def load_model_spec(path: str | Path) -> ModelSpec:
    """Read and check a model file; raise :class:`AmmlModelError` (or several as AmmlCompileErrors)."""
    return parse_model_spec(_read_model_file(path), str(path))


def parse_model_spec(text: str, filename: str = "<string>") -> ModelSpec:
    """Check model YAML text; raise :class:`AmmlModelError` (or several as AmmlCompileErrors)."""
    if len(text) > MAX_FILE_BYTES:
        raise _too_large(filename, len(text))
    return _Parser(text, filename).parse()


def find_model_files(folder: str | Path) -> list[Path]:
    """The ``*.yaml``/``*.yml`` files under ``folder`` whose top level has ``model:`` and ``training:``.

    Other YAML files are skipped. A model file too broken to parse (or too large or deep to) is still listed
    (recognised by its top-level keys in the text) so that loading it reports its errors instead of hiding it.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = []
    for path in sorted(p for p in folder.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file()):
        if any(part.startswith(".") for part in path.relative_to(folder).parts):
            continue
        try:
            with path.open("rb") as f:
                head = f.read(MAX_FILE_BYTES + 1)
            text = head.decode("utf-8", errors="replace" if len(head) > MAX_FILE_BYTES else "strict")
        except (OSError, UnicodeDecodeError):
            continue
        if _looks_like_model(text, whole=len(head) <= MAX_FILE_BYTES):
            found.append(path)
    return found


_TOP_KEY_RE = re.compile(r"^['\"]?(model|training)['\"]?\s*:", re.MULTILINE)


def _looks_like_model(text: str, whole: bool = True) -> bool:
    if not whole:  # too large to be one: listed when it says it is one, so that loading it says why not
        return bool(_TOP_KEY_RE.search(text))
    try:
        node = yaml.compose(text, Loader=BoundedLoader)
    except yaml.YAMLError:
        return {m.group(1) for m in _TOP_KEY_RE.finditer(text)} == {"model", "training"}
    if not isinstance(node, MappingNode):
        return False
    keys = {k.value for k, _ in node.value if isinstance(k, ScalarNode)}
    return {"model", "training"} <= keys


def declared_ref(path: str | Path) -> str | None:
    """``name:version`` as a model file's top level writes them, even when the rest of it is wrong (or too
    large to compose: then read from the top-level lines); None when the file does not say. So one broken
    file is an error only when it is the one asked for."""
    try:
        text = _read_model_file(path)
    except AmmlModelError:
        return None
    try:
        root = yaml.compose(text, Loader=BoundedLoader)
    except yaml.YAMLError:
        found = dict(_TOP_SCALAR_RE.findall(text))
        return f"{found['name']}:{found['version']}" if {"name", "version"} <= found.keys() else None
    if not isinstance(root, MappingNode):
        return None
    top = {k.value: v for k, v in root.value if isinstance(k, ScalarNode) and isinstance(v, ScalarNode)}
    if "name" not in top or "version" not in top:
        return None
    return f"{top['name'].value}:{top['version'].value.strip()}"


_TOP_SCALAR_RE = re.compile(r"""^(name|version)\s*:\s*['"]?([^'"\s#]+)""", re.MULTILINE)


def _read_model_file(path: str | Path) -> str:
    """The text of a model file, read no further than the size limit (a device or a huge file is refused)."""
    try:
        with Path(path).open("rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise AmmlModelError(f"cannot read the file: {exc.strerror or exc}", filename=str(path)) from None
    if len(data) > MAX_FILE_BYTES:
        raise _too_large(str(path), None)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AmmlModelError(f"file is not UTF-8 text ({exc.reason} at byte {exc.start})", filename=str(path)) from None


def _too_large(filename: str, size: int | None) -> AmmlModelError:
    what = f"is {size:,} characters long" if size is not None else f"is larger than {format_bytes(MAX_FILE_BYTES)}"
    return AmmlModelError(
        f"the model file {what}; model files are limited to {format_bytes(MAX_FILE_BYTES)}",
        filename=filename,
        hint="a model file holds a few layers and training settings (the shipped ones are under 2 KiB); "
        "is this the right file?",
    )


# ---- the checker -----------------------------------------------------------------------------------------


class _Pairs(dict):
    """Key → (key node, value node) of a checked mapping; ``misspelt``: valid keys an unknown key resembles."""

    def __init__(self, items: dict[str, tuple[ScalarNode, Node]]) -> None:
        super().__init__(items)
        self.misspelt: set[str] = set()


_BAD: Any = object()  # a value that failed its check (the error is already recorded)
_TAG = "tag:yaml.org,2002:"
_SCALAR_TAGS = {_TAG + t for t in ("str", "int", "float", "bool", "null", "timestamp", "binary")}


class _Parser:
    def __init__(self, text: str, filename: str) -> None:
        self.text = text
        self.filename = filename
        self.errors: list[AmmlModelError] = []
        self.constructor = SafeConstructor()
        self.monitor_node: Node | None = None
        self.heads = "shared"

    # -- errors --

    def error(self, message: str, node: Node | None, hint: str | None = None) -> None:
        line = column = None
        if node is not None:
            line, column = node.start_mark.line + 1, node.start_mark.column + 1
        self.errors.append(
            AmmlModelError(message, filename=self.filename, line=line, column=column, source=self.text, hint=hint)
        )

    def _raise(self) -> None:
        errors = sorted(self.errors, key=lambda e: (e.line or 0, e.column or 0))
        if len(errors) == 1:
            raise errors[0]
        raise AmmlCompileErrors(list(errors))

    # -- entry --

    def parse(self) -> ModelSpec:
        try:
            root = yaml.compose(self.text, Loader=BoundedLoader)
        except YamlLimitError as exc:
            mark = exc.problem_mark
            raise AmmlModelError(
                exc.problem,
                filename=self.filename,
                line=mark.line + 1,
                column=mark.column + 1,
                source=self.text,
                hint="write the layers and settings out plainly; model files need no deep nesting or chains of aliases",
            ) from None
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            problem = exc.problem or exc.context or "cannot parse"
            raise AmmlModelError(
                f"invalid YAML: {problem}",
                filename=self.filename,
                line=mark.line + 1 if mark else None,
                column=mark.column + 1 if mark else None,
                source=self.text,
                hint="check the indentation and quoting near this position; YAML indents with spaces, not tabs",
            ) from exc
        except yaml.YAMLError as exc:
            raise AmmlModelError(f"invalid YAML: {exc}", filename=self.filename, source=self.text) from exc
        if root is None:
            raise AmmlModelError(
                "the model file is empty",
                filename=self.filename,
                hint="a model file needs `name`, `version`, `model: {layers: [...]}` and `training: {target: ...}`",
            )
        top = self.mapping(
            root, "the model file", _TOP_KEYS, "unknown top-level key `{key}`; expected one of {choices}"
        )
        if top is None:
            self._raise()
        name = self.required(top, "name", root, "the model file", hint="add `name: ett` (the model's name)")
        if name is not None:
            name = self.name(name)
        version = self.required(top, "version", root, "the model file", hint='add `version: "0.1"`')
        if version is not None:
            version = self.version(version)
        description = ""
        if "description" in top:
            description = self.string(
                top["description"][1],
                "`description`",
                allow_empty=True,
                allow_null=True,
                max_chars=MAX_DESCRIPTION_CHARS,
            )
        training = None
        if "training" in top:
            training = self.training(top["training"])
        else:
            self.error(
                "the model file has no `training`; it is required",
                root,
                hint="add `training:` with at least `target: OT`",
            )
        layers = None
        model_node = self.required(top, "model", root, "the model file", hint="add `model: {layers: [...]}`")
        if model_node is not None:
            layers = self.model(model_node, top["model"][0], training)
        if self.errors:
            self._raise()
        assert training is not None and layers is not None
        spec = ModelSpec(
            name=name,
            version=version,
            description=description or "",
            layers=layers,
            training=training,
            heads=self.heads,
            source=self.text,
            sha256=hashlib.sha256(self.text.encode("utf-8")).hexdigest(),
            filename=self.filename,
        )
        self.budget(spec, model_node, top["training"][1])
        if self.errors:
            self._raise()
        return spec

    def budget(self, spec: ModelSpec, model_node: Node, training_node: Node) -> None:
        """The model must fit the training budget before any data is seen (the data are checked at train time)."""
        counts = layer_parameters(spec)
        total = sum(counts)
        members = len(spec.training.ensemble_seeds)
        if total > MAX_PARAMETERS:
            biggest = max(range(len(counts)), key=counts.__getitem__)
            layer = spec.layers[biggest]
            self.errors.append(
                AmmlModelError(
                    f"the model has {total:,} parameters; at most {MAX_PARAMETERS:,} are allowed (layer "
                    f"{biggest + 1}, `{layer.type}`, has {counts[biggest]:,}"
                    + (f": {members} ensemble members of {counts[biggest] // members:,})" if members else ")"),
                    filename=self.filename,
                    line=layer.line,
                    column=layer.column,
                    source=self.text,
                    hint="use fewer units or layers"
                    + ("" if any(x.is_recurrent for x in spec.layers) else ", or a shorter window or fewer features")
                    + (", or fewer `ensemble.seeds`" if members else ""),
                )
            )
            return
        try:
            problem = training_budget_problem(spec)
        except AmmlModelError as exc:  # AMML_TRAIN_MEMORY_LIMIT is not a size
            self.errors.append(exc)
            return
        if problem is not None:
            batch_size = [
                v for k, v in getattr(training_node, "value", ()) if getattr(k, "value", None) == "batch_size"
            ]
            fewer = (
                "a shorter window or fewer features"
                if spec.training.solver == "least_squares"
                else "a smaller `batch_size`, fewer units or a shorter window"
            )
            fewer += ", fewer `ensemble.seeds`" if members else ""
            self.error(
                problem,
                batch_size[0] if batch_size else training_node,
                hint=f"use {fewer}, or raise {TRAIN_MEMORY_ENV} (e.g. 8GiB) on a machine that has the memory",
            )

    # -- node helpers --

    def describe(self, node: Node) -> str:
        if isinstance(node, MappingNode):
            return "a mapping"
        if isinstance(node, SequenceNode):
            return "a list"
        tag = node.tag
        if len(node.value) > 60:  # an error message quotes the value, not a whole huge one
            return f"a {'string' if tag == _TAG + 'str' else 'value'} of {len(node.value):,} characters"
        if tag == _TAG + "null":
            return "null (nothing)"
        if tag == _TAG + "bool":
            return f"the boolean {node.value}"
        if tag == _TAG + "int":
            return f"the integer {node.value}"
        if tag == _TAG + "float":
            return f"the number {node.value}"
        if tag == _TAG + "str":
            return f"the string {node.value!r}"
        return f"{node.value!r} (YAML tag {tag})"

    def value(self, node: ScalarNode) -> Any:
        return self.constructor.construct_object(node, deep=True)

    def scalar_ok(self, node: Node, what: str) -> bool:
        if isinstance(node, ScalarNode) and node.tag in _SCALAR_TAGS:
            return True
        if isinstance(node, ScalarNode):
            self.error(f"{what}: unsupported YAML tag `{node.tag}`", node, hint="model files use plain YAML values")
        return False

    def pairs(self, node: MappingNode, what: str) -> dict[str, tuple[ScalarNode, Node]]:
        """Key → (key node, value node); reports non-string and duplicate keys."""
        explicit = sum(1 for k, _ in node.value if k.tag != _TAG + "merge")
        try:
            self.constructor.flatten_mapping(node)  # YAML merge keys (`<<: *defaults`) come first, then the rest
        except yaml.YAMLError as exc:
            self.error(f"{what}: {getattr(exc, 'problem', exc)}", node)
            return {}
        n_merged = len(node.value) - explicit
        out: dict[str, tuple[ScalarNode, Node]] = {}
        for i, (knode, vnode) in enumerate(node.value):
            if not (isinstance(knode, ScalarNode) and knode.tag == _TAG + "str"):
                self.error(f"keys of {what} must be names; got {self.describe(knode)}", knode)
                continue
            if len(knode.value) > MAX_STRING_CHARS:
                self.error(f"keys of {what} must be names; got {self.describe(knode)}", knode)
                continue
            if i < n_merged or (knode.value in out and out[knode.value] in node.value[:n_merged]):
                out[knode.value] = (knode, vnode)  # a merged value: later ones and explicit keys override it
                continue
            if knode.value in out:
                first = out[knode.value][0].start_mark.line + 1
                self.error(
                    f"duplicate key `{knode.value}` in {what} (first given on line {first})",
                    knode,
                    hint="remove one of them; YAML would silently keep only the last",
                )
                continue
            out[knode.value] = (knode, vnode)
        return out

    def mapping(self, node: Node, what: str, keys: tuple[str, ...], unknown: str) -> _Pairs | None:
        if not isinstance(node, MappingNode):
            self.error(f"{what} must be a mapping (`key: value` lines); got {self.describe(node)}", node)
            return None
        out = _Pairs(self.pairs(node, what))
        for key, (knode, _) in list(out.items()):
            if key not in keys:
                self.error(unknown.format(key=key, choices=one_of(keys, limit=30)), knode, hint=did_you_mean(key, keys))
                out.misspelt.update(k for k in keys if did_you_mean(key, [k]))
                del out[key]
        return out

    def required(
        self, pairs: dict[str, tuple[ScalarNode, Node]], key: str, parent: Node, what: str, hint: str | None = None
    ) -> Node | None:
        if key not in pairs:
            if key not in getattr(pairs, "misspelt", ()):  # else the unknown key near it is the error to fix
                self.error(f"{what} has no `{key}`; it is required", parent, hint=hint)
            return None
        vnode = pairs[key][1]
        if isinstance(vnode, ScalarNode) and vnode.tag == _TAG + "null":
            self.error(f"`{key}` is empty; it is required", vnode, hint=hint)
            return None
        return vnode

    # -- typed values --

    def integer(self, node: Node, what: str, minimum: float | None = None, maximum: float | None = None) -> Any:
        if self.too_long_number(node, what):
            return _BAD
        if not self.scalar_ok(node, what):
            if not isinstance(node, ScalarNode):
                self.error(f"{what} must be an integer; got {self.describe(node)}", node)
            return _BAD
        if node.tag != _TAG + "int":
            hint = None
            if node.tag == _TAG + "str" and re.fullmatch(r"[+-]?\d+", node.value.strip()):
                hint = f"remove the quotes: write {node.value.strip()}"
            elif node.tag == _TAG + "float":
                v = self.value(node)
                if v == v and v not in (float("inf"), float("-inf")) and float(v).is_integer():
                    hint = f"write {int(v)}"
            self.error(f"{what} must be an integer; got {self.describe(node)}", node, hint=hint)
            return _BAD
        v = self.value(node)
        return self.in_range(node, what, v, minimum, maximum, None)

    def number(
        self,
        node: Node,
        what: str,
        minimum: float | None = None,
        maximum: float | None = None,
        below: float | None = None,
        above: float | None = None,
    ) -> Any:
        if self.too_long_number(node, what):
            return _BAD
        if not self.scalar_ok(node, what):
            if not isinstance(node, ScalarNode):
                self.error(f"{what} must be a number; got {self.describe(node)}", node)
            return _BAD
        numeric = re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", node.value.strip())
        if node.tag == _TAG + "str" and node.style is None and numeric:
            v = float(node.value)  # `1e-3` unquoted: YAML 1.1 reads a string (it wants `1.0e-3`); people mean 0.001
        elif node.tag not in (_TAG + "int", _TAG + "float"):
            hint = f"remove the quotes: write {node.value.strip()}" if node.tag == _TAG + "str" and numeric else None
            self.error(f"{what} must be a number; got {self.describe(node)}", node, hint=hint)
            return _BAD
        else:
            v = float(self.value(node))
        if v != v or v in (float("inf"), float("-inf")):
            self.error(f"{what} must be a finite number; got {node.value}", node)
            return _BAD
        if above is not None and not v > above:
            self.error(f"{what} must be > {_fmt(above)}; got {node.value}", node)
            return _BAD
        return self.in_range(node, what, v, minimum, maximum, below)

    def too_long_number(self, node: Node, what: str) -> bool:
        if isinstance(node, ScalarNode) and len(node.value) > MAX_NUMBER_CHARS:
            self.error(f"{what} must be a number; got {self.describe(node)}", node)
            return True
        return False

    def in_range(
        self, node: Node, what: str, v: float, minimum: float | None, maximum: float | None, below: float | None
    ) -> Any:
        if minimum is not None and below is not None and not (minimum <= v < below):
            self.error(f"{what} must be in [{_fmt(minimum)}, {_fmt(below)}); got {node.value}", node)
            return _BAD
        if minimum is not None and v < minimum:
            self.error(f"{what} must be ≥ {_fmt(minimum)}; got {node.value}", node)
            return _BAD
        if maximum is not None and v > maximum:
            self.error(f"{what} must be ≤ {_fmt(maximum)}; got {node.value}", node)
            return _BAD
        if below is not None and not v < below:
            self.error(f"{what} must be < {_fmt(below)}; got {node.value}", node)
            return _BAD
        return v

    def boolean(self, node: Node, what: str) -> Any:
        if isinstance(node, ScalarNode) and node.tag == _TAG + "bool":
            return bool(self.value(node))
        hint = None
        if isinstance(node, ScalarNode) and node.value.strip().lower() in ("true", "false", "yes", "no", "on", "off"):
            hint = f"remove the quotes: write {node.value.strip().lower()}"
        if self.scalar_ok(node, what) or not isinstance(node, ScalarNode):
            self.error(f"{what} must be true or false; got {self.describe(node)}", node, hint=hint)
        return _BAD

    def string(
        self,
        node: Node,
        what: str,
        *,
        allow_empty: bool = False,
        allow_null: bool = False,
        max_chars: int = MAX_STRING_CHARS,
    ) -> Any:
        if isinstance(node, ScalarNode) and node.tag == _TAG + "null" and allow_null:
            return ""
        if not (isinstance(node, ScalarNode) and node.tag == _TAG + "str"):
            hint = None
            if isinstance(node, ScalarNode) and node.tag in _SCALAR_TAGS and node.tag != _TAG + "null":
                hint = f'quote it: "{node.value}"'
            if self.scalar_ok(node, what) or not isinstance(node, ScalarNode):
                self.error(f"{what} must be a string; got {self.describe(node)}", node, hint=hint)
            return _BAD
        if not allow_empty and not node.value.strip():
            self.error(f"{what} must not be empty", node)
            return _BAD
        if len(node.value) > max_chars:
            self.error(
                f"{what} is {len(node.value):,} characters long; at most {max_chars:,} are allowed",
                node,
                hint="is this the right value?",
            )
            return _BAD
        return node.value

    def choice(
        self, node: Node, what: str, choices: tuple[str, ...], aliases: dict[str, str] | None = None, noun: str = ""
    ) -> Any:
        v = self.string(node, what)
        if v is _BAD:
            return _BAD
        key = v.strip().lower()
        if aliases and key in aliases:
            return aliases[key]
        for c in choices:
            if c.lower() == key:
                return c
        self.error(
            f"unknown {noun or 'value'} `{v}` for {what}; expected one of {one_of(choices, limit=20)}",
            node,
            hint=did_you_mean(key, choices),
        )
        return _BAD

    def name(self, node: Node) -> Any:
        v = self.string(node, "`name`")
        if v is not _BAD and not _NAME_RE.match(v):
            self.error(
                f"`name` {v!r} is not a valid model name",
                node,
                hint="use letters, digits, `_`, `.` and `-`, starting with a letter (`:`, `@` and `/` "
                "are taken by model references such as `ett:0.1`)",
            )
            return _BAD
        return v

    def version(self, node: Node) -> Any:
        """A string; a number is accepted and kept exactly as written (`0.10` stays "0.10", not 0.1)."""
        quote = 'quote it: version: "0.1"'
        if not isinstance(node, ScalarNode) or node.tag not in (_TAG + "str", _TAG + "int", _TAG + "float"):
            if self.scalar_ok(node, "`version`") or not isinstance(node, ScalarNode):
                self.error(f'`version` must be a string such as "0.1"; got {self.describe(node)}', node, hint=quote)
            return _BAD
        v = node.value.strip()
        if not _VERSION_RE.match(v):
            self.error(
                f"`version` {v!r} is not a valid version",
                node,
                hint=quote
                if node.tag != _TAG + "str"
                else 'use letters, digits, `.`, `_`, `+` and `-` (e.g. "0.1", "2024-07")',
            )
            return _BAD
        return v

    # -- model --

    def model(self, node: Node, key_node: Node, training: TrainingSpec | None) -> tuple[LayerSpec, ...] | None:
        pairs = self.mapping(node, "`model`", _MODEL_KEYS, "unknown key `model.{key}`; expected one of {choices}")
        if pairs is None:
            return None
        if "heads" in pairs:
            heads = self.choice(pairs["heads"][1], "`model.heads`", HEADS, noun="kind of heads")
            if heads is not _BAD:
                self.heads = heads
        layers_node = self.required(
            pairs,
            "layers",
            key_node,
            "`model`",
            hint="add `layers:` with a list of layers, e.g. `- {type: Dense, units: 1}`",
        )
        if layers_node is None:
            return None
        if not isinstance(layers_node, SequenceNode):
            self.error(
                f"`model.layers` must be a list of layers; got {self.describe(layers_node)}",
                layers_node,
                hint="write each layer on its own line starting with `- type: ...`",
            )
            return None
        if not layers_node.value:
            self.error("`model.layers` is empty", layers_node, hint="add at least `- {type: Dense, units: 1}`")
            return None
        if len(layers_node.value) > MAX_LAYERS:
            self.error(
                f"`model.layers` has {len(layers_node.value)} layers; at most {MAX_LAYERS} are allowed",
                layers_node.value[MAX_LAYERS],
                hint="a forecasting model needs a few layers; merge or remove some",
            )
            return None
        before = len(self.errors)
        parsed = [self.layer(item, i) for i, item in enumerate(layers_node.value, 1)]
        if any(p is None for p in parsed):
            return None
        layers = [p for p in parsed if p is not None]
        if len(self.errors) == before:  # checks across layers only when each layer is right on its own
            self.structure(layers, training)
        return tuple(spec for spec, _, _ in layers)

    def layer(self, node: Node, index: int) -> tuple[LayerSpec, Node, dict[str, tuple[ScalarNode, Node]]] | None:
        """(spec, type value node, argument nodes) of one layer, or None when its type is unknown."""
        where = f"layer {index}"
        if not isinstance(node, MappingNode):
            self.error(
                f"{where} must be a mapping such as `{{type: Dense, units: 1}}`; got {self.describe(node)}", node
            )
            return None
        pairs = self.pairs(node, where)
        if "type" not in pairs:
            self.error(f"{where} has no `type`", node, hint=f"layer types: {one_of(LAYER_TYPES)}")
            return None
        type_node = pairs.pop("type")[1]
        raw = self.string(type_node, f"`type` of {where}")
        if raw is _BAD:
            return None
        type_ = _LAYER_BY_LOWER.get(raw.strip().lower())
        if type_ is None:
            self.error(
                f"unknown layer type `{raw}`; expected one of {one_of(LAYER_TYPES)}",
                type_node,
                hint=did_you_mean(raw, LAYER_TYPES) or did_you_mean(raw.lower(), _LAYER_BY_LOWER),
            )
            return None
        schema = LAYER_TYPES[type_]
        args: list[tuple[str, Any]] = []
        for key, (knode, vnode) in pairs.items():
            arg = schema.get(key)
            if arg is None:
                self.error(
                    f"`{type_}` layer ({where}) has no argument `{key}`; its arguments are {one_of(schema, limit=20)}",
                    knode,
                    hint=did_you_mean(key, schema),
                )
                continue
            value = self.argument(vnode, f"`{key}` of {where} (`{type_}`)", arg)
            if value is not _BAD:
                args.append((key, value))
        unknown = [key for key in pairs if key not in schema]
        for key, arg in schema.items():
            if arg.required and key not in pairs and not any(did_you_mean(u, [key]) for u in unknown):
                self.error(
                    f"`{type_}` layer ({where}) needs `{key}`: {arg.doc}",
                    type_node,
                    hint=f"add `{key}: {1 if arg.kind == 'int' else 0.2}`",
                )
        spec = LayerSpec(type_, tuple(args), type_node.start_mark.line + 1, type_node.start_mark.column + 1)
        return spec, type_node, pairs

    def argument(self, node: Node, what: str, arg: _Arg) -> Any:
        if arg.kind == "int":
            v = self.integer(node, what, arg.minimum, arg.maximum)
            return v if v is _BAD else int(v)
        if arg.kind == "float":
            return self.number(node, what, arg.minimum, arg.maximum, arg.below)
        if arg.kind == "bool":
            return self.boolean(node, what)
        if arg.kind == "choice":
            return self.choice(node, what, arg.choices, noun="activation")
        if arg.kind == "shape":
            if not isinstance(node, SequenceNode) or len(node.value) != 2:
                self.error(
                    f"{what} must be a list of two integers [window, features]; got {self.describe(node)}",
                    node,
                    hint="omit `shape`: it is inferred from `training.window` and `training.features`",
                )
                return _BAD
            dims = [self.integer(d, what, 1, top) for d, top in zip(node.value, (MAX_WINDOW, MAX_FEATURES))]
            return _BAD if _BAD in dims else tuple(int(d) for d in dims)
        raise AssertionError(arg.kind)

    def structure(
        self, layers: list[tuple[LayerSpec, Node, dict[str, tuple[ScalarNode, Node]]]], training: TrainingSpec | None
    ) -> None:
        """Checks across layers: Input first, stacked recurrent layers, the output size."""
        for i, (spec, type_node, args) in enumerate(layers, 1):
            if spec.type != "Input":
                continue
            if i != 1:
                self.error(
                    f"an `Input` layer must be the first layer; this is layer {i}",
                    type_node,
                    hint="move it to the top of `layers`, or remove it (the input shape is inferred)",
                )
            elif training is not None and "shape" in spec.kwargs and spec.get("shape") != training.input_shape:
                w, f = training.input_shape
                self.error(
                    f"`shape` of the Input layer is {list(spec.get('shape'))} but `training` gives windows "
                    f"of {w} records × {f} feature(s) = [{w}, {f}]",
                    args["shape"][1],
                    hint=f"write `shape: [{w}, {f}]`, or omit `shape`: it is inferred",
                )
        recurrent = [i for i, (spec, _, _) in enumerate(layers) if spec.is_recurrent]
        for n, i in enumerate(recurrent):
            spec, type_node, args = layers[i]
            sequences = spec.get("return_sequences", False)
            where = args["return_sequences"][1] if "return_sequences" in args else type_node
            if n + 1 < len(recurrent) and not sequences:
                nxt = layers[recurrent[n + 1]][0]
                self.error(
                    f"layer {i + 1} (`{spec.type}`) feeds another recurrent layer (layer {recurrent[n + 1] + 1}, "
                    f"`{nxt.type}`) but returns only its last step",
                    where,
                    hint=f"add `return_sequences: true` to layer {i + 1}: a stacked recurrent layer needs the "
                    "whole sequence",
                )
            elif n + 1 == len(recurrent) and sequences:
                self.error(
                    f"layer {i + 1} (`{spec.type}`) is the last recurrent layer but returns the whole sequence, so "
                    "the model would output one value per input record instead of one forecast",
                    where,
                    hint="remove `return_sequences: true` (or set it to false) on the last recurrent layer",
                )
        if training is not None and training.solver == "least_squares":
            self.least_squares_layers(layers)
        last, last_type, last_args = layers[-1]
        horizon = training.horizon if training is not None else None
        if last.type != "Dense":
            self.error(
                f"the last layer must be `Dense` with one unit per forecast step (training.horizon = "
                f"{horizon if horizon is not None else '?'}); got `{last.type}`",
                last_type,
                hint=f"append `- {{type: Dense, units: {horizon or 1}}}`",
            )
        elif horizon is not None and "units" in last.kwargs and last.get("units") != horizon:
            self.error(
                f"the last layer outputs {last.get('units')} value(s) per window but `training.horizon` is "
                f"{horizon}: the model must output one value per forecast step",
                last_args["units"][1],
                hint=f"write `units: {horizon}` here, or `horizon: {last.get('units')}` under `training`",
            )

    def least_squares_layers(self, layers: list[tuple[LayerSpec, Node, dict[str, tuple[ScalarNode, Node]]]]) -> None:
        """`solver: least_squares` fits a linear model: one `Dense` layer without an activation (an `Input`
        layer before it changes nothing)."""
        hint = "keep one `- {type: Dense, units: ...}` (no activation), or use `solver: gradient`"
        stack = [(spec, type_node, args) for spec, type_node, args in layers if spec.type != "Input"]
        if len(stack) != 1 or stack[0][0].type != "Dense":
            spec, type_node, _ = next((x for x in stack if x[0].type != "Dense"), stack[-1])
            self.error(
                f"`solver: least_squares` fits one linear `Dense` layer; the model has {len(stack)} layer(s) "
                f"({', '.join(f'`{x[0].type}`' for x in stack)})",
                type_node,
                hint=hint,
            )
            return
        spec, _, args = stack[0]
        if spec.get("activation", "linear") != "linear":
            self.error(
                f"`solver: least_squares` fits a linear map; this `Dense` layer has the activation "
                f"`{spec.get('activation')}`",
                args["activation"][1],
                hint="remove `activation` (or write `linear`), or use `solver: gradient`",
            )

    # -- training --

    def training(self, entry: tuple[ScalarNode, Node]) -> TrainingSpec | None:
        key_node, node = entry
        pairs = self.mapping(
            node, "`training`", _TRAINING_KEYS, "unknown training key `{key}`; expected one of {choices}"
        )
        if pairs is None:
            return None
        ok = True
        values: dict[str, Any] = {}

        def take(key: str, check: Callable[[Node, str], Any]) -> None:
            nonlocal ok
            if key in pairs:
                v = check(pairs[key][1], f"`training.{key}`")
                if v is _BAD:
                    ok = False
                else:
                    values[key] = v

        target_node = self.required(
            pairs, "target", key_node, "`training`", hint="add `target: OT` (the column to forecast) under `training`"
        )
        if target_node is None:
            ok = False
        else:
            take("target", self.string)
        take("loss", lambda n, w: self.choice(n, w, LOSSES, LOSS_ALIASES, noun="loss"))
        if "optimizer" in pairs:
            opt = self.optimizer(pairs["optimizer"][1])
            if opt is _BAD:
                ok = False
            else:
                values.update(opt)
        take("epochs", lambda n, w: self.integer(n, w, 1, MAX_EPOCHS))
        take("batch_size", lambda n, w: self.integer(n, w, 1, MAX_BATCH_SIZE))
        take("validation_split", lambda n, w: self.number(n, w, 0, below=1))
        take("window", lambda n, w: self.integer(n, w, 1, MAX_WINDOW))
        take("horizon", lambda n, w: self.integer(n, w, 1, MAX_HORIZON))
        take("features", self.features)
        take("predict", lambda n, w: self.choice(n, w, PREDICT_MODES, noun="prediction mode"))
        take("inputs", lambda n, w: self.choice(n, w, INPUT_MODES, noun="input mode"))
        take("seed", self.seed)
        take("shuffle", self.boolean)
        take("early_stopping", self.early_stopping)
        take("lr_schedule", self.lr_schedule)
        take("time_features", self.time_features)
        take("time_column", self.string)
        take("time_harmonics", lambda n, w: self.integer(n, w, 1, MAX_TIME_HARMONICS))
        take("decomposition", self.decomposition)
        take("solver", lambda n, w: self.choice(n, w, SOLVERS, noun="solver"))
        take("seasonal_means", self.seasonal_means)
        take("ensemble", self.ensemble)
        if "ensemble" in values:
            values["ensemble_seeds"] = values.pop("ensemble")
            if "seed" in pairs:
                self.error(
                    "`training.seed` seeds one model; an `ensemble` trains one member per seed of its `seeds`",
                    pairs["seed"][0],
                    hint="remove `seed` (or list it in `ensemble.seeds`)",
                )
                return None
            values["seed"] = None
        if "seasonal_means" in values:
            values["seasonal_period"], values["seasonal_days"] = values.pop("seasonal_means")
        if "decomposition" in values:
            values["moving_average"] = values.pop("decomposition")
        if not ok:
            return None
        if "time_column" in values and "time_features" not in values:
            self.error(
                "`training.time_column` names the column of the time features, but there are no `time_features`",
                pairs["time_column"][1],
                hint="add `time_features: [hour_of_day, day_of_week]`, or remove `time_column`",
            )
            return None
        if "time_harmonics" in values and "time_features" not in values:
            self.error(
                "`training.time_harmonics` shapes the time features, but there are no `time_features`",
                pairs["time_harmonics"][1],
                hint="add `time_features: [hour_of_day]`, or remove `time_harmonics`",
            )
            return None
        if "features" not in values and "target" in values:
            values["features"] = (values["target"],)
        spec = TrainingSpec(**values)
        if spec.solver == "least_squares" and not self.least_squares_settings(spec, pairs):
            return None
        if spec.history > MAX_HISTORY:
            self.error(
                f"a forecast would read {spec.history:,} records (the window of {spec.window} and the seasonal "
                f"means' {spec.history - spec.window:,} before it); at most {MAX_HISTORY:,}",
                pairs["seasonal_means"][1],
                hint="use fewer `days` or a shorter `period`",
            )
            return None
        if spec.inputs == "relative" and spec.predict == "level":
            self.error(
                "`inputs: relative` takes each window's last values away from it, so the model cannot forecast "
                "a level from it",
                pairs["inputs"][1],
                hint="add `predict: delta` (forecast the change; the level is the last value plus the change)",
            )
            return None
        es = spec.early_stopping
        if es is not None and es.monitor == "val_loss" and spec.validation_split == 0:
            where = self.monitor_node or pairs["early_stopping"][0]
            self.error(
                "early stopping monitors `val_loss` but `training.validation_split` is 0: there is no validation data",
                where,
                hint="set `validation_split: 0.1` (taken from the end of the data), or `monitor: loss`",
            )
            return None
        schedule = spec.lr_schedule
        if schedule is not None and schedule.type == "plateau" and schedule.monitor == "val_loss":
            if spec.validation_split == 0:
                self.error(
                    "the `plateau` schedule monitors `val_loss` but `training.validation_split` is 0: there is "
                    "no validation data",
                    pairs["lr_schedule"][1],
                    hint="set `validation_split: 0.1` (taken from the end of the data), or `monitor: loss`",
                )
                return None
        if schedule is not None and spec.learning_rate is not None and schedule.min_learning_rate >= spec.learning_rate:
            self.error(
                f"`min_learning_rate` of the schedule ({schedule.min_learning_rate:g}) is not below the optimizer's "
                f"learning rate ({spec.learning_rate:g}): the schedule could not lower it",
                pairs["lr_schedule"][1],
                hint="lower `min_learning_rate` (e.g. a tenth of the learning rate)",
            )
            return None
        return spec

    def least_squares_settings(self, spec: TrainingSpec, pairs: _Pairs) -> bool:
        """`solver: least_squares` minimises the mean squared error in one solve: the loss must be `mse`, and
        the keys that steer gradient descent would be ignored, so each one given is an error (all reported)."""
        ok = True
        if spec.loss != "mse":
            where = pairs["loss"][1] if "loss" in pairs else pairs["solver"][1]
            self.error(
                f"`solver: least_squares` minimises the mean squared error, but `training.loss` is "
                f"`{spec.loss}`{'' if 'loss' in pairs else ' (the default)'}",
                where,
                hint="write `loss: mse`, or `solver: gradient` to train with the loss by gradient descent",
            )
            ok = False
        for key in GRADIENT_ONLY_KEYS:
            if key in pairs:
                self.error(
                    f"`training.{key}` steers gradient descent; `solver: least_squares` solves for the weights "
                    "at once (no epochs, batches, optimizer or randomness), so it would be ignored",
                    pairs[key][0],
                    hint=f"remove `{key}`, or use `solver: gradient`",
                )
                ok = False
        return ok

    def lr_schedule(self, node: Node, what: str) -> Any:
        """`{type: step, every: 10, factor: 0.5}`, `{type: cosine, ...}` or `{type: plateau, ...}`."""
        all_keys = tuple(dict.fromkeys(k for keys in SCHEDULES.values() for k in keys))
        pairs = self.mapping(node, what, all_keys, "unknown schedule setting `{key}`; expected one of {choices}")
        if pairs is None:
            return _BAD
        type_node = self.required(
            pairs, "type", node, what, hint=f"add `type: cosine` (schedules: {one_of(SCHEDULES)})"
        )
        if type_node is None:
            return _BAD
        kind = self.choice(type_node, f"{what[:-1]}.type`", tuple(SCHEDULES), noun="schedule")
        if kind is _BAD:
            return _BAD
        values: dict[str, Any] = {"type": kind}
        checks: dict[str, Callable[[Node, str], Any]] = {
            "every": lambda n, w: self.integer(n, w, 1, MAX_EPOCHS),
            "epochs": lambda n, w: self.integer(n, w, 1, MAX_EPOCHS),
            "patience": lambda n, w: self.integer(n, w, 0, MAX_PATIENCE),
            "factor": lambda n, w: self.number(n, w, below=1, above=0),
            "min_learning_rate": lambda n, w: self.number(n, w, 0, MAX_LEARNING_RATE),
            "monitor": lambda n, w: self.choice(n, w, MONITORS, noun="value"),
        }
        bad = False
        for key, (knode, vnode) in pairs.items():
            if key == "type":
                continue
            if key not in SCHEDULES[kind]:
                takes = [k for k in SCHEDULES[kind] if k != "type"]
                self.error(
                    f"the `{kind}` schedule has no setting `{key}`; it takes {one_of(takes)}",
                    knode,
                    hint=did_you_mean(key, takes) or _setting_of(key),
                )
                bad = True
                continue
            v = checks[key](vnode, f"{what[:-1]}.{key}`")
            if v is _BAD:
                bad = True
            else:
                values[key] = int(v) if key in ("every", "epochs", "patience") else v
        return _BAD if bad else ScheduleSpec(**values)

    def time_features(self, node: Node, what: str) -> Any:
        if not isinstance(node, SequenceNode) or not node.value:
            self.error(
                f"{what} must be a non-empty list of {one_of(TIME_FEATURES)}; got {self.describe(node)}",
                node,
                hint="write `time_features: [hour_of_day, day_of_week]`",
            )
            return _BAD
        out: list[str] = []
        for item in node.value:
            v = self.choice(item, f"an item of {what}", TIME_FEATURES, noun="time feature")
            if v is _BAD:
                return _BAD
            if v in out:
                self.error(f"time feature `{v}` is listed twice in {what}", item)
                return _BAD
            out.append(v)
        return tuple(out)

    def decomposition(self, node: Node, what: str) -> Any:
        """`{moving_average: 25}`: the trend/seasonal split of DLinear, with the moving average's length."""
        pairs = self.mapping(
            node, what, _DECOMPOSITION_KEYS, "unknown decomposition setting `{key}`; expected {choices}"
        )
        if pairs is None:
            return _BAD
        vnode = self.required(pairs, "moving_average", node, what, hint="add `moving_average: 25` (DLinear's)")
        if vnode is None:
            return _BAD
        v = self.integer(vnode, f"{what[:-1]}.moving_average`", 3, MAX_WINDOW)
        if v is _BAD:
            return _BAD
        if v % 2 == 0:
            self.error(
                f"{what[:-1]}.moving_average` must be odd (centred on each record); got {v}",
                vnode,
                hint=f"write {v + 1} (or {v - 1})",
            )
            return _BAD
        return int(v)

    def seasonal_means(self, node: Node, what: str) -> Any:
        """`{period: 24, days: [7, 28]}`: (period, days), the days a non-empty, increasing list of integers."""
        pairs = self.mapping(node, what, _SEASONAL_KEYS, "unknown seasonal means setting `{key}`; expected {choices}")
        if pairs is None:
            return _BAD
        example = "add `period: 24` (records per season: hours in a day) and `days: [7, 28]`"
        period_node = self.required(pairs, "period", node, what, hint=example)
        days_node = self.required(pairs, "days", node, what, hint=example)
        if period_node is None or days_node is None:
            return _BAD
        period = self.integer(period_node, f"{what[:-1]}.period`", 2, MAX_SEASONAL_PERIOD)
        days_what = f"{what[:-1]}.days`"
        if not isinstance(days_node, SequenceNode) or not days_node.value:
            self.error(
                f"{days_what} must be a non-empty list of numbers of periods; got {self.describe(days_node)}",
                days_node,
                hint="write `days: [7, 28]` (the mean over the same hour of the last 7 days, and of the last 28)",
            )
            return _BAD
        if len(days_node.value) > MAX_SEASONAL_CHANNELS:
            self.error(f"{days_what} lists {len(days_node.value)} means; at most {MAX_SEASONAL_CHANNELS}", days_node)
            return _BAD
        days: list[int] = []
        for item in days_node.value:
            v = self.integer(item, f"an item of {days_what}", 1, MAX_SEASONAL_DAYS)
            if v is _BAD:
                return _BAD
            if days and v <= days[-1]:
                self.error(
                    f"{days_what} must increase (each mean once, shortest first); {v} follows {days[-1]}",
                    item,
                    hint=f"write `days: {sorted(set(days) | {int(v)})}`",
                )
                return _BAD
            days.append(int(v))
        return _BAD if period is _BAD else (int(period), tuple(days))

    def ensemble(self, node: Node, what: str) -> Any:
        """`{seeds: [7, 1, 2]}`: the members' seeds, 2 to MAX_ENSEMBLE_MEMBERS distinct integers."""
        if not isinstance(node, MappingNode):
            self.error(
                f"{what} must be a mapping of its settings; got {self.describe(node)}",
                node,
                hint="write `ensemble: {seeds: [7, 1, 2]}` (one member trained per seed)",
            )
            return _BAD
        pairs = self.mapping(node, what, _ENSEMBLE_KEYS, "unknown ensemble setting `{key}`; expected {choices}")
        if pairs is None:
            return _BAD
        example = "add `seeds: [7, 1, 2]` (one member trained per seed; the model forecasts their mean)"
        seeds_node = self.required(pairs, "seeds", node, what, hint=example)
        if seeds_node is None:
            return _BAD
        seeds_what = f"{what[:-1]}.seeds`"
        if not isinstance(seeds_node, SequenceNode) or not 2 <= len(seeds_node.value) <= MAX_ENSEMBLE_MEMBERS:
            if isinstance(seeds_node, SequenceNode):
                got = f"{len(seeds_node.value)} seed{'' if len(seeds_node.value) == 1 else 's'}"
            else:
                got = self.describe(seeds_node)
            self.error(
                f"{seeds_what} must be a list of 2 to {MAX_ENSEMBLE_MEMBERS} seeds, one per member; got {got}",
                seeds_node,
                hint="write `seeds: [7, 1, 2]`",
            )
            return _BAD
        seeds: list[int] = []
        for item in seeds_node.value:
            v = self.integer(item, f"an item of {seeds_what}", 0, 2**32 - 1)
            if v is _BAD:
                return _BAD
            if int(v) in seeds:
                self.error(
                    f"seed {v} is listed twice in {seeds_what}: the two members would be the same model",
                    item,
                    hint="give each member its own seed",
                )
                return _BAD
            seeds.append(int(v))
        return tuple(seeds)

    def optimizer(self, node: Node) -> Any:
        what = "`training.optimizer`"
        if isinstance(node, MappingNode):
            pairs = self.mapping(
                node,
                "`training.optimizer`",
                _OPTIMIZER_KEYS,
                "unknown optimizer setting `{key}`; expected one of {choices}",
            )
            if pairs is None:
                return _BAD
            name_node = self.required(pairs, "name", node, "`training.optimizer`", hint="add `name: adam`")
            out: dict[str, Any] = {}
            bad = name_node is None
            if name_node is not None:
                out["optimizer"] = self.choice(name_node, "`training.optimizer.name`", OPTIMIZERS, noun="optimizer")
            for key, top in (("learning_rate", MAX_LEARNING_RATE), ("clipnorm", 1e6)):
                if key in pairs:
                    out[key] = self.number(pairs[key][1], f"`training.optimizer.{key}`", maximum=top, above=0)
            if bad or _BAD in out.values():
                return _BAD
            return out
        v = self.choice(node, what, OPTIMIZERS, noun="optimizer")
        return _BAD if v is _BAD else {"optimizer": v}

    def features(self, node: Node, what: str) -> Any:
        if not isinstance(node, SequenceNode):
            hint = f"write a list: [{node.value}]" if isinstance(node, ScalarNode) else None
            self.error(f"{what} must be a list of column names; got {self.describe(node)}", node, hint=hint)
            return _BAD
        if not node.value:
            self.error(f"{what} is empty", node, hint="omit it to use the target column alone")
            return _BAD
        if len(node.value) > MAX_FEATURES:
            self.error(f"{what} lists {len(node.value):,} columns; at most {MAX_FEATURES} are allowed", node)
            return _BAD
        out: list[str] = []
        for item in node.value:
            v = self.string(item, f"an item of {what}")
            if v is _BAD:
                return _BAD
            if v in out:
                self.error(f"column `{v}` is listed twice in {what}", item)
                return _BAD
            out.append(v)
        return tuple(out)

    def seed(self, node: Node, what: str) -> Any:
        if isinstance(node, ScalarNode) and node.tag == _TAG + "null":
            return None
        v = self.integer(node, what, 0, 2**32 - 1)
        return v if v is _BAD else int(v)

    def early_stopping(self, node: Node, what: str) -> Any:
        if isinstance(node, ScalarNode) and node.tag in (_TAG + "null", _TAG + "bool"):
            return EarlyStoppingSpec() if self.value(node) else None
        pairs = self.mapping(
            node, what, _EARLY_STOPPING_KEYS, "unknown early stopping setting `{key}`; expected one of {choices}"
        )
        if pairs is None:
            return _BAD
        values: dict[str, Any] = {}
        if "patience" in pairs:
            v = self.integer(pairs["patience"][1], f"{what[:-1]}.patience`", 0, MAX_PATIENCE)
            values["patience"] = v if v is _BAD else int(v)
        if "monitor" in pairs:
            self.monitor_node = pairs["monitor"][1]
            values["monitor"] = self.choice(pairs["monitor"][1], f"{what[:-1]}.monitor`", MONITORS, noun="value")
        if "min_delta" in pairs:
            values["min_delta"] = self.number(pairs["min_delta"][1], f"{what[:-1]}.min_delta`", 0, 1e6)
        if "restore_best_weights" in pairs:
            values["restore_best_weights"] = self.boolean(
                pairs["restore_best_weights"][1], f"{what[:-1]}.restore_best_weights`"
            )
        if _BAD in values.values():
            return _BAD
        return EarlyStoppingSpec(**values)


def _setting_of(key: str) -> str:
    kinds = [f"`{kind}`" for kind, keys in SCHEDULES.items() if key in keys]
    return f"`{key}` is a setting of the {' and '.join(kinds)} schedule{'s' if len(kinds) > 1 else ''}"


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)
