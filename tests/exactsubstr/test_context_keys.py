"""Context keys (`exactsubstr/context_keys.py`) against brute force: the w-grams found are exactly those that are
the minimum of some window, and any two super-k-mers holding one window share a key."""

from __future__ import annotations

import random

import numpy as np
import pytest

from dedup_spark.exactsubstr import context_keys
from dedup_spark.exactsubstr.context_keys import _minima_and_positions, superkmers_with_keys
from dedup_spark.exactsubstr.minimizers import superkmers_batch, wgram_hashes, window_minimizers


def _texts(rng: random.Random) -> list[bytes]:
    """A few texts over a small alphabet, most holding a slice of one shared text (so windows repeat)."""
    alphabet = rng.choice(["ab", "abc", "abcdefgh"])
    shared = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 60)))
    texts = []
    for _ in range(rng.randint(1, 6)):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        if shared and rng.random() < 0.6:
            a = rng.randint(0, len(shared))
            b, at = rng.randint(a, len(shared)), rng.randint(0, len(text))
            text = text[:at] + shared[a:b] + text[at:]
        texts.append(text.encode())
    return texts


@pytest.mark.parametrize("segment", [context_keys._SEGMENT, 7])  # 7: texts cut into many overlapping segments
def test_minima_and_the_wgrams_that_are_the_minimum_of_some_window(monkeypatch, segment):
    monkeypatch.setattr(context_keys, "_SEGMENT", segment)
    rng = random.Random(11)
    for _ in range(200):
        k = rng.randint(2, 14)
        w = rng.randint(1, k)
        for data in _texts(rng):
            text = np.frombuffer(data, dtype=np.uint8)
            minima, positions, hashes = _minima_and_positions(text, k, w)
            assert minima.tolist() == window_minimizers(text, k, w).tolist()
            want = set()
            if len(data) >= k:
                grams = wgram_hashes(text, w)
                for i in range(len(data) - k + 1):
                    inside = grams[i : i + k - w + 1]
                    want.update(i + j for j in np.flatnonzero(inside == inside.min()).tolist())
                assert hashes.tolist() == grams[positions].tolist()
            assert positions.tolist() == sorted(want)


def test_superkmers_sharing_a_window_share_a_key():
    rng = random.Random(12)
    pairs_seen = 0
    for _ in range(300):
        k = rng.randint(2, 14)
        w = rng.randint(1, k)
        texts = _texts(rng)
        runs, run, key = superkmers_with_keys(texts, k, w)
        expected = superkmers_batch(texts, [max(0, len(t) - k + 1) for t in texts], k, w)
        for got, want in zip(runs, expected, strict=True):
            assert got.tolist() == want.tolist()
        assert np.all(np.diff(run) >= 0) and key.dtype == np.int32
        keys = [set(key[run == r].tolist()) for r in range(len(runs.piece))]
        windows = [
            {texts[p][i : i + k] for i in range(a, b)}
            for p, a, b in zip(runs.piece.tolist(), runs.start.tolist(), runs.end.tolist(), strict=True)
        ]
        for a in range(len(windows)):
            for b in range(a + 1, len(windows)):
                if windows[a] & windows[b]:
                    pairs_seen += 1
                    assert keys[a] & keys[b]
    assert pairs_seen > 100  # the texts really repeat windows across super-k-mers
