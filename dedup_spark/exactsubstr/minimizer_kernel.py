"""Compiled loops (numba) of ExactSubstr: the super-k-mer runs of many pieces in one pass, and w-gram hashes.

The numpy functions of `minimizers` make about 20 passes over arrays of 8 bytes per input byte (the w-gram hash by
doubling, the mixer, three passes of sliding minima, the run masks): about 33 MB/s per core, bound by memory
traffic, and ExactSubstr runs them twice over the corpus (the minimizers step and the chunk tasks). Here one loop
per piece rolls the w-gram hash, mixes it, keeps the sliding minimum with van Herk/Gil-Werman blocks of k - w + 1
hashes in two small buffers, and writes only the runs: the same values as `minimizers.window_minimizers` and the
same runs as `minimizers.runs_of_pieces`, bit for bit (tests compare them), at 3-4x the speed. `gram_hashes`
rolls the same hash over one array (`minimizers.wgram_hashes`: the merge's recount of its top windows, k = 100, and
the context keys of the index), where doubling made 2 log2(w) passes.

Compiled functions are cached on disk (`dedup_spark.compiled`): Spark's Python workers on one machine compile once
and later load the cache in about 0.3 s.
"""

from __future__ import annotations

import numpy as np

from dedup_spark.compiled import njit

_U64 = np.uint64


@njit(cache=True, nogil=True, inline="always")
def _mix64(x: np.uint64) -> np.uint64:
    x ^= x >> _U64(30)
    x *= _U64(0xBF58476D1CE4E5B9)
    x ^= x >> _U64(27)
    x *= _U64(0x94D049BB133111EB)
    x ^= x >> _U64(31)
    return x


@njit(cache=True, nogil=True)
def gram_hashes(data: np.ndarray, w: int, base: np.uint64, base_w1: np.uint64) -> np.ndarray:
    """Mixed polynomial hash of every w-gram of the uint8 array `data` (what `minimizers.wgram_hashes` returns)."""
    n = data.shape[0] - w + 1
    out = np.empty(max(n, 0), dtype=np.uint64)
    acc = _U64(0)
    for j in range(min(w - 1, data.shape[0])):
        acc = acc * base + _U64(data[j])
    for t in range(n):
        acc = acc * base + _U64(data[t + w - 1])
        out[t] = _mix64(acc)
        acc -= _U64(data[t]) * base_w1
    return out


@njit(cache=True, nogil=True)
def _grown(values: np.ndarray, used: int, capacity: int) -> np.ndarray:
    out = np.empty(capacity, dtype=values.dtype)
    out[:used] = values[:used]
    return out


@njit(cache=True, nogil=True)
def superkmer_runs(
    text: np.ndarray,
    starts: np.ndarray,
    owned: np.ndarray,
    k: int,
    w: int,
    base: np.uint64,
    base_w1: np.uint64,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Runs of equal window minimizers of pieces laid back to back in `text`.

    Piece p's bytes start at text[starts[p]] and it owns its first owned[p] >= 1 windows (its bytes are exactly
    owned[p] + k - 1 long). base: the w-gram hash's multiplier; base_w1: base^(w - 1) mod 2^64.
    Returns (run piece (index into starts), minimizer, start, end, copies): piece-relative window starts [start,
    end), and how many w-grams of the run's windows hash to its minimizer, capped at 2
    (`minimizers.superkmers_with_copies`).
    """
    width = k - w + 1
    # Real text has one run per 20-35 windows; the arrays double when a piece could overflow them.
    capacity = 1024 + len(text) // 16
    run_piece = np.empty(capacity, dtype=np.int64)
    run_value = np.empty(capacity, dtype=np.uint64)
    run_start = np.empty(capacity, dtype=np.int64)
    run_end = np.empty(capacity, dtype=np.int64)
    run_copies = np.empty(capacity, dtype=np.int64)
    # The hashes of the block being filled; being written at t % width, it also holds the last width hashes.
    block = np.empty(width, dtype=np.uint64)
    suffix = np.empty(width, dtype=np.uint64)  # suffix minima of the block before it
    n_runs = 0
    for p in range(len(owned)):
        if n_runs + owned[p] > capacity:  # a piece adds at most one run per window
            capacity = 2 * (n_runs + owned[p])
            run_piece = _grown(run_piece, n_runs, capacity)
            run_value = _grown(run_value, n_runs, capacity)
            run_start = _grown(run_start, n_runs, capacity)
            run_end = _grown(run_end, n_runs, capacity)
            run_copies = _grown(run_copies, n_runs, capacity)
        first = starts[p]
        acc = _U64(0)
        for j in range(w - 1):
            acc = acc * base + _U64(text[first + j])
        prefix = _U64(0)
        current = _U64(0)
        copies = 0
        r = -1  # t % width
        # Hash t is the w-gram at piece offset t; window i covers hashes i .. i + width - 1.
        for t in range(owned[p] + width - 1):
            acc = acc * base + _U64(text[first + t + w - 1])
            h = _mix64(acc)
            acc -= _U64(text[first + t]) * base_w1  # drop the w-gram's first byte for the next one
            r = 0 if r == width - 1 else r + 1
            block[r] = h
            prefix = h if r == 0 else min(prefix, h)
            if r == width - 1:  # the block is full: window t - width + 1 is the whole block
                value = prefix
                m = h
                for s in range(width - 1, -1, -1):
                    m = min(m, block[s])
                    suffix[s] = m
            elif t >= width:  # window t - width + 1 starts in the block before
                value = min(suffix[r + 1], prefix)
            else:
                continue  # no window ends here yet
            i = t - width + 1
            if i == 0 or value != current:
                if i > 0:
                    run_end[n_runs - 1] = i
                    run_copies[n_runs - 1] = min(copies, 2)
                run_piece[n_runs] = p
                run_value[n_runs] = value
                run_start[n_runs] = i
                n_runs += 1
                current = value
                copies = 0
                for s in range(width):  # the hashes of window i
                    copies += block[s] == value
            else:
                copies += h == value  # the one hash window i adds to the run's
        run_end[n_runs - 1] = owned[p]
        run_copies[n_runs - 1] = min(copies, 2)
    return run_piece[:n_runs], run_value[:n_runs], run_start[:n_runs], run_end[:n_runs], run_copies[:n_runs]
