"""`AmmlPipelineOperator`: runs one compiled AMML pipeline inside an Airflow task.

Thin by design: it compiles the file, turns the task's context (params, data interval, run identity, connection
ids) into a `RunConfig` (`operators/task_config.py`) and calls `airflow_amml.run.run_program`, as `amml run`
does; the executor does the work in one process per component. The per-component counters are logged and
returned (XCom).
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperator


class AmmlPipelineOperator(BaseOperator):
    """Run pipeline `pipeline` of the AMML file `amml_file`.

    :param amml_file: path of the .amml file (compiled at run time, from the content-hash cache)
    :param pipeline: name of the pipeline (`main` for statements outside a pipeline block)
    :param run_params: run parameters overriding the DAG params (`params.NAME` in the pipeline); templated
    :param registry_conn_id: Airflow connection of the model registry database (postgres); the dag block's
        `registry_conn` (default: ``AMML_REGISTRY_URL``, else ``AMML_REGISTRY_CONN_ID``)
    :param artifact_conn_id: Airflow connection of the model artifact store (webhdfs); the dag block's
        `artifact_conn` (default: ``AMML_ARTIFACTS``, else ``AMML_ARTIFACT_CONN_ID``)
    :param db_conn_id: Airflow connection of the database for sinks, alerts and snapshots
    :param mode: "multiprocess" (one process per component) or "single"
    :param on_alert: Airflow notifiers (``BaseNotifier``: Slack, SMTP, …) called once per alert the run
        recorded, at the end of the task (also when it fails), with ``alert`` in their template context
        (``{{ alert.message }}``); the alert rows are committed first, so a failing notifier loses none
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
        on_alert: Any = (),
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
        self.on_alert = list(on_alert) if isinstance(on_alert, list | tuple) else [on_alert] if on_alert else []

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow_amml.run import run_program
        from compiler import compile_file

        from .task_config import task_run_config

        program = compile_file(self.amml_file)
        program.pipeline(self.pipeline)  # an unknown pipeline fails before any connection is looked up
        config = task_run_config(self, context)
        try:
            [result] = run_program(
                program,
                pipelines=[self.pipeline],
                params={**dict(context.get("params") or {}), **self.run_params},
                config=config,
                mode=self.mode,
                filename=self.amml_file,
            )
        finally:
            if self.on_alert:
                self._notify(config, context)
        self.log.info("%s", result.summary())
        return {
            "seconds": round(result.seconds, 3),
            "components": {
                f"{s.position}:{s.name}": {"records_in": c.records_in, "records_out": c.records_out}
                for s in result.stages
                if (c := result.counters.get(s.id)) is not None
            },
        }

    def _notify(self, config: Any, context: Any) -> None:
        """Hand each alert this run recorded to every ``on_alert`` notifier (the runtime imports no Airflow:
        notifying is the operator's job)."""
        from airflow_amml.components.events import alerts_of_run
        from airflow_amml.components.notifications import notify_recorded

        alerts = alerts_of_run(config)
        errors = notify_recorded(alerts, self.on_alert, context)
        self.log.info("notified %d notifier(s) of %d alert(s)", len(self.on_alert), len(alerts))
        for error in errors:
            self.log.warning("notifier failed: %s", error)
