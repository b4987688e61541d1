"""`AmmlPipelineOperator`: runs one compiled AMML pipeline inside an Airflow task.

Thin by design: it compiles the file, turns the task's context (params, data interval, run identity, connection
ids) into a `RunConfig` (`operators/task_config.py`) and calls `airflow_amml.run.run_program`, as `amml run`
does; the executor does the work in one process per component and logs the end summary. Then the operator
does what only Airflow knows about:

* the model versions the task registered (found in the registry by the task's lineage) go to XCom
  (``amml_models``: ``["ett/3"]``), to the task log with their registry page, and to the "Registered model"
  extra link (`operators/links.py`). (Not to the task instance's note: Airflow 3.3's task SDK gives a running
  task no way to set one; the execution API only takes a note when it triggers a new DAG run.)
* a run with a data interval whose source read no records logs a warning naming the interval and the source,
  or fails (the dag block's ``on_empty = "fail"``).

The per-component counters and the registered versions are returned (XCom ``return_value``).

A fanned-out pipeline (``pipeline p for series in ...``) is one mapped task: each task instance gets its
``item`` (``.expand(item=...)``, see `operators/dag_factory.py`) and runs with ``RunConfig.item = (series,
item)``. A pipeline ending with an ``items`` sink pushes the sink's list to XCom ``amml_items``, which a
downstream fan-out expands over.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperator

from compiler.dag_block import DEFAULT_ON_EMPTY, ON_EMPTY

from .links import MODELS_XCOM_KEY, RegisteredModelLink, model_url

ITEMS_XCOM_KEY = "amml_items"  # the list an `items` sink collected, for `pipeline q for x in THIS.COLUMN`


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
    :param on_empty: "warn" (log a warning) or "fail" (fail the task) when the run has a data interval and a
        source read no records in it; the dag block's ``on_empty``
    :param item: the item of a fanned-out pipeline this task instance runs for (set by ``.expand(item=...)``;
        not templated: an item from a catalog or a trigger form is data, never a Jinja template)
    :param max_processes: the dag block's ``max_processes``; ``AMML_MAX_PROCESSES`` on the worker may lower it
    """

    template_fields = ("amml_file", "pipeline", "run_params")
    ui_color = "#e3f2fd"
    operator_extra_links = (RegisteredModelLink(),)

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
        on_empty: str = DEFAULT_ON_EMPTY,
        item: str | int | float | None = None,
        max_processes: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if on_empty not in ON_EMPTY:
            raise ValueError(f"on_empty must be one of {ON_EMPTY}, got {on_empty!r}")
        self.on_empty = on_empty
        self.amml_file = amml_file
        self.pipeline = pipeline
        self.run_params = run_params or {}
        self.registry_conn_id = registry_conn_id
        self.artifact_conn_id = artifact_conn_id
        self.db_conn_id = db_conn_id
        self.mode = mode
        self.on_alert = list(on_alert) if isinstance(on_alert, list | tuple) else [on_alert] if on_alert else []
        self.item = item
        self.max_processes = max_processes

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow_amml.run import run_program
        from compiler import compile_file

        from .task_config import task_run_config

        program = compile_file(self.amml_file)
        pipeline = program.pipeline(self.pipeline)  # an unknown pipeline fails before any connection is looked up
        config = task_run_config(self, context, item=self._item(pipeline))
        items: dict[str, list[Any]] = {}
        try:
            [result] = run_program(
                program,
                pipelines=[self.pipeline],
                params={**dict(context.get("params") or {}), **self.run_params},
                config=config,
                mode=self.mode,
                filename=self.amml_file,
                items_out=items,
            )
        finally:
            if self.on_alert:
                self._notify(config, context)
        # (the executor has logged the end summary)
        models = self._registered_models(result, config, context)
        self._check_empty_interval(result, config)
        if self.pipeline in items:
            self._push_items(items[self.pipeline], context)
        return {
            "seconds": round(result.seconds, 3),
            "components": {
                f"{s.position}:{s.name}": {"records_in": c.records_in, "records_out": c.records_out}
                for s in result.stages
                if (c := result.counters.get(s.id)) is not None
            },
            "models": models,
        }

    def _item(self, pipeline: Any) -> tuple[str, Any] | None:
        """``(loop variable, item)`` for a fanned-out pipeline's task instance, else None."""
        if pipeline.foreach is None:
            return None
        if self.item is None:
            from airflow.sdk.exceptions import AirflowFailException

            raise AirflowFailException(
                f"pipeline `{self.pipeline}` runs for each `{pipeline.foreach.variable}` in {pipeline.foreach.text}, "
                "but this task has no item: it must be expanded (`.expand(item=...)`), as the AMML loader does"
            )
        return (pipeline.foreach.variable, self.item)

    def _push_items(self, items: list[Any], context: Any) -> None:
        """The `items` sink's list, for the fan-out downstream (it expands over XCom ``amml_items``)."""
        from compiler.bytecode import MAX_FANOUT_ITEMS

        self.log.info("collected %d item(s) for the pipelines that fan out over %s", len(items), self.pipeline)
        if len(items) > MAX_FANOUT_ITEMS:  # the sink refuses more; keep XCom bounded whatever ran
            raise ValueError(f"{len(items)} items; at most {MAX_FANOUT_ITEMS}")
        ti = context.get("ti")
        if ti is not None:
            ti.xcom_push(key=ITEMS_XCOM_KEY, value=items)

    def _registered_models(self, result: Any, config: Any, context: Any) -> list[str]:
        """The versions this task registered (`ett/3`), oldest first: logged with their page and pushed to XCom
        for the extra link. The registry is asked only when a component of the pipeline can register a model
        (declares a `register` parameter, as `train_lstm` does): other pipelines need no registry at all."""
        lineage = config.lineage
        if not lineage.run_id or not any(s.spec.param("register") is not None for s in result.stages):
            return []
        from airflow_amml.registry import ModelRegistry

        versions = ModelRegistry.from_config(config).versions_by_lineage(
            lineage.dag_id, lineage.run_id, lineage.task_id
        )
        refs = [v.ref for v in versions]
        for ref in refs:
            # the task log's one line about it (the registry and train_lstm say it at DEBUG); the URL stands
            # alone: the log view makes a link of `(http://…)` that takes the ")" along
            self.log.info("registered model %s, its page: %s", ref, model_url(ref))
        ti = context.get("ti")
        if ti is not None:
            ti.xcom_push(key=MODELS_XCOM_KEY, value=refs)
        return refs

    def _check_empty_interval(self, result: Any, config: Any) -> None:
        """A run with a data interval (scheduled, backfilled) whose source read nothing: say so, and fail if the
        dag block asks to (`on_empty = "fail"`): a silent success with 0 rows hides a feed that stopped."""
        if not config.data_interval:
            return
        from compiler.component_spec import Kind

        start, end = config.data_interval
        empty = [
            s
            for s in result.stages
            if s.spec.kind is Kind.INGRESS and (c := result.counters.get(s.id)) is not None and c.records_out == 0
        ]
        for stage in empty:
            self.log.warning("no data in the interval %s – %s: %s read 0 records", start, end, _named(stage))
        if empty and self.on_empty == "fail":
            from airflow.sdk.exceptions import AirflowException

            names = ", ".join(_named(s) for s in empty)
            raise AirflowException(
                f"no data in the interval {start} – {end}: {names} read 0 records, and the dag block says "
                f'on_empty = "fail" (remove it, or set on_empty = "warn", to let such a run succeed)'
            )

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


def _named(stage: Any) -> str:
    """A source as the file writes it, and where: `source id="ett"` (line 7)."""
    from compiler.workflow import parameter_texts

    texts = parameter_texts(stage.callback) if stage.callback is not None else {}
    written = " ".join([stage.name, *(f"{name}={text}" for name, text in texts.items())])
    return f"`{written}` (line {stage.line})"
