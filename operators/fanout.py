"""`AmmlItemsOperator`: the small task before a fanned-out pipeline whose items are known only when the DAG runs.

``pipeline detect for series in catalog("nab/*")`` and ``... in params.series`` become two tasks::

    detect_items  ──(return_value: ["nab/…/a", "nab/…/b", …])──▶  detect  (mapped: one instance per item)

``... in find.series`` (another pipeline's `items` sink) does the same after ``find``: Airflow maps only over a
task's ``return_value``, and ``find`` returns its counters, so this task hands on ``find``'s XCom
``amml_items``.

This task resolves the items (the run's parameter, the catalog ids matching the glob, through
``airflow_amml.components.catalog.matching_ids`` on the task's RunConfig: the catalog is I/O, so never at parse
time, or the upstream pipeline's list) and returns them; the mapped task expands over its ``return_value``.
An upstream `items` sink that collected nothing hands on an empty list, and Airflow skips the mapped task (a
quiet day is not a failure). It fails, saying why, on an empty run parameter or glob, a list that is not one
of strings and numbers, or one longer than Airflow's ``[core] max_map_length`` (which would otherwise fail the
expansion with a less helpful message).
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperator


class AmmlItemsOperator(BaseOperator):
    """Resolve the items of fanned-out pipeline ``pipeline`` of ``amml_file``.

    :param kind: "param" (``value`` is the run parameter's name), "catalog" (``value`` is the fnmatch glob) or
        "pipeline" (``value`` is the upstream pipeline's task id, whose XCom ``amml_items`` holds the list)
    :param value: see ``kind``
    :param registry_conn_id: passed on to the task's RunConfig, as for the pipeline's own task
    """

    ui_color = "#f3e5f5"

    def __init__(
        self,
        *,
        amml_file: str,
        pipeline: str,
        kind: str,
        value: str,
        registry_conn_id: str | None = None,
        artifact_conn_id: str | None = None,
        db_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if kind not in ("param", "catalog", "pipeline"):
            raise ValueError(f"kind must be 'param', 'catalog' or 'pipeline', got {kind!r}")
        self.amml_file = amml_file
        self.pipeline = pipeline
        self.kind = kind
        self.value = value
        self.registry_conn_id = registry_conn_id
        self.artifact_conn_id = artifact_conn_id
        self.db_conn_id = db_conn_id

    def execute(self, context: Any) -> list[Any]:
        from airflow.sdk import conf

        from airflow_amml.run import items_problem

        resolve = {"param": self._params_items, "catalog": self._catalog_items, "pipeline": self._upstream_items}
        items = resolve[self.kind](context)
        if self.kind == "pipeline" and items == []:
            # a quiet day upstream: nothing to fan out over. Airflow skips a task mapped over an empty list
            self.log.info("pipeline %s: %s collected no items; its instances are skipped", self.pipeline, self.value)
            return []
        limit = conf.getint("core", "max_map_length", fallback=1024)
        problem = items_problem(items, self._what(), limit, f"more than Airflow's [core] max_map_length of {limit}: "
                                "select fewer, or raise it (AIRFLOW__CORE__MAX_MAP_LENGTH)")
        if problem is not None:
            from airflow.sdk.exceptions import AirflowFailException

            raise AirflowFailException(problem)
        self.log.info("pipeline %s runs for %d item(s) of %s", self.pipeline, len(items), self._what())
        return items

    def _what(self) -> str:
        if self.kind == "pipeline":
            return f"the items of pipeline {self.value}"
        return f"params.{self.value}" if self.kind == "param" else f"catalog({self.value!r})"

    def _upstream_items(self, context: Any) -> Any:
        from .pipeline import ITEMS_XCOM_KEY

        return context["ti"].xcom_pull(task_ids=self.value, key=ITEMS_XCOM_KEY)

    def _params_items(self, context: Any) -> Any:
        params = dict(context.get("params") or {})
        return params.get(self.value)

    def _catalog_items(self, context: Any) -> list[str]:
        from airflow_amml.components.catalog import matching_ids

        from .task_config import task_run_config

        config = task_run_config(self, context)
        items = matching_ids(config, self.value)
        if not items:
            from airflow.sdk.exceptions import AirflowFailException

            known = len(matching_ids(config, "*"))
            raise AirflowFailException(
                f"pipeline {self.pipeline}: catalog({self.value!r}) matches none of the catalog's {known} source "
                "id(s); `*` matches any text and `?` one character (ids look like nab/realKnownCause/nyc_taxi)"
            )
        return items
