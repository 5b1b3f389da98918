"""Repeated k-byte windows in one set of pieces, with a suffix array (the ExactSubstr kernel).

A Spark task calls `find_repeats` on one chunk of the corpus, and again on one shuffle partition of
super-k-mers (see `minimizers`). A *piece* is bytes from one document that owns the window starts
[0, owned); bytes after that are context so the owned windows fit. Only owned starts are occurrences.

Method: concatenate the pieces in corpus order (doc_rank, doc_offset) joined by 0xFF, each trimmed to the bytes its
owned windows cover; build the suffix array (libdivsufsort) and mark the neighbours that share their first k bytes
(`lcp.shares_k_with_next`, from the Phi array, no LCP array). Suffixes sharing a k-byte prefix are contiguous in
the suffix array, so equal windows form runs of such neighbours. Only members of such runs (candidates; 2-25% of
positions on real text) go on to the random-access steps: candidates that are not owned windows are dropped
(suffixes reaching a separator or the text end within k bytes), then groups left with >= 2 members are repeats. No
window containing 0xFF equals a real window of valid UTF-8, and even if a piece contains 0xFF the answer stays
exact, because such suffixes are dropped, never counted. Because pieces are concatenated in corpus order and own
disjoint starts, the first occurrence of a window is its smallest text position.

Everything after the suffix array and the neighbour test is vectorised numpy; Python loops run per piece (building
the text) or per reported top group, never per position.

Cost, measured on 50 MB of Python sources (k=100, 22% of windows repeated), CPU seconds: suffix array 4.6-4.9,
Kasai's LCP (used then) 2.5-2.9, the rest 0.8-1.5; the Phi test takes about half of Kasai's time (lcp.py). Memory
beyond the input: text copy 1 B/byte + suffix array 4 + the Phi array 4 and two flag arrays 2 = peak 11 B/byte,
reached inside the neighbour test (Kasai's rank and LCP arrays took 8: peak 13, measured 13.05); afterwards
everything is smaller. The wheel's libdivsufsort uses OpenMP: set OMP_NUM_THREADS=1 on executors running several
tasks, or threads oversubscribe the cores (and tiny inputs pay ~1-10 ms of thread start-up per call instead of ~0.3
ms).
Total size (pieces + separators) must stay below 2^31 - 1 bytes, the int32 suffix array limit: chunks are
configured far smaller, so larger inputs are rejected rather than supported.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pydivsufsort

from dedup_spark.exactsubstr.lcp import shares_k_with_next

SEPARATOR = 0xFF
#: Largest concatenated size (pieces + separators) accepted: the int32 suffix array limit.
MAX_TEXT_BYTES = 2**31 - 2


@dataclass(frozen=True)
class Piece:
    """Bytes of one document that own the window starts [0, owned) (doc offsets doc_offset + [0, owned)).

    Bytes after `owned` are context so the owned windows fit; starts whose window does not fit in
    `data` are never windows (owned is clipped to len(data) - k + 1).
    """

    doc_rank: int
    doc_offset: int
    data: bytes
    owned: int


class PieceColumns(NamedTuple):
    """The same pieces as parallel columns (what an Arrow batch gives without building objects)."""

    doc_rank: Sequence[int] | np.ndarray
    doc_offset: Sequence[int] | np.ndarray
    data: Sequence[bytes]
    owned: Sequence[int] | np.ndarray


@dataclass(frozen=True)
class PieceIntervals:
    """Runs of window starts, flat and sorted by (piece, start); runs are maximal (merged) per piece.

    piece: int64 input index of the piece; start, end: int64 piece-relative window starts [start, end);
    doc_rank, doc_start, doc_end: the same runs document-relative (doc_offset added), for unions
    across chunks and partitions. `n_pieces` is the number of input pieces.
    """

    piece: np.ndarray
    start: np.ndarray
    end: np.ndarray
    doc_rank: np.ndarray
    doc_start: np.ndarray
    doc_end: np.ndarray
    n_pieces: int

    def for_piece(self, i: int) -> np.ndarray:
        """Runs of piece i as an int64 array of shape (r, 2): rows [start, end), piece-relative."""
        lo, hi = np.searchsorted(self.piece, [i, i + 1])
        return np.stack([self.start[lo:hi], self.end[lo:hi]], axis=1)

    def per_piece(self) -> list[np.ndarray]:
        """`for_piece(i)` for every input piece, in input order."""
        bounds = np.searchsorted(self.piece, np.arange(self.n_pieces + 1))
        pairs = np.stack([self.start, self.end], axis=1)
        return [pairs[bounds[i] : bounds[i + 1]] for i in range(self.n_pieces)]

    @property
    def n_starts(self) -> int:
        """Total number of window starts covered."""
        return int((self.end - self.start).sum())


@dataclass(frozen=True)
class RepeatGroup:
    """One distinct repeated window: its bytes, occurrence count and first occurrence in corpus order."""

    window: bytes
    count: int
    piece: int
    offset: int
    doc_rank: int
    doc_offset: int


@dataclass(frozen=True)
class RepeatResult:
    """What `find_repeats` found in one set of pieces (counts are within this set only).

    repeated: owned starts whose window occurs >= 2 times (drives `strike_all`).
    non_first: owned starts that are not the first occurrence of their window in corpus order
        (smallest (doc_rank, doc_offset + offset)); drives `keep_first`.
    top: the `top_n` distinct repeated windows with most occurrences (ties: earliest first occurrence).
    n_windows: owned window starts; n_repeated_windows / n_non_first_windows: starts in the two sets;
    n_distinct_repeated: distinct windows occurring >= 2 times.
    """

    repeated: PieceIntervals
    non_first: PieceIntervals
    top: list[RepeatGroup]
    n_windows: int
    n_repeated_windows: int
    n_non_first_windows: int
    n_distinct_repeated: int
    #: With `piece_sets`: owned starts whose window group has a member with bit 1 and one with bit 2 (else empty).
    shared: PieceIntervals | None = None


def _columns(pieces: Sequence[Piece] | PieceColumns) -> tuple[np.ndarray, np.ndarray, list[bytes], np.ndarray]:
    if isinstance(pieces, PieceColumns):
        ranks, offsets, datas, owned = pieces
        datas = list(datas)
    else:
        ranks = [p.doc_rank for p in pieces]
        offsets = [p.doc_offset for p in pieces]
        datas = [p.data for p in pieces]
        owned = [p.owned for p in pieces]
    cols = [np.asarray(c, dtype=np.int64).reshape(-1) for c in (ranks, offsets, owned)]
    if not all(len(c) == len(datas) for c in cols):
        raise ValueError(f"piece columns have different lengths: {[len(c) for c in cols]} vs {len(datas)} data")
    return cols[0], cols[1], datas, cols[2]


def _intervals(
    positions: np.ndarray,
    text_size: int,
    cstart: np.ndarray,
    piece_of: np.ndarray,
    ranks: np.ndarray,
    offsets: np.ndarray,
    n: int,
) -> PieceIntervals:
    """Maximal runs of consecutive text positions (any order, distinct), mapped to (input piece, piece offset).

    Runs come from a mask over the text (O(text) byte passes), not from sorting the positions.
    """
    mask = np.zeros(text_size + 2, dtype=np.int8)
    mask[positions.astype(np.int64) + 1] = 1
    edges = np.diff(mask)  # edges[p] = +1 where a run starts at p, -1 where one ends (exclusive) at p
    run_start = np.flatnonzero(edges == 1)
    run_end = np.flatnonzero(edges == -1)
    del mask, edges
    if len(run_start) == 0:
        e = np.empty(0, dtype=np.int64)
        return PieceIntervals(e, e, e, e, e, e, n)
    # Owned starts of different pieces are separated by at least a separator, so runs never span pieces.
    sorted_piece = np.searchsorted(cstart, run_start, side="right") - 1
    rel_start = run_start - cstart[sorted_piece]
    rel_end = run_end - cstart[sorted_piece]
    piece = piece_of[sorted_piece]
    order = np.argsort(piece, kind="stable")  # runs are already sorted within a piece
    piece, rel_start, rel_end = piece[order], rel_start[order], rel_end[order]
    return PieceIntervals(
        piece, rel_start, rel_end, ranks[piece], rel_start + offsets[piece], rel_end + offsets[piece], n
    )


def _empty_result(n_pieces: int, n_windows: int, with_sets: bool = False) -> RepeatResult:
    e = np.empty(0, dtype=np.int64)
    none = PieceIntervals(e, e, e, e, e, e, n_pieces)
    return RepeatResult(none, none, [], n_windows, 0, 0, 0, shared=none if with_sets else None)


def find_repeats(
    pieces: Sequence[Piece] | PieceColumns,
    k: int,
    *,
    top_n: int = 20,
    piece_sets: Sequence[int] | np.ndarray | None = None,
) -> RepeatResult:
    """Find the owned window starts whose k-byte window repeats within these pieces.

    pieces: a list of `Piece` or a `PieceColumns`; pieces of one doc_rank must not own overlapping doc
    offsets. k: window length in bytes (>= 1). top_n: how many top groups to summarise.
    piece_sets: optional bit mask per piece (1 = reference set, e.g. train; 2 = query set, e.g. eval; 3 = both,
    for a piece standing for copies in both sets). With it, `shared` holds the owned starts of every group of
    >= 2 equal windows whose members' masks together have both bits: the contamination rule.
    Returns a `RepeatResult` whose intervals are piece-relative (and document-relative copies).
    Raises ValueError for bad arguments, overlapping pieces, or more than MAX_TEXT_BYTES in total.
    """
    if k < 1:
        raise ValueError(f"window length k={k} must be >= 1")
    if top_n < 0:
        raise ValueError(f"top_n={top_n} must be >= 0")
    ranks, offsets, datas, owned = _columns(pieces)
    n_pieces = len(datas)
    sets = None
    if piece_sets is not None:
        sets = np.asarray(piece_sets, dtype=np.int64).reshape(-1)
        if len(sets) != n_pieces or ((sets < 0) | (sets > 3)).any():
            raise ValueError(f"piece_sets must hold one mask in 0..3 per piece ({n_pieces} pieces)")
    if (owned < 0).any() or (offsets < 0).any():
        raise ValueError("piece owned counts and doc offsets must be >= 0")
    lengths = np.fromiter((len(d) for d in datas), dtype=np.int64, count=n_pieces)
    n_owned = np.clip(owned, 0, np.maximum(lengths - k + 1, 0))
    n_windows = int(n_owned.sum())
    if n_windows == 0:
        return _empty_result(n_pieces, 0, sets is not None)

    # Corpus order; pieces owning nothing are dropped, and each piece is trimmed to the bytes its owned
    # windows cover, so every full window of the text is an owned one (context starts disappear).
    order = np.lexsort((offsets, ranks))
    order = order[n_owned[order] > 0]
    r, o, c = ranks[order], offsets[order], n_owned[order]
    overlap = (r[1:] == r[:-1]) & (o[:-1] + c[:-1] > o[1:])
    if overlap.any():
        i = int(np.flatnonzero(overlap)[0])
        raise ValueError(
            f"pieces of doc_rank {r[i]} own overlapping starts: offsets {o[i]}+{c[i]} and {o[i + 1]}; "
            "each window start of a document must be owned by one piece"
        )
    used = c + k - 1
    cstart = np.concatenate(([0], np.cumsum(used + 1)[:-1])).astype(np.int64)
    total = int(cstart[-1] + used[-1])
    if total > MAX_TEXT_BYTES:
        raise ValueError(f"{total} bytes of pieces exceed the {MAX_TEXT_BYTES}-byte limit; use smaller chunks")
    # Slices of bytes objects: a whole one is the object itself, and join reads bytes 10x faster than memoryviews.
    trimmed = (bytes(datas[i][:size]) for i, size in zip(order.tolist(), used.tolist(), strict=True))
    joined = bytearray(bytes([SEPARATOR])).join(trimmed)
    text = np.frombuffer(joined, dtype=np.uint8)  # writable: pydivsufsort needs that

    sa = pydivsufsort.divsufsort(text)
    same_next = shares_k_with_next(text, sa, k)  # neighbours i, i + 1 share their first k bytes
    # Candidates: members of runs of >= 2 suffixes sharing a k-byte prefix. Usually a small fraction,
    # so the random-access work below (owned lookup, sorts) runs on candidates only.
    in_run = same_next.copy()
    in_run[1:] |= same_next[:-1]
    cand_pos = sa[in_run]
    # Runs are contiguous, so the next candidate is in the same run iff the next suffix is.
    run_ends = ~same_next[in_run]
    cand_run = np.zeros(len(run_ends), dtype=np.int32)
    np.cumsum(run_ends[:-1], dtype=np.int32, out=cand_run[1:])  # runs ended before each candidate
    del sa, same_next, in_run, run_ends

    # Keep owned windows: drops suffixes reaching a separator or the text end within k bytes (they may
    # form runs of their own when a piece contains 0xFF). owned_mask[p]: +1 at piece starts, -1 after.
    delta = np.zeros(len(text) + 1, dtype=np.int8)
    delta[cstart] += 1
    delta[cstart + c] -= 1
    owned_mask = np.cumsum(delta[:-1], dtype=np.int8).view(bool)
    keep = owned_mask[cand_pos]
    del delta, owned_mask
    cand_pos, cand_run = cand_pos[keep], cand_run[keep]
    # A group of equal windows is repeated if it still has >= 2 owned members.
    same_as_next = cand_run[1:] == cand_run[:-1]
    in_repeat = np.zeros(len(cand_pos), dtype=bool)
    in_repeat[1:] = same_as_next
    in_repeat[:-1] |= same_as_next
    pos_r = cand_pos[in_repeat]  # int32: positions < 2^31
    gid_r = cand_run[in_repeat]
    del cand_pos, cand_run, same_as_next, in_repeat, keep

    n_rep = len(pos_r)
    if n_rep == 0:
        return _empty_result(n_pieces, n_windows, sets is not None)
    group_start = np.flatnonzero(np.concatenate(([True], gid_r[1:] != gid_r[:-1])))
    counts = np.diff(np.append(group_start, n_rep))
    firsts = np.minimum.reduceat(pos_r, group_start)  # smallest position = first in corpus order
    is_first = pos_r == np.repeat(firsts, counts)  # positions are distinct: one True per group
    n_non_first = n_rep - len(group_start)
    piece_of = order.astype(np.int64)
    size = len(text)
    shared = None
    if sets is not None:
        shared_pos = _shared_positions(pos_r, group_start, counts, sets[order], cstart)
        shared = _intervals(shared_pos, size, cstart, piece_of, ranks, offsets, n_pieces)
    repeated = _intervals(pos_r, size, cstart, piece_of, ranks, offsets, n_pieces)
    non_first = _intervals(pos_r[~is_first], size, cstart, piece_of, ranks, offsets, n_pieces)
    top = _top_groups(text, counts, firsts, cstart, piece_of, ranks, offsets, k, top_n)
    return RepeatResult(repeated, non_first, top, n_windows, n_rep, n_non_first, len(group_start), shared=shared)


def _shared_positions(
    pos_r: np.ndarray, group_start: np.ndarray, counts: np.ndarray, sorted_sets: np.ndarray, cstart: np.ndarray
) -> np.ndarray:
    """Text positions of the members of groups whose masks (per sorted piece) OR to both bits 1 and 2."""
    masks = sorted_sets[np.searchsorted(cstart, pos_r, side="right") - 1]
    has_ref = np.maximum.reduceat((masks & 1).astype(np.int8), group_start)
    has_query = np.maximum.reduceat((masks & 2).astype(np.int8), group_start)
    mixed = np.repeat((has_ref > 0) & (has_query > 0), counts)
    return pos_r[mixed]


def _top_groups(
    text: np.ndarray,
    counts: np.ndarray,
    firsts: np.ndarray,
    cstart: np.ndarray,
    piece_of: np.ndarray,
    ranks: np.ndarray,
    offsets: np.ndarray,
    k: int,
    top_n: int,
) -> list[RepeatGroup]:
    """The top_n groups by count (ties: earliest first occurrence), O(groups) via argpartition."""
    if top_n == 0:
        return []
    # One int64 key: count high, reversed position low (count < 2^31 and position < 2^31).
    key = counts.astype(np.int64) << 31 | (MAX_TEXT_BYTES - firsts.astype(np.int64))
    key_idx = np.argpartition(-key, top_n - 1)[:top_n] if len(key) > top_n else np.arange(len(key))
    key_idx = key_idx[np.argsort(-key[key_idx], kind="stable")]
    result = []
    for g in key_idx:
        p = int(firsts[g])
        sp = int(np.searchsorted(cstart, p, side="right") - 1)
        piece = int(piece_of[sp])
        offset = p - int(cstart[sp])
        result.append(
            RepeatGroup(
                window=text[p : p + k].tobytes(),
                count=int(counts[g]),
                piece=piece,
                offset=offset,
                doc_rank=int(ranks[piece]),
                doc_offset=int(offsets[piece]) + offset,
            )
        )
    return result


def bare_suffix_array_seconds(data: bytes) -> float:
    """Seconds libdivsufsort takes to build the suffix array of `data` alone (for benchmarks).

    The writable copy it needs is made before the clock starts.
    """
    text = np.frombuffer(bytearray(data), dtype=np.uint8)
    start = time.perf_counter()
    pydivsufsort.divsufsort(text)
    return time.perf_counter() - start
