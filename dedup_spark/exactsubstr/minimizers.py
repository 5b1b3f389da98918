"""Window minimizers and super-k-mers: how ExactSubstr routes windows across chunks.

A *window* is k consecutive bytes. Its *minimizer* is the minimum, over the (k - w + 1) w-grams inside it,
of a well-mixed 64-bit hash of the w-gram. The value depends only on the window's bytes, so every
occurrence of an identical window, in any document or chunk, gets the same value. Consecutive windows
of a piece usually share their minimizer, so a run [s, e) of window starts with one value is shipped as
one *super-k-mer*: the bytes [s, e + k - 1) covering the run's windows. Shuffling super-k-mers by
minimizer value brings every occurrence of every window into one partition. Hash quality only affects
load balance (collisions put more into one partition), never correctness.

The functions here are O(n): the w-gram hash is rolled in one compiled pass and the numpy sliding minimum uses
van Herk/Gil-Werman block prefix/suffix minima (3 passes, whatever k - w is).
Work is done in segments of `_SEGMENT_WINDOWS` windows so temporaries stay small (a few tens of MB).
`superkmers_batch`, the hot path of ExactSubstr, computes the same runs in one compiled pass instead
(`minimizer_kernel`); `superkmers` (one piece) stays on the numpy path, which the tests compare it with.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import NamedTuple

import numpy as np

from dedup_spark.exactsubstr.minimizer_kernel import gram_hashes, superkmer_runs

#: Odd 64-bit multiplier of the polynomial w-gram hash (odd, so it is invertible mod 2^64).
HASH_BASE = 0x9E3779B97F4A7C15
_U64_MASK = (1 << 64) - 1
U64_MAX = np.uint64(_U64_MASK)
# Windows per segment: 1M windows keeps each temporary at ~8 MB (cache friendly, bounded memory).
_SEGMENT_WINDOWS = 1 << 20
# Pieces are processed in batches of about this many bytes by `piece_texts` (temporaries ~17 B/byte).
_BATCH_BYTES = 1 << 22


class SuperKmers(NamedTuple):
    """Super-k-mer runs of many pieces, flat and sorted by (piece, start).

    piece: int64 index of the piece in the input; minimizer: uint64 value shared by the run's windows;
    start, end: int64 piece-relative window starts [start, end). The super-k-mer bytes are
    data[start : end + k - 1] and it owns end - start window starts.
    """

    piece: np.ndarray
    minimizer: np.ndarray
    start: np.ndarray
    end: np.ndarray

    @classmethod
    def concatenate(cls, parts: Sequence[SuperKmers]) -> SuperKmers:
        """The runs of `parts` in order, as one (empty arrays when there are none)."""
        if not parts:
            empty = np.empty(0, dtype=np.int64)
            return cls(empty, np.empty(0, dtype=np.uint64), empty.copy(), empty.copy())
        return cls(*(np.concatenate(cols) for cols in zip(*parts, strict=True)))


def _check_kw(k: int, w: int) -> None:
    if not 1 <= w <= k:
        raise ValueError(f"minimizer w-gram length w={w} must satisfy 1 <= w <= k={k}; lower w or raise k")


def mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finalizer, in place on a uint64 array (returned for convenience).

    The polynomial hash alone is weak in its low bits; the finalizer spreads every input bit over
    the output so the minimum is well distributed and `value % partitions` balances.
    """
    x ^= x >> np.uint64(30)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(27)
    x *= np.uint64(0x94D049BB133111EB)
    x ^= x >> np.uint64(31)
    return x


def wgram_hashes(data: np.ndarray, w: int) -> np.ndarray:
    """Mixed hash of every w-gram: out[i] = mix64(sum_j data[i + j] * HASH_BASE^(w-1-j) mod 2^64).

    data: uint8 array of n bytes. Returns uint64 array of max(0, n - w + 1) values, from one compiled rolling pass
    (`minimizer_kernel.gram_hashes`).
    """
    return gram_hashes(np.asarray(data, dtype=np.uint8), w, *_hash_constants(w))


def _hash_constants(w: int) -> tuple[np.uint64, np.uint64]:
    """(HASH_BASE, HASH_BASE^(w - 1) mod 2^64): what the compiled rolling hash of w-grams takes."""
    return np.uint64(HASH_BASE), np.uint64(pow(HASH_BASE, w - 1, 1 << 64))


def sliding_min(values: np.ndarray, width: int) -> np.ndarray:
    """Minimum of every run of `width` consecutive values (van Herk/Gil-Werman), O(n).

    values: uint64 array of n values; returns max(0, n - width + 1) minima. Cut into blocks of `width`:
    the window starting at i spans the suffix of its block and a prefix of the next, so its minimum is
    min(suffix_min[i], prefix_min[i + width - 1]).
    """
    n = len(values)
    if n < width:
        return np.empty(0, dtype=values.dtype)
    if width == 1:
        return values.copy()
    n_blocks = -(-n // width)
    padded = np.full(n_blocks * width, U64_MAX, dtype=np.uint64)
    padded[:n] = values
    # Accumulating along axis 0 of the (width, n_blocks) transposed view is a vector op per row:
    # about twice as fast as accumulating along short rows.
    blocks_t = padded.reshape(n_blocks, width).T
    prefix = np.minimum.accumulate(blocks_t, axis=0).T.ravel()
    suffix = np.minimum.accumulate(blocks_t[::-1], axis=0)[::-1].T.ravel()
    count = n - width + 1
    return np.minimum(suffix[:count], prefix[width - 1 : width - 1 + count])


def window_minimizers(data: np.ndarray, k: int, w: int) -> np.ndarray:
    """Minimizer value of every window: out[i] = min over w-grams inside data[i : i + k] of their hash.

    data: uint8 array of n bytes; k: window length; w: w-gram length (1 <= w <= k).
    Returns uint64 array of max(0, n - k + 1) values. Depends only on each window's bytes.
    """
    _check_kw(k, w)
    data = np.asarray(data, dtype=np.uint8)
    n_windows = len(data) - k + 1
    if n_windows <= 0:
        return np.empty(0, dtype=np.uint64)
    out = np.empty(n_windows, dtype=np.uint64)
    for lo in range(0, n_windows, _SEGMENT_WINDOWS):
        hi = min(n_windows, lo + _SEGMENT_WINDOWS)
        out[lo:hi] = sliding_min(wgram_hashes(data[lo : hi + k - 1], w), k - w + 1)
    return out


def _runs(values: np.ndarray, n_owned: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Maximal runs of equal consecutive values in values[:n_owned] -> (run values, starts, ends)."""
    values = values[:n_owned]
    if n_owned == 0:
        empty = np.empty(0, dtype=np.int64)
        return np.empty(0, dtype=np.uint64), empty, empty.copy()
    starts = np.flatnonzero(np.concatenate(([True], values[1:] != values[:-1])))
    ends = np.append(starts[1:], n_owned)
    return values[starts], starts.astype(np.int64), ends.astype(np.int64)


def superkmers(piece_data: bytes, owned: int, k: int, w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Super-k-mer runs of one piece.

    piece_data: the piece's bytes; owned: the piece owns window starts [0, owned) (clipped to the
    starts whose window fits, len - k + 1). Returns (minimizer_values uint64, run_starts int64,
    run_ends int64): run r covers owned starts [run_starts[r], run_ends[r]) whose windows all have
    minimizer value minimizer_values[r]; its super-k-mer is piece_data[run_starts[r] : run_ends[r] + k - 1].
    Consecutive runs have different values; runs tile [0, owned).
    """
    _check_kw(k, w)
    if owned < 0:
        raise ValueError(f"owned={owned} must be >= 0")
    arr = np.frombuffer(piece_data, dtype=np.uint8)
    n_owned = max(0, min(owned, len(arr) - k + 1))
    values = window_minimizers(arr[: n_owned + k - 1], k, w) if n_owned else np.empty(0, np.uint64)
    return _runs(values, n_owned)


def superkmers_batch(datas: Sequence[bytes], owned: Sequence[int] | np.ndarray, k: int, w: int) -> SuperKmers:
    """Super-k-mer runs of many pieces at once (same runs as calling `superkmers` on each piece).

    datas: piece bytes; owned: owned window starts per piece. Returns a `SuperKmers` of flat arrays sorted by
    (piece, start). See `superkmers_with_copies`.
    """
    return superkmers_with_copies(datas, owned, k, w)[0]


def superkmers_with_copies(
    datas: Sequence[bytes], owned: Sequence[int] | np.ndarray, k: int, w: int
) -> tuple[SuperKmers, np.ndarray]:
    """`superkmers_batch` and, per run, its *copies*: how many w-grams of its windows hash to its minimizer (the
    w-grams starting in [start, end + k - w)), capped at 2, int64.

    A window can occur twice in a corpus only if the copies of its minimizer, summed over every run with that
    minimizer in every piece, reach 2: two occurrences at starts i != j hold their (same) minimum w-gram at two
    different places i + q and j + q, each counted by the run holding its window (one run counts both if it holds
    both windows). Pieces overlapping by their context may count one place twice: more candidates, never fewer.

    The bytes the owned windows cover are laid back to back and one compiled pass (`minimizer_kernel`) finds the
    runs and their copies.
    """
    _check_kw(k, w)
    owned_arr = np.asarray(owned, dtype=np.int64).reshape(-1)
    if len(owned_arr) != len(datas):
        raise ValueError(f"got {len(datas)} pieces but {len(owned_arr)} owned counts")
    if (owned_arr < 0).any():
        raise ValueError("owned counts must be >= 0")
    lengths = np.fromiter((len(d) for d in datas), dtype=np.int64, count=len(datas))
    n_owned = np.clip(owned_arr, 0, np.maximum(lengths - k + 1, 0))
    pieces = np.flatnonzero(n_owned > 0)
    used = n_owned[pieces] + k - 1  # only bytes covered by owned windows matter
    text = np.frombuffer(b"".join(memoryview(datas[i])[:u] for i, u in zip(pieces, used, strict=True)), np.uint8)
    piece, value, start, end, copies = superkmer_runs(
        text, np.cumsum(used) - used, n_owned[pieces], k, w, *_hash_constants(w)
    )
    return SuperKmers(pieces[piece], value, start, end), copies


def piece_texts(datas: Sequence[bytes], used: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The pieces with bytes used, in batches of about `_BATCH_BYTES`: (their numbers, their first `used` bytes back
    to back as one uint8 text), concatenated without separators."""
    cum = np.cumsum(used)
    first = 0
    while first < len(used):
        base = cum[first - 1] if first else 0
        end = max(first + 1, int(np.searchsorted(cum, base + _BATCH_BYTES, side="right")))
        pieces = np.arange(first, end)[used[first:end] > 0]
        if len(pieces):
            yield pieces, np.frombuffer(b"".join(memoryview(datas[i])[: used[i]] for i in pieces), dtype=np.uint8)
        first = end


def runs_of_pieces(values: np.ndarray, pieces: np.ndarray, used: np.ndarray, owned: np.ndarray) -> SuperKmers:
    """Super-k-mer runs of pieces laid back to back in one text, from the minimizer of every window of that text.

    pieces: the pieces' numbers, in text order; used: each one's bytes in the text; owned (> 0): how many of its
    first windows it owns. Windows straddling two pieces are ignored. Returns runs in piece coordinates.
    """
    starts_c = np.concatenate(([0], np.cumsum(used)[:-1])).astype(np.int64)
    n_windows = len(values)
    # owned_mask[i]: window i lies inside one piece (built as +1 at piece start, -1 after its last window).
    delta = np.zeros(n_windows + 1, dtype=np.int8)
    delta[starts_c] += 1
    delta[starts_c + owned] -= 1
    owned_mask = np.cumsum(delta[:-1], dtype=np.int8).view(bool)
    # A run starts at an owned window whose predecessor is not owned, differs in value, or is the
    # previous piece's last window (pieces can abut when k == 1).
    new_run = owned_mask.copy()
    new_run[1:] &= ~owned_mask[:-1] | (values[1:] != values[:-1])
    new_run[starts_c] = True
    run_starts = np.flatnonzero(new_run)
    # A run ends after an owned window followed by a non-owned window or a new run.
    after = np.ones(n_windows, dtype=bool)
    after[:-1] = ~owned_mask[1:] | new_run[1:]
    run_ends = np.flatnonzero(owned_mask & after) + 1
    local = np.searchsorted(starts_c, run_starts, side="right") - 1
    return SuperKmers(
        np.asarray(pieces)[local].astype(np.int64),
        values[run_starts],
        (run_starts - starts_c[local]).astype(np.int64),
        (run_ends - starts_c[local]).astype(np.int64),
    )


def minimizer_counts(
    chunks: np.ndarray, values: np.ndarray, copies: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rows (chunk, minimizer, copies) holding every row of their minimizers -> one row per (chunk, minimizer):
    ``(chunk, minimizer, copies, chunks, corpus_copies)``, copies summed and capped at 2; chunks: how many chunks
    hold the minimizer; corpus_copies: the sum of their capped copies. Sorted by minimizer, then chunk."""
    order = np.lexsort((chunks, values))
    chunks, values, copies = chunks[order], values[order], copies[order]
    pairs = _group_starts(values, chunks)  # the first row of each (chunk, minimizer)
    pair_copies = np.minimum(np.add.reduceat(copies, pairs), 2)
    chunks, values = chunks[pairs], values[pairs]
    groups = _group_starts(values)  # the first pair of each minimizer
    sizes = np.diff(np.append(groups, len(values)))
    corpus = np.add.reduceat(pair_copies, groups)
    return chunks, values, pair_copies, np.repeat(sizes, sizes), np.repeat(corpus, sizes)


def _group_starts(*keys: np.ndarray) -> np.ndarray:
    """Index of the first row of each group of equal `keys` in rows sorted by them."""
    first = np.ones(len(keys[0]), dtype=bool)
    first[1:] = np.any([key[1:] != key[:-1] for key in keys], axis=0)
    return np.flatnonzero(first)
