"""ExactSubstr against an index (`exactsubstr/against.py`): the batch's cut equals the brute-force keep_first and
strike_all over the index's texts then the batch, whether the index's super-k-mers are stored or not, and the
stored super-k-mers hold every distinct window of the index once."""

from __future__ import annotations

from collections import defaultdict

import pytest

from dedup_spark.config import build_config
from dedup_spark.exactsubstr.against import doc_superkmers
from dedup_spark.exactsubstr.stage import ExactSubstr
from dedup_spark.stage import StageContext
from tests.exactsubstr.exact_oracle import oracle_spans
from tests.exactsubstr.test_exactsubstr import adversarial_corpus


@pytest.mark.parametrize(
    ("policy", "stored"),
    [
        ("keep_first", False),
        ("keep_first", True),
        pytest.param("strike_all", False, marks=pytest.mark.slow),  # each case about 10 s
        pytest.param("strike_all", True, marks=pytest.mark.slow),
    ],
)
def test_exactsubstr_against_the_index_equals_the_oracle(spark, tmp_path, policy, stored):
    """Index texts first, never cut; the batch in id order: spans equal the brute-force oracle (keep_first or
    strike_all) restricted to it."""
    texts = adversarial_corpus(seed=3)
    # Copies inside the index (whole and inside other text): their super-k-mers are stored once.
    # A batch text holding an index text: the inside of the copy is settled by digest, its edges by the merge.
    index_texts, batch_texts = texts[:20] + [texts[0], "zz" + texts[3] + "zz"], texts[20:] + ["qq" + texts[5] + "qq"]
    k = 8
    config = build_config(
        {
            "input.path": "in",
            "output.path": "out",
            "input.id_column": "id",
            "exactsubstr.min_length": k,
            "exactsubstr.minimizer_width": 3,
            "exactsubstr.chunk_size": 64,
            "exactsubstr.policy": policy,
            "exactsubstr.min_remaining_chars": 0,
        }
    )
    rows = [(f"d{i:05d}", t, f"d{i:05d}", len(t.encode())) for i, t in enumerate(batch_texts)]
    docs = spark.createDataFrame(rows, "id string, text string, _dd_id string, _dd_bytes long")
    # Index ids sort after the batch's: the index comes first because it is the index, not by its ids.
    index_rows = [(f"x{i:05d}", t, len(t.encode())) for i, t in enumerate(index_texts)]
    index = spark.createDataFrame(index_rows, "_dd_id string, text string, _dd_bytes long")
    if stored:  # as the index stores them: only the index's super-k-mers with a key of the batch are read
        index = index.join(doc_superkmers(index, "text", k, 3), "_dd_id", "left")
    ctx = StageContext(spark, config, str(tmp_path / f"{policy}-{stored}"), None, index)
    result = ExactSubstr().run(ctx, docs)
    spans: dict[int, list] = defaultdict(list)
    for r in result.tables["exact/spans"].collect():
        spans[int(r["doc_id"][1:])].append((r["start"], r["end"]))
    want = oracle_spans(index_texts + batch_texts, k, policy)[len(index_texts) :]
    assert [sorted(spans[i]) for i in range(len(batch_texts))] == want
    alone = oracle_spans(batch_texts, k, policy)
    assert want != alone  # the index really changed the cut
    shared = result.metrics["index"]
    assert shared["documents_sharing_with_index"] > 0 and shared["bytes_shared_with_index"] > 0
    searched = shared["index_documents_searched"]
    assert searched is None if not stored else 0 < searched < len(index_texts)
    if stored:  # both ways of step 3 and 4 were taken: shared whole by digest, and merged byte by byte
        assert shared["batch_superkmers_shared_whole"] > 0 and shared["superkmers_shipped"] > 0


def test_stored_superkmers_hold_every_distinct_window_of_the_index_once(spark):
    """doc_superkmers against brute force: the windows of the stored super-k-mers are exactly the distinct k-byte
    windows of all texts, no two stored super-k-mers have the same bytes, and a document whose text an earlier one
    holds whole stores nothing."""
    k, w = 8, 3
    texts = adversarial_corpus(seed=5)[:30]
    texts += [texts[2], "ab" + texts[4] + "cd"]  # a whole copy (last in id order) and a copy inside other text
    rows = [(f"x{i:03d}", t, len(t.encode())) for i, t in enumerate(texts)]
    frame = spark.createDataFrame(rows, "_dd_id string, text string, _dd_bytes long")
    stored = {r["_dd_id"]: r["_dd_superkmers"] for r in doc_superkmers(frame, "text", k, w).collect()}
    seen, contents = set(), []
    for doc_id, superkmers in stored.items():
        data = texts[int(doc_id[1:])].encode()
        assert superkmers == sorted(superkmers, key=lambda s: (s["start"], s["end"]))
        for s in superkmers:
            contents.append(data[s["start"] : s["end"] + k - 1])
            seen.update(data[i : i + k] for i in range(s["start"], s["end"]))
    every = {t.encode()[i : i + k] for t in texts for i in range(len(t.encode()) - k + 1)}
    assert seen == every
    assert len(contents) == len(set(contents))
    assert f"x{len(texts) - 2:03d}" not in stored  # the whole copy of texts[2]
