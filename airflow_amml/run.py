"""Run a compiled program: the one path from a program to its pipelines' results, for `amml run` and the
Airflow operator alike (each compiles the file and builds the :class:`RunConfig` its own way; what follows is
the same).

Here, and only here, the program's own configuration is merged in: the dag block's parameter defaults under
the run's parameters, the dag block's ``batch_rows``/``flush_delay`` where the configuration sets none, its
``max_processes`` (the smaller of it and the configuration's wins), and the program's source hash into the
lineage a trained model records.

A fanned-out pipeline (``pipeline p for series in ...``) runs for the item in ``config.item``: the run binds
the loop variable to it as a run parameter (the compiler turned ``source id=series`` into a read of it). A
pipeline ending with an ``items`` sink hands its list back through ``items_out``.

:func:`run_file` is `amml run`: every pipeline, a fanned-out one once per item (one after the other, or up to
``parallel`` at once, each item in its own process); an item that fails is reported with its item, and the
others still run.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from airflow_amml.run_config import RunConfig
from airflow_amml.runtime.errors import PipelineError
from airflow_amml.runtime.executor import RunResult, run_pipeline
from compiler.bytecode import PipelineCode, Program, in_dependency_order
from compiler.dag_block import max_processes, runtime_settings
from compiler.errors import AmmlError

log = logging.getLogger(__name__)


def run_program(
    program: Program,
    *,
    pipelines: Sequence[str] | None = None,
    params: Mapping[str, Any] | None = None,
    config: RunConfig,
    mode: str = "multiprocess",
    filename: str = "<pipeline>",
    items_out: dict[str, list[Any]] | None = None,
) -> list[RunResult]:
    """Run the named pipelines of ``program`` (all of them, in file order, by default) one after the other.

    :param params: the run's parameters (trigger form, ``--param``), over the dag block's defaults
    :param config: where the run reads and writes; the dag block fills only what it leaves unset. Its ``item``
        is the item of a fanned-out pipeline (required for one)
    :param filename: the file errors name
    :param items_out: filled with {pipeline: its `items` sink's list} for each pipeline that has one
    """
    from airflow_amml.components.items import ITEMS_FILE_PARAM
    from airflow_amml.components.scaler_stats import pin_models

    run_params = {**(program.dag or {}).get("params", {}), **(params or {})}
    run_params.pop(ITEMS_FILE_PARAM, None)  # only the run names that file
    config = program_config(program, config)
    chosen = [program.pipeline(name) for name in pipelines] if pipelines is not None else list(program.pipelines)
    results = []
    for pipeline in chosen:
        bound = {**run_params, **item_params(pipeline, config)}
        pinned = pin_models(pipeline, bound, config)  # one version of each model for the whole run
        if not _has_items_sink(pipeline):
            results.append(run_pipeline(pipeline, run_params=bound, config=pinned, mode=mode, filename=filename))
            continue
        result, items = _run_collecting(pipeline, bound, pinned, mode, filename)
        results.append(result)
        if items_out is not None:
            items_out[pipeline.name] = items
    return results


def item_params(pipeline: PipelineCode, config: RunConfig) -> dict[str, Any]:
    """{loop variable: item} for a fanned-out pipeline (nothing for another one); refuses to run one without
    an item, or with the item of another loop variable."""
    loop = pipeline.foreach
    if loop is None:
        return {}
    if config.item is None:
        raise PipelineError(
            f"pipeline `{pipeline.name}` runs for each `{loop.variable}` in {loop.text}, and this run names no item",
            hint="run the file with `amml run` (it runs every item), or give the run its item",
        )
    variable, value = config.item
    if variable != loop.variable:
        raise PipelineError(
            f"pipeline `{pipeline.name}` runs for each `{loop.variable}`; the run's item is for `{variable}`",
        )
    return {variable: value}


def program_config(program: Program, config: RunConfig) -> RunConfig:
    """``config`` with the program's batching (where ``config`` has none), process cap and source hash."""
    unset = {name: value for name, value in runtime_settings(program.dag).items() if getattr(config, name) is None}
    lineage = dataclasses.replace(config.lineage, source_hash=program.source_hash)
    cap = max_processes(program.dag, config.max_processes)
    return dataclasses.replace(config, **unset, lineage=lineage, max_processes=cap)


def _has_items_sink(pipeline: PipelineCode) -> bool:
    return any(ins.op == "WF_MAKE_COMPONENT" and ins.arg == "items" for ins in pipeline.code)


def _run_collecting(
    pipeline: PipelineCode, run_params: dict[str, Any], config: RunConfig, mode: str, filename: str
) -> tuple[RunResult, list[Any]]:
    """Run a pipeline with an `items` sink, and read back the list the sink wrote (a private temporary file)."""
    from airflow_amml.components.items import ITEMS_FILE_PARAM, read_items

    with tempfile.TemporaryDirectory(prefix="amml-items-") as folder:
        target = Path(folder) / "items.json"
        run_params = {**run_params, ITEMS_FILE_PARAM: os.fspath(target)}
        result = run_pipeline(pipeline, run_params=run_params, config=config, mode=mode, filename=filename)
        items = read_items(target)
    if items is None:  # the pipeline finished, so its sink did: only a sink that never ran writes nothing
        items = []
    return result, items


# ---- `amml run`: every item of a fanned-out pipeline ---------------------------------------------------------


def run_file(
    program: Program,
    *,
    pipelines: Sequence[str] | None = None,
    params: Mapping[str, Any] | None = None,
    config: RunConfig,
    mode: str = "multiprocess",
    filename: str = "<pipeline>",
    parallel: int = 1,
) -> list[str]:
    """Run ``program``'s pipelines in dependency order (:func:`in_dependency_order`: each after those it runs
    `after`, else in file order), a fanned-out one once per item; return the failed items
    (``detect: series=nab/…``). An error of a pipeline that is not fanned out stops the run (raised, as
    :func:`run_program` does); an item's error is printed with its item, and the other items still run."""
    chosen = [program.pipeline(name) for name in pipelines] if pipelines is not None else list(program.pipelines)
    run_params = {**(program.dag or {}).get("params", {}), **(params or {})}
    collected: dict[str, list[Any]] = {}
    failed: list[str] = []
    unfinished: set[str] = set()  # fanned-out pipelines with a failed item: what runs after them does not
    for pipeline in in_dependency_order(chosen):
        blocked = sorted(unfinished & set(pipeline.after))
        if blocked:
            print(f"pipeline {pipeline.name}: not run, it runs after {', '.join(blocked)}, which failed for some "
                  "item(s)", file=sys.stderr)
            unfinished.add(pipeline.name)
            continue
        if pipeline.foreach is None:
            run_program(program, pipelines=[pipeline.name], params=params, config=config, mode=mode,
                        filename=filename, items_out=collected)
            continue
        items = resolve_items(pipeline, run_params, config, collected)
        if not items:  # only an upstream `items` sink may hand on nothing (a quiet day): as Airflow, skip
            print(f"pipeline {pipeline.name}: skipped, {pipeline.foreach.text} holds no items", file=sys.stderr)
            continue
        problems = _run_items(program, pipeline, items, params, config, mode, filename, parallel)
        if problems:
            unfinished.add(pipeline.name)
        failed += problems
    return failed


def resolve_items(
    pipeline: PipelineCode, run_params: Mapping[str, Any], config: RunConfig, collected: Mapping[str, list[Any]]
) -> list[Any]:
    """The items of a fanned-out pipeline for `amml run`: the list, the run parameter's value, the catalog ids
    matching the glob (``matching_ids`` on ``config``), or what the upstream pipeline's `items` sink collected."""
    from compiler.bytecode import MAX_FANOUT_ITEMS

    loop = pipeline.foreach
    assert loop is not None
    what = f"pipeline {pipeline.name}: {loop.text}"
    if loop.kind == "list":
        items: Any = list(loop.value)
    elif loop.kind == "param":
        items = run_params.get(loop.value)
    elif loop.kind == "catalog":
        from airflow_amml.components.catalog import matching_ids

        items = matching_ids(config, loop.value)
        if not items:
            known = len(matching_ids(config, "*"))
            raise PipelineError(f"{what} matches none of the catalog's {known} source id(s)",
                                hint="`*` matches any text, `?` one character; ids look like "
                                "nab/realKnownCause/nyc_taxi")
    else:
        upstream = loop.value[0]
        if upstream not in collected:
            raise PipelineError(f"{what}: the items of pipeline `{upstream}` are known only once it has run",
                                hint=f"run the whole file (`amml run FILE` runs `{upstream}` first), or add "
                                f"`--pipeline {upstream}` before `--pipeline {pipeline.name}`")
        items = collected[upstream]
        if not items:
            return []  # the fan-out is skipped (Airflow skips a task mapped over an empty list too)
    problem = items_problem(items, what, MAX_FANOUT_ITEMS)
    if problem is not None:
        raise PipelineError(problem, hint=f"give {loop.text} a list of 1 to {MAX_FANOUT_ITEMS} strings or numbers")
    return items


def items_problem(items: Any, what: str, limit: int, limit_says: str | None = None) -> str | None:
    """Why ``items`` cannot be fanned out over (``what`` names where they came from; ``limit_says`` what the
    limit is, after "holds N items; "), or None."""
    from airflow_amml.components.items import MAX_ITEM_CHARS

    if not isinstance(items, list | tuple):
        return f"{what} must be a list of strings or numbers to fan out over; it is {type(items).__name__}"
    if not items:
        return f"{what} is an empty list: the fanned-out pipeline would run for nothing; give at least one item"
    if len(items) > limit:
        return f"{what} holds {len(items)} items; " + (limit_says or f"a fanned-out pipeline runs for at most {limit}")
    seen: set[str] = set()
    for item in items:
        if str(item) in seen:  # `1` and `"1"` too: one task instance, one set of rows and models per item text
            return f"{what} holds the item {item!r} twice: each item runs once, and its results are kept by item"
        seen.add(str(item))
        if isinstance(item, bool) or not isinstance(item, str | int | float):
            return f"{what} must hold only strings and numbers; it holds {type(item).__name__} {str(item)[:60]!r}"
        if isinstance(item, str) and len(item) > MAX_ITEM_CHARS:
            return f"{what} holds an item of {len(item)} characters; an item has at most {MAX_ITEM_CHARS}"
    return None


def _run_items(
    program: Program,
    pipeline: PipelineCode,
    items: list[Any],
    params: Mapping[str, Any] | None,
    config: RunConfig,
    mode: str,
    filename: str,
    parallel: int,
) -> list[str]:
    """Run ``pipeline`` once per item; the names (`detect: series=a`) of the items that failed."""
    variable = pipeline.foreach.variable
    jobs = [(program, pipeline.name, dict(params or {}), dataclasses.replace(config, item=(variable, item)), mode,
             filename) for item in items]
    log.info("pipeline %s: %d item(s), %d at a time", pipeline.name, len(items), min(parallel, len(items)))
    if parallel <= 1 or len(items) == 1:
        problems = [_run_one_item(*job) for job in jobs]
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # spawn: a fresh interpreter per worker, not a fork of this one (its signal handlers, open connections);
        # the workers ignore Ctrl-C: this process decides, and on a signal cancels what has not started
        pool = ProcessPoolExecutor(max_workers=min(parallel, len(items)),
                                   mp_context=multiprocessing.get_context("spawn"), initializer=_ignore_sigint)
        try:
            futures = [pool.submit(_run_one_item, *job) for job in jobs]
            problems = [_outcome(future) for future in futures]
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown()
    failed = []
    for item, problem in zip(items, problems):
        if problem is not None:
            name = f"{pipeline.name}: {variable}={item}"
            print(f"{name}: {problem}", end="\n\n", file=sys.stderr)
            failed.append(name)
    ok = len(items) - len(failed)
    summary = f"pipeline {pipeline.name}: {len(items)} item(s): {ok} ok, {len(failed)} failed"
    print(summary + (f" ({', '.join(failed)})" if failed else ""), file=sys.stderr)
    return failed


def _ignore_sigint() -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _outcome(future: Any) -> str | None:
    """An item's error as text (None: it succeeded), also when its worker process died under it."""
    from concurrent.futures.process import BrokenProcessPool

    try:
        return future.result()
    except BrokenProcessPool:
        return "the worker process running this item died (killed, or out of memory); the item did not finish"


def _run_one_item(
    program: Program, pipeline: str, params: dict[str, Any], config: RunConfig, mode: str, filename: str
) -> str | None:
    """One item's run (in this process or a worker); its error as text, None when it succeeded."""
    if not logging.getLogger().handlers:  # a spawned worker: log as `amml run` does
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    try:
        run_program(program, pipelines=[pipeline], params=params, config=config, mode=mode, filename=filename)
    except AmmlError as exc:  # PipelineError too: the component and line, said by the error itself
        return str(exc)
    except Exception as exc:  # a bug: the other items still run; the message says which item hit it
        return f"unexpected {type(exc).__name__}: {exc} (this is a bug)"
    return None
