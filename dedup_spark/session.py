"""The one place that creates or finds the SparkSession, and the only one that reads what kind of session it is:
its SparkContext (task slots, job descriptions), its master, Delta Lake support.

Spark Connect and Databricks serverless sessions refuse some of these reads; each helper says what it returns then.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

from pyspark.sql import SparkSession

# Where Spark's own console output goes when the CLI runs without --verbose (see `get_or_create_session`).
# One folder per user: another user's folder of the same name would not be writable.
SPARK_LOG_DIR = os.path.join(tempfile.gettempdir(), f"dedup-spark-logs-{os.getuid()}")
# The file the JVM started by this process writes its stderr to (None: not redirected, or not started here).
spark_log_in_use: str | None = None


def get_or_create_session(app_name: str = "dedup-spark", spark_log: str | None = None) -> SparkSession:
    """Return the active session (Databricks, spark-submit) or start one.

    No master or resource settings here: spark-submit, Databricks or spark-defaults.conf decide them, and
    with none of those PySpark runs `local[*]`.

    spark_log: a file for everything the JVM this call starts writes to stderr (log4j's console, JVM warnings,
    Python workers' stderr), so a failing run shows one line, not Spark's stack traces; None leaves the JVM's
    stderr on the terminal (--verbose). A session that already exists is returned as it is.
    """
    # Local Python workers must use this interpreter (the one with our dependencies), not the system python.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(app_name)
    global spark_log_in_use
    if spark_log is None or SparkSession.getActiveSession() is not None:
        return builder.getOrCreate()
    os.makedirs(os.path.dirname(spark_log) or ".", exist_ok=True)
    sys.stderr.flush()
    log_fd = os.open(spark_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    saved = os.dup(2)
    os.dup2(log_fd, 2)  # the JVM started now inherits this stderr; Python's own stderr is restored below
    try:
        session = builder.getOrCreate()
        spark_log_in_use = spark_log
        return session
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(log_fd)


def new_spark_log_path() -> str:
    """A fresh file name under SPARK_LOG_DIR for one run's Spark output."""
    return os.path.join(SPARK_LOG_DIR, f"spark-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}.log")


def task_slots(spark: SparkSession) -> int:
    """Task slots of the session's cluster (Spark's default parallelism)."""
    return spark.sparkContext.defaultParallelism


def set_job_description(spark: SparkSession, text: str | None) -> None:
    """Name the Spark jobs that follow in the Spark UI (None clears it)."""
    spark.sparkContext.setJobDescription(text)


def master(spark: SparkSession) -> str:
    """The session's master URL ("unknown" where the server does not show it)."""
    try:
        return str(spark.conf.get("spark.master", "unknown"))
    except Exception:  # Spark Connect servers may refuse to show a static config
        return "unknown"


def is_local_mode(spark: SparkSession) -> bool:
    """True when driver and executors share this machine (master local[...])."""
    return master(spark).startswith("local")


def session_has_delta(spark: SparkSession) -> bool:
    """True on Databricks and on sessions configured with the Delta Lake extension."""
    if "DATABRICKS_RUNTIME_VERSION" in os.environ:
        return True
    try:
        extensions = spark.conf.get("spark.sql.extensions", "") or ""
    except Exception:  # Spark Connect servers may refuse to show a static config; then it is not ours to read
        return False
    return "DeltaSparkSessionExtension" in extensions
