"""What training a model costs, estimated without TensorFlow: parameters as Keras counts them, and the memory
of weights, gradients, optimizer state, a batch's activations and the windows built from the records. Lint
checks a definition against the budget; `train_lstm` checks again with the records it has received."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from airflow_amml.run_config import DEFAULT_TRAIN_MEMORY, TRAIN_MEMORY_ENV, parse_memory_size

if TYPE_CHECKING:
    from .spec import ModelSpec

MAX_PARAMETERS = 50_000_000
LEAST_SQUARES_CHUNK_BYTES = 64 * 1024**2  # windows turned into float64 at once by the least-squares solve

# Floats kept per time step and unit for the backward pass (gate inputs and outputs, cell and hidden states)
_STEP_FLOATS = {"LSTM": 12, "GRU": 9}
_OPTIMIZER_SLOTS = {"adam": 2, "adamw": 2, "rmsprop": 1, "adagrad": 1, "sgd": 0}  # state per parameter


@dataclass(frozen=True)
class TrainingEstimate:
    """What training a spec costs, roughly (float32 everywhere): an order of magnitude, not a promise."""

    parameters: int
    parameter_bytes: int  # weights, their gradients and the optimizer's state
    activation_bytes: int  # one batch's activations and their gradients
    data_bytes: int  # windows and labels training materialises (0 when the number of records is unknown)

    @property
    def total_bytes(self) -> int:
        return self.parameter_bytes + self.activation_bytes + self.data_bytes


def layer_parameters(spec: ModelSpec) -> list[int]:
    """The number of trainable parameters of each layer of ``spec.layers`` (Keras's count; Input: 0).

    With ``heads: per_channel`` every input channel has its own copy of the layers, each seeing one channel;
    an ``ensemble`` has a copy of the whole model per member."""
    window, channels = spec.input_shape
    heads = channels if spec.heads == "per_channel" else 1
    features = 1 if heads > 1 else channels
    copies = heads * max(1, len(spec.training.ensemble_seeds))
    recurrent = any(layer.is_recurrent for layer in spec.layers)
    width = features if recurrent else window * features  # without recurrent layers the window is flattened
    counts = []
    for layer in spec.layers:
        units = layer.get("units", 0)
        bias = layer.get("use_bias", True)
        if layer.type == "LSTM":
            counts.append(4 * (units * (width + units) + (units if bias else 0)))
        elif layer.type == "GRU":  # Keras's reset_after=True: two bias vectors
            counts.append(3 * (units * (width + units) + (2 * units if bias else 0)))
        elif layer.type == "Dense":
            counts.append(width * units + (units if bias else 0))
        else:
            counts.append(0)
        width = units or width
    return [n * copies for n in counts]


def estimate_training(spec: ModelSpec, rows: int | None = None, batch_size: int | None = None) -> TrainingEstimate:
    """The memory training ``spec`` takes: with ``rows`` records, also the windows built from them."""
    t = spec.training
    batch = batch_size or t.batch_size
    parameters = sum(layer_parameters(spec))
    state = 2 + _OPTIMIZER_SLOTS.get(t.optimizer, 2)
    channels = t.input_shape[1]
    copies = channels if spec.heads == "per_channel" else 1
    per_example = t.window * channels  # the input window
    steps = t.window
    for layer in spec.layers:
        units = layer.get("units", 0)
        if layer.is_recurrent:
            per_example += steps * units * _STEP_FLOATS[layer.type]
            steps = t.window if layer.get("return_sequences", False) else 1
        elif layer.type == "Dense":
            per_example += (steps if any(x.is_recurrent for x in spec.layers) else 1) * units * 2
    per_example = t.window * channels + (per_example - t.window * channels) * copies
    if t.solver == "least_squares":  # no gradients, optimizer state or batches: the normal equations instead
        inputs = t.window * channels + 1
        # the Gram matrix XᵀX and its copy in the solve, or the product XcᵀXc added to it (float64), XᵀY; a
        # chunk of windows in float64, and as much again for its copy while it is centred
        parameter_bytes = (2 * inputs * inputs + 2 * inputs * t.horizon) * 8
        activation_bytes = 2 * LEAST_SQUARES_CHUNK_BYTES
    else:
        parameter_bytes = parameters * 4 * state
        activation_bytes = batch * per_example * 4 * 2
    data = 0
    if rows is not None:
        examples = max(0, rows - t.history - t.horizon + 1)
        # the windows and labels as numpy arrays and again as the tensors Keras copies them into; the
        # feature columns (float32) and the target (float64) they are cut from
        data = 2 * examples * (t.window * channels + t.horizon) * 4 + rows * (channels * 4 + 8)
    return TrainingEstimate(
        parameters=parameters,
        parameter_bytes=parameter_bytes,
        activation_bytes=activation_bytes,
        data_bytes=data,
    )


def train_memory_limit(environ: Mapping[str, str] = os.environ) -> int:
    """The training memory budget in bytes: ``AMML_TRAIN_MEMORY_LIMIT`` (``512MiB``, ``8GiB``, ``2e9``) or 4 GiB.
    Read by lint, which has no run; a run reads it once, into ``RunConfig.train_memory_limit``."""
    raw = environ.get(TRAIN_MEMORY_ENV, "").strip()
    return parse_memory_size(raw) if raw else DEFAULT_TRAIN_MEMORY


def format_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError


def training_budget_problem(
    spec: ModelSpec,
    rows: int | None = None,
    batch_size: int | None = None,
    extra_bytes: int = 0,
    limit: int | None = None,
) -> str | None:
    """Why training ``spec`` (on ``rows`` records, holding ``extra_bytes`` more) would not fit in ``limit`` bytes
    (None: :func:`train_memory_limit`, as lint has no run configuration), or None."""
    estimate = estimate_training(spec, rows, batch_size)
    if estimate.parameters > MAX_PARAMETERS:
        return (
            f"model {spec.ref} has {estimate.parameters:,} parameters; at most {MAX_PARAMETERS:,} are allowed "
            "(fewer units or layers, or a shorter window when the model has no recurrent layer)"
        )
    total = estimate.total_bytes + extra_bytes
    limit = train_memory_limit() if limit is None else limit
    if total <= limit:
        return None
    if spec.training.solver == "least_squares":
        parts = [
            f"the least-squares normal equations {format_bytes(estimate.parameter_bytes)}",
            f"windows in float64 {format_bytes(estimate.activation_bytes)}",
        ]
    else:
        parts = [
            f"parameters and optimizer state {format_bytes(estimate.parameter_bytes)}",
            f"activations of a batch of {batch_size or spec.training.batch_size} "
            f"{format_bytes(estimate.activation_bytes)}",
        ]
    if rows is not None:
        parts.append(f"windows of {rows:,} records {format_bytes(estimate.data_bytes + extra_bytes)}")
    return (
        f"training model {spec.ref} needs about {format_bytes(total)} ({', '.join(parts)}); the limit is "
        f"{format_bytes(limit)} ({TRAIN_MEMORY_ENV})"
    )
