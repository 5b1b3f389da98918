"""session.py without a SparkContext: task slots read from settings only, and job tags (issue 14)."""

from __future__ import annotations

import os

import pytest

from dedup_spark import session


class Conf:
    def __init__(self, values: dict[str, str], refuse: bool = False) -> None:
        self.values, self.refuse = values, refuse

    def get(self, key: str, default=None):
        if self.refuse:
            raise RuntimeError("[CONFIG_NOT_AVAILABLE] Configuration is not available.")
        return self.values.get(key, default)


class FakeSession:
    """What session.py may touch of a session: `conf`, and job tags when `tags` is a list (Connect, Spark 4)."""

    def __init__(self, values: dict[str, str], refuse: bool = False, tags: list[str] | None = None) -> None:
        self.conf = Conf(values, refuse)
        if tags is not None:
            self.tags = tags
            self.addTag = tags.append
            self.removeTag = tags.remove


@pytest.fixture(autouse=True)
def no_override():
    session.use_task_slots(None)
    yield
    session.use_task_slots(None)


@pytest.mark.parametrize(
    ("values", "slots"),
    [
        ({"spark.dedup.taskSlots": "48", "spark.default.parallelism": "4", "spark.master": "local[2]"}, 48),
        ({"spark.default.parallelism": "6", "spark.master": "local[2]"}, 6),
        ({"spark.master": "local[3]"}, 3),
        ({"spark.master": "local[5, 2]"}, 5),  # local[N, maxFailures]
        ({"spark.master": "local[*]"}, os.cpu_count()),
        ({"spark.master": "local"}, 1),
        ({"spark.master": "local-cluster[2, 3, 1024]"}, 6),
        ({"spark.master": "spark://h:7077", "spark.executor.instances": "4", "spark.executor.cores": "2"}, 8),
        ({"spark.master": "yarn", "spark.executor.instances": "4"}, session.DEFAULT_TASK_SLOTS),
        ({"spark.master": "spark://h:7077", "spark.cores.max": "12"}, 12),
        ({"spark.master": "sc://server", "spark.default.parallelism": "0"}, session.DEFAULT_TASK_SLOTS),
        ({}, session.DEFAULT_TASK_SLOTS),
    ],
)
def test_task_slots_from_settings(values, slots):
    assert session.task_slots(FakeSession(values)) == slots


def test_task_slots_on_a_session_that_refuses_every_read():
    assert session.task_slots(FakeSession({"spark.master": "local[3]"}, refuse=True)) == session.DEFAULT_TASK_SLOTS
    assert session.master(FakeSession({}, refuse=True)) == "unknown"
    assert not session.session_has_delta(FakeSession({}, refuse=True))


def test_the_run_setting_wins():
    session.use_task_slots(64)
    assert session.task_slots(FakeSession({"spark.dedup.taskSlots": "4"})) == 64


def test_job_tags_replace_our_own_and_leave_the_callers():
    tags = ["callers-own"]
    spark = FakeSession({}, tags=tags)
    session.tag_jobs(spark, "dedup-spark-ingest")
    session.tag_jobs(spark, "dedup-spark-neardup")
    assert tags == ["callers-own", "dedup-spark-neardup"]
    session.tag_jobs(spark, None)
    assert tags == ["callers-own"]


def test_sessions_without_job_tags_run_untagged():
    session.tag_jobs(FakeSession({}), "dedup-spark-ingest")  # classic Spark 3.5: no addTag; nothing raised
    session.tag_jobs(FakeSession({}), None)


def test_task_slots_setting_is_checked():
    from dedup_spark.config import resolve_config
    from dedup_spark.errors import ConfigError

    paths = {"input.path": "in", "output.path": "out"}
    with pytest.raises(ConfigError, match="spark.task_slots"):
        resolve_config(None, paths, ["spark.task_slots=0"])
    assert resolve_config(None, paths, ["spark.task_slots=32"]).spark.task_slots == 32
