"""Context keys of super-k-mers: which of a reference's super-k-mers can share a window with a batch.

A super-k-mer's minimizer says little in source code, where 32-byte grams recur everywhere: a batch's minimizers
select most of a reference. A shared window says more. A window W (k bytes) has a leftmost minimum w-gram at offset q,
0 <= q <= k - w, and q depends on W's bytes only. That w-gram leaves q bytes of W before it and k - w - q after it,
so one side has at least C = ceil((k - w) / 2) bytes. So every super-k-mer gets keys: for each w-gram of it that is
the minimum of some window (found among all of them, ties included), a *before* key hashing (minimizer, the C bytes
before the w-gram) when those bytes lie inside the super-k-mer, and an *after* key hashing (minimizer, the C bytes
after it) likewise. Two super-k-mers holding one window W both hold W's w-gram and its C bytes on the long side, so
they share that key: a super-k-mer none of whose keys the batch has shares no window with it. The converse fails
only by collisions of the 32-bit keys (rate about distinct batch keys / 2^32), which select a super-k-mer for
nothing: more work, never another result.

Keys depend on the super-k-mer's bytes and its neighbours (a w-gram counts when it is the minimum of any window
around it), so identical super-k-mers may get different extra keys; the key of every window they hold is in both.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from dedup_spark.exactsubstr.minimizers import (
    HASH_BASE,
    U64_MAX,
    SuperKmers,
    mix64,
    piece_texts,
    runs_of_pieces,
    sliding_min,
    wgram_hashes,
)

# Positions per segment of `_minima_and_positions`: temporaries of a few tens of MB whatever the text's size.
_SEGMENT = 1 << 20
# Salts of the two sides, so a before key and an after key over the same bytes differ.
_BEFORE, _AFTER = np.uint64(0x243F6A8885A308D3), np.uint64(0x13198A2E03707344)


def context_length(k: int, w: int) -> int:
    """C = ceil((k - w) / 2): the bytes every window has on one side of its minimum w-gram."""
    return (k - w + 1) // 2


def superkmers_with_keys(datas: Sequence[bytes], k: int, w: int) -> tuple[SuperKmers, np.ndarray, np.ndarray]:
    """The super-k-mers of whole documents (as `superkmers_batch` with every window owned) and their keys.

    Returns (runs, run, key): `run` int64 indexes into `runs` and `key` int32 keys, sorted by run then key,
    without repeats. The w-gram hashes and window minima are computed once for both.
    """
    lengths = np.fromiter((len(d) for d in datas), dtype=np.int64, count=len(datas))
    owned = np.maximum(lengths - k + 1, 0)
    used = np.where(owned > 0, lengths, 0)
    runs_parts: list[SuperKmers] = []
    packed_parts: list[np.ndarray] = []
    done = 0  # runs found in earlier batches
    for pieces, text in piece_texts(datas, used):
        minima, positions, hashes = _minima_and_positions(text, k, w)
        runs = runs_of_pieces(minima, pieces, used[pieces], owned[pieces])
        at = np.concatenate(([0], np.cumsum(used[pieces])))[np.searchsorted(pieces, runs.piece)]
        run, key = _keys(text, positions, hashes, runs.minimizer, at + runs.start, at + runs.end, k, w)
        # One sort of (run, key) packed in 64 bits orders the batch's pairs and drops repeats.
        packed_parts.append(np.unique((run + done) << 32 | key.view(np.uint32).astype(np.int64)))
        runs_parts.append(runs)
        done += len(runs.piece)
    packed = np.concatenate(packed_parts or [np.empty(0, dtype=np.int64)])
    return SuperKmers.concatenate(runs_parts), packed >> 32, (packed & 0xFFFFFFFF).astype(np.uint32).view(np.int32)


def _keys(
    text: np.ndarray,
    positions: np.ndarray,
    hashes: np.ndarray,
    minimizer: np.ndarray,
    start: np.ndarray,
    end: np.ndarray,
    k: int,
    w: int,
) -> tuple[np.ndarray, np.ndarray]:
    """(run, key) of runs given in text coordinates (run r owns window starts [start[r], end[r])), from the
    positions and hashes of the text's minimum w-grams (`_minima_and_positions`)."""
    c = context_length(k, w)
    # The w-grams of run r start in [start, end + k - w); those holding its minimizer are its minimum w-grams.
    lo = np.searchsorted(positions, start)
    counts = np.searchsorted(positions, end + (k - w)) - lo
    run = np.repeat(np.arange(len(start)), counts)
    index = np.arange(len(run)) - np.repeat(np.cumsum(counts) - counts, counts) + np.repeat(lo, counts)
    at = positions[index]
    mine = hashes[index] == minimizer[run]
    run, at = run[mine], at[mine]
    before = at - c >= start[run]
    after = at + w + c <= end[run] + (k - 1)
    keys = [
        _key(minimizer[run[before]], _hash_at(text, at[before] - c, c), _BEFORE),
        _key(minimizer[run[after]], _hash_at(text, at[after] + w, c), _AFTER),
    ]
    return np.concatenate((run[before], run[after])), np.concatenate(keys)


def _minima_and_positions(text: np.ndarray, k: int, w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The minimizer of every window of `text` (as `minimizers.window_minimizers`), and the positions (sorted) and
    hashes of the w-grams that are the minimum of at least one window.

    Every window containing w-gram p has a minimum <= hash(p); p is the minimum of one of them exactly when the
    largest of their minima equals hash(p). The largest is a sliding minimum over complements.
    """
    span = k - w + 1  # w-grams per window
    n_grams, n_windows = len(text) - w + 1, len(text) - k + 1
    minima = np.empty(max(n_windows, 0), dtype=np.uint64)
    positions: list[np.ndarray] = []
    hashes: list[np.ndarray] = []
    for lo in range(0, max(n_grams, 0), _SEGMENT):
        hi = min(n_grams, lo + _SEGMENT)
        first, last = max(0, lo - span + 1), min(n_windows, hi)  # the windows holding w-grams [lo, hi)
        if last <= first:
            break
        grams = wgram_hashes(text[first : last - 1 + k], w)  # w-grams first .. last + span - 2
        minima[first:last] = window_min = sliding_min(grams, span)  # segments overlap: same values written twice
        flipped = np.full(last - first + 2 * (span - 1), U64_MAX, dtype=np.uint64)
        flipped[span - 1 : span - 1 + last - first] = ~window_min
        largest = ~sliding_min(flipped, span)  # largest[t]: over the windows holding w-gram first + t
        part = slice(lo - first, hi - first)
        found = np.flatnonzero(grams[part] == largest[part])
        positions.append(found + lo)
        hashes.append(grams[part][found])
    if not positions:
        return minima, np.empty(0, dtype=np.int64), np.empty(0, dtype=np.uint64)
    return minima, np.concatenate(positions).astype(np.int64), np.concatenate(hashes)


def _hash_at(text: np.ndarray, starts: np.ndarray, length: int) -> np.ndarray:
    """Polynomial hash of text[s : s + length] for each s in starts (uint64)."""
    acc = np.zeros(len(starts), dtype=np.uint64)
    base = np.uint64(HASH_BASE)
    for j in range(length):
        acc *= base
        acc += text[starts + j]
    return acc


def _key(minimizer: np.ndarray, context: np.ndarray, side: np.uint64) -> np.ndarray:
    """32-bit key of (minimizer, context hash, side): the high half of a mixed 64-bit value."""
    mixed = mix64(mix64(context ^ side) ^ minimizer)
    return (mixed >> np.uint64(32)).astype(np.uint32).view(np.int32)
