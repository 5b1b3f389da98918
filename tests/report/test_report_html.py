"""report.html: a real run's page rendered in headless Chromium, the page built from stored reports (no browser),
and the removed-share-by-source numbers against hand-computed ones."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from dedup_spark.report.html import render_report_html
from dedup_spark.report.svg import size_bins

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser")) if p), None)
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


# ---------------------------------------------------------------- a small DOM from html.parser


class Node:
    def __init__(self, tag: str, attrs: dict[str, str | None], parent: Node | None) -> None:
        self.tag, self.attrs, self.parent, self.children = tag, attrs, parent, []

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def all(self, tag: str | None = None) -> list[Node]:
        found = []
        for child in self.children:
            if isinstance(child, Node):
                if tag is None or child.tag == tag:
                    found.append(child)
                found += child.all(tag)
        return found

    def by_id(self, anchor: str) -> Node:
        matches = [n for n in [self, *self.all()] if n.attrs.get("id") == anchor]
        assert len(matches) == 1, f"expected one element with id={anchor!r}, found {len(matches)}"
        return matches[0]

    def rows(self) -> list[list[str]]:
        """Cell texts of every table row below this node (header rows included)."""
        return [[c.text().strip() for c in tr.children if isinstance(c, Node)] for tr in self.all("tr")]


class TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = self.current = Node("#document", {}, None)

    def handle_starttag(self, tag, attrs):
        node = Node(tag, dict(attrs), self.current)
        self.current.children.append(node)
        if tag not in VOID:
            self.current = node

    def handle_startendtag(self, tag, attrs):
        self.current.children.append(Node(tag, dict(attrs), self.current))

    def handle_endtag(self, tag):
        node = self.current
        while node is not None and node.tag != tag:
            node = node.parent
        if node is not None and node.parent is not None:
            self.current = node.parent

    def handle_data(self, data):
        self.current.children.append(data)


def parse(page: str) -> Node:
    builder = TreeBuilder()
    builder.feed(page)
    builder.close()
    return builder.root


def render_in_chromium(page: Path, profile: Path) -> str:
    """The DOM Chromium builds from the page (`--dump-dom`), serialised back to HTML."""
    if CHROMIUM is None:
        reason = "no chromium binary on PATH: apt-get install -y chromium (Debian) to run the browser check"
        if os.environ.get("CI") == "true":  # .ci/run installs it: a missing browser there is a broken setup
            pytest.fail(reason)
        pytest.skip(reason)
    cmd = [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom", page.resolve().as_uri()]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=True)
    assert "<html" in result.stdout, result.stderr[-2000:]
    return result.stdout


def assert_self_contained(dom: Node) -> None:
    """No script, stylesheet link, frame, image or any attribute pointing at the network."""
    assert not dom.all("script") and not dom.all("link") and not dom.all("iframe") and not dom.all("img")
    for node in dom.all():
        for name, value in node.attrs.items():
            if name in ("src", "href", "action") and value:
                assert value.startswith("#"), f"<{node.tag} {name}={value!r}> leaves the page"


# ---------------------------------------------------------------- a real run, rendered by Chromium

SENTENCE = (
    "This page was copied from the shared community archive of the example project, "
    "all rights reserved by their respective owners."
)
SCRIPT = '<script>alert("dedup")</script>'
CHANGED = "zanzibarish"


def _words(rng: random.Random, vocabulary: list[str], n: int) -> list[str]:
    return [rng.choice(vocabulary) for _ in range(n)]


def planted_corpus() -> list[dict]:
    """A 3-document cluster (kept a-kept, edited b-edit, exact c-copy), a pair (d-pair, e-pair), 20 unique
    documents of which 7 end with SENTENCE; sources web / books / a name with markup."""
    rng = random.Random(7)
    vocabulary = ["".join(rng.choice("bdfgklmnprstvz") + rng.choice("aeiou") for _ in range(3)) for _ in range(4000)]
    base = _words(rng, vocabulary, 120)
    # The edit lies past the first 300 characters, a few words after markup that must be shown as text.
    base[76] = SCRIPT
    edited = [*base[:80], CHANGED, *base[81:]]  # 5 of 116 shingles differ: Jaccard 111/121 = 0.92
    pair = " ".join(_words(rng, vocabulary, 80))
    records = [
        {"id": "a-kept", "source": "web", "text": " ".join(base)},
        {"id": "b-edit", "source": "<i>forum</i>", "text": " ".join(edited)},
        {"id": "c-copy", "source": "<i>forum</i>", "text": " ".join(base)},
        {"id": "d-pair", "source": "books", "text": pair},
        {"id": "e-pair", "source": "books", "text": pair},
    ]
    sources = ["web", "books", "<i>forum</i>"]
    for i in range(20):
        text = " ".join(_words(rng, vocabulary, 60)) + (f".\n\n{SENTENCE}" if i < 7 else "")
        records.append({"id": f"doc-{i:02d}", "source": sources[i % 3], "text": text})
    return records


@pytest.fixture(scope="module")
def planted_run(spark, tmp_path_factory) -> tuple[Path, list[dict]]:
    from dedup_spark.cli import main
    from tests.helpers import write_jsonl

    folder = tmp_path_factory.mktemp("report_html")
    records = planted_corpus()
    src = write_jsonl(folder / "in.jsonl", [*records, "{not json"])
    out = folder / "out"
    args = ["run", f"--input={src}", f"--output={out}", "--stages=neardup,exactsubstr", "--set", "input.id_column=id"]
    assert main(args) == 0
    return out, records


def expected_by_source(records: list[dict], removed_ids: set[str]) -> dict[str, tuple[int, int]]:
    counts: dict[str, list[int]] = {}
    for r in records:
        entry = counts.setdefault(r["source"], [0, 0])
        entry[0] += 1
        entry[1] += r["id"] in removed_ids
    return {source: (docs, removed) for source, (docs, removed) in counts.items()}


def test_run_report_has_excerpts_and_removed_share_by_source(planted_run):
    from tests.helpers import report

    out, records = planted_run
    data = report(out)
    assert (out / "report.html").is_file()
    neardup = next(s for s in data["stages"] if s["name"] == "neardup")["details"]
    largest = neardup["largest_clusters"][0]
    assert largest["cluster_id"] == "a-kept" and largest["size"] == 3
    texts = {r["id"]: r["text"] for r in records}
    # the kept document and the lowest-id removed member, 300 characters each from 100 before their first difference
    kept, edit = texts["a-kept"], texts["b-edit"]
    differ = next(i for i, (a, b) in enumerate(zip(kept, edit, strict=False)) if a != b)
    start = max(0, differ - 100)
    assert differ > 400  # the planted edit is not in the first 300 characters, so this tests the window's move
    assert largest["excerpts"] == [
        {"id": "a-kept", "kept": True, "text": kept[start : start + 300], "start": start, "chars": len(kept)},
        {"id": "b-edit", "kept": False, "text": edit[start : start + 300], "start": start, "chars": len(edit)},
    ]
    by_source = {e["source"]: e for e in data["removed_by_source"]}
    want = expected_by_source(records, {"b-edit", "c-copy", "e-pair"})
    assert {s: (e["documents"], e["removed"]) for s, e in by_source.items()} == want
    assert by_source["<i>forum</i>"]["by_reason"] == {"near_duplicate": 2}
    assert by_source["books"]["removed_share"] == round(1 / want["books"][0], 6)


def test_report_html_renders_in_chromium(planted_run, tmp_path):
    from tests.helpers import report

    out, records = planted_run
    data = report(out)
    dom = parse(render_in_chromium(out / "report.html", tmp_path / "profile"))
    assert_self_contained(dom)  # also: the planted <script> did not become an element

    assert dom.by_id("acc-rows-read").text().startswith("26")  # 25 documents + 1 malformed line
    assert dom.by_id("identity").text() == "26 read = 22 written + 3 removed + 1 quarantined: balanced"
    stages = dom.by_id("stages").rows()
    assert [r[0] for r in stages[1:]] == ["ingest", "neardup", "exactsubstr"]
    assert stages[2][1:4] == ["25", "22", "3"]  # neardup: rows in, out, removed

    neardup = next(s for s in data["stages"] if s["name"] == "neardup")["details"]
    sizes = dom.by_id("cluster-sizes")
    assert len(sizes.all("svg")) == 1
    assert len(sizes.all("rect")) == len(neardup["cluster_size_histogram"]) == 2  # sizes 2 and 3
    curve = dom.by_id("s-curve")
    assert len(curve.all("svg")) == 1 and len(curve.all("circle")) == len(neardup["s_curve"])

    largest = dom.by_id("largest-clusters")
    text = largest.text()
    assert "a-kept" in text and "b-edit" in text and SCRIPT in text  # escaped, shown as text
    start = data_start(data)
    assert start > 0 and f"(from character {start:,})" in text  # the excerpt starts mid-text
    replaced = next(r["text"] for r in records if r["id"] == "a-kept").split()[80]
    assert [m.text() for m in largest.all("mark")] == [replaced, CHANGED]  # the edit, marked on both sides

    top = dom.by_id("top-substrings").rows()
    assert top[1][0] == "7" and SENTENCE[:80] in top[1][2]

    by_source = {r[0]: r[1:4] for r in dom.by_id("by-source").rows()[1:]}
    want = expected_by_source(records, {"b-edit", "c-copy", "e-pair"})
    assert by_source == {
        s: [str(docs), str(removed), f"{100 * removed / docs:.2f}%"] for s, (docs, removed) in want.items()
    }
    assert not dom.by_id("by-source").all("i")  # the source named "<i>forum</i>" is text


# ---------------------------------------------------------------- pages from stored reports, no browser


def stored_report(**extra) -> dict:
    report = {
        "dedup_spark_version": "0.1.0",
        "status": "succeeded",
        "started_at": "2026-11-23T10:00:00+00:00",
        "finished_at": "2026-11-23T10:05:00+00:00",
        "spark": {"version": "4.2.0", "master": "local[2]"},
        "input_format": "parquet",
        "config": {"input": {"path": "/data/in</code><b>x"}, "output": {"path": "/data/out"}, "stages": []},
        "stages": [
            {"name": "ingest", "rows_in": 1234567, "rows_out": 1234560, "bytes_in": 9876543210, "seconds": 61.5}
        ],
        "accounting": {
            "rows_read": 1234567,
            "rows_written": 1234560,
            "rows_removed": 0,
            "rows_quarantined": 7,
            "balanced": True,
        },
        "quarantine_by_reason": {"malformed_json": 7},
        "removed_by_reason": {},
    }
    return report | extra


def test_page_for_a_run_without_dedup_stages_says_so():
    dom = parse(render_report_html(stored_report()))
    assert_self_contained(dom)
    for anchor in ("neardup", "cluster-sizes", "s-curve", "largest-clusters", "exactsubstr", "top-substrings"):
        assert "stage not run" in dom.by_id(anchor).text(), anchor
    assert "no source column" in dom.by_id("by-source").text()
    assert dom.by_id("acc-rows-read").text().startswith("1,234,567")
    assert "1,234,567 read = 1,234,560 written + 0 removed + 7 quarantined" in dom.by_id("identity").text()
    assert dom.by_id("stages").rows()[1][:3] == ["ingest", "1,234,567", "1,234,560"]
    assert "9.9 GB" in dom.by_id("stages").text()
    assert "/data/in</code><b>x" in [c.text() for c in dom.all("code")]  # the path's markup stayed text


def data_start(data: dict) -> int:
    """Where the largest cluster's excerpts start in their documents."""
    neardup = next(s for s in data["stages"] if s["name"] == "neardup")["details"]
    return neardup["largest_clusters"][0]["excerpts"][0]["start"]


def test_page_escapes_data_and_bins_many_cluster_sizes():
    histogram = [{"size": s, "clusters": 1000 // s} for s in range(2, 40)]
    details = {
        "bands": 20,
        "rows": 8,
        "threshold": 0.8,
        "s_curve": [{"similarity": 0.5, "probability": 0.075}],
        "cluster_size_histogram": histogram,
        "largest_clusters": [
            {
                "cluster_id": "<b>id</b>",
                "size": 39,
                "example_ids": ["<b>id</b>"],
                "excerpts": [
                    {"id": "<b>id</b>", "kept": True, "text": "a <img src=x onerror=alert(1)> b", "chars": 5000},
                    {"id": "z", "kept": False, "text": "a <img src=x onerror=alert(2)> b", "chars": 33},
                ],
            }
        ],
    }
    neardup = {"name": "neardup", "rows_in": 10, "rows_out": 9, "rows_removed": 1, "seconds": 1.0, "details": details}
    page = render_report_html(stored_report(stages=[neardup]))
    dom = parse(page)
    assert_self_contained(dom)
    largest = dom.by_id("largest-clusters")
    assert "<b>id</b>" in [c.text() for c in largest.all("code")]
    assert "<img src=x onerror=alert(1)>" in largest.text() and "(5,000 characters)" in largest.text()
    assert [m.text() for m in largest.all("mark")] == ["onerror=alert(1)>", "onerror=alert(2)>"]
    bins = size_bins(histogram)
    assert [label for label, _ in bins] == ["2", "3-4", "5-8", "9-16", "17-32", "33-64"]
    assert sum(c for _, c in bins) == sum(h["clusters"] for h in histogram)
    rects = dom.by_id("cluster-sizes").all("rect")
    assert [r.all("title")[0].text() for r in rects][:2] == ["size 2: 500 clusters", "size 3-4: 583 clusters"]
    assert "log scale" not in dom.by_id("cluster-sizes").text()  # 500 / 25 < 100


def test_rendering_is_deterministic_and_json_safe():
    report = stored_report(removed_by_source=[{"source": "a", "documents": 3, "removed": 1, "removed_share": 0.33}])
    page = render_report_html(json.loads(json.dumps(report)))
    assert page == render_report_html(report)
    assert parse(page).by_id("by-source").rows()[1][:4] == ["a", "3", "1", "33.00%"]


# ---------------------------------------------------------------- removed share by source (Spark aggregates)


def test_removed_share_by_source_counts_caps_and_nulls(spark):
    from dedup_spark.report.data import removed_share_by_source

    sources = ["a"] * 4 + ["b"] * 3 + ["c"] * 2 + ["d"] + [None]
    docs = spark.createDataFrame(
        [(f"id{i}", s, 10) for i, s in enumerate(sources)], "_dd_id string, source string, _dd_bytes long"
    )
    removed = spark.createDataFrame(
        [("a", "near_duplicate"), ("a", "near_duplicate"), ("b", "exact_substring"), ("c", "near_duplicate"),
         (None, "near_duplicate")],
        "source string, reason string",
    )  # fmt: skip
    survivors = spark.createDataFrame(
        [("a", 10), ("a", 5), ("b", 10), ("b", 10), ("c", 7), ("d", 10)], "source string, _dd_bytes long"
    )
    capped = removed_share_by_source(docs, removed, None, survivors, max_sources=2)
    assert capped == [
        {"source": "a", "documents": 4, "removed": 2, "by_reason": {"near_duplicate": 2}, "bytes_in": 40,
         "bytes_out": 15, "removed_share": 0.5, "bytes_removed_share": 0.625},
        {"source": "b", "documents": 3, "removed": 1, "by_reason": {"exact_substring": 1}, "bytes_in": 30,
         "bytes_out": 20, "removed_share": 0.333333, "bytes_removed_share": 0.333333},
        {"source": "(other)", "documents": 4, "removed": 2, "by_reason": {"near_duplicate": 2}, "bytes_in": 40,
         "bytes_out": 17, "removed_share": 0.5, "bytes_removed_share": 0.575, "sources": 3},
    ]  # fmt: skip
    full = removed_share_by_source(docs, removed, "source")
    assert [(e["source"], e["documents"], e["removed"]) for e in full] == [
        ("a", 4, 2), ("b", 3, 1), ("c", 2, 1), ("(null)", 1, 1), ("d", 1, 0)
    ]  # fmt: skip
    assert all("bytes_in" not in e for e in full)  # no survivors given
    assert removed_share_by_source(docs, removed, "lang") is None
    assert removed_share_by_source(docs.drop("source"), removed.drop("source")) is None
