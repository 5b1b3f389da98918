"""The daily job of the Databricks Asset Bundle (resources/dedup_spark_daily.job.yml): one day's batch at a time
against the index, on a schedule, for the day Databricks resolves from the trigger or the day given by hand.

tests/test_databricks_bundle.py checks it with the other jobs (schema, entry point, parameters through our CLI);
these are the checks of its own.
"""

from __future__ import annotations

import pytest

from tests.test_databricks_bundle import (
    GIVEN_DATE,
    TRIGGER_DATE,
    _call_tasks,
    _resolve_dynamic_tasks,
    _run_parameters,
    _substitute,
    _values,
    load_bundle,
)


@pytest.fixture(scope="module")
def bundle() -> dict:
    return load_bundle()


@pytest.fixture(scope="module")
def jobs(bundle) -> dict[str, dict]:
    return bundle["resources"]["jobs"]


def test_daily_job_runs_one_day_at_a_time_on_a_schedule(jobs):
    """One run at a time (a second would fail its index commit), a scheduled run due meanwhile queued rather than
    skipped (its day would be missing), a daily UTC schedule, the day from the trigger time, retried tasks."""
    daily = jobs["dedup_spark_daily"]
    assert daily["max_concurrent_runs"] == 1 and daily["queue"] == {"enabled": True}
    schedule = daily["schedule"]
    assert schedule["quartz_cron_expression"] == "${var.daily_schedule}" and schedule["timezone_id"] == "UTC"
    assert schedule["pause_status"] == "UNPAUSED"
    assert daily["parameters"] == [{"name": "batch_date", "default": "{{job.trigger.time.iso_date}}"}]
    for task in daily["tasks"]:
        assert task["max_retries"] >= 1 and task["min_retry_interval_millis"] >= 60_000
        assert any(p.startswith("--index=/Volumes/") for p in task["python_wheel_task"]["parameters"])
    for name in ("dedup_spark", "dedup_spark_serverless"):  # the on-demand jobs: no schedule, no index
        assert "schedule" not in jobs[name]
        assert not [p for t in jobs[name]["tasks"] for p in t["python_wheel_task"]["parameters"] if "--index" in p]


def test_daily_cron_fires_once_a_day(bundle):
    """Quartz: seconds minutes hours day-of-month month day-of-week; fixed time fields, every day."""
    fields = bundle["variables"]["daily_schedule"]["default"].split()
    assert len(fields) == 6 and all(f.isdigit() for f in fields[:3])
    assert fields[3:] in (["*", "*", "?"], ["?", "*", "*"])


def test_daily_job_run_for_a_given_day_reads_and_writes_that_day_only(bundle, jobs, monkeypatch):
    """`databricks bundle run dedup_spark_daily --params batch_date=...` (a missed day, in order): that day's batch
    and output folder, the same index."""
    daily = jobs["dedup_spark_daily"]
    values = _values(bundle, "prod")
    configs = {}
    for date in (GIVEN_DATE, TRIGGER_DATE):
        given = {"batch_date": date} if date == GIVEN_DATE else {}
        tasks = _resolve_dynamic_tasks(_substitute(daily["tasks"], values), _run_parameters(daily, given))
        configs[date] = _call_tasks(tasks, monkeypatch)[-1]
    given, scheduled = configs[GIVEN_DATE], configs[TRIGGER_DATE]
    assert given.input.path.endswith(f"/batches/{GIVEN_DATE}/") and given.output.path.endswith(f"/out/{GIVEN_DATE}")
    assert given.input.path != scheduled.input.path and given.output.path != scheduled.output.path
    assert given.index.path == scheduled.index.path
