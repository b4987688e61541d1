"""The registry's pages and JSON API (FastAPI, no Airflow imports: `airflow_amml/plugin.py` wires in Airflow's
login and permission checks). `app.create_app` builds the app from injected dependencies."""
