"""Unit tests for dedup_spark.neardup.jaccard (no Spark): the compiled count against Python sets of shingle strings,
with real hashes and with hashes made to collide."""

from __future__ import annotations

import itertools
import random

import pytest

import dedup_spark.neardup.jaccard as jaccard_module
from dedup_spark.neardup.jaccard import distinct_shingles, exact_jaccard
from dedup_spark.neardup.normalize import normalize
from dedup_spark.neardup.shingles import char_shingles, word_shingles

SHINGLERS = {"word": word_shingles, "char": char_shingles}


def oracle(a: str, b: str, n: int, unit: str) -> float:
    """Jaccard of the two normalised texts' sets of shingle strings (the module docstring's definition)."""
    set_a, set_b = set(SHINGLERS[unit](normalize(a), n)), set(SHINGLERS[unit](normalize(b), n))
    union = len(set_a | set_b)
    return len(set_a & set_b) / union if union else 1.0


def texts(rng: random.Random, count: int) -> list[str]:
    """Near-duplicate families over a small vocabulary (many repeated shingles), plus empty and short texts."""
    vocabulary = ["the", "a", "fox", "dog", "über", "日本", "x", "🙂", "and", "of"]
    out = ["", "...", "one", "a b c d", "a b c d e", "a b c d e f"]
    for _ in range(count):
        words = [rng.choice(vocabulary) for _ in range(rng.randint(0, 60))]
        out.append(" ".join(words))
        edited = list(words)
        for _ in range(rng.randint(0, 4)):  # a few words changed, dropped or added
            if edited:
                edited[rng.randrange(len(edited))] = rng.choice(vocabulary)
            edited.insert(rng.randint(0, len(edited)), rng.choice(vocabulary))
        out.append(" ".join(edited))
    return out


def jaccard(a: str, b: str, n: int, unit: str) -> float:
    shingles_a = distinct_shingles(normalize(a).encode(), n, unit)
    return exact_jaccard(shingles_a, distinct_shingles(normalize(b).encode(), n, unit), n, unit)


@pytest.mark.parametrize(("unit", "n"), [("word", 5), ("word", 2), ("char", 3)])
def test_equals_the_sets_of_shingle_strings(unit, n):
    sample = texts(random.Random(n), 40)
    for a, b in itertools.combinations(sample[:30], 2):
        assert jaccard(a, b, n, unit) == oracle(a, b, n, unit), (a, b)
    for a, b in zip(sample[0::2], sample[1::2], strict=True):  # each text with its edited copy
        assert jaccard(a, b, n, unit) == oracle(a, b, n, unit), (a, b)


def test_distinct_shingles_holds_each_shingle_once():
    text = "a b c a b c a b c d"
    shingles = distinct_shingles(text.encode(), 3)
    found = {shingles.buf[s:e].tobytes() for s, e in zip(shingles.starts, shingles.ends, strict=True)}
    assert found == {s.encode() for s in word_shingles(text, 3)}
    assert len(shingles.hashes) == len(found) == 4 and shingles.exact
    assert list(shingles.hashes) == sorted(shingles.hashes)


@pytest.mark.parametrize("buckets", [1, 3, 64])
def test_colliding_hashes_are_decided_on_the_bytes(monkeypatch, buckets):
    """With hashes reduced to a few values, most equal hashes hold different shingles, inside one document and
    across two: the score must still be that of the strings."""
    real = jaccard_module.hash_spans
    monkeypatch.setattr(jaccard_module, "hash_spans", lambda *args: real(*args) % buckets)
    sample = texts(random.Random(buckets), 15)
    for a, b in itertools.combinations(sample, 2):
        assert jaccard(a, b, 2, "word") == oracle(a, b, 2, "word"), (a, b)
    # One shingle each, no collision inside either document, the same hash across them: the bytes differ.
    assert jaccard("a b c d e", "f g h i j", 5, "word") == 0.0
    assert jaccard("a b c d e", "A, b: c d e", 5, "word") == 1.0
