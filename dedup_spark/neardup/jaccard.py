"""Exact Jaccard similarity of two documents' shingle sets, from sorted shingle hashes checked on the bytes (kernels).

Verification must compare shingles as byte strings, never by hash alone (a hash collision would change the
score). Python sets of byte strings do that, at about 1 us per shingle to build (3.7 of the 6.3 s that 1 GB of
linux spent verifying its candidate pairs in one task). Here each document keeps one occurrence of each distinct
shingle hash, sorted (`DistinctShingles`), and two documents' common shingles are counted by a compiled merge of
the two sorted arrays that compares the bytes of every pair of equal hashes. The hashes only find the candidates;
the bytes decide:

- within a document, equal hashes whose bytes differ (a collision) mark the document `exact=False`;
- across two documents, equal hashes whose bytes differ make the count give up;

and in both cases `exact_jaccard` computes the answer from Python sets of the shingles' bytes instead (64-bit hashes
of n shingles collide with probability about n^2 / 2^65). The result is the same as the sets', always.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from dedup_spark.compiled import njit
from dedup_spark.neardup.shingles import ShingleUnit, hash_spans, join_documents, shingle_set, shingle_spans


class DistinctShingles(NamedTuple):
    """One document's distinct shingles: `buf` its normalised bytes (plus a separator), `hashes` sorted and
    distinct, `starts`/`ends` the bytes of one occurrence of each; exact=False: two different shingles share a hash."""

    normalized: bytes
    buf: np.ndarray
    hashes: np.ndarray
    starts: np.ndarray
    ends: np.ndarray
    exact: bool


def distinct_shingles(normalized: bytes, n: int, unit: ShingleUnit = "word") -> DistinctShingles:
    """The `DistinctShingles` of one normalised document (UTF-8 bytes of `normalize` output)."""
    buf, bounds = join_documents([normalized])
    starts, ends, _ = shingle_spans(buf, bounds, n, unit)
    hashes = hash_spans(buf, starts, ends)
    order = np.argsort(hashes)  # numpy sorts ~10x faster than numba
    keep, exact = _distinct(buf, starts, ends, hashes[order], order)
    return DistinctShingles(normalized, buf, hashes[keep], starts[keep], ends[keep], exact)


def exact_jaccard(a: DistinctShingles, b: DistinctShingles, n: int, unit: ShingleUnit = "word") -> float:
    """|A & B| / |A | B| of the two documents' sets of shingle byte strings; 1.0 if both are empty (as two empty
    MinHash signatures agree). n, unit: the shingles `a` and `b` were made with (for the fallback to sets)."""
    common = (
        _common(a.buf, a.hashes, a.starts, a.ends, b.buf, b.hashes, b.starts, b.ends) if a.exact and b.exact else -1
    )
    if common < 0:  # a hash collision: count on the bytes themselves
        set_a, set_b = shingle_set(a.normalized, n, unit), shingle_set(b.normalized, n, unit)
        common, size_a, size_b = len(set_a & set_b), len(set_a), len(set_b)
    else:
        size_a, size_b = len(a.hashes), len(b.hashes)
    union = size_a + size_b - common
    return common / union if union else 1.0


@njit(cache=True, nogil=True)
def _same_bytes(buf_a: np.ndarray, start_a: int, end_a: int, buf_b: np.ndarray, start_b: int, end_b: int) -> bool:
    if end_a - start_a != end_b - start_b:
        return False
    for j in range(end_a - start_a):  # noqa: SIM110 (a loop numba compiles)
        if buf_a[start_a + j] != buf_b[start_b + j]:
            return False
    return True


@njit(cache=True, nogil=True)
def _distinct(buf, starts, ends, sorted_hashes, order) -> tuple[np.ndarray, bool]:  # noqa: ANN001
    """Indices of one shingle per distinct hash, in hash `order` (`sorted_hashes` = hashes[order], read in turn
    rather than at random), and whether equal hashes always had equal bytes."""
    keep = np.empty(len(order), dtype=np.int64)
    kept, exact = 0, True
    for k in range(len(order)):
        i = order[k]
        if k and sorted_hashes[k - 1] == sorted_hashes[k]:
            last = keep[kept - 1]
            exact = exact and _same_bytes(buf, starts[last], ends[last], buf, starts[i], ends[i])
            continue
        keep[kept] = i
        kept += 1
    return keep[:kept], exact


@njit(cache=True, nogil=True)
def _common(buf_a, hashes_a, starts_a, ends_a, buf_b, hashes_b, starts_b, ends_b) -> int:  # noqa: ANN001
    """Shingles of a in b (both distinct and sorted by hash), or -1 when equal hashes hold different bytes."""
    i = j = common = 0
    while i < len(hashes_a) and j < len(hashes_b):
        if hashes_a[i] < hashes_b[j]:
            i += 1
        elif hashes_a[i] > hashes_b[j]:
            j += 1
        else:
            if not _same_bytes(buf_a, starts_a[i], ends_a[i], buf_b, starts_b[j], ends_b[j]):
                return -1
            common += 1
            i += 1
            j += 1
    return common
