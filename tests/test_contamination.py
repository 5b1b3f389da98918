"""Contamination (train vs eval) against brute-force oracles: every eval window checked against all train bytes,
and exact Jaccard over all (train, eval) pairs of shingle sets.

Kernel tests (no Spark) check the set-aware window rule of `find_repeats` and the merge task; the Spark test runs
the distributed exact part with chunks of a few hundred bytes (many chunks, so everything goes through the
merge); the CLI test runs `dedup-spark contamination` on a split of the bbcnews corpus with planted copies.
"""

from __future__ import annotations

import random
import re
from collections import defaultdict

import numpy as np
import pyarrow as pa
import pytest

from dedup_spark.config import build_config
from dedup_spark.exactsubstr.contamination import (
    EVAL_BIT,
    TRAIN_BIT,
    SharedMergeTask,
    ShipTask,
    set_bits,
    shared_windows,
)
from dedup_spark.exactsubstr.minimizers import superkmers_batch
from dedup_spark.exactsubstr.spans import removal_spans
from dedup_spark.exactsubstr.suffix_array import Piece, find_repeats
from dedup_spark.neardup.normalize import normalize
from dedup_spark.neardup.shingles import word_shingles
from tests.exactsubstr.exact_oracle import mask_to_codepoint_spans

K = 8
W = 3


# ---------------------------------------------------------------- oracles


def shared_masks(sources: list[str], targets: list[str], k: int) -> list[list[bool]]:
    """Per target document, per byte: covered by a k-byte window whose bytes are a window of some source."""
    windows = set()
    for doc in sources:
        data = doc.encode()
        windows.update(data[i : i + k] for i in range(len(data) - k + 1))
    masks = []
    for doc in targets:
        data = doc.encode()
        mask = [False] * len(data)
        for i in range(len(data) - k + 1):
            if data[i : i + k] in windows:
                mask[i : i + k] = [True] * k
        masks.append(mask)
    return masks


def oracle_spans(sources: list[str], targets: list[str], k: int) -> list[list[tuple[int, int]]]:
    return [mask_to_codepoint_spans(d, m) for d, m in zip(targets, shared_masks(sources, targets, k), strict=True)]


def spans_of_windows(doc: str, runs: list[tuple[int, int]], k: int) -> list[tuple[int, int]]:
    return [tuple(r) for r in removal_spans(doc.encode(), np.asarray(runs or np.empty((0, 2)), np.int64), k).tolist()]


# ---------------------------------------------------------------- corpora


def random_doc(rng: random.Random, alphabet: str, max_len: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, max_len + 1)))


def adversarial_sets(seed: int = 11) -> tuple[list[str], list[str]]:
    """Train and eval with: eval-only repeats (must not count), train text repeated many times in train and
    found once in eval, multi-byte characters at the edges of shared text, texts of k-1 and k bytes, empty
    documents, long documents and a shared stretch longer than a chunk."""
    rng = random.Random(seed)
    alphabet = "abxyЖ中😀 "
    shared_long = random_doc(rng, "klmnЖ中", 400)[:300]
    train = [random_doc(rng, alphabet, 60) for _ in range(25)]
    evals = [random_doc(rng, alphabet, 60) for _ in range(25)]
    boiler = "Copyright (c) Жд中 2024"
    train += [random_doc(rng, "pq", 10) + boiler + random_doc(rng, "pq", 10) for _ in range(30)]
    evals += ["intro " + boiler[3:18] + " outro"]  # a part of the boilerplate
    eval_only = "EVALONLY-REPEATED-TEXT"
    evals += [eval_only + random_doc(rng, "rs", 20) for _ in range(4)]  # repeated in eval, absent from train
    train += ["xx" + shared_long + "yy", "1234567", "abcdefgh", "", "😀" * 3]
    evals += ["zz" + shared_long[50:280] + "ww", "1234567", "--abcdefgh--", "", "a😀😀b", "Ж中" + boiler[:9]]
    rng.shuffle(train)
    rng.shuffle(evals)
    return train, evals


# ---------------------------------------------------------------- kernel


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_find_repeats_shared_rule_equals_the_oracle(seed):
    train, evals = adversarial_sets(seed)
    docs = train + evals
    sets = [TRAIN_BIT] * len(train) + [EVAL_BIT] * len(evals)
    pieces = [Piece(i, 0, d.encode(), len(d.encode())) for i, d in enumerate(docs)]
    result = find_repeats(pieces, K, top_n=0, piece_sets=sets)
    runs = defaultdict(list)
    for rank, lo, hi in zip(result.shared.doc_rank, result.shared.doc_start, result.shared.doc_end, strict=True):
        runs[int(rank)].append((int(lo), int(hi)))
    got_eval = [spans_of_windows(d, runs[len(train) + i], K) for i, d in enumerate(evals)]
    got_train = [spans_of_windows(d, runs[i], K) for i, d in enumerate(train)]
    assert got_eval == oracle_spans(train, evals, K)
    assert got_train == oracle_spans(evals, train, K)
    assert any(got_eval) and not all(got_eval)  # the corpus has both kinds
    # Without piece_sets nothing changes and nothing is computed.
    assert find_repeats(pieces, K, top_n=0).shared is None


def test_shared_rule_ignores_repeats_within_one_set():
    eval_only = "the same sentence, twice"
    pieces = [Piece(0, 0, b"train text only here", 20), Piece(1, 0, eval_only.encode(), 99)]
    pieces.append(Piece(2, 0, eval_only.encode(), 99))
    result = find_repeats(pieces, K, top_n=0, piece_sets=[TRAIN_BIT, EVAL_BIT, EVAL_BIT])
    assert result.n_repeated_windows > 0 and result.shared.n_starts == 0
    # A piece standing for copies in both sets makes its windows shared with a single-set piece.
    result = find_repeats(pieces[1:], K, top_n=0, piece_sets=[TRAIN_BIT | EVAL_BIT, TRAIN_BIT])
    assert result.shared.n_starts == 2 * (len(eval_only) - K + 1)
    with pytest.raises(ValueError, match="piece_sets"):
        find_repeats(pieces, K, piece_sets=[1, 2])


def merge_windows(train: list[str], evals: list[str], flush_bytes: int, batch_rows: int) -> dict[str, list]:
    """Ship every document whole (one piece each), keep the shared minimizers, run the merge task directly."""
    ids = [f"0:t{i:03d}" for i in range(len(train))] + [f"1:e{i:03d}" for i in range(len(evals))]
    datas = [d.encode() for d in train + evals]
    owned = np.array([len(d) for d in datas], np.int64)
    runs = superkmers_batch(datas, owned, K, W)
    bits = set_bits(ids)[runs.piece]
    in_train, in_eval = set(runs.minimizer[bits == TRAIN_BIT].tolist()), set(runs.minimizer[bits == EVAL_BIT].tolist())
    shared = np.array(sorted(in_train & in_eval), dtype=np.uint64)
    shipped = ShipTask(K, W).run(ids, np.zeros(len(ids), np.int64), datas, owned, shared)
    shipped = shipped.sort_values(["minimizer", "data", "_dd_id", "start"], kind="stable")
    table = pa.Table.from_pandas(shipped, preserve_index=False)
    out = list(SharedMergeTask(K, flush_bytes)(iter(table.to_batches(max_chunksize=batch_rows))))
    windows = defaultdict(list)
    for batch in out:
        for i, lo, hi in zip(*(batch.column(c).to_pylist() for c in ("_dd_id", "start", "end")), strict=True):
            windows[i].append((lo, hi))
    return windows


@pytest.mark.parametrize(("flush_bytes", "batch_rows"), [(1, 7), (50, 3), (10**9, 1000)])
def test_merge_task_equals_the_oracle(flush_bytes, batch_rows):
    train, evals = adversarial_sets(5)
    windows = merge_windows(train, evals, flush_bytes, batch_rows)
    got_eval = [spans_of_windows(d, windows[f"1:e{i:03d}"], K) for i, d in enumerate(evals)]
    got_train = [spans_of_windows(d, windows[f"0:t{i:03d}"], K) for i, d in enumerate(train)]
    assert got_eval == oracle_spans(train, evals, K)
    assert got_train == oracle_spans(evals, train, K)


def test_merge_task_folds_copies_across_and_within_sets():
    line = "an identical line of boilerplate text"
    train = [line] * 5 + ["other " + line[:20]]
    evals = [line[10:], "zz " + line[:20] + " zz", line + "!"] * 3
    windows = merge_windows(train, evals, 1, 4)
    assert [spans_of_windows(d, windows[f"1:e{i:03d}"], K) for i, d in enumerate(evals)] == oracle_spans(
        train, evals, K
    )
    assert [spans_of_windows(d, windows[f"0:t{i:03d}"], K) for i, d in enumerate(train)] == oracle_spans(
        evals, train, K
    )


# ---------------------------------------------------------------- Spark, exact part


def exact_config(chunk_size: int):
    settings = {"input.path": "in", "output.path": "out", "input.id_column": "id"}
    settings.update(
        {"exactsubstr.min_length": K, "exactsubstr.minimizer_width": W, "exactsubstr.chunk_size": chunk_size}
    )
    return build_config(settings)


def test_shared_windows_on_spark_equal_the_oracle(spark, tmp_path):
    chunk_size = 100
    train, evals = adversarial_sets(8)
    rows = [(f"0:t{i:03d}", t, len(t.encode())) for i, t in enumerate(train)]
    rows += [(f"1:e{i:03d}", t, len(t.encode())) for i, t in enumerate(evals)]
    docs = spark.createDataFrame(rows, "_dd_id string, text string, _dd_bytes long").repartition(3)
    windows, metrics = shared_windows(spark, docs, exact_config(chunk_size), str(tmp_path))
    runs = defaultdict(list)
    for r in windows.collect():
        runs[r["_dd_id"]].append((r["start"], r["end"]))
    assert [spans_of_windows(d, runs[f"1:e{i:03d}"], K) for i, d in enumerate(evals)] == oracle_spans(train, evals, K)
    assert [spans_of_windows(d, runs[f"0:t{i:03d}"], K) for i, d in enumerate(train)] == oracle_spans(evals, train, K)
    assert metrics["bytes_shipped"] > 0 and metrics["merge_partitions"] >= 1 and metrics["chunks"] > 30


# ---------------------------------------------------------------- CLI end to end on real text


def jaccard_oracle(train: dict[str, str], evals: dict[str, str], threshold: float) -> dict[str, dict[str, float]]:
    """eval id -> {train id: exact Jaccard} for every pair above threshold (shingle strings, no hashing)."""
    t_sets = {i: set(word_shingles(normalize(t), 5)) for i, t in train.items()}
    result: dict[str, dict[str, float]] = {}
    for e, text in evals.items():
        e_set = set(word_shingles(normalize(text), 5))
        for t, t_set in t_sets.items():
            if e_set and t_set:
                j = len(e_set & t_set) / len(e_set | t_set)
                if j > threshold:
                    result.setdefault(e, {})[t] = j
    return result


def load_corpus(name: str) -> list[tuple[str, str]]:
    """(id, text) rows: the bundled demo corpus (KJV chapters, its planted rows left out) or bbcnews."""
    if name == "demo":
        import gzip
        import json

        from tests.conftest import DEMO_CORPUS

        rows = []
        with gzip.open(DEMO_CORPUS, "rt", encoding="utf-8") as f:
            for line in f:
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue  # the demo's planted broken rows
                if isinstance(record, dict) and isinstance(record.get("text"), str) and record["text"]:
                    rows.append((str(record["id"]), record["text"]))
        return sorted(rows)
    import pyarrow.parquet as pq

    from tests.corpora import corpus

    return [(r["id"], r["text"]) for r in pq.read_table(corpus(name)).to_pylist()]


def oracle_sources(train: dict[str, str], evals: dict[str, str], k: int) -> dict[str, set[str]]:
    """Eval id -> the train ids holding the first window of one of its maximal runs of shared window starts."""
    train_bytes = {t: text.encode() for t, text in train.items()}
    in_train = {data[p : p + k] for data in train_bytes.values() for p in range(len(data) - k + 1)}
    sources = {}
    for e, text in evals.items():
        data = text.encode()
        shared = [p for p in range(len(data) - k + 1) if data[p : p + k] in in_train]
        firsts = [data[p : p + k] for i, p in enumerate(shared) if i == 0 or shared[i - 1] != p - 1]
        sources[e] = {t for t, tb in train_bytes.items() if any(w in tb for w in firsts)}
    return sources


def split(rows: list[tuple[str, str]], n_train: int, n_eval: int, seed: int = 4):
    """Disjoint train and eval articles (real corpora have natural duplicates), plus planted contamination:
    edited copies of train documents, pasted train paragraphs, and an id used in both sets."""
    rows = list(rows)
    rng = random.Random(seed)
    rng.shuffle(rows)
    train = dict(rows[:n_train])
    evals = dict(rows[n_train : n_train + n_eval])
    train_ids = sorted(train)
    for n, t in enumerate(rng.sample(train_ids, 8)):  # two words changed: Jaccard well above 0.8
        words = train[t].split()
        for i in rng.sample(range(len(words)), 2):
            words[i] = "planted"
        evals[f"edited{n}"] = " ".join(words)
    for n, t in enumerate(rng.sample(train_ids, 6)):  # the longest line pasted into an unrelated eval text
        paragraph = max(train[t].split("\n"), key=len)
        host = rows[n_train + n_eval + n][1]
        evals[f"pasted{n}"] = host[: len(host) // 2] + "\n" + paragraph + "\n" + host[len(host) // 2 :]
    with_apostrophes = [t for t in train_ids if "'" in train[t]]
    for n, t in enumerate(rng.sample(with_apostrophes, 4)):  # the same words typed with other apostrophes/dashes
        typed = train[t].replace("'", "`’´‘"[n]).replace("-", "—").replace(";", " ;").replace(",", "，")
        assert re.findall(r"\w+", typed.lower()) == re.findall(r"\w+", train[t].lower())  # an independent tokenizer
        evals[f"typed{n}"] = typed
    evals[train_ids[0]] = "A different text that happens to share its id with a train document. " * 3
    return train, evals


@pytest.mark.parametrize(
    ("name", "n_train", "n_eval"), [("demo", 250, 60), pytest.param("bbcnews", 300, 80, marks=pytest.mark.slow)]
)
def test_cli_end_to_end(tmp_path, run_cli, name, n_train, n_eval):
    from tests.helpers import read_output, report

    train, evals = split(load_corpus(name), n_train, n_eval)
    k = 50
    tpath, epath, out = tmp_path / "train.parquet", tmp_path / "eval.parquet", tmp_path / "out"
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist([{"id": i, "text": t} for i, t in train.items()]), tpath)
    pq.write_table(pa.Table.from_pylist([{"id": i, "text": t} for i, t in evals.items()] + [{"id": "bad"}]), epath)
    args = [f"--train={tpath}", f"--eval={epath}", f"--output={out}", "--set", "input.id_column=id"]
    args += ["--set", f"exactsubstr.min_length={k}", "--set", "exactsubstr.chunk_size=64KB", "--clean-train"]
    assert run_cli("contamination", *args) == 0

    rows = {r["id"]: r for r in read_output(out / "eval")}
    assert set(rows) == set(evals)
    near = jaccard_oracle(train, evals, 0.8)
    spans = dict(zip(evals, oracle_spans(list(train.values()), list(evals.values()), k), strict=True))
    sources = oracle_sources(train, evals, k)
    assert all(sources[f"pasted{n}"] for n in range(6))
    assert all(near.get(f"edited{n}") for n in range(8)) and all(spans[f"pasted{n}"] for n in range(6))
    assert all(near.get(f"typed{n}") for n in range(4))
    for e, row in rows.items():
        assert set(row["neardup_train_ids"]) == set(near.get(e, {})), e
        assert row["neardup_train_count"] == len(near.get(e, {}))
        assert [(s["start"], s["end"]) for s in row["exact_spans"]] == spans[e], e
        assert row["exact_train_ids"] == sorted(sources[e])[:20] and row["exact_train_count"] == len(sources[e]), e
        assert bool(sources[e]) == bool(spans[e]), e  # every contaminated document names a train document
        exact_bytes = sum(len(evals[e][a:b].encode()) for a, b in spans[e])
        assert row["exact_bytes"] == exact_bytes
        assert row["contaminated"] == (e in near or exact_bytes > 0)
        assert row["contaminated_bytes"] == (len(evals[e].encode()) if e in near else exact_bytes)

    summary = report(out)["summary"]
    n_eval = len(evals)
    contaminated = {e for e in evals if e in near or spans[e]}
    assert summary["eval_documents"] == n_eval
    assert summary["contaminated_documents"] == len(contaminated)
    assert summary["neardup_documents"] == len(near)
    assert summary["exact_documents"] == sum(1 for e in evals if spans[e])
    assert summary["share_contaminated"] == round(len(contaminated) / n_eval, 6)
    total = sum(len(t.encode()) for t in evals.values())
    assert summary["eval_bytes"] == total
    assert summary["exact_bytes"] == sum(sum(len(evals[e][a:b].encode()) for a, b in spans[e]) for e in evals)

    # The cleaned train set: near-duplicates of eval documents removed, text found in eval cut out.
    near_train = {t for matches in near.values() for t in matches}
    clean = {r["id"]: r["text"] for r in read_output(out / "train_clean")}
    removed = {r["id"]: r["reason"] for r in read_output(out / "train_removed")}
    assert len(clean) + len(removed) == len(train)  # no train row is quarantined here
    assert {t for t, why in removed.items() if why == "contamination_neardup"} == near_train
    train_spans = dict(zip(train, oracle_spans(list(evals.values()), list(train.values()), k), strict=True))
    for t, text in clean.items():
        kept, pos = [], 0
        for a, b in train_spans[t]:
            kept.append(train[t][pos:a])
            pos = b
        assert text == "".join(kept) + train[t][pos:], t
    quarantined = read_output(out / "quarantine" / "eval")
    assert [r["reason"] for r in quarantined] == ["null_text"]
    assert report(out)["accounting"]["balanced"]
    check_report_page(out, train, evals, rows, near, spans, tmp_path)


def check_report_page(out, train, evals, rows, near, spans, tmp_path) -> None:
    """report.json's examples against the oracles, and report.html as Chromium renders it."""
    from tests.helpers import report
    from tests.report.test_report_html import assert_self_contained, parse, render_in_chromium

    examples = report(out)["examples"]
    contaminated = [r for r in rows.values() if r["contaminated"]]
    by_bytes = sorted(contaminated, key=lambda r: (-r["contaminated_bytes"], r["id"]))
    assert [x["id"] for x in examples["most_contaminated"]] == [r["id"] for r in by_bytes[:20]]
    first_pairs = sorted((e, t) for e, ts in near.items() for t in ts)[:3]
    assert [(p[0]["id"], p[1]["id"]) for p in examples["neardup_pairs"]] == first_pairs
    for pair in examples["neardup_pairs"]:
        (eval_x, train_x), start = pair, pair[0]["start"]
        assert train_x["start"] == start and eval_x["text"] == evals[eval_x["id"]][start : start + 300]
        assert train_x["text"] == train[train_x["id"]][start : start + 300]
        pairs = enumerate(zip(evals[eval_x["id"]], train[train_x["id"]], strict=False))
        differ = next((i for i, (a, b) in pairs if a != b), None)
        assert differ is None or start <= differ < start + 300  # the excerpts show the first difference
    all_spans = sorted(((b - a, e, a) for e, ss in spans.items() for a, b in ss), key=lambda x: (-x[0], x[1], x[2]))
    assert [(x["end"] - x["start"], x["id"], x["start"]) for x in examples["longest_spans"]] == all_spans[:10]
    assert all(x["text"] == evals[x["id"]][x["start"] : x["end"]][:300] for x in examples["longest_spans"])

    dom = parse(render_in_chromium(out / "report.html", tmp_path / "profile"))
    assert_self_contained(dom)
    assert dom.by_id("summary-0").text() == f"{sum(r['contaminated'] for r in rows.values()):,}"
    table_rows = dom.by_id("most-contaminated").rows()
    assert [r[0] for r in table_rows[1:]] == [r["id"] for r in by_bytes[:20]]
    assert len(dom.by_id("neardup-pairs").all("pre")) == 2 * len(first_pairs)
    assert len(dom.by_id("longest-spans").rows()) == 1 + min(10, len(all_spans))


def test_cli_usage_errors(tmp_path, run_cli):
    train = tmp_path / "t.jsonl"
    train.write_text('{"text": "hello"}\n')
    assert (
        run_cli("contamination", f"--train={train}", f"--eval={tmp_path / 'missing'}", f"--output={tmp_path / 'o'}")
        == 3
    )
    assert (
        run_cli("contamination", f"--train={train}", f"--eval={train}", f"--output={tmp_path / 'o'}", "--stages=nope")
        == 2
    )


def test_jaccard_oracle_by_hand():
    # 2 shingles each, 1 in common: 1/3; identical texts: 1.0 (case and punctuation normalised away).
    train = {"a": "one two three four five six", "b": "x y z w v u"}
    evals = {"c": "One, two three four five six!", "d": "one two three four five seven"}
    assert jaccard_oracle(train, evals, 0.8) == {"c": {"a": 1.0}}
    assert jaccard_oracle(train, evals, 0.3) == {"c": {"a": 1.0}, "d": {"a": 1 / 3}}
