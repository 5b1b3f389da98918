"""Shared test fixtures: one SparkSession for the whole run, tuned for small data."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DEMO_CORPUS = REPO / "data" / "demo" / "corpus.jsonl.gz"
# Command lines the tests start run without the JVM class archive of the user's cache (class_archive.py): each
# run's JVM starts the same way whatever ran before; tests/test_class_archive.py tests the archive itself.
os.environ.setdefault("DEDUP_SPARK_JVM_CACHE", "off")


@pytest.fixture(scope="session")
def spark():
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    from pyspark.sql import SparkSession

    from dedup_spark.session import OWN_JVM_OPTIONS

    session = (
        SparkSession.builder.master("local[2]")
        .appName("dedup-spark-tests")
        # Test-only tuning for tiny data: few shuffle partitions, no UI.
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.default.parallelism", "4")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        # As a run's own JVM compiles (session.OWN_JVM_OPTIONS): C1 only.
        .config("spark.driver.extraJavaOptions", OWN_JVM_OPTIONS)
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture
def run_cli(spark):
    """Run `dedup-spark` in this process (sharing the session); returns the exit code.

    `run` commands get `--stages=none` (ingest only) unless the test names its stages: reader and writer tests
    need no dedup stage, and the stages have their own tests.
    """
    from dedup_spark.cli import main

    def run(*args: str) -> int:
        words = [str(a) for a in args]
        if words[:1] == ["run"] and not any(w == "--stages" or w.startswith("--stages=") for w in words):
            words.append("--stages=none")
        return main(words)

    return run
