"""Every internal column name and id prefix, the annotation columns, and the user's view of a frame's columns.

Internal columns start with `_dd_` (input columns may not); the outputs never show them. The document frame
that ingest writes and every stage receives has the input's columns plus ID and BYTES (and, from ingest, FILE,
COPY and SHARD); the other names are private to one step but listed here so that no two steps pick the same one.
"""

from __future__ import annotations

from typing import Any

INTERNAL_PREFIX = "_dd_"

# The document frame (ingest.py; every stage).
ID = "_dd_id"  # string, unique: input.id_column cast to string, or derived from the text
BYTES = "_dd_bytes"  # UTF-8 size of the text
# Rows as read and ingested (readers.py, read_jsonl.py, ingest.py, inputfiles.py).
FILE = "_dd_file"  # the input file of a row
REASON = "_dd_reason"  # quarantine reason, null for a readable row
RAW = "_dd_raw"  # the raw record of a quarantined row
ORDER = "_dd_order"
COPY = "_dd_copy"  # 0 for the first row with an id, 1.. for later ones
SHARD = "_dd_shard"
LINK, REAL = "_dd_link", "_dd_real"  # input files reached through a link, and their targets
# Ingest's columns: none of them is the user's.
INGEST_COLUMNS = (FILE, REASON, RAW, ID, BYTES, ORDER, COPY, SHARD)
# NearDup (neardup/).
PROTECTED = "_dd_protected"  # a held-out document of `run --protect`
WITH_PROTECTED = "_dd_with_protected"  # a cluster holding a held-out document
# A literal true on the --index documents among the held-out ones: a filter on it drops their scan from the plan.
INDEXED = "_dd_indexed"
SIZE = "_dd_size"
RANK = "_dd_rank"
EDGE_COMPONENT = "_dd_edge_component"
CHECK = "_dd_check"  # a candidate pair to verify before it is an edge (clusters_in_one_task.py)
TEXT = "_dd_text"  # a document's text, whatever the input's text column is called (clusters_in_one_task.py)
# ExactSubstr (exactsubstr/) and NearDup's distributed components.
GROUP = "_dd_group"
RANGE = "_dd_range"
ROUTE = "_dd_route"  # a key that sends its rows to a partition of their own (sparkops.own_partitions)
WINDOWS = "_dd_windows"  # window-start runs [(start, end)] of a document
SPANS = "_dd_spans"  # removed code point spans of a document
CUT_BYTES = "_dd_cut_bytes"
DROP = "_dd_drop"  # the document is removed (too little left after cutting)
# Report (report/data.py).
SOURCE = "_dd_source"

# data/'s column of NearDup cluster sizes (output.cluster_size): a kept document's in remove mode, every one's in
# annotate mode.
CLUSTER_SIZE = "cluster_size"
# data/'s annotation columns with output.mode=annotate (annotate.py): public names, documented in the README.
CLUSTER_ID_COLUMN = "dedup_cluster_id"  # the NearDup cluster's kept document's id; null outside clusters
CLUSTER_KEPT_COLUMN = "dedup_cluster_kept"  # NearDup keeps it: its cluster's kept one, or in no cluster
REASON_COLUMN = "dedup_reason"  # why remove mode would remove the row; null: it stays
SPANS_COLUMN = "dedup_spans"  # code point spans [start, end) of the text that remove mode cuts
CUT_BYTES_COLUMN = "dedup_cut_bytes"  # UTF-8 bytes in those spans
ANNOTATION_COLUMNS = (CLUSTER_ID_COLUMN, CLUSTER_KEPT_COLUMN, REASON_COLUMN, SPANS_COLUMN, CUT_BYTES_COLUMN)

# Id prefixes. Held-out documents of `run --protect` inside NearDup:
PROTECTED_ID_PREFIX = "protected-"
# Documents of the persisted index (`run --index`) inside the stages (index/incremental.py):
INDEX_ID_PREFIX = "index:"
HELD_OUT_PREFIXES = (PROTECTED_ID_PREFIX, INDEX_ID_PREFIX)  # NearDup's held-out documents: never removed
SUPERKMERS = "_dd_superkmers"  # an index document's ExactSubstr super-k-mers, as stored (exactsubstr/against.py)
# The two sets inside `contamination` (ids may collide across the sets; outputs show them without it):
TRAIN_PREFIX, EVAL_PREFIX = "0:", "1:"


def user_columns(frame: Any) -> list[str]:
    """The columns of a DataFrame that came from the input (ingest's own columns left out)."""
    return [c for c in frame.columns if c not in INGEST_COLUMNS]


def safe_name(name: str) -> str:
    """An input column name as the run carries it: "." and "`" (syntax in Spark's column strings) escaped
    as %2E and %60 ("%" as %25), so stages that select columns by name work; `original_name` reverses it."""
    return name.replace("%", "%25").replace(".", "%2E").replace("`", "%60")


def original_name(name: str) -> str:
    return name.replace("%60", "`").replace("%2E", ".").replace("%25", "%")


def user_view(frame: Any, derived_id: Any | None, extra: tuple[str, ...] = ()) -> Any:
    """An output's columns: the input's under their own names, then `derived_id` (a Column, None when the input
    has its own id column), then the `extra` columns the output adds (those the frame has)."""
    added = [c for c in extra if c in frame.columns]
    columns = [col(c).alias(original_name(c)) for c in user_columns(frame) if c not in added]
    return frame.select(*columns, *([derived_id] if derived_id is not None else []), *[col(c) for c in added])


def col(name: str) -> Any:
    """A column by its exact name: dots, spaces and backticks in input column names are not syntax."""
    from pyspark.sql import functions as F

    return F.col("`" + name.replace("`", "``") + "`")
