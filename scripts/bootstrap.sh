#!/usr/bin/env bash
# Set up everything this project needs on a fresh Debian machine, idempotently:
#   1. system packages (only those missing): libkrb5-dev (the HDFS provider builds gssapi),
#      postgresql (throwaway test clusters), a JDK and Maven (the test HDFS MiniDFSCluster), graphviz
#      (the pipeline graph on a DAG's page), chromium and chromium-driver (the UI tests' real browser),
#      redis-server (the Celery broker of the tests' Airflow deployment);
#   2. a virtualenv in $AMML_VENV (default .venv) with the project installed in editable mode.
# Re-running is cheap: each step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${AMML_VENV:-.venv}
PYTHON=${PYTHON:-python3}

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v krb5-config >/dev/null 2>&1 || missing+=(libkrb5-dev)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || missing+=(postgresql)
command -v javac >/dev/null 2>&1 || missing+=(default-jdk-headless)
command -v mvn >/dev/null 2>&1 || missing+=(maven)
command -v dot >/dev/null 2>&1 || missing+=(graphviz)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
"$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
if [ ${#missing[@]} -gt 0 ]; then
  echo "bootstrap: installing system packages: ${missing[*]}"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# The stamp is keyed on the dependency declarations, so editing setup.cfg re-installs.
stamp="$VENV/.amml-installed-$(cat setup.cfg pyproject.toml | sha1sum | cut -c1-12)"
if [ ! -f "$stamp" ]; then
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip setuptools wheel
  echo "bootstrap: installing Python packages into $VENV (first time: several minutes)"
  "$VENV/bin/python" -m pip install -q -e '.[test]'
  rm -f "$VENV"/.amml-installed-*
  touch "$stamp"
fi

# The editable install leaves setuptools' build metadata (airflow_amml.egg-info) in the checkout; its real
# metadata is in the virtualenv. With the checkout on PYTHONPATH that folder is a second distribution of
# airflow-amml, and Airflow loads the plugin twice ("Plugin 'amml' already registered" import error).
rm -rf ./*.egg-info
