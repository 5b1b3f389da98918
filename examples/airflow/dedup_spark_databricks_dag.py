"""Airflow DAG `dedup_spark_databricks`: triggers the Databricks job of databricks_job.json (DatabricksRunNowOperator).

Written for apache-airflow 3 (tested with 3.3.2; the imports fall back to Airflow 2's) with
apache-airflow-providers-databricks (`pip install "dedup-spark[airflow]"`). Setup:
- In Databricks, create the job once from `databricks_job.json` beside this file (`databricks jobs create --json
  @databricks_job.json`, after setting its file, wheel and cluster fields): a Python task running
  jobs/run_dedup.py with `run --input=... --output=... --stages=... --overwrite`, taking `input`, `output` and
  `stages` from job parameters.
- Connection `databricks_default`: workspace URL and token (or another Databricks auth method).
- Params: `databricks_job_name` (the job's name; job names must be unique in the workspace), `input`,
  `output_root`, `stages`.

Idempotent by run_id: each DAG run passes `output=<output_root>/<run id made path-safe>-<8 hex digits of its
SHA-256>` and the job always runs with `--overwrite`, so a retried or cleared run replaces its own output and
never another run's (see dedup_spark_dag.py). The run-now request also carries an idempotency token made from the
DAG id, run id and try number: if the request is sent twice within one try (a timeout retried by the hook),
Databricks returns the run it already started instead of starting a second one, while a new try starts a new run.
"""

from __future__ import annotations

import hashlib
import re

from airflow.providers.databricks.operators.databricks import DatabricksRunNowOperator

try:  # Airflow 3
    from airflow.sdk import DAG, Param
except ImportError:  # Airflow 2
    from airflow import DAG
    from airflow.models.param import Param


def path_safe(run_id: str) -> str:
    """A folder name for a run id: characters other than letters, digits, `.`, `_`, `-` become `_` (no leading
    dot, so never `.` or `..`), followed by 8 hex digits of the run id's SHA-256 so distinct run ids stay distinct.
    """
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", run_id).lstrip(".")[:100]
    return f"{readable}-{hashlib.sha256(run_id.encode()).hexdigest()[:8]}"


def token(text: str) -> str:
    """Databricks idempotency token (at most 64 characters): 40 hex digits of SHA-256 of `text`."""
    return hashlib.sha256(text.encode()).hexdigest()[:40]


with DAG(
    dag_id="dedup_spark_databricks",
    description="Deduplicate a text corpus with dedup-spark (Databricks job run-now)",
    schedule=None,
    catchup=False,
    tags=["dedup-spark", "databricks"],
    default_args={"retries": 2},
    user_defined_filters={"path_safe": path_safe, "token": token},
    params={
        "databricks_job_name": Param("dedup-spark", type="string", description="name of the Databricks job"),
        "input": Param("s3://my-bucket/corpus/", type="string", description="corpus to read (--input)"),
        "output_root": Param(
            "s3://my-bucket/dedup/", type="string", description="each run writes to a folder under this one"
        ),
        "stages": Param("neardup,exactsubstr", type="string", description="--stages (none: ingest only)"),
    },
) as dag:
    DatabricksRunNowOperator(
        task_id="dedup",
        databricks_conn_id="databricks_default",
        job_name="{{ params.databricks_job_name }}",
        job_parameters={
            "input": "{{ params.input }}",
            "output": "{{ params.output_root.rstrip('/') }}/{{ run_id | path_safe }}",
            "stages": "{{ params.stages }}",
        },
        idempotency_token="{{ (dag.dag_id ~ '/' ~ run_id ~ '/' ~ ti.try_number) | token }}",
    )
