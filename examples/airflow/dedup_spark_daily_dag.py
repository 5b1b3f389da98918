"""Airflow DAG `dedup_spark_daily`: each day's batch deduplicated against a persisted index (`run --index`), with
spark-submit (SparkSubmitOperator).

Written for apache-airflow 3 (tested with 3.3.2; the imports fall back to Airflow 2.9+'s) with
apache-airflow-providers-apache-spark, set up as for dedup_spark_dag.py (connection `spark_default`, Variable
`dedup_spark_image`). Params: `batch_root` (day D's batch is `<batch_root>/D/`, D as YYYY-MM-DD), `output_root`
(day D's outputs go to `<output_root>/D`), `index` (the index folder; its Delta table is `<index>/docs`), `stages`.
Set FIRST_DAY to the first batch to add. Seed the index from what is already published with
`dedup-spark index create` first, or let the first run create it.

Schedule: the run for day D covers the interval [D, D+1) UTC and starts when it ends, at 00:00 UTC on D+1, so
`<batch_root>/D/` must be complete by then and must not change afterwards (a changed batch is a new batch to the
index). catchup=True: days the scheduler missed run later, oldest first.

Order: the index is a sequence of batches, one commit each, and a run fails (exit 2, nothing added) when another
run committed while it worked. max_active_runs=1 runs the days one at a time and depends_on_past=True keeps day
D+1 from starting before day D succeeded; max_consecutive_failed_dag_runs=1 pauses the DAG when a day fails for
good, so that no later day is scheduled meanwhile.

Idempotent by logical date: a day's output folder depends only on D and the command always has `--overwrite`.
A retry, or the day cleared and run again, runs the same command: before the index commit it resumes from the
steps completed in `<output_root>/D/_work` (the index version read is part of their fingerprint, so they are
recomputed if the index moved); after the commit, dedup-spark recognises the batch by its input fingerprint,
checks it against the index as it was before its own commit and adds nothing (`already_added_at_version` in
report.json), so it writes the same outputs. Exit 2 from a conflicting commit (another writer added to the index
meanwhile; nothing of this batch was added) is retried like any failure: the retry checks the batch against the
new version and adds it. See README "Daily batches against an index", "When a run fails halfway".

After a day fails for good (the DAG is paused): fix the cause, clear that day's task (it runs again with the
same command), then unpause; the days missed meanwhile follow in order. In that order: unpaused first, the
scheduler may start the next day, whose task then waits for the failed one while max_active_runs=1 keeps the
cleared day queued behind it (apache/airflow#18304).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

try:  # Airflow 3
    from airflow.sdk import DAG, CronDataIntervalTimetable, Param
except ImportError:  # Airflow 2
    from airflow import DAG
    from airflow.models.param import Param
    from airflow.timetables.interval import CronDataIntervalTimetable

# Path of the entry point inside the image of docker/Dockerfile (see dedup_spark_dag.py).
APPLICATION = "local:///opt/dedup-spark/jobs/run_dedup.py"
# The first day whose batch goes into the index: catchup creates one run per day from here on.
FIRST_DAY = datetime(2026, 12, 1, tzinfo=timezone.utc)

with DAG(
    dag_id="dedup_spark_daily",
    description="Deduplicate each day's batch against the dedup-spark index and add it (spark-submit)",
    # Data intervals whatever the Airflow version's default for cron strings: day D's run covers [D, D+1) and
    # starts after it; {{ ds }} is D.
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=FIRST_DAY,
    catchup=True,
    max_active_runs=1,
    max_consecutive_failed_dag_runs=1,
    tags=["dedup-spark", "index"],
    default_args={
        "depends_on_past": True,
        "retries": 3,
        "retry_delay": timedelta(minutes=10),
    },
    params={
        "batch_root": Param(
            "s3a://my-bucket/batches/", type="string", description="day D's batch is <batch_root>/D/ (--input)"
        ),
        "output_root": Param(
            "s3a://my-bucket/dedup-daily/", type="string", description="day D's outputs go to <output_root>/D"
        ),
        "index": Param("s3a://my-bucket/dedup-index", type="string", description="the index folder (--index)"),
        "stages": Param("neardup,exactsubstr", type="string", description="--stages"),
    },
) as dag:
    SparkSubmitOperator(
        task_id="dedup",
        conn_id="spark_default",
        application=APPLICATION,
        name="dedup-spark-daily",  # Spark on Kubernetes derives unique pod names from it
        conf={"spark.kubernetes.container.image": "{{ var.value.get('dedup_spark_image', 'dedup-spark:0.1.0') }}"},
        application_args=[
            "run",
            "--input={{ params.batch_root.rstrip('/') }}/{{ ds }}/",
            "--output={{ params.output_root.rstrip('/') }}/{{ ds }}",
            "--index={{ params.index.rstrip('/') }}",
            "--stages={{ params.stages }}",
            "--overwrite",
        ],
    )
