"""`run --index=INDEX` (index/incremental.py, index/store.py): batches checked against everything kept before.

NearDup against the index must equal `run --protect` with the index's documents as the held-out set (the oracle);
ExactSubstr against the index must equal the brute-force keep_first over the index's texts, then the batch in id
order, restricted to the batch (`tests/exactsubstr/exact_oracle.py`). Plus the index's own promises: one commit
per run, no document added twice, read-only, a conflicting commit refused (exit 2), the format version checked.
"""

from __future__ import annotations

import random
from collections import defaultdict

import pytest

from dedup_spark.errors import IndexConflictError, UsageError
from dedup_spark.index.store import DOCS_SCHEMA, FINGERPRINT_KEY, FORMAT_KEY, Index
from tests.exactsubstr.exact_oracle import oracle_spans
from tests.helpers import changed_words, random_doc, read_output, report, write_jsonl


def batches(seed: int = 11) -> list[dict[str, str]]:
    """Three batches: each has its own documents, near copies inside itself, and near or exact copies of
    documents of the batches before it (some of them removed there, so not in the index)."""
    rng = random.Random(seed)
    a = {f"a{i:02d}": random_doc(rng, 200) for i in range(12)}
    a["a90"] = changed_words(a["a00"], rng, 1)  # a near copy inside batch A: removed there
    b = {f"b{i:02d}": random_doc(rng, 200) for i in range(10)}
    b["b50"] = changed_words(a["a01"], rng, 1)  # near copies of the index
    b["b51"] = changed_words(a["a01"], rng, 2)
    b["b52"] = a["a02"].upper()  # exact after normalisation
    b["b53"] = changed_words(a["a90"], rng, 1)  # near a90, which A removed, and a00, which A kept
    b["b54"] = changed_words(b["b00"], rng, 1)  # a near copy inside the batch
    b["b55"] = changed_words(a["a03"], rng, 100)  # far below the threshold
    c = {f"c{i:02d}": random_doc(rng, 200) for i in range(8)}
    c["c50"] = changed_words(b["b01"], rng, 1)
    c["c51"] = changed_words(a["a04"], rng, 1)
    c["c52"] = changed_words(b["b54"], rng, 1)  # near b54, which B removed, and b00, which B kept
    return [a, b, c]


def _run(run_cli, tmp_path, name: str, docs: dict[str, str], *extra: str, stages: str = "neardup") -> tuple[int, str]:
    path = tmp_path / f"{name}.jsonl"
    if not path.exists():
        write_jsonl(path, [{"id": k, "text": v} for k, v in sorted(docs.items())])
    out = tmp_path / f"out-{name}-{len(list(tmp_path.glob(f'out-{name}*')))}"
    code = run_cli(
        "run", f"--input={path}", f"--output={out}", f"--stages={stages}", "--set", "input.id_column=id", *extra
    )
    return code, out


def _index_rows(index, version=None) -> dict[str, dict]:
    import pyarrow.parquet as pq
    from deltalake import DeltaTable

    uris = DeltaTable(str(index / "docs"), version=version).file_uris()
    return {r["id"]: r for r in pq.read_table(uris).to_pylist()} if uris else {}


def _removed(out) -> dict[str, tuple[str, str]]:
    """id -> (reason, cluster id), with the index's and --protect's naming made one."""
    same = {"near_duplicate_of_index": "held_out", "contamination": "held_out"}
    return {
        r["id"]: (same.get(r["reason"], r["reason"]), r["cluster_id"].split(":", 1)[-1])
        for r in read_output(out / "removed")
    }


def test_neardup_against_the_index_equals_protect(run_cli, tmp_path):
    a, b, _ = batches()
    index = tmp_path / "index"
    code, out_a = _run(run_cli, tmp_path, "a", a, f"--index={index}")
    assert code == 0
    assert _removed(out_a) == {"a90": ("near_duplicate", "a00")}
    stored = _index_rows(index)
    assert set(stored) == set(a) - {"a90"} and {r["batch"] for r in stored.values()} == {0}
    assert stored["a05"]["text"] == a["a05"] and stored["a05"]["bytes"] == len(a["a05"].encode())
    first = report(out_a)["index"]
    assert (first["version_before"], first["version_after"], first["documents_after"]) == (-1, 0, len(stored))

    code, out_b = _run(run_cli, tmp_path, "b", b, f"--index={index}")
    assert code == 0
    write_jsonl(tmp_path / "held.jsonl", [{"id": k, "text": r["text"]} for k, r in sorted(stored.items())])
    code, oracle = _run(run_cli, tmp_path, "b", b, f"--protect={tmp_path / 'held.jsonl'}")
    assert code == 0
    got = _removed(out_b)
    assert got == _removed(oracle)
    assert got["b50"] == ("held_out", "a01") and got["b52"] == ("held_out", "a02") and got["b53"][1] == "a00"
    assert got["b54"] == ("near_duplicate", "b00") and "b55" not in got
    raw = {r["id"]: r for r in read_output(out_b / "removed")}
    assert raw["b50"]["reason"] == "near_duplicate_of_index" and raw["b50"]["cluster_id"] == "index:a01"

    after = _index_rows(index)
    assert set(after) == set(stored) | (set(b) - set(got))
    assert {after[k]["batch"] for k in set(b) - set(got)} == {1}
    run = report(out_b)
    entry = run["index"]
    assert (entry["version_before"], entry["version_after"], entry["checked_against_version"]) == (0, 1, 0)
    assert entry["documents_before"] == len(stored) and entry["documents_after"] == len(after)
    assert entry["documents_added"] == len(set(b) - set(got)) and entry["size_on_disk_bytes"] > 0
    assert entry["size_on_disk_per_text_byte"] == round(entry["size_on_disk_bytes"] / entry["text_bytes_after"], 3)
    assert entry["near_duplicates_of_index"] == 4 and entry["index_ids_matched"] == ["a00", "a01", "a02"]
    assert run["removed_by_reason"] == {"near_duplicate_of_index": 4, "near_duplicate": 1}
    assert run["accounting"]["balanced"]
    page = (out_b / "report.html").read_text()
    assert '<section id="index">' in page and "<code>a01</code>" in page and "index documents matched" in page
    neardup = next(s for s in run["stages"] if s["name"] == "neardup")["details"]
    assert neardup["index_signatures_reused"] == len(stored)  # the index was not hashed again
    assert neardup["protected_documents"] == len(stored)

    # The same batch again: checked against the version before its own commit, nothing added twice.
    code, again = _run(run_cli, tmp_path, "b", b, f"--index={index}")
    assert code == 0 and _removed(again) == got
    assert report(again)["index"]["already_added_at_version"] == 1
    assert report(again)["index"]["version_after"] == 1 and _index_rows(index) == after


def _append(spark, index: Index, ids: list[str], fingerprint: str) -> int:
    rows = [(i, index.version + 1, i * 3, 3 * len(i), i, i, 1, [1, 2], [(0, 1, 3, b"d" * 16, [7])]) for i in ids]
    frame = spark.createDataFrame(rows, DOCS_SCHEMA)
    return index.append(frame, fingerprint, {"documents_added": len(ids), "text_bytes_added": 0})


def test_one_commit_per_run_and_a_conflict_is_refused(spark, tmp_path):
    path = str(tmp_path / "index")
    assert Index.open(spark, path).version == -1
    assert _append(spark, Index.open(spark, path), ["a", "b"], "fp-a") == 0
    one, two = Index.open(spark, path), Index.open(spark, path)  # two runs read version 0
    assert _append(spark, one, ["c"], "fp-c") == 1
    with pytest.raises(IndexConflictError, match="run the same command again"):
        _append(spark, two, ["d"], "fp-d")
    latest = Index.open(spark, path)
    assert latest.version == 1 and latest.documents == 3 and latest.added_by("fp-c") == 1
    assert latest.added_by("fp-d") is None
    assert sorted(r["id"] for r in latest.docs(spark).collect()) == ["a", "b", "c"]
    assert sorted(r["id"] for r in Index.open(spark, path, version=0).docs(spark).collect()) == ["a", "b"]
    # Two first runs: the second one's create fails the same way.
    with pytest.raises(IndexConflictError):
        _append(spark, Index(path, -1), ["e"], "fp-e")


def test_format_version_and_foreign_folders_are_checked(spark, tmp_path):
    import pyarrow as pa
    from deltalake import CommitProperties, Schema
    from deltalake.transaction import create_table_with_add_actions

    other = tmp_path / "other"
    schema = Schema.from_arrow(pa.schema([("id", pa.string())]))
    metadata = {FORMAT_KEY: "99", FINGERPRINT_KEY: "x"}
    create_table_with_add_actions(str(other / "docs"), schema, [], commit_properties=CommitProperties(metadata))
    with pytest.raises(UsageError, match="index format"):
        Index.open(spark, str(other))
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "file.txt").write_text("x")
    with pytest.raises(UsageError, match="holds no dedup-spark index"):
        Index.open(spark, str(foreign))


def test_index_create_then_run_and_errors(spark, run_cli, tmp_path, capsys):
    a, b, _ = batches()
    corpus = write_jsonl(tmp_path / "corpus.jsonl", [{"id": k, "text": v} for k, v in sorted(a.items())])
    index = tmp_path / "index"
    assert run_cli("index", "create", f"--input={corpus}", f"--index={index}", "--set", "input.id_column=id") == 0
    assert set(_index_rows(index)) == set(a)  # as published: not deduplicated
    assert not (index / "_work").exists()
    assert run_cli("index", "create", f"--input={corpus}", f"--index={index}", "--set", "input.id_column=id") == 3
    assert "holds an index already" in capsys.readouterr().err

    code, _ = _run(run_cli, tmp_path, "b", b, f"--index={tmp_path / 'none'}", "--index-mode=read-only")
    assert code == 3 and "read-only does not create one" in capsys.readouterr().err
    code, _ = _run(run_cli, tmp_path, "b", b, f"--index={index}", "--set", "output.mode=annotate")
    assert code == 2 and "--index-mode=read-only" in capsys.readouterr().err
    clash = {"a05": "entirely different words " * 10}  # an id the index holds, with a new text
    code, out = _run(run_cli, tmp_path, "clash", clash, f"--index={index}")
    assert code == 3 and "ids the index holds already: a05 (batch 0)" in capsys.readouterr().err
    assert Index.open(spark, str(index)).version == 0


def test_a_concurrent_commit_fails_the_run_with_exit_2_and_a_rerun_succeeds(
    spark, run_cli, tmp_path, monkeypatch, capsys
):
    """Another run commits between this run's read of the index and its commit: exit 2, nothing added; the same
    command again (with --overwrite) is checked against the new version and adds the batch."""
    from dedup_spark.index import incremental

    index = tmp_path / "index"
    _append(spark, Index.open(spark, str(index)), ["seed"], "fp-seed")
    opened = incremental.open_index

    def open_then_another_run_commits(session, config, identity):
        run = opened(session, config, identity)
        _append(spark, Index.open(spark, str(index)), ["other"], "fp-other")
        return run

    monkeypatch.setattr(incremental, "open_index", open_then_another_run_commits)
    batch = {"n1": "one new document " * 5, "n2": "another new document " * 5}
    code, out = _run(run_cli, tmp_path, "n", batch, f"--index={index}", stages="none")
    assert code == 2
    assert "changed while this run worked (it read version 0" in capsys.readouterr().err
    assert set(_index_rows(index)) == {"seed", "other"} and not list((index / "docs").glob("batch-2-*"))
    assert report(out)["status"] == "failed" and report(out)["index"]["version_before"] == 0

    monkeypatch.setattr(incremental, "open_index", opened)
    code = run_cli("run", f"--input={tmp_path / 'n.jsonl'}", f"--output={out}", f"--index={index}", "--overwrite",
                   "--stages=none", "--set", "input.id_column=id")  # fmt: skip
    assert code == 0
    assert set(_index_rows(index)) == {"seed", "other", "n1", "n2"} and report(out)["index"]["version_after"] == 2


def test_a_stopped_run_adds_nothing_until_it_finishes(spark, run_cli, tmp_path, capsys):
    index = tmp_path / "index"
    batch = {"s1": "some document text " * 5}
    code, _ = _run(run_cli, tmp_path, "s", batch, f"--index={index}", "--dry-run", stages="none")
    assert code == 0 and "version -1 (0 documents), mode update; adds the survivors" in capsys.readouterr().out
    code, out = _run(run_cli, tmp_path, "s", batch, f"--index={index}", "--stop-after=ingest", stages="none")
    assert code == 0 and Index.open(spark, str(index)).version == -1
    code = run_cli("run", f"--input={tmp_path / 's.jsonl'}", f"--output={out}", f"--index={index}", "--stages=none",
                   "--set", "input.id_column=id")  # fmt: skip
    assert code == 0 and set(_index_rows(index)) == {"s1"}
    assert next(s for s in report(out)["stages"] if s["name"] == "ingest")["reused"]


def _planted_batches(seed: int = 5) -> list[dict[str, str]]:
    """`batches()` with sentences (>= 50 bytes) shared across batches and inside them, for ExactSubstr."""
    rng = random.Random(seed)
    a, b, c = batches()
    sentence = {name: " ".join(f"s{name}{rng.randrange(10**6)}" for _ in range(12)) for name in "xyzuv"}
    a["a05"] += " " + sentence["x"]
    a["a06"] = sentence["x"] + " " + a["a06"]  # a repeat inside A: A's keep_first cuts it from a06
    b["b02"] += " " + sentence["x"] + " " + sentence["y"]  # x is in the index: cut from b02
    b["b03"] = sentence["y"] + " " + b["b03"]  # y is first in b02 (id order): cut from b03
    c["c01"] += " " + sentence["y"] + " " + sentence["z"]  # y is in the index (b02 kept it): cut
    c["c02"] = sentence["z"][: len(sentence["z"]) // 2] + " Жд中 " + c["c02"]  # half of z: shorter than k? not cut
    return [a, b, c]


@pytest.mark.slow
def test_batches_a_b_c_through_the_index_equal_the_oracles(run_cli, tmp_path):
    """Three batches one after another with both stages: each batch's NearDup removals equal `run --protect` with
    the index's documents, and its ExactSubstr spans equal the brute-force keep_first over the index's texts then
    the batch's NearDup survivors in id order. Batch C uses another NearDup seed: the index's stored signatures do
    not fit it and are not used (its oracle uses the same seed). Then a read-only run adds nothing."""
    from tests.helpers import read_output as rows_of

    k = 50
    index = tmp_path / "index"
    common = ("--set", f"exactsubstr.min_length={k}", "--set", "exactsubstr.min_remaining_chars=0")
    for number, batch in enumerate(_planted_batches()):
        name = "abc"[number]
        before = _index_rows(index) if (index / "docs").exists() else {}
        extra = (*common, "--set", "neardup.seed=2") if name == "c" else common
        code, out = _run(run_cli, tmp_path, name, batch, f"--index={index}", *extra, stages="neardup,exactsubstr")
        assert code == 0

        write_jsonl(tmp_path / f"held-{name}.jsonl", [{"id": i, "text": r["text"]} for i, r in sorted(before.items())])
        protect = [f"--protect={tmp_path / f'held-{name}.jsonl'}"] if before else []
        code, oracle = _run(run_cli, tmp_path, name, batch, *protect, *extra, stages="neardup")
        assert code == 0
        got = {i: r for i, r in _removed(out).items() if r[0] != "exact_substring"}
        assert got == _removed(oracle), name
        details = {s["name"]: s.get("details", {}) for s in report(out)["stages"]}
        reused = details["neardup"].get("index_signatures_reused", 0)
        assert reused == (len(before) if name == "b" else 0), name
        searched = details["exactsubstr"].get("index", {}).get("index_documents_searched")
        assert name == "a" or 0 < searched < len(before), (name, searched)  # stored super-k-mers were used

        survivors = sorted((i, t) for i, t in batch.items() if i not in got)
        index_texts = [r["text"] for _, r in sorted(before.items())]
        want = oracle_spans(index_texts + [t for _, t in survivors], k, "keep_first")[len(index_texts) :]
        spans: dict[str, list] = defaultdict(list)
        for r in rows_of(out / "exact" / "spans"):
            spans[r["doc_id"]].append((r["start"], r["end"]))
        assert {i: sorted(spans[i]) for i, _ in survivors} == dict(zip([i for i, _ in survivors], want, strict=True)), (
            name
        )
        if name != "a":
            assert any(want) and report(out)["index"]["bytes_shared_with_index"] > 0
        kept = {r["id"]: r["text"] for r in rows_of(out / "data")}
        assert {i: r["text"] for i, r in _index_rows(index).items() if r["batch"] == number} == kept

    everything = _index_rows(index)
    code, read_only = _run(run_cli, tmp_path, "r", {"r1": everything["b01"]["text"]}, f"--index={index}",
                           "--index-mode=read-only", *common, stages="neardup,exactsubstr")  # fmt: skip
    assert code == 0 and _removed(read_only) == {"r1": ("held_out", "b01")}
    assert report(read_only)["index"]["version_after"] == 2 and _index_rows(index) == everything


def _index_state(index) -> dict[str, tuple]:
    """What the index holds, per id, with the minimizer sets in order (their order is the aggregation's)."""
    return {
        i: (
            r["batch"],
            r["text"],
            r["text_hash"],
            r["norm_hash"],
            tuple(r["band_keys"]),
            tuple((s["start"], s["end"], s["minimizer"], s["digest"], tuple(s["keys"])) for s in r["superkmers"]),
        )
        for i, r in _index_rows(index).items()
    }


@pytest.mark.slow
def test_the_same_outputs_and_index_whatever_the_partitioning(run_cli, tmp_path):
    """Batches A then B through an index, both stages, split two ways: one task slot, one shard per KiB and
    ExactSubstr chunks of 4 windows (many chunks, cross-chunk merges), against four slots, each batch read from three
    files, default shards and chunks. Outputs and the index are the same row for row."""
    from tests.helpers import read_output as rows_of

    k = 50
    common = ("--stages=neardup,exactsubstr", "--set", "input.id_column=id", "--set", f"exactsubstr.min_length={k}",
              "--set", "exactsubstr.min_remaining_chars=0")  # fmt: skip
    layouts = {
        "fine": (
            "--set",
            "spark.task_slots=1",
            "--set",
            "ingest.shard_size=1024",
            "--set",
            f"exactsubstr.chunk_size={4 * k}",
            "--set",
            "neardup.local_candidates_max_band_keys=0",  # NearDup's distributed pairs, against one task's
        ),  # fmt: skip
        "coarse": ("--set", "spark.task_slots=4"),
    }
    seen, splits = {}, {"fine": [], "coarse": []}
    for layout, settings in layouts.items():
        index = tmp_path / f"index-{layout}"
        outputs = []
        for name, batch in zip("ab", _planted_batches()[:2], strict=True):
            records = [{"id": i, "text": t} for i, t in sorted(batch.items())]
            source = tmp_path / f"{layout}-{name}"
            source.mkdir()
            parts = 1 if layout == "fine" else 3
            for part in range(parts):
                write_jsonl(source / f"part-{part}.jsonl", records[part::parts])
            out = tmp_path / f"out-{layout}-{name}"
            assert run_cli("run", f"--input={source}", f"--output={out}", f"--index={index}", *common, *settings) == 0
            removed = sorted((r["id"], r["reason"], r["cluster_id"]) for r in rows_of(out / "removed"))
            kept = sorted((r["id"], r["text"]) for r in rows_of(out / "data"))
            spans = sorted((r["doc_id"], r["start"], r["end"]) for r in rows_of(out / "exact" / "spans"))
            outputs.append((removed, kept, spans, report(out)["removed_by_reason"]))
            stages = {s["name"]: s["details"] for s in report(out)["stages"]}
            splits[layout].append((stages["ingest"]["shards"], stages["exactsubstr"]["chunks"]))
        seen[layout] = (outputs, _index_state(index))
    assert seen["fine"] == seen["coarse"]
    (a, b), state = seen["fine"]
    assert b[0] and b[2] and any(reason == "near_duplicate_of_index" for _, reason, _ in b[0])  # not vacuous
    assert {row[0] for row in state.values()} == {0, 1}
    assert all(shards > 4 and chunks > 4 for shards, chunks in splits["fine"]), splits  # really split finely
    assert splits["fine"] != splits["coarse"], splits


def test_another_index_at_the_same_path_is_not_taken_for_the_one_a_stopped_run_read(run_cli, tmp_path):
    """The resume fingerprint holds the index's commit token: an index deleted and seeded again at the same path
    (version 0 again) makes a resumed run recompute its steps, and it is checked against the new index."""
    import shutil

    index = tmp_path / "index"
    first = write_jsonl(tmp_path / "first.jsonl", [{"id": "f1", "text": "words of the first index " * 8}])
    second = write_jsonl(tmp_path / "second.jsonl", [{"id": "s1", "text": "words of the second index " * 8}])
    seed = ("--set", "input.id_column=id")
    assert run_cli("index", "create", f"--input={first}", f"--index={index}", *seed) == 0
    batch = {"n1": "words of the second index " * 8, "n2": "a document of its own " * 8}
    code, out = _run(run_cli, tmp_path, "n", batch, f"--index={index}", "--stop-after=neardup")
    assert code == 0
    shutil.rmtree(index)
    assert run_cli("index", "create", f"--input={second}", f"--index={index}", *seed) == 0
    code = run_cli("run", f"--input={tmp_path / 'n.jsonl'}", f"--output={out}", f"--index={index}",
                   "--stages=neardup", *seed)  # fmt: skip
    assert code == 0
    assert not [s["name"] for s in report(out)["stages"] if s.get("reused")]
    assert _removed(out) == {"n1": ("held_out", "s1")}
