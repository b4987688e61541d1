""".amml files → Airflow DAGs (run by the loader in the dags folder, at every parse).

* Each pipeline becomes an `AmmlPipelineOperator` task; `pipeline b after a` becomes `a >> b`.
* The `dag { ... }` block gives the DAG's settings. Cron and preset schedules use
  `CronDataIntervalTimetable` and durations `DeltaDataIntervalTimetable`, so that a scheduled or backfilled
  run has a real data interval and its sources read exactly that window.
* No database or HDFS I/O: compiling is pure and cached by content hash.
* A broken file does not raise (in Airflow 3.3 a loader that raises hides all of its DAGs): it becomes a
  placeholder DAG `amml_error__<file>` tagged `amml-error`, whose description and docs carry the error with
  file:line:column, and whose only task fails with the same message.
"""

from __future__ import annotations

import fnmatch
import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import DAG, BaseOperator, CronDataIntervalTimetable, DeltaDataIntervalTimetable, Param

from compiler import AmmlError, ProgramCache, build_graph, compile_file
from compiler.bytecode import Program
from compiler.workflow import render_mermaid

from .pipeline import AmmlPipelineOperator

DEFAULT_START = "2024-01-01"
_DURATION = re.compile(r"^(\d+)\s*(s|m|h|d|w)$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def load_dags(namespace: dict[str, Any], folder: str | os.PathLike[str]) -> list[DAG]:
    """Build a DAG for every .amml file under `folder` (honouring .airflowignore) into `namespace`."""
    from airflow.sdk import get_parsing_context

    folder = Path(folder)
    cache = ProgramCache(_cache_dir())
    wanted = get_parsing_context().dag_id  # inside a task: build only the DAG being run
    dags = []
    for path in amml_files(folder):
        try:
            program = compile_file(path, cache=cache)
        except AmmlError as exc:
            # decide before building: a DAG made inside `with dag:` registers itself with the DagBag
            if wanted and error_dag_id(path) != wanted:
                continue
            dag = error_dag(path, exc)
        else:
            if wanted and (program.dag_name or path.stem) != wanted:
                continue
            dag = build_dag(program, path)
        namespace[dag.dag_id] = dag
        dags.append(dag)
    if not wanted:  # a full parse knows every current program: forget old ones (edited or deleted files)
        cache.prune(keep=cache.used)
    return dags


def amml_files(folder: Path) -> list[Path]:
    patterns = _ignore_patterns(folder)
    found = []
    for path in sorted(folder.rglob("*.amml")):
        relative = path.relative_to(folder).as_posix()
        if any(fnmatch.fnmatch(relative, p) or fnmatch.fnmatch(path.name, p) for p in patterns):
            continue
        found.append(path)
    return found


def _ignore_patterns(folder: Path) -> list[str]:
    ignore = folder / ".airflowignore"
    if not ignore.is_file():
        return []
    lines = (line.split("#", 1)[0].strip() for line in ignore.read_text().splitlines())
    return [line for line in lines if line]


def _cache_dir() -> Path:
    home = os.environ.get("AIRFLOW_HOME") or Path.home() / "airflow"
    return Path(home) / "amml-cache"


def build_dag(program: Program, path: Path) -> DAG:
    settings = program.dag or {}
    dag_id = program.dag_name or path.stem
    params = {name: _param(default) for name, default in settings.get("params", {}).items()}
    default_args = {"owner": settings.get("owner", "amml"), "retries": settings.get("retries", 0)}
    if "retry_delay" in settings:
        default_args["retry_delay"] = _duration(settings["retry_delay"])
    dag = DAG(
        dag_id=dag_id,
        schedule=_schedule(settings.get("schedule"), settings.get("timezone", "UTC")),
        start_date=pendulum.parse(settings.get("start_date", DEFAULT_START), tz=settings.get("timezone", "UTC")),
        end_date=pendulum.parse(settings["end_date"]) if settings.get("end_date") else None,
        catchup=settings.get("catchup", False),
        tags=["amml", *settings.get("tags", [])],
        params=params,
        default_args=default_args,
        description=settings.get("description", f"AMML pipelines from {path.name}"),
        doc_md=_docs(program, path),
        max_active_runs=settings.get("max_active_runs", 16),
    )
    with dag:
        tasks = {
            p.name: AmmlPipelineOperator(
                task_id=p.name,
                amml_file=str(path),
                pipeline=p.name,
                registry_conn_id=settings.get("registry_conn"),
                artifact_conn_id=settings.get("artifact_conn"),
            )
            for p in program.pipelines
        }
        for p in program.pipelines:
            for upstream in p.after:
                tasks[upstream] >> tasks[p.name]
    return dag


def _param(default: Any) -> Param:
    """A typed Param, so that the trigger form validates what a user types (20 → integer, 0.5 → number)."""
    kinds = [(bool, "boolean"), (int, "integer"), (float, "number"), (str, "string"), (list, "array"), (dict, "object")]
    kind = next((name for cls, name in kinds if isinstance(default, cls)), None)
    return Param(default, type=kind) if kind else Param(default)


def _schedule(value: Any, timezone: str) -> Any:
    if value is None:
        return None
    if isinstance(value, list):
        from airflow.sdk import Asset

        return [Asset(uri) for uri in value]
    if value in ("@once", "@continuous"):
        return value
    match = _DURATION.match(str(value))
    if match:
        return DeltaDataIntervalTimetable(_duration(value))
    return CronDataIntervalTimetable(str(value), timezone=timezone)


def _duration(value: Any) -> timedelta:
    if isinstance(value, int):
        return timedelta(seconds=value)
    number, unit = _DURATION.match(str(value)).groups()
    return timedelta(**{_UNITS[unit]: int(number)})


def _docs(program: Program, path: Path) -> str:
    graphs = "\n\n".join(f"```mermaid\n{render_mermaid(build_graph(p))}\n```" for p in program.pipelines)
    return f"### AMML: `{path.name}`\n\n```\n{program.source.rstrip()}\n```\n\n#### Pipelines\n\n{graphs}\n"


class _FailWithError(BaseOperator):
    """The task of a placeholder DAG: fails with the compile error, so the problem shows in the task log."""

    def __init__(self, *, message: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.message = message

    def execute(self, context: Any) -> None:
        raise RuntimeError(self.message)


def error_dag_id(path: Path) -> str:
    return f"amml_error__{re.sub(r'[^A-Za-z0-9_]', '_', path.stem)}"


def error_dag(path: Path, error: AmmlError) -> DAG:
    message = str(error)
    first = message.splitlines()[0]
    dag = DAG(
        dag_id=error_dag_id(path),
        schedule=None,
        start_date=pendulum.parse(DEFAULT_START),
        tags=["amml", "amml-error"],
        description=first[:200],
        doc_md=f"### `{path.name}` does not compile\n\n```\n{message}\n```\n\nFix the file: its DAG comes back "
        "on the next parse.",
    )
    with dag:
        _FailWithError(task_id="compile_error", message=message)
    return dag
