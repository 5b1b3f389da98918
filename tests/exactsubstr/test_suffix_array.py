"""find_repeats against brute force, and the whole distributed ExactSubstr design simulated in Python.

The simulation (`distributed_spans`) is the key test: documents are split into pieces with k-1 bytes of
context, packed into chunks, searched per chunk, then cut into super-k-mers that are grouped by minimizer
value into P partitions and searched again; the union of what every chunk and partition reports must give
exactly the spans of the brute-force oracle, for both policies, for any chunk size and P.
"""

from __future__ import annotations

import random
from collections import defaultdict

import numpy as np
import pytest

from dedup_spark.exactsubstr.minimizers import superkmers_batch
from dedup_spark.exactsubstr.spans import policy_spans
from dedup_spark.exactsubstr.suffix_array import (
    MAX_TEXT_BYTES,
    Piece,
    PieceColumns,
    RepeatResult,
    bare_suffix_array_seconds,
    find_repeats,
)
from tests.exactsubstr.exact_oracle import oracle_spans

POLICIES = ("strike_all", "keep_first")
CHARS = "ab Жд中😀"


# ---------------------------------------------------------------- corpora


def random_doc(rng: random.Random, alphabet: str, max_len: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, max_len + 1)))


def corpus_small_alphabet(rng: random.Random) -> list[str]:
    return [random_doc(rng, "ab", 40) for _ in range(25)]


def corpus_multibyte(rng: random.Random) -> list[str]:
    return [random_doc(rng, CHARS, 30) for _ in range(25)]


def corpus_planted(rng: random.Random) -> list[str]:
    """Random docs with shared phrases of exactly k-1, k and k+3 bytes planted at random places (k=8)."""
    phrases = ["Жд中x", "abcdefgh", "😀Жabcdefg", "1234567"]  # 8, 8, 10+, 7 bytes
    docs = []
    for _ in range(20):
        parts = [random_doc(rng, "xyzЖ", 6) for _ in range(3)]
        for _ in range(rng.randrange(0, 3)):
            parts.insert(rng.randrange(0, len(parts) + 1), rng.choice(phrases))
        docs.append("".join(parts))
    return docs


def corpus_edge_docs(rng: random.Random) -> list[str]:
    return ["", "a", "", "aaaaaaaaaaaaaaaaaaaa", "ab" * 15, "a", "😀" * 6, "aaaaaaa", "", "Ж" * 9, "ab" * 4 + "c"]


CORPORA = {
    "small_alphabet": corpus_small_alphabet,
    "multibyte": corpus_multibyte,
    "planted": corpus_planted,
    "edge_docs": corpus_edge_docs,
}


# ---------------------------------------------------------------- helpers


def whole_doc_pieces(docs: list[str]) -> list[Piece]:
    return [Piece(rank, 0, doc.encode(), len(doc.encode())) for rank, doc in enumerate(docs)]


def doc_intervals(results: list[RepeatResult], n_docs: int) -> tuple[list[list], list[list]]:
    """Union of document-relative repeated / non-first window-start runs over several results."""
    repeated: list[list] = [[] for _ in range(n_docs)]
    non_first: list[list] = [[] for _ in range(n_docs)]
    for res in results:
        for target, iv in ((repeated, res.repeated), (non_first, res.non_first)):
            for d, s, e in zip(iv.doc_rank.tolist(), iv.doc_start.tolist(), iv.doc_end.tolist(), strict=True):
                target[d].append((s, e))
    return repeated, non_first


def spans_from(docs: list[str], k: int, policy: str, repeated: list[list], non_first: list[list]) -> list[list]:
    return [
        [tuple(r) for r in policy_spans(doc.encode(), k, policy, repeated[d], non_first[d]).tolist()]
        for d, doc in enumerate(docs)
    ]


def split_into_chunks(docs: list[str], k: int, chunk_bytes: int, rng: random.Random) -> list[list[Piece]]:
    """Pieces of at most chunk_bytes (owned starts + k-1 context bytes, random split points), shuffled
    and packed into chunks of at most chunk_bytes (a piece of one document may land in any chunk)."""
    pieces = []
    for rank, doc in enumerate(docs):
        data = doc.encode()
        n_windows = len(data) - k + 1
        if n_windows <= 0:
            pieces.append(Piece(rank, 0, data, len(data)))  # no windows: must be harmless
            continue
        step = max(1, chunk_bytes - (k - 1))
        start = 0
        while start < n_windows:
            owned = min(rng.randint(1, step), n_windows - start)
            pieces.append(Piece(rank, start, data[start : start + owned + k - 1], owned))
            start += owned
    rng.shuffle(pieces)
    chunks: list[list[Piece]] = [[]]
    size = 0
    for piece in pieces:
        if chunks[-1] and size + len(piece.data) > chunk_bytes:
            chunks.append([])
            size = 0
        chunks[-1].append(piece)
        size += len(piece.data)
    return chunks


def partition_superkmers(chunks: list[list[Piece]], k: int, w: int, n_partitions: int) -> list[list[Piece]]:
    """Every piece's super-k-mers, as pieces, grouped by minimizer value % n_partitions (the shuffle)."""
    partitions: list[list[Piece]] = [[] for _ in range(n_partitions)]
    for chunk in chunks:
        runs = superkmers_batch([p.data for p in chunk], [p.owned for p in chunk], k, w)
        for i, value, s, e in zip(
            runs.piece.tolist(), runs.minimizer.tolist(), runs.start.tolist(), runs.end.tolist(), strict=True
        ):
            p = chunk[i]
            partitions[value % n_partitions].append(Piece(p.doc_rank, p.doc_offset + s, p.data[s : e + k - 1], e - s))
    for part in partitions:
        random.Random(len(part)).shuffle(part)  # arrival order in a partition is arbitrary
    return partitions


def distributed_results(
    docs: list[str], k: int, w: int, chunk_bytes: int, n_partitions: int, seed: int
) -> tuple[list[RepeatResult], list[RepeatResult]]:
    chunks = split_into_chunks(docs, k, chunk_bytes, random.Random(seed))
    per_chunk = [find_repeats(chunk, k) for chunk in chunks]
    per_partition = [find_repeats(part, k) for part in partition_superkmers(chunks, k, w, n_partitions)]
    return per_chunk, per_partition


def brute_window_sets(pieces: list[Piece], k: int) -> tuple[set, set, dict]:
    """(input piece, offset) of repeated and of non-first owned windows, and window -> occurrence list."""
    occ: dict[bytes, list] = defaultdict(list)
    for idx, p in enumerate(pieces):
        for i in range(max(0, min(p.owned, len(p.data) - k + 1))):
            occ[p.data[i : i + k]].append(((p.doc_rank, p.doc_offset + i), idx, i))
    repeated, non_first = set(), set()
    for lst in occ.values():
        if len(lst) >= 2:
            first = min(lst)
            repeated.update((idx, i) for _, idx, i in lst)
            non_first.update((idx, i) for key, idx, i in lst if key != first[0])
    return repeated, non_first, occ


def result_window_sets(res: RepeatResult) -> tuple[set, set]:
    def expand(iv) -> set:
        return {
            (p, i)
            for p, s, e in zip(iv.piece.tolist(), iv.start.tolist(), iv.end.tolist(), strict=True)
            for i in range(s, e)
        }

    return expand(res.repeated), expand(res.non_first)


# ---------------------------------------------------------------- single set of pieces vs brute force


@pytest.mark.parametrize("corpus", sorted(CORPORA))
@pytest.mark.parametrize("k", [1, 3, 8])
def test_whole_documents_match_oracle(corpus: str, k: int) -> None:
    docs = CORPORA[corpus](random.Random(k))
    repeated, non_first = doc_intervals([find_repeats(whole_doc_pieces(docs), k)], len(docs))
    for policy in POLICIES:
        assert spans_from(docs, k, policy, repeated, non_first) == oracle_spans(docs, k, policy), policy


def test_one_document_repeated_2000_times() -> None:
    docs = ["Жили-были 中文 😀 dedup!"] * 2000 + ["Жили-были tail"]
    k = 10
    res = find_repeats(whole_doc_pieces(docs), k)
    n_doc_windows = len(docs[0].encode()) - k + 1
    # the tail doc shares its first windows with the copies, so it adds no distinct window
    assert res.n_distinct_repeated == n_doc_windows
    assert res.top[0].count == 2001 and res.top[0].doc_rank == 0 and res.top[0].offset == 0
    repeated, non_first = doc_intervals([res], len(docs))
    for policy in POLICIES:
        assert spans_from(docs, k, policy, repeated, non_first) == oracle_spans(docs, k, policy), policy
    kept = spans_from(docs, k, "keep_first", repeated, non_first)
    assert kept[0] == [] and kept[1] == [(0, len(docs[1]))]  # only the first copy survives whole


@pytest.mark.parametrize("seed", range(12))
def test_arbitrary_pieces_match_brute_force_windows(seed: int) -> None:
    """Pieces in random input order, random owned counts (0, short, past the end), extra context, 0xFF bytes."""
    rng = random.Random(seed)
    k = rng.choice([1, 2, 4, 7])
    pieces = []
    for rank in rng.sample(range(1000), 8):
        data = bytes(rng.choice(b"ab\xff") for _ in range(rng.randrange(0, 60)))
        offset = 0
        while offset < len(data) or not pieces:
            owned = rng.choice([0, 1, 3, 10, 100])
            context = rng.choice([k - 1, k + 5, 0])
            pieces.append(Piece(rank, offset, data[offset : offset + owned + context], owned))
            offset += max(owned, 1)
    rng.shuffle(pieces)
    res = find_repeats(pieces, k, top_n=5)
    repeated, non_first, occ = brute_window_sets(pieces, k)
    assert result_window_sets(res) == (repeated, non_first)
    assert res.n_windows == sum(len(v) for v in occ.values())
    assert (res.n_repeated_windows, res.n_non_first_windows) == (len(repeated), len(non_first))
    assert res.n_distinct_repeated == sum(len(v) >= 2 for v in occ.values())
    # top groups: the most frequent windows, each with its first occurrence in corpus order
    by_count = sorted((len(v) for v in occ.values() if len(v) >= 2), reverse=True)[:5]
    assert [g.count for g in res.top] == by_count
    for g in res.top:
        first = min(occ[g.window])
        assert (g.doc_rank, g.doc_offset) == first[0] and (g.piece, g.offset) == first[1:]
        assert pieces[g.piece].data[g.offset : g.offset + k] == g.window


def test_intervals_are_sorted_merged_and_per_piece() -> None:
    pieces = [Piece(1, 0, b"xxabcabcabcyy", 13), Piece(0, 0, b"abcab", 5), Piece(2, 0, b"zz", 2)]
    res = find_repeats(pieces, 3)
    assert res.repeated.for_piece(0).tolist() == [[2, 9]]  # abc bca cab abc bca cab abc
    assert res.repeated.for_piece(1).tolist() == [[0, 3]]
    assert res.non_first.for_piece(1).tolist() == []  # doc_rank 0 comes first in corpus order
    assert res.non_first.for_piece(0).tolist() == [[2, 9]]
    assert [a.tolist() for a in res.repeated.per_piece()] == [[[2, 9]], [[0, 3]], []]
    assert res.repeated.doc_start.tolist() == [2, 0] and res.repeated.doc_rank.tolist() == [1, 0]
    assert res.repeated.n_starts == 10
    for arr in (res.repeated.piece, res.repeated.start, res.non_first.end, res.repeated.doc_end):
        assert arr.dtype == np.int64


def test_columns_input_equals_piece_input() -> None:
    pieces = whole_doc_pieces(corpus_multibyte(random.Random(9)))
    cols = PieceColumns(
        np.array([p.doc_rank for p in pieces]),
        [p.doc_offset for p in pieces],
        [p.data for p in pieces],
        [p.owned for p in pieces],
    )
    a, b = find_repeats(pieces, 4), find_repeats(cols, 4)
    assert result_window_sets(a) == result_window_sets(b) and a.top == b.top


def test_empty_and_windowless_inputs() -> None:
    for pieces in ([], [Piece(0, 0, b"", 0)], [Piece(0, 0, b"abc", 3)], [Piece(0, 0, b"abcdef", 0)] * 2):
        res = find_repeats(pieces, 4)
        assert res.n_windows == 0 and res.repeated.n_starts == 0 and res.top == []
        assert [a.tolist() for a in res.repeated.per_piece()] == [[] for _ in pieces]
    res = find_repeats([Piece(0, 0, b"abcd", 1), Piece(1, 0, b"efgh", 1)], 4)
    assert res.n_windows == 2 and res.n_repeated_windows == 0 and res.top == []
    assert find_repeats([Piece(0, 0, b"aaaa", 4)], 1, top_n=0).top == []


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="k=0"):
        find_repeats([], 0)
    with pytest.raises(ValueError, match="overlapping"):
        find_repeats([Piece(3, 0, b"abcdef", 3), Piece(3, 2, b"cdef", 2)], 2)
    with pytest.raises(ValueError, match=">= 0"):
        find_repeats([Piece(0, 0, b"abc", -1)], 2)
    with pytest.raises(ValueError, match="different lengths"):
        find_repeats(PieceColumns([0, 1], [0], [b"a"], [1]), 1)
    assert MAX_TEXT_BYTES < 2**31


def test_bare_suffix_array_seconds() -> None:
    assert bare_suffix_array_seconds(b"banana" * 100) >= 0.0


# ---------------------------------------------------------------- the distributed design


@pytest.mark.parametrize("corpus", sorted(CORPORA))
@pytest.mark.parametrize(
    ("k", "w", "chunk_bytes", "n_partitions"), [(8, 3, 40, 3), (8, 8, 25, 1), (4, 1, 64, 5), (3, 2, 6, 2)]
)
def test_distributed_design_matches_oracle(corpus: str, k: int, w: int, chunk_bytes: int, n_partitions: int) -> None:
    docs = CORPORA[corpus](random.Random(chunk_bytes))
    per_chunk, per_partition = distributed_results(docs, k, w, chunk_bytes, n_partitions, seed=k + n_partitions)
    assert len(per_chunk) > 1 or not docs  # pieces really are spread over chunks
    union = doc_intervals(per_chunk + per_partition, len(docs))
    partitions_only = doc_intervals(per_partition, len(docs))
    for policy in POLICIES:
        expected = oracle_spans(docs, k, policy)
        assert spans_from(docs, k, policy, *union) == expected, policy
        # the partition pass alone already sees every occurrence of every window
        assert spans_from(docs, k, policy, *partitions_only) == expected, policy


def test_distributed_chunks_alone_miss_cross_chunk_repeats() -> None:
    """Sanity check that the simulation can fail: without the super-k-mer pass the answer is wrong."""
    docs = ["x" + "the same sentence" + "y", "z" + "the same sentence" + "w"]
    per_chunk, _ = distributed_results(docs, 8, 4, 12, 2, seed=0)
    assert spans_from(docs, 8, "strike_all", *doc_intervals(per_chunk, 2)) != oracle_spans(docs, 8, "strike_all")


def test_distributed_many_copies_long_docs() -> None:
    rng = random.Random(4)
    base = random_doc(rng, "ab Ж中😀", 120)
    docs = [base] * 300 + [random_doc(rng, "ab Ж中😀", 200) for _ in range(5)] + [base[: len(base) // 2]]
    rng.shuffle(docs)
    per_chunk, per_partition = distributed_results(docs, 12, 5, 700, 4, seed=1)
    union = doc_intervals(per_chunk + per_partition, len(docs))
    for policy in POLICIES:
        assert spans_from(docs, 12, policy, *union) == oracle_spans(docs, 12, policy), policy
