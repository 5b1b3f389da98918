"""Session settings are hints: a session that refuses every `spark.conf.set` (as Databricks serverless refuses most
keys with CONFIG_NOT_AVAILABLE) runs both stages to the same output, and says once per key what it refused."""

from __future__ import annotations

import logging

from dedup_spark.config import build_config
from dedup_spark.pipeline import run_pipeline
from tests.helpers import read_output, write_jsonl


class RefusingConf:
    """A session's conf that reads but refuses every change."""

    def __init__(self, conf) -> None:
        self._conf = conf

    def get(self, *args):
        return self._conf.get(*args)

    def set(self, key, value):
        raise RuntimeError(f"[CONFIG_NOT_AVAILABLE] Configuration {key} is not available.")

    unset = set


class RefusingSession:
    """The test session, but its `conf` refuses changes."""

    def __init__(self, spark) -> None:
        self._spark = spark
        self.conf = RefusingConf(spark.conf)

    def __getattr__(self, name):
        return getattr(self._spark, name)


def corpus(path):
    footer = " -- this footer line repeats in every document of the corpus, long enough to be cut out --"
    texts = [" ".join(f"d{d}w{w}" for w in range(60)) + footer for d in range(30)]
    texts.append(texts[3].replace("d3w40", "changed"))  # a near-duplicate of document 3
    return write_jsonl(path, [{"id": i, "text": t} for i, t in enumerate(texts)])


def test_a_session_refusing_every_setting_gives_the_same_output(spark, tmp_path, caplog):
    src = corpus(tmp_path / "in.jsonl")
    settings = {"input.path": str(src), "input.id_column": "id", "exactsubstr.min_length": "40"}
    before = spark.conf.get("spark.sql.shuffle.partitions")
    outputs = {}
    for name, session in (("classic", spark), ("refusing", RefusingSession(spark))):
        outputs[name] = tmp_path / name
        with caplog.at_level(logging.INFO, logger="dedup_spark"):
            report = run_pipeline(session, build_config({**settings, "output.path": str(outputs[name])}))
        assert report.status == "succeeded" and report.accounting["balanced"]
        assert report.removed_by_reason == {"near_duplicate": 1}
    for table in ("data", "removed", "exact/spans", "neardup/clusters"):
        rows = [sorted(read_output(outputs[name] / table), key=str) for name in outputs]
        assert rows[0] == rows[1] and rows[0], table
    cut = read_output(outputs["refusing"] / "exact" / "spans")
    # 30 documents survive NearDup; the footer stays in the first in id order ("0") and is cut from the 29 others.
    assert len(cut) == 29 and "0" not in {r["doc_id"] for r in cut}
    refused = [r.getMessage() for r in caplog.records if "refused, running without it" in r.getMessage()]
    keys = [m.split()[2] for m in refused]
    assert sorted(keys) == sorted(set(keys)) and "spark.sql.shuffle.partitions" in keys, refused
    assert {"spark.sql.files.openCostInBytes", "spark.sql.files.minPartitionNum"} <= set(keys), refused
    assert spark.conf.get("spark.sql.shuffle.partitions") == before


def test_steps_record_rows_files_and_bytes_of_each_checkpoint(spark, tmp_path):
    from dedup_spark.sparkops import Steps

    step = Steps(spark, str(tmp_path))
    three = spark.createDataFrame([(i, "x" * i) for i in range(10)], "i long, s string").repartition(3)
    step("three", three)
    step("one", three.coalesce(1).filter("i < 4"))
    table = step.table()
    assert [(r["step"], r["rows"], r["files"]) for r in table] == [("three", 10, 3), ("one", 4, 1)]
    written = [sum(f.stat().st_size for f in (tmp_path / r["step"]).glob("*.parquet")) for r in table]
    assert [r["bytes"] for r in table] == written and all(written)
    assert all(r["seconds"] >= 0 for r in table)


def test_own_partitions_put_each_value_alone_in_its_partition(spark):
    from pyspark.sql import functions as F

    from dedup_spark.columns import ROUTE
    from dedup_spark.sparkops import own_partitions

    for n in (1, 2, 3, 4, 7, 30):
        values = [v * 1000 + 3 for v in range(n)]  # not 0..n-1: the route must not depend on the values themselves
        rows = spark.createDataFrame([(v, i) for v in values for i in range(5)], "value long, i long")
        routes = spark.createDataFrame(own_partitions(values), f"value long, {ROUTE} long")
        routed = rows.join(F.broadcast(routes), "value").repartition(n, ROUTE)
        seen = routed.groupBy(F.spark_partition_id().alias("p")).agg(
            F.collect_set("value").alias("values"), F.count(F.lit(1)).alias("rows")
        )
        assert sorted((r["p"], r["values"], r["rows"]) for r in seen.collect()) == [
            (i, [v], 5) for i, v in enumerate(values)
        ], n
    assert own_partitions([]) == []


def test_spark_hash_is_sparks_own(spark):
    from pyspark.sql import functions as F

    from dedup_spark.sparkops import spark_hash

    values = [0, 1, 2, -1, 42, 2**31, -(2**31) - 1, 2**62 + 12345, -(2**63), 2**63 - 1, *range(1000, 1100)]
    rows = spark.createDataFrame([(v,) for v in values], "v long").select("v", F.hash("v").alias("h")).collect()
    assert {r["v"]: r["h"] for r in rows} == {v: spark_hash(v) for v in values}
