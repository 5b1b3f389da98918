"""NearDup quality on real text (issue #13): does NearDup find what a person calls a near-duplicate?

    python benchmarks/bench_quality.py [--cache DIR] [--sets bible,django-docs,...] [--preset P] [--set K=V ...]
        [--out benchmarks/results/quality.json]

Builds the pair sets of `quality_sets.py` (once, into the corpora cache) and bbcnews (tests/corpora.py), runs
`dedup-spark run --stages=neardup` on each as a user runs it, and scores the clusters against a truth that shares
no code with dedup-spark: Jaccard of word 5-gram sets with the tokenizer `re.findall(r"\\w+", text.lower())`
(a document of fewer than 5 words is one shingle, all its words).

  recall     of the aligned pairs with truth Jaccard >= 0.85, the share that dedup-spark deduplicates: at most
             one of the two documents is left in the output (bbcnews has no alignment: its pairs are all pairs with
             Jaccard >= 0.85, found via an inverted index). `pairs_clustered` counts the pairs in one cluster:
             under the anchored cluster rule a pair can be caught in two clusters (A removed against a keeper K,
             B kept because it is too far from K), so that figure can be lower than the caught one.
  precision  of the documents dedup-spark removed, the share whose truth Jaccard with the kept document of their
             cluster (cluster_id is the kept document's id) is >= 0.75

Per set it also lists up to 10 missed pairs (with our normaliser's Jaccard beside the truth and an excerpt of both
texts around the first word where our normaliser sees them differ) and up to 10 imprecise removals.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq

if __package__ in (None, ""):  # run as a script: make `benchmarks` and `tests` importable, as under pytest
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.quality_sets import CACHE, SETS, build, load_pairs
from dedup_spark.neardup.normalize import normalize
from dedup_spark.neardup.shingles import shingle_hashes

RECALL_THRESHOLD = 0.85
PRECISION_THRESHOLD = 0.75
SHOWN = 10
WORD = re.compile(r"\w+")


def truth_shingles(text: str) -> set[tuple[str, ...]]:
    """Word 5-grams of `\\w+` tokens of the lower-cased text; fewer than 5 words: one shingle of all of them."""
    words = WORD.findall(text.lower())
    if len(words) < 5:
        return {tuple(words)} if words else set()
    return {tuple(words[i : i + 5]) for i in range(len(words) - 4)}


def jaccard(a: set, b: set) -> float:
    union = len(a | b)
    return len(a & b) / union if union else 0.0


def similar_pairs(
    texts: dict[str, str], threshold: float = RECALL_THRESHOLD, shingles: Callable[[str], set] | None = None
) -> dict[tuple[str, str], float]:
    """Every pair of documents with Jaccard >= threshold, through an inverted index of shingles (the truth's
    `truth_shingles` unless `shingles` is given)."""
    sets = {doc: (shingles or truth_shingles)(text) for doc, text in texts.items()}
    postings: dict[tuple[str, ...], list[str]] = {}
    for doc, shingles in sets.items():
        for shingle in shingles:
            postings.setdefault(shingle, []).append(doc)
    shared: Counter = Counter()
    for docs in postings.values():
        shared.update(itertools.combinations(sorted(docs), 2))
    pairs = {(a, b): n / (len(sets[a]) + len(sets[b]) - n) for (a, b), n in shared.items()}
    return {pair: j for pair, j in pairs.items() if j >= threshold}


def first_difference(a: str, b: str, width: int = 200) -> tuple[str, str]:
    """Excerpts of about `width` characters of a and b around the first whitespace-separated word whose
    normalised form (dedup-spark's `normalize`) differs: where NearDup starts to see two different texts."""
    words_a, words_b = list(re.finditer(r"\S+", a)), list(re.finditer(r"\S+", b))
    i = 0
    while i < min(len(words_a), len(words_b)) and normalize(words_a[i].group()) == normalize(words_b[i].group()):
        i += 1

    def excerpt(text: str, words: list[re.Match]) -> str:
        at = words[i].start() if i < len(words) else len(text)
        start = max(0, at - width // 2)
        return text[start : start + width].replace("\n", " ")

    return excerpt(a, words_a), excerpt(b, words_b)


def kept_symbols(text: str, top: int = 5) -> dict[str, int]:
    """The characters other than word characters and spaces that survive our normaliser, most frequent first:
    symbols such as ` = ~ that join or add words the \\w+ truth never sees."""
    counts = Counter(c for c in normalize(text) if not (c.isspace() or WORD.match(c)))
    return dict(counts.most_common(top))


def normalised_jaccard(a: str, b: str) -> float:
    """Jaccard of the two texts' shingle sets as dedup-spark's normaliser and shingler see them."""
    return jaccard(set(shingle_hashes(a).tolist()), set(shingle_hashes(b).tolist()))


def read_table(path: Path) -> list[dict]:
    return pq.read_table(path).to_pylist()


def score(texts: dict[str, str], pairs: list[tuple[str, str]] | None, out: Path) -> dict:
    """Figures of one dedup-spark run (output folder `out`) against the truth.

    `pairs`: the aligned pairs (their truth Jaccard decides which count), or None for all similar pairs.
    """
    clusters = read_table(out / "neardup" / "clusters")
    cluster_of = {r["doc_id"]: r["cluster_id"] for r in clusters}
    removed = sorted(r["id"] for r in read_table(out / "removed"))
    shingles: dict[str, set] = {}

    def truth(a: str, b: str) -> float:
        for doc in (a, b):
            if doc not in shingles:
                shingles[doc] = truth_shingles(texts[doc])
        return jaccard(shingles[a], shingles[b])

    if pairs is None:
        graded = similar_pairs(texts)
        middle = None
    else:
        all_graded = {(a, b): truth(a, b) for a, b in pairs}
        graded = {p: j for p, j in all_graded.items() if j >= RECALL_THRESHOLD}
        middle = sum(PRECISION_THRESHOLD <= j < RECALL_THRESHOLD for j in all_graded.values())
    together = [p for p in graded if p[0] in cluster_of and cluster_of[p[0]] == cluster_of.get(p[1])]
    gone = set(removed)
    caught = [p for p in graded if p[0] in gone or p[1] in gone]
    missed = sorted(set(graded) - set(caught), key=lambda p: (-graded[p], p))
    imprecise = []
    for doc in removed:
        j = truth(doc, cluster_of[doc])
        if j < PRECISION_THRESHOLD:
            kept = cluster_of[doc]
            ours = normalised_jaccard(texts[doc], texts[kept])
            imprecise.append(
                {"removed": doc, "kept": kept, "jaccard": round(j, 4), "normalised_jaccard": round(ours, 4)}
            )

    def show_missed(a: str, b: str) -> dict:
        excerpt_a, excerpt_b = first_difference(texts[a], texts[b])
        return {
            "a": a,
            "b": b,
            "jaccard": round(graded[(a, b)], 4),
            "normalised_jaccard": round(normalised_jaccard(texts[a], texts[b]), 4),
            "clusters": [cluster_of.get(a), cluster_of.get(b)],
            "kept_symbols_a": kept_symbols(texts[a]),
            "kept_symbols_b": kept_symbols(texts[b]),
            "excerpt_a": excerpt_a,
            "excerpt_b": excerpt_b,
        }

    return {
        "documents": len(texts),
        "bytes": sum(len(t.encode()) for t in texts.values()),
        "aligned_pairs": None if pairs is None else len(pairs),
        "pairs_at_least_0.85": len(graded),
        "pairs_0.75_to_0.85": middle,
        "pairs_clustered": len(together),
        "pairs_caught": len(caught),
        "recall": round(len(caught) / len(graded), 4) if graded else None,
        "removed": len(removed),
        "precision": round(1 - len(imprecise) / len(removed), 4) if removed else None,
        "missed": [show_missed(a, b) for a, b in missed[:SHOWN]],
        "imprecise": imprecise[:SHOWN],
    }


def load_set(name: str, cache: Path) -> tuple[Path, dict[str, str], list[tuple[str, str]] | None]:
    """(table, texts by id, aligned pairs) of a quality set, or of bbcnews (pairs None: all similar pairs)."""
    if name == "bbcnews":
        from tests.corpora import corpus

        table, pairs = corpus("bbcnews"), None
    else:
        table, pairs_file = build(name, cache)
        pairs = load_pairs(pairs_file)
    texts = {r["id"]: r["text"] for r in pq.read_table(table, columns=["id", "text"]).to_pylist()}
    return table, texts, pairs


def run_dedup_spark(table: Path, out: Path, settings: list[str]) -> float:
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": sys.executable}
    cmd = [
        sys.executable, "-m", "dedup_spark", "run", f"--input={table}", f"--output={out}", "--overwrite",
        "--stages=neardup", "--set", "input.id_column=id",
    ]  # fmt: skip
    for setting in settings:
        cmd += ["--set", setting]
    start = time.monotonic()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"dedup-spark failed on {table}:\n{proc.stderr[-3000:]}")
    return time.monotonic() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=CACHE, help="where the quality sets are built")
    parser.add_argument("--sets", default=",".join([*SETS, "bbcnews"]))
    parser.add_argument("--preset", default="default")
    parser.add_argument("--set", dest="settings", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "quality.json")
    args = parser.parse_args()
    settings = [f"neardup.preset={args.preset}", *args.settings]
    results: dict = {"settings": settings, "truth": "re.findall(r'\\w+', text.lower()) word 5-grams", "sets": {}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.out.parent) as work:
        for name in args.sets.split(","):
            table, texts, pairs = load_set(name, args.cache)
            seconds = run_dedup_spark(table, Path(work) / name, settings)
            figures = score(texts, pairs, Path(work) / name)
            about = "BBC news articles, all pairs" if name == "bbcnews" else SETS[name][1]
            results["sets"][name] = {"about": about, "seconds": round(seconds, 1), **figures}
    args.out.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    print("| set | docs | MB | aligned | J>=0.85 | J .75-.85 | 1 cluster | caught | recall | removed | precision | s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name, s in results["sets"].items():
        print(
            f"| {name} | {s['documents']:,} | {s['bytes'] / 1e6:.1f} | {s['aligned_pairs'] or '-'} "
            f"| {s['pairs_at_least_0.85']:,} | {s['pairs_0.75_to_0.85'] or '-'} | {s['pairs_clustered']:,} "
            f"| {s['pairs_caught']:,} "
            f"| {s['recall']} | {s['removed']:,} | {s['precision']} | {s['seconds']} |"
        )


if __name__ == "__main__":
    main()
