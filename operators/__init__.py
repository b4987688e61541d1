"""The Airflow side of AMML — the only package (with `dags/` and the plugin) that imports Airflow:
`pipeline.py` (the operator), `dag_factory.py` (.amml files → DAGs), `task_config.py` (a task's context →
`RunConfig`), `connections.py` (Airflow connections → URLs), `links.py` (the "Registered model" extra link)
and `pipeline_page.py` (the DAG's Pipeline tab, mounted by the plugin). Thin adapters: the work happens in
`airflow_amml`."""

from .pipeline import AmmlPipelineOperator

__all__ = ["AmmlPipelineOperator"]
