"""The one place that creates the SparkSession."""

from __future__ import annotations

import os
import sys

from pyspark.sql import SparkSession


def get_or_create_session(app_name: str = "dedup-spark") -> SparkSession:
    """Return the active session (Databricks, spark-submit) or start one.

    No master or resource settings here: spark-submit, Databricks or spark-defaults.conf decide them, and
    with none of those PySpark runs `local[*]`.
    """
    # Local Python workers must use this interpreter (the one with our dependencies), not the system python.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    return SparkSession.builder.appName(app_name).getOrCreate()
