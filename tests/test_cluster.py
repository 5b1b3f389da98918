"""The job on a real Spark standalone cluster (issue 5): a master and two workers (1 core, 2g each) on 127.0.0.1
from the pip pyspark, the job submitted with `spark-submit jobs/run_dedup.py` and the package from
`scripts/package.sh` shipped with `--py-files`, as the README tells users.

- the executors import dedup_spark from the shipped package, and could not import it without it;
- the output (every table, row for row, and the report's counts) equals a local-mode run of the same command;
- a worker killed with SIGKILL (daemon and executor JVM) while tasks run on it changes nothing: Spark retries
  the lost tasks on the other worker and the output equals the undisturbed run.

The daemons are always stopped by PID afterwards (tests/cluster.py). Run:
`SPARK_LOCAL_IP=127.0.0.1 pytest -m cluster tests/test_cluster.py` (`.ci/run` does).
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from tests.cluster import REPO, Daemon, Proc, StandaloneCluster, alive, started, tail, wait_for_line
from tests.conftest import DEMO_CORPUS
from tests.helpers import read_output, report

pytestmark = pytest.mark.cluster

# The demo corpus in 1 MB shards, so stages have several tasks to spread over (and lose on) two executors.
JOB_ARGS = (
    "run",
    f"--input={DEMO_CORPUS}",
    "--config=conf/default.yaml",
    "--set",
    "input.id_column=id",
    "--set",
    "ingest.shard_size=1MB",
)
TABLES = ("data", "removed", "quarantine", "neardup/clusters", "exact/spans")
JOB_TIMEOUT = 600
KILL_ATTEMPTS = 3  # runs of the killed-worker test before it gives up on landing a kill mid-task


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with started(StandaloneCluster(tmp_path_factory.mktemp("standalone"))) as standalone:
        yield standalone


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> Path:
    """The zip users ship with --py-files, built by scripts/package.sh; it must hold every module of the package."""
    dist = tmp_path_factory.mktemp("dist")
    env = {**os.environ, "PYTHON": sys.executable}
    result = subprocess.run(
        ["bash", "scripts/package.sh", str(dist)], cwd=REPO, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, f"scripts/package.sh failed:\n{result.stdout}\n{result.stderr}"
    built = sorted(dist.iterdir())
    version = importlib.metadata.version("dedup-spark")
    assert [p.name for p in built] == [f"dedup_spark-{version}-py3-none-any.whl", f"dedup_spark-{version}.zip"], built
    assert result.stdout.split() == [str(p) for p in built], result.stdout
    zipped = built[1]
    assert zipped.read_bytes() == built[0].read_bytes()
    shipped = {n for n in zipfile.ZipFile(zipped).namelist() if n.endswith(".py")}
    expected = {p.relative_to(REPO).as_posix() for p in (REPO / "dedup_spark").rglob("*.py")}
    assert shipped == expected, f"packaged modules differ from dedup_spark/: {sorted(shipped ^ expected)}"
    return zipped


@pytest.fixture(scope="module")
def local_output(tmp_path_factory) -> Path:
    """The same command in local mode (`python -m dedup_spark run`): the reference output."""
    out = tmp_path_factory.mktemp("local") / "out"
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "SPARK_LOCAL_IP": "127.0.0.1"}
    env.pop("PYSPARK_SUBMIT_ARGS", None)
    result = subprocess.run(
        [sys.executable, "-m", "dedup_spark", *JOB_ARGS, f"--output={out}"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=JOB_TIMEOUT,
    )
    assert result.returncode == 0, f"local-mode run failed:\n{result.stderr[-3000:]}"
    return out


@pytest.fixture(scope="module")
def cluster_output(cluster, package, tmp_path_factory) -> Path:
    """The job submitted to the cluster, undisturbed."""
    work = tmp_path_factory.mktemp("cluster-run")
    out, log = work / "out", work / "spark-submit.log"
    process = cluster.submit(cluster.submit_command(package, "jobs/run_dedup.py", [*JOB_ARGS, f"--output={out}"]), log)
    code = cluster.wait(process, log, JOB_TIMEOUT)
    assert code == 0, f"spark-submit exited {code}:\n{tail(log, 80)}\n{cluster.logs()}"
    assert report(out)["spark"]["master"] == cluster.master_url, report(out)["spark"]
    assert "balanced" in log.read_text(errors="replace")
    return out


def snapshot(out: Path) -> dict[str, list[str]]:
    """Every output table as sorted JSON rows, plus the report's counts (timings and paths left out)."""
    tables = {
        name: sorted(json.dumps(row, sort_keys=True, default=str) for row in read_output(out / name)) for name in TABLES
    }
    run = report(out)
    for key in ("accounting", "removed_by_reason", "quarantine_by_reason"):
        tables[f"report.{key}"] = [json.dumps(run[key], sort_keys=True)]
    tables["report.stages"] = [json.dumps(_stable(stage), sort_keys=True) for stage in run["stages"]]
    return tables


def _stable(value):
    """A report entry without what depends on timing or on how the work was split into tasks: seconds, and the
    files and bytes each step wrote (its `steps` keep their names and rows)."""
    if isinstance(value, dict):
        kept = {k: _stable(v) for k, v in value.items() if k != "seconds"}
        if "steps" in kept:
            kept["steps"] = [{"step": step["step"], "rows": step["rows"]} for step in kept["steps"]]
        return kept
    if isinstance(value, list):
        return [_stable(v) for v in value]
    return value


def assert_same_output(actual: Path, expected: Path, label: str) -> None:
    got, want = snapshot(actual), snapshot(expected)
    for name in want:
        if got[name] != want[name]:
            extra, missing = sorted(set(got[name]) - set(want[name])), sorted(set(want[name]) - set(got[name]))
            pytest.fail(
                f"{label}: {name} differs ({len(got[name])} rows vs {len(want[name])}); {len(extra)} rows only in "
                f"{label}, e.g. {[r[:300] for r in extra[:2]]}; {len(missing)} missing, e.g. "
                f"{[r[:300] for r in missing[:2]]}"
            )


def test_executors_import_the_shipped_package(cluster, package, tmp_path):
    """A probe job (tests/cluster.py) reports, from every task, where dedup_spark came from on the executor."""
    log = tmp_path / "probe.log"
    process = cluster.submit(cluster.submit_command(package, "tests/cluster.py", []), log)
    assert cluster.wait(process, log, JOB_TIMEOUT) == 0, tail(log, 80)
    # raw_decode: the job's stdout and Spark's stderr share the log, and a log line can land before the newline.
    probes = [line[6:] for line in log.read_text().splitlines() if line.startswith("PROBE ")]
    rows = [json.JSONDecoder().raw_decode(probe)[0] for probe in probes]
    assert len(rows) == 8, tail(log, 80)
    assert {r["executor"] for r in rows} == {"0", "1"}, rows  # both workers' executors ran tasks
    for row in rows:
        assert f"/{package.name}/dedup_spark/__init__.py" in row["file"], row
        assert not row["file"].startswith(str(REPO)), row
        assert row["found_without_package"] is False, row  # a broken --py-files would fail, not fall back
        assert row["editable_modules"] == "", row
        assert row["version"] == sys.version and row["python"] != sys.executable, row


def test_cluster_output_equals_local_mode(cluster_output, local_output):
    acc = report(local_output)["accounting"]
    # Not two empty outputs: the demo corpus has 1,272 rows, 80 planted copies and a repeated footer.
    assert acc["rows_read"] == 1272 and acc["rows_removed"] == 80 and acc["balanced"], acc
    assert len(read_output(local_output / "exact" / "spans")) > 0
    # 4.6 MB in 1 MB shards, in whole rounds of the cluster's 2 cores
    assert report(cluster_output)["stages"][0]["details"]["shards"] == 6
    assert_same_output(cluster_output, local_output, "cluster run")


class DriverTasks:
    """Task sets and running tasks as the driver logs them (INFO lines of spark-submit's output), read as the log
    grows. The log is written as the scheduler acts; the UI's REST API is fed by the listener bus and lags, so a
    task it showed as running had often finished already (many tasks here last 30-50 ms)."""

    ADDED = re.compile(r"Adding task set ([\d.]+) with (\d+) tasks")
    STARTED = re.compile(r"Starting task (\d+)\.\d+ in stage ([\d.]+) \(TID (\d+)\) \(127\.0\.0\.1, ?executor (\w+),")
    ENDED = re.compile(r"(?:Finished|Lost) task \S+ in stage \S+ \(TID (\d+)\)|\(TID (\d+)\) failed because")
    REMOVED = re.compile(r"Removed TaskSet ([\d.]+)")

    def __init__(self, log: Path) -> None:
        self.log, self.offset, self.partial = log, 0, b""
        self.running: dict[str, str] = {}  # TID -> executor id, in the order the tasks started
        self.unstarted: dict[str, set[str]] = {}  # active task set (stage.attempt) -> task indices not started

    def update(self) -> None:
        with open(self.log, "rb") as f:
            f.seek(self.offset)
            data = f.read()
        self.offset += len(data)
        *lines, self.partial = (self.partial + data).split(b"\n")  # a line still being written waits for the rest
        for line in (raw.decode(errors="replace") for raw in lines):
            if m := self.ADDED.search(line):
                self.unstarted[m[1]] = {str(i) for i in range(int(m[2]))}
            elif m := self.STARTED.search(line):
                self.running[m[3]] = m[4]
                self.unstarted.get(m[2], set()).discard(m[1])
            elif m := self.ENDED.search(line):
                self.running.pop(m[1] or m[2], None)
            elif m := self.REMOVED.search(line):
                self.unstarted.pop(m[1], None)

    def waiting(self) -> int:
        return sum(len(indices) for indices in self.unstarted.values())


def kill_mid_task(
    cluster: StandaloneCluster, process: subprocess.Popen, log: Path
) -> tuple[str, str, Daemon, list[Proc]]:
    """SIGKILL the worker (and executor) of a task the driver log shows running, once both executors live and at
    least 2 tasks wait; returns (executor id, TID, worker, processes killed)."""
    tasks, deadline = DriverTasks(log), time.monotonic() + JOB_TIMEOUT
    while True:
        assert process.poll() is None, f"the run ended before a worker could be killed:\n{tail(log, 60)}"
        assert time.monotonic() < deadline, f"no running task seen on the executors:\n{tail(log, 60)}"
        executors = cluster.executors()
        tasks.update()  # after the /proc scan: the freshest view of the log right before the kill
        busy = [(tid, executor) for tid, executor in tasks.running.items() if executor in executors]
        # Kill only with both executors alive and tasks still waiting: the victim is mid-task, the survivor
        # has work to retry, and the stage cannot finish in the moment between looking and killing.
        if busy and len(executors) == 2 and tasks.waiting() >= 2:
            tid, victim = busy[-1]  # the task started last is the likeliest to still be running at the kill
            worker, _ = executors[victim]
            return victim, tid, worker, cluster.kill_worker(worker)
        time.sleep(0.01)


def lost_task(log_text: str, executor: str) -> tuple[str, str] | None:
    """(task index, stage) of a task attempt lost with `executor`, from the driver log; None if there is none.

    Spark words it two ways: WARN "Lost task ... ExecutorLostFailure (executor N ...)" when the driver notices
    first, INFO "task ... (TID t) failed because while it was being computed, its executor exited ..." when the
    master reports the lost worker first (then the attempt's executor is found from its "Starting task" line).
    """
    lost = re.search(
        rf"Lost task (\d+)\.\d+ in stage ([\d.]+) \(TID \d+\) \([^)]*executor {executor}\): ExecutorLost", log_text
    )
    if lost:
        return lost.group(1), lost.group(2)
    unrelated = (
        r"task (\d+)\.\d+ in stage ([\d.]+) \(TID (\d+)\) failed because while it was being computed, its executor"
    )
    for found in re.finditer(unrelated, log_text):
        if re.search(
            rf"Starting task \S+ in stage \S+ \(TID {found.group(3)}\) \(127\.0\.0\.1, ?executor {executor},", log_text
        ):
            return found.group(1), found.group(2)
    return None


def test_killed_worker_does_not_change_the_output(cluster, package, cluster_output, tmp_path):
    """SIGKILL one worker and its executor while a dedup stage has a task running on it and more waiting.

    The moment comes from the driver log, yet a kill can still miss: the task may finish in the instant before
    SIGKILL lands, and then no task was lost and the claim went untested. Such a run is still checked (the job
    survives losing the worker, with the same output); then the worker is restarted and the job submitted again,
    up to KILL_ATTEMPTS runs in all. The test fails if no kill landed while a task ran on the victim.
    """
    misses = []
    for attempt in range(1, KILL_ATTEMPTS + 1):
        work = tmp_path / f"attempt-{attempt}"
        work.mkdir()
        out, log = work / "out", work / "spark-submit.log"
        process = cluster.submit(
            cluster.submit_command(package, "jobs/run_dedup.py", [*JOB_ARGS, f"--output={out}"]), log
        )
        wait_for_line(log, r"stage neardup: started", process, JOB_TIMEOUT)
        victim, tid, worker, killed = kill_mid_task(cluster, process, log)

        code = cluster.wait(process, log, JOB_TIMEOUT)
        text = log.read_text(errors="replace")
        assert code == 0, f"the job did not survive losing a worker (exit {code}):\n{tail(log, 80)}"
        assert not any(alive(p) for p in killed), killed
        assert re.search(rf"Lost executor {victim}\b", text), f"no 'Lost executor {victim}' in the driver log"
        assert_same_output(out, cluster_output, f"run with a killed worker (attempt {attempt})")
        lost = lost_task(text, victim)
        print(f"kill attempt {attempt}: executor {victim} killed while TID {tid} ran; lost (task, stage): {lost}")
        if lost:
            break
        misses.append(f"attempt {attempt}: executor {victim} killed while TID {tid} ran, {work}")
        cluster.restart_worker(worker)
    else:
        pytest.fail(f"no kill landed while a task ran on the victim in {KILL_ATTEMPTS} runs: {misses}")

    # The kill landed mid-stage: a task attempt running on the victim was lost and a later attempt finished.
    index, stage = lost
    assert re.search(rf"Finished task {index}\.[1-9]\d* in stage {re.escape(stage)} ", text), (index, stage)
