#!/usr/bin/env bash
# Checks Java and Python, creates .venv with the pinned versions (constraints.txt) and installs dedup-spark.
# Safe to run again: it reinstalls only when pyproject.toml or constraints.txt changed.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v java >/dev/null 2>&1; then
  echo "error: Java 17 or newer is required (Spark runs on the JVM) and 'java' is not on PATH." >&2
  echo "  Debian/Ubuntu: sudo apt-get install -y openjdk-17-jre-headless   macOS: brew install openjdk@17" >&2
  exit 2
fi
java_major=$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1)
if [ -z "$java_major" ] || [ "$java_major" -lt 17 ]; then
  echo "error: Java 17 or newer is required, found: $(java -version 2>&1 | head -1)" >&2
  exit 2
fi

PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
  echo "error: Python 3.10 or newer is required; set PYTHON=/path/to/python3.x (found: $("$PYTHON" --version 2>&1))" >&2
  exit 2
fi

stamp=$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv (first run downloads pyspark, about 1-2 minutes)" >&2
  "$PYTHON" -m venv .venv
fi
if [ "$(cat .venv/.dedup-spark-installed 2>/dev/null)" != "$stamp" ]; then
  echo "setup: installing dedup-spark and its pinned dependencies into .venv" >&2
  .venv/bin/python -m pip install -q --disable-pip-version-check -c constraints.txt -e ".[spark,connect,dev]"
  echo "$stamp" > .venv/.dedup-spark-installed
fi
