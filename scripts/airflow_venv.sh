#!/usr/bin/env bash
# Creates .venv-airflow: Apache Airflow 3 with the Apache Spark and Databricks providers, pinned by
# constraints.txt and examples/airflow/constraints-airflow.txt, so that tests/test_airflow.py loads the example
# DAGs of examples/airflow/ in a real Airflow. A venv of its own because Airflow pins many libraries of its own.
# Safe to run again: it reinstalls only when the pins changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
VENV="${AIRFLOW_VENV:-.venv-airflow}"  # another place: AIRFLOW_VENV=/path (the tests then need DEDUP_SPARK_AIRFLOW_PYTHON)
stamp=$(cat constraints.txt examples/airflow/constraints-airflow.txt | sha256sum | cut -c1-16)
if [ ! -x "$VENV/bin/python" ]; then
  echo "airflow_venv: creating $VENV (first run downloads about 150 packages, 0.7 GB: a few minutes)" >&2
  "$PYTHON" -m venv "$VENV"
fi
if [ "$(cat "$VENV/.installed" 2>/dev/null)" != "$stamp" ]; then
  echo "airflow_venv: installing Apache Airflow and its providers into $VENV" >&2
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check \
    -c constraints.txt -c examples/airflow/constraints-airflow.txt \
    apache-airflow apache-airflow-providers-apache-spark apache-airflow-providers-databricks
  "$VENV/bin/python" -c "import airflow, airflow.providers.apache.spark, airflow.providers.databricks"
  echo "$stamp" > "$VENV/.installed"
fi
