# The Airflow image with this project installed (docker-compose.yaml builds it; a KubernetesExecutor pod runs
# it too: see the README's "Kubernetes").
FROM apache/airflow:3.3.2-python3.11

USER root
# the HDFS provider builds gssapi (Kerberos headers); gcc for any sdist; graphviz draws the pipeline graph
RUN apt-get update \
    && apt-get install -y --no-install-recommends libkrb5-dev gcc graphviz \
    && rm -rf /var/lib/apt/lists/*
USER airflow

# A regular (non-editable) install, held to the versions Airflow 3.3.2 was released and tested with:
# the constraints file keeps pip from moving Airflow's own dependencies while it adds ours. The extras are what
# docker-compose.yaml runs on, named so that the dependency is written down (the base image ships both today):
# `celery` (CeleryExecutor, workers, flower) and `fab` (the auth manager; airflow-init creates its admin user).
ARG AIRFLOW_CONSTRAINTS=https://raw.githubusercontent.com/apache/airflow/constraints-3.3.2/constraints-3.11.txt
COPY --chown=airflow:root . /opt/amml
RUN pip install --no-cache-dir --constraint "${AIRFLOW_CONSTRAINTS}" "apache-airflow[celery,fab]==3.3.2" /opt/amml
