"""`lcp.shares_k_with_next` against pydivsufsort's LCP array (Kasai) and against comparing the suffixes."""

from __future__ import annotations

import numpy as np
import pydivsufsort
import pytest

from dedup_spark.exactsubstr.lcp import shares_k_with_next


@pytest.mark.parametrize("alphabet", [2, 4, 256])
def test_equals_lcp_at_least_k(alphabet: int) -> None:
    rng = np.random.default_rng(alphabet)
    for _ in range(150):
        n = int(rng.integers(0, 300))
        text = rng.integers(0, alphabet, n).astype(np.uint8)
        if n > 20 and rng.random() < 0.5:  # long repeats, and separators (0xFF) between pieces
            start = int(rng.integers(0, n // 2))
            text[n // 2 : n // 2 + 8] = text[start : start + 8]
            text[rng.integers(0, n, 3)] = 0xFF
        sa = pydivsufsort.divsufsort(text)
        lcp = pydivsufsort.kasai(text, sa) if n else np.empty(0, dtype=np.int64)
        for k in (1, 2, 3, 5, 9):
            got = shares_k_with_next(text, sa, k)
            assert got.tolist() == (lcp >= k).tolist()[: n - 1] + [False] * (n > 0)
            brute = [bytes(text[sa[i] : sa[i] + k]) == bytes(text[sa[i + 1] : sa[i + 1] + k]) for i in range(n - 1)]
            brute = [same and sa[i] + k <= n and sa[i + 1] + k <= n for i, same in enumerate(brute)]
            assert got.tolist()[: n - 1] == brute
