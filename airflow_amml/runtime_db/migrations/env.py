"""Alembic environment of the runtime database: migrations run on the connection `runtime_db.migrate` hands
over (no alembic.ini, no logging.config.fileConfig: that would reset the logging of the migrating process)."""

from alembic import context

from airflow_amml.runtime_db import VERSION_TABLE
from airflow_amml.tables import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table=VERSION_TABLE,  # its own: the registry's history may live in the same database
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
