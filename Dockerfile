# The Airflow image with this project installed (docker-compose.yaml builds it).
FROM apache/airflow:3.3.2-python3.11

USER root
# the HDFS provider builds gssapi (Kerberos headers); gcc for any sdist
RUN apt-get update \
    && apt-get install -y --no-install-recommends libkrb5-dev gcc \
    && rm -rf /var/lib/apt/lists/*
USER airflow

COPY --chown=airflow:root . /opt/amml
RUN pip install --no-cache-dir "apache-airflow==3.3.2" -e /opt/amml
