"""The compiled cut of a batch (`spans.ApplyTask` on `cut_kernel.cut_batch`) against the per-document reference
(`spans.removal_spans` + `spans.cut`, themselves tested against brute force in test_spans.py)."""

from __future__ import annotations

import random
import sys

import numpy as np
import pyarrow as pa
import pytest

from dedup_spark.columns import BYTES, CUT_BYTES, DROP, ID, SPANS, WINDOWS
from dedup_spark.exactsubstr.cut_kernel import IS_SPACE
from dedup_spark.exactsubstr.spans import ApplyTask, cut, removal_spans

# 1-4 byte characters, and whitespace of each UTF-8 width (tab, unit separator, space, NBSP, ideographic space,
# line separator).
ALPHABET = "aé Жд中😀b\t\x1f\u00a0\u3000\u2028x"
WINDOW = pa.struct([("start", pa.int32()), ("end", pa.int32())])


def _batch(rng: random.Random, text_type: pa.DataType) -> pa.RecordBatch:
    texts, windows = [], []
    for _ in range(600):
        text = "".join(rng.choice(ALPHABET) for _ in range(rng.randrange(1, 40)))
        size = len(text.encode())
        k = 3
        rows = []
        for _ in range(rng.randrange(0, 5)):  # unsorted, overlapping, touching, sometimes empty runs
            if size >= k:
                s = rng.randrange(0, size - k + 1)
                rows.append({"start": s, "end": rng.randrange(s, size - k + 2)})
        texts.append(text)
        windows.append(rows)
    return pa.RecordBatch.from_arrays(
        [
            pa.array([f"d{i}" for i in range(len(texts))]),
            pa.array(texts, text_type),
            pa.array([len(t.encode()) for t in texts], pa.int64()),
            pa.array(windows, pa.list_(WINDOW)),
        ],
        names=[ID, "text", BYTES, WINDOWS],
    )


@pytest.mark.parametrize("text_type", [pa.string(), pa.large_string()])
def test_apply_task_equals_the_reference_per_document(text_type: pa.DataType) -> None:
    rng = random.Random(5)
    task = ApplyTask((ID, "text", BYTES), "text", k=3, min_remaining_chars=4)
    whole = _batch(rng, text_type)
    # Slices start inside the arrays' buffers (what Arrow hands a task after a split).
    batches = [whole.slice(0, 250), whole.slice(250, 200), whole.slice(450)]
    out = pa.Table.from_batches(list(task(iter(batches))))
    assert out.column_names == [ID, "text", BYTES, SPANS, CUT_BYTES, DROP]
    assert out.schema.field("text").type == text_type
    cut_some = dropped = 0
    for i, row in enumerate(out.to_pylist()):
        text = whole.column("text")[i].as_py()
        runs = [(w["start"], w["end"]) for w in whole.column(WINDOWS)[i].as_py()]
        spans = removal_spans(text.encode(), runs, 3)
        kept = cut(text, spans)
        assert row[ID] == f"d{i}"
        assert row["text"] == kept
        assert row[BYTES] == len(kept.encode())
        assert [(s["start"], s["end"]) for s in row[SPANS]] == [tuple(r) for r in spans.tolist()]
        assert row[CUT_BYTES] == len(text.encode()) - len(kept.encode())
        assert row[DROP] == (len(spans) > 0 and len("".join(kept.split())) < 4)
        cut_some += len(spans) > 0
        dropped += row[DROP]
    assert cut_some > 200 and 0 < dropped < cut_some  # the sample exercises both outcomes


def test_windows_past_the_end_name_the_document() -> None:
    batch = pa.RecordBatch.from_arrays(
        [pa.array(["ok", "bad"]), pa.array(["abcdef", "abcdef"]), pa.array([6, 6], pa.int64()),
         pa.array([[], [{"start": 0, "end": 3}]], pa.list_(WINDOW))],
        names=[ID, "text", BYTES, WINDOWS],
    )  # fmt: skip
    with pytest.raises(ValueError, match="document bad"):
        list(ApplyTask((ID, "text", BYTES), "text", k=5, min_remaining_chars=1)(iter([batch])))


def test_whitespace_table_is_all_of_pythons() -> None:
    assert np.flatnonzero(IS_SPACE).tolist() == [c for c in range(sys.maxunicode + 1) if chr(c).isspace()]
