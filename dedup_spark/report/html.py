"""report.html: the run report as one self-contained page (inline CSS and SVG, no script, no network).

Input is the report.json dict (`RunReport.to_dict()`); every text that can come from the data (ids, excerpts,
substrings, source names, paths) is HTML-escaped. Sections have stable ids for tests and links: #accounting,
#stages, #neardup, #cluster-sizes, #s-curve, #largest-clusters, #exactsubstr, #top-substrings, #by-source, #index. A
stage that did not run leaves its sections in place, saying "stage not run".

    python -m dedup_spark.report.html OUT/report.json [OUT/report.html]   # re-render from a stored report
"""

from __future__ import annotations

import difflib
import json
import re
import sys
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from dedup_spark.io import storage
from dedup_spark.report.index_html import index_section
from dedup_spark.report.svg import cluster_size_svg, s_curve_svg

NOT_RUN = '<p class="not-run">stage not run</p>'
SNIPPET_CHARS = 240  # longest repeated substring shown in full; the rest is cut with an ellipsis

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d2430;margin:0;background:#f6f7f9}
main{max-width:1180px;margin:0 auto;padding:20px 28px 48px}
h1{font-size:24px;margin:0 0 4px}h2{font-size:19px;margin:0 0 10px}h3{font-size:15px;margin:18px 0 8px}
section{background:#fff;border:1px solid #dde1e7;border-radius:8px;padding:16px 20px;margin:16px 0}
.meta{color:#5a6473;margin:0}.meta b{color:#1d2430;font-weight:600}
nav a{margin-right:14px;color:#2456a6;text-decoration:none}
table{border-collapse:collapse;margin:4px 0 8px}th,td{padding:4px 10px;border-bottom:1px solid #eceff3;text-align:left}
th{font-weight:600;color:#5a6473;font-size:12px;text-transform:uppercase;letter-spacing:.03em}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.cards{display:flex;gap:12px;flex-wrap:wrap}
.card{border:1px solid #dde1e7;border-radius:6px;padding:8px 14px;min-width:150px}
.card .n{font-size:22px;font-weight:650;font-variant-numeric:tabular-nums}.card .l{color:#5a6473;font-size:12px}
.card.small{min-width:110px;padding:6px 12px}.card.small .n{font-size:17px}
.ok{color:#17803d;font-weight:600}.bad{color:#b42318;font-weight:600}.not-run{color:#8a93a1;font-style:italic}
.plots{display:flex;gap:24px;flex-wrap:wrap}.plots>div{flex:1 1 520px}
svg.plot{max-width:100%;height:auto;font-size:11px;fill:#3b4656}
svg .axis{stroke:#5a6473}svg .grid{stroke:#eceff3}svg .bar{fill:#4f7cc4}svg .value{fill:#1d2430}
svg .curve{fill:none;stroke:#4f7cc4;stroke-width:2}svg .point{fill:#1d4f9c}svg .title{fill:#5a6473;font-size:12px}
svg .threshold{stroke:#b42318;stroke-dasharray:4 3}
.cluster{border-top:1px solid #eceff3;padding:8px 0}.pair{display:flex;gap:14px}.pair>div{flex:1 1 0;min-width:0}
pre{white-space:pre-wrap;word-break:break-word;background:#f6f7f9;border-radius:4px;padding:8px;margin:4px 0;
font:12px/1.4 ui-monospace,Menlo,Consolas,monospace}
.bar-cell{width:160px}.bar-cell div{background:#4f7cc4;height:10px;border-radius:2px}
mark{background:#ffe08a}.ws{color:#9aa3b0}.muted{color:#8a93a1}code{font:12px ui-monospace,Menlo,Consolas,monospace}
"""


def e(value: Any) -> str:
    """HTML-escaped text of any value (None -> empty)."""
    return "" if value is None else escape(str(value), quote=True)


def num(value: Any) -> str:
    """Integers with thousands separators; floats with 3 decimals; anything else escaped as is."""
    if isinstance(value, bool) or value is None:
        return e(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.3f}"
    return e(value)


def pct(share: float | None) -> str:
    return "" if share is None else f"{100 * share:.2f}%"


def human_bytes(n: int | None) -> str:
    """4440147 -> '4.4 MB' (decimal units), the exact count in the tooltip."""
    if n is None:
        return ""
    shown = f"{n:,} B"
    for power, unit in ((4, "TB"), (3, "GB"), (2, "MB"), (1, "kB")):
        if n >= 1000**power:
            shown = f"{n / 1000**power:,.1f} {unit}"
            break
    return f'<span title="{n:,} bytes">{shown}</span>'


def table(headers: Sequence[str] | None, rows: Sequence[Sequence[str]], classes: str = "") -> str:
    """An HTML table from pre-rendered cells. `classes` has one letter per column: n = numeric (right-aligned),
    b = bar cell, anything else plain. No header row when `headers` is None."""
    width = len(rows[0]) if rows else len(headers or [])
    names = {"n": ' class="num"', "b": ' class="bar-cell"'}
    cls = [names.get(c, "") for c in classes.ljust(width)]
    head = (
        ""
        if headers is None
        else "<thead><tr>" + "".join(f"<th{c}>{e(h)}</th>" for h, c in zip(headers, cls, strict=True)) + "</tr></thead>"
    )
    body = "".join("<tr>" + "".join(f"<td{c}>{v}</td>" for v, c in zip(r, cls, strict=True)) + "</tr>" for r in rows)
    return f"<table>{head}<tbody>{body}</tbody></table>"


def section(anchor: str, title: str, body: str, level: int = 2) -> str:
    tag = "section" if level == 2 else "div"
    return f'<{tag} id="{anchor}"><h{level}>{e(title)}</h{level}>{body}</{tag}>'


def _stage(report: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    return next((s for s in report.get("stages") or [] if s.get("name") == name), None)


def _header(report: Mapping[str, Any]) -> str:
    config = report.get("config") or {}
    spark = report.get("spark") or {}
    status = report.get("status", "unknown")
    status_cls = "ok" if status == "succeeded" else "bad"
    stages = ", ".join(config.get("stages") or []) or "none"
    output = config.get("output") or {}
    paths, mode = ((config.get("input") or {}).get("path"), output.get("path")), output.get("mode", "remove")
    return (
        "<header><h1>dedup-spark report</h1>"
        f'<p class="meta">status <b class="{status_cls}">{e(status)}</b> · dedup-spark '
        f"{e(report.get('dedup_spark_version'))} · Spark {e(spark.get('version'))} on <code>{e(spark.get('master'))}"
        f"</code> · {e(report.get('started_at'))} to {e(report.get('finished_at'))}</p>"
        f'<p class="meta">input <code>{e(paths[0])}</code> ({e(report.get("input_format"))}) · output '
        f'<code>{e(paths[1])}</code> · stages <b>{e(stages)}</b> · mode <b id="mode">{e(mode)}</b></p>'
        "<nav>"
        + "".join(
            f'<a href="#{a}">{t}</a>'
            for a, t in (
                ("accounting", "Accounting"),
                ("stages", "Stages"),
                ("by-source", "By source"),
                ("neardup", "Near duplicates"),
                ("exactsubstr", "Repeated substrings"),
                ("config", "Config"),
            )
        )
        + "</nav></header>"
    )


def _accounting(report: Mapping[str, Any]) -> str:
    acc = report.get("accounting") or {}
    if not acc:
        return section("accounting", "Accounting", '<p class="not-run">no accounting (the run did not finish)</p>')
    keys = ("rows_read", "rows_written", "rows_removed", "rows_quarantined")
    cards = "".join(
        f'<div class="card" id="acc-{k.replace("_", "-")}"><div class="n">{num(acc.get(k))}</div>'
        f'<div class="l">{e(k.replace("_", " "))}</div></div>'
        for k in keys
    )
    balanced = acc.get("balanced")
    identity = (
        f'<p id="identity">{num(acc.get("rows_read"))} read = {num(acc.get("rows_written"))} written + '
        f"{num(acc.get('rows_removed'))} removed + {num(acc.get('rows_quarantined'))} quarantined: "
        f'<span class="{"ok" if balanced else "bad"}">{"balanced" if balanced else "NOT BALANCED"}</span></p>'
    )
    parts = [f'<div class="cards">{cards}</div>', identity]
    by_reason = [(report.get("removed_by_reason"), "Removed by reason")]
    marks = report.get("annotations")
    if marks:  # output.mode=annotate
        parts.append(
            f'<p id="annotations">output.mode=annotate: nothing was removed or cut; data/ marks '
            f"<b>{num(marks['rows_marked_for_removal'])}</b> rows for removal (<code>dedup_reason</code>) and "
            f"<b>{human_bytes(marks['bytes_in_spans'])}</b> to cut in {num(marks['rows_with_spans'])} rows "
            "(<code>dedup_spans</code>)</p>"
        )
        by_reason.append((marks["marked_by_reason"], "Marked for removal by reason"))
    for counts, title in (*by_reason, (report.get("quarantine_by_reason"), "Quarantined by reason")):
        counts = counts or {}
        rows = [[f"<code>{e(r)}</code>", num(n)] for r, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
        parts.append(f"<h3>{e(title)}</h3>" + (table(["reason", "rows"], rows, "-n") if rows else "<p>none</p>"))
    return section("accounting", "Accounting", "".join(parts))


def _stages(report: Mapping[str, Any]) -> str:
    stages = report.get("stages") or []
    if not stages:
        return section("stages", "Stages", '<p class="not-run">no stage ran</p>')
    longest = max(float(s.get("seconds") or 0) for s in stages) or 1.0
    rows = [
        [
            f"<b>{e(s.get('name'))}</b>" + (' <span class="muted">(reused)</span>' if s.get("reused") else ""),
            num(s.get("rows_in")),
            num(s.get("rows_out")),
            num(s.get("rows_removed", 0)),
            num(s.get("rows_quarantined", 0)),
            human_bytes(s.get("bytes_in")),
            human_bytes(s.get("bytes_out")),
            f"{float(s.get('seconds') or 0):,.1f} s",
            f'<div style="width:{100 * float(s.get("seconds") or 0) / longest:.0f}%"></div>',
        ]
        for s in stages
    ]
    headers = ["stage", "rows in", "rows out", "removed", "quarantined", "bytes in", "bytes out", "time", ""]
    return section("stages", "Stages", table(headers, rows, "-nnnnnnnb"))


def _scalars(details: Mapping[str, Any], labels: Sequence[tuple[str, str]]) -> str:
    """Small cards for the stage metrics present in `details`, in the order of `labels`."""
    cards = "".join(
        f'<div class="card small"><div class="n">{num(details[key])}</div><div class="l">{e(label)}</div></div>'
        for key, label in labels
        if key in details
    )
    return f'<div class="cards">{cards}</div>'


def excerpt_pair(excerpts: Sequence[Mapping[str, Any]]) -> str:
    """Two documents side by side (kept and removed, or `label`s such as eval and train), words that differ
    between the two marked. Each excerpt: {id, kept, text, chars, start (optional), label (optional)}."""
    texts = [str(x.get("text") or "") for x in excerpts]
    cut = [int(x.get("chars") or 0) > int(x.get("start") or 0) + len(t) for x, t in zip(excerpts, texts, strict=True)]
    marked = [[e(t) for t in re.split(r"(\s+)", text)] for text in texts]
    if len(texts) == 2:
        a, b = (re.split(r"(\s+)", t) for t in texts)
        for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
            # Excerpts cut at different offsets end differently: a difference reaching both ends is not marked.
            if tag != "equal" and not (any(cut) and i2 == len(a) and j2 == len(b)):
                for side, tokens, lo, hi in ((0, a, i1, i2), (1, b, j1, j2)):
                    for i in range(lo, hi):
                        if tokens[i].strip():
                            marked[side][i] = f"<mark>{marked[side][i]}</mark>"
    cells = []
    for x, tokens in zip(excerpts, marked, strict=True):
        start = int(x.get("start") or 0)
        more = int(x.get("chars") or 0) - start - len(str(x.get("text") or ""))
        head = f'<span class="muted">(from character {num(start)}) …</span>' if start else ""
        tail = f'<span class="muted">… ({num(int(x.get("chars") or 0))} characters)</span>' if more > 0 else ""
        role = "kept" if x.get("kept") else "removed"
        cells.append(
            f'<div class="{role}"><b>{e(x.get("label") or role)}</b> <code>{e(x.get("id"))}</code>'
            f"<pre>{head}{''.join(tokens)}{tail}</pre></div>"
        )
    return f'<div class="pair">{"".join(cells)}</div>'


def _neardup(report: Mapping[str, Any]) -> str:
    stage = _stage(report, "neardup")
    if stage is None:
        body = "".join(
            section(a, t, NOT_RUN, 3)
            for a, t in (
                ("cluster-sizes", "Cluster sizes"),
                ("s-curve", "S-curve"),
                ("largest-clusters", "Largest clusters"),
            )
        )
        return section("neardup", "Near duplicates (MinHash-LSH)", NOT_RUN + body)
    d = stage.get("details") or {}
    setting = (
        f'<p class="meta">preset <b>{e(d.get("preset"))}</b>: {num(d.get("bands"))} bands x {num(d.get("rows"))} rows '
        f"({num(d.get('num_perm'))} permutations), Jaccard threshold {e(d.get('threshold'))}"
        f"{', then edit similarity > ' + e(d.get('edit_threshold')) if d.get('verify_edit') else ''}"
        f"; cluster rule <b>{e(d.get('cluster_rule'))}</b></p>"
    )
    numbers = _scalars(
        d,
        [
            ("candidate_pairs", "candidate pairs"),
            ("verified_pairs", "verified pairs"),
            ("exact_duplicate_groups", "groups of identical normalised text"),
            ("exact_duplicate_copies", "identical copies"),
            ("clusters", "clusters"),
            ("documents_in_clusters", "documents in clusters"),
            ("too_short", "too short to match"),
            ("component_rounds", "connected-component rounds"),
            ("anchor_rounds", "anchored-rule rounds (largest component)"),
            ("removed_not_verified_with_keeper", "removed, not verified against the kept document"),
        ],
    )
    histogram = d.get("cluster_size_histogram") or []
    sizes = cluster_size_svg(histogram) if histogram else "<p>no clusters</p>"
    curve = s_curve_svg(d.get("s_curve") or [], d.get("bands"), d.get("rows"), d.get("threshold"))
    plots = (
        f'<div class="plots">{section("cluster-sizes", "Cluster sizes", sizes, 3)}'
        f"{section('s-curve', 'S-curve of the LSH setting', curve, 3)}</div>"
    )
    clusters = []
    for c in d.get("largest_clusters") or []:
        ids = ", ".join(f"<code>{e(i)}</code>" for i in c.get("example_ids") or [])
        excerpts = c.get("excerpts") or []
        clusters.append(
            f'<div class="cluster"><div>cluster <code>{e(c.get("cluster_id"))}</code>: <b>{num(c.get("size"))}</b> '
            f'documents <span class="muted">(e.g. {ids})</span></div>'
            f"{excerpt_pair(excerpts) if excerpts else ''}</div>"
        )
    largest = section("largest-clusters", "Largest clusters", "".join(clusters) or "<p>no clusters</p>", 3)
    return section("neardup", "Near duplicates (MinHash-LSH)", setting + numbers + plots + largest)


def visible_whitespace(text: str) -> str:
    """Escaped text with line breaks and tabs shown as symbols (a snippet's edges matter)."""
    shown = e(text).replace("\t", '<span class="ws">→</span>\t')
    return shown.replace("\n", '<span class="ws">↵</span>\n')


def _exactsubstr(report: Mapping[str, Any]) -> str:
    stage = _stage(report, "exactsubstr")
    if stage is None:
        body = NOT_RUN + section("top-substrings", "Most repeated substrings", NOT_RUN, 3)
        return section("exactsubstr", "Repeated substrings (suffix arrays)", body)
    d = stage.get("details") or {}
    numbers = _scalars(
        d,
        [
            ("bytes_in", "bytes in"),
            ("bytes_removed", "bytes removed"),
            ("spans", "spans removed"),
            ("documents_touched", "documents touched"),
            ("documents_removed", "documents removed (too little left)"),
            ("passes", "passes"),
        ],
    )
    share = f'<p>share of bytes removed: <b id="share-removed">{pct(d.get("share_removed"))}</b></p>'
    rows = []
    for t in d.get("top_substrings") or []:
        snippet = str(t.get("snippet") or "")
        cut = snippet[:SNIPPET_CHARS] + ("…" if len(snippet) > SNIPPET_CHARS else "")
        rows.append([num(t.get("count")), num(t.get("bytes")), f"<pre>{visible_whitespace(cut)}</pre>"])
    top = table(["count", "bytes", "substring"], rows, "nn-") if rows else "<p>no repeats</p>"
    return section(
        "exactsubstr",
        "Repeated substrings (suffix arrays)",
        numbers + share + section("top-substrings", "Most repeated substrings", top, 3),
    )


def _by_source(report: Mapping[str, Any]) -> str:
    entries = report.get("removed_by_source")
    title = "Marked for removal by source" if report.get("annotations") else "Removed share by source"
    if not entries:
        note = (
            "no source column in the input (set <code>report.source_column</code> to name one)"
            if entries is None
            else "no documents"
        )
        return section("by-source", title, f'<p class="not-run">{note}</p>')
    reasons = sorted({r for x in entries for r in x.get("by_reason") or {}})
    with_bytes = any("bytes_removed_share" in x for x in entries)
    rows = []
    for x in entries:
        share = float(x.get("removed_share") or 0)
        name = e(x.get("source")) + (
            f' <span class="muted">({num(x["sources"])} sources)</span>' if "sources" in x else ""
        )
        row = [name, num(x.get("documents")), num(x.get("removed")), pct(share)]
        row += [num((x.get("by_reason") or {}).get(r, 0)) for r in reasons]
        row += [pct(x.get("bytes_removed_share"))] if with_bytes else []
        rows.append([*row, f'<div style="width:{100 * share:.0f}%"></div>'])
    headers = ["source", "documents", "removed", "removed share", *reasons] + (["bytes removed"] if with_bytes else [])
    html = table([*headers, ""], rows, "-" + "n" * (len(headers) - 1) + "b")
    return section("by-source", title, html)


def render_report_html(report: Mapping[str, Any]) -> str:
    """The whole page for one report.json dict."""
    config = json.dumps(report.get("config") or {}, indent=2, sort_keys=True)
    body = "".join(
        [
            _header(report),
            _accounting(report),
            _stages(report),
            _by_source(report),
            _neardup(report),
            _exactsubstr(report) + index_section(report),  # run --index only
            f'<section id="config"><h2>Config</h2><details><summary>resolved config</summary><pre>{e(config)}</pre>'
            "</details></section>",
        ]
    )
    title = f"dedup-spark report: {report.get('status', 'unknown')}"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{e(title)}</title><style>{CSS}</style></head><body><main>{body}</main></body></html>\n"
    )


def write_report_html(report: Mapping[str, Any], out_dir: str) -> str:
    """Write `out_dir/report.html` (local or any filesystem `storage` handles); returns its path."""
    path = storage.join(out_dir, "report.html")
    storage.write_text(path, render_report_html(report))
    return path


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) not in (1, 2):
        print("usage: python -m dedup_spark.report.html REPORT.json [OUT.html]", file=sys.stderr)
        return 2
    report = json.loads(storage.read_text(args[0]))
    target = args[1] if len(args) == 2 else re.sub(r"\.json$", "", args[0]) + ".html"
    storage.write_text(target, render_report_html(report))
    print(target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
