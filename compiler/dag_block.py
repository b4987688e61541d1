"""The `dag { ... }` block: DAG settings written in AMML, checked at compile time.

Values are constants (folded expressions). The Airflow side (`operators/dag_factory.py`) turns them into DAG
arguments; this module knows their names, types and the rules Airflow applies to them (dag id, dates, time
zones, cron, durations, tag and text lengths), so that `amml lint` rejects what Airflow would reject, without
Airflow. The loader converts dates and durations with the functions below, so the two cannot disagree.
Pure: no I/O except the time zone database (`zoneinfo`, as Airflow/pendulum look zones up), and croniter is
imported only when a file has a cron schedule.
"""

from __future__ import annotations

import hashlib
import math
import re
from datetime import datetime, timedelta
from pathlib import PurePath
from typing import Any

from . import ast
from .errors import AmmlError, AmmlNameError, AmmlTypeError, did_you_mean, one_of
from .expressions import fold
from .semantics import type_name
from .value_checks import DURATION, MAX_DURATION_SECONDS, duration_seconds

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
    "param_descriptions": ((dict,), "what each run parameter means, shown in the trigger form: {epochs: \"...\"}"),
    "description": ((str,), "one-line description"),
    "max_active_runs": ((int,), "concurrent runs of this DAG"),
    "registry_conn": ((str,), "Airflow connection id of the model registry database"),
    "artifact_conn": ((str,), "Airflow connection id of the artifact store (webhdfs)"),
    "timezone": ((str,), "time zone of the schedule"),
    "batch_rows": ((int,), "records per micro-batch between components (default 65536)"),
    "flush_delay": ((int, float), "seconds an ingress may hold records before it sends a smaller batch (default 0.05)"),
    "on_empty": ((str,), "what a run does when a source reads no records in its data interval: 'warn' or 'fail'"),
    "map_concurrency": ((int,), "items of a fanned-out pipeline (`pipeline p for x in ...`) run at once, per DAG run"),
    "max_processes": ((int,), "processes one pipeline run may use (adjacent components share one beyond it); "
                              "AMML_MAX_PROCESSES lowers it"),
}
# `on_empty`: a run with a data interval (scheduled, backfilled) whose source read nothing logs a warning
# naming the interval and the source ("warn", the default), or fails after logging it ("fail").
ON_EMPTY = ("warn", "fail")
DEFAULT_ON_EMPTY = "warn"
# Settings for the streaming executor rather than for the DAG: passed to every run of the file's pipelines.
RUNTIME_SETTINGS = ("batch_rows", "flush_delay")
# The least and the greatest value a numeric setting may take. The upper bounds keep a value inside the
# metadata database's integer columns and the executor's memory.
MINIMUM = {"batch_rows": 1, "flush_delay": 0, "retries": 0, "max_active_runs": 1, "map_concurrency": 1,
           "max_processes": 1}
# map_concurrency: more than a fan-out's items (MAX_FANOUT_ITEMS) means nothing; max_processes: a pipeline has at
# most 64 components (compiler.checker.MAX_COMPONENTS_PER_PIPELINE), one process each
MAXIMUM = {"batch_rows": 1_000_000, "flush_delay": 60, "retries": 100, "max_active_runs": 10_000,
           "map_concurrency": 1024, "max_processes": 64}
# Longest text a setting may hold (Airflow's columns: dag.owners is VARCHAR(2000), a tag VARCHAR(100)).
MAX_TEXT = {"owner": 500, "description": 500, "registry_conn": 250, "artifact_conn": 250, "timezone": 100,
            "start_date": 100, "end_date": 100, "retry_delay": 100, "on_empty": 10}
MAX_PARAM_DESCRIPTION = 1000  # one run parameter's help text (stored with every DAG version)
MAX_TAG = 100  # airflow.sdk.definitions.dag.TAG_MAX_LEN
MAX_ASSET_URI = 1500  # Airflow's limit for an asset name/uri
MAX_CRON = 200

# Airflow's dag id rule (airflow.sdk.definitions._internal.node.validate_key)
MAX_DAG_ID = 250
_AIRFLOW_KEY = re.compile(r"[\w.-]+")
# Placeholder DAGs of files that do not load are named with this prefix; no AMML file may use it.
ERROR_DAG_PREFIX = "amml_error__"
DEFAULT_START = "2024-01-01"
DEFAULT_TIMEZONE = "UTC"
# Dates stay well inside datetime's years 1..9999, so that time zone conversion and schedule arithmetic
# (start + interval) cannot overflow in the scheduler.
MIN_YEAR, MAX_YEAR = 1900, 9000
MAX_DURATION = timedelta(seconds=MAX_DURATION_SECONDS)

# airflow.sdk.definitions.timetables._cron.CRON_PRESETS; anything else starting with @ goes to croniter
CRON_PRESETS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@quarterly": "0 0 1 */3 *",
    "@yearly": "0 0 1 1 *",
}
SPECIAL_SCHEDULES = ("@once", "@continuous")


class SettingError(ValueError):
    """A setting value Airflow would not accept; the message says what is expected, the hint how to fix it."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


def check_dag_settings(block: ast.DagBlock) -> tuple[dict[str, Any], set[str], list[AmmlError]]:
    """Return (settings, declared run parameter names, errors)."""
    settings: dict[str, Any] = {}
    positions: dict[str, ast.Pos] = {}
    nodes: dict[str, ast.Expr] = {}
    errors: list[AmmlError] = []
    if block.name is not None:
        errors.extend(_dag_id_errors(block.name, block.pos))
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
            types, doc = DAG_SETTINGS[setting.name]
            if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
                raise SettingError(f"must be {doc}; got {type_name(value)} {_shorten(repr(value))}")
            _check_value(setting.name, value)
        except AmmlError as exc:
            errors.append(exc)
            continue
        except SettingError as exc:
            errors.append(AmmlTypeError(f"dag setting `{setting.name}` {exc}", hint=exc.hint,
                                        line=setting.value.pos.line, column=setting.value.pos.column))
            continue
        settings[setting.name] = value
        positions[setting.name] = setting.value.pos
        nodes[setting.name] = setting.value
    errors.extend(_check_together(settings, positions, block.pos))
    errors.extend(_check_param_descriptions(settings, nodes))
    params = settings.get("params", {})
    return settings, set(params), errors


def max_processes(dag: dict[str, Any] | None, configured: int | None) -> int | None:
    """The process cap of a run: the smaller of the run configuration's (``AMML_MAX_PROCESSES``) and the dag
    block's ``max_processes``; None when neither sets one."""
    caps = [cap for cap in (configured, (dag or {}).get("max_processes")) if cap is not None]
    return min(caps) if caps else None


def runtime_settings(dag: dict[str, Any] | None) -> dict[str, Any]:
    """The run configuration a file's `dag` block gives: ``RunConfig`` field → value (``batch_rows``,
    ``flush_delay``), merged by ``airflow_amml.run.run_program`` where the run's configuration sets none."""
    return {name: value for name, value in (dag or {}).items() if name in RUNTIME_SETTINGS}


# ---- dag ids ------------------------------------------------------------------------------------------


def dag_id_for(dag_name: str | None, filename: str) -> str:
    """The DAG id of a file: the name of its dag block, else the file name without `.amml`."""
    return dag_name or PurePath(filename).stem


def dag_id_problem(dag_id: str) -> str | None:
    """Why Airflow (or this loader) would refuse `dag_id`, or None when it is fine."""
    if len(dag_id) > MAX_DAG_ID:
        return f"is {len(dag_id)} characters long; Airflow allows at most {MAX_DAG_ID}"
    if not _AIRFLOW_KEY.fullmatch(dag_id):
        return "may hold only letters, digits, `_`, `-` and `.` (Airflow's rule for dag ids)"
    if not dag_id.strip("."):
        return "must hold a letter or digit (a URL cannot name a DAG called `.` or `..`)"
    if dag_id.startswith(ERROR_DAG_PREFIX):
        return f"must not start with `{ERROR_DAG_PREFIX}`: that prefix names the DAGs of files that do not load"
    return None


def task_id_problem(pipeline: str) -> str | None:
    """Why Airflow would refuse a pipeline name as a task id (the same rule as dag ids, without the prefix)."""
    if len(pipeline) > MAX_DAG_ID:
        return f"is {len(pipeline)} characters long; Airflow allows at most {MAX_DAG_ID} in a task id"
    if not _AIRFLOW_KEY.fullmatch(pipeline):
        return "may hold only letters, digits, `_`, `-` and `.` (Airflow's rule for task ids)"
    return None


def items_task_id(pipeline: str) -> str:
    """The task that resolves a fanned-out pipeline's items when its run starts (`params.NAME`, `catalog(...)`,
    `PIPELINE.COLUMN`): `<pipeline>_items`. The checker keeps it free and within Airflow's length."""
    return f"{pipeline}_items"


def check_file_dag_id(filename: str) -> list[AmmlError]:
    """Errors for a file whose DAG id comes from its name (no `dag NAME` block). Call only when the file has no
    dag name; a `<string>` source has no file name to check."""
    if filename.startswith("<"):
        return []
    dag_id = dag_id_for(None, filename)
    problem = dag_id_problem(dag_id)
    if problem is None:
        return []
    return [AmmlNameError(f"the DAG id `{_shorten(dag_id)}` (from the file name) {problem}", filename=filename,
                          hint="rename the file, or name the DAG in the file: `dag my_dag { }`")]


def _dag_id_errors(name: str, pos: ast.Pos) -> list[AmmlError]:
    problem = dag_id_problem(name)
    if problem is None:
        return []
    return [AmmlNameError(f"the DAG id `{_shorten(name)}` {problem}", line=pos.line, column=pos.column,
                          hint="choose another name after `dag`")]


def error_dag_id(relative_path: str) -> str:
    """The id of the placeholder DAG of a file that does not load: readable, and unique per file (a hash of the
    path relative to the dags folder), so that `a-b.amml` and `a_b.amml` get different ones."""
    digest = hashlib.sha256(relative_path.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    stem = relative_path[:-5] if relative_path.endswith(".amml") else relative_path
    readable = re.sub(r"[^A-Za-z0-9_]+", "_", stem).strip("_")[:80] or "file"
    return f"{ERROR_DAG_PREFIX}{readable}_{digest}"


def duplicate_dag_ids(dag_ids: dict[str, str]) -> dict[str, list[str]]:
    """{file: the other files declaring the same DAG id} for every file whose id is not unique.
    `dag_ids` maps a file (any stable name, e.g. its relative path) to its DAG id."""
    by_id: dict[str, list[str]] = {}
    for file, dag_id in sorted(dag_ids.items()):
        by_id.setdefault(dag_id, []).append(file)
    return {file: [other for other in files if other != file]
            for files in by_id.values() if len(files) > 1 for file in files}


def _shorten(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else f"{text[:limit]}…"


# ---- values -------------------------------------------------------------------------------------------


def parse_date(value: str, timezone: str = DEFAULT_TIMEZONE) -> datetime:
    """An ISO 8601 date or date-time, in `timezone` unless it gives its own offset (the loader passes the
    result to pendulum.instance)."""
    from zoneinfo import ZoneInfo

    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise SettingError(f"must be an ISO date such as '2024-01-31' or '2024-01-31T06:00'; got {value!r}") from None
    if not MIN_YEAR <= moment.year <= MAX_YEAR:
        raise SettingError(f"must be between the years {MIN_YEAR} and {MAX_YEAR}; got {value!r}")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(timezone))
    return moment


def parse_duration(value: str | int) -> timedelta:
    """'90s', '5m', '1h', '2d', '1w', or a number of seconds."""
    if isinstance(value, int):
        delta = timedelta(seconds=value) if 0 <= value <= MAX_DURATION.total_seconds() else None
    else:
        if DURATION.fullmatch(value.strip()) is None:
            raise SettingError(f"must be a duration such as '90s', '5m', '1h', '2d' or '1w'; got {value!r}")
        seconds = duration_seconds(value)
        delta = timedelta(seconds=seconds) if seconds is not None else None
    if delta is None:
        raise SettingError(f"must be between 0 seconds and {MAX_DURATION.days} days; got {value!r}")
    return delta


def is_duration(value: Any) -> bool:
    return isinstance(value, str) and DURATION.fullmatch(value.strip()) is not None


def check_timezone(name: str) -> None:
    """Raise SettingError unless `name` is a time zone Airflow accepts (IANA names, looked up like pendulum)."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise SettingError(f"must be an IANA time zone such as 'UTC' or 'Europe/Berlin'; got {name!r}") from None


def check_cron(expression: str, start: datetime) -> None:
    """Raise SettingError unless croniter (which Airflow's CronDataIntervalTimetable uses) accepts `expression`
    with five fields and it fires at least once after `start`."""
    if len(expression) > MAX_CRON:
        raise SettingError(f"is {len(expression)} characters long; a cron expression has at most {MAX_CRON}")
    try:
        from croniter import CroniterError, croniter
    except ImportError:  # the compiler without Airflow: the loader still checks it
        return
    cron = CRON_PRESETS.get(expression, expression)
    try:
        fields = len(croniter(cron).expanded)
    except (CroniterError, ValueError, TypeError, KeyError, IndexError, OverflowError) as exc:  # croniter's own
        raise SettingError(f"is not a valid cron expression ({exc}); got {expression!r}") from None
    if fields != 5:
        raise SettingError(f"must have five fields (minute hour day month weekday); got {expression!r}")
    try:
        croniter(cron, start.replace(tzinfo=None)).get_next(datetime)
    except (CroniterError, ValueError, OverflowError):
        raise SettingError(f"never fires (a day that does not exist, such as 31 February?); got {expression!r}",
                           ) from None


def _check_value(name: str, value: Any) -> None:
    """Rules of one setting on its own (types are checked by the caller)."""
    _check_finite(value)
    if name in MINIMUM and not value >= MINIMUM[name]:
        raise SettingError(f"must be at least {MINIMUM[name]}; got {value!r}")
    if name in MAXIMUM and not value <= MAXIMUM[name]:
        raise SettingError(f"must be at most {MAXIMUM[name]}; got {value!r}")
    if isinstance(value, str) and name in MAX_TEXT and len(value) > MAX_TEXT[name]:
        raise SettingError(f"is {len(value)} characters long; at most {MAX_TEXT[name]} are allowed")
    if name == "tags":
        for tag in value:
            if not isinstance(tag, str) or not 0 < len(tag) <= MAX_TAG:
                raise SettingError(f"must be a list of texts of 1 to {MAX_TAG} characters; got {_shorten(repr(tag))}")
    elif name == "timezone":
        check_timezone(value)
    elif name == "on_empty" and value not in ON_EMPTY:
        raise SettingError(f"must be {' or '.join(map(repr, ON_EMPTY))}; got {_shorten(repr(value))}",
                           hint=did_you_mean(value, ON_EMPTY) or 'on_empty = "fail" makes such a run fail; '
                           '"warn" (the default) logs a warning and lets it succeed')
    elif name == "retry_delay":
        parse_duration(value)
    elif name == "params":
        reserved = [key for key in value if str(key).startswith("__")]
        if reserved:
            # names with two leading underscores are AMML's own run parameters (e.g. where an `items` sink
            # writes its list): a file must not be able to set them
            raise SettingError(f"declares `{reserved[0]}`: names starting with `__` are reserved for AMML",
                               hint=f"rename it, e.g. `{str(reserved[0]).lstrip('_') or 'value'}`")


def _check_finite(value: Any) -> None:
    """NaN and infinity do not survive Airflow's JSON serialization of the DAG."""
    if isinstance(value, float) and not math.isfinite(value):
        raise SettingError(f"must not hold {value!r}")
    if isinstance(value, list):
        for item in value:
            _check_finite(item)
    elif isinstance(value, dict):
        for item in value.values():
            _check_finite(item)


def _check_together(settings: dict[str, Any], positions: dict[str, ast.Pos], block_pos: ast.Pos) -> list[AmmlError]:
    """Rules that involve several settings: dates in the time zone, the schedule from the start date."""
    errors: list[AmmlError] = []

    def problem(name: str, message: str) -> None:
        pos = positions.get(name, block_pos)
        errors.append(AmmlTypeError(f"dag setting `{name}` {message}", line=pos.line, column=pos.column))

    timezone = settings.get("timezone", DEFAULT_TIMEZONE)
    dates: dict[str, datetime] = {}
    for name in ("start_date", "end_date"):
        value = settings.get(name)
        if value is None:
            continue
        try:
            dates[name] = parse_date(value, timezone)
        except SettingError as exc:
            problem(name, str(exc))
    if "start_date" in dates and "end_date" in dates and dates["end_date"] < dates["start_date"]:
        problem("end_date", f"must not be before start_date ({settings['start_date']}); got {settings['end_date']!r}")
    if "schedule" in settings:
        start = dates.get("start_date") or parse_date(DEFAULT_START, timezone)
        try:
            _check_schedule(settings["schedule"], start, settings)
        except SettingError as exc:
            problem("schedule", str(exc))
    return errors


def _check_param_descriptions(settings: dict[str, Any], nodes: dict[str, ast.Expr]) -> list[AmmlError]:
    """`param_descriptions = {name: "text"}`: a non-empty text of at most MAX_PARAM_DESCRIPTION characters for
    each of the run parameters that `params` declares; the error points at the entry."""
    node = nodes.get("param_descriptions")
    if not isinstance(node, ast.DictExpr):
        return []
    declared = settings.get("params", {})
    errors: list[AmmlError] = []
    for name, value_node in node.items:
        value = settings["param_descriptions"][name]
        problem, hint, kind = None, None, AmmlTypeError
        if name not in declared:
            kind = AmmlNameError
            problem = f"describes `{name}`, which `params` does not declare"
            hint = did_you_mean(name, declared) or (f"params: {one_of(declared)}" if declared else
                                                    "declare it with its default: params = {" + name + ": ...}")
        elif not isinstance(value, str) or not value.strip():
            problem = f"must give `{name}` a text; got {type_name(value)} {_shorten(repr(value))}"
            hint = f'e.g. {name}: "what {name} changes"'
        elif len(value) > MAX_PARAM_DESCRIPTION:
            problem = f"gives `{name}` {len(value)} characters; at most {MAX_PARAM_DESCRIPTION} are allowed"
            hint = "say it in one or two sentences"
        if problem:
            errors.append(kind(f"dag setting `param_descriptions` {problem}", hint=hint,
                                        line=value_node.pos.line, column=value_node.pos.column))
    return errors


def _check_schedule(value: Any, start: datetime, settings: dict[str, Any]) -> None:
    if value is None:
        return
    if isinstance(value, list):
        for uri in value:
            _check_asset_uri(uri)
    elif value in SPECIAL_SCHEDULES:
        if value == "@continuous" and settings.get("max_active_runs", 1) != 1:
            raise SettingError("is '@continuous', which allows only `max_active_runs = 1` (Airflow runs one at a time)")
    elif is_duration(value):
        if parse_duration(value) <= timedelta(0):
            raise SettingError(f"must be a positive interval; got {value!r}")
    else:
        check_cron(value, start)


def _check_asset_uri(uri: Any) -> None:
    """What airflow.sdk.Asset checks of a URI used as its name (ASCII everywhere: MySQL requires it)."""
    if not isinstance(uri, str) or not uri.strip():
        raise SettingError(f"lists assets as non-empty texts; got {_shorten(repr(uri))}")
    if len(uri) > MAX_ASSET_URI or not uri.isascii() or uri in ("self", "context"):
        raise SettingError(f"has an asset URI Airflow refuses (ASCII, at most {MAX_ASSET_URI} characters, "
                           f"not `self` or `context`); got {_shorten(repr(uri))}")
    scheme, sep, _ = uri.partition("://")
    if sep and scheme.lower() == "airflow":
        raise SettingError("uses the asset scheme 'airflow', which Airflow reserves")


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
