"""What ExactSubstr's Spark tasks run: one chunk, one sorted stream of shipped super-k-mers (the cut: `spans`).

No Spark here: the task callables take pandas/Arrow data and return pandas/Arrow data, so unit tests call them
directly. Every task reports *findings* in one schema (`FINDINGS_SCHEMA`), told apart by `kind`:
- `span`: window-start run [start, end) of document `_dd_id` that the policy removes;
- `skm`:  a super-k-mer to ship to the merge: bytes `data` of `_dd_id` owning window starts [start, end),
          all with minimizer `minimizer` (int64 view of the uint64 value);
- `top`:  a repeated substring for the report (`top.py`): `data`, `count` = occurrences in the corpus
          of its first k bytes; only tasks that see every occurrence of a window report it, so counts are exact;
- `fold`: merge statistics: `count` copies folded, `start` their bytes, `end` bytes searched;
- `searched`: chunk statistics: `end` bytes the chunk's suffix array searched.
Unused columns hold 0, "" or b"" (never null, so pandas keeps integer columns integer).

OpenMP threads of libdivsufsort (measured with pydivsufsort's bundled libgomp): libgomp reads OMP_NUM_THREADS
once, when the library loads; setting the variable afterwards has no effect (`omp_get_max_threads()` stays at
the core count), setting it before the first import works, and `omp_set_num_threads` works at any time.
Spark (4.x) already starts Python workers with OMP_NUM_THREADS = spark.task.cpus unless
spark.executorEnv.OMP_NUM_THREADS is set. For other callers this module sets it (unless set) before importing
the kernel, and the task objects are pickled by reference to this module, so a worker imports it first;
`limit_openmp_threads` lowers libgomp's limit at run time if the library was loaded with more threads.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one Spark task = one core; must precede the pydivsufsort import

import ctypes  # noqa: E402
import glob  # noqa: E402
from collections.abc import Callable, Iterator, Sequence  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from functools import cache, partial  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.compute as pc  # noqa: E402

from dedup_spark.columns import ID
from dedup_spark.exactsubstr.minimizers import SuperKmers, superkmers_batch, superkmers_with_copies  # noqa: E402
from dedup_spark.exactsubstr.suffix_array import PieceColumns, RepeatResult, find_repeats  # noqa: E402
from dedup_spark.exactsubstr.top import collapse_repeats, weighted_window_counts  # noqa: E402

FINDINGS_SCHEMA = f"kind string, {ID} string, start long, end long, count long, minimizer long, data binary"
_FINDINGS_ARROW = pa.schema(
    [
        ("kind", pa.string()),
        (ID, pa.string()),
        ("start", pa.int64()),
        ("end", pa.int64()),
        ("count", pa.int64()),
        ("minimizer", pa.int64()),
        ("data", pa.binary()),
    ]
)
#: Kernel top groups examined per task for every reported substring (shifted windows of one repeat are many).
TOP_POOL_FACTOR = 50


@cache
def _libgomp() -> ctypes.CDLL | None:
    import pydivsufsort

    root = os.path.dirname(os.path.dirname(pydivsufsort.__file__))
    found = sorted(glob.glob(os.path.join(root, "pydivsufsort.libs", "libgomp*")))
    return ctypes.CDLL(found[0]) if found else None  # other wheels (macOS, Windows) bundle it differently


def openmp_threads() -> int | None:
    """libgomp's current thread limit in this process (None if the wheel has no separate libgomp)."""
    lib = _libgomp()
    return int(lib.omp_get_max_threads()) if lib is not None else None


def limit_openmp_threads() -> None:
    """Lower libgomp's thread limit to OMP_NUM_THREADS (for when it was loaded before this module set it)."""
    lib = _libgomp()
    wanted = int(os.environ.get("OMP_NUM_THREADS", "1") or 1)
    if lib is not None and lib.omp_get_max_threads() > wanted:
        lib.omp_set_num_threads(wanted)


class Findings:
    """Column lists of findings rows, turned into pandas (applyInPandas) or Arrow (mapInArrow) at the end."""

    def __init__(self) -> None:
        self.columns: dict[str, list] = {name: [] for name in _FINDINGS_ARROW.names}

    def _add(self, kind: str, n: int, **values: list) -> None:
        defaults = {ID: "", "start": 0, "end": 0, "count": 0, "minimizer": 0, "data": b""}
        self.columns["kind"] += [kind] * n
        for name, default in defaults.items():
            self.columns[name] += values[name] if name in values else [default] * n

    def add_spans(self, ids: list[str], starts: np.ndarray, ends: np.ndarray) -> None:
        self._add("span", len(ids), **{ID: ids}, start=starts.tolist(), end=ends.tolist())

    def add_superkmers(
        self, ids: list[str], starts: np.ndarray, ends: np.ndarray, minimizers: np.ndarray, datas: list[bytes]
    ) -> None:
        values = minimizers.view(np.int64).tolist()
        self._add("skm", len(ids), **{ID: ids}, start=starts.tolist(), end=ends.tolist(), minimizer=values, data=datas)

    def add_fold_stats(self, copies: int, copy_bytes: int, searched_bytes: int) -> None:
        self._add("fold", 1, count=[copies], start=[copy_bytes], end=[searched_bytes])

    def add_searched(self, n_bytes: int) -> None:
        self._add("searched", 1, end=[n_bytes])

    def add_tops(self, entries: list[tuple[bytes, int]]) -> None:
        self._add("top", len(entries), data=[e[0] for e in entries], count=[e[1] for e in entries])

    def __len__(self) -> int:
        return len(self.columns["kind"])

    def to_arrow(self) -> pa.RecordBatch:
        return pa.RecordBatch.from_pydict(self.columns, schema=_FINDINGS_ARROW)

    def to_pandas(self) -> pd.DataFrame:
        # Explicit dtypes: an empty frame of object columns does not convert back to Arrow integers.
        return pd.DataFrame(
            {
                field.name: pd.Series(self.columns[field.name], dtype=np.int64 if field.type == pa.int64() else object)
                for field in _FINDINGS_ARROW
            }
        )


def _ranks(ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(sorted distinct ids, rank of each id): ranks keep corpus order (Python str order = UTF-8 byte order)."""
    return np.unique(np.asarray(ids, dtype=object), return_inverse=True)


def _policy_spans(findings: Findings, result: RepeatResult, uniq: np.ndarray, policy: str) -> None:
    runs = result.repeated if policy == "strike_all" else result.non_first
    findings.add_spans(uniq[runs.doc_rank].tolist(), runs.doc_start, runs.doc_end)


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


def superkmers_to_ship(
    ids: list[str], starts: np.ndarray, datas: list[bytes], owned: np.ndarray, wanted: np.ndarray, k: int, w: int
) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray, list[bytes]]:
    """The super-k-mers of the pieces whose minimizer is in `wanted`, as (ids, start, end, minimizer, data):
    document-relative window starts [start, end) and their bytes (with k-1 bytes of context)."""
    runs = superkmers_batch(datas, owned, k, w)
    return _superkmers_of(ids, starts, datas, runs, np.isin(runs.minimizer, wanted), k)


def _superkmers_of(
    ids: list[str], starts: np.ndarray, datas: list[bytes], runs: SuperKmers, ship: np.ndarray, k: int
) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray, list[bytes]]:
    piece, lo, hi = runs.piece[ship], runs.start[ship], runs.end[ship]
    return (
        [ids[p] for p in piece.tolist()],
        starts[piece] + lo,
        starts[piece] + hi,
        runs.minimizer[ship],
        [datas[p][a : b + k - 1] for p, a, b in zip(piece.tolist(), lo.tolist(), hi.tolist(), strict=True)],
    )


def _stretches(
    runs: SuperKmers, selected: np.ndarray, rank: np.ndarray, starts: np.ndarray, datas: list[bytes], k: int
) -> PieceColumns:
    """The selected runs as pieces of `find_repeats`: their window starts [start, end) and bytes (k-1 bytes of
    context included). Runs of one piece less than k windows apart are merged into one stretch with the windows
    between them, which takes fewer bytes than two stretches (the context of the first covers the gap)."""
    piece, lo, hi = runs.piece[selected], runs.start[selected], runs.end[selected]
    new = np.ones(len(piece), dtype=bool)
    new[1:] = (piece[1:] != piece[:-1]) | (lo[1:] - hi[:-1] >= k)
    first = np.flatnonzero(new)
    last = np.append(first[1:], len(piece))[: len(first)] - 1  # no runs: no stretches
    piece, lo, hi = piece[first], lo[first], hi[last]
    data = [datas[p][a : b + k - 1] for p, a, b in zip(piece.tolist(), lo.tolist(), hi.tolist(), strict=True)]
    return PieceColumns(rank[piece], starts[piece] + lo, data, hi - lo)


@dataclass(frozen=True)
class ChunkTask:
    """cogroup(...).applyInPandas function: one chunk's pieces + its candidate minimizers -> findings.

    pieces: `_dd_id, start, owned, data` (window starts [start, start + owned) of `_dd_id`, data = their bytes
    plus k-1 context); candidates: `minimizer`, `cross` (true: the chunk shares it with another chunk) for the
    minimizers of this chunk that are cross or whose copies in the corpus reach 2 (`superkmers_with_copies`).
    The super-k-mers of cross minimizers are emitted for shipping: the merge decides their windows. Of the others,
    only windows of a candidate minimizer can repeat, and all their occurrences are in this chunk: the suffix array
    of the stretches holding them (`_stretches`) gives the policy's spans for them exactly, and the top substrings
    among them. Other windows in those stretches change nothing: a window whose minimizer has fewer than two copies
    occurs once, and one repeated or non-first within a chunk is so in the corpus.
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
        cross = candidates["cross"].to_numpy(bool)
        return self.run(ids, starts, datas, owned, values[cross], values[~cross]).to_pandas()

    def run(
        self,
        ids: list[str],
        starts: np.ndarray,
        datas: list[bytes],
        owned: np.ndarray,
        cross: np.ndarray,
        local: np.ndarray,
    ) -> Findings:
        findings = Findings()
        if not ids:
            return findings
        uniq, rank = _ranks(ids)
        runs = superkmers_batch(datas, owned, self.k, self.w)
        searched = _stretches(runs, np.isin(runs.minimizer, local), rank, starts, datas, self.k)
        result = find_repeats(searched, self.k, top_n=self.top_n * TOP_POOL_FACTOR)
        findings.add_searched(sum(len(d) for d in searched.data))
        _policy_spans(findings, result, uniq, self.policy)
        # Stretches may hold windows of cross minimizers, whose counts here are partial: the merge reports those.
        windows = [g.window for g in result.top]
        local_tops = ~np.isin(superkmers_batch(windows, np.ones(len(windows)), self.k, self.w).minimizer, cross)
        tops = [(g.window, g.count) for g, keep in zip(result.top, local_tops, strict=True) if keep]
        findings.add_tops(collapse_repeats(tops, self.k, 2 * self.top_n))
        if len(cross):
            findings.add_superkmers(*_superkmers_of(ids, starts, datas, runs, np.isin(runs.minimizer, cross), self.k))
        return findings


def _chunk_udf(task: ChunkTask, pieces: pd.DataFrame, candidates: pd.DataFrame) -> pd.DataFrame:
    return task.frames(pieces, candidates)


@dataclass(frozen=True)
class MinimizerPairs:
    """mapInArrow function: pieces (`chunk, owned, data`) -> (`chunk`, `minimizer`, `copies`) of their windows, one
    row per chunk and minimizer of a batch; copies: the runs' copies (`superkmers_with_copies`) summed, capped at 2."""

    k: int
    w: int

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            chunks = batch.column("chunk").to_numpy()
            runs, copies = superkmers_with_copies(
                batch.column("data").to_pylist(), batch.column("owned").to_numpy(), self.k, self.w
            )
            run_chunks = chunks[runs.piece]
            values = runs.minimizer.view(np.int64)
            for chunk in np.unique(run_chunks).tolist():
                mine = run_chunks == chunk
                distinct, inverse = np.unique(values[mine], return_inverse=True)
                summed = np.minimum(np.bincount(inverse, weights=copies[mine]), 2).astype(np.int64)
                yield pa.RecordBatch.from_arrays(
                    [pa.array(np.full(len(distinct), chunk, dtype=np.int64)), pa.array(distinct), pa.array(summed)],
                    names=["chunk", "minimizer", "copies"],
                )


@dataclass(frozen=True)
class MergeTask:
    """mapInArrow function over shipped super-k-mers, sorted by (minimizer, data, _dd_id, start) within a task.

    Identical super-k-mers (same bytes, so the same minimizer) are adjacent; only the first in corpus order
    (the *representative*) goes to the suffix array, the others (*copies*) are decided at once: every window
    of a copy occurs at least twice (strike_all removes copy and representative) and has an earlier
    occurrence in its representative (keep_first removes the copy). The representative's windows are decided
    by `find_repeats` over all representatives of the same minimizer values: the first occurrence of any
    window is always in a representative, so this is exact, and memory is bounded by distinct bytes, not by
    how often a boilerplate line repeats. Complete minimizer groups are searched together, about
    `flush_bytes` at a time (a single group larger than that is searched whole).
    """

    k: int
    policy: str
    top_n: int
    flush_bytes: int

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        limit_openmp_threads()
        reps: dict[str, list] = {"minimizer": [], ID: [], "start": [], "data": [], "copies": []}
        pending_bytes = 0
        last_key: tuple[int, bytes] | None = None  # (minimizer, data) of the last row seen
        unreported: tuple[str, int, int] | None = None  # strike_all: last row, a representative not yet removed
        folded = folded_bytes = searched_bytes = 0
        for batch in batches:
            n = batch.num_rows
            if n == 0:
                continue
            mins = batch.column("minimizer").to_numpy()
            data_col = batch.column("data")
            datas = data_col.to_pylist()
            ids = batch.column(ID).to_pylist()
            starts, ends = batch.column("start").to_numpy(), batch.column("end").to_numpy()
            same = np.zeros(n, dtype=bool)  # same key as the row before: a copy
            if n > 1:
                same_data = pc.equal(data_col.slice(1), data_col.slice(0, n - 1)).to_numpy(zero_copy_only=False)
                same[1:] = (mins[1:] == mins[:-1]) & same_data
            same[0] = last_key == (int(mins[0]), datas[0])
            findings = Findings()
            report = np.flatnonzero(same)
            if self.policy == "strike_all":
                # A representative is removed too once it has a copy.
                reps_with_copies = report[report > 0] - 1
                report = np.union1d(report, reps_with_copies[~same[reps_with_copies]])
                if same[0] and unreported is not None:
                    findings.add_spans([unreported[0]], np.array([unreported[1]]), np.array([unreported[2]]))
                unreported = None if same[-1] else (ids[-1], int(starts[-1]), int(ends[-1]))
            findings.add_spans([ids[i] for i in report], starts[report], ends[report])
            if len(findings):
                yield findings.to_arrow()

            folded += int(same.sum())
            folded_bytes += sum(len(datas[i]) for i in np.flatnonzero(same))
            new_rows = np.flatnonzero(~same)
            copies = np.bincount(np.cumsum(~same)[same], minlength=len(new_rows) + 1)  # [0]: carried rep
            if reps["copies"]:
                reps["copies"][-1] += int(copies[0])
            reps["minimizer"] += mins[new_rows].tolist()
            reps[ID] += [ids[i] for i in new_rows]
            reps["start"] += starts[new_rows].tolist()
            reps["data"] += [datas[i] for i in new_rows]
            reps["copies"] += copies[1:].tolist()
            pending_bytes += sum(len(datas[i]) for i in new_rows)
            last_key = (int(mins[-1]), datas[-1])
            if pending_bytes >= self.flush_bytes:
                # Search the complete minimizer groups: all but the last value seen, which may continue.
                done = reps["minimizer"].index(last_key[0])
                if done:
                    searched = {key: values[:done] for key, values in reps.items()}
                    reps = {key: values[done:] for key, values in reps.items()}
                    pending_bytes = sum(len(d) for d in reps["data"])
                    searched_bytes += sum(len(d) for d in searched["data"])
                    yield self.search(searched).to_arrow()
        findings = self.search(reps) if reps["data"] else Findings()
        findings.add_fold_stats(folded, folded_bytes, searched_bytes + sum(len(d) for d in reps["data"]))
        yield findings.to_arrow()

    def search(self, reps: dict[str, list]) -> Findings:
        """Suffix array over representatives; spans of the policy and top substrings (exact counts)."""
        findings = Findings()
        uniq, rank = _ranks(reps[ID])
        owned = np.fromiter((len(d) - self.k + 1 for d in reps["data"]), dtype=np.int64, count=len(rank))
        pool = self.top_n * TOP_POOL_FACTOR
        result = find_repeats(PieceColumns(rank, reps["start"], reps["data"], owned), self.k, top_n=pool)
        _policy_spans(findings, result, uniq, self.policy)
        if self.top_n:
            copies = np.asarray(reps["copies"], dtype=np.int64)
            candidates = [g.window for g in result.top]
            counts = [g.count for g in result.top]
            if copies.any():
                # Folded copies are invisible to the suffix array: add the windows of the most copied
                # super-k-mers as candidates and recount every candidate, each representative weighted by
                # its copies.
                folded = np.flatnonzero(copies)
                for i in folded[np.argsort(-copies[folded], kind="stable")]:
                    data = reps["data"][i]
                    candidates += [data[j : j + self.k] for j in range(len(data) - self.k + 1)]
                    if len(candidates) >= 2 * pool:
                        break
                counts = weighted_window_counts(reps["data"], copies + 1, self.k, candidates).tolist()
            findings.add_tops(collapse_repeats(list(zip(candidates, counts, strict=True)), self.k, 2 * self.top_n))
        return findings
