"""--dry-run (issue 5 item 7): checks config, input and output, prints the plan, reads no more than a sample and
writes nothing; errors keep their exit codes."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.helpers import write_jsonl

STAGES = "--stages=neardup,exactsubstr"
ID = ("--set", "input.id_column=id")


@pytest.fixture
def src(tmp_path):
    records = [{"id": i, "text": f"document number {i} " * 20, "lang": "en"} for i in range(1500)]
    # Only a line past the sampled first 1,000 has this column: a dry run must not scan that far.
    records[1200]["late_column"] = 1
    return write_jsonl(tmp_path / "in.jsonl", records)


def tree(path):
    """Every file under a folder with its size and mtime: "unchanged" means this is equal."""
    return sorted((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in path.rglob("*")) if path.exists() else None


def test_dry_run_prints_the_plan_and_writes_nothing(tmp_path, run_cli, src, capsys):
    out = tmp_path / "out"
    assert run_cli("run", f"--input={src}", f"--output={out}", "--dry-run", STAGES, *ID) == 0
    assert not out.exists()
    plan = capsys.readouterr().out
    assert f"input   {src} (jsonl; 1 file, {src.stat().st_size / 1024:.1f} KiB)" in plan
    assert "id: integer, text: string, lang: string (JSON types in the first 1,000 lines" in plan
    assert "late_column" not in plan  # sampled: the schema was not inferred from the whole file
    assert f"output  parquet at {out} (new)" in plan
    for step in ("ingest", "neardup", "exactsubstr"):
        assert f"    {step:<12} would run" in plan
    # neardup's banding and its S-curve (P(J=0.8) = 1 - (1 - 0.8**8)**20 = 0.975), exactsubstr's settings.
    assert "preset default: 20 bands x 8 rows (160 min-hashes), verification: Jaccard > 0.8" in plan
    assert "J=0.8: 0.975" in plan
    assert "min_length 100 bytes, policy keep_first, chunk_size 64.0 MiB" in plan


def test_dry_run_after_stop_after_says_ingest_is_reused(tmp_path, run_cli, src, capsys):
    out = tmp_path / "out"
    args = ("run", f"--input={src}", f"--output={out}", STAGES, *ID)
    assert run_cli(*args, "--stop-after=ingest") == 0
    before = tree(out)
    capsys.readouterr()
    assert run_cli(*args, "--dry-run") == 0
    plan = capsys.readouterr().out
    assert f"{'ingest':<12} reused from _work" in plan and f"{'neardup':<12} would run" in plan
    assert "an unfinished run" in plan
    assert tree(out) == before
    # A changed ingest setting: the plan no longer reuses it.
    assert run_cli(*args, "--dry-run", "--set", "ingest.shard_size=1MiB") == 0
    assert f"{'ingest':<12} would run" in capsys.readouterr().out


def test_dry_run_plan_for_parquet_with_stop_after(tmp_path, run_cli, capsys):
    src = tmp_path / "in.parquet"
    pq.write_table(pa.table({"text": ["a b c", "d e f"], "score": [0.5, 0.7]}), src)
    out = tmp_path / "out"
    args = ("run", f"--input={src}", f"--output={out}", "--dry-run", STAGES, "--stop-after=neardup")
    assert run_cli(*args, "--set", "neardup.preset=paper") == 0
    plan = capsys.readouterr().out
    assert "(parquet; 1 file," in plan and "text: string, score: double" in plan
    assert "450 bands x 20 rows (9000 min-hashes), verification: Jaccard > 0.8 then edit similarity > 0.8" in plan
    assert "not run now: exactsubstr" in plan and f"{'exactsubstr':<12} would run" not in plan
    assert not out.exists()


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("--set", "neardup.bands=0"), 2, "neardup.bands must be at least 1"),
        (("--set", "exactsubstr.polcy=strike_all"), 2, "Did you mean 'exactsubstr.policy'"),
        (("--stop-after=exactsubstr", "--stages=neardup"), 2, "not a step of this run"),
        (("--set", "input.text_column=body"), 3, "no line among the first 1,000 lines"),
        (("--set", "input.id_column=uid"), 3, "has the id column 'uid'"),
    ],
)
def test_dry_run_errors_keep_their_exit_codes(tmp_path, run_cli, src, capsys, args, code, message):
    out = tmp_path / "out"
    assert run_cli("run", f"--input={src}", f"--output={out}", "--dry-run", *args) == code
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_dry_run_missing_input_wrong_schema_and_busy_output(tmp_path, run_cli, src, capsys):
    out = tmp_path / "out"
    assert run_cli("run", f"--input={tmp_path / 'missing.jsonl'}", f"--output={out}", "--dry-run") == 3
    assert "does not exist" in capsys.readouterr().err
    no_text = tmp_path / "no_text.parquet"
    pq.write_table(pa.table({"body": ["a"]}), no_text)
    assert run_cli("run", f"--input={no_text}", f"--output={out}", "--dry-run") == 3
    assert "has no text column 'text'" in capsys.readouterr().err
    out.mkdir()
    (out / "report.json").write_text(json.dumps({"status": "succeeded"}))
    (out / "data").mkdir()
    before = tree(out)
    assert run_cli("run", f"--input={src}", f"--output={out}", "--dry-run", *ID) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert tree(out) == before
