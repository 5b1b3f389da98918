#!/usr/bin/env bash
# Packages dedup_spark for a cluster:  bash scripts/package.sh [OUT_DIR]   (default OUT_DIR: dist)
#   OUT_DIR/dedup_spark-<version>-py3-none-any.whl   the wheel, for `pip install` on the nodes or into a packed venv
#   OUT_DIR/dedup_spark-<version>.zip                 the same files, for `spark-submit --py-files`
# Why both: PySpark puts only .zip, .egg and .jar files from --py-files on the executors' sys.path
# (SparkContext.PACKAGE_EXTENSIONS); a .whl is copied to the executors but never importable there.
# Only dedup_spark is inside; its dependencies (pyproject.toml) must be on the executors' Python.
# Built from a clean copy of the sources, so a stale build/ folder can never put deleted modules in it.
# Uses .venv/bin/python when it exists (PYTHON=... overrides). Prints the two paths, the zip last.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${PYTHON:-}" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
out="${1:-dist}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"

src="$(mktemp -d)"
trap 'rm -rf "$src"' EXIT
cp -R pyproject.toml README.md dedup_spark "$src"/
for extra in LICENSE* setup.cfg setup.py MANIFEST.in; do
  if [ -e "$extra" ]; then cp -R "$extra" "$src"/; fi
done
find "$src" -name __pycache__ -prune -exec rm -rf {} +

rm -f "$out"/dedup_spark-*.whl "$out"/dedup_spark-*.zip  # one of each, so dist/dedup_spark-*.zip names one file
"$PYTHON" -m pip wheel --no-deps --disable-pip-version-check -q -w "$out" "$src" >&2
wheel=$(ls "$out"/dedup_spark-*.whl)
IFS=- read -r name version _ <<< "$(basename "$wheel")"
cp "$wheel" "$out/$name-$version.zip"  # a pure-Python wheel is a zip archive that zipimport reads as it is
echo "$wheel"
echo "$out/$name-$version.zip"
