"""NearDup's anchored cluster rule against a brute-force oracle: chains and templates never remove a document for
its neighbour's neighbour."""

from __future__ import annotations

import functools
import itertools
import random

import pytest

from dedup_spark.neardup.anchored import anchor_component
from dedup_spark.neardup.normalize import normalize
from dedup_spark.neardup.shingles import word_shingles
from tests.neardup.test_neardup import checked_pairs, run


def oracle_anchors(order: list[str], protected: set[str], edges, verifies) -> dict[str, str]:
    """The rule as written in anchored.py, recomputed from scratch every round with a fresh union-find."""
    undecided, anchor = list(order), {}
    while undecided:
        parent = {m: m for m in undecided}

        def root(m: str, parent: dict[str, str] = parent) -> str:
            while parent[m] != m:
                m = parent[m]
            return m

        for u, v in edges:
            if u in parent and v in parent:
                parent[root(u)] = root(v)
        keepers: dict[str, str] = {}
        for m in undecided:  # keep order: the first member of each part is its keeper
            keeper = keepers.setdefault(root(m), m)
            if m == keeper:
                anchor[m] = m
            elif m not in protected and verifies(keeper, m):
                anchor[m] = keeper
        undecided = [m for m in undecided if m not in anchor]
    return anchor


def jaccard(a: str, b: str) -> float:
    sa, sb = set(word_shingles(normalize(a), 5)), set(word_shingles(normalize(b), 5))
    return len(sa & sb) / len(sa | sb)


@pytest.mark.parametrize("seed", range(30))
def test_anchor_component_equals_the_oracle(seed):
    rng = random.Random(seed)
    members = [f"d{i:02d}" for i in range(rng.randint(1, 25))]
    rng.shuffle(members)
    protected = set(rng.sample(members, rng.randint(0, min(3, len(members)))))
    edges = [p for p in itertools.combinations(members, 2) if rng.random() < 0.2]
    passes = {p: rng.random() < 0.6 for p in itertools.permutations(members, 2)}
    verifies = lambda keeper, member: passes[(keeper, member)]  # noqa: E731
    anchor, rounds = anchor_component(members, protected, edges, verifies)
    assert anchor == oracle_anchors(members, protected, edges, verifies)
    assert all(anchor[p] == p for p in protected) and 1 <= rounds <= max(1, len(members))
    assert all(anchor[m] == m or verifies(anchor[m], m) for m in members)


def test_a_chain_is_cut_into_anchored_clusters():
    order = [f"c{i}" for i in range(10)]
    edges = list(itertools.pairwise(order))
    near = lambda keeper, member: abs(int(keeper[1:]) - int(member[1:])) <= 2  # noqa: E731
    anchor, rounds = anchor_component(order, set(), edges, near)
    assert anchor == {"c0": "c0", "c1": "c0", "c2": "c0", "c3": "c3", "c4": "c3", "c5": "c3", "c6": "c6"} | {
        "c7": "c6",
        "c8": "c6",
        "c9": "c9",
    }
    assert rounds == 4


def chain_and_template_corpus(chain: int, pages: int, seed: int = 7) -> dict[str, str]:
    """A chain of documents, each one word away from the previous, and pages that share a 150-word template and
    differ in a tail of 5-40 words: both join far-apart documents through verified pairs."""
    rng = random.Random(seed)
    vocabulary = [f"w{i}" for i in range(20000)]
    words = [rng.choice(vocabulary) for _ in range(200)]
    texts = {}
    for i in range(chain):
        texts[f"chain{i:04d}"] = " ".join(words)
        words = list(words)
        words[rng.randrange(len(words))] = rng.choice(vocabulary)
    template = " ".join(rng.choice(vocabulary) for _ in range(150))
    for i in range(pages):
        tail = " ".join(rng.choice(vocabulary) for _ in range(rng.randint(5, 40)))
        texts[f"page{i:05d}"] = f"{template} {tail}"
    return texts


@pytest.mark.parametrize("local", [0, 1_000_000], ids=["distributed", "in-one-task"])
@pytest.mark.parametrize("chain, pages", [(200, 1500), pytest.param(1000, 10000, marks=pytest.mark.slow)])
def test_chains_and_templates_on_spark(spark, tmp_path, chain, pages, local):
    """The clusters computed in the distributed steps, or in one task (clusters_in_one_task.py)."""
    texts = chain_and_template_corpus(chain, pages)
    results = {}
    for rule in ("components", "anchored"):
        settings = {"cluster_rule": rule, "local_components_max_edges": local}
        clusters, removed, _survivors, metrics = run(spark, tmp_path, texts, name=rule, **settings)
        keeper_jaccard = {doc: jaccard(texts[clusters[doc][0]], texts[doc]) for doc in removed}
        results[rule] = clusters, removed, metrics, keeper_jaccard

    clusters, removed, metrics, keeper_jaccard = results["anchored"]
    steps = {s["step"] for s in metrics["steps"]}
    assert ("anchors" in steps and "components/round-0" in steps) == (local == 0), steps
    # The oracle on the job's own verified pairs, verifying with Jaccard recomputed from the strings.
    edges = [(r["u"], r["v"]) for r in checked_pairs(tmp_path / "anchored") if r["passed"]]
    shingles = functools.cache(lambda doc: set(word_shingles(normalize(texts[doc]), 5)))
    verifies = lambda k, m: len(shingles(k) & shingles(m)) / len(shingles(k) | shingles(m)) > 0.8  # noqa: E731
    nodes = sorted({d for edge in edges for d in edge})
    want = {}
    for kind in ("chain", "page"):  # chain and page documents never verify together: two oracle runs
        want |= oracle_anchors([d for d in nodes if d.startswith(kind)], set(), edges, verifies)
    assert removed == {d for d, k in want.items() if d != k}
    assert all(clusters[d][0] == want[d] for d in removed)
    assert min(keeper_jaccard.values()) > 0.8 and metrics["removed_not_verified_with_keeper"] == 0
    assert metrics["cluster_rule"] == "anchored" and metrics["anchor_rounds"] > chain / 10  # the chain: ~4 per round
    # Clusters are the anchored ones: sizes and kept flags agree with the oracle.
    for doc, (cluster_id, size, kept) in clusters.items():
        assert kept == (doc == cluster_id) and size == sum(1 for k in want.values() if k == cluster_id) >= 2

    components_clusters, components_removed, components_metrics, components_jaccard = results["components"]
    # Components join the whole chain and nearly every page: far-apart documents are removed.
    assert len({c for c, _, _ in components_clusters.values() if c.startswith("chain")}) == 1
    assert len(components_removed) > len(removed)
    not_verified = sum(1 for j in components_jaccard.values() if j <= 0.8)
    assert not_verified > pages / 10 and components_metrics["removed_not_verified_with_keeper"] == not_verified


def test_anchored_checks_pairs_that_the_preset_did_not_verify(spark, tmp_path):
    rng = random.Random(11)
    words = [f"w{rng.randrange(5000)}" for _ in range(120)]
    half = [w if i % 2 else f"x{i}" for i, w in enumerate(words)]  # every other word changed: Jaccard near 0
    texts = {"a": " ".join(words), "b": " ".join(words[:80] + half[80:])}  # one pair: a component of two
    assert 0.3 < jaccard(texts["a"], texts["b"]) < 0.7
    # No verification, and 50 bands of 2 rows: a and b are candidates, so components join them unchecked.
    settings = {"preset": "text-dedup", "bands": 50, "rows": 2}
    _, removed, _, _ = run(spark, tmp_path, texts, name="components", cluster_rule="components", **settings)
    assert removed == {"b"}
    _, removed, _, metrics = run(spark, tmp_path, texts, name="anchored", cluster_rule="anchored", **settings)
    assert removed == set() and metrics["removed_not_verified_with_keeper"] == 0  # b fails a's keeper test
