# The airflow dag loader for AMML: every .amml file in this folder becomes a DAG (see operators/dag_builder.py).
# Broken files become `amml_error__<file>` DAGs that show the error; the other DAGs are not affected.
from pathlib import Path

from operators.dag_builder import load_dags

load_dags(globals(), Path(__file__).parent)
