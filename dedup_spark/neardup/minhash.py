"""Batched MinHash signatures over 64-bit shingle hashes (kernels, no Spark).

Schemes (``MinHasher(scheme=...)``):

``"affine64"`` (default) is bit-for-bit ``datasketch.MinHash(num_perm, seed, scheme="affine64",
hashfunc=dedup_spark.neardup.shingles.shingle_hash)`` (datasketch >= 2.0) after ``update()`` with each shingle's UTF-8
bytes (any 64-bit ``hashfunc`` works the same way: we take the hashes, datasketch takes the function).
Each shingle hash ``h`` is first pre-mixed with the MurmurHash3 64-bit finalizer ``fmix64`` (a bijection),
then permuted as ``a_k * h + b_k mod 2^64`` with odd ``a_k`` (also a bijection, so permuting never creates
collisions). The modulus is 2^64 by definition, so uint64 wrap-around IS the exact arithmetic here; it is
not the silently overflowing ``mod (2^61 - 1)`` of older code. ``a``/``b`` come from
``numpy.random.RandomState(seed)`` exactly as datasketch draws them (NumPy freezes RandomState's stream, so
signatures do not change with the numpy version).

``"mersenne61"`` is the textbook universal family ``(a_k * h + b_k) mod (2^61 - 1)`` computed exactly
(32-bit limbs plus Mersenne folding), with ``a``/``b`` drawn like datasketch's ``"legacy"`` scheme. Values are
kept at 61 bits. datasketch has no exact equivalent: its ``"legacy"`` scheme computes ``a * h`` in uint64
(which can overflow once ``h`` >= 8) and truncates to 32 bits. It costs about 6x the time of ``"affine64"``.

``"affine64"`` runs as one compiled loop (numba, `_affine64_minima`) that permutes four hashes at a time against each
``(a_k, b_k)`` it loads: 5-6x the speed of the numpy loop over permutations that ``"mersenne61"`` still uses
(`permute` is the reference both are tested against).

A document with no shingles gets the datasketch empty value, 2^64 - 1 in every position (`EMPTY_VALUE`).
All empty documents thus share every band; the caller must keep them (``too_short``) out of LSH.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from dedup_spark.compiled import njit

Scheme = Literal["affine64", "mersenne61"]
SCHEMES: tuple[str, ...] = ("affine64", "mersenne61")

MERSENNE_61 = (1 << 61) - 1
EMPTY_VALUE = np.uint64((1 << 64) - 1)

_U64 = np.uint64
_P61 = _U64(MERSENNE_61)
_LOW32 = _U64((1 << 32) - 1)
_LOW29 = _U64((1 << 29) - 1)
# Hashes permuted per numpy call: 512 KB of uint64 stays in L2 and amortises the per-call overhead.
DEFAULT_CHUNK_SIZE = 1 << 16
# Cap on the per-chunk (docs x num_perm) result buffer, in values (32 MB), for huge num_perm.
_MAX_PARTIAL_VALUES = 1 << 22


def fmix64(h: np.ndarray) -> np.ndarray:
    """MurmurHash3 64-bit finalizer, element-wise on a uint64 array (wrap-around is intended)."""
    h = np.asarray(h, dtype=_U64)
    h = h ^ (h >> _U64(33))
    h *= _U64(0xFF51AFD7ED558CCD)
    h ^= h >> _U64(33)
    h *= _U64(0xC4CEB9FE1A85EC53)
    h ^= h >> _U64(33)
    return h


def _fold61(x: np.ndarray) -> np.ndarray:
    # x = hi * 2^61 + lo and 2^61 = 1 (mod p), so x = hi + lo (mod p).
    return (x & _P61) + (x >> _U64(61))


def _reduce61(x: np.ndarray) -> np.ndarray:
    # For any uint64 x, fold(x) <= p + 7, so one conditional subtraction finishes the reduction.
    r = _fold61(x)
    return np.where(r >= _P61, r - _P61, r)


def mod61(x: np.ndarray) -> np.ndarray:
    """Exact ``x mod (2^61 - 1)`` for any uint64 array."""
    return _reduce61(np.asarray(x, dtype=_U64))


def mulmod61(a: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Exact ``(a * h) mod (2^61 - 1)`` for any uint64 arrays (broadcasting), without 128-bit integers.

    With a, h < p split as x1 * 2^32 + x0 (x1 < 2^29): a*h = a1h1 2^64 + (a1h0 + a0h1) 2^32 + a0h0, and
    2^64 = 8, 2^61 = 1 (mod p). Every partial product and sum below stays under 2^64.
    """
    a = mod61(a)
    h = mod61(h)
    a0, a1 = a & _LOW32, a >> _U64(32)
    h0, h1 = h & _LOW32, h >> _U64(32)
    return _mulmod61_limbs(a0, a1, h0, h1)


def _mulmod61_limbs(a0, a1, h0, h1) -> np.ndarray:
    mid = a1 * h0 + a0 * h1  # < 2^62
    # mid * 2^32 = (mid >> 29) * 2^61 + (mid & (2^29 - 1)) * 2^32 = (mid >> 29) + ((mid & LOW29) << 32).
    total = ((a1 * h1) << _U64(3)) + (mid >> _U64(29)) + ((mid & _LOW29) << _U64(32)) + _fold61(a0 * h0)
    return _reduce61(total)  # total < 2^63


@njit(cache=True, nogil=True, inline="always")
def _fmix64_one(h: np.uint64) -> np.uint64:
    h ^= h >> _U64(33)
    h *= _U64(0xFF51AFD7ED558CCD)
    h ^= h >> _U64(33)
    h *= _U64(0xC4CEB9FE1A85EC53)
    h ^= h >> _U64(33)
    return h


@njit(cache=True, nogil=True)
def _affine64_minima(hashes: np.ndarray, offsets: np.ndarray, a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    """``out[d, k] = min(out[d, k], min over document d's hashes h of fmix64(h) * a[k] + b[k])`` (mod 2^64).

    Four hashes share each pass over the permutations, so a row of `out` is loaded and stored a quarter as often.
    """
    for d in range(len(offsets) - 1):
        row = out[d]
        i, end = offsets[d], offsets[d + 1]
        while i + 4 <= end:
            h0, h1 = _fmix64_one(hashes[i]), _fmix64_one(hashes[i + 1])
            h2, h3 = _fmix64_one(hashes[i + 2]), _fmix64_one(hashes[i + 3])
            for k in range(len(a)):
                ak, bk = a[k], b[k]
                row[k] = min(row[k], min(min(h0 * ak + bk, h1 * ak + bk), min(h2 * ak + bk, h3 * ak + bk)))
            i += 4
        while i < end:
            h = _fmix64_one(hashes[i])
            for k in range(len(a)):
                row[k] = min(row[k], h * a[k] + b[k])
            i += 1


class MinHasher:
    """MinHash signatures for batches of documents given as uint64 shingle-hash arrays.

    ``num_perm`` permutations seeded by ``seed`` (datasketch's default seed is 1). ``chunk_size`` bounds the
    number of hashes permuted per numpy call of ``"mersenne61"`` (memory ~ 8 * chunk_size bytes); it never changes
    results.
    """

    def __init__(
        self, num_perm: int, seed: int = 1, scheme: Scheme = "affine64", *, chunk_size: int = DEFAULT_CHUNK_SIZE
    ) -> None:
        if not isinstance(num_perm, int) or num_perm < 1:
            raise ValueError(f"num_perm must be an integer >= 1, got {num_perm!r}")
        if scheme not in SCHEMES:
            raise ValueError(f"MinHash scheme must be one of {SCHEMES}, got {scheme!r}")
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size!r}")
        self.num_perm = num_perm
        self.seed = seed
        self.scheme = scheme
        self.chunk_size = chunk_size
        gen = np.random.RandomState(seed)
        if scheme == "affine64":
            # Same draws, in the same order, as datasketch.MinHash._init_permutations for affine64.
            self.a = gen.randint(0, 1 << 63, num_perm, dtype=_U64) * _U64(2) + _U64(1)
            self.b = gen.randint(0, 1 << 64, num_perm, dtype=_U64)
        else:
            # datasketch "legacy" draws (a, b) pairs alternately, one scalar at a time.
            pairs = [
                (gen.randint(1, MERSENNE_61, dtype=_U64), gen.randint(0, MERSENNE_61, dtype=_U64))
                for _ in range(num_perm)
            ]
            self.a, self.b = np.array(pairs, dtype=_U64).reshape(num_perm, 2).T.copy()

    def __repr__(self) -> str:
        return f"MinHasher(num_perm={self.num_perm}, seed={self.seed}, scheme={self.scheme!r})"

    def permute(self, hashes: np.ndarray) -> np.ndarray:
        """All permuted values, shape (len(hashes), num_perm). Reference path for tests; use `signatures`."""
        h = np.asarray(hashes, dtype=_U64)[:, None]
        if self.scheme == "affine64":
            return fmix64(h) * self.a + self.b
        return _reduce61(mulmod61(self.a, h) + self.b)

    def signature(self, hashes: np.ndarray) -> np.ndarray:
        """Signature of one document, shape (num_perm,) uint64."""
        return self.signatures([hashes])[0]

    def signatures(self, hash_arrays: Sequence[np.ndarray]) -> np.ndarray:
        """Signatures of a batch of documents, shape (len(hash_arrays), num_perm) uint64.

        Each input is one document's shingle hashes (duplicates allowed; order irrelevant). int64 arrays
        (Spark LongType) are reinterpreted bit-for-bit as uint64.
        """
        lengths = np.fromiter((len(h) for h in hash_arrays), dtype=np.int64, count=len(hash_arrays))
        offsets = np.zeros(len(hash_arrays) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        # Convert each array first: concatenating uint64 with int64 would promote to float64 and round.
        flat = np.concatenate([np.asarray(h, dtype=_U64) for h in hash_arrays] or [np.empty(0, _U64)])
        return self.signatures_flat(flat, offsets)

    def signatures_flat(self, hashes: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        """Signatures from Arrow list layout: document i owns ``hashes[offsets[i]:offsets[i + 1]]``.

        ``offsets`` has n_docs + 1 non-decreasing entries and need not start at 0 (sliced Arrow arrays).
        Returns shape (n_docs, num_perm) uint64.
        """
        hashes = np.asarray(hashes, dtype=_U64)
        offsets = np.asarray(offsets, dtype=np.int64)
        if offsets.ndim != 1 or len(offsets) < 1 or np.any(np.diff(offsets) < 0):
            raise ValueError("offsets must be a non-empty, non-decreasing 1-D array (n_docs + 1 entries)")
        if offsets[0] < 0 or offsets[-1] > len(hashes):
            raise ValueError(f"offsets span [{offsets[0]}, {offsets[-1]}) outside hashes of length {len(hashes)}")
        out = np.full((len(offsets) - 1, self.num_perm), EMPTY_VALUE, dtype=_U64)
        if self.scheme == "affine64":
            _affine64_minima(hashes, offsets, self.a, self.b, out)
            return out
        nonempty = np.flatnonzero(offsets[1:] > offsets[:-1])
        if len(nonempty):
            self._fill(hashes, offsets[nonempty], offsets[nonempty + 1], nonempty, out)
        return out

    def _fill(self, hashes: np.ndarray, starts: np.ndarray, ends: np.ndarray, rows: np.ndarray, out) -> None:
        """Min-reduce permuted hashes per document into ``out[rows]``; documents are back to back in `hashes`.

        The flat range is cut into chunks of at most chunk_size hashes; a document longer than a chunk spans
        several, and its row takes the minimum over them. Looping over permutations innermost keeps the chunk
        in cache, which measured 4-10x faster than materialising a (chunk, num_perm) block.
        """
        max_docs = max(1, _MAX_PARTIAL_VALUES // self.num_perm)
        i, pos, end_all = 0, int(starts[0]), int(ends[-1])
        while pos < end_all:
            stop = min(pos + self.chunk_size, end_all)
            j = min(int(np.searchsorted(starts, stop, side="left")), i + max_docs)  # docs i..j-1 touch chunk
            stop = min(stop, int(ends[j - 1]))  # when capped by max_docs, end with doc j-1
            segments = np.maximum(starts[i:j], pos) - pos
            partial = self._reduce_chunk(hashes[pos:stop], segments)
            out[rows[i:j]] = np.minimum(out[rows[i:j]], partial)
            pos = stop
            i = j if ends[j - 1] <= stop else j - 1  # an unfinished last doc continues in the next chunk

    def _reduce_chunk(self, chunk: np.ndarray, segments: np.ndarray) -> np.ndarray:
        partial = np.empty((len(segments), self.num_perm), dtype=_U64)
        tmp = np.empty_like(chunk)
        # Same arithmetic as `mulmod61` (see there), in place on preallocated buffers: ~1.6x faster.
        h = mod61(chunk)
        h0, h1 = h & _LOW32, h >> _U64(32)
        a0, a1 = self.a & _LOW32, self.a >> _U64(32)
        lo, mid, tmp2 = np.empty_like(h), np.empty_like(h), np.empty_like(h)
        over = np.empty(h.shape, dtype=bool)
        for k in range(self.num_perm):
            np.multiply(h1, a1[k], out=tmp)
            tmp <<= _U64(3)
            np.multiply(h0, a1[k], out=mid)
            np.multiply(h1, a0[k], out=tmp2)
            mid += tmp2
            np.right_shift(mid, _U64(29), out=tmp2)
            tmp += tmp2
            mid &= _LOW29
            mid <<= _U64(32)
            tmp += mid
            np.multiply(h0, a0[k], out=lo)
            np.right_shift(lo, _U64(61), out=tmp2)
            tmp += tmp2
            lo &= _P61
            tmp += lo
            tmp += self.b[k]  # still < 2^63 + 2^61: no overflow
            np.right_shift(tmp, _U64(61), out=tmp2)
            tmp &= _P61
            tmp += tmp2
            np.greater_equal(tmp, _P61, out=over)
            np.subtract(tmp, _P61, out=tmp, where=over)
            partial[:, k] = np.minimum.reduceat(tmp, segments)
        return partial
