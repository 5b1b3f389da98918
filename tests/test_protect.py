"""`run --protect=PATH`: held-out documents are never removed or written; input documents that cluster with them
are removed as `contamination`. Checked against a brute-force oracle (exact Jaccard over all pairs, components)."""

from __future__ import annotations

import itertools
import random

import pytest

from dedup_spark.neardup.normalize import normalize
from dedup_spark.neardup.shingles import word_shingles
from tests.helpers import changed_words, random_doc, read_output, report, write_jsonl


def _corpora() -> tuple[dict[str, str], dict[str, str]]:
    rng = random.Random(7)
    held_out = {f"e{i:02d}": random_doc(rng, 100) for i in range(10)}
    train = {f"b{i:02d}": random_doc(rng, 100) for i in range(40)}
    for i in range(5):
        train[f"t{i:02d}"] = changed_words(held_out[f"e{i:02d}"], rng, 1)  # near copies of held-out documents
    train["t00x"] = changed_words(held_out["e00"], rng, 2)  # a second near copy of e00
    train["x05"] = held_out["e05"].upper()  # an exact copy after normalisation
    train["far06"] = changed_words(held_out["e06"], rng, 40)  # far below the threshold
    for i in range(5):
        train[f"n{i:02d}"] = changed_words(train[f"b{i:02d}"], rng, 1)  # near copies inside the train set
    return train, held_out


def _oracle(train: dict[str, str], held_out: dict[str, str]) -> dict[str, str]:
    """Removed train id -> reason: union-find over pairs with exact Jaccard > 0.8 among all documents."""
    texts = {**{f"protected-1:{k}": v for k, v in held_out.items()}, **train}
    sets = {k: set(word_shingles(normalize(t), 5)) for k, t in texts.items()}
    parent = {k: k for k in texts}

    def root(k: str) -> str:
        while parent[k] != k:
            k = parent[k]
        return k

    for a, b in itertools.combinations(sorted(texts), 2):
        if len(sets[a] & sets[b]) / len(sets[a] | sets[b]) > 0.8:
            parent[root(a)] = root(b)
    components: dict[str, list[str]] = {}
    for k in texts:
        components.setdefault(root(k), []).append(k)
    removed = {}
    for members in components.values():
        if len(members) < 2:
            continue
        protected = [m for m in members if m.startswith("protected-")]
        for m in members:
            if m.startswith("protected-"):
                continue
            if protected:
                removed[m] = "contamination"
            elif m != min(members):
                removed[m] = "near_duplicate"
    return removed


@pytest.mark.parametrize("local_keys", [0, 4_000_000], ids=["distributed-pairs", "pairs-in-one-task"])
def test_protect_against_brute_force_oracle(run_cli, tmp_path, local_keys):
    train, held_out = _corpora()
    expected = _oracle(train, held_out)
    assert sorted(k for k, r in expected.items() if r == "contamination") == ["t00", "t00x", "t01", "t02", "t03"] + [
        "t04",
        "x05",
    ]
    assert sorted(k for k, r in expected.items() if r == "near_duplicate") == [f"n{i:02d}" for i in range(5)]
    train_path = write_jsonl(tmp_path / "train.jsonl", [{"id": k, "text": v} for k, v in train.items()])
    eval_path = write_jsonl(tmp_path / "eval.jsonl", [{"id": k, "text": v} for k, v in held_out.items()])
    out = tmp_path / "out"
    code = run_cli(
        "run",
        f"--input={train_path}",
        f"--protect={eval_path}",
        f"--output={out}",
        "--stages=neardup",
        "--set",
        "input.id_column=id",
        "--set",
        f"neardup.local_candidates_max_band_keys={local_keys}",
    )
    assert code == 0

    removed = {r["id"]: r for r in read_output(out / "removed")}
    assert {k: r["reason"] for k, r in removed.items()} == expected
    assert removed["t00x"]["cluster_id"] == "protected-1:e00" and removed["x05"]["cluster_id"] == "protected-1:e05"
    data = {r["id"] for r in read_output(out / "data")}
    assert data == set(train) - set(expected)  # no held-out document is ever written
    clusters = {r["doc_id"]: r for r in read_output(out / "neardup" / "clusters")}
    assert clusters["protected-1:e00"]["kept"] and clusters["t00"]["cluster_id"] == "protected-1:e00"

    run = report(out)
    assert run["accounting"]["balanced"] and run["accounting"]["rows_read"] == len(train)
    assert run["removed_by_reason"] == {"contamination": 7, "near_duplicate": 5}
    stages = {s["name"]: s for s in run["stages"]}
    assert stages["ingest"]["details"]["protected"] == [
        {"path": str(eval_path), "rows_read": 10, "documents": 10, "quarantined_by_reason": {}}
    ]
    assert stages["neardup"]["details"]["protected_documents"] == 10
    assert stages["neardup"]["details"]["contamination_removed"] == 7


@pytest.mark.parametrize("local_edges", [0, 1_000_000], ids=["distributed-clusters", "clusters-in-one-task"])
def test_every_held_out_document_of_a_cluster_is_kept(run_cli, tmp_path, local_edges):
    """Under the components rule a cluster can hold two held-out documents (joined through an input document):
    both are kept, not only the first in keep order, and only the input document is removed."""
    rng = random.Random(3)
    base = random_doc(rng, 100)
    held_out = {"e1": changed_words(base, rng, 1), "e2": changed_words(base, rng, 1), "e3": random_doc(rng, 100)}
    train = {"t": base, "u": random_doc(rng, 100)}
    train_path = write_jsonl(tmp_path / "train.jsonl", [{"id": k, "text": v} for k, v in train.items()])
    eval_path = write_jsonl(tmp_path / "eval.jsonl", [{"id": k, "text": v} for k, v in held_out.items()])
    out = tmp_path / "out"
    settings = ("neardup.cluster_rule=components", f"neardup.local_components_max_edges={local_edges}")
    code = run_cli(
        "run", f"--input={train_path}", f"--protect={eval_path}", f"--output={out}", "--stages=neardup",
        "--set", "input.id_column=id", "--set", settings[0], "--set", settings[1],
    )  # fmt: skip
    assert code == 0
    clusters = {
        r["doc_id"]: (r["cluster_id"], r["cluster_size"], r["kept"]) for r in read_output(out / "neardup" / "clusters")
    }
    first, second = "protected-1:e1", "protected-1:e2"
    assert clusters == {first: (first, 3, True), second: (first, 3, True), "t": (first, 3, False)}
    assert {r["id"]: r["reason"] for r in read_output(out / "removed")} == {"t": "contamination"}
    assert {r["id"] for r in read_output(out / "data")} == {"u"}


def test_protect_errors(run_cli, tmp_path, capsys):
    train_path = write_jsonl(tmp_path / "train.jsonl", [{"id": "protected-1:a", "text": "some words " * 10}])
    eval_path = write_jsonl(tmp_path / "eval.jsonl", [{"id": "a", "text": "other words " * 10}])
    common = ("run", f"--input={train_path}", "--set", "input.id_column=id")

    assert run_cli(*common, f"--protect={train_path}", f"--output={tmp_path / 'o1'}", "--stages=neardup") == 2
    assert "must not be the --input" in capsys.readouterr().err
    assert run_cli(*common, f"--protect={eval_path}", f"--output={tmp_path / 'o2'}", "--stages=exactsubstr") == 2
    assert "needs the neardup stage" in capsys.readouterr().err
    assert run_cli(*common, f"--protect={eval_path}", f"--output={tmp_path / 'o3'}", "--stages=neardup") == 3
    assert "start with 'protected-'" in capsys.readouterr().err
    missing = tmp_path / "missing.jsonl"
    assert run_cli(*common, f"--protect={missing}", f"--output={tmp_path / 'o4'}", "--stages=neardup") == 3
    assert "--protect=" in capsys.readouterr().err
