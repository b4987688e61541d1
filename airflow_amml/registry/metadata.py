"""Limits on what a version carries besides its files: tags, metrics, params, lineage, scaler statistics, plots.

    tags       up to 50; key NAME_PATTERN, value a string of at most 1,000 characters without control characters
    metrics    up to 100; name NAME_PATTERN, value a finite number (integers within 64 bits), a bool, None or a
               string of at most 1,000 characters
    params     the training parameters (MLflow's params: epochs, batch_size, window, ...): as metrics, up to
               100, name NAME_PATTERN, value a JSON scalar (finite number, bool, None, string of at most 1,000)
    lineage    dag_id, run_id, task_id up to 250 characters, data interval bounds up to 40, source hash up to 64;
               no control characters
    scaler     JSON of at most 1 MB
    intervals  prediction intervals: up to 10 coverages in (0, 100) %, each a list of half-widths ≥ 0 per step;
               JSON of at most 1 MB
    plots      up to 20, named by NAME_PATTERN

The limits match the columns (so PostgreSQL never truncates or refuses a value half-way through a
registration) and keep every value printable and JSON-safe for the API.
"""

from __future__ import annotations

import json
import math
import numbers
import re
from collections.abc import Mapping
from typing import Any

from .errors import InvalidValueError
from .names import check_name, shown

MAX_TAGS = 50
MAX_METRICS = 100
MAX_PARAMS = 100
MAX_PLOTS = 20
MAX_TEXT = 1000
MAX_SCALER_JSON = 1 << 20
LINEAGE_LIMITS = {
    "dag_id": 250,
    "run_id": 250,
    "task_id": 250,
    "data_interval_start": 40,
    "data_interval_end": 40,
    "source_hash": 64,
}
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
_INT64 = 2**63 - 1


def check_text(value: object, what: str, limit: int = MAX_TEXT) -> str:
    if not isinstance(value, str):
        raise InvalidValueError(f"{what} must be a string; got {type(value).__name__} {shown(value)}")
    if len(value) > limit:
        raise InvalidValueError(
            f"{what} is {len(value)} characters long; at most {limit} are allowed", hint="shorten it"
        )
    if _CONTROL_RE.search(value):
        raise InvalidValueError(
            f"{what} {shown(value)} contains a control character (newline, tab, NUL, ...)",
            hint="use printable characters only",
        )
    return value


def check_tags(tags: Mapping[str, object] | None) -> dict[str, str]:
    tags = _mapping(tags, "tags", MAX_TAGS)
    return {check_name(k, "tag key"): check_text(str(v), f"tag {k!r}") for k, v in tags.items()}


def check_metrics(metrics: Mapping[str, object] | None) -> dict[str, Any]:
    metrics = _mapping(metrics, "metrics", MAX_METRICS)
    return {check_name(k, "metric name"): _metric_value(k, v) for k, v in metrics.items()}


def check_params(params: Mapping[str, object] | None) -> dict[str, Any]:
    """The training parameters a version records, as plain JSON scalars (numpy scalars become Python ones)."""
    params = _mapping(params, "params", MAX_PARAMS)
    return {check_name(k, "param name"): _scalar(v, f"param {k!r}") for k, v in params.items()}


def check_plot_names(plots: Mapping[str, object] | None) -> None:
    for name in _mapping(plots, "plots", MAX_PLOTS):
        check_name(name, "plot name")


def check_lineage_fields(fields: Mapping[str, object]) -> None:
    for key, limit in LINEAGE_LIMITS.items():
        value = fields.get(key)
        if value is not None:
            check_text(value, f"lineage {key}", limit)


def scaler_json(scaler: Mapping[str, Any] | None) -> str | None:
    """The scaler statistics as JSON text, refused when they cannot be stored or are unreasonably large."""
    return _json_text(scaler, "scaler statistics", "scale fewer columns")


def intervals_json(intervals: Mapping[str, Any] | None) -> str | None:
    """Prediction intervals as JSON text: ``levels`` maps a coverage (``"80"``, a number of percent below 100)
    to one finite half-width ≥ 0 per step; at most 10 levels."""
    if not intervals:
        return None
    levels = intervals.get("levels") if isinstance(intervals, Mapping) else None
    if not isinstance(levels, Mapping) or not 0 < len(levels) <= 10:
        raise InvalidValueError("prediction intervals need `levels`: 1 to 10 coverages, each with its half-widths")
    for level, widths in levels.items():
        try:
            coverage = float(level)
        except (TypeError, ValueError):
            coverage = math.nan
        if not 0 < coverage < 100:
            raise InvalidValueError(f"prediction interval level {shown(level)} is not a coverage in (0, 100) %")
        if not isinstance(widths, list) or not widths:
            raise InvalidValueError(f"prediction interval level {level}: expected a list of half-widths per step")
        for width in widths:
            if isinstance(width, bool) or not isinstance(width, numbers.Real) or not 0 <= width < math.inf:
                raise InvalidValueError(f"prediction interval level {level}: {shown(width)} is no half-width ≥ 0")
    return _json_text(intervals, "prediction intervals", "store fewer levels")


def _json_text(value: Mapping[str, Any] | None, what: str, hint: str) -> str | None:
    if not value:
        return None
    if not isinstance(value, Mapping):
        raise InvalidValueError(f"{what} must be a mapping; got {type(value).__name__}")
    try:
        text = json.dumps(value, sort_keys=True, default=str)
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidValueError(f"{what} cannot be stored as JSON: {exc}") from exc
    if len(text) > MAX_SCALER_JSON:
        raise InvalidValueError(
            f"{what} are {len(text)} bytes of JSON; at most {MAX_SCALER_JSON} are allowed", hint=hint
        )
    return text


def _mapping(value: Mapping[str, object] | None, what: str, limit: int) -> Mapping[str, object]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidValueError(f"{what} must be a mapping; got {type(value).__name__}")
    if len(value) > limit:
        raise InvalidValueError(f"{len(value)} {what}; at most {limit} are allowed per version")
    return value


def _metric_value(name: str, value: object) -> object:
    return _scalar(
        value,
        f"metric {name!r}",
        not_finite_hint="the training probably diverged: lower the learning rate, or pass `register=false`",
    )


def _scalar(value: object, what: str, not_finite_hint: str | None = None) -> object:
    """`value` as a JSON scalar: None, a bool, an integer within 64 bits, a finite float or a short string."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, numbers.Integral):  # int, and numpy's integers (kept whole)
        if abs(int(value)) > _INT64:
            raise InvalidValueError(f"{what} is too large (integers must fit in 64 bits)")
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidValueError(f"{what} is {value}: only finite numbers can be registered", hint=not_finite_hint)
        return value
    if isinstance(value, str):
        return check_text(value, what)
    try:  # numpy floats and bools, Decimal and friends
        converted = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InvalidValueError(
            f"{what} must be a number, a bool, None or a string; got {type(value).__name__}",
            hint="register lists and mappings as a string (e.g. comma-separated)",
        ) from None
    return _scalar(converted, what, not_finite_hint)
