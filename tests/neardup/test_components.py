"""Distributed connected components against a plain union-find on random and adversarial graphs."""

from __future__ import annotations

import random

import pytest

from dedup_spark.neardup.components import connected_components
from dedup_spark.sparkops import Steps


def union_find_labels(edges: list[tuple[str, str]]) -> dict[str, str]:
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for u, v in edges:
        a, b = find(u), find(v)
        if a != b:
            parent[max(a, b)] = min(a, b)
    return {x: find(x) for x in parent}


def graphs() -> list[tuple[str, list[tuple[str, str]]]]:
    rng = random.Random(7)
    names = [f"n{i:04d}" for i in range(400)]
    sparse = [(rng.choice(names), rng.choice(names)) for _ in range(300)]
    chain = [(names[i], names[i + 1]) for i in range(len(names) - 1)]  # diameter 399
    shuffled = names[:]
    rng.shuffle(shuffled)
    zigzag = [(shuffled[i], shuffled[i + 1]) for i in range(150)]  # a chain in random id order
    star = [(names[-1], n) for n in names[:-1]]
    return [("sparse", sparse), ("chain", chain), ("zigzag", zigzag), ("star", star + [(names[5], names[6])])]


@pytest.mark.parametrize("local_max_edges", [0, 10_000], ids=["distributed", "one-task"])
@pytest.mark.parametrize("case", range(4))
def test_matches_union_find(spark, tmp_path, case, local_max_edges):
    name, edges = graphs()[case]
    frame = spark.createDataFrame(edges, "u string, v string").repartition(3)
    labels, rounds = connected_components(Steps(spark, str(tmp_path / name)), frame, local_max_edges=local_max_edges)
    got = {r["node"]: r["component"] for r in labels.collect()}
    expected = {n: c for n, c in union_find_labels(edges).items() if any(n in e for e in edges if e[0] != e[1])}
    assert got == expected, name
    if local_max_edges:
        assert rounds == 0
    else:
        assert 1 <= rounds <= 20  # O(log^2 n), even for the 399-long chain


def test_small_shuffles_lowers_and_restores_the_partition_count(spark):
    from dedup_spark.sparkops import small_shuffles

    key = "spark.sql.shuffle.partitions"
    before = spark.conf.get(key)
    spark.conf.set(key, "200")
    try:
        with small_shuffles(spark, rows=3_500_000):
            assert spark.conf.get(key) == "16"  # one per 250,000 rows, 14, in whole rounds of the 4 task slots
        assert spark.conf.get(key) == "200"
        with small_shuffles(spark, rows=10):
            assert spark.conf.get(key) == "1"  # at least 1
        spark.conf.set(key, "3")
        with small_shuffles(spark, rows=10**9):
            assert spark.conf.get(key) == "3"  # never above the session's setting
        assert spark.conf.get(key) == "3"
    finally:
        spark.conf.set(key, before)


def test_many_splits_sets_the_minimum_split_count_and_unsets_it(spark, tmp_path):
    from dedup_spark.sparkops import many_splits

    key = "spark.sql.files.minPartitionNum"
    assert spark.conf.get(key, None) is None
    path = str(tmp_path / "one_file")
    spark.range(0, 200_000, numPartitions=1).selectExpr("sha2(cast(id as string), 256) AS s").write.parquet(path)
    with many_splits(spark, per_slot=4):
        assert spark.conf.get(key) == str(4 * spark.sparkContext.defaultParallelism)
        spark.conf.set("spark.sql.files.openCostInBytes", "100000")  # let a ~9 MB file split into many tasks
        try:
            inside = spark.read.parquet(path).rdd.getNumPartitions()
        finally:
            spark.conf.unset("spark.sql.files.openCostInBytes")
    assert spark.conf.get(key, None) is None
    assert inside >= 4 * spark.sparkContext.defaultParallelism
