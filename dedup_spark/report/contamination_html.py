"""report.html of `dedup-spark contamination`: one self-contained page (inline CSS, no script, no network), in the
style of the run report (`html.py`, whose helpers it uses).

Sections with stable ids: #summary (shares of eval documents and bytes), #most-contaminated (the eval documents
with most contaminated bytes and the train documents that contaminate them), #neardup-pairs (eval and train
document side by side around their first difference, differing words marked), #longest-spans (the longest eval
text found in train), #accounting, #config. Every text from the data is HTML-escaped.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from dedup_spark.io import storage
from dedup_spark.report.html import CSS, e, excerpt_pair, human_bytes, num, pct, section, table, visible_whitespace


def _summary(report: Mapping[str, Any]) -> str:
    s = report.get("summary") or {}
    cards = [
        (num(s.get("contaminated_documents")), f"of {num(s.get('eval_documents'))} eval documents contaminated",
         pct(s.get("share_contaminated"))),
        (num(s.get("neardup_documents")), "near-duplicates of a train document", pct(s.get("share_neardup"))),
        (num(s.get("exact_documents")), "share text with train", pct(s.get("share_exact"))),
        (human_bytes(s.get("contaminated_bytes")), f"of {human_bytes(s.get('eval_bytes'))} eval bytes contaminated",
         pct(s.get("share_bytes_contaminated"))),
    ]  # fmt: skip
    html = "".join(
        f'<div class="card"><div class="n" id="summary-{i}">{n}</div><div class="l">{e(label)} ({share})</div></div>'
        for i, (n, label, share) in enumerate(cards)
    )
    return section("summary", "Contamination", f'<div class="cards">{html}</div>')


def _ids(ids: Any) -> str:
    return ", ".join(f"<code>{e(i)}</code>" for i in ids or []) or '<span class="muted">none</span>'


def _most_contaminated(examples: Mapping[str, Any]) -> str:
    rows = [
        [f"<code>{e(r.get('id'))}</code>", num(r.get("bytes")), num(r.get("contaminated_bytes")),
         _ids(r.get("neardup_train_ids")), _ids(r.get("exact_train_ids"))]
        for r in examples.get("most_contaminated") or []
    ]  # fmt: skip
    headers = ["eval document", "bytes", "contaminated bytes", "near-duplicate of (train)", "shares text with (train)"]
    body = table(headers, rows, "-nn--") if rows else '<p class="muted">no contaminated eval document</p>'
    return section("most-contaminated", "Most contaminated eval documents", body)


def _neardup_pairs(examples: Mapping[str, Any]) -> str:
    pairs = examples.get("neardup_pairs") or []
    body = "".join(f'<div class="cluster">{excerpt_pair(p)}</div>' for p in pairs)
    return section("neardup-pairs", "Near-duplicate pairs", body or '<p class="muted">no near-duplicate pair</p>')


def _longest_spans(examples: Mapping[str, Any]) -> str:
    rows = [
        [f"<code>{e(r.get('id'))}</code>", num(r.get("start")), num(int(r.get("end", 0)) - int(r.get("start", 0))),
         f"<pre>{visible_whitespace(str(r.get('text') or ''))}</pre>"]
        for r in examples.get("longest_spans") or []
    ]  # fmt: skip
    body = table(["eval document", "from character", "characters", "text"], rows, "-nn-") if rows else ""
    return section("longest-spans", "Longest text shared with train", body or '<p class="muted">none</p>')


def _accounting(report: Mapping[str, Any]) -> str:
    acc = report.get("accounting") or {}
    rows = [
        [e(name), num(acc[name].get("rows_read")), num(acc[name].get("rows_quarantined"))]
        for name in ("train", "eval")
        if name in acc
    ]
    verdict = '<b class="ok">balanced</b>' if acc.get("balanced") else '<b class="bad">not balanced</b>'
    return section("accounting", "Accounting", table(["set", "rows read", "quarantined"], rows, "-nn") + verdict)


def render_contamination_html(report: Mapping[str, Any]) -> str:
    """The whole page for one contamination report.json dict."""
    examples = report.get("examples") or {}
    inputs = report.get("inputs") or {}
    config = json.dumps(report.get("config") or {}, indent=2, sort_keys=True)
    header = (
        "<header><h1>dedup-spark contamination report</h1>"
        f'<p class="meta">status <b>{e(report.get("status"))}</b> · train <code>{e(inputs.get("train"))}</code> · '
        f"eval <code>{e(inputs.get('eval'))}</code> · {e(report.get('started_at'))} to "
        f"{e(report.get('finished_at'))}</p></header>"
    )
    body = "".join(
        [
            header,
            _summary(report),
            _most_contaminated(examples),
            _neardup_pairs(examples),
            _longest_spans(examples),
            _accounting(report),
            f'<section id="config"><h2>Config</h2><details><summary>resolved config</summary><pre>{e(config)}</pre>'
            "</details></section>",
        ]
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>dedup-spark contamination report</title><style>{CSS}</style></head><body><main>{body}</main>"
        "</body></html>\n"
    )


def write_contamination_html(report: Mapping[str, Any], out_dir: str) -> str:
    """Write `out_dir/report.html`; returns its path."""
    path = storage.join(out_dir, "report.html")
    storage.write_text(path, render_contamination_html(report))
    return path
