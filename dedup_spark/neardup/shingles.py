"""Shingling and shingle hashing for NearDup (kernels, no Spark). Text is first normalised by `normalize.py`.

Shingles are word n-grams (the paper's word 5-grams) or character n-grams (for scripts without spaces).
Short-document rule: a document with 1..n-1 units yields exactly one shingle (all of it); a document with
no units yields no shingles, and the caller reports it as ``too_short`` rather than dropping it.

Shingle hash (`shingle_hash`): a 64-bit polynomial hash of the shingle's UTF-8 bytes, finalised with a strong
mix. It replaces xxh64, the shingle hash of earlier versions: signatures and band keys from those runs are not
comparable with new ones.
For bytes ``b[0..L)``, with fixed odd constants ``BASE`` and ``LENGTH_MIX`` and arithmetic mod 2^64::

    poly = b[0] + b[1] * BASE + b[2] * BASE^2 + ... + b[L-1] * BASE^(L-1)
    shingle_hash = fmix64(poly XOR (L * LENGTH_MIX))        # fmix64: MurmurHash3's 64-bit finalizer

It is defined this way so a whole batch of documents can be hashed with a handful of numpy calls
(`batch_shingle_hashes`): with prefix sums ``P[i] = sum(b[j] * BASE^j, j < i)`` over the joined batch text,
the slice ``[s, e)`` has ``poly = (P[e] - P[s]) * BASE^-s`` (BASE is odd, so it is invertible mod 2^64).
`shingle_hash` is the same function for one ``bytes`` value, so ``datasketch.MinHash(num_perm, seed,
scheme="affine64", hashfunc=shingle_hash)`` fed the shingles' UTF-8 bytes gives our signatures exactly.
It is a fast, well-mixed hash for MinHash, not a cryptographic or collision-resistant one: polynomial hashes
mod 2^64 have known constructed collisions (e.g. Thue-Morse strings of 2,048+ bytes). A collision can only
nudge a MinHash estimate; verification compares the shingles' bytes, never their hashes (`shingle_set`).

MinHash ignores repeated shingles, so the batch kernel returns every shingle occurrence (repeats included);
`shingle_hashes` (one raw document, the unique hashes) is the convenient form for tests and notebooks.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import numpy as np

from dedup_spark.neardup.minhash import fmix64
from dedup_spark.neardup.normalize import normalize

ShingleUnit = Literal["word", "char"]
SHINGLE_UNITS: tuple[str, ...] = ("word", "char")

_SPACE = 0x20
_EMPTY_HASHES = np.empty(0, dtype=np.uint64)


def _check_n(n: int) -> None:
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"shingle size n must be an integer >= 1, got {n!r}")


def words(normalized: str) -> list[str]:
    """The words of a normalised text (empty text -> no words). Also the tokens for edit similarity."""
    return normalized.split(" ") if normalized else []


def word_shingles(normalized: str, n: int) -> list[str]:
    """Word n-grams of a normalised text, each joined with single spaces; short-document rule applies."""
    _check_n(n)
    tokens = words(normalized)
    if len(tokens) < n:
        return [normalized] if tokens else []
    return list(map(" ".join, zip(*(tokens[i:] for i in range(n)), strict=False)))


def char_shingles(normalized: str, n: int) -> list[str]:
    """Character (code point) n-grams of a normalised text, spaces included; short-document rule applies."""
    _check_n(n)
    if len(normalized) < n:
        return [normalized] if normalized else []
    return [normalized[i : i + n] for i in range(len(normalized) - n + 1)]


# --- Shingle hash -------------------------------------------------------------------------------------------

_M64 = (1 << 64) - 1
BASE = 0x9E3779B97F4A7C15  # odd (2^64 / golden ratio), so invertible mod 2^64
LENGTH_MIX = 0xC2B2AE3D27D4EB4F  # odd; separates slices whose polynomials agree but lengths differ ("a" vs "a\0")
_BASE_INV = pow(BASE, -1, 1 << 64)
# Ends every document in a joined batch buffer. 0xFF never occurs in UTF-8, so it cannot be part of a shingle.
SEPARATOR = 0xFF
# Bytes of joined text per numpy pass: temporaries (a few tens of bytes per text byte) stay near 10 MB, and the
# measured speed is best from 128 KB to 256 KB (4 MB is ~2x slower, as arrays leave the cache).
DEFAULT_CHUNK_BYTES = 1 << 18
# Power tables are cached up to this many positions (16 bytes each); a longer piece (one huge shingle) gets
# fresh tables.
_MAX_CACHED_POWERS = 1 << 20
_powers_cache: tuple[np.ndarray, np.ndarray] = (np.ones(1, np.uint64), np.ones(1, np.uint64))


def _geometric(base: int, size: int) -> np.ndarray:
    """``base^0 .. base^(size-1)`` mod 2^64 as uint64 (numpy integer products wrap, which is the modulus)."""
    out = np.full(size, base, dtype=np.uint64)
    out[:1] = 1
    return np.cumprod(out, out=out)


def _powers(size: int) -> tuple[np.ndarray, np.ndarray]:
    """(BASE^j, BASE^-j) for j < size, at least `size` long."""
    global _powers_cache
    if len(_powers_cache[0]) >= size:
        return _powers_cache
    tables = (_geometric(BASE, size), _geometric(_BASE_INV, size))
    if size <= _MAX_CACHED_POWERS:
        _powers_cache = tables  # one assignment, so concurrent readers see old or new tables, both valid
    return tables


def _fmix64_int(h: int) -> int:
    h ^= h >> 33
    h = (h * 0xFF51AFD7ED558CCD) & _M64
    h ^= h >> 33
    h = (h * 0xC4CEB9FE1A85EC53) & _M64
    return h ^ (h >> 33)


def shingle_hash(data: bytes) -> int:
    """The 64-bit shingle hash of `data` (a shingle's UTF-8 bytes) as a Python int; see the module docstring.

    Equal to what `batch_shingle_hashes` computes for the same bytes; usable as a datasketch ``hashfunc``.
    """
    arr = np.frombuffer(data, dtype=np.uint8)
    poly = int(np.dot(arr, _powers(len(arr))[0][: len(arr)]))  # integer dot wraps mod 2^64
    return _fmix64_int(poly ^ ((len(arr) * LENGTH_MIX) & _M64))


def hash_shingles(shingles: Iterable[str]) -> np.ndarray:
    """`shingle_hash` of each shingle's UTF-8 bytes, de-duplicated, uint64, in no particular order.

    The slow reference path (one call per shingle); pipelines use `batch_shingle_hashes`.
    """
    hashes = {shingle_hash(s.encode("utf-8")) for s in shingles}
    return np.fromiter(hashes, dtype=np.uint64, count=len(hashes))


# --- Batch kernel -------------------------------------------------------------------------------------------


def _check_unit(unit: str) -> None:
    if unit not in SHINGLE_UNITS:
        raise ValueError(f"shingle unit must be one of {SHINGLE_UNITS}, got {unit!r}")


def _unit_spans(buf: np.ndarray, unit: ShingleUnit) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive) byte offsets of every word or character in a joined buffer, in order."""
    if unit == "word":
        # Words are maximal runs of bytes other than space and SEPARATOR; pad with non-words at both ends.
        is_word = np.zeros(len(buf) + 2, dtype=bool)
        is_word[1:-1] = (buf != _SPACE) & (buf != SEPARATOR)
        edges = np.flatnonzero(is_word[1:] != is_word[:-1])  # word starts and ends, alternating
        return edges[0::2], edges[1::2]
    # A UTF-8 byte starts a code point unless it is a continuation byte 0b10xxxxxx. SEPARATOR (0b11111111) also
    # counts as a start here, so each document's last character ends where its separator begins.
    starts = np.flatnonzero((buf & 0xC0) != 0x80)
    ends = np.append(starts[1:], len(buf))
    real = buf[starts] != SEPARATOR
    return starts[real], ends[real]


def shingle_spans(
    buf: np.ndarray, bounds: np.ndarray, n: int, unit: ShingleUnit = "word"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Byte spans of every shingle occurrence (repeats included) of a joined batch of normalised documents.

    Input: `buf` uint8, document i occupying ``buf[bounds[i] : bounds[i + 1] - 1]`` followed by one SEPARATOR
    byte (`join_documents` builds this); `bounds` int64 of n_docs + 1 entries with ``bounds[0] == 0``.
    Output: ``(starts, ends, offsets)``: shingle k is ``buf[starts[k] : ends[k]]``, and document i owns shingles
    ``offsets[i] : offsets[i + 1]`` (n_docs + 1 entries), in text order. Short-document rule as for
    `word_shingles` / `char_shingles`.
    """
    _check_n(n)
    _check_unit(unit)
    unit_starts, unit_ends = _unit_spans(buf, unit)
    unit_bounds = np.searchsorted(unit_starts, bounds)  # document i owns units unit_bounds[i] : unit_bounds[i+1]
    counts = np.diff(unit_bounds)
    n_shingles = np.where(counts >= n, counts - (n - 1), np.minimum(counts, 1))
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(n_shingles, out=offsets[1:])
    doc = np.repeat(np.arange(len(counts)), n_shingles)
    first = np.arange(offsets[-1]) + (unit_bounds[:-1] - offsets[:-1])[doc]
    # Clipping the last unit at the document's end is what makes a short document one whole shingle.
    last = np.minimum(first + (n - 1), unit_bounds[1:][doc] - 1)
    return unit_starts[first], unit_ends[last], offsets


def _hash_piece(buf: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """`hash_spans` for one piece: prefix sums over all of `buf`, then O(1) array operations per slice."""
    scale, inverse = _powers(len(buf) + 1)
    weighted = buf.astype(np.uint64)
    weighted *= scale[: len(buf)]
    prefix = np.zeros(len(buf) + 1, dtype=np.uint64)
    np.cumsum(weighted, out=prefix[1:])  # wraps mod 2^64, as the definition wants
    poly = prefix[ends]
    poly -= prefix[starts]
    poly *= inverse[starts]  # shift the slice's powers from BASE^s.. down to BASE^0..
    lengths = (ends - starts).astype(np.uint64)
    lengths *= np.uint64(LENGTH_MIX)
    poly ^= lengths
    return fmix64(poly)


def hash_spans(
    buf: np.ndarray, starts: np.ndarray, ends: np.ndarray, *, piece_bytes: int = DEFAULT_CHUNK_BYTES
) -> np.ndarray:
    """`shingle_hash` of every slice ``buf[starts[k] : ends[k]]`` of a uint8 array, as uint64, with O(1) numpy
    calls per piece of about `piece_bytes` of text, so temporaries stay bounded even for one huge document.

    Spans sorted by start and end (as `shingle_spans` returns them) make the pieces small; any order is correct.
    """
    out = np.empty(len(starts), dtype=np.uint64)
    first = 0
    while first < len(starts):
        last = max(first + 1, int(np.searchsorted(ends, starts[first] + piece_bytes, side="right")))
        # A slice's hash does not depend on where it sits, so each piece is hashed on its own, from offset 0.
        low, high = int(starts[first:last].min()), int(ends[first:last].max())
        out[first:last] = _hash_piece(buf[low:high], starts[first:last] - low, ends[first:last] - low)
        first = last
    return out


def join_documents(docs: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """Normalised UTF-8 documents -> (`buf` uint8, `bounds` int64) in the layout `shingle_spans` reads."""
    bounds = np.zeros(len(docs) + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, docs), dtype=np.int64, count=len(docs)) + 1, out=bounds[1:])
    separator = bytes([SEPARATOR])
    joined = separator.join(docs) + separator if docs else b""
    return np.frombuffer(joined, dtype=np.uint8), bounds


def batch_shingle_hashes(
    docs: list[bytes], n: int, unit: ShingleUnit = "word", *, chunk_bytes: int = DEFAULT_CHUNK_BYTES
) -> tuple[np.ndarray, np.ndarray]:
    """Shingle hashes of a batch of normalised documents (UTF-8 bytes of `normalize` output), Arrow list layout.

    Output ``(hashes, offsets)``: document i's shingle hashes are ``hashes[offsets[i] : offsets[i + 1]]``
    (uint64, every occurrence, repeats included; an empty range means ``too_short``), ready for
    `MinHasher.signatures_flat`. Documents are hashed together in chunks of about `chunk_bytes`, so temporary
    memory is bounded by the chunk (about 12 bytes per byte of text for a document larger than the chunk)
    whatever the batch size.
    """
    _check_n(n)
    _check_unit(unit)
    ends = np.cumsum(np.fromiter(map(len, docs), dtype=np.int64, count=len(docs)) + 1)
    hashes, counts = [], []
    first = 0
    while first < len(docs):
        done = ends[first - 1] if first else 0
        last = max(first + 1, int(np.searchsorted(ends, done + chunk_bytes, side="right")))
        buf, bounds = join_documents(docs[first:last])
        starts, stops, offsets = shingle_spans(buf, bounds, n, unit)
        hashes.append(hash_spans(buf, starts, stops, piece_bytes=chunk_bytes))
        counts.append(np.diff(offsets))
        first = last
    offsets = np.zeros(len(docs) + 1, dtype=np.int64)
    if docs:
        np.cumsum(np.concatenate(counts), out=offsets[1:])
    return (np.concatenate(hashes) if hashes else _EMPTY_HASHES.copy()), offsets


def shingle_set(normalized: str | bytes, n: int, unit: ShingleUnit = "word") -> set[bytes]:
    """The distinct shingles of one normalised text (str, or its UTF-8 bytes) as UTF-8 byte strings: the exact
    sets that verification compares, so a hash collision can never make two documents look alike."""
    data = normalized.encode("utf-8") if isinstance(normalized, str) else normalized
    buf, bounds = join_documents([data])
    starts, ends, _ = shingle_spans(buf, bounds, n, unit)
    return {data[s:e] for s, e in zip(starts.tolist(), ends.tolist(), strict=True)}  # buf is data + SEPARATOR


def shingle_hashes(
    text: str,
    *,
    ngram: int = 5,
    unit: ShingleUnit = "word",
    lowercase: bool = True,
    nfkc: bool = True,
    strip_punctuation: bool = True,
    fold_accents: bool = False,
) -> np.ndarray:
    """Raw document text -> its de-duplicated uint64 shingle hashes (normalize, shingle, `shingle_hash`).

    An empty result means the document has no words/characters after normalisation (``too_short``).
    """
    normalized = normalize(
        text, lowercase=lowercase, nfkc=nfkc, strip_punctuation=strip_punctuation, fold_accents=fold_accents
    )
    hashes, _ = batch_shingle_hashes([normalized.encode("utf-8")], ngram, unit)
    return np.unique(hashes)
