"""Outputs: Delta tables read back, --overwrite replaces cleanly, non-empty outputs are protected."""

from __future__ import annotations

import json

import pytest

from tests.helpers import read_output, report, write_jsonl

RECORDS = [{"id": i, "text": f"text of document {i}"} for i in range(6)] + ["{broken"]
ID = ["--set", "input.id_column=id"]


@pytest.fixture
def src(tmp_path):
    return write_jsonl(tmp_path / "in.jsonl", RECORDS)


def test_delta_output_is_a_real_table_and_overwrite_replaces_it(tmp_path, run_cli, src):
    from deltalake import DeltaTable

    out = tmp_path / "out"
    assert run_cli("run", f"--input={src}", f"--output={out}", "--output-format=delta", *ID) == 0
    for table in ("data", "removed", "quarantine"):
        assert (out / table / "_delta_log").is_dir()
    assert sorted(r["id"] for r in read_output(out / "data")) == list(range(6))
    assert [r["reason"] for r in read_output(out / "quarantine")] == ["malformed_json"]

    # Same run again with --overwrite: a new table version with the same rows, never doubled.
    assert run_cli("run", f"--input={src}", f"--output={out}", "--output-format=delta", "--overwrite", *ID) == 0
    assert sorted(r["id"] for r in read_output(out / "data")) == list(range(6))
    assert DeltaTable(str(out / "data")).version() == 1
    assert report(out)["accounting"]["balanced"]


def test_non_empty_output_needs_overwrite(tmp_path, run_cli, src, capsys):
    out = tmp_path / "out"
    assert run_cli("run", f"--input={src}", f"--output={out}", *ID) == 0
    first = report(out)["started_at"]
    assert run_cli("run", f"--input={src}", f"--output={out}", *ID) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert report(out)["started_at"] == first  # untouched


def test_overwrite_refuses_folders_with_foreign_files(tmp_path, run_cli, src, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "precious.txt").write_text("not ours")
    assert run_cli("run", f"--input={src}", f"--output={out}", "--overwrite", *ID) == 2
    assert "did not write" in capsys.readouterr().err
    assert (out / "precious.txt").read_text() == "not ours"


def test_parquet_overwrite_swaps_tables_and_drops_stale_entries(tmp_path, run_cli, src):
    out = tmp_path / "out"
    assert run_cli("run", f"--input={src}", f"--output={out}", *ID) == 0
    (out / "neardup").mkdir()  # as if an earlier run had a stage this one does not
    (out / "neardup" / "stale.parquet").write_text("stale")
    smaller = write_jsonl(tmp_path / "small.jsonl", RECORDS[:2])
    assert run_cli("run", f"--input={smaller}", f"--output={out}", "--overwrite", *ID) == 0
    assert sorted(r["id"] for r in read_output(out / "data")) == [0, 1]
    assert not (out / "neardup").exists() and not (out / "_staging").exists() and not (out / "_trash").exists()
    assert not (out / "_work").exists()


def test_switching_parquet_output_to_delta(tmp_path, run_cli, src):
    out = tmp_path / "out"
    assert run_cli("run", f"--input={src}", f"--output={out}", *ID) == 0
    assert run_cli("run", f"--input={src}", f"--output={out}", "--overwrite", "--output-format=delta", *ID) == 0
    assert sorted(r["id"] for r in read_output(out / "data")) == list(range(6))


def test_dry_run_writes_nothing(tmp_path, run_cli, src):
    out = tmp_path / "out"
    assert run_cli("run", f"--input={src}", f"--output={out}", "--dry-run", *ID) == 0
    assert not out.exists()


def test_report_has_config_stages_and_identity(tmp_path, run_cli, src):
    out = tmp_path / "out"
    assert run_cli("run", f"--input={src}", f"--output={out}", "--set", "ingest.shard_size=1KiB", *ID) == 0
    data = json.loads((out / "report.json").read_text())
    assert data["status"] == "succeeded" and data["config"]["input"]["id_column"] == "id"
    assert data["config"]["ingest"]["shard_size"] == 1024
    ingest = data["stages"][0]
    assert ingest["name"] == "ingest" and ingest["rows_in"] == 7 and ingest["rows_out"] == 6
    assert ingest["seconds"] > 0 and ingest["bytes_out"] == sum(len(r["text"]) for r in RECORDS[:6])
    assert data["accounting"] == {
        "rows_read": 7,
        "rows_written": 6,
        "rows_removed": 0,
        "rows_quarantined": 1,
        "identity": "rows_read = rows_written + rows_removed + rows_quarantined",
        "balanced": True,
    }
