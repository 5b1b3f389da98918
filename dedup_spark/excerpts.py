"""Side-by-side excerpts of two similar documents for the report pages: the text around their first difference.

Both report pages (a run's largest clusters, contamination's near-duplicate pairs) show two documents next to
each other. Their first few hundred characters are often the same boilerplate, so each excerpt shows
EXCERPT_CHARS characters from EXCERPT_CONTEXT characters before the first character at which the two differ
(looked for in their first DIFFERENCE_WINDOW characters), the same offset for both.
"""

from __future__ import annotations

import os
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

EXCERPT_CHARS = 300
EXCERPT_CONTEXT = 100
DIFFERENCE_WINDOW = 65536


def collect_heads(texts: DataFrame, ids: list[str], id_column: str, text_column: str) -> dict[str, dict[str, Any]]:
    """{id: {"head": first DIFFERENCE_WINDOW characters, "chars": length}} of the named documents (a handful:
    the filter is pushed down to Parquet and only their heads reach the driver)."""
    if not ids:
        return {}
    rows = (
        texts.filter(F.col(id_column).isin(ids))
        .select(
            F.col(id_column).alias("id"),
            F.substring(F.col(text_column), 1, DIFFERENCE_WINDOW).alias("head"),
            F.char_length(F.col(text_column)).alias("chars"),
        )
        .collect()
    )
    return {r["id"]: {"head": r["head"], "chars": int(r["chars"])} for r in rows}


def side_by_side(documents: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """Excerpts `{id, text, start, chars}` of one or two documents given as (id, `collect_heads` entry), starting
    at the same offset before their first difference (at 0 for a single document)."""
    heads = [doc["head"] for _, doc in documents]
    differ = len(os.path.commonprefix(heads)) if len(heads) == 2 else 0
    start = max(0, min(differ, DIFFERENCE_WINDOW - EXCERPT_CHARS) - EXCERPT_CONTEXT)
    return [
        {"id": i, "text": doc["head"][start : start + EXCERPT_CHARS], "start": start, "chars": doc["chars"]}
        for i, doc in documents
    ]
