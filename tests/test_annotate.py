"""output.mode=annotate: data/ keeps every document and marks what remove mode drops or cuts.

Each corpus runs in both modes; the README's snippet applied to annotate mode's data/ must give remove mode's data/
row for row, and the marks are checked against remove mode's outputs and the report independently.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from benchmarks.same_outputs import sorted_rows, stable
from dedup_spark.columns import ANNOTATION_COLUMNS
from tests.conftest import DEMO_CORPUS, REPO
from tests.corpora import corpus
from tests.helpers import read_output, report, write_jsonl


def readme_snippet() -> dict:
    """The README's code that applies the annotations, executed: its names (`apply_annotations`, ...)."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    code = re.search(r"#### Annotate instead of remove.*?```python\n(.*?)```", readme, re.S).group(1)
    names: dict = {}
    exec(code, names)
    return names


def run_both(run_cli, out: Path, *args: str) -> tuple[Path, Path]:
    """Run the same command in remove and annotate mode; returns the two output folders."""
    for mode in ("remove", "annotate"):
        assert run_cli("run", f"--output={out / mode}", f"--set=output.mode={mode}", *args) == 0
    return out / "remove", out / "annotate"


def check_applied_equals_remove(spark, remove: Path, annotate: Path, tmp: Path, text_column: str = "text") -> None:
    """The README's snippet applied to annotate's data/ gives remove's data/; every other table is the same, but
    removed/, which is empty (with remove's columns)."""
    applied = readme_snippet()["apply_annotations"](spark.read.parquet(str(annotate / "data")), text_column)
    applied.write.parquet(str(tmp / "applied"))
    expected, got = sorted_rows(remove / "data"), sorted_rows(tmp / "applied")
    assert got.column_names == expected.column_names
    assert [f.type for f in got.schema] == [f.type for f in expected.schema]
    assert got.to_pylist() == expected.to_pylist()
    for table in ("quarantine", "neardup/clusters", "exact/spans"):
        if (remove / table).exists():
            assert sorted_rows(annotate / table).to_pylist() == sorted_rows(remove / table).to_pylist(), table
    assert sorted_rows(annotate / "removed").num_rows == 0
    assert sorted_rows(annotate / "removed").column_names == sorted_rows(remove / "removed").column_names


def check_marks(remove: Path, annotate: Path, id_column: str) -> list[dict]:
    """The marks against remove mode's outputs and both reports; returns annotate's data/ rows."""
    data = read_output(annotate / "data")
    removed = read_output(remove / "removed")
    marked = {str(r[id_column]): r["dedup_reason"] for r in data if r["dedup_reason"] is not None}
    assert marked == {str(r[id_column]): r["reason"] for r in removed}
    # Every cluster has exactly one kept member, whose id is the cluster id; cluster_size counts every member.
    members = defaultdict(list)
    for r in data:
        members[r["dedup_cluster_id"]].append(r)
    for cluster_id, rows in members.items():
        if cluster_id is None:
            assert all(r["dedup_cluster_kept"] and r.get("cluster_size", 1) == 1 for r in rows)
            continue
        assert [str(r[id_column]) for r in rows if r["dedup_cluster_kept"]] == [cluster_id]
        assert {r["cluster_size"] for r in rows} == {len(rows)}
    # The spans are code points of the text as read: their UTF-8 bytes are dedup_cut_bytes.
    for r in data:
        spans = [(s["start"], s["end"]) for s in r["dedup_spans"]]
        assert spans == sorted(spans)
        assert r["dedup_cut_bytes"] == sum(len(r["text"][a:b].encode()) for a, b in spans)
    removing, annotating = report(remove), report(annotate)
    assert annotating["config"]["output"]["mode"] == "annotate"
    assert stable(annotating["stages"], annotate) == stable(removing["stages"], remove)  # the stages found the same
    stages = {s["name"]: s for s in removing["stages"]}
    if "exactsubstr" in stages:
        assert sum(r["dedup_cut_bytes"] for r in data) == stages["exactsubstr"]["details"]["bytes_removed"]
    acc = annotating["accounting"]
    assert acc["balanced"] and acc["rows_removed"] == 0 and acc["rows_written"] == len(data)
    assert acc["rows_read"] == acc["rows_written"] + acc["rows_quarantined"] == removing["accounting"]["rows_read"]
    assert annotating["annotations"] == {
        "rows_marked_for_removal": sum(removing["removed_by_reason"].values()),
        "marked_by_reason": removing["removed_by_reason"],
        "rows_with_spans": sum(bool(r["dedup_spans"]) for r in data),
        "bytes_in_spans": sum(r["dedup_cut_bytes"] for r in data),
    }
    assert annotating["removed_by_source"] == removing["removed_by_source"]
    return data


@pytest.fixture(scope="module")
def demo(spark, tmp_path_factory) -> tuple[Path, Path]:
    from dedup_spark.cli import main

    out = tmp_path_factory.mktemp("annotate-demo")
    return run_both(lambda *a: main([*a]), out, f"--input={DEMO_CORPUS}", "--set=input.id_column=id")


def test_applying_the_demo_annotations_gives_remove_modes_data(spark, demo, tmp_path):
    check_applied_equals_remove(spark, *demo, tmp_path)
    assert readme_snippet()["ANNOTATIONS"] == list(ANNOTATION_COLUMNS)  # the snippet drops every annotation


def test_demo_annotations_mark_what_remove_mode_removes(demo):
    remove, annotate = demo
    data = check_marks(remove, annotate, "id")
    assert len(data) == 1269  # every document ingest accepted: 1,272 rows read, 3 quarantined
    assert Counter(r["dedup_reason"] for r in data) == {None: 1189, "near_duplicate": 80}
    assert sum(not r["dedup_cluster_kept"] for r in data) == 80
    assert list(data[0])[-6:] == ["cluster_size", *ANNOTATION_COLUMNS]
    page = (annotate / "report.html").read_text()
    assert '<b id="mode">annotate</b>' in page and 'id="annotations"' in page
    assert "Marked for removal by reason" in page


def test_annotate_with_derived_ids_multibyte_text_and_exactsubstr_only(spark, run_cli, tmp_path):
    """Spans in code points of non-ASCII text, a document ExactSubstr drops, and no NearDup (its columns default).

    strike_all cuts every copy of the footer, so the document that is nothing but the footer loses too much."""
    footer = " — Ünïcödé bóilerplate 日本語の定型文、繰り返し。" * 3
    rows = [{"text": f"Dokument {i}: {'ä' * i} eigener Inhalt {i * 7} ✓{footer}"} for i in range(6)]
    rows.append({"text": "x" + footer})  # nothing but the footer: too little left after cutting
    src = write_jsonl(tmp_path / "in.jsonl", rows)
    args = (
        f"--input={src}",
        "--stages=exactsubstr",
        "--set=exactsubstr.min_length=30",
        "--set=exactsubstr.policy=strike_all",
    )
    remove, annotate = run_both(run_cli, tmp_path / "out", *args)
    check_applied_equals_remove(spark, remove, annotate, tmp_path)
    data = check_marks(remove, annotate, "doc_id")
    assert Counter(r["dedup_reason"] for r in data) == {None: 6, "exact_substring": 1}
    assert all(r["dedup_cluster_id"] is None and r["dedup_cluster_kept"] for r in data)
    assert "cluster_size" not in data[0]  # as in remove mode without NearDup
    assert sum(bool(r["dedup_spans"]) for r in data) == 7


def test_an_input_column_named_like_an_annotation_is_an_error_in_annotate_mode_only(run_cli, tmp_path, capsys):
    src = write_jsonl(tmp_path / "in.jsonl", [{"id": i, "text": f"text {i}", "dedup_reason": "mine"} for i in (1, 2)])
    args = (f"--input={src}", "--set=input.id_column=id", "--stages=neardup")
    assert run_cli("run", *args, f"--output={tmp_path / 'a'}", "--set=output.mode=annotate") == 3
    error = capsys.readouterr().err
    assert "['dedup_reason']" in error and "--set output.mode=remove" in error
    assert run_cli("run", *args, f"--output={tmp_path / 'b'}", "--dry-run") == 0  # remove mode adds no such column


def test_the_dry_run_plan_names_annotate_mode(run_cli, tmp_path, capsys):
    src = write_jsonl(tmp_path / "in.jsonl", [{"text": "a document"}])
    assert run_cli("run", f"--input={src}", f"--output={tmp_path / 'out'}", "--dry-run") == 0
    assert "output.mode=annotate" not in capsys.readouterr().out
    annotate = ("--dry-run", "--set=output.mode=annotate")
    assert run_cli("run", f"--input={src}", f"--output={tmp_path / 'out'}", *annotate) == 0
    assert "output.mode=annotate: every document kept, duplicates marked" in capsys.readouterr().out


@pytest.mark.slow
def test_applying_the_annotations_of_a_real_corpus_gives_remove_modes_data(spark, run_cli, tmp_path):
    args = (f"--input={corpus('bbcnews')}", "--set=input.id_column=id", "--stages=neardup,exactsubstr")
    remove, annotate = run_both(run_cli, tmp_path / "out", *args)
    check_applied_equals_remove(spark, remove, annotate, tmp_path)
    data = check_marks(remove, annotate, "id")
    assert sum(r["dedup_reason"] is not None for r in data) > 0 and sum(r["dedup_cut_bytes"] for r in data) > 0
