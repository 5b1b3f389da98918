"""Airflow DAG `dedup_spark`: runs jobs/run_dedup.py with spark-submit (SparkSubmitOperator).

Written for apache-airflow 3 (tested with 3.3.2; the imports fall back to Airflow 2's) with
apache-airflow-providers-apache-spark on the Airflow workers (`pip install "dedup-spark[airflow]"`); the Spark
side needs dedup-spark installed (e.g. the image of docker/Dockerfile). Setup:
- Connection `spark_default` (type Spark): host `k8s://https://<api-server>:443` with extra
  `{"deploy-mode": "cluster", "namespace": "<ns>"}`, or `spark://host:7077`, or `yarn`.
- Variable `dedup_spark_image` (Kubernetes only): the image built from docker/Dockerfile.
- Params (trigger form or `airflow dags trigger -c '{...}'`): `input`, `output_root`, `stages`.

Idempotent by run_id: each DAG run writes to `<output_root>/<run id made path-safe>-<8 hex digits of its
SHA-256>` and passes `--overwrite`. A retry, or a run cleared and run again, keeps its run_id, so it replaces its
own output (dedup-spark writes tables to a staging folder and renames them into place only when complete, and
refuses to overwrite a folder holding files it did not write); another run has another run_id and so another
folder, which it never touches. The hash keeps two run ids that differ only in characters replaced by `_` apart.
"""

from __future__ import annotations

import hashlib
import re

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

try:  # Airflow 3
    from airflow.sdk import DAG, Param
except ImportError:  # Airflow 2
    from airflow import DAG
    from airflow.models.param import Param

# Path of the entry point inside the image of docker/Dockerfile; for a cluster without that image, point it at a
# copy of jobs/run_dedup.py the driver can read.
APPLICATION = "local:///opt/dedup-spark/jobs/run_dedup.py"


def path_safe(run_id: str) -> str:
    """A folder name for a run id: characters other than letters, digits, `.`, `_`, `-` become `_` (no leading
    dot, so never `.` or `..`), followed by 8 hex digits of the run id's SHA-256 so distinct run ids stay distinct.
    """
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", run_id).lstrip(".")[:100]
    return f"{readable}-{hashlib.sha256(run_id.encode()).hexdigest()[:8]}"


with DAG(
    dag_id="dedup_spark",
    description="Deduplicate a text corpus with dedup-spark (spark-submit)",
    schedule=None,
    catchup=False,
    tags=["dedup-spark"],
    default_args={"retries": 2},
    user_defined_filters={"path_safe": path_safe},
    params={
        "input": Param("s3a://my-bucket/corpus/", type="string", description="corpus to read (--input)"),
        "output_root": Param(
            "s3a://my-bucket/dedup/", type="string", description="each run writes to a folder under this one"
        ),
        "stages": Param("neardup,exactsubstr", type="string", description="--stages (none: ingest only)"),
    },
) as dag:
    SparkSubmitOperator(
        task_id="dedup",
        conn_id="spark_default",
        application=APPLICATION,
        name="dedup-spark",  # Spark on Kubernetes derives unique pod names from it
        conf={"spark.kubernetes.container.image": "{{ var.value.get('dedup_spark_image', 'dedup-spark:0.1.0') }}"},
        application_args=[
            "run",
            "--input={{ params.input }}",
            "--output={{ params.output_root.rstrip('/') }}/{{ run_id | path_safe }}",
            "--stages={{ params.stages }}",
            "--overwrite",
        ],
    )
