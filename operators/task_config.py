"""The run configuration of an Airflow task: the one place a :class:`~airflow_amml.run_config.RunConfig` is made
from a task's context (the other is ``RunConfig.from_environment``, for the command line and everything else).

It starts from the environment, so a worker's deployment settings (``AMML_HOME``, ``AMML_OUTPUT_ROOT``, …) still
apply, and adds what only the task knows: its data interval, its lineage (dag, run and task ids), Airflow's
dags folder, the model folder beside the .amml file, and its connections resolved to URLs.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from airflow_amml.run_config import Lineage, RunConfig
from compiler.dag_block import max_processes

from .connections import connection_overrides, database_url


def task_run_config(
    task: Any, context: Mapping[str, Any], environ: Mapping[str, str] = os.environ, *, item: Any = None
) -> RunConfig:
    """The configuration an ``AmmlPipelineOperator`` (``task``) runs its pipeline with, in ``context``: the
    environment's, the task's identity and connections, ``item`` (``(variable, value)`` of a fanned-out
    pipeline's task instance), and the smaller of the task's ``max_processes`` and ``AMML_MAX_PROCESSES``."""
    from airflow.sdk import conf

    start, end = context.get("data_interval_start"), context.get("data_interval_end")
    overrides: dict[str, Any] = {
        "model_paths": (Path(task.amml_file).parent / "models",),
        "lineage": Lineage(
            dag_id=task.dag_id,
            run_id=context.get("run_id"),
            task_id=task.task_id,
            data_interval_start=start.isoformat() if start else None,
            data_interval_end=end.isoformat() if end else None,
        ),
        # File sinks never write into the dags folder (a file there is code Airflow runs), wherever it is
        "dags_folder": conf.get("core", "dags_folder"),
        **connection_overrides(environ, registry_conn_id=task.registry_conn_id, artifact_conn_id=task.artifact_conn_id),
    }
    # A run without a logical date (asset-triggered, REST with null) has no interval: sources read all.
    if start is not None and end is not None and start < end:
        overrides["data_interval"] = (start.isoformat(), end.isoformat())
    if task.db_conn_id:
        overrides["db_url"] = database_url(task.db_conn_id)
    if item is not None:
        overrides["item"] = item
    config = RunConfig.from_environment(environ, **overrides)
    # the one rule for two caps (the task's, the worker's AMML_MAX_PROCESSES): the smaller wins
    cap = max_processes({"max_processes": getattr(task, "max_processes", None)}, config.max_processes)
    return dataclasses.replace(config, max_processes=cap)
