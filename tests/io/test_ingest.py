"""Ingest on Spark: stable derived ids whatever the partitioning, shard sizes, identical texts, shards sized
before the scan, quarantine and duplicate ids from the one write."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
from pyspark.sql import functions as F

from dedup_spark.config import build_config
from dedup_spark.io.ingest import ingest, load_docs, quarantine_rows
from dedup_spark.io.inputfiles import list_input_files, parquet_footers, text_bytes
from dedup_spark.io.readers import read_input, resolve_source
from tests.helpers import write_jsonl

TEXTS = [f"document {i} " + "word " * (i % 7) for i in range(60)] + ["same text"] * 3


def ingest_jsonl(spark, tmp_path, records: list[dict], settings: dict[str, str], folder: str = "_work"):
    """Write `records` as tmp_path/in.jsonl (once) and ingest them into tmp_path/folder with `settings`."""
    path = tmp_path / "in.jsonl"
    if not path.exists():
        write_jsonl(path, records)
    config = build_config({"input.path": str(path), "output.path": "o", **settings})
    source = resolve_source(spark, config.input)
    raw = read_input(spark, source, config.input)
    return ingest(spark, raw, config, str(tmp_path / folder), source_files=(source.format, source.files))


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
    records = [{"id": i, "text": "x" * 1000 + str(i)} for i in range(50)]
    result = ingest_jsonl(spark, tmp_path, records, {"ingest.shard_size": "10KB", "input.id_column": "id"})
    assert result.shards == 8  # ceil(50 * ~1001 bytes / 10,000) = 6, in whole rounds of the 4 task slots
    sizes = load_docs(spark, result).groupBy("_dd_shard").agg(F.sum("_dd_bytes").alias("b")).collect()
    assert len(sizes) == 8 and max(r["b"] for r in sizes) < 20_000


def test_parquet_shards_are_sized_from_the_footers_before_the_scan(tmp_path):
    texts = [f"{i:05d} " + "abcdefgh" * (i % 50) for i in range(2000)]  # unique: no dictionary encoding shortcut
    pq.write_table(pa.table({"id": range(2000), "text": texts, "other": ["x" * 500] * 2000}), tmp_path / "in.parquet")
    files = list_input_files(str(tmp_path / "in.parquet"))
    estimate = text_bytes("parquet", files, parquet_footers("parquet", files), "text")
    exact = sum(len(t.encode()) for t in texts)
    assert exact <= estimate <= exact + 8 * len(texts)  # plain encoding: a 4-byte length per value
    jsonl = tmp_path / "in.jsonl"
    write_jsonl(jsonl, [{"text": t} for t in texts])
    files = list_input_files(str(jsonl))
    assert text_bytes("json", files, {}, "text") == jsonl.stat().st_size


def test_input_with_nothing_readable_gives_empty_shards_and_every_row_in_quarantine(spark, tmp_path):
    result = ingest_jsonl(spark, tmp_path, [{"text": ""}, {"text": None}, {"other": 1}], {})
    assert (result.rows_read, result.docs, result.quarantined_by_reason) == (3, 0, {"empty_text": 1, "null_text": 2})
    assert load_docs(spark, result).count() == 0
    quarantine = quarantine_rows(spark, str(tmp_path / "_work"), result)
    assert sorted(r["reason"] for r in quarantine.collect()) == ["empty_text", "null_text", "null_text"]


def test_unreadable_rows_and_duplicate_ids_are_quarantined_from_one_scan(spark, tmp_path):
    rows = [{"id": 1, "text": "a"}, {"id": 1, "text": "b"}, {"id": 2, "text": ""}, {"id": None, "text": "c"}]
    rows += [{"id": 3, "text": "d"}, {"id": 3, "text": "d"}, {"id": 4, "text": "e"}]
    result = ingest_jsonl(spark, tmp_path, rows, {"input.id_column": "id", "input.duplicate_ids": "quarantine"})
    reasons = {"duplicate_id": 2, "empty_text": 1, "null_id": 1}
    assert (result.rows_read, result.docs, result.quarantined_by_reason) == (7, 3, reasons)
    assert sorted(r["_dd_id"] for r in load_docs(spark, result).collect()) == ["1", "3", "4"]
    quarantine = quarantine_rows(spark, str(tmp_path / "_work"), result).collect()
    assert sorted((r["reason"], r["text"]) for r in quarantine) == [
        ("duplicate_id", "b"),
        ("duplicate_id", "d"),
        ("empty_text", ""),
        ("null_id", "c"),
    ]


def test_an_input_smaller_than_one_shard_fills_every_task_slot_once_worth_splitting(spark, tmp_path, monkeypatch):
    from dedup_spark.io import ingest as ingest_module

    records = [{"id": i, "text": "y" * 1000 + str(i)} for i in range(50)]  # 50 KB of text, shards of 128 MiB
    assert ingest_jsonl(spark, tmp_path, records, {"input.id_column": "id"}, "a").shards == 1  # not worth splitting
    monkeypatch.setattr(ingest_module, "SPLIT_BYTES", 10_000)
    result = ingest_jsonl(spark, tmp_path, records, {"input.id_column": "id"}, "b")
    assert result.shards == 4  # the test session's task slots
    assert load_docs(spark, result).select("_dd_shard").distinct().count() == 4
