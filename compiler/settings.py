"""The `dag { ... }` block: DAG settings written in AMML, checked at compile time.

Values are constants (folded expressions). The Airflow side (`dags/`) turns them into DAG arguments;
this module only knows their names and types, so `amml lint` catches mistakes without Airflow.
"""

from __future__ import annotations

from typing import Any

from . import ast
from .errors import AmmlError, AmmlNameError, AmmlTypeError, did_you_mean, one_of
from .expressions import fold
from .semantics import type_name

# name → (accepted Python types, description)
DAG_SETTINGS: dict[str, tuple[tuple[type, ...], str]] = {
    "schedule": ((str, type(None), list), "cron expression, preset (@daily), duration ('1h'), null, or asset list"),
    "start_date": ((str,), "first logical date, ISO format"),
    "end_date": ((str, type(None)), "last logical date, ISO format"),
    "catchup": ((bool,), "create runs for past intervals"),
    "tags": ((list,), "tags shown in the Airflow UI"),
    "owner": ((str,), "owner of the tasks"),
    "retries": ((int,), "retries per task"),
    "retry_delay": ((str, int), "delay between retries: seconds or a duration such as '5m'"),
    "params": ((dict,), "run parameters with their defaults: {epochs: 20}"),
    "description": ((str,), "one-line description"),
    "max_active_runs": ((int,), "concurrent runs of this DAG"),
    "registry_conn": ((str,), "Airflow connection id of the model registry database"),
    "artifact_conn": ((str,), "Airflow connection id of the artifact store (webhdfs)"),
    "timezone": ((str,), "time zone of the schedule"),
    "batch_rows": ((int,), "records per micro-batch between components (default 65536)"),
    "flush_delay": ((int, float), "seconds an ingress may hold records before it sends a smaller batch (default 0.05)"),
}
# Settings for the streaming executor rather than for the DAG: passed to every run of the file's pipelines.
RUNTIME_SETTINGS = ("batch_rows", "flush_delay")
# The least value a numeric setting may take.
MINIMUM = {"batch_rows": 1, "flush_delay": 0, "retries": 0, "max_active_runs": 1}


def check_dag_settings(block: ast.DagBlock) -> tuple[dict[str, Any], set[str], list[AmmlError]]:
    """Return (settings, declared run parameter names, errors)."""
    settings: dict[str, Any] = {}
    errors: list[AmmlError] = []
    for setting in block.settings:
        if setting.name in settings:
            errors.append(AmmlNameError(f"dag setting `{setting.name}` is given twice",
                                        line=setting.pos.line, column=setting.pos.column))
            continue
        if setting.name not in DAG_SETTINGS:
            errors.append(AmmlNameError(
                f"unknown dag setting `{setting.name}`", line=setting.pos.line, column=setting.pos.column,
                hint=did_you_mean(setting.name, DAG_SETTINGS) or f"settings: {one_of(DAG_SETTINGS, 20)}"))
            continue
        try:
            value = _constant(setting.value)
        except AmmlError as exc:
            errors.append(exc)
            continue
        types, doc = DAG_SETTINGS[setting.name]
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            errors.append(AmmlTypeError(
                f"dag setting `{setting.name}` must be {doc}; got {type_name(value)} {value!r}",
                line=setting.value.pos.line, column=setting.value.pos.column))
            continue
        if setting.name in MINIMUM and value < MINIMUM[setting.name]:
            errors.append(AmmlTypeError(
                f"dag setting `{setting.name}` must be at least {MINIMUM[setting.name]}; got {value!r}",
                line=setting.value.pos.line, column=setting.value.pos.column))
            continue
        settings[setting.name] = value
    params = settings.get("params", {})
    return settings, set(params), errors


def runtime_settings(dag: dict[str, Any] | None) -> dict[str, Any]:
    """The executor's settings given in a file's `dag` block (for `run_pipeline(settings=...)`)."""
    return {name: value for name, value in (dag or {}).items() if name in RUNTIME_SETTINGS}


def _constant(node: ast.Expr) -> Any:
    if isinstance(node, ast.DictExpr):
        return {key: _constant(value) for key, value in node.items}
    if isinstance(node, ast.ListExpr):
        return [_constant(item) for item in node.items]
    folded = fold(node)
    if not isinstance(folded, ast.Const):
        raise AmmlTypeError("dag settings must be constants; this reads a record field or run parameter",
                            line=node.pos.line, column=node.pos.column)
    return folded.value
