"""ExactSubstr stage on Spark against the brute-force oracle (tests/exactsubstr/exact_oracle.py), plus its task kernels.

The Spark runs use k = 8 and chunks of 32 or 100 bytes, so repeats cross chunk boundaries, span several chunks,
and documents are longer than a chunk; every span must equal the oracle's exactly.
"""

from __future__ import annotations

import random
from collections import defaultdict

import numpy as np
import pyarrow as pa
import pytest

from dedup_spark.config import build_config
from dedup_spark.exactsubstr.minimizers import superkmers_batch
from dedup_spark.exactsubstr.spans import cut
from dedup_spark.exactsubstr.stage import ExactSubstr
from dedup_spark.exactsubstr.steps import even_chunk_size, layout, per_chunk
from dedup_spark.exactsubstr.suffix_array import Piece, find_repeats
from dedup_spark.exactsubstr.tasks import MergeTask, openmp_threads
from dedup_spark.exactsubstr.top import collapse_repeats, weighted_window_counts
from dedup_spark.sparkops import Steps
from dedup_spark.stage import StageContext
from tests.exactsubstr.exact_oracle import oracle_cut, oracle_spans

K = 8
POLICIES = ("strike_all", "keep_first")
MULTIBYTE = "ab Жд中😀"


def doc_id(i: int) -> str:
    return f"d{i:05d}"  # zero-padded: id order is list order, the oracle's corpus order


def make_docs(spark, texts: list[str], shards: int = 3, interleave: bool = False):
    n = len(texts)
    rows = [
        (doc_id(i), t, doc_id(i), len(t.encode()), i % shards if interleave else i * shards // n, "in.jsonl", 0)
        for i, t in enumerate(texts)
    ]
    schema = "id string, text string, _dd_id string, _dd_bytes long, _dd_shard int, _dd_file string, _dd_copy int"
    return spark.createDataFrame(rows, schema).repartition(3)


def make_config(**exact):
    settings = {"input.path": "in", "output.path": "out", "input.id_column": "id"}
    settings.update({"exactsubstr.min_length": K, "exactsubstr.minimizer_width": 3})
    settings.update({f"exactsubstr.{k}": v for k, v in exact.items()})
    return build_config(settings)


def run(spark, tmp_path, texts, shards=3, interleave=False, **exact):
    """Run the stage; returns spans by (pass, doc index), surviving texts by index, removed indexes, metrics."""
    docs = make_docs(spark, texts, shards, interleave)
    result = ExactSubstr().run(StageContext(spark, make_config(**exact), str(tmp_path), None), docs)
    spans: dict[int, dict[int, list]] = defaultdict(lambda: defaultdict(list))
    for r in result.tables["exact/spans"].collect():
        spans[r["pass"]][int(r["doc_id"][1:])].append((r["start"], r["end"]))
    survivors = {int(r["_dd_id"][1:]): (r["text"], r["_dd_bytes"]) for r in result.docs.collect()}
    removed = {int(r["_dd_id"][1:]): (r["text"], r["reason"]) for r in result.removed.collect()}
    assert set(survivors).isdisjoint(removed) and len(survivors) + len(removed) == len(texts)  # accounting
    assert all(size == len(text.encode()) for text, size in survivors.values())
    by_pass = {p: [sorted(spans[p][i]) for i in range(len(texts))] for p in spans}
    return by_pass, survivors, removed, result.metrics


def random_doc(rng: random.Random, alphabet: str, max_len: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, max_len + 1)))


def adversarial_corpus(seed: int = 7) -> list[str]:
    """Random and planted repeats of k-1, k and more bytes, multi-byte characters at their edges, empty and
    one-byte documents, documents longer than a chunk and a repeat spanning several chunks."""
    rng = random.Random(seed)
    phrases = ["Жд中x", "abcdefgh", "😀Жabcdefg", "1234567", "中文😀"]  # 8, 8, 13, 7 (k-1) and 10 bytes
    long_doc = random_doc(rng, "xyzЖ中😀", 80) + "#" + random_doc(rng, "xyzЖ中😀", 80)
    docs = [random_doc(rng, "ab", 40) for _ in range(12)]
    docs += [random_doc(rng, MULTIBYTE, 25) for _ in range(12)]
    for _ in range(12):
        parts = [random_doc(rng, "xyzЖ", 6) for _ in range(3)]
        for _ in range(rng.randrange(0, 3)):
            parts.insert(rng.randrange(0, len(parts) + 1), rng.choice(phrases))
        docs.append("".join(parts))
    docs += ["", "a", "é", "", "😀", "aaaaaaa", "aaaaaaaa", "Ж" * 9]
    docs += [long_doc, "q" + long_doc[10:90] + "q", long_doc[-40:], "the quick brown fox " * 4]
    rng.shuffle(docs)
    return docs


def expected(texts: list[str], policy: str, min_remaining: int) -> tuple[list, dict[int, str], set[int]]:
    spans = oracle_spans(texts, K, policy)
    cut_texts = oracle_cut(texts, K, policy)
    removed = {i for i, t in enumerate(cut_texts) if spans[i] and len("".join(t.split())) < min_remaining}
    return spans, {i: t for i, t in enumerate(cut_texts) if i not in removed}, removed


@pytest.mark.parametrize(
    ("policy", "shards", "chunk_size", "interleave"),
    [
        pytest.param("strike_all", 3, 32, False, marks=pytest.mark.slow),  # the slowest case, about 35 s
        ("keep_first", 3, 32, False),
        ("strike_all", 5, 100, True),
        ("keep_first", 5, 100, True),
        ("strike_all", 1, 10_000, False),
        ("keep_first", 1, 10_000, False),
    ],
)
def test_spans_equal_the_oracle(spark, tmp_path, policy, shards, chunk_size, interleave):
    texts = adversarial_corpus()
    spans, survivors, removed, metrics = run(
        spark, tmp_path, texts, shards, interleave, policy=policy, chunk_size=chunk_size, min_remaining_chars=5
    )
    want_spans, want_texts, want_removed = expected(texts, policy, 5)
    assert spans[1] == want_spans
    assert {i: t for i, (t, _) in survivors.items()} == want_texts
    assert set(removed) == want_removed and want_removed
    assert all(text == texts[i] and reason == "exact_substring" for i, (text, reason) in removed.items())
    for i, text in enumerate(texts):  # the spans table describes the cut exactly
        if i in survivors:
            assert cut(text, spans[1][i]) == survivors[i][0]
    removed_bytes = sum(
        len(t.encode()) - len(c.encode()) for t, c in zip(texts, oracle_cut(texts, K, policy), strict=True)
    )
    assert metrics["bytes_removed"] == removed_bytes
    assert metrics["spans"] == sum(len(s) for s in want_spans)
    assert metrics["documents_touched"] == sum(1 for s in want_spans if s)
    assert metrics["documents_removed"] == len(want_removed)
    assert metrics["bytes_in"] == sum(len(t.encode()) for t in texts)
    if shards > 1:  # the merge really had work to do
        assert metrics["chunks"] > 10 and metrics["bytes_shipped"] > 0
    else:  # one chunk holds the corpus: its suffix array decides everything
        assert metrics["chunks"] == 1 and metrics["bytes_shipped"] == 0
    # Chunks search only the windows of minimizers with two copies (the corpus has unique text too).
    assert 0 < metrics["bytes_searched_in_chunks"] < metrics["chunk_bytes"]
    assert metrics["top_substrings"][0]["count"] >= metrics["top_substrings"][-1]["count"] >= 2


def test_layout_is_a_running_sum_in_id_order_per_group(spark, tmp_path):
    from pyspark.sql import functions as F

    rng = random.Random(5)
    rows = [(doc_id(i), rng.choice([0, 1]), rng.randrange(1, 400)) for i in range(3000)]
    # A new row order on every evaluation: the sampled range bounds differ between evaluations too.
    docs = spark.createDataFrame(rows, "_dd_id string, g int, _dd_bytes long").orderBy(F.rand())
    placed, largest = layout(docs, 50, Steps(spark, str(tmp_path)), group=F.col("g"))
    expected, base = {}, {0: 0, 1: 0}
    for i, g, size in sorted(rows):
        if size >= 50:
            expected[i] = (g, base[g])
            base[g] += size
    assert {r["_dd_id"]: (r["_dd_group"], r["base"]) for r in placed.collect()} == expected
    assert largest == max(base.values())


@pytest.mark.parametrize(("size", "even"), [(300, 250), (200, 125), (1000, 1000), (5000, 5000)])
def test_chunks_fill_whole_rounds_of_task_slots(spark, size, even):
    # The largest layout group holds 1,000 bytes; the test session has 4 task slots.
    assert spark.sparkContext.defaultParallelism == 4
    assert even_chunk_size(1000, size, spark) == even  # 4 chunks stay 4; 5 become 8; 1 stays 1


def test_every_chunk_gets_a_task_of_its_own_in_chunk_order(spark):
    def chunks_and_tasks(pieces, minimizers):  # defined here: the workers cannot import a test module
        import pandas as pd
        from pyspark import TaskContext

        task = TaskContext.get().partitionId()
        return pd.DataFrame({"chunk": pieces["chunk"].iloc[:1], "task": [task], "cross": [len(minimizers)]})

    # Hash partitioning of 6 chunk ids into the test session's 4 shuffle partitions cannot keep them apart.
    chunks = [(g << 32) + n for g in (0, 1) for n in range(3)]
    chunk_pieces = spark.createDataFrame([(c, i) for c in chunks for i in range(4)], "chunk long, i long")
    cross = spark.createDataFrame([(c, m) for c in chunks[::2] for m in range(c % 7 + 1)], "chunk long, m long")
    found = per_chunk(chunk_pieces, cross, chunks_and_tasks, "chunk long, task int, cross long").collect()
    want = [(c, task, c % 7 + 1 if task % 2 == 0 else 0) for task, c in enumerate(chunks)]
    assert sorted((r["chunk"], r["task"], r["cross"]) for r in found) == want


@pytest.mark.parametrize("policy", [pytest.param("strike_all", marks=pytest.mark.slow), "keep_first"])  # ~24 s each
def test_one_document_repeated_10000_times(spark, tmp_path, policy):
    doc = "Жили-были 中文 😀 dedup!"
    texts = [doc] * 10_000 + ["unique text, nothing shared", doc[:12] + " tail"]
    spans, survivors, removed, metrics = run(spark, tmp_path, texts, shards=2, policy=policy, chunk_size=4096)
    want_spans, want_texts, want_removed = expected(texts, policy, 20)
    assert spans[1] == want_spans
    assert {i: t for i, (t, _) in survivors.items()} == want_texts and set(removed) == want_removed
    assert metrics["chunks"] > 50
    # Counts are exact although the merge folds identical super-k-mers; shifted windows collapse into one
    # entry per count: the prefix shared with the last document, then the rest of the copied document.
    first, second = metrics["top_substrings"][:2]
    assert first == {"snippet": doc[:13], "count": 10_001, "bytes": len(doc[:13].encode())}
    assert second["count"] == 10_000 and doc.endswith(second["snippet"]) and len(second["snippet"]) > 10


def test_second_pass_finds_repeats_the_first_one_created(spark, tmp_path):
    texts = adversarial_corpus(seed=3)
    spans, survivors, removed, metrics = run(
        spark, tmp_path, texts, policy="keep_first", chunk_size=40, passes=2, min_remaining_chars=0
    )
    first = oracle_cut(texts, K, "keep_first")
    assert spans[1] == oracle_spans(texts, K, "keep_first")
    assert spans[2] == oracle_spans(first, K, "keep_first")  # pass-2 offsets refer to the pass-1 output
    assert any(spans[2])
    assert not removed and {i: t for i, (t, _) in survivors.items()} == dict(
        enumerate(oracle_cut(first, K, "keep_first"))
    )
    assert [p["pass"] for p in metrics["passes"]] == [1, 2]
    assert metrics["bytes_removed"] == sum(p["bytes_removed"] for p in metrics["passes"])


def test_corpus_without_a_repeat_passes_through(spark, tmp_path):
    # Documents shorter than k have no window; the rest have windows but none repeats (empty chunk results).
    texts = ["", "a", "Ж", "short", "😀", "1234567", "1234567", "abcdefgh", "unique text"]
    spans, survivors, removed, metrics = run(spark, tmp_path, texts, policy="strike_all", chunk_size=32)
    assert not spans and not removed and {i: t for i, (t, _) in survivors.items()} == dict(enumerate(texts))
    assert metrics["chunks"] >= 1 and metrics["windows"] == 1 + 4
    assert metrics["bytes_removed"] == metrics["spans"] == metrics["documents_touched"] == 0
    assert metrics["top_substrings"] == []


def test_stage_runs_from_the_cli_and_reports_exact_metrics(tmp_path, run_cli):
    from tests.helpers import read_output, report, write_jsonl

    # ingest quarantines empty texts, so the corpus here has none
    texts = [t for t in adversarial_corpus(seed=11) if t] + ["The same long sentence, again and again. " * 3] * 4
    src = write_jsonl(tmp_path / "in.jsonl", [{"id": doc_id(i), "text": t} for i, t in enumerate(texts)])
    out = tmp_path / "out"
    args = ["--set", "input.id_column=id", "--set", f"exactsubstr.min_length={K}", "--set", "exactsubstr.chunk_size=64"]
    args += ["--set", "exactsubstr.minimizer_width=4", "--set", "exactsubstr.min_remaining_chars=3"]
    assert run_cli("run", f"--input={src}", f"--output={out}", "--stages=exactsubstr", *args) == 0
    data = report(out)
    stage = data["stages"][1]
    details = stage["details"]
    want_spans, want_texts, want_removed = expected(texts, "keep_first", 3)
    cut_texts = oracle_cut(texts, K, "keep_first")
    assert details["bytes_removed"] == sum(
        len(a.encode()) - len(b.encode()) for a, b in zip(texts, cut_texts, strict=True)
    )
    assert details["spans"] == sum(len(s) for s in want_spans)
    assert details["documents_touched"] == sum(1 for s in want_spans if s)
    assert details["documents_removed"] == len(want_removed) == stage["rows_removed"]
    assert stage["rows_in"] == len(texts) and stage["rows_out"] == len(want_texts)
    assert stage["bytes_out"] == sum(len(t.encode()) for t in want_texts.values())
    assert data["accounting"]["balanced"] and data["removed_by_reason"] == {"exact_substring": len(want_removed)}
    top = details["top_substrings"][0]
    assert top["count"] == 12 and top["snippet"].startswith("The same long sentence")  # 3 times in 4 documents
    # Distinct minimizers of all windows do not depend on how the corpus is cut into chunks.
    whole = superkmers_batch([t.encode() for t in texts], [len(t.encode()) for t in texts], K, 4).minimizer
    assert details["minimizers"] == len(np.unique(whole)) and 0 < details["cross_minimizers"] < details["minimizers"]
    written = {r["id"]: r["text"] for r in read_output(out / "data")}
    assert written == {doc_id(i): t for i, t in want_texts.items()}
    table = defaultdict(list)
    for r in read_output(out / "exact" / "spans"):
        table[r["doc_id"]].append((r["start"], r["end"]))
    assert {d: sorted(s) for d, s in table.items()} == {doc_id(i): s for i, s in enumerate(want_spans) if s}


def test_tasks_run_libdivsufsort_single_threaded(spark):
    def probe(batches):
        from dedup_spark.exactsubstr import tasks

        for _ in batches:
            tasks.limit_openmp_threads()
            yield pa.RecordBatch.from_pydict({"threads": [openmp_threads() or 0]})

    assert {r["threads"] for r in spark.range(2).mapInArrow(probe, "threads long").collect()} == {1}


# ---------------------------------------------------------------- kernels, no Spark


def shipped_superkmers(docs: list[bytes], k: int, w: int) -> list[tuple[int, bytes, str, int, int]]:
    """Every super-k-mer of the documents as a merge row, sorted the way the merge task receives them."""
    runs = superkmers_batch(docs, [len(d) for d in docs], k, w)
    rows = [
        (int(np.int64(np.uint64(m).view(np.int64))), docs[p][s : e + k - 1], doc_id(p), s, e)
        for p, m, s, e in zip(
            runs.piece.tolist(), runs.minimizer.tolist(), runs.start.tolist(), runs.end.tolist(), strict=True
        )
    ]
    return sorted(rows)


@pytest.mark.parametrize("flush_bytes", [1, 40, 10_000])
def test_merge_task_equals_one_suffix_array_over_all_copies(flush_bytes):
    """Copies folded (also across Arrow batches), groups searched a few at a time: same answer as one search."""
    rng = random.Random(flush_bytes)
    k, w = 6, 2
    base = [bytes(rng.choice(b"abc") for _ in range(rng.randrange(0, 25))) for _ in range(12)]
    docs = [rng.choice(base) for _ in range(40)]
    rows = shipped_superkmers(docs, k, w)
    truth = find_repeats([Piece(i, 0, d, len(d)) for i, d in enumerate(docs)], k)
    cuts = sorted(rng.sample(range(1, len(rows)), 6))
    batches = [
        pa.RecordBatch.from_pylist(
            [{"minimizer": m, "data": d, "_dd_id": i, "start": s, "end": e} for m, d, i, s, e in rows[a:b]]
        )
        for a, b in zip([0, *cuts], [*cuts, len(rows)], strict=True)
    ]
    for policy, runs in (("strike_all", truth.repeated), ("keep_first", truth.non_first)):
        want = defaultdict(set)
        for r, s, e in zip(runs.doc_rank.tolist(), runs.doc_start.tolist(), runs.doc_end.tolist(), strict=True):
            want[doc_id(r)].update(range(s, e))
        out = pa.Table.from_batches(list(MergeTask(k, policy, 5, flush_bytes)(iter(batches)))).to_pylist()
        got = defaultdict(set)
        for r in out:
            if r["kind"] == "span":
                got[r["_dd_id"]].update(range(r["start"], r["end"]))
        assert got == want, policy
        tops = [(r["data"], r["count"]) for r in out if r["kind"] == "top"]
        assert tops and all(count == sum(_occurrences(d, data[:k]) for d in docs) for data, count in tops)


def _occurrences(text: bytes, window: bytes) -> int:
    return sum(text[i : i + len(window)] == window for i in range(len(text) - len(window) + 1))


def test_weighted_window_counts_against_brute_force():
    rng = random.Random(2)
    datas = [bytes(rng.choice(b"ab") for _ in range(rng.randrange(3, 30))) for _ in range(50)]
    weights = np.array([rng.randrange(1, 5) for _ in datas])
    windows = [bytes(rng.choice(b"ab") for _ in range(5)) for _ in range(10)] + [b"ab" * 10]
    got = weighted_window_counts(datas, weights, 5, windows)
    want = [sum(w * _occurrences(d, win[:5]) for d, w in zip(datas, weights, strict=True)) for win in windows]
    assert got.tolist() == want


def test_collapse_joins_shifted_windows_and_keeps_distinct_repeats():
    sentence = b"the same sentence, over and over"
    k = 6
    shifts = [(sentence[i : i + k], 7) for i in range(len(sentence) - k + 1)]
    other = [(b"another", 7), (b"xyzxyz", 3), (sentence[3:9], 2)]
    rng = random.Random(1)
    entries = shifts + other
    rng.shuffle(entries)
    assert collapse_repeats(entries, k, 10) == [(b"another", 7), (sentence, 7), (b"xyzxyz", 3), (sentence[3:9], 2)]
    assert collapse_repeats(entries, k, 2) == [(b"another", 7), (sentence, 7)]
    periodic = [(b"abcabc"[i : i + 4], 5) for i in range(3)]  # a cycle: abca -> bcab -> cabc -> abca
    assert len(collapse_repeats(periodic, 4, 10)) == 1
