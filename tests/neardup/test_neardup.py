"""NearDup stage on Spark against a brute-force oracle (exact Jaccard over all pairs of shingle-string sets)."""

from __future__ import annotations

import hashlib
import itertools
import random
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from dedup_spark.config import build_config
from dedup_spark.neardup.lsh import PRESETS, band_keys
from dedup_spark.neardup.minhash import MinHasher
from dedup_spark.neardup.normalize import normalize
from dedup_spark.neardup.shingles import char_shingles, shingle_hashes, word_shingles
from dedup_spark.neardup.signatures import resolve_lsh, signature_batches
from dedup_spark.neardup.stage import NearDup
from dedup_spark.neardup.verify import verify_batches
from dedup_spark.stage import StageContext


def make_docs(spark, texts: dict[str, str], partitions: int = 2, **columns):
    rows = [(i, t, i, len(t.encode()), 0, *(columns[c][i] for c in columns)) for i, t in texts.items()]
    schema = "id string, text string, _dd_id string, _dd_bytes long, _dd_shard int" + "".join(
        f", {c} long" for c in columns
    )
    return spark.createDataFrame(rows, schema).repartition(partitions)


def config(**neardup):
    settings = {"input.path": "in", "output.path": "out", "input.id_column": "id"}
    settings.update({f"neardup.{k}": v for k, v in neardup.items()})
    return build_config(settings)


def run(spark, tmp_path, texts, name="run", partitions=2, columns=None, **neardup):
    docs = make_docs(spark, texts, partitions, **(columns or {}))
    result = NearDup().run(StageContext(spark, config(**neardup), str(tmp_path / name), None), docs)
    clusters = {
        r["doc_id"]: (r["cluster_id"], r["cluster_size"], r["kept"])
        for r in result.tables["neardup/clusters"].collect()
    }
    removed = {r["_dd_id"] for r in result.removed.select("_dd_id").collect()}
    assert result.docs is None  # the stage only drops rows: the survivors are the input minus `removed`
    assert removed <= set(texts)
    survivors = set(texts) - removed
    return clusters, removed, survivors, result.metrics


def checked_pairs(run_dir: Path) -> list[dict]:
    """The candidate pairs a run checked, with their scores: step `verified`, or the `pair` rows of step `clusters`
    when the graph was verified and clustered in one task."""
    from tests.helpers import read_output

    verified = run_dir / "verified"
    return read_output(verified) if verified.exists() else read_output(run_dir / "clusters" / "kind=pair")


def synthetic_corpus(seed: int = 3) -> dict[str, str]:
    rng = random.Random(seed)
    vocabulary = [f"w{i}" for i in range(3000)]
    base = {f"d{i:03d}": " ".join(rng.choice(vocabulary) for _ in range(rng.randint(60, 200))) for i in range(200)}
    texts = dict(base)
    originals = sorted(base)
    for n, doc in enumerate(rng.sample(originals, 30)):  # one or two words changed: Jaccard about 0.85-0.95
        words = base[doc].split()
        for i in rng.sample(range(len(words)), rng.choice([1, 2])):
            words[i] = rng.choice(vocabulary)
        texts[f"near{n:02d}"] = " ".join(words)
    for n, doc in enumerate(rng.sample(originals, 10)):
        texts[f"copy{n:02d}"] = base[doc].upper()  # identical after normalisation
    for n, doc in enumerate(rng.sample(originals, 10)):  # 40% of words changed: far below 0.8
        words = base[doc].split()
        for i in rng.sample(range(len(words)), len(words) * 2 // 5):
            words[i] = rng.choice(vocabulary)
        texts[f"far{n:02d}"] = " ".join(words)
    texts["short"] = "tiny"
    texts["nowords"] = "!!! ???"
    texts["nowords2"] = "... ,,,"
    return texts


def exact_jaccard_pairs(texts: dict[str, str]) -> dict[tuple[str, str], float]:
    # Sets of shingle strings from the string path: no hashing and no byte-span code shared with the job.
    sets = {i: set(word_shingles(normalize(t), 5)) for i, t in texts.items()}
    pairs = {}
    for a, b in itertools.combinations(sorted(texts), 2):
        if sets[a] and sets[b]:
            pairs[(a, b)] = len(sets[a] & sets[b]) / len(sets[a] | sets[b])
    return pairs


def test_signature_batches_without_spark():
    texts = ["", "  ...  ", "one two three", "a b c d e", "Ünïcödé text, with more than five words here", "x " * 40]
    nd = config(batch_docs=4).neardup
    lsh = resolve_lsh(nd)
    batch = pa.RecordBatch.from_pydict({"_dd_id": [f"d{i}" for i in range(len(texts))], "text": texts})
    out = pa.Table.from_batches(list(signature_batches(nd, lsh, "text")([batch]))).to_pylist()
    assert [r["_dd_id"] for r in out] == [f"d{i}" for i in range(len(texts))]
    assert [r["n_shingles"] > 0 for r in out] == [False, False, True, True, True, True]
    # Band keys as the reference path computes them: unique hashes per document, then MinHash and banding.
    signatures = MinHasher(lsh.num_perm, seed=nd.seed).signatures([shingle_hashes(t) for t in texts])
    want = band_keys(signatures, lsh.bands, lsh.rows).view(np.int64).tolist()
    assert [r["band_keys"] for r in out[2:]] == want[2:]
    assert [r["norm_hash"] for r in out] == [hashlib.sha256(normalize(t).encode()).hexdigest()[:32] for t in texts]


@pytest.mark.parametrize("unit", ["word", "char"])
def test_verify_batches_exact_jaccard_without_spark(unit):
    base = "the quick brown fox jumps over the lazy dog and runs far away into the woods"
    pairs = [
        (base, base.replace("lazy", "sleepy")),
        (base, base.upper() + "!!!"),
        ("one two three", "One, two; three."),  # short documents: one shingle each, equal
        ("one two three", "one two four"),
        ("a b c d e", "a b c d e f"),  # exactly n words vs n + 1
        ("日本語のテキスト", "日本語のテキスト です"),
    ]
    nd = config(shingle_unit=unit, ngram=5 if unit == "word" else 3).neardup
    lsh = resolve_lsh(nd)
    batch = pa.RecordBatch.from_pydict(
        {
            "u": [f"u{i}" for i in range(len(pairs))],
            "v": [f"v{i}" for i in range(len(pairs))],
            "text_u": [p[0] for p in pairs],
            "text_v": [p[1] for p in pairs],
        }
    )
    out = pa.Table.from_batches(list(verify_batches(nd, lsh)([batch]))).to_pylist()
    shingler = word_shingles if unit == "word" else char_shingles
    for (a, b), row in zip(pairs, out, strict=True):
        sa, sb = set(shingler(normalize(a), nd.ngram)), set(shingler(normalize(b), nd.ngram))
        assert row["jaccard"] == len(sa & sb) / len(sa | sb), (a, b)
        assert row["passed"] == (row["jaccard"] > lsh.threshold)


@pytest.mark.parametrize("local", [0, 1_000_000], ids=["distributed", "in-one-task"])
def test_against_brute_force_oracle(spark, tmp_path, local):
    """Candidate pairs, verification and components computed in Spark's shuffles, or in one task (small inputs)."""
    texts = synthetic_corpus()
    settings = {"local_components_max_edges": local, "local_candidates_max_band_keys": local}
    clusters, removed, survivors, metrics = run(spark, tmp_path, texts, **settings)
    truth = exact_jaccard_pairs(texts)
    # The job's verified Jaccard is exact: equal to the oracle's, pair by pair.
    verified = checked_pairs(tmp_path / "run")
    assert verified and all(r["jaccard"] == truth[(r["u"], r["v"])] for r in verified)
    similar = [p for p, j in truth.items() if j >= 0.85]
    together = [p for p in similar if p[0] in clusters and clusters[p[0]][0] == clusters.get(p[1], (None,))[0]]
    assert len(similar) >= 35 and len(together) / len(similar) >= 0.95
    # Verification on: every removed document has a cluster mate above the threshold.
    for doc in removed:
        mates = [o for o, c in clusters.items() if o != doc and c[0] == clusters[doc][0]]
        assert any(truth[tuple(sorted((doc, o)))] > 0.8 for o in mates), doc
    # Every cluster keeps exactly one document, the lowest id, and cluster_id names it.
    by_cluster: dict[str, list[str]] = {}
    for doc, (cluster_id, _size, kept) in clusters.items():
        by_cluster.setdefault(cluster_id, []).append(doc)
        assert kept == (doc == cluster_id)
    for cluster_id, members in by_cluster.items():
        assert min(members) == cluster_id and len(members) == clusters[cluster_id][1] >= 2
    assert removed == {d for d, c in clusters.items() if not c[2]}
    assert survivors | removed == set(texts) and not survivors & removed
    assert not any(d.startswith("far") for d in removed)
    # Exact copies: each is in a cluster with its original; documents without words never match.
    assert all(d in clusters for d in texts if d.startswith("copy"))
    assert {"nowords", "nowords2", "short"} <= survivors and "nowords" not in clusters
    assert metrics["too_short"] == 2 and metrics["exact_duplicate_groups"] == 10
    assert metrics["clusters"] == len(by_cluster)
    assert metrics["verified_pairs"] <= metrics["candidate_pairs"]
    assert {p["size"] for p in metrics["cluster_size_histogram"]} == {len(m) for m in by_cluster.values()}


@pytest.mark.parametrize("local", [0, 1_000_000], ids=["distributed", "in-one-task"])
def test_a_corpus_without_near_duplicates_keeps_everything(spark, tmp_path, local):
    """No candidate pair at all: every step after the signatures runs on nothing (an empty graph in one task)."""
    rng = random.Random(4)
    texts = {f"d{i}": " ".join(f"w{rng.randrange(100000)}" for _ in range(80)) for i in range(6)}
    settings = {"local_components_max_edges": local, "local_candidates_max_band_keys": local}
    clusters, removed, survivors, metrics = run(spark, tmp_path, texts, **settings)
    assert clusters == {} and removed == set() and survivors == set(texts)
    assert metrics["candidate_pairs"] == 0 and metrics["clusters"] == 0


def test_same_output_whatever_the_partitioning(spark, tmp_path):
    texts = synthetic_corpus(seed=5)
    first = run(spark, tmp_path, texts, name="a", partitions=1)  # pairs and clusters in one task
    distributed = {"local_components_max_edges": 0, "local_candidates_max_band_keys": 0}
    second = run(spark, tmp_path, texts, name="b", partitions=7, batch_docs=7, **distributed)
    assert first[:3] == second[:3]
    figures = ("exact_duplicate_groups", "exact_duplicate_copies", "candidate_pairs", "verified_pairs", "clusters")
    figures += ("anchor_rounds", "cluster_size_histogram", "largest_clusters")
    assert [first[3][f] for f in figures] == [second[3][f] for f in figures]


@pytest.mark.parametrize("preset", ["default", "paper"])
def test_the_pairs_run_in_one_task_up_to_the_band_keys_limit(spark, tmp_path, preset):
    """documents x bands at the limit: one task (step pairs); one key over it: the distributed steps."""
    texts = synthetic_corpus(seed=9)
    limit = len(texts) * PRESETS[preset].bands
    steps = {}
    for name, keys in (("at", limit), ("over", limit - 1)):
        metrics = run(spark, tmp_path, texts, name=name, preset=preset, local_candidates_max_band_keys=keys)[3]
        steps[name] = {s["step"] for s in metrics["steps"]}
    assert "pairs" in steps["at"] and not {"exact", "candidates", "involved_ids"} & steps["at"]
    assert {"exact", "candidates", "involved_ids"} <= steps["over"] and "pairs" not in steps["over"]


def test_giant_bucket_stays_linear(spark, tmp_path):
    boilerplate = " ".join(f"term{i}" for i in range(80))
    texts = {f"b{i:05d}": f"{boilerplate} item {i}" for i in range(3000)}
    clusters, removed, survivors, metrics = run(spark, tmp_path, texts)
    assert survivors == {"b00000"} and len(removed) == 2999
    # At most two pairs per member per band, not n^2/2 = 4.5 million.
    assert metrics["candidate_pairs"] <= 2 * 3000 * metrics["bands"]
    assert metrics["largest_clusters"][0]["size"] == 3000


@pytest.mark.parametrize(
    ("keep", "extra", "expected"),
    [
        ({"keep": "longest"}, {}, "x3"),
        ({"keep": "column", "keep_column": "year"}, {"year": {"x1": 2020, "x2": 2010, "x3": 2030}}, "x2"),
        (
            {"keep": "column", "keep_column": "year", "keep_descending": "true"},
            {"year": {"x1": 2020, "x2": 2010, "x3": 2030}},
            "x3",
        ),
    ],
)
def test_keep_policies(spark, tmp_path, keep, extra, expected):
    body = " ".join(f"word{i}" for i in range(200))
    texts = {"x1": body, "x2": body + " tail", "x3": body + " a longer tail"}
    clusters, removed, survivors, _ = run(spark, tmp_path, texts, columns=extra, **keep)
    assert survivors == {expected} and removed == {"x1", "x2", "x3"} - {expected}
    assert {c[0] for c in clusters.values()} == {expected}


def test_paper_preset_verifies_edit_similarity(spark, tmp_path):
    texts = synthetic_corpus(seed=11)
    clusters, removed, _, metrics = run(spark, tmp_path, texts, preset="paper")
    assert metrics["num_perm"] == 9000 and metrics["verify_edit"]
    assert removed and all(not d.startswith("far") for d in removed)


def test_stage_runs_from_the_cli_and_reports(tmp_path, run_cli):
    from tests.helpers import read_output, report, write_jsonl

    texts = synthetic_corpus(seed=2)
    src = write_jsonl(tmp_path / "in.jsonl", [{"id": i, "text": t} for i, t in texts.items()])
    out = tmp_path / "out"
    assert run_cli("run", f"--input={src}", f"--output={out}", "--stages=neardup", "--set", "input.id_column=id") == 0
    data = report(out)
    stage = data["stages"][1]
    assert stage["name"] == "neardup" and stage["rows_in"] == len(texts)
    assert stage["rows_out"] + stage["rows_removed"] == stage["rows_in"]
    assert data["removed_by_reason"] == {"near_duplicate": stage["rows_removed"]}
    assert [p["similarity"] for p in stage["details"]["s_curve"]][:2] == [0.5, 0.55]
    removed = read_output(out / "removed")
    clusters = {r["doc_id"]: r for r in read_output(out / "neardup" / "clusters")}
    assert all(r["reason"] == "near_duplicate" and clusters[r["id"]]["cluster_id"] == r["cluster_id"] for r in removed)
    assert len(read_output(out / "data")) == stage["rows_out"]
