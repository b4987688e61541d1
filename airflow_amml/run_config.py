"""One typed configuration for a run: where AMML reads and writes, which databases it uses, how it batches.

A :class:`RunConfig` is built in exactly two places:

* :meth:`RunConfig.from_environment` — the ``AMML_*`` environment variables (table :data:`ENVIRONMENT`),
  then the caller's overrides (CLI flags, benches, tests);
* ``operators.task_config.task_run_config`` — an Airflow task: starts from the environment (a worker's
  deployment settings still apply), then adds the task's data interval, lineage, dags folder, model folder and
  its connections resolved to URLs.

Everything downstream (runtime, components, storage, catalog, registry) reads typed fields of the object it is
handed and no environment variable. The object is plain data: frozen, picklable, and safe to carry across
``fork()`` into the component processes — which is why connections are URLs here, not clients: an HTTP client
made in the parent must not be shared by its children.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from airflow_amml.runtime.errors import PipelineError

DEFAULT_TRAIN_MEMORY = 4 * 1024**3
TRAIN_MEMORY_ENV = "AMML_TRAIN_MEMORY_LIMIT"
WEBHOOKS_ENV = "AMML_WEBHOOKS"
# The Airflow connection ids a deployment may set instead of URLs: only the Airflow side resolves them
# (operators/connections.py), so building from the environment alone refuses them rather than ignore them.
CONNECTION_VARIABLES = {"AMML_REGISTRY_CONN_ID": "registry_url", "AMML_ARTIFACT_CONN_ID": "artifact_location"}


@dataclass(frozen=True)
class Lineage:
    """Where a trained model came from; stored with its registry version."""

    dag_id: str | None = None
    run_id: str | None = None
    task_id: str | None = None
    data_interval_start: str | None = None
    data_interval_end: str | None = None
    source_hash: str | None = None


def _default_home() -> Path:
    return Path.home() / ".local" / "share" / "amml"


def _default_cache() -> Path:
    return Path.home() / ".cache" / "amml"


def _default_dags_folder() -> Path:
    return Path.home() / "airflow" / "dags"


@dataclass(frozen=True, repr=False)
class RunConfig:
    """The configuration of a run. Fields, and what fills them (env: :meth:`from_environment`; task:
    ``operators.task_config``; CLI: ``amml run``):

    :param home: AMML's own folder (embedded databases, artifacts, outputs) — env ``AMML_HOME``, default
        ``~/.local/share/amml``. Created on first use; the registry requires it to be absolute.
    :param cache_dir: downloaded data sets — env ``AMML_CACHE``, default ``~/.cache/amml``.
    :param ett_path: the ETTh1 file `source id="ett"` reads — env ``AMML_ETT_PATH``; None: the cache, else the
        copy shipped in the package.
    :param catalog_file: a YAML file of data sources (`source id=...`) — env ``AMML_CATALOG``.
    :param sources: more catalog entries, ``{id: {path|url, table|query, time_column}}`` — overrides only
        (tests, benches); they win over the catalog file's.
    :param db_url: SQLAlchemy URL of the database for alerts, snapshots and SQL sinks — env ``AMML_DB_URL``,
        task: the operator's ``db_conn_id``; None: SQLite ``home/amml.db`` (made on first use).
    :param databases: the databases a pipeline may name with ``db=NAME`` — env ``AMML_DATABASES`` (a JSON object
        ``{"NAME": "SQLAlchemy URL"}``).
    :param webhooks: the webhooks ``alert webhook=NAME`` may post to — env ``AMML_WEBHOOKS`` (a JSON object
        ``{"NAME": "https://..."}``, http(s) only: a pipeline names a webhook, never gives a URL).
    :param registry_url: SQLAlchemy URL of the model registry — env ``AMML_REGISTRY_URL``; task: the dag block's
        ``registry_conn`` (operator ``registry_conn_id``), else ``AMML_REGISTRY_CONN_ID``, resolved to a URL;
        None: SQLite ``home/registry.db`` (made on first use).
    :param artifact_location: where new model files go (a folder or ``webhdfs://``/``file://`` URI) — env
        ``AMML_ARTIFACTS``; task: ``artifact_conn`` (``artifact_conn_id``), else ``AMML_ARTIFACT_CONN_ID``, as a
        ``webhdfs://`` URL; None: ``home/artifacts``.
    :param model_paths: folders of model YAML files ``train_lstm`` looks in — CLI: the file's ``models/`` and its
        folder; task: the file's ``models/``; then env ``AMML_MODEL_PATH`` (``os.pathsep``-separated), searched
        after the run's own folders (alone when the run names none).
    :param output_root: the only folder file sinks write under — env ``AMML_OUTPUT_ROOT``; None: ``home/output``.
    :param input_root: the only folder ``logsource`` reads under — env ``AMML_INPUT_ROOT``; None: ``home/input``.
    :param dags_folder: Airflow's dags folder, where no sink may write — env ``AIRFLOW__CORE__DAGS_FOLDER``, else
        ``$AIRFLOW_HOME/dags``, else ``~/airflow/dags``; task: ``[core] dags_folder``.
    :param runs_dir: where ``train_lstm`` keeps each training's files (model, plots) — overrides only; None:
        ``home/runs``.
    :param batch_rows: records per micro-batch — CLI ``--batch-rows``, else the dag block's ``batch_rows``;
        None: 65,536.
    :param flush_delay: seconds an ingress may hold records — CLI ``--flush-delay``, else the dag block's; None:
        0.05.
    :param lineage: the run's identity, stored with a model it trains — task: dag/run/task ids and data interval;
        both: the AMML source hash.
    :param data_interval: ``(start, end)`` ISO times a source without its own window reads — task: the run's
        data interval (None without one, e.g. a run with no logical date: sources read everything).
    :param shm_transport: batches between processes through ``/dev/shm`` — env ``AMML_SHM_TRANSPORT`` (``0``
        turns it off).
    :param train_memory_limit: bytes training may use — env ``AMML_TRAIN_MEMORY_LIMIT`` (``512MiB``, ``8GiB``,
        ``2e9``), default 4 GiB.
    :param item: the item a fanned-out pipeline (``pipeline p for series in ...``) runs for: ``(variable, value)``,
        e.g. ``("series", "nab/realKnownCause/nyc_taxi")`` — task: the mapped task's item; CLI: each item of
        ``amml run``; None: a pipeline that is not fanned out. Sinks, alerts and registered models carry it.
    :param max_processes: the most processes one run's pipeline may use (adjacent stages share a process
        beyond it) — env ``AMML_MAX_PROCESSES``, else the dag block's ``max_processes``; None: one process per
        component.
    :param model_pins: the registered-model references this run's components read, each resolved once when the
        run starts (``{"ett@champion": "ett/3"}``), so that an alias moved meanwhile (a retraining promoting) does
        not give the scaler one version and the model another — filled by :func:`airflow_amml.run.run_program`.
    """

    home: Path = field(default_factory=_default_home)
    cache_dir: Path = field(default_factory=_default_cache)
    ett_path: Path | None = None
    catalog_file: Path | None = None
    sources: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    db_url: str | None = None
    databases: Mapping[str, str] = field(default_factory=dict)
    webhooks: Mapping[str, str] = field(default_factory=dict)
    registry_url: str | None = None
    artifact_location: str | None = None
    model_paths: tuple[Path, ...] = (Path("dags/models"),)
    output_root: Path | None = None
    input_root: Path | None = None
    dags_folder: Path = field(default_factory=_default_dags_folder)
    runs_dir: Path | None = None
    batch_rows: int | None = None
    flush_delay: float | None = None
    lineage: Lineage = field(default_factory=Lineage)
    data_interval: tuple[str, str] | None = None
    shm_transport: bool = True
    train_memory_limit: int = DEFAULT_TRAIN_MEMORY
    item: tuple[str, str | int | float] | None = None
    max_processes: int | None = None
    model_pins: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Normalise what callers may give loosely (a str for a Path, a list for a tuple) and check the rest:
        the object is then the same whichever way it was built, and read-only all the way down."""
        for name in ("home", "cache_dir", "dags_folder"):
            self._set(name, Path(getattr(self, name)))
        for name in ("ett_path", "catalog_file", "output_root", "input_root", "runs_dir"):
            value = getattr(self, name)
            self._set(name, None if value is None else Path(value))
        paths = self.model_paths
        self._set("model_paths", (Path(paths),) if isinstance(paths, str | os.PathLike) else tuple(map(Path, paths)))
        self._set("sources", _frozen({str(k): _frozen(dict(v)) for k, v in dict(self.sources).items()}))
        self._set("databases", _frozen({str(k): str(v) for k, v in dict(self.databases).items()}))
        self._set("webhooks", _frozen({str(k): str(v) for k, v in dict(self.webhooks).items()}))
        self._set("model_pins", _frozen({str(k): str(v) for k, v in dict(self.model_pins).items()}))
        for name, url in self.webhooks.items():
            if not url.lower().startswith(("http://", "https://")):
                raise PipelineError(
                    f"{WEBHOOKS_ENV}: the webhook `{name}` is not an http(s) URL",
                    hint='declare e.g. {"ops": "https://hooks.example.com/amml"}',
                )
        if self.data_interval is not None:
            start, end = self.data_interval
            self._set("data_interval", (str(start), str(end)))
        if not isinstance(self.lineage, Lineage):
            raise TypeError(f"RunConfig.lineage must be a Lineage, got {type(self.lineage).__name__}")
        rows, delay = self.batch_rows, self.flush_delay
        if rows is not None and (isinstance(rows, bool) or not isinstance(rows, int) or rows < 1):
            raise PipelineError(f"batch_rows must be a whole number of records ≥ 1, got {rows!r}")
        if delay is not None:
            if isinstance(delay, bool) or not isinstance(delay, int | float) or not delay >= 0:
                raise PipelineError(f"flush_delay must be a number of seconds ≥ 0, got {delay!r}")
            self._set("flush_delay", float(delay))
        if self.item is not None:
            variable, value = self.item
            if not isinstance(variable, str) or isinstance(value, bool) or not isinstance(value, str | int | float):
                raise PipelineError(f"item must be (variable name, a string or number), got {self.item!r}")
            self._set("item", (variable, value))
        cap = self.max_processes
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 1):
            raise PipelineError(
                f"max_processes must be a whole number of processes ≥ 1, got {cap!r}",
                hint="set AMML_MAX_PROCESSES (or the dag block's max_processes) to e.g. 2",
            )
        limit = self.train_memory_limit
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"train_memory_limit must be a number of bytes ≥ 1, got {limit!r}")

    def _set(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)  # the frozen dataclass's own recipe for __post_init__

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ, **overrides: Any) -> RunConfig:
        """The configuration the environment gives (:data:`ENVIRONMENT`), then ``overrides`` (field → value).

        A variable whose field is overridden is not read at all (a broken ``AMML_DATABASES`` does not stop a run
        that names its own databases). Empty variables count as unset."""
        unknown = sorted(set(overrides) - FIELD_NAMES)
        if unknown:
            raise TypeError(f"RunConfig has no field(s) {unknown}; its fields are {sorted(FIELD_NAMES)}")
        values: dict[str, Any] = {}
        for variable, (name, parse) in ENVIRONMENT.items():
            raw = environ.get(variable)
            if name not in overrides and raw and raw.strip():
                values[name] = parse(raw)
        searched = environ.get("AMML_MODEL_PATH", "").strip()
        if "model_paths" in overrides and searched:  # the run's own folders first, then the deployment's
            overrides = {**overrides, "model_paths": (*_loose_paths(overrides["model_paths"]), *_path_list(searched))}
        if "dags_folder" not in overrides:
            values["dags_folder"] = _dags_folder(environ)
        for variable, name in CONNECTION_VARIABLES.items():
            if environ.get(variable) and name not in values and name not in overrides:
                raise _connection_id_error(variable, environ[variable], name)
        return cls(**{**values, **overrides})

    def __reduce__(self) -> tuple[Any, ...]:
        # MappingProxyType does not pickle: the fields travel as plain values and are frozen again on arrival
        return (_rebuild, (type(self), {f.name: _thawed(getattr(self, f.name)) for f in dataclasses.fields(self)}))

    def __repr__(self) -> str:
        shown = ", ".join(f"{f.name}={_masked(getattr(self, f.name))!r}" for f in dataclasses.fields(self))
        return f"{type(self).__name__}({shown})"


FIELD_NAMES = frozenset(f.name for f in dataclasses.fields(RunConfig))


# ---- reading the environment ------------------------------------------------------------------------------


def _names_to_urls(variable: str, what: str, example: str) -> Callable[[str], dict[str, str]]:
    """The parser of a variable holding a JSON object of names → URLs (``AMML_DATABASES``, ``AMML_WEBHOOKS``)."""

    def parse(raw: str) -> dict[str, str]:
        try:
            declared = json.loads(raw)
        except ValueError as exc:
            hint = f"set it to an object such as {example}"
            raise PipelineError(f"{variable} is not JSON: {exc}", hint=hint) from exc
        if not isinstance(declared, dict):
            raise PipelineError(f"{variable} must be a JSON object mapping names to {what}")
        return {str(k): str(v) for k, v in declared.items()}

    return parse


_databases = _names_to_urls("AMML_DATABASES", "SQLAlchemy URLs", '{"warehouse": "postgresql://..."}')
_webhooks = _names_to_urls(WEBHOOKS_ENV, "http(s) URLs", '{"ops": "https://..."}')


def _loose_paths(paths: Any) -> tuple[Path, ...]:
    return (Path(paths),) if isinstance(paths, str | os.PathLike) else tuple(map(Path, paths))


def _path_list(raw: str) -> tuple[Path, ...]:
    return tuple(Path(p) for p in raw.split(os.pathsep) if p)


def parse_memory_size(raw: str) -> int:
    """``512MiB``, ``8GiB``, ``2e9`` (bytes) → a number of bytes; an error naming ``AMML_TRAIN_MEMORY_LIMIT``."""
    raw = raw.strip()
    match = re.fullmatch(r"(\d+(?:\.\d+)?(?:[eE]\d+)?)\s*([KMGT]i?B?|B)?", raw, re.IGNORECASE)
    if match is None or float(match.group(1)) <= 0:
        from airflow_amml.models.errors import AmmlModelError

        raise AmmlModelError(
            f"{TRAIN_MEMORY_ENV}={raw!r} is not a memory size",
            filename=TRAIN_MEMORY_ENV,
            hint=f"write a number of bytes with an optional unit, e.g. {TRAIN_MEMORY_ENV}=8GiB",
        )
    unit = (match.group(2) or "B").upper().rstrip("B").rstrip("I")
    factor = 1024 ** "KMGT".index(unit) * 1024 if unit else 1
    return int(float(match.group(1)) * factor)


def _whole_number(variable: str, raw: str) -> int:
    try:
        return int(raw.strip())
    except ValueError:
        raise PipelineError(f"{variable}={raw!r} is not a whole number", hint=f"set e.g. {variable}=2") from None


def _dags_folder(environ: Mapping[str, str]) -> Path:
    """Airflow's dags folder as Airflow finds it without its config file (the operator asks Airflow itself)."""
    if environ.get("AIRFLOW__CORE__DAGS_FOLDER"):
        return Path(environ["AIRFLOW__CORE__DAGS_FOLDER"])
    if environ.get("AIRFLOW_HOME"):
        return Path(environ["AIRFLOW_HOME"]) / "dags"
    return _default_dags_folder()


def _connection_id_error(variable: str, conn_id: str, name: str) -> Exception:
    from airflow_amml.registry.errors import RegistryError

    url_variable = next(v for v, (field_name, _) in ENVIRONMENT.items() if field_name == name)
    return RegistryError(
        f"{variable}={conn_id!r} names an Airflow connection, which only the Airflow side resolves (the operator, "
        "the plugin, and `amml` on a machine with Airflow installed)",
        hint=f"set {url_variable} to the URL instead, or run where Airflow is installed",
    )


# Environment variable → (the RunConfig field it fills, how its text becomes the value). The README's table.
ENVIRONMENT: dict[str, tuple[str, Callable[[str], Any]]] = {
    "AMML_HOME": ("home", Path),
    "AMML_CACHE": ("cache_dir", Path),
    "AMML_ETT_PATH": ("ett_path", Path),
    "AMML_CATALOG": ("catalog_file", Path),
    "AMML_DB_URL": ("db_url", str),
    "AMML_DATABASES": ("databases", _databases),
    WEBHOOKS_ENV: ("webhooks", _webhooks),
    "AMML_REGISTRY_URL": ("registry_url", str),
    "AMML_ARTIFACTS": ("artifact_location", str),
    "AMML_MODEL_PATH": ("model_paths", _path_list),
    "AMML_OUTPUT_ROOT": ("output_root", Path),
    "AMML_INPUT_ROOT": ("input_root", Path),
    "AMML_SHM_TRANSPORT": ("shm_transport", lambda raw: raw.strip() != "0"),
    TRAIN_MEMORY_ENV: ("train_memory_limit", parse_memory_size),
    "AMML_MAX_PROCESSES": ("max_processes", lambda raw: _whole_number("AMML_MAX_PROCESSES", raw)),
}


# ---- read-only values that still pickle ------------------------------------------------------------------


def _frozen(mapping: dict[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(mapping)


def _thawed(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _thawed(v) for k, v in value.items()}
    return value


def _rebuild(cls: type[RunConfig], values: dict[str, Any]) -> RunConfig:
    return cls(**values)


_PASSWORD = re.compile(r"(://[^:/@]*:)[^@/]*@")


def _masked(value: Any) -> Any:
    """A value as a repr may show it: passwords in URLs (database URLs carry them) replaced by ***."""
    if isinstance(value, str):
        return _PASSWORD.sub(r"\1***@", value)
    if isinstance(value, Mapping):
        return {k: _masked(v) for k, v in value.items()}
    return value
