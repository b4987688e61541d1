"""Airflow operators for AMML (thin adapters: the work happens in `airflow_amml`)."""

from .pipeline import AmmlPipelineOperator

__all__ = ["AmmlPipelineOperator"]
