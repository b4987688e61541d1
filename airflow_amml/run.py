"""Run a compiled program: the one path from a program to its pipelines' results, for `amml run` and the
Airflow operator alike (each compiles the file and builds the :class:`RunConfig` its own way; what follows is
the same).

Here, and only here, the program's own configuration is merged in: the dag block's parameter defaults under
the run's parameters, the dag block's ``batch_rows``/``flush_delay`` where the configuration sets none, and
the program's source hash into the lineage a trained model records.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from airflow_amml.run_config import RunConfig
from airflow_amml.runtime.executor import RunResult, run_pipeline
from compiler.bytecode import Program
from compiler.dag_block import runtime_settings


def run_program(
    program: Program,
    *,
    pipelines: Sequence[str] | None = None,
    params: Mapping[str, Any] | None = None,
    config: RunConfig,
    mode: str = "multiprocess",
    filename: str = "<pipeline>",
) -> list[RunResult]:
    """Run the named pipelines of ``program`` (all of them, in file order, by default) one after the other.

    :param params: the run's parameters (trigger form, ``--param``), over the dag block's defaults
    :param config: where the run reads and writes; the dag block fills only what it leaves unset
    :param filename: the file errors name
    """
    run_params = {**(program.dag or {}).get("params", {}), **(params or {})}
    config = program_config(program, config)
    chosen = [program.pipeline(name) for name in pipelines] if pipelines is not None else list(program.pipelines)
    return [run_pipeline(p, run_params=run_params, config=config, mode=mode, filename=filename) for p in chosen]


def program_config(program: Program, config: RunConfig) -> RunConfig:
    """``config`` with the program's batching (where ``config`` has none) and source hash."""
    unset = {name: value for name, value in runtime_settings(program.dag).items() if getattr(config, name) is None}
    lineage = dataclasses.replace(config.lineage, source_hash=program.source_hash)
    return dataclasses.replace(config, **unset, lineage=lineage)
