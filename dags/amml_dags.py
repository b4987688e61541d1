# The airflow dag loader for AMML: every .amml file in this folder becomes a DAG (see operators/dag_factory.py).
# A file that does not load becomes an `amml_error__<file>_<hash>` DAG (tag `amml-error`) that shows the error
# and fails its one run; the other DAGs are not affected. The loader never raises.
from pathlib import Path

from operators.dag_factory import load_dags

load_dags(globals(), Path(__file__).parent)
