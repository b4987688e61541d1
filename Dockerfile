# The Airflow image with this project installed (docker-compose.yaml builds it).
FROM apache/airflow:3.3.2-python3.11

USER root
# the HDFS provider builds gssapi (Kerberos headers); gcc for any sdist; graphviz draws the pipeline graph
RUN apt-get update \
    && apt-get install -y --no-install-recommends libkrb5-dev gcc graphviz \
    && rm -rf /var/lib/apt/lists/*
USER airflow

# A regular (non-editable) install, held to the versions Airflow 3.3.2 was released and tested with:
# the constraints file keeps pip from moving Airflow's own dependencies while it adds ours.
ARG AIRFLOW_CONSTRAINTS=https://raw.githubusercontent.com/apache/airflow/constraints-3.3.2/constraints-3.11.txt
COPY --chown=airflow:root . /opt/amml
RUN pip install --no-cache-dir --constraint "${AIRFLOW_CONSTRAINTS}" "apache-airflow==3.3.2" /opt/amml
