#!/usr/bin/env bash
# The spark35 suite (.ci/run): the end-to-end, NearDup, ExactSubstr, contamination, resume and annotate tests on
# pyspark 3.5 (.venv-spark35, made by scripts/spark35_venv.sh), and the demo's outputs compared with Spark 4's (the
# main .venv, made by scripts/setup.sh). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/spark35_venv.sh
export SPARK_LOCAL_IP="${SPARK_LOCAL_IP:-127.0.0.1}"
exec .venv-spark35/bin/python -m pytest -p no:cacheprovider -m "spark35 or not (slow or cluster or connect)" \
  tests/test_spark35.py tests/test_cli_e2e.py tests/neardup tests/exactsubstr tests/test_contamination.py \
  tests/test_resume.py tests/test_annotate.py "$@"
