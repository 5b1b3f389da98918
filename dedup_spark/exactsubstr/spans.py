"""From repeated window starts to the code point spans cut out of one document.

Intervals are int64 numpy arrays of shape (m, 2), rows [start, end). The steps, per document:
1. union the window-start intervals found by every chunk and partition (`merge_intervals`);
2. a run [s, e) of window starts covers bytes [s, e - 1 + k) (`window_starts_to_byte_spans`);
3. widen each byte span outward to whole UTF-8 characters, so the output stays valid UTF-8 and never
   splits a character (`widen_to_utf8`); spans that then overlap or touch are merged, so the result
   is the maximal runs of characters having at least one removed byte;
4. convert byte offsets to code point offsets, which is what Python `str` slicing uses (`bytes_to_codepoints`).
`policy_spans` runs 1-4 for a policy; `cut` removes spans from a `str`. `ApplyTask` is the Spark task (mapInArrow
function) that cuts a batch of documents; it does 1-4 and the cut in one compiled pass (`cut_kernel`), which the
tests hold to these functions.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dedup_spark.columns import BYTES, CUT_BYTES, DROP, ID, SPANS, WINDOWS
from dedup_spark.exactsubstr.cut_kernel import IS_SPACE, cut_batch

Policy = Literal["strike_all", "keep_first"]
#: strike_all removes every occurrence of a repeated window; keep_first keeps its first occurrence.
POLICIES: tuple[str, ...] = ("strike_all", "keep_first")


def as_intervals(intervals: np.ndarray | list[tuple[int, int]] | list[list[int]]) -> np.ndarray:
    """Any (m, 2) array-like of [start, end) rows as an int64 array of shape (m, 2)."""
    arr = np.asarray(intervals, dtype=np.int64)
    if arr.size == 0:
        return np.empty((0, 2), dtype=np.int64)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"intervals must have shape (m, 2), got {arr.shape}")
    return arr


def merge_intervals(*interval_sets: np.ndarray | list[tuple[int, int]]) -> np.ndarray:
    """Union of any number of interval sets: sorted, disjoint, non-touching rows; empty rows dropped.

    Touching rows ([0, 5) and [5, 8)) merge, so the result is the maximal runs of covered positions.
    """
    parts = [as_intervals(s) for s in interval_sets]
    arr = np.concatenate(parts) if parts else np.empty((0, 2), dtype=np.int64)
    arr = arr[arr[:, 1] > arr[:, 0]]
    if len(arr) == 0:
        return arr
    arr = arr[np.argsort(arr[:, 0], kind="stable")]
    reach = np.maximum.accumulate(arr[:, 1])  # furthest end seen so far
    # A new run starts where a row begins after everything before it ended.
    new_run = np.concatenate(([True], arr[1:, 0] > reach[:-1]))
    first = np.flatnonzero(new_run)
    last = np.append(first[1:], len(arr)) - 1
    return np.stack([arr[first, 0], reach[last]], axis=1)


def window_starts_to_byte_spans(intervals: np.ndarray | list[tuple[int, int]], k: int) -> np.ndarray:
    """Window-start runs [s, e) -> merged byte spans [s, e - 1 + k) covered by those windows."""
    if k < 1:
        raise ValueError(f"window length k={k} must be >= 1")
    arr = merge_intervals(intervals)
    arr[:, 1] += k - 1
    return merge_intervals(arr)


def _lead_bytes(data: np.ndarray) -> np.ndarray:
    """True at bytes that start a character (anything but a continuation byte 0b10xxxxxx)."""
    return (data & 0xC0) != 0x80


def widen_to_utf8(data: bytes | np.ndarray, spans: np.ndarray | list[tuple[int, int]]) -> np.ndarray:
    """Widen byte spans outward to character boundaries and merge: starts move back to the lead byte
    of their character, ends move forward past its continuation bytes.

    data: the document's UTF-8 bytes; spans: byte spans inside it. Returns merged byte spans.
    """
    arr = np.frombuffer(data, dtype=np.uint8) if isinstance(data, bytes | bytearray) else data
    spans = merge_intervals(spans)
    if len(spans) == 0:
        return spans
    if spans[0, 0] < 0 or spans[-1, 1] > len(arr):
        raise ValueError(f"byte spans {spans[0, 0]}..{spans[-1, 1]} fall outside a document of {len(arr)} bytes")
    # Boundaries: every lead byte, plus 0 and len(data) so searches always land (even on broken UTF-8).
    bounds = np.concatenate(([0], np.flatnonzero(_lead_bytes(arr)), [len(arr)]))
    starts = bounds[np.searchsorted(bounds, spans[:, 0], side="right") - 1]
    ends = bounds[np.searchsorted(bounds, spans[:, 1], side="left")]
    return merge_intervals(np.stack([starts, ends], axis=1))


def bytes_to_codepoints(data: bytes | np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Code point offset of each byte offset (which must be on a character boundary or len(data)):
    the number of lead bytes before it."""
    arr = np.frombuffer(data, dtype=np.uint8) if isinstance(data, bytes | bytearray) else data
    leads_before = np.concatenate(([0], np.cumsum(_lead_bytes(arr), dtype=np.int64)))
    return leads_before[np.asarray(offsets, dtype=np.int64)]


def removal_spans(data: bytes, window_intervals: np.ndarray | list[tuple[int, int]], k: int) -> np.ndarray:
    """Code point spans to remove from a document, given the window starts to remove.

    data: the document's UTF-8 bytes; window_intervals: (m, 2) document-relative window-start runs
    (any order, may overlap: several chunks/partitions); k: window length in bytes.
    Returns int64 (r, 2) code point spans [start, end), sorted, disjoint, non-touching.
    Raises ValueError if a window would end past the document (wrong k or wrong document).
    """
    byte_spans = window_starts_to_byte_spans(window_intervals, k)
    if len(byte_spans) == 0:
        return byte_spans
    if byte_spans[0, 0] < 0 or byte_spans[-1, 1] > len(data):
        raise ValueError(
            f"window starts up to {byte_spans[-1, 1] - k} with k={k} do not fit a document of {len(data)} bytes"
        )
    arr = np.frombuffer(data, dtype=np.uint8)
    return bytes_to_codepoints(arr, widen_to_utf8(arr, byte_spans))


def policy_window_intervals(
    policy: Policy | str, repeated: np.ndarray | list[tuple[int, int]], non_first: np.ndarray | list[tuple[int, int]]
) -> np.ndarray:
    """The window starts a policy removes: `strike_all` -> repeated starts, `keep_first` -> non-first starts."""
    if policy == "strike_all":
        return merge_intervals(repeated)
    if policy == "keep_first":
        return merge_intervals(non_first)
    raise ValueError(f"unknown removal policy {policy!r}; use one of {POLICIES}")


def policy_spans(
    data: bytes,
    k: int,
    policy: Policy | str,
    repeated: np.ndarray | list[tuple[int, int]],
    non_first: np.ndarray | list[tuple[int, int]],
) -> np.ndarray:
    """Code point spans removed from one document under `policy` (see `removal_spans`)."""
    return removal_spans(data, policy_window_intervals(policy, repeated, non_first), k)


def cut(text: str, cp_spans: np.ndarray | list[tuple[int, int]]) -> str:
    """`text` without the code point spans (sorted, disjoint rows [start, end) inside the text)."""
    spans = as_intervals(cp_spans)
    if len(spans) == 0:
        return text
    if (spans[:, 1] < spans[:, 0]).any() or (spans[1:, 0] < spans[:-1, 1]).any():
        raise ValueError("spans to cut must be sorted, disjoint [start, end) rows")
    if spans[0, 0] < 0 or spans[-1, 1] > len(text):
        raise ValueError(f"spans {spans[0, 0]}..{spans[-1, 1]} fall outside a text of {len(text)} characters")
    keep_from = np.concatenate(([0], spans[:, 1])).tolist()
    keep_to = np.concatenate((spans[:, 0], [len(text)])).tolist()
    return "".join(text[a:b] for a, b in zip(keep_from, keep_to, strict=True))


def _utf8_buffers(texts: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """The UTF-8 bytes of a string (or large_string) array as Arrow holds them, and int64 offsets into them: text
    i is bytes[offsets[i]:offsets[i + 1]]. No copy of the text."""
    if texts.null_count:
        raise ValueError(f"{texts.null_count} documents to cut have no text")
    _, offsets, data = texts.buffers()
    offset_type = np.int64 if pa.types.is_large_string(texts.type) else np.int32
    offsets = np.frombuffer(offsets, offset_type)[texts.offset : texts.offset + len(texts) + 1]
    return np.frombuffer(data or b"", dtype=np.uint8), offsets.astype(np.int64)


def _string_array(string_type: pa.DataType, data: np.ndarray, offsets: np.ndarray) -> pa.Array:
    """The inverse of `_utf8_buffers`: texts from their bytes and int64 offsets."""
    offset_type = np.int64 if pa.types.is_large_string(string_type) else np.int32
    return pa.Array.from_buffers(
        string_type, len(offsets) - 1, [None, pa.py_buffer(offsets.astype(offset_type)), pa.py_buffer(data)]
    )


@dataclass(frozen=True)
class ApplyTask:
    """mapInArrow function: documents with `_dd_windows` (list of window-start runs) -> cut documents, a batch at a
    time in one compiled pass over the text's bytes (`cut_kernel.cut_batch`, tested against `removal_spans` + `cut`).

    Output columns: the documents' columns (text cut, `_dd_bytes` updated), then `_dd_spans` (code point
    spans removed, in the input text), `_dd_cut_bytes` (UTF-8 bytes removed) and `_dd_drop` (the document
    lost bytes and keeps fewer than `min_remaining_chars` non-space characters).
    """

    columns: tuple[str, ...]
    text_column: str
    k: int
    min_remaining_chars: int

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        span_type = pa.list_(pa.struct([("start", pa.int32()), ("end", pa.int32())]))
        for batch in batches:
            texts = batch.column(self.text_column)
            data, text_offsets = _utf8_buffers(texts)
            windows = batch.column(WINDOWS)
            lengths = pc.fill_null(pc.list_value_length(windows), 0).to_numpy()
            flat = windows.flatten()
            starts = flat.field("start").to_numpy(zero_copy_only=False).astype(np.int64)
            ends = flat.field("end").to_numpy(zero_copy_only=False).astype(np.int64)
            order = np.lexsort((starts, np.repeat(np.arange(len(lengths)), lengths)))
            kept, offsets, cp_starts, cp_ends, span_bounds, visible, bad = cut_batch(
                data,
                text_offsets,
                starts[order],
                ends[order],
                np.concatenate(([0], np.cumsum(lengths))),
                self.k,
                IS_SPACE,
            )
            if bad >= 0:
                raise ValueError(
                    f"windows of {self.k} bytes in document {batch.column(ID)[bad]} end past its "
                    f"{batch.column(BYTES)[bad]} bytes: wrong min_length or wrong document"
                )
            sizes = np.diff(offsets)
            struct = pa.StructArray.from_arrays(
                [pa.array(cp_starts.astype(np.int32)), pa.array(cp_ends.astype(np.int32))], names=["start", "end"]
            )
            replaced = {
                self.text_column: _string_array(texts.type, kept, offsets),
                BYTES: pa.array(sizes, batch.schema.field(BYTES).type),
            }
            arrays = [replaced.get(name, batch.column(name)) for name in self.columns]
            arrays += [
                pa.ListArray.from_arrays(pa.array(span_bounds.astype(np.int32)), struct).cast(span_type),
                pa.array(np.diff(text_offsets) - sizes, pa.int64()),
                pa.array((np.diff(span_bounds) > 0) & (visible < self.min_remaining_chars), pa.bool_()),
            ]
            yield pa.RecordBatch.from_arrays(arrays, names=[*self.columns, SPANS, CUT_BYTES, DROP])
