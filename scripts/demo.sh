#!/usr/bin/env bash
# `make demo`: the paper's ETT workflow on embedded defaults (SQLite registry, local artifact folder in
# $AMML_HOME, default ~/.local/share/amml) — no Airflow services, PostgreSQL or HDFS needed.
#   1. lint the shipped AMML files and model definitions
#   2. train the paper's model (dags/ett_train.amml; DEMO_EPOCHS epochs, default 5 — the paper used 20)
#   3. predict a week of oil temperature with the registered model and its stored scaler statistics
set -euo pipefail
cd "$(dirname "$0")/.."
AMML=${AMML_VENV:-.venv}/bin/amml
EPOCHS=${DEMO_EPOCHS:-5}

# ETTh1 comes with the package (airflow_amml/data/ett, CC BY-ND 4.0): the demo runs offline.
# $AMML_ETT_PATH, when set, names another copy.

echo "== 1. amml lint dags/"
"$AMML" lint dags

echo
echo "== 2. training: $(grep -v '^#' dags/ett_train.amml | grep 'train_lstm' | sed 's/^ *//')  (epochs=$EPOCHS)"
"$AMML" run dags/ett_train.amml --param "epochs=$EPOCHS" 2> >(grep -E "registered|ERROR|failed" >&2)

echo
echo "== 3. prediction for 2017-10-24 .. 2017-10-31 with the newest model (scaler statistics from the registry)"
cat > /tmp/amml-demo-predict.amml <<'AMML'
source id="ett", start="2017-10-24", end="2017-10-31"
    | minmax_scaler model="ett" | lstm model="ett" | minmax_inverse model="ett"
    | rename prediction="OT_next_hour_forecast"
    | select cols=["date", "OT", "OT_next_hour_forecast"]
    | print limit=10
AMML
"$AMML" run /tmp/amml-demo-predict.amml 2> >(grep -E "ERROR|failed" >&2)

echo
echo "== the registry: amml model list"
"$AMML" model list
