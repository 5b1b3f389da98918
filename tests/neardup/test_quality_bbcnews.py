"""NearDup quality on real text: the bbcnews corpus (2,225 BBC articles) against an all-pairs exact oracle."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from benchmarks.bench_quality import similar_pairs
from dedup_spark.neardup.shingles import shingle_hashes
from tests.corpora import corpus
from tests.helpers import read_output, report

pytestmark = pytest.mark.slow


def test_bbcnews_recall_and_soundness(tmp_path, run_cli):
    path = corpus("bbcnews")
    texts = {r["id"]: r["text"] for r in pq.read_table(path, columns=["id", "text"]).to_pylist()}
    out = tmp_path / "out"
    assert run_cli("run", f"--input={path}", f"--output={out}", "--stages=neardup", "--set", "input.id_column=id") == 0
    cluster_of = {r["doc_id"]: r["cluster_id"] for r in read_output(out / "neardup" / "clusters")}
    # Every pair sharing a shingle of our normaliser, with its exact Jaccard (an inverted index, no LSH).
    truth = similar_pairs(texts, 0.0, lambda text: set(shingle_hashes(text).tolist()))

    similar = [pair for pair, j in truth.items() if j >= 0.85]
    together = [(a, b) for a, b in similar if a in cluster_of and cluster_of[a] == cluster_of.get(b)]
    recall = len(together) / len(similar)
    print(f"bbcnews: {len(similar)} pairs with J >= 0.85, recall {recall:.4f}")
    assert len(similar) >= 100 and recall >= 0.95

    members: dict[str, list[str]] = {}
    for doc, cluster_id in cluster_of.items():
        members.setdefault(cluster_id, []).append(doc)
    removed = [r["id"] for r in read_output(out / "removed")]
    for doc in removed:
        mates = [m for m in members[cluster_of[doc]] if m != doc]
        assert any(truth.get(tuple(sorted((doc, m))), 0.0) > 0.8 for m in mates), doc

    stage = report(out)["stages"][1]["details"]
    # The corpus card: 101 exact duplicates (4.5%) and about 56 more near duplicates (J >= 0.8).
    assert stage["exact_duplicate_copies"] >= 95
    assert 130 <= len(removed) <= 200
