#!/usr/bin/env bash
# Sets up .venv and runs the test suite. Extra arguments go to pytest (e.g. -m slow, -k ingest).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export SPARK_LOCAL_IP="${SPARK_LOCAL_IP:-127.0.0.1}"
exec .venv/bin/python -m pytest "$@"
