""".amml files → Airflow DAGs (run by the loader in the dags folder, at every parse).

* Each pipeline becomes an `AmmlPipelineOperator` task; `pipeline b after a` becomes `a >> b`.
* A fanned-out pipeline (`pipeline p for series in ITEMS`) becomes ONE mapped task,
  `AmmlPipelineOperator.partial(task_id="p", ...).expand(item=...)`, each instance named by its item
  (`map_index_template`: "series=nab/realKnownCause/nyc_taxi"), at most the dag block's `map_concurrency` at once
  per run: a list literal is expanded as it is; `params.NAME`, `catalog("GLOB")` and `PIPELINE.COLUMN` (the
  list that pipeline's `items` sink collected, its XCom `amml_items`) through a task `p_items`
  (`operators/fanout.py`) that resolves them when the run starts (after PIPELINE).
* The `dag { ... }` block gives the DAG's settings. Cron and preset schedules use
  `CronDataIntervalTimetable` and durations `DeltaDataIntervalTimetable`, so that a scheduled or backfilled
  run has a real data interval and its sources read exactly that window. Dates and durations are converted by
  `compiler.dag_block`, the same code that `amml lint` checks them with.
* No database or HDFS I/O: compiling is pure and cached by content hash.
* Files are found the way Airflow finds DAG files: `.airflowignore` in every folder, with the syntax of
  `[core] dag_ignore_file_syntax` (glob by default, `dir/` ignores a folder), using Airflow's own matcher.
* **The loader never raises** (in Airflow 3.3 a loader that raises hides all of its DAGs, and a DAG that fails
  Airflow's validation or serialization marks every DAG of the loader stale). Whatever goes wrong with one
  file (a compile error, a DAG id that two files declare, an exception from Airflow or from the compile
  cache) becomes that file's placeholder DAG `amml_error__<file>_<hash>` (see `compiler.dag_block.error_dag_id`),
  tagged `amml-error`, whose description starts with "AMML ERROR:", whose docs carry the error (capped at
  `MAX_DOC_CHARS`), and which runs once, unpaused, with a single task that fails with the message: so the
  file counts among the failed DAGs on Airflow's Home page.
"""

from __future__ import annotations

import json
import logging
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import DAG, BaseOperator, CronDataIntervalTimetable, DeltaDataIntervalTimetable, Param

from compiler import AmmlError, ProgramCache, build_graph, compile_file
from compiler.bytecode import Program, in_dependency_order
from compiler.dag_block import (
    DEFAULT_ON_EMPTY,
    DEFAULT_START,
    DEFAULT_TIMEZONE,
    MAX_TEXT,
    dag_id_for,
    duplicate_dag_ids,
    error_dag_id,
    is_duration,
    items_task_id,
    parse_date,
    parse_duration,
)
from compiler.errors import AmmlCompileErrors, AmmlNameError
from compiler.workflow import Graph, literal

from .fanout import AmmlItemsOperator
from .pipeline import AmmlPipelineOperator

log = logging.getLogger(__name__)

ERROR_TAG = "amml-error"
ERROR_PREFIX = "AMML ERROR: "
# What one file may put into its DAG's docs and description (they are stored with every DAG version and
# sent to every browser that opens the DAG); the full error is one `amml lint FILE` away.
MAX_DOC_CHARS = 20_000
MAX_DESCRIPTION_CHARS = MAX_TEXT["description"]  # what `amml lint` allows in `description = ...`
DEFAULT_MAX_ACTIVE_RUNS = 16
# The pipeline page's tab on the DAG page (the plugin's `external_views` entry with destination "dag"): the
# Airflow UI shows it at dags/<dag_id>/plugin/<PIPELINE_VIEW_ROUTE>, the page itself is PIPELINE_PAGE.
PIPELINE_VIEW_ROUTE = "amml-pipeline"
PIPELINE_PAGE = "amml/ui/dags/{DAG_ID}/pipeline"


@dataclass
class _File:
    """One .amml file: its compiled program, or the error that stands in for its DAG."""

    path: Path
    relative: str  # to the dags folder, POSIX: names the error DAG
    program: Program | None = None
    error: str | None = None
    errors: list[str] | None = None  # each error of `error`, when the compiler found several

    @property
    def dag_id(self) -> str:
        if self.program is None:
            return error_dag_id(self.relative)
        return dag_id_for(self.program.dag_name, self.path.name)


def load_dags(namespace: dict[str, Any], folder: str | os.PathLike[str]) -> list[DAG]:
    """Build a DAG for every .amml file under `folder` (honouring .airflowignore) into `namespace`.
    Never raises: see the module docstring."""
    try:
        return _load(namespace, Path(folder))
    except Exception as exc:  # the folder itself failed (unreadable, a symlink loop, a bad ignore syntax)
        log.exception("AMML: loading %s failed", folder)
        message = f"{folder}: error: the AMML loader could not list the .amml files: {_describe(exc)}"
        dag = _error_dag_or_none(".", message)
        if dag is None:
            return []
        _register(namespace, dag)
        return [dag]


def _load(namespace: dict[str, Any], folder: Path) -> list[DAG]:
    from airflow.sdk import get_parsing_context

    cache = ProgramCache(_cache_dir())
    wanted = get_parsing_context().dag_id  # inside a task: build only the DAG being run
    files = _compiled_files(folder, cache)
    dags = []
    for file in files:
        # decide before building: building costs time, and a task needs only its own DAG
        if wanted and file.dag_id != wanted:
            continue
        dag = _build_or_error(file, check_serializable=not wanted)
        if dag is not None:
            _register(namespace, dag)
            dags.append(dag)
    if not wanted:  # a full parse knows every current program: forget old ones (edited or deleted files)
        try:
            cache.prune(keep=cache.used)
        except Exception:  # an optimisation only
            log.exception("AMML: pruning the compile cache failed")
    return dags


def _compiled_files(folder: Path, cache: ProgramCache) -> list[_File]:
    files = [_compile(path, folder, cache) for path in amml_files(folder)]
    _refuse_duplicates(files)
    return files


def find_program(folder: str | os.PathLike[str], dag_id: str) -> tuple[Path, Program] | None:
    """The .amml file under ``folder`` whose DAG is ``dag_id`` and its program, found as the loader finds them
    (the same files, ignore rules, dag ids and duplicate refusal), or None. For pages that show a DAG's
    pipelines: a dag id from a request selects among the loader's files and never names a path."""
    for file in _compiled_files(Path(folder), ProgramCache(_cache_dir())):
        if file.program is not None and file.dag_id == dag_id:
            return file.path, file.program
    return None


def _register(namespace: dict[str, Any], dag: DAG) -> None:
    # Not `namespace[dag_id]`: a DAG named `__file__` or `load_dags` would replace the loader module's own names.
    # The DagBag takes every DAG among the module's values, whatever its key.
    namespace[f"amml:{dag.dag_id}"] = dag


def _compile(path: Path, folder: Path, cache: ProgramCache) -> _File:
    file = _File(path, path.relative_to(folder).as_posix())
    try:
        file.program = compile_file(path, cache=cache)  # it checks a DAG id taken from the file name too
    except AmmlError as exc:
        file.program, file.error = None, _describe(exc)
        if isinstance(exc, AmmlCompileErrors):
            file.errors = [_describe(error) for error in exc.errors]
    except Exception as exc:  # a compiler or cache failure must not take the other files down
        log.exception("AMML: compiling %s failed", path)
        file.program, file.error = None, _internal_error(path, exc)
    return file


def _refuse_duplicates(files: list[_File]) -> None:
    """Files declaring the same DAG id all become errors naming each other: which one would win depends on
    the order Airflow sees them in, and a new file could silently replace a running DAG."""
    compiled = {file.relative: file for file in files if file.program is not None}
    duplicates = duplicate_dag_ids({relative: file.dag_id for relative, file in compiled.items()})
    for relative, others in duplicates.items():
        file = compiled[relative]
        error = AmmlNameError(
            f"the DAG id `{file.dag_id}` is also declared by {', '.join(others)}; none of these files gets a DAG",
            filename=str(file.path),
            hint="give each file its own name: `dag another_name { ... }` (or rename the file)",
        )
        file.program, file.error = None, str(error)


def _build_or_error(file: _File, *, check_serializable: bool) -> DAG | None:
    if file.program is not None:
        try:
            dag = build_dag(file.program, file.path)
            _validate(dag, serialize=check_serializable)
            return dag
        except Exception as exc:  # Airflow refused something the compiler let through
            log.exception("AMML: building the DAG of %s failed", file.path)
            file.error = _internal_error(file.path, exc)
    return _error_dag_or_none(file.relative, file.error or f"{file.path}: error: unknown failure", file.errors)


def _validate(dag: DAG, *, serialize: bool) -> None:
    """What the DagBag and the dag processor do to a DAG after the loader returns: failing there would mark
    every AMML DAG stale, failing here costs only this file's DAG."""
    dag.validate()
    dag.check_cycle()
    if not serialize:
        return
    try:
        from airflow.serialization.serialized_objects import DagSerialization
    except ImportError:  # a worker with the task SDK only: it does not serialize DAGs
        return
    json.dumps(DagSerialization.to_dict(dag)).encode("utf-8")


def _describe(exc: BaseException) -> str:
    try:
        return _printable(str(exc))
    except Exception:
        return type(exc).__name__


def _internal_error(path: Path, exc: Exception) -> str:
    return (f"{path}: error: the AMML loader could not make this file's DAG: {_describe(exc)} "
            f"({type(exc).__name__})\nhint: run `amml lint {path.name}`; if it says ok, please report this")


def _printable(text: str) -> str:
    """Text that encodes as UTF-8 (a lone surrogate from a string escape would break Airflow's serialization)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def amml_files(folder: Path) -> list[Path]:
    """The .amml files under `folder` that Airflow's own `.airflowignore` rules do not exclude."""
    try:
        from airflow._shared.module_loading import find_path_from_directory
    except ImportError:  # task-SDK-only worker
        from airflow.sdk._shared.module_loading import find_path_from_directory
    with warnings.catch_warnings():  # pathspec's deprecation notice, once per parse, helps nobody here
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        found = list(find_path_from_directory(folder, ".airflowignore", _ignore_syntax()))
    return sorted(path for path in map(Path, found) if path.suffix == ".amml" and path.is_file())


def _ignore_syntax() -> str:
    from airflow.sdk import conf

    return conf.get("core", "dag_ignore_file_syntax", fallback="glob") or "glob"


def _cache_dir() -> Path:
    home = os.environ.get("AIRFLOW_HOME") or Path.home() / "airflow"
    return Path(home) / "amml-cache"


def build_dag(program: Program, path: Path) -> DAG:
    settings = program.dag or {}
    timezone = settings.get("timezone", DEFAULT_TIMEZONE)
    descriptions = settings.get("param_descriptions", {})
    params = {name: _param(default, descriptions.get(name)) for name, default in settings.get("params", {}).items()}
    default_args = {"owner": settings.get("owner", "amml"), "retries": settings.get("retries", 0)}
    if "retry_delay" in settings:
        default_args["retry_delay"] = parse_duration(settings["retry_delay"])
    schedule = settings.get("schedule")
    end_date = settings.get("end_date")
    dag_id = dag_id_for(program.dag_name, path.name)
    dag = DAG(
        dag_id=dag_id,
        schedule=_schedule(schedule, timezone),
        start_date=pendulum.instance(parse_date(settings.get("start_date", DEFAULT_START), timezone)),
        end_date=pendulum.instance(parse_date(end_date, timezone)) if end_date else None,
        catchup=settings.get("catchup", False),
        tags=["amml", *settings.get("tags", [])],
        params=params,
        default_args=default_args,
        description=_cap(settings.get("description", f"AMML pipelines from {path.name}"), MAX_DESCRIPTION_CHARS),
        doc_md=pipeline_docs(program, path.name, dag_id),
        max_active_runs=settings.get("max_active_runs", 1 if schedule == "@continuous" else DEFAULT_MAX_ACTIVE_RUNS),
        auto_register=False,  # registered by `_register` only once it is complete and valid
    )
    with dag:
        tasks: dict[str, Any] = {}
        # upstream tasks first: a fan-out's items task waits for what the pipeline runs after
        for p in in_dependency_order(program.pipelines):
            tasks[p.name] = _pipeline_task(p, path, settings, tasks)
        for p in program.pipelines:
            for upstream in p.after:
                tasks[upstream] >> tasks[p.name]
    return dag


def _pipeline_task(pipeline: Any, path: Path, settings: dict[str, Any], tasks: dict[str, Any]) -> Any:
    """The task of one pipeline: a plain one, or for a fanned-out pipeline a mapped one over its items."""
    arguments = {
        "task_id": pipeline.name,
        "amml_file": str(path),
        "pipeline": pipeline.name,
        # the dag block's short keys (what users write) → Airflow's `*_conn_id` convention
        "registry_conn_id": settings.get("registry_conn"),
        "artifact_conn_id": settings.get("artifact_conn"),
        "on_empty": settings.get("on_empty", DEFAULT_ON_EMPTY),
        "max_processes": settings.get("max_processes"),
    }
    loop = pipeline.foreach
    if loop is None:
        return AmmlPipelineOperator(**arguments)
    mapped = AmmlPipelineOperator.partial(
        **arguments,
        # `task` is the instance's own operator, its item set; not the item in the template text: data stays data
        map_index_template=f"{loop.variable}={{{{ task.item }}}}",
        max_active_tis_per_dagrun=settings.get("map_concurrency"),
    )
    return mapped.expand(item=_items(pipeline, path, settings, tasks))


def _items(pipeline: Any, path: Path, settings: dict[str, Any], tasks: dict[str, Any]) -> Any:
    """What a fanned-out pipeline's task expands over: the literal list, or an XCom of the task that has it."""
    loop = pipeline.foreach
    if loop.kind == "list":
        return list(loop.value)
    resolver = AmmlItemsOperator(
        task_id=items_task_id(pipeline.name),
        amml_file=str(path),
        pipeline=pipeline.name,
        kind=loop.kind,
        value=loop.value[0] if loop.kind == "pipeline" else loop.value,
        registry_conn_id=settings.get("registry_conn"),
        artifact_conn_id=settings.get("artifact_conn"),
    )
    # after what the pipeline runs after (a `prepare` that writes the catalog; for `PIPELINE.COLUMN` the
    # pipeline whose XCom `amml_items` holds the list: Airflow maps only over return values)
    for upstream in pipeline.after:
        tasks[upstream] >> resolver
    return resolver.output


def _param(default: Any, description: str | None = None) -> Param:
    """A typed Param, so that the trigger form validates what a user types (20 → integer, 0.5 → number), with
    the dag block's `param_descriptions` text as its help."""
    kinds = [(bool, "boolean"), (int, "integer"), (float, "number"), (str, "string"), (list, "array"), (dict, "object")]
    kind = next((name for cls, name in kinds if isinstance(default, cls)), None)
    extra = {"description": description} if description else {}
    return Param(default, type=kind, **extra) if kind else Param(default, **extra)


def _schedule(value: Any, timezone: str) -> Any:
    if value is None:
        return None
    if isinstance(value, list):
        from airflow.sdk import Asset

        return [Asset(uri) for uri in value]
    if value in ("@once", "@continuous"):
        return value
    if is_duration(value):
        return DeltaDataIntervalTimetable(parse_duration(value))
    return CronDataIntervalTimetable(str(value), timezone=timezone)


# ---- the Docs panel (doc_md) ---------------------------------------------------------------------------
# Airflow 3.3's UI renders doc_md with react-markdown and remark-gfm (tables), skips raw HTML, and highlights a
# fenced block only when it names a language (a fence without one is shown as inline code, its line breaks
# lost). Links open in a new tab; a relative one resolves against the UI's base URL (its <base href>).


def pipeline_docs(program: Program, filename: str, dag_id: str) -> str:
    """The DAG's docs: a link to its pipeline graph, the run parameters (default, description), each pipeline's
    components with their parameters as the file sets them (`model=params.model`), and the AMML source."""
    settings = program.dag or {}
    graph_link = f"[Open the pipeline graph]({_pipeline_tab(dag_id)}) (the DAG's Pipeline tab)"
    parts = [f"### AMML: {_code(filename)}", graph_link]
    params = settings.get("params", {})
    if params:
        descriptions = settings.get("param_descriptions", {})
        rows = ["| parameter | default | description |", "|---|---|---|"]
        rows += [
            f"| {_cell(_code(name))} | {_cell(_code(literal(value)))} | {_md_text(descriptions.get(name, ''))} |"
            for name, value in params.items()
        ]
        parts += ["#### Run parameters", "\n".join(rows)]
    parts.append("#### Pipelines")
    for pipeline in program.pipelines:
        after = f" (after {', '.join(map(_code, pipeline.after))})" if pipeline.after else ""
        loop = pipeline.foreach
        foreach = f" for {_code(loop.variable)} in {_code(_cap_line(loop.text))}" if loop else ""
        parts += [f"**{_md_text(pipeline.name)}**{foreach}{after}", _components(build_graph(pipeline))]
    source = _cap(program.source.rstrip(), MAX_DOC_CHARS // 2)
    parts += ["#### Source", _fenced(source, "amml")]
    docs = "\n\n".join(parts) + "\n"
    if len(docs) > MAX_DOC_CHARS:  # too many components to list: the source alone says it all
        docs = "\n\n".join([*parts[:2], "(the pipelines are too large to list)", *parts[-2:]]) + "\n"
    return docs


def _components(graph: Graph) -> str:
    """One numbered line per component: its name, its parameters, and its inputs where they are not the line
    before (a join, a named flow read again)."""
    lines = []
    for n in graph.nodes:
        text = _code(n.component)
        if n.parameters:
            text += " " + ", ".join(_code(f"{name}={value}") for name, value in n.parameters)
        if n.inputs and n.inputs != [n.id - 1]:
            text += " ← " + ", ".join(f"{i + 1}" for i in n.inputs)
        lines.append(f"{n.id + 1}. {text}")
    return "\n".join(lines)


def _cap_line(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else f"{text[: limit - 1]}…"


def _pipeline_tab(dag_id: str) -> str:
    from urllib.parse import quote

    return f"dags/{quote(dag_id, safe='')}/plugin/{PIPELINE_VIEW_ROUTE}"


def _code(text: str) -> str:
    """An inline code span that nothing in `text` can end early (a fence longer than its longest backtick run)."""
    text = " ".join(text.splitlines())
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _md_text(text: str) -> str:
    """Text shown as itself: Markdown's punctuation escaped, line breaks as spaces."""
    return re.sub(r"([\\`*_{}\[\]()#+\-.!|<>~&])", r"\\\1", " ".join(str(text).splitlines()))


def _cell(code: str) -> str:
    # GFM splits table cells at `|`, even inside code spans, unless it is escaped (text from _md_text already is)
    return code.replace("|", "\\|")


def _fenced(text: str, language: str = "text") -> str:
    """A Markdown code block that the text cannot close early (its fence is longer than any run of backticks in
    it), so nothing in an AMML file is rendered as Markdown. It names a language: Airflow's UI shows a block
    without one as inline code."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{language}\n{text}\n{fence}"


def _error_list(errors: list[str]) -> str:
    """Each error as a list item: its first line (file:line:col: kind: message), then the source line with the
    caret and the hint in a code block under it."""
    items = []
    for error in errors:
        first, _, rest = error.partition("\n")
        item = f"- {_code(first)}"
        if rest.strip():
            item += "\n\n" + "\n".join(f"  {line}" if line else "" for line in _fenced(rest).splitlines())
        items.append(item)
    return "\n".join(items)


def _cap(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}\n… ({len(text) - limit} more characters)"


class _FailWithError(BaseOperator):
    """The task of a placeholder DAG: fails with the compile error, so the problem shows in the task log and
    the DAG's run is failed (Home counts it among the failed DAGs)."""

    def __init__(self, *, message: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.message = message

    def execute(self, context: Any) -> None:
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException(self.message)  # no retries: the file is not going to fix itself


def _error_dag_or_none(relative: str, message: str, errors: list[str] | None = None) -> DAG | None:
    try:
        return error_dag(relative, message, errors)
    except Exception:  # never raise: losing one placeholder is better than losing every DAG
        log.exception("AMML: building the error DAG of %s failed", relative)
        return None


def error_dag(relative: str, message: str, errors: list[str] | None = None) -> DAG:
    """The placeholder DAG of the file at `relative` (to the dags folder) that does not load; `errors` are the
    message's errors one by one, when there are several."""
    message = _cap(_printable(message), MAX_DOC_CHARS)
    first = message.splitlines()[0] if message.strip() else "the file does not load"
    shown = [_printable(e) for e in errors] if errors else [message]
    listing = _error_list(shown)
    if len(listing) > MAX_DOC_CHARS:
        listing = _error_list([message])
    dag = DAG(
        dag_id=error_dag_id(relative),
        # one run, right away and not paused: its failure puts the file among the failed DAGs on Home
        schedule="@once",
        start_date=pendulum.instance(parse_date(DEFAULT_START)),
        catchup=False,
        is_paused_upon_creation=False,
        max_active_runs=1,
        tags=["amml", ERROR_TAG],
        description=_cap(ERROR_PREFIX + first, MAX_DESCRIPTION_CHARS),
        doc_md=f"### AMML ERROR: {_code(_printable(relative))} does not load\n\n"
        "Its DAG is not made until the file is fixed; this placeholder stands in for it, and its single run "
        f"fails with the same message.\n\n#### {'Errors' if len(shown) > 1 else 'Error'}\n\n{listing}\n\n"
        "Fix the file (`amml lint` shows every error): its DAG comes back on the next parse, "
        "and this placeholder goes away.",
        default_args={"owner": "amml", "retries": 0},
        auto_register=False,
    )
    with dag:
        _FailWithError(task_id="compile_error", message=message)
    return dag
