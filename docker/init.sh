#!/usr/bin/env bash
# airflow-init (docker-compose.yaml): runs once, as root, before any other Airflow service starts.
set -euo pipefail

if [[ -z "${AIRFLOW_UID:-}" ]]; then
  echo "WARNING: AIRFLOW_UID is not set; on Linux run 'echo AIRFLOW_UID=\$(id -u) > .env' first," \
       "or files in ./logs, ./dags and ./config end up owned by uid 50000" >&2
fi
uid="${AIRFLOW_UID:-50000}"
folders=(/opt/airflow/logs /opt/airflow/dags /opt/airflow/config /opt/airflow/amml)
mkdir -p "${folders[@]}"

# The image's entrypoint waits for the database, runs `airflow db migrate` (_AIRFLOW_DB_MIGRATE) and creates
# the admin user (_AIRFLOW_WWW_USER_*), then the command. `config list` writes $AIRFLOW_CONFIG when it is
# missing, with the random [api_auth] jwt_secret every container then shares (both steps are idempotent, as in
# the official compose's init).
/entrypoint airflow version
/entrypoint airflow config list >/dev/null
if [[ ! -s "${AIRFLOW_CONFIG}" ]]; then
  echo "airflow-init: ${AIRFLOW_CONFIG} was not written; the other services would not share a jwt_secret" >&2
  exit 1
fi

# the services run as ${uid}:0; the config file is private to its owner (Airflow writes it mode 0600)
chown -R "${uid}:0" "${folders[@]}"
