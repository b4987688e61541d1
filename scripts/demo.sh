#!/usr/bin/env bash
# `make demo`: what a new user sees first, on embedded defaults (no Airflow services, database or HDFS).
# Today: check the shipped AMML files, then show the paper's training pipeline compiled to bytecode and
# its graph. (Running it end to end arrives with the streaming runtime; see the README's status.)
set -euo pipefail
cd "$(dirname "$0")/.."
AMML=${AMML_VENV:-.venv}/bin/amml

echo "== amml lint dags/ tests/fixtures/paper/"
"$AMML" lint dags tests/fixtures/paper
echo
echo "== the paper's Fig. 5 example, compiled: amml compile tests/fixtures/paper/fig5_filter.amml"
"$AMML" compile tests/fixtures/paper/fig5_filter.amml
echo "== the ETT training DAG's pipeline as a graph: amml compile dags/ett_train.amml --emit graph"
"$AMML" compile dags/ett_train.amml --emit graph
echo
echo "== a mistake, as a user sees it"
printf "source id=\"ett\" | minmax_scaler | train_lstm model=\"ett:0.1\", epoc=20 | print\n" > /tmp/amml-demo-typo.amml
"$AMML" lint /tmp/amml-demo-typo.amml || true
