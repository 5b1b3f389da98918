#!/usr/bin/env bash
# Creates .venv-spark35: dedup-spark with the newest pyspark 3.5 (Databricks LTS 14.3 and 15.4 run Spark 3.5) and
# every other library at the version constraints.txt pins, for the `spark35` tests (.ci/run). pyspark 3.5 comes
# as a source package: the first install takes about 2 minutes. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
PYSPARK35=3.5.9
PYTHON="${PYTHON:-python3}"
venv=.venv-spark35
# constraints.txt without pyspark and delta-spark (its 4.x releases need pyspark 4; the JVM Delta jars are not
# used here either way: Delta is written by delta-rs), plus pyspark 3.5.
constraints=$(mktemp)
trap 'rm -f "$constraints"' EXIT
grep -v -E '^(pyspark|delta-spark)==' constraints.txt > "$constraints"
echo "pyspark==$PYSPARK35" >> "$constraints"
stamp=$(cat pyproject.toml "$constraints" | sha256sum | cut -c1-16)
[ -x "$venv/bin/python" ] || "$PYTHON" -m venv "$venv"
if [ "$(cat "$venv/.dedup-spark-installed" 2>/dev/null)" != "$stamp" ]; then
  echo "spark35: installing dedup-spark with pyspark $PYSPARK35 into $venv" >&2
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -c "$constraints" \
    -e ".[spark]" pytest zstandard psutil
  echo "$stamp" > "$venv/.dedup-spark-installed"
fi
