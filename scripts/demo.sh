#!/usr/bin/env bash
# Sets up .venv and runs the whole job on the bundled demo corpus (KJV chapters plus planted duplicates)
# in local mode. Output: out/demo/ (data/, removed/, quarantine/, neardup/, exact/, report.json, report.html).
# Extra arguments go to the job.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export SPARK_LOCAL_IP="${SPARK_LOCAL_IP:-127.0.0.1}"
exec .venv/bin/dedup-spark run --config conf/default.yaml \
  --input data/demo/corpus.jsonl.gz --set input.id_column=id --output out/demo --overwrite "$@"
