"""Spark 3.5 (Databricks LTS 14.3 and 15.4) gives the outputs Spark 4 gives, on the demo corpus (issue 14).

Run by .ci/run in .venv-spark35 (scripts/test_spark35.sh), beside the end-to-end, NearDup, ExactSubstr,
contamination and resume tests: the demo runs once with this interpreter's pyspark 3.5 and once with the main
.venv's pyspark 4, both as `python -m dedup_spark` on local[2], and every table and report must be equal
(benchmarks/same_outputs.py; the Spark version and timings aside).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from benchmarks.same_outputs import differences, tables
from tests.conftest import DEMO_CORPUS, REPO

pytestmark = pytest.mark.spark35

SPARK4_PYTHON = REPO / ".venv" / "bin" / "python"


def version(python) -> str:
    code = "import pyspark; print(pyspark.__version__)"
    return subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def test_this_suite_runs_on_spark_35_beside_spark_4():
    assert version(sys.executable).startswith("3.5."), "run this suite with .venv-spark35 (scripts/test_spark35.sh)"
    assert version(SPARK4_PYTHON).split(".")[0] == "4", "the main .venv (scripts/setup.sh) has Spark 4"


def test_demo_outputs_equal_spark_4(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("SPARK_REMOTE", "PYSPARK_PYTHON")}
    env.update(SPARK_LOCAL_IP="127.0.0.1")
    env["PYSPARK_SUBMIT_ARGS"] = "--master local[2] --conf spark.sql.shuffle.partitions=4 pyspark-shell"
    for name, python in (("spark35", sys.executable), ("spark4", str(SPARK4_PYTHON))):
        args = ["run", f"--input={DEMO_CORPUS}", f"--output={tmp_path / name / 'out'}", "--set=input.id_column=id"]
        result = subprocess.run(
            [python, "-m", "dedup_spark", *args],
            capture_output=True,
            text=True,
            env={**env, "PYSPARK_PYTHON": python},
            cwd=REPO,
            timeout=900,
        )
        assert result.returncode == 0, f"{name}: {result.stderr[-3000:]}"
    assert tables(tmp_path / "spark35")
    assert differences(tmp_path / "spark35", tmp_path / "spark4") == []
