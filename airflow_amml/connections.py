"""Airflow connections → registry database URL and artifact store (imported only when a connection id is
configured, so the CLI and the runtime work without Airflow).

    registry_conn_id  a `postgres` connection (PostgresHook; psycopg 3) — or any connection with a SQLAlchemy URI
    artifact_conn_id  a `webhdfs` connection (WebHDFSHook → hdfs client); extra `{"root": "/amml/models"}`

Connections come from wherever Airflow finds them: `AIRFLOW_CONN_<ID>` environment variables, the metadata
database, a secrets backend, or (inside a task) the API server.
"""

from __future__ import annotations

from .registry.errors import RegistryError
from .registry.hdfs_artifact_store import DEFAULT_ROOT, HdfsArtifactStore


def registry_url(conn_id: str) -> str:
    try:
        from airflow.sdk import BaseHook

        conn = BaseHook.get_connection(conn_id)
        if conn.conn_type == "postgres":
            from airflow.providers.postgres.hooks.postgres import PostgresHook

            return PostgresHook(postgres_conn_id=conn_id).get_uri()
        return conn.get_uri()
    except Exception as exc:  # AirflowNotFoundException and friends: say which id and why
        raise RegistryError(
            f"cannot use Airflow connection {conn_id!r} for the registry: {exc}",
            hint=f"define it, e.g. AIRFLOW_CONN_{conn_id.upper()}='postgresql://user:pw@host/db'",
        ) from exc


def artifact_store(conn_id: str) -> HdfsArtifactStore:
    try:
        from airflow.providers.apache.hdfs.hooks.webhdfs import WebHDFSHook

        hook = WebHDFSHook(webhdfs_conn_id=conn_id)
        root = hook.get_connection(conn_id).extra_dejson.get("root", DEFAULT_ROOT)
        return HdfsArtifactStore(hook.get_conn(), root)
    except Exception as exc:
        raise RegistryError(
            f"cannot use Airflow connection {conn_id!r} for model artifacts: {exc}",
            hint=f"define it, e.g. AIRFLOW_CONN_{conn_id.upper()}='webhdfs://hdfs@namenode:9870'",
        ) from exc
