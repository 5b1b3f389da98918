"""NearDup's exact groups, candidate pairs and involved ids in one task, against a brute-force oracle of the
rules the distributed steps implement, and against those steps themselves on the same signatures."""

from __future__ import annotations

import random
from itertools import pairwise

import pyarrow as pa
import pytest

from dedup_spark.neardup.pairs_in_one_task import pairs_in_one_task, pairs_of_table


def _signatures(seed: int, docs: int = 300, bands: int = 4) -> list[tuple[str, str, list[int]]]:
    """(id, norm_hash, band keys) with many shared keys and texts; ids in an order that differs from insertion,
    some held out (both prefixes), some with characters whose UTF-8 bytes sort them."""
    rng = random.Random(seed)
    prefixes = ["", "", "", "protected-1:", "index:"]
    names = ["d", "D", "é", "z", "\u4e2d", "\U0001f600"]
    ids = {f"{rng.choice(prefixes)}{rng.choice(names)}{rng.randrange(10_000)}" for _ in range(docs)}
    rows = []
    for doc_id in sorted(ids, key=lambda _: rng.random()):
        text = f"t{rng.randrange(docs // 3)}" if rng.random() < 0.3 else f"unique-{doc_id}"
        keys = [rng.randrange(12) if rng.random() < 0.5 else rng.getrandbits(62) for _ in range(bands)]
        rows.append((doc_id, text, keys))
    return rows


def _oracle(rows: list[tuple[str, str, list[int]]]) -> dict[str, set[tuple[str, str]]]:
    """The rules as written in stage.py and signatures.candidate_pairs, by brute force."""
    by_text: dict[str, list[str]] = {}
    for doc_id, text, _ in rows:
        by_text.setdefault(text, []).append(doc_id)
    exact = {(min(ids, key=str.encode), i) for ids in by_text.values() for i in ids if i != min(ids, key=str.encode)}
    copies = {v for _, v in exact}
    buckets: dict[tuple[int, int], list[str]] = {}
    for doc_id, _, keys in rows:
        if doc_id not in copies:
            for band, key in enumerate(keys):
                buckets.setdefault((band, key), []).append(doc_id)
    candidates = set()
    for members in buckets.values():
        members.sort(key=str.encode)  # Spark orders strings by their UTF-8 bytes
        for previous, member in pairwise(members):
            candidates |= {(members[0], member), (previous, member)}

    def held(i: str) -> bool:
        return i.startswith(("protected-", "index:"))

    candidates = {(u, v) for u, v in candidates if not (held(u) and held(v))}
    nodes = {i for u, v in candidates | {p for p in exact if not (held(p[0]) and held(p[1]))} for i in (u, v)}
    return {"exact": exact, "candidate": candidates, "node": {(i, i) for i in nodes}}


def _by_kind(table: pa.Table) -> dict[str, set[tuple[str, str]]]:
    found: dict[str, set[tuple[str, str]]] = {"exact": set(), "candidate": set(), "node": set()}
    for row in table.to_pylist():
        found[row["kind"]].add((row["u"], row["v"]))
    assert len(table) == sum(len(pairs) for pairs in found.values())  # no row twice
    return found


def _table(rows: list[tuple[str, str, list[int]]]) -> pa.Table:
    ids, texts, keys = zip(*rows, strict=True)
    return pa.table({"_dd_id": list(ids), "norm_hash": list(texts), "band_keys": pa.array(keys, pa.list_(pa.int64()))})


@pytest.mark.parametrize("seed", range(6))
def test_pairs_of_table_equal_the_brute_force_oracle(seed):
    rows = _signatures(seed)
    expected = _oracle(rows)
    assert expected["exact"] and len(expected["candidate"]) > 50  # not vacuous
    assert any(u.startswith("index:") or u.startswith("protected-") for u, _ in expected["candidate"])
    assert _by_kind(pairs_of_table(_table(rows))) == expected
    assert _by_kind(pairs_of_table(_table(rows[5:]).slice(3))) == _oracle(rows[8:])  # a slice of a table


def test_a_giant_bucket_costs_two_pairs_per_member():
    rows = [(f"b{i:05d}", f"text{i}", [7, i]) for i in range(5_000)]
    found = _by_kind(pairs_of_table(_table(rows)))
    assert found["candidate"] == {("b00000", f"b{i:05d}") for i in range(1, 5_000)} | {
        (f"b{i:05d}", f"b{i + 1:05d}") for i in range(5_000 - 1)
    }
    assert not found["exact"]
    assert pairs_of_table(_table(rows).slice(0, 0)).num_rows == 0


def test_in_spark_equals_the_oracle_and_the_distributed_steps(spark, tmp_path):
    from dedup_spark.neardup.signatures import SIGNATURE_SCHEMA, candidate_pairs

    rows = _signatures(11)
    frame = spark.createDataFrame([(i, t, 1, k) for i, t, k in rows], SIGNATURE_SCHEMA).repartition(3)
    found = _by_kind(pa.Table.from_pylist([r.asDict() for r in pairs_in_one_task(frame).collect()]))
    assert found == _oracle(rows)
    # The distributed steps' candidate pairs over the same representatives, before the held-out filter.
    copies = {v for _, v in found["exact"]}
    representatives = frame.filter(~frame["_dd_id"].isin(list(copies)))
    distributed = {(r["u"], r["v"]) for r in candidate_pairs(representatives).collect()}
    held = ("protected-", "index:")
    assert {p for p in distributed if not (p[0].startswith(held) and p[1].startswith(held))} == found["candidate"]
    assert spark.createDataFrame([], SIGNATURE_SCHEMA).transform(pairs_in_one_task).count() == 0
