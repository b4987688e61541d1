"""Alembic environment: migrations run on the connection the registry hands over (no alembic.ini).

No `logging.config.fileConfig` here: it would reset the logging of the process that migrates (an Airflow
task, the api-server, the CLI). `registry/database.py` keeps alembic's INFO lines quiet instead."""

from alembic import context

from airflow_amml.registry.schema import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    version_table="amml_alembic_version",  # the registry may share a database with Airflow's own tables
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
