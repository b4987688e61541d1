"""Airflow connections → the URLs a :class:`~airflow_amml.run_config.RunConfig` carries (the Airflow side of the
configuration: the runtime and the registry never see a connection id).

    registry_conn_id  a `postgres` connection (PostgresHook; psycopg 3) — or any connection with a SQLAlchemy URI
    artifact_conn_id  a `webhdfs` connection; extra `{"root": "/amml/models"}` → a `webhdfs://` artifact location

Connections come from wherever Airflow finds them: `AIRFLOW_CONN_<ID>` environment variables, the metadata
database, a secrets backend, or (inside a task) the API server. They are resolved once, where the run starts;
the component processes then open their own clients from the URLs (a client made here must not cross a fork).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlencode

from airflow_amml.registry.errors import RegistryError
from airflow_amml.registry.hdfs_artifact_store import DEFAULT_ROOT
from airflow_amml.run_config import CONNECTION_VARIABLES

# What WebHDFSHook reads from a connection that a location URL cannot say (Airflow appends `schema` to the
# namenode's URL: a gateway path before /webhdfs/v1; `cookies` and `headers` go on every request).
_UNCARRIED_EXTRAS = ("cookies", "headers")


def connection_overrides(
    environ: Mapping[str, str] = os.environ,
    *,
    registry_conn_id: str | None = None,
    artifact_conn_id: str | None = None,
) -> dict[str, str]:
    """``RunConfig`` overrides (``registry_url``, ``artifact_location``) for the connections in force: the given
    ids (the operator's, from the dag block), else ``AMML_REGISTRY_CONN_ID``/``AMML_ARTIFACT_CONN_ID`` where
    ``AMML_REGISTRY_URL``/``AMML_ARTIFACTS`` do not name the place themselves."""
    given = {"registry_url": registry_conn_id, "artifact_location": artifact_conn_id}
    url_variables = {"registry_url": "AMML_REGISTRY_URL", "artifact_location": "AMML_ARTIFACTS"}
    overrides = {}
    for variable, name in CONNECTION_VARIABLES.items():
        conn_id = given[name] or (None if environ.get(url_variables[name]) else environ.get(variable))
        if conn_id:
            overrides[name] = registry_url(conn_id) if name == "registry_url" else artifact_location(conn_id)
    return overrides


def registry_url(conn_id: str) -> str:
    """The SQLAlchemy URL of the registry database's connection."""
    return sqlalchemy_url(conn_id, "the registry")


def database_url(conn_id: str) -> str:
    """The SQLAlchemy URL of the connection for sinks, alerts and snapshots (the operator's ``db_conn_id``)."""
    return sqlalchemy_url(conn_id, "AMML's database")


def sqlalchemy_url(conn_id: str, purpose: str) -> str:
    """A connection's SQLAlchemy URL: a `postgres` one through PostgresHook (``postgresql+psycopg://``, which
    SQLAlchemy loads; the connection's own ``get_uri()`` says ``postgres://``, which it does not)."""
    try:
        from airflow.sdk import BaseHook

        conn = BaseHook.get_connection(conn_id)
        if conn.conn_type == "postgres":
            from airflow.providers.postgres.hooks.postgres import PostgresHook

            return PostgresHook(postgres_conn_id=conn_id).get_uri()
        return conn.get_uri()
    except Exception as exc:  # AirflowNotFoundException and friends: say which id and why
        raise RegistryError(
            f"cannot use Airflow connection {conn_id!r} for {purpose}: {exc}",
            hint=f"define it, e.g. AIRFLOW_CONN_{conn_id.upper()}='postgresql://user:pw@host/db'",
        ) from exc


def artifact_location(conn_id: str) -> str:
    """The `webhdfs://` location (``HdfsArtifactStore.from_uri``) of a `webhdfs` connection, carrying what
    WebHDFSHook would use: the namenodes (``host``, comma-separated), ``port``, ``login`` (the HDFS user) and
    ``password`` (basic authentication), the extras ``root``, ``use_ssl``/``verify``/``cert``/``key``, and
    Kerberos when Airflow's ``[core] security`` is ``kerberos``. A `schema`, `cookies` or `headers` cannot be
    carried: an error says so."""
    try:
        from airflow.sdk import BaseHook, conf

        conn = BaseHook.get_connection(conn_id)
        extra = conn.extra_dejson
        kerberos = conf.get("core", "security", fallback="") == "kerberos"
    except Exception as exc:
        raise RegistryError(
            f"cannot use Airflow connection {conn_id!r} for model artifacts: {exc}",
            hint=f"define it, e.g. AIRFLOW_CONN_{conn_id.upper()}='webhdfs://hdfs@namenode:9870'",
        ) from exc
    return webhdfs_location(
        conn_id,
        host=conn.host,
        port=conn.port,
        login=conn.login,
        password=conn.password,
        schema=conn.schema,
        extra=extra,
        kerberos=kerberos,
    )


def webhdfs_location(
    conn_id: str,
    *,
    host: str | None,
    port: int | None,
    login: str | None,
    password: str | None,
    schema: str | None,
    extra: Mapping[str, Any],
    kerberos: bool,
) -> str:
    """The location URL for a webhdfs connection's fields (see :func:`artifact_location`)."""
    hosts = [h.strip() for h in (host or "").split(",") if h.strip()]
    uncarried = [f"`{key}`" for key in _UNCARRIED_EXTRAS if extra.get(key)] + (["`schema`"] if schema else [])
    if not hosts or uncarried:
        what = "names no namenode (host)" if not hosts else f"sets {', '.join(uncarried)}, which AMML cannot carry"
        raise RegistryError(
            f"Airflow connection {conn_id!r} for model artifacts {what}",
            hint="give the connection a host (several namenodes: comma-separated) and leave schema, cookies and "
            "headers out, or set AMML_ARTIFACTS to a webhdfs://namenode:9870/amml/models location instead",
        )
    ssl = str(extra.get("use_ssl", False)).lower() in ("true", "1", "yes")
    userinfo = quote(login or "", safe="")
    if password is not None:
        userinfo += ":" + quote(password, safe="")
    netloc = (userinfo + "@" if userinfo else "") + ",".join(hosts) + (f":{port}" if port else "")
    options: dict[str, str] = {}
    if ssl:
        # WebHDFSHook's default: TLS without checking the certificate unless `verify` says otherwise
        verify = extra.get("verify", False)
        options["verify"] = str(verify).lower() if isinstance(verify, bool) else str(verify)
        for key in ("cert", "key"):
            if extra.get(key):
                options[key] = str(extra[key])
    if kerberos:
        options["auth"] = "kerberos"
    root = str(extra.get("root", DEFAULT_ROOT))
    query = f"?{urlencode(options)}" if options else ""
    return f"{'https' if ssl else 'webhdfs'}://{netloc}{quote(root)}{query}"

