"""What ExactSubstr's per-chunk Spark tasks run: minimizer counts of the pieces, and one chunk's search and shipping.

No Spark here: the callables take pandas/Arrow data and return pandas/Arrow data (findings as in `tasks.py`).
A chunk searches only its *candidate stretches*: the bytes of its super-k-mers whose minimizer value is attained
at two or more minimizer positions in the corpus (`minimizers.minimizer_positions`), joined where they overlap.
Every other window occurs once in the corpus, so leaving it out changes no answer (see `stage.py`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np
import pandas as pd
import pyarrow as pa

from dedup_spark.columns import ID
from dedup_spark.exactsubstr.minimizers import SuperKmers, minimizer_positions, superkmers_batch
from dedup_spark.exactsubstr.suffix_array import PieceColumns, find_repeats
from dedup_spark.exactsubstr.tasks import TOP_POOL_FACTOR, Findings, limit_openmp_threads, policy_spans, ranks
from dedup_spark.exactsubstr.top import collapse_repeats


def window_minimizer_values(windows: Sequence[bytes], k: int, w: int) -> np.ndarray:
    """Minimizer value (uint64) of each k-byte window."""
    if not windows:
        return np.empty(0, dtype=np.uint64)
    return superkmers_batch(windows, np.ones(len(windows), dtype=np.int64), k, w).minimizer


def piece_columns(
    pieces: pd.DataFrame, minimizers: pd.DataFrame
) -> tuple[list[str], np.ndarray, list[bytes], np.ndarray, np.ndarray]:
    """One chunk's pieces (`_dd_id, start, owned, data`) and a set of its minimizers (`minimizer`) as the
    arguments of `ChunkTask.run` and `superkmers_to_ship`: ids, starts, datas, owned, minimizers (uint64)."""
    return (
        pieces[ID].tolist(),
        pieces["start"].to_numpy(np.int64),
        pieces["data"].tolist(),
        pieces["owned"].to_numpy(np.int64),
        minimizers["minimizer"].to_numpy(np.int64).view(np.uint64),
    )


def shipped_rows(
    ids: list[str], starts: np.ndarray, datas: list[bytes], runs: SuperKmers, ship: np.ndarray, k: int
) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray, list[bytes]]:
    """The runs selected by the mask `ship` as (ids, start, end, minimizer, data): document-relative window starts
    [start, end) and their bytes (with k-1 bytes of context)."""
    piece, lo, hi = runs.piece[ship], runs.start[ship], runs.end[ship]
    return (
        [ids[p] for p in piece.tolist()],
        starts[piece] + lo,
        starts[piece] + hi,
        runs.minimizer[ship],
        [datas[p][a : b + k - 1] for p, a, b in zip(piece.tolist(), lo.tolist(), hi.tolist(), strict=True)],
    )


def superkmers_to_ship(
    ids: list[str], starts: np.ndarray, datas: list[bytes], owned: np.ndarray, wanted: np.ndarray, k: int, w: int
) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray, list[bytes]]:
    """The super-k-mers of the pieces whose minimizer is in `wanted` (`shipped_rows`)."""
    runs = superkmers_batch(datas, owned, k, w)
    return shipped_rows(ids, starts, datas, runs, np.isin(runs.minimizer, wanted), k)


def stretches(runs: SuperKmers, keep: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The kept runs joined per piece where their bytes overlap or touch: (piece, start, end) of owned window starts
    [start, end), bytes [start, end + k - 1). Runs tile each piece in order, so a stretch ends where its last run does.
    """
    piece, lo, hi = runs.piece[keep], runs.start[keep], runs.end[keep]
    if not len(piece):
        return piece, lo, hi
    new = np.ones(len(piece), dtype=bool)
    new[1:] = (piece[1:] != piece[:-1]) | (lo[1:] > hi[:-1] + k - 1)
    firsts = np.flatnonzero(new)
    lasts = np.append(firsts[1:] - 1, len(piece) - 1)
    return piece[firsts], lo[firsts], hi[lasts]


@dataclass(frozen=True)
class ChunkTask:
    """cogroup(...).applyInPandas function: one chunk's pieces + its candidate minimizers -> findings.

    pieces: `_dd_id, start, owned, data` (window starts [start, start + owned) of `_dd_id`, data = their bytes
    plus k-1 context); candidates: `minimizer, cross`, the minimizer values of this chunk attained at two or more
    minimizer positions in the corpus, `cross` if also present in another chunk.
    Emits the policy's spans found by one suffix array over the candidate stretches (exact for every window whose
    minimizer is not cross: all its occurrences are in this chunk's stretches), top substrings among those windows,
    the super-k-mers whose minimizer is cross, and the bytes searched (`chunk` row).
    """

    k: int
    w: int
    policy: str
    top_n: int

    def udf(self) -> Callable[[pd.DataFrame, pd.DataFrame], pd.DataFrame]:
        """The function for applyInPandas (a partial: Spark reads the argument count from its signature)."""
        return partial(_chunk_udf, self)

    def frames(self, pieces: pd.DataFrame, candidates: pd.DataFrame) -> pd.DataFrame:
        limit_openmp_threads()
        ids, starts, datas, owned, values = piece_columns(pieces, candidates)
        cross = values[candidates["cross"].to_numpy(bool)]
        return self.run(ids, starts, datas, owned, values, cross).to_pandas()

    def run(
        self,
        ids: list[str],
        starts: np.ndarray,
        datas: list[bytes],
        owned: np.ndarray,
        candidates: np.ndarray,
        cross: np.ndarray,
    ) -> Findings:
        findings = Findings()
        if not ids or not len(candidates):
            return findings  # no window of this chunk occurs twice in the corpus
        runs = superkmers_batch(datas, owned, self.k, self.w)
        piece, lo, hi = stretches(runs, np.isin(runs.minimizer, candidates), self.k)
        plist = piece.tolist()
        found = [datas[p][a : b + self.k - 1] for p, a, b in zip(plist, lo.tolist(), hi.tolist(), strict=True)]
        uniq, rank = ranks([ids[p] for p in plist])
        pool = self.top_n * TOP_POOL_FACTOR
        result = find_repeats(PieceColumns(rank, starts[piece] + lo, found, hi - lo), self.k, top_n=pool)
        policy_spans(findings, result, uniq, self.policy)
        # Counts of windows with a cross minimizer are partial here; the merge reports those.
        windows = [g.window for g in result.top]
        local = ~np.isin(window_minimizer_values(windows, self.k, self.w), cross)
        tops = [(g.window, g.count) for g, keep in zip(result.top, local, strict=True) if keep]
        findings.add_tops(collapse_repeats(tops, self.k, 2 * self.top_n))
        if len(cross):
            findings.add_superkmers(*shipped_rows(ids, starts, datas, runs, np.isin(runs.minimizer, cross), self.k))
        findings.add_chunk_stats(sum(len(d) for d in found))
        return findings


def _chunk_udf(task: ChunkTask, pieces: pd.DataFrame, candidates: pd.DataFrame) -> pd.DataFrame:
    return task.frames(pieces, candidates)


@dataclass(frozen=True)
class MinimizerPairs:
    """mapInArrow function: pieces (`chunk, owned, data`) -> distinct (`chunk`, `minimizer`) of their windows, with
    `positions` (minimizer positions attaining the value in the chunk's pieces, `minimizer_positions`) if asked."""

    k: int
    w: int
    positions: bool = False

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            chunks = batch.column("chunk").to_numpy()
            datas, owned = batch.column("data").to_pylist(), batch.column("owned").to_numpy()
            if self.positions:
                counts = minimizer_positions(datas, owned, self.k, self.w)
                piece, values, weights = counts.piece, counts.minimizer, counts.positions
            else:
                runs = superkmers_batch(datas, owned, self.k, self.w)
                piece, values, weights = runs.piece, runs.minimizer, np.ones(len(runs.piece), dtype=np.int64)
            chunk = chunks[piece]
            order = np.lexsort((values, chunk))
            chunk, values, weights = chunk[order], values[order], weights[order]
            firsts = np.flatnonzero(np.concatenate(([True], (chunk[1:] != chunk[:-1]) | (values[1:] != values[:-1]))))
            columns = [pa.array(chunk[firsts].astype(np.int64)), pa.array(values[firsts].view(np.int64))]
            names = ["chunk", "minimizer"]
            if self.positions:
                columns.append(pa.array(np.add.reduceat(weights, firsts) if len(firsts) else weights))
                names.append("positions")
            yield pa.RecordBatch.from_arrays(columns, names=names)
