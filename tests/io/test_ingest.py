"""Ingest on Spark: stable derived ids whatever the partitioning, shard sizes, identical texts."""

from __future__ import annotations

from pyspark.sql import functions as F

from dedup_spark.config import build_config
from dedup_spark.io.ingest import ingest, load_docs
from dedup_spark.io.readers import read_input, resolve_source
from tests.helpers import write_jsonl

TEXTS = [f"document {i} " + "word " * (i % 7) for i in range(60)] + ["same text"] * 3


def ingest_ids(spark, tmp_path, files: int, shard_size: str, name: str) -> dict[str, str]:
    folder = tmp_path / name
    folder.mkdir()
    records = [{"text": t, "n": i} for i, t in enumerate(TEXTS)]
    for f in range(files):
        write_jsonl(folder / f"part{f}.jsonl", records[f::files])
    config = build_config(
        {"input.path": str(folder), "output.path": str(tmp_path / "o"), "ingest.shard_size": shard_size}
    )
    raw = read_input(spark, resolve_source(spark, config.input), config.input)
    result = ingest(spark, raw.repartition(files + 1), config, str(tmp_path / name / "_work"))
    docs = load_docs(spark, result)
    assert docs.select("_dd_shard").distinct().count() == result.shards
    return {r["_dd_id"]: (r["n"], r["text"]) for r in docs.select("_dd_id", "n", "text").collect()}


def test_derived_ids_do_not_depend_on_files_partitions_or_shards(spark, tmp_path):
    one = ingest_ids(spark, tmp_path, files=1, shard_size="100MB", name="a")
    many = ingest_ids(spark, tmp_path, files=4, shard_size="1KiB", name="b")
    assert one == many
    assert len(one) == len(TEXTS)  # identical texts still get unique ids
    same = sorted(i for i, (_, t) in one.items() if t == "same text")
    assert len(same) == 3 and same[1] == same[0] + "-1" and same[2] == same[0] + "-2"


def test_shards_hold_about_the_target_size(spark, tmp_path):
    text = "x" * 1000
    write_jsonl(tmp_path / "in.jsonl", [{"id": i, "text": text + str(i)} for i in range(50)])
    config = build_config(
        {
            "input.path": str(tmp_path / "in.jsonl"),
            "output.path": "o",
            "ingest.shard_size": "10KB",
            "input.id_column": "id",
        }
    )
    raw = read_input(spark, resolve_source(spark, config.input), config.input)
    result = ingest(spark, raw, config, str(tmp_path / "_work"))
    assert result.shards == 8  # ceil(50 * ~1001 bytes / 10,000) = 6, in whole rounds of the 4 task slots
    sizes = load_docs(spark, result).groupBy("_dd_shard").agg(F.sum("_dd_bytes").alias("b")).collect()
    assert len(sizes) == 8 and max(r["b"] for r in sizes) < 20_000
