"""The streaming executor: one process per component, columnar micro-batches, events (imports no Airflow)."""
