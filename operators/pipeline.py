"""`AmmlPipelineOperator`: runs one compiled AMML pipeline inside an Airflow task.

Thin by design: it turns the task's context (params, data interval, run identity, connection ids) into the
runtime's settings and calls `airflow_amml.runtime.executor.run_pipeline`, which does the work in one
process per component. The per-component counters are logged and returned (XCom).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from airflow.sdk import BaseOperator


class AmmlPipelineOperator(BaseOperator):
    """Run pipeline `pipeline` of the AMML file `amml_file`.

    :param amml_file: path of the .amml file (compiled at run time, from the content-hash cache)
    :param pipeline: name of the pipeline (`main` for statements outside a pipeline block)
    :param run_params: run parameters overriding the DAG params (`params.NAME` in the pipeline); templated
    :param registry_conn_id: Airflow connection of the model registry database (postgres)
    :param artifact_conn_id: Airflow connection of the model artifact store (webhdfs)
    :param db_conn_id: Airflow connection of the database for sinks, alerts and snapshots
    :param mode: "multiprocess" (one process per component) or "single"
    """

    template_fields = ("amml_file", "pipeline", "run_params")
    ui_color = "#e3f2fd"

    def __init__(
        self,
        *,
        amml_file: str,
        pipeline: str = "main",
        run_params: dict[str, Any] | None = None,
        registry_conn_id: str | None = None,
        artifact_conn_id: str | None = None,
        db_conn_id: str | None = None,
        mode: str = "multiprocess",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.amml_file = amml_file
        self.pipeline = pipeline
        self.run_params = run_params or {}
        self.registry_conn_id = registry_conn_id
        self.artifact_conn_id = artifact_conn_id
        self.db_conn_id = db_conn_id
        self.mode = mode

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow_amml.runtime.executor import run_pipeline
        from compiler import compile_file
        from compiler.dag_block import runtime_settings

        program = compile_file(self.amml_file)
        pipeline = program.pipeline(self.pipeline)
        params = {**(program.dag or {}).get("params", {}), **dict(context.get("params") or {}), **self.run_params}
        result = run_pipeline(
            pipeline,
            run_params=params,
            settings={**self._settings(context, program.source_hash), **runtime_settings(program.dag)},
            mode=self.mode,
            filename=self.amml_file,
        )
        self.log.info("%s", result.summary())
        return {
            "seconds": round(result.seconds, 3),
            "components": {
                f"{s.position}:{s.name}": {"records_in": c.records_in, "records_out": c.records_out}
                for s in result.stages
                if (c := result.counters.get(s.id)) is not None
            },
        }

    def _settings(self, context: Any, source_hash: str) -> dict[str, Any]:
        start, end = context.get("data_interval_start"), context.get("data_interval_end")
        settings: dict[str, Any] = {
            "model_paths": [str(Path(self.amml_file).parent / "models")],
            "lineage": {
                "dag_id": self.dag_id,
                "run_id": context.get("run_id"),
                "task_id": self.task_id,
                "data_interval_start": start.isoformat() if start else None,
                "data_interval_end": end.isoformat() if end else None,
                "source_hash": source_hash,
            },
        }
        # File sinks never write into the dags folder (a file there is code Airflow runs), wherever it is
        settings["dags_folder"] = _dags_folder()
        # A run without a logical date (asset-triggered, REST with null) has no interval: sources read all.
        if start is not None and end is not None and start < end:
            settings["data_interval"] = (start.isoformat(), end.isoformat())
        if self.registry_conn_id:
            settings["registry_conn_id"] = self.registry_conn_id
        if self.artifact_conn_id:
            settings["artifact_conn_id"] = self.artifact_conn_id
        if self.db_conn_id:
            from airflow.sdk import BaseHook

            settings["db_url"] = BaseHook.get_connection(self.db_conn_id).get_uri()
        return settings


def _dags_folder() -> str:
    from airflow.sdk import conf

    return conf.get("core", "dags_folder")
