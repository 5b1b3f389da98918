"""class_archive.py: where the driver JVM's class archive lives, the options given to the JVM, and publishing only
what a JVM finished writing; end to end (slow): the command line writes it once, maps it next time, and starts
without a damaged one."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dedup_spark import class_archive, session

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "jvm"
    monkeypatch.setenv(class_archive.CACHE_ENV, str(folder))
    monkeypatch.delenv("PYSPARK_SUBMIT_ARGS", raising=False)
    monkeypatch.setenv("SPARK_CONF_DIR", str(tmp_path / "conf"))
    return folder


@pytest.mark.parametrize("value", ["off", "OFF", "0", "", "false"])
def test_turned_off(monkeypatch, value):
    monkeypatch.setenv(class_archive.CACHE_ENV, value)
    assert class_archive.folder() is None
    assert class_archive.plan() is None


def test_default_folder_is_the_user_cache(monkeypatch, tmp_path):
    monkeypatch.delenv(class_archive.CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert class_archive.folder() == str(tmp_path / "dedup-spark" / "jvm")


def test_first_run_writes_a_file_of_its_own_then_runs_map_the_archive(cache):
    first = class_archive.plan()
    key = class_archive.environment_key()
    assert first.archive == str(cache / f"{key}.jsa")
    assert first.partial == f"{first.archive}.{os.getpid()}.partial"
    assert first.options.split() == [f"-XX:ArchiveClassesAtExit={first.partial}", *class_archive.QUIET.split()]
    Path(first.archive).write_bytes(b"x")
    later = class_archive.plan()
    assert later.partial is None
    assert later.options.split()[0] == f"-XX:SharedArchiveFile={first.archive}"


def test_the_users_own_jvm_defaults_win(cache, monkeypatch, tmp_path):
    monkeypatch.setenv("PYSPARK_SUBMIT_ARGS", "--conf spark.driver.defaultJavaOptions=-Dx=1 pyspark-shell")
    assert class_archive.plan() is None
    monkeypatch.delenv("PYSPARK_SUBMIT_ARGS")
    assert class_archive.plan() is not None
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "spark-defaults.conf").write_text("spark.driver.defaultJavaOptions  -Dx=1\n")
    assert class_archive.plan() is None


def test_a_folder_spark_would_split_is_not_used(monkeypatch, tmp_path):
    monkeypatch.setenv(class_archive.CACHE_ENV, str(tmp_path / "with space"))
    assert class_archive.plan() is None


def test_submit_args_put_ours_first_and_keep_the_users(monkeypatch):
    options = "-XX:SharedArchiveFile=/c/k.jsa -Xlog:cds=off"
    monkeypatch.setenv("PYSPARK_SUBMIT_ARGS", "--driver-memory 8g pyspark-shell")
    words = shlex.split(class_archive.submit_args(options))
    assert words == ["--conf", f"spark.driver.defaultJavaOptions={options}", "--driver-memory", "8g", "pyspark-shell"]
    monkeypatch.delenv("PYSPARK_SUBMIT_ARGS")
    assert shlex.split(class_archive.submit_args(options))[-1] == "pyspark-shell"


def test_publish_renames_only_a_written_file_and_prunes(cache):
    cache.mkdir()
    archive = cache / "new.jsa"
    assert not class_archive.publish(str(cache / "missing.partial"), str(archive))
    (cache / "empty.partial").write_bytes(b"")
    assert not class_archive.publish(str(cache / "empty.partial"), str(archive))
    (cache / "empty.partial").unlink()  # the caller's to discard (session.finish_class_archive)
    old = time.time() - 2 * class_archive.PARTIAL_MAX_AGE_SECONDS
    for age, name in enumerate(["a.jsa", "b.jsa", "c.jsa", "stale.partial"], start=1):
        (cache / name).write_bytes(b"x")
        os.utime(cache / name, (old - age, old - age))
    (cache / "running.partial").write_bytes(b"x")  # another run's, still being written
    (cache / "mine.partial").write_bytes(b"archive")
    assert class_archive.publish(str(cache / "mine.partial"), str(archive))
    assert archive.read_bytes() == b"archive"
    # The newest ARCHIVES_KEPT archives stay; "c" was the oldest.
    assert sorted(p.name for p in cache.iterdir()) == ["a.jsa", "b.jsa", "new.jsa", "running.partial"]


def _cli(args: list[str], cache_folder: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "SPARK_LOCAL_IP": "127.0.0.1"}
    env[class_archive.CACHE_ENV] = str(cache_folder)
    env.pop("PYSPARK_SUBMIT_ARGS", None)
    command = [sys.executable, "-m", "dedup_spark", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO, timeout=600)


JVM_ARGUMENTS = """
from dedup_spark import session
spark = session.get_or_create_session(own_driver_options=True)
jvm = spark.sparkContext._jvm
print(list(jvm.java.lang.management.ManagementFactory.getRuntimeMXBean().getInputArguments()))
"""


@pytest.mark.slow
def test_the_command_line_writes_the_archive_once_then_maps_it(tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    words = [f"w{i}" for i in range(300)]
    docs = [{"id": str(i), "text": " ".join(words[i : i + 60])} for i in range(0, 120, 3)]
    corpus.write_text("".join(json.dumps(d) + "\n" for d in docs))
    folder = tmp_path / "jvm"

    def run(name: str) -> subprocess.CompletedProcess:
        output = f"--output={tmp_path / name}"
        result = _cli(["run", f"--input={corpus}", output, "--set", "input.id_column=id"], folder)
        assert result.returncode == 0, result.stderr[-3000:]
        return result

    # A run that fails writes no archive: its JVM is killed, not left to write one as it exits.
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"id": "1", "body": "no text column"}) + "\n")
    failed = _cli(["run", f"--input={bad}", f"--output={tmp_path / 'bad'}"], folder)
    assert failed.returncode == 3 and "text" in failed.stderr, failed.stderr[-3000:]
    time.sleep(2)
    assert not folder.exists() or not list(folder.iterdir())

    first = run("first")
    assert "class archive saved" in first.stderr
    archives = list(folder.iterdir())
    assert [p.suffix for p in archives] == [".jsa"] and archives[0].stat().st_size > 1_000_000
    second = run("second")
    assert "class archive" not in second.stderr
    assert first.stdout.splitlines()[0] == second.stdout.splitlines()[0]  # the summary: rows in, out, removed

    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "SPARK_LOCAL_IP": "127.0.0.1"}
    env[class_archive.CACHE_ENV] = str(folder)
    env.pop("PYSPARK_SUBMIT_ARGS", None)
    probe = subprocess.run([sys.executable, "-c", JVM_ARGUMENTS], capture_output=True, text=True, env=env, cwd=REPO)
    assert f"-XX:SharedArchiveFile={archives[0]}" in probe.stdout, probe.stderr[-3000:]
    assert session.OWN_JVM_OPTIONS in probe.stdout
    # Without the archive the JVM still gets our options; the user's own default options replace all of ours.
    env[class_archive.CACHE_ENV] = "off"
    probe = subprocess.run([sys.executable, "-c", JVM_ARGUMENTS], capture_output=True, text=True, env=env, cwd=REPO)
    assert session.OWN_JVM_OPTIONS in probe.stdout and "SharedArchiveFile" not in probe.stdout, probe.stderr[-3000:]
    env["PYSPARK_SUBMIT_ARGS"] = "--conf spark.driver.defaultJavaOptions=-Dmine=1 pyspark-shell"
    probe = subprocess.run([sys.executable, "-c", JVM_ARGUMENTS], capture_output=True, text=True, env=env, cwd=REPO)
    assert "-Dmine=1" in probe.stdout and session.OWN_JVM_OPTIONS not in probe.stdout, probe.stderr[-3000:]
    env.pop("PYSPARK_SUBMIT_ARGS")

    # A damaged archive (a truncated file makes the JVM crash as it maps it): deleted, the run starts without it.
    data = archives[0].read_bytes()
    archives[0].chmod(0o644)
    archives[0].write_bytes(data[: len(data) // 3])
    damaged = run("damaged")
    assert not archives[0].exists()
    assert damaged.stdout.splitlines()[0] == first.stdout.splitlines()[0]
