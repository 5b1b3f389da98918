"""Each reader on good and bad input: exit codes, quarantine rows with reasons, and the accounting."""

from __future__ import annotations

import gzip
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from tests.helpers import read_output, report, write_jsonl

GOOD = [{"id": i, "text": f"document number {i} has some words", "lang": "en"} for i in range(5)]
BAD = [
    "this is not json",
    "   ",
    "[1, 2, 3]",
    {"id": 10, "text": None},
    {"id": 11},
    {"id": 12, "text": 42},
    {"id": 13, "text": ""},
]
EXPECTED_REASONS = {
    "malformed_json": 1,
    "blank_line": 1,
    "not_a_json_object": 1,
    "null_text": 2,
    "non_string_text": 1,
    "empty_text": 1,
}


def check_balanced(out, read, written, quarantined):
    acc = report(out)["accounting"]
    assert (acc["rows_read"], acc["rows_written"], acc["rows_quarantined"]) == (read, written, quarantined)
    assert acc["balanced"] and acc["rows_removed"] == 0


def test_jsonl_bad_lines_are_quarantined_with_reasons(tmp_path, run_cli):
    src = write_jsonl(tmp_path / "in.jsonl", GOOD[:2] + BAD + GOOD[2:])
    out = tmp_path / "out"
    assert run_cli("run", f"--input={src}", f"--output={out}", "--set", "input.id_column=id") == 0
    data = read_output(out / "data")
    assert sorted(r["id"] for r in data) == list(range(5))
    assert {r["text"] for r in data} == {g["text"] for g in GOOD}
    quarantine = read_output(out / "quarantine")
    reasons = {}
    for row in quarantine:
        reasons[row["reason"]] = reasons.get(row["reason"], 0) + 1
        assert row["input_file"].endswith("in.jsonl")
    assert reasons == EXPECTED_REASONS
    raw = {r["raw_record"] for r in quarantine if r["reason"] == "malformed_json"}
    assert raw == {"this is not json"}
    assert {r["id"] for r in quarantine if r["reason"] == "non_string_text"} == {12}
    check_balanced(out, read=12, written=5, quarantined=7)
    assert report(out)["quarantine_by_reason"] == EXPECTED_REASONS


@pytest.mark.parametrize("suffix", [".jsonl.gz", ".jsonl.zst"])
def test_compressed_jsonl(tmp_path, run_cli, suffix):
    plain = write_jsonl(tmp_path / "plain.jsonl", GOOD + BAD[:1])
    data = plain.read_bytes()
    packed = gzip.compress(data) if suffix.endswith("gz") else zstandard.ZstdCompressor().compress(data)
    src = tmp_path / ("in" + suffix)
    src.write_bytes(packed)
    plain.unlink()
    out = tmp_path / "out"
    assert run_cli("run", f"--input={src}", f"--output={out}") == 0
    assert len(read_output(out / "data")) == 5
    check_balanced(out, read=6, written=5, quarantined=1)


def test_parquet_folder_and_glob(tmp_path, run_cli):
    folder = tmp_path / "pq"
    folder.mkdir()
    texts = ["alpha beta", None, "", "gamma delta", "epsilon"]
    for part in range(2):
        pq.write_table(
            pa.table({"url": [f"u{part}-{i}" for i in range(5)], "body": texts}), folder / f"part-{part}.parquet"
        )
    out = tmp_path / "out"
    args = ["--set", "input.text_column=body", "--set", "input.id_column=url"]
    assert run_cli("run", f"--input={folder}", f"--output={out}", *args) == 0
    assert sorted(r["url"] for r in read_output(out / "data")) == sorted(
        f"u{p}-{i}" for p in range(2) for i in (0, 3, 4)
    )
    check_balanced(out, read=10, written=6, quarantined=4)
    out2 = tmp_path / "out2"
    assert run_cli("run", f"--input={folder}/part-1.*", f"--output={out2}", *args) == 0
    check_balanced(out2, read=5, written=3, quarantined=2)


def test_text_files_one_document_per_file(tmp_path, run_cli):
    folder = tmp_path / "txt"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("first file, Привет мир 你好 🙂", encoding="utf-8")
    (folder / "sub" / "b.txt").write_text("second file", encoding="utf-8")
    (folder / "bad.txt").write_bytes(b"caf\xe9 latin-1, not utf-8")
    (folder / "empty.txt").write_bytes(b"")
    out = tmp_path / "out"
    assert run_cli("run", f"--input={folder}", f"--output={out}", "--set", "input.id_column=path") == 0
    data = {r["path"].rsplit("/", 1)[-1]: r["text"] for r in read_output(out / "data")}
    assert data == {"a.txt": "first file, Привет мир 你好 🙂", "b.txt": "second file"}
    reasons = {r["path"].rsplit("/", 1)[-1]: r["reason"] for r in read_output(out / "quarantine")}
    assert reasons == {"bad.txt": "undecodable_text", "empty.txt": "empty_text"}
    check_balanced(out, read=4, written=2, quarantined=2)


def test_delta_input_reads_only_the_current_version(tmp_path, run_cli):
    from deltalake import write_deltalake

    table = tmp_path / "delta_in"
    write_deltalake(str(table), pa.table({"id": [1, 2], "text": ["old one", "old two"]}))
    write_deltalake(str(table), pa.table({"id": [3, 4, 5], "text": ["new a", "new b", None]}), mode="overwrite")
    out = tmp_path / "out"
    assert run_cli("run", f"--input={table}", f"--output={out}", "--set", "input.id_column=id") == 0
    assert sorted(r["id"] for r in read_output(out / "data")) == [3, 4]
    check_balanced(out, read=3, written=2, quarantined=1)


@pytest.mark.parametrize(
    ("setup", "args", "code"),
    [
        ("missing", [], 3),
        ("mixed", [], 3),
        ("no_text_column", ["--set", "input.text_column=body"], 3),
        ("int_text", [], 3),
        ("empty_dir", [], 3),
        ("good", ["--set", "input.nope=1"], 2),
        ("good", ["--stages", "nope"], 2),
        ("good", ["--input-format", "csv"], 2),
    ],
)
def test_bad_input_exit_codes(tmp_path, run_cli, capsys, setup, args, code):
    src = tmp_path / "in"
    if setup == "mixed":
        src.mkdir()
        write_jsonl(src / "a.jsonl", GOOD)
        (src / "b.csv").write_text("a,b\n")
    elif setup in ("no_text_column", "good"):
        src = write_jsonl(tmp_path / "in.jsonl", GOOD)
    elif setup == "int_text":
        src = tmp_path / "in.parquet"
        pq.write_table(pa.table({"text": [1, 2]}), src)
    elif setup == "empty_dir":
        src.mkdir()
    assert run_cli("run", f"--input={src}", f"--output={tmp_path / 'out'}", *args) == code
    err = capsys.readouterr().err.strip().splitlines()
    assert "error:" in err[-1] and "Traceback" not in "\n".join(err)
    assert not (tmp_path / "out" / "data").exists()


def test_duplicate_ids_are_an_input_error_unless_quarantined(tmp_path, run_cli, capsys):
    records = GOOD + [{"id": 1, "text": "another text with id one"}, {"id": 1, "text": "and a third"}]
    src = write_jsonl(tmp_path / "in.jsonl", records)
    out = tmp_path / "out"
    assert run_cli("run", f"--input={src}", f"--output={out}", "--set", "input.id_column=id") == 3
    assert "2 rows repeat an id" in capsys.readouterr().err
    shutil.rmtree(out, ignore_errors=True)
    args = ["--set", "input.id_column=id", "--set", "input.duplicate_ids=quarantine"]
    assert run_cli("run", f"--input={src}", f"--output={out}", *args) == 0
    kept = [r for r in read_output(out / "data") if r["id"] == 1]
    copies = [r for r in read_output(out / "quarantine") if r["reason"] == "duplicate_id"]
    assert len(kept) == 1 and len(copies) == 2
    assert {kept[0]["text"]} | {c["text"] for c in copies} == {r["text"] for r in records if r["id"] == 1}
    check_balanced(out, read=7, written=5, quarantined=2)
