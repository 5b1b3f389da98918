"""Two small inline SVG plots for report.html: the cluster-size histogram and the LSH S-curve.

Hand-written rather than matplotlib: two plots do not justify a ~40 MB dependency (with Pillow, fonttools,
kiwisolver...) that every executor image would also have to carry, and plain SVG keeps its labels as text,
so the page stays small, searchable and byte-for-byte reproducible.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape
from typing import Any

from dedup_spark.neardup.lsh import candidate_probability

WIDTH, HEIGHT = 560, 280
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 16, 48
# Above this many distinct cluster sizes, sizes are grouped in powers of two (2, 3-4, 5-8, ...).
MAX_BARS = 24
# Bar counts spanning more than this ratio are drawn on a log scale, or small bars would vanish.
LOG_RATIO = 100


def _frame(body: list[str], label: str, x_title: str, y_title: str) -> str:
    """Wrap plot elements in an <svg> with axis titles; `label` becomes the accessible name."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    return "\n".join(
        [
            f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" '
            f'height="{HEIGHT}" role="img" aria-label="{escape(label)}" class="plot">',
            f"<title>{escape(label)}</title>",
            f'<line class="axis" x1="{LEFT}" y1="{TOP + plot_h}" x2="{LEFT + plot_w}" y2="{TOP + plot_h}"/>',
            f'<line class="axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + plot_h}"/>',
            *body,
            f'<text class="title" x="{LEFT + plot_w / 2:.1f}" y="{HEIGHT - 8}" text-anchor="middle">'
            f"{escape(x_title)}</text>",
            f'<text class="title" transform="translate(14 {TOP + plot_h / 2:.1f}) rotate(-90)" '
            f'text-anchor="middle">{escape(y_title)}</text>',
            "</svg>",
        ]
    )


def size_bins(histogram: Sequence[dict[str, Any]]) -> list[tuple[str, int]]:
    """[{size, clusters}] -> [(label, clusters)] in size order; powers-of-two bins when there are many sizes."""
    points = sorted((int(h["size"]), int(h["clusters"])) for h in histogram)
    if len(points) <= MAX_BARS:
        return [(f"{size:,}", clusters) for size, clusters in points]
    bins: dict[int, int] = {}
    for size, clusters in points:
        upper = 1 << max(1, math.ceil(math.log2(size)))  # 2 -> 2, 3..4 -> 4, 5..8 -> 8
        bins[upper] = bins.get(upper, 0) + clusters
    return [
        (f"{upper:,}" if upper == 2 else f"{upper // 2 + 1:,}-{upper:,}", clusters)
        for upper, clusters in sorted(bins.items())
    ]


def cluster_size_svg(histogram: Sequence[dict[str, Any]]) -> str:
    """Bar chart of clusters per cluster size (documents per cluster), counts written on the bars."""
    bins = size_bins(histogram)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    counts = [c for _, c in bins]
    top = max(counts) if counts else 1
    log_scale = bool(counts) and top / max(1, min(counts)) > LOG_RATIO

    def height(count: int) -> float:
        if log_scale:
            return plot_h * math.log10(1 + count) / math.log10(1 + top)
        return plot_h * count / top

    body: list[str] = []
    for tick in _ticks(top, log_scale):
        y = TOP + plot_h - height(tick)
        body.append(f'<line class="grid" x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + plot_w}" y2="{y:.1f}"/>')
        body.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{tick:,}</text>')
    slot = plot_w / max(1, len(bins))
    every = max(1, math.ceil(len(bins) / 12))  # label at most ~12 x positions
    for i, (label, count) in enumerate(bins):
        h = max(1.0, height(count))
        bar = min(slot * 0.7, 56.0)
        middle = LEFT + (i + 0.5) * slot
        body.append(
            f'<rect class="bar" x="{middle - bar / 2:.1f}" y="{TOP + plot_h - h:.1f}" width="{bar:.1f}" '
            f'height="{h:.1f}"><title>size {escape(label)}: {count:,} clusters</title></rect>'
        )
        if len(bins) <= MAX_BARS / 2 or i % every == 0:  # counts on every bar only while they fit
            body.append(
                f'<text class="value" x="{middle:.1f}" y="{TOP + plot_h - h - 4:.1f}" '
                f'text-anchor="middle">{count:,}</text>'
            )
        if i % every == 0:
            body.append(f'<text x="{middle:.1f}" y="{TOP + plot_h + 16}" text-anchor="middle">{escape(label)}</text>')
    y_title = "clusters (log scale)" if log_scale else "clusters"
    return _frame(body, "Clusters by size", "documents in the cluster", y_title)


def _ticks(top: int, log_scale: bool) -> list[int]:
    """Round y-axis tick values up to `top`: powers of ten on a log scale, else 1/2/5 x 10^k steps."""
    if top <= 0:
        return [0]
    if log_scale:
        return [10**k for k in range(int(math.log10(top)) + 1)]
    raw = top / 4
    magnitude = 10 ** math.floor(math.log10(raw)) if raw >= 1 else 1
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    return list(range(0, top + 1, max(1, int(step))))


def s_curve_svg(points: Sequence[dict[str, Any]], bands: int | None, rows: int | None, threshold: float | None) -> str:
    """P(candidate) against Jaccard similarity: the exact curve for bands x rows, the report's points as dots,
    and the verification threshold as a dashed line."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def xy(s: float, p: float) -> tuple[float, float]:
        return LEFT + s * plot_w, TOP + (1 - p) * plot_h

    body: list[str] = []
    for v in (0.0, 0.25, 0.5, 0.75, 1.0):
        x, y = xy(v, v)
        body.append(f'<line class="grid" x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + plot_w}" y2="{y:.1f}"/>')
        body.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{v:g}</text>')
    for tenth in range(0, 11, 2):
        x, _ = xy(tenth / 10, 0)
        body.append(f'<text x="{x:.1f}" y="{TOP + plot_h + 16}" text-anchor="middle">{tenth / 10:g}</text>')
    if bands and rows:
        curve = [xy(i / 200, candidate_probability(i / 200, bands, rows)) for i in range(201)]
    else:
        curve = [xy(float(p["similarity"]), float(p["probability"])) for p in points]
    body.append('<polyline class="curve" points="' + " ".join(f"{x:.1f},{y:.1f}" for x, y in curve) + '"/>')
    for p in points:
        x, y = xy(float(p["similarity"]), float(p["probability"]))
        body.append(
            f'<circle class="point" cx="{x:.1f}" cy="{y:.1f}" r="3"><title>J = {float(p["similarity"]):.2f}: '
            f"P = {float(p['probability']):.3f}</title></circle>"
        )
    if threshold is not None:
        x, _ = xy(float(threshold), 0)
        body.append(f'<line class="threshold" x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{TOP + plot_h}"/>')
        body.append(f'<text class="value" x="{x + 4:.1f}" y="{TOP + plot_h - 8}">threshold {threshold:g}</text>')
    shape = f" ({bands} bands x {rows} rows)" if bands and rows else ""
    return _frame(body, f"S-curve{shape}", "Jaccard similarity of a pair", "P(candidate pair)")
