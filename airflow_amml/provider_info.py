"""Entry point `apache_airflow_provider`. Imports nothing: Airflow calls it while its own configuration loads."""

from __future__ import annotations

from typing import Any


def get_provider_info() -> dict[str, Any]:
    """Entry point `apache_airflow_provider`: lists this distribution among Airflow's providers."""
    return {
        "package-name": "airflow-amml",
        "name": "AMML",
        "description": "AMML workflow language: .amml pipelines as DAGs, streaming executor, model registry.",
        "plugins": [{"name": "amml", "plugin-class": "airflow_amml.plugin.AmmlPlugin"}],
        "connection-types": [],
        "versions": ["0.1.0"],
    }
