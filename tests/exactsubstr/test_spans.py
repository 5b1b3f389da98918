"""Span arithmetic: merging, window-to-byte spans, UTF-8 widening, code points and cutting."""

from __future__ import annotations

import random

import numpy as np
import pytest

from dedup_spark.exactsubstr.spans import (
    bytes_to_codepoints,
    cut,
    merge_intervals,
    policy_spans,
    policy_window_intervals,
    removal_spans,
    widen_to_utf8,
    window_starts_to_byte_spans,
)
from tests.exactsubstr.exact_oracle import byte_spans, is_continuation, mask_to_codepoint_spans

MIXED = "aé Жд中文😀b"  # 1, 2, 3 and 4 byte characters


def brute_merge(rows: list[tuple[int, int]]) -> list[tuple[int, int]]:
    covered = sorted({p for s, e in rows for p in range(s, e)})
    return byte_spans([p in covered for p in range(max(covered) + 1)]) if covered else []


def test_merge_intervals_cases() -> None:
    assert merge_intervals([]).shape == (0, 2)
    assert merge_intervals([(5, 8), (0, 5)]).tolist() == [[0, 8]]  # touching merges
    assert merge_intervals([(0, 3), (4, 6)]).tolist() == [[0, 3], [4, 6]]
    assert merge_intervals([(0, 10), (2, 3), (9, 12)]).tolist() == [[0, 12]]
    assert merge_intervals([(3, 3), (7, 5)]).tolist() == []  # empty rows vanish
    assert merge_intervals([(0, 2)], np.array([[1, 4]]), []).tolist() == [[0, 4]]
    with pytest.raises(ValueError, match="shape"):
        merge_intervals(np.zeros((2, 3)))


def test_merge_intervals_random_against_brute_force() -> None:
    rng = random.Random(1)
    for _ in range(300):
        rows = [(s, s + rng.randrange(0, 6)) for s in (rng.randrange(0, 40) for _ in range(rng.randrange(0, 8)))]
        assert [tuple(r) for r in merge_intervals(rows).tolist()] == brute_merge(rows)


def test_window_starts_to_byte_spans() -> None:
    assert window_starts_to_byte_spans([(0, 1)], 5).tolist() == [[0, 5]]
    assert window_starts_to_byte_spans([(2, 4), (9, 10)], 5).tolist() == [[2, 8], [9, 14]]
    assert window_starts_to_byte_spans([(2, 4), (7, 10)], 5).tolist() == [[2, 14]]  # bytes overlap
    with pytest.raises(ValueError, match="k=0"):
        window_starts_to_byte_spans([(0, 1)], 0)


def test_widen_to_utf8_each_character_width() -> None:
    data = MIXED.encode()
    # every single byte widens to exactly its character
    offsets = np.cumsum([0] + [len(ch.encode()) for ch in MIXED])
    for i, ch in enumerate(MIXED):
        for b in range(offsets[i], offsets[i + 1]):
            assert widen_to_utf8(data, [(b, b + 1)]).tolist() == [[offsets[i], offsets[i + 1]]], ch
    # spans that widen into each other merge
    j = MIXED.index("😀")
    assert widen_to_utf8(data, [(offsets[j], offsets[j] + 1), (offsets[j] + 2, offsets[j] + 3)]).tolist() == [
        [offsets[j], offsets[j + 1]]
    ]
    with pytest.raises(ValueError, match="outside"):
        widen_to_utf8(data, [(0, len(data) + 1)])


def test_widen_random_against_byte_walk() -> None:
    rng = random.Random(2)
    for _ in range(200):
        data = "".join(rng.choice(MIXED) for _ in range(rng.randrange(1, 30))).encode()
        s = rng.randrange(0, len(data))
        e = rng.randrange(s + 1, len(data) + 1)
        ws, we = s, e
        while ws > 0 and is_continuation(data[ws]):
            ws -= 1
        while we < len(data) and is_continuation(data[we]):
            we += 1
        assert widen_to_utf8(data, [(s, e)]).tolist() == [[ws, we]]
        data[ws:we].decode()  # valid UTF-8 on its own


def test_bytes_to_codepoints() -> None:
    data = MIXED.encode()
    boundaries = [len(MIXED[:i].encode()) for i in range(len(MIXED) + 1)]
    assert bytes_to_codepoints(data, np.array(boundaries)).tolist() == list(range(len(MIXED) + 1))


def test_removal_spans_random_against_brute_force() -> None:
    rng = random.Random(3)
    for _ in range(200):
        text = "".join(rng.choice(MIXED) for _ in range(rng.randrange(0, 25)))
        data = text.encode()
        k = rng.randrange(1, 6)
        n_windows = len(data) - k + 1
        rows = []
        if n_windows > 0:
            for _ in range(rng.randrange(0, 4)):
                s = rng.randrange(0, n_windows)
                rows.append((s, rng.randrange(s, n_windows + 1)))
        mask = [False] * len(data)
        for s, e in rows:
            for i in range(s, e):
                mask[i : i + k] = [True] * k
        expected = mask_to_codepoint_spans(text, mask)
        got = removal_spans(data, rows, k)
        assert [tuple(r) for r in got.tolist()] == expected
        kept = cut(text, got)
        assert kept == "".join(ch for i, ch in enumerate(text) if not any(s <= i < e for s, e in expected))


def test_removal_spans_rejects_windows_past_the_end() -> None:
    with pytest.raises(ValueError, match="do not fit"):
        removal_spans(b"abcdef", [(0, 3)], 5)


def test_cut() -> None:
    assert cut("hello world", [(0, 6)]) == "world"
    assert cut("hello world", []) == "hello world"
    assert cut("Жд中😀x", [(1, 2), (3, 4)]) == "Ж中x"
    assert cut("abc", [(0, 3)]) == ""
    with pytest.raises(ValueError, match="sorted"):
        cut("abcdef", [(2, 4), (1, 3)])
    with pytest.raises(ValueError, match="outside"):
        cut("abc", [(1, 4)])


def test_policies() -> None:
    repeated, non_first = [(0, 2), (6, 8)], [(6, 8)]
    assert policy_window_intervals("strike_all", repeated, non_first).tolist() == [[0, 2], [6, 8]]
    assert policy_window_intervals("keep_first", repeated, non_first).tolist() == [[6, 8]]
    assert policy_spans(b"abcdefghij", 2, "keep_first", repeated, non_first).tolist() == [[6, 9]]
    with pytest.raises(ValueError, match="unknown removal policy"):
        policy_window_intervals("keep_last", repeated, non_first)
