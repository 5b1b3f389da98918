"""Minimizers and super-k-mers against brute force, and the routing invariant they must keep."""

from __future__ import annotations

import random

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from dedup_spark.exactsubstr import minimizers
from dedup_spark.exactsubstr.minimizers import (
    HASH_BASE,
    minimizer_counts,
    sliding_min,
    superkmers,
    superkmers_batch,
    superkmers_with_copies,
    wgram_hashes,
    window_minimizers,
)

MASK = (1 << 64) - 1


def brute_mix(x: int) -> int:
    """splitmix64 finalizer on Python ints (independent of the numpy version)."""
    x ^= x >> 30
    x = (x * 0xBF58476D1CE4E5B9) & MASK
    x ^= x >> 27
    x = (x * 0x94D049BB133111EB) & MASK
    x ^= x >> 31
    return x


def brute_wgram(gram: bytes) -> int:
    h = 0
    for byte in gram:
        h = (h * HASH_BASE + byte) & MASK
    return brute_mix(h)


def brute_minimizers(data: bytes, k: int, w: int) -> list[int]:
    return [min(brute_wgram(data[i + j : i + j + w]) for j in range(k - w + 1)) for i in range(len(data) - k + 1)]


def random_bytes(rng: random.Random, n: int, alphabet: bytes = b"ab") -> bytes:
    return bytes(rng.choice(alphabet) for _ in range(n))


@pytest.mark.parametrize("w", [1, 2, 3, 5, 8, 16, 17, 32])
def test_wgram_hashes_match_brute_force(w: int) -> None:
    rng = random.Random(w)
    data = bytes(rng.randrange(256) for _ in range(90))
    got = wgram_hashes(np.frombuffer(data, dtype=np.uint8), w)
    assert got.dtype == np.uint64
    assert got.tolist() == [brute_wgram(data[i : i + w]) for i in range(len(data) - w + 1)]


@pytest.mark.parametrize(("k", "w"), [(1, 1), (2, 1), (5, 5), (8, 3), (12, 4), (20, 16), (33, 16)])
def test_window_minimizers_match_brute_force(k: int, w: int) -> None:
    rng = random.Random(k * 100 + w)
    for n in [0, k - 1, k, k + 1, 150]:
        data = random_bytes(rng, n, b"abc\xd0\x96")
        got = window_minimizers(np.frombuffer(data, dtype=np.uint8), k, w)
        assert got.tolist() == brute_minimizers(data, k, w)


def test_window_minimizers_segments_do_not_change_values(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(7)
    data = np.frombuffer(random_bytes(rng, 3000, b"abcd"), dtype=np.uint8)
    whole = window_minimizers(data, 40, 8)
    monkeypatch.setattr(minimizers, "_SEGMENT_WINDOWS", 37)
    assert np.array_equal(window_minimizers(data, 40, 8), whole)


@pytest.mark.parametrize("width", [1, 2, 3, 7, 50, 99, 100, 101])
def test_sliding_min_matches_naive(width: int) -> None:
    values = np.random.default_rng(width).integers(0, 2**64, size=100, dtype=np.uint64, endpoint=False)
    got = sliding_min(values, width)
    expected = sliding_window_view(values, width).min(axis=1) if width <= 100 else values[:0]
    assert np.array_equal(got, expected)


def test_identical_windows_get_identical_minimizers_anywhere() -> None:
    """The routing invariant: a window's value depends only on its bytes, in any piece at any offset."""
    rng = random.Random(3)
    k, w = 24, 6
    pieces = [random_bytes(rng, rng.randrange(0, 400), b"ab\xe4\xb8\xad") for _ in range(12)]
    seen: dict[bytes, int] = {}
    for data in pieces:
        values = window_minimizers(np.frombuffer(data, dtype=np.uint8), k, w)
        for i, value in enumerate(values.tolist()):
            assert seen.setdefault(data[i : i + k], value) == value
    assert len(seen) > 100  # the check compared many distinct windows, with many repeats (alphabet of 5)


def test_superkmers_runs_tile_owned_starts_and_carry_window_values() -> None:
    rng = random.Random(11)
    k, w = 16, 4
    data = random_bytes(rng, 500, b"abcdef")
    values = window_minimizers(np.frombuffer(data, dtype=np.uint8), k, w)
    for owned in [0, 1, 100, len(data) - k + 1, len(data) + 50]:
        mins, starts, ends = superkmers(data, owned, k, w)
        n_owned = max(0, min(owned, len(data) - k + 1))
        assert starts.dtype == ends.dtype == np.int64 and mins.dtype == np.uint64
        assert starts.tolist() == ([0] + ends[:-1].tolist() if n_owned else [])
        assert (ends[-1] if n_owned else 0) == n_owned
        assert (ends > starts).all() and (mins[1:] != mins[:-1]).all()
        for value, s, e in zip(mins.tolist(), starts.tolist(), ends.tolist(), strict=True):
            assert (values[s:e] == value).all()
    assert len(superkmers(data, 10**6, k, w)[0]) > 10  # real text has many runs


def test_superkmers_short_piece_and_bad_arguments() -> None:
    assert all(len(a) == 0 for a in superkmers(b"abc", 5, 4, 2))
    with pytest.raises(ValueError, match="w=5"):
        superkmers(b"abcdef", 2, 4, 5)
    with pytest.raises(ValueError, match="owned"):
        superkmers(b"abcdef", -1, 4, 2)


@pytest.mark.parametrize(
    ("k", "w", "max_len"), [(1, 1, 60), (2, 1, 60), (6, 3, 60), (10, 10, 60), (40, 7, 400), (100, 32, 3000)]
)
def test_superkmers_batch_equals_per_piece(k: int, w: int, max_len: int) -> None:
    """The compiled batch pass (`minimizer_kernel`) against the numpy path of one piece at a time."""
    rng = random.Random(k * 1000 + w)
    datas = [
        random_bytes(rng, rng.randrange(0, max_len), rng.choice([b"aab\xff", b"ab", b"abcdefgh "])) for _ in range(40)
    ]
    owned = [rng.choice([0, 1, 5, 10**6, rng.randrange(0, max_len)]) for _ in datas]
    got = superkmers_batch(datas, owned, k, w)
    expected = [superkmers(d, o, k, w) for d, o in zip(datas, owned, strict=True)]
    assert got.piece.tolist() == [i for i, e in enumerate(expected) for _ in e[0]]
    assert got.minimizer.tolist() == [v for e in expected for v in e[0].tolist()]
    assert got.start.tolist() == [v for e in expected for v in e[1].tolist()]
    assert got.end.tolist() == [v for e in expected for v in e[2].tolist()]


def test_superkmers_batch_grows_past_its_first_capacity() -> None:
    """k = w = 1 on text without two equal neighbours: one run per byte, far more than the run arrays start with."""
    data = bytes(range(256)) * 200
    got = superkmers_batch([data, data], [len(data), len(data)], 1, 1)
    assert got.start.tolist() == list(range(len(data))) * 2
    assert got.end.tolist() == list(range(1, len(data) + 1)) * 2
    assert np.array_equal(got.minimizer[: len(data)], window_minimizers(np.frombuffer(data, dtype=np.uint8), 1, 1))


@pytest.mark.parametrize(("k", "w"), [(1, 1), (3, 1), (6, 3), (10, 10), (12, 4)])
def test_copies_count_the_minimum_w_grams_of_each_run(k: int, w: int) -> None:
    rng = random.Random(k * 31 + w)
    datas = [random_bytes(rng, rng.randrange(0, 80), rng.choice([b"ab", b"abc", b"abcdefgh"])) for _ in range(30)]
    owned = [rng.choice([0, 1, 10**6, rng.randrange(0, 80)]) for _ in datas]
    runs, copies = superkmers_with_copies(datas, owned, k, w)
    assert copies.dtype == np.int64 and len(copies) == len(runs.piece)
    for p, value, start, end, got in zip(*(a.tolist() for a in (*runs, copies)), strict=True):
        grams = [brute_wgram(datas[p][q : q + w]) for q in range(start, end + k - w)]
        assert got == min(2, grams.count(value))


@pytest.mark.parametrize("seed", range(6))
def test_every_repeated_window_has_a_minimizer_with_two_copies(seed: int) -> None:
    """The filter ExactSubstr's chunks rely on: windows whose minimizer's copies sum to < 2 occur once, and the
    sums are taken over pieces that overlap (context bytes) as ExactSubstr's pieces do."""
    rng = random.Random(seed)
    k, w = rng.choice([(4, 2), (8, 3), (12, 12), (16, 5)])
    docs = [random_bytes(rng, rng.randrange(0, 120), rng.choice([b"ab", b"abcd", b"abcdefghij"])) for _ in range(8)]
    docs += [docs[0][3:40] + docs[1][:20]]  # copies across documents
    datas, owned = [], []
    for doc in docs:  # pieces of up to 25 window starts, each with k - 1 bytes of context
        for lo in range(0, max(len(doc) - k + 1, 0), 25):
            datas.append(doc[lo : lo + 25 + k - 1])
            owned.append(25)
    runs, copies = superkmers_with_copies(datas, owned, k, w)
    total: dict[int, int] = {}
    for value, c in zip(runs.minimizer.tolist(), copies.tolist(), strict=True):
        total[value] = total.get(value, 0) + c
    windows = [doc[i : i + k] for doc in docs for i in range(len(doc) - k + 1)]
    repeated = {x for x in windows if windows.count(x) >= 2}
    assert repeated  # the test means something
    for window in repeated:
        assert total[window_minimizers(np.frombuffer(window, dtype=np.uint8), k, w)[0]] >= 2
    unique_values = [v for v, t in total.items() if t < 2]
    assert unique_values  # and the filter filters something


def test_superkmers_batch_empty() -> None:
    got = superkmers_batch([], [], 5, 2)
    assert len(got.piece) == len(got.minimizer) == 0
    assert len(superkmers_batch([b"ab", b""], [1, 0], 5, 2).piece) == 0


def test_minimizer_values_spread_over_partitions() -> None:
    """Load balance (not correctness): runs of random text land evenly on value % 4."""
    rng = random.Random(5)
    data = random_bytes(rng, 20000, b"abcdefgh")
    mins, _, _ = superkmers(data, len(data), 32, 8)
    shares = np.bincount((mins % np.uint64(4)).astype(np.int64), minlength=4) / len(mins)
    assert shares.min() > 0.15


@pytest.mark.parametrize("rows", [0, 1, 500])
def test_minimizer_counts_equal_grouping_by_hand(rows: int) -> None:
    """`minimizer_counts` against dictionaries: one row per (chunk, minimizer), copies summed then capped at 2,
    chunks and corpus copies per minimizer."""
    rng = np.random.default_rng(rows)
    chunks = rng.integers(0, 4, rows).astype(np.int64)
    values = rng.integers(-3, 40, rows).astype(np.int64)  # few values: repeats within and across chunks
    copies = rng.integers(0, 3, rows).astype(np.int64)
    summed: dict[tuple[int, int], int] = {}
    for c, v, n in zip(chunks.tolist(), values.tolist(), copies.tolist(), strict=True):
        summed[(c, v)] = summed.get((c, v), 0) + n
    capped = {pair: min(n, 2) for pair, n in summed.items()}
    holders = {v: [c for (c, value) in capped if value == v] for (_, v) in capped}
    want = sorted((c, v, n, len(holders[v]), sum(capped[(h, v)] for h in holders[v])) for (c, v), n in capped.items())
    got = list(zip(*(column.tolist() for column in minimizer_counts(chunks, values, copies)), strict=True))
    assert got == sorted(got, key=lambda row: (row[1], row[0]))  # sorted by minimizer, then chunk
    assert sorted(got) == want
