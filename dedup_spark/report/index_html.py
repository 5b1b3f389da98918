"""report.html's section on the index of `run --index` (#index): versions, documents, size and matches.

Kept apart from html.py (which renders everything else and calls `index_section`); every value that can come from
the data (paths, ids) is HTML-escaped. A run without --index gets no section.
"""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from typing import Any

ROWS = (
    ("mode", "mode"),
    ("checked_against_version", "checked against version"),
    ("version_before", "version before"),
    ("version_after", "version after"),
    ("already_added_at_version", "batch already added at version"),
    ("documents_before", "documents before"),
    ("documents_added", "documents added"),
    ("documents_after", "documents after"),
    ("text_bytes_after", "text bytes after"),
    ("size_on_disk_bytes", "size on disk (bytes)"),
    ("size_on_disk_per_text_byte", "size on disk per byte of text"),
    ("near_duplicates_of_index", "batch documents removed as near-duplicates of the index"),
    ("index_documents_matched", "index documents matched"),
    ("bytes_shared_with_index", "batch bytes in windows shared with the index (cut)"),
)


def _value(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else escape(str(value))


def index_section(report: Mapping[str, Any]) -> str:
    """The #index section, or "" for a run without --index."""
    index = report.get("index")
    if not index:
        return ""
    rows = "".join(
        f'<tr><td>{escape(label)}</td><td class="num">{_value(index.get(key))}</td></tr>' for key, label in ROWS
    )
    ids = ", ".join(f"<code>{escape(str(i))}</code>" for i in index.get("index_ids_matched") or []) or "none"
    error = f'<p class="bad">{escape(str(index["error"]))}</p>' if index.get("error") else ""
    return (
        f'<section id="index"><h2>Index</h2><p class="meta">index <code>{escape(str(index.get("path")))}</code> '
        f"(format {_value(index.get('format_version'))})</p>{error}<table><tbody>{rows}</tbody></table>"
        f'<p id="index-ids">index ids matched (first 20): {ids}</p></section>'
    )
