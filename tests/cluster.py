"""A throwaway Spark standalone cluster on 127.0.0.1 for the `cluster` tests, and `spark-submit` against it.

The daemons come from the pip-installed pyspark (`$SPARK_HOME/sbin/spark-daemon.sh`, SPARK_HOME = the pyspark
package folder) with private PID, log, conf and work folders and free ports, so parallel runs and a developer's
own Spark do not clash. `StandaloneCluster.stop()` always ends every daemon by its PID file and then SIGKILLs
whatever is left of it and of the processes it started (executors, Python workers), by PID; a PID is only
signalled while it still names the process we recorded (same start time), never a recycled one.

Executors run the *shipped* code: their Python is the venv's base interpreter with PYTHONPATH = the venv's
site-packages. A PYTHONPATH entry does not run `.pth` files, so an editable install of dedup_spark in the venv
is invisible there and `import dedup_spark` can only succeed through `--py-files`.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"
EXECUTOR_CLASS = "org.apache.spark.executor.CoarseGrainedExecutorBackend"
IDENT = "dedup-spark-test"  # SPARK_IDENT_STRING: names the PID and log files
# Variables that would leak a developer's Spark setup into ours (SPARK_MASTER makes spark-daemon.sh rsync!).
_SCRUBBED = ("PYTHONPATH", "SPARK_MASTER", "SPARK_NO_DAEMONIZE", "SPARK_CONF_DIR", "PYSPARK_SUBMIT_ARGS")


def spark_home() -> Path:
    from pyspark.find_spark_home import _find_spark_home

    return Path(_find_spark_home())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def executor_python() -> str:
    """The interpreter this venv was made from (same version as the driver's, none of the venv's packages)."""
    if sys.prefix == sys.base_prefix:
        raise RuntimeError(f"the cluster tests need a virtualenv (so executors can run without it); got {sys.prefix}")
    return sys._base_executable  # the venv's bin/python is only a link to it, but without the venv's pyvenv.cfg


def site_packages() -> str:
    """The venv's site-packages: the third-party dependencies 'installed on every node'."""
    paths = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    return os.pathsep.join(paths)


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"(cannot read {path}: {exc})"


def daemon_env(root: Path, **extra: str) -> dict[str, str]:
    """Environment for daemons started by spark-daemon.sh (and their clients): private conf, log and PID folders
    under `root`, nothing from the caller's Spark setup."""
    env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED}
    env.update(
        SPARK_HOME=str(spark_home()),
        SPARK_CONF_DIR=str(root / "conf"),  # empty: no spark-defaults.conf from elsewhere
        SPARK_LOG_DIR=str(root / "logs"),
        SPARK_PID_DIR=str(root / "pids"),
        SPARK_IDENT_STRING=IDENT,
        SPARK_LOCAL_IP="127.0.0.1",
    )
    env.update(extra)
    return env


@contextlib.contextmanager
def started(service):
    """`service` (a StandaloneCluster or a ConnectServer) started, and stopped however the block ends: every
    daemon by its PID, also when start() or a test failed."""
    try:
        service.start()
        yield service
    finally:
        service.stop()


@dataclass(frozen=True)
class Proc:
    """A process we may signal: its PID and start time (clock ticks since boot), which tell it from a reuse."""

    pid: int
    start: int


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, parent PID, start time) of a live process, None when gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()  # the command name may contain spaces and parentheses
    return fields[0], int(fields[1]), int(fields[19])


def cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def alive(proc: Proc) -> bool:
    stat = _stat(proc.pid)
    return stat is not None and stat[2] == proc.start and stat[0] not in ("Z", "X")


def proc(pid: int) -> Proc | None:
    stat = _stat(pid)
    return Proc(pid, stat[2]) if stat else None


def descendants(root: Proc) -> list[Proc]:
    """Every live process below `root` (children first found, grandchildren after)."""
    children: dict[int, list[Proc]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _stat(int(entry.name))):
            children.setdefault(stat[1], []).append(Proc(int(entry.name), stat[2]))
    found, todo = [], [root.pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child.pid)
    return found


def kill(procs: Sequence[Proc], sig: int = signal.SIGKILL) -> None:
    for p in procs:
        if alive(p):
            with contextlib.suppress(ProcessLookupError):  # it may end between the check and the signal
                os.kill(p.pid, sig)


@dataclass
class Daemon:
    """One master or worker started by spark-daemon.sh (`instance` numbers its PID and log files)."""

    cls: str
    instance: int
    args: list[str]
    name: str
    proc: Proc | None = None
    seen: set[Proc] = field(default_factory=set)  # every process ever found below it, for the final sweep


class StandaloneCluster:
    """Master + `workers` workers on 127.0.0.1. Use as: `c = StandaloneCluster(root); try: c.start() ... finally:
    c.stop()`; everything it writes (logs, PID files, executor work dirs) stays under `root` for post-mortems."""

    def __init__(self, root: Path, workers: int = 2, cores: int = 1, memory: str = "2g") -> None:
        self.root = root
        self.cores = workers * cores
        self.home = spark_home()
        self.port, self.ui_port = free_port(), free_port()
        self.master_url = f"spark://127.0.0.1:{self.port}"
        self.conf_dir, self.log_dir, self.pid_dir = root / "conf", root / "logs", root / "pids"
        for folder in (self.conf_dir, self.log_dir, self.pid_dir):
            folder.mkdir(parents=True, exist_ok=True)
        self.master = Daemon(
            MASTER_CLASS,
            1,
            ["--host", "127.0.0.1", "--port", str(self.port), "--webui-port", str(self.ui_port)],
            "master",
        )
        self.workers = [
            Daemon(
                WORKER_CLASS,
                i,
                ["--host", "127.0.0.1", "--cores", str(cores), "--memory", memory, "--webui-port", str(free_port())]
                + ["--work-dir", str(root / f"work-{i}"), self.master_url],
                f"worker-{i}",
            )
            for i in range(1, workers + 1)
        ]
        self.submitted: list[subprocess.Popen] = []

    # -- environment -----------------------------------------------------------------------------------------
    def env(self, **extra: str) -> dict[str, str]:
        """Environment for daemons and spark-submit (`daemon_env`)."""
        return daemon_env(self.root, **extra)

    def pid_file(self, daemon: Daemon) -> Path:
        return self.pid_dir / f"spark-{IDENT}-{daemon.cls}-{daemon.instance}.pid"

    def log_file(self, daemon: Daemon) -> Path:
        found = sorted(self.log_dir.glob(f"spark-{IDENT}-{daemon.cls}-{daemon.instance}-*.out"))
        return found[0] if found else self.log_dir / f"(no log yet for {daemon.name})"

    def logs(self) -> str:
        return "\n".join(f"--- {d.name}: {self.log_file(d)}\n{tail(self.log_file(d))}" for d in self.daemons)

    @property
    def daemons(self) -> list[Daemon]:
        return [self.master, *self.workers]

    # -- start / stop ----------------------------------------------------------------------------------------
    def start(self, timeout: float = 180) -> None:
        """Start the master, then the workers; return when every worker has registered with the master."""
        for daemon in self.daemons:
            self._launch(daemon)
        self._await_registration(self.workers, timeout)

    def restart_worker(self, worker: Daemon, timeout: float = 180) -> None:
        """Start a killed worker again (same instance, ports and work dir); return once it has registered with the
        master. spark-daemon.sh moves its old log aside (.out.1), so the check reads only the new one."""
        assert worker.proc is None or not alive(worker.proc), f"{worker.name} is still running"
        self._launch(worker)
        self._await_registration([worker], timeout)

    def _await_registration(self, workers: list[Daemon], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        waiting = list(workers)
        while waiting:
            waiting = [w for w in waiting if "registered with master" not in self._log_text(w).lower()]
            dead = [d.name for d in self.daemons if d.proc is None or not alive(d.proc)]
            if dead or time.monotonic() > deadline:
                problem = f"{', '.join(dead)} died" if dead else f"not registered after {timeout:.0f} s"
                raise RuntimeError(f"standalone cluster did not start ({problem}); daemon logs:\n{self.logs()}")
            time.sleep(0.5)

    def _log_text(self, daemon: Daemon) -> str:
        try:
            return self.log_file(daemon).read_text(errors="replace")
        except OSError:
            return ""

    def _launch(self, daemon: Daemon) -> None:
        script = self.home / "sbin" / "spark-daemon.sh"
        command = ["bash", str(script), "start", daemon.cls, str(daemon.instance), *daemon.args]
        result = subprocess.run(command, env=self.env(), capture_output=True, text=True, timeout=120)
        pid_text = self.pid_file(daemon).read_text().strip() if self.pid_file(daemon).exists() else ""
        daemon.proc = proc(int(pid_text)) if pid_text.isdigit() else None
        if result.returncode != 0 or daemon.proc is None or "failed to launch" in result.stdout:
            raise RuntimeError(
                f"spark-daemon.sh could not start {daemon.name} (exit {result.returncode}):\n{result.stdout}"
                f"{result.stderr}\n{tail(self.log_file(daemon))}"
            )

    def stop(self) -> None:
        """Stop spark-submit runs, workers and master by PID (SIGTERM, then SIGKILL), then SIGKILL leftovers."""
        for process in self.submitted:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)  # its own session: spark-submit's JVM and Python driver
                process.wait(timeout=30)
        for daemon in reversed(self.daemons):
            self._remember_children(daemon)
            if daemon.proc and alive(daemon.proc):
                kill([daemon.proc], signal.SIGTERM)  # the worker's shutdown hook stops its executors
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and any(d.proc and alive(d.proc) for d in self.daemons):
            time.sleep(0.2)
        for daemon in self.daemons:
            kill([p for p in (daemon.proc, *daemon.seen) if p is not None])
            self.pid_file(daemon).unlink(missing_ok=True)

    def _remember_children(self, daemon: Daemon) -> None:
        if daemon.proc and alive(daemon.proc):
            daemon.seen.update(descendants(daemon.proc))

    # -- executors -------------------------------------------------------------------------------------------
    def executors(self) -> dict[str, tuple[Daemon, Proc]]:
        """Live executor JVMs by executor id: {id: (worker that launched it, executor process)}."""
        found = {}
        for worker in self.workers:
            if not (worker.proc and alive(worker.proc)):
                continue
            self._remember_children(worker)
            for child in descendants(worker.proc):
                words = cmdline(child.pid)
                if EXECUTOR_CLASS in words and "--executor-id" in words:
                    found[words[words.index("--executor-id") + 1]] = (worker, child)
        return found

    def kill_worker(self, worker: Daemon) -> list[Proc]:
        """SIGKILL a worker daemon and everything below it (its executor JVM and that executor's Python workers),
        as a machine failure would; returns the processes killed."""
        assert worker.proc is not None
        victims = [worker.proc, *descendants(worker.proc)]  # listed first: once killed, children get re-parented
        worker.seen.update(victims[1:])
        kill(victims)
        return victims

    # -- spark-submit ----------------------------------------------------------------------------------------
    def submit_command(self, py_files: Path, script: str, args: Sequence[str], ui_port: int | None = None) -> list[str]:
        """`spark-submit` in client mode, shipping `py_files` the way the README says; the --conf lines only
        describe this test machine (which Python the executors run and where their dependencies are)."""
        confs = {
            "spark.pyspark.python": executor_python(),
            "spark.pyspark.driver.python": sys.executable,
            "spark.executorEnv.PYTHONPATH": site_packages(),
            "spark.executorEnv.PYTHONNOUSERSITE": "1",
            "spark.ui.enabled": "true" if ui_port else "false",
            "spark.ui.port": str(ui_port or 0),
            "spark.ui.showConsoleProgress": "false",
            # The cluster's cores, which dedup-spark reads as its task slots (session.task_slots).
            "spark.cores.max": str(self.cores),
        }
        command = [str(self.home / "bin" / "spark-submit"), "--master", self.master_url, "--deploy-mode", "client"]
        for key, value in confs.items():
            command += ["--conf", f"{key}={value}"]
        return [*command, "--py-files", str(py_files), script, *args]

    def submit(self, command: Sequence[str], log: Path) -> subprocess.Popen:
        """Start spark-submit from the repository root; stdout and stderr (JVM and Python driver) go to `log`."""
        env = self.env(PYSPARK_PYTHON=executor_python(), PYSPARK_DRIVER_PYTHON=sys.executable)
        with open(log, "w") as out:
            process = subprocess.Popen(
                list(command), cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.submitted.append(process)
        return process

    def wait(self, process: subprocess.Popen, log: Path, timeout: float = 600) -> int:
        """Exit code of a submitted run; a run still going after `timeout` is killed and fails the test."""
        try:
            return process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
            raise AssertionError(
                f"spark-submit still running after {timeout:.0f} s; log tail:\n{tail(log, 60)}"
            ) from None


def wait_for_line(log: Path, pattern: str, process: subprocess.Popen, timeout: float = 600) -> None:
    """Block until `log` has a line matching `pattern`; fail clearly if the run ends or the time runs out."""
    regex = re.compile(pattern)
    deadline = time.monotonic() + timeout
    while not regex.search(log.read_text(errors="replace")):
        if process.poll() is not None:
            raise AssertionError(f"run ended (exit {process.returncode}) before {pattern!r}:\n{tail(log, 60)}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no {pattern!r} after {timeout:.0f} s:\n{tail(log, 60)}")
        time.sleep(0.2)


# -- probe: `spark-submit ... tests/cluster.py` reports, per task, what an executor's Python imported ----------
def _executor_id() -> str:
    """Id of the executor JVM above this Python worker (its command line has `--executor-id N`)."""
    pid = os.getpid()
    while pid > 1:
        words = cmdline(pid)
        if "--executor-id" in words:
            return words[words.index("--executor-id") + 1]
        stat = _stat(pid)
        pid = stat[1] if stat else 1
    return "unknown"


def _describe_worker(batches):  # runs on the executors
    import importlib.machinery

    import pandas as pd

    import dedup_spark

    for _ in batches:
        pass
    time.sleep(1)  # keep each task busy a moment, so both executors get some
    not_shipped = [p for p in sys.path if not os.path.basename(p).startswith("dedup_spark")]
    yield pd.DataFrame(
        {
            "executor": [_executor_id()],
            "file": [dedup_spark.__file__],
            "python": [sys.executable],
            "version": [sys.version],
            # Could dedup_spark be imported if --py-files had shipped nothing? (must be False)
            "found_without_package": [importlib.machinery.PathFinder.find_spec("dedup_spark", not_shipped) is not None],
            "editable_modules": [",".join(m for m in sys.modules if "editable" in m)],
        }
    )


def probe_main() -> None:
    import json

    from pyspark.sql import SparkSession

    spark = SparkSession.builder.appName("dedup-spark-cluster-probe").getOrCreate()
    schema = (
        "executor string, file string, python string, version string, found_without_package boolean, "
        "editable_modules string"
    )
    for row in spark.range(0, 8, 1, 8).mapInPandas(_describe_worker, schema).collect():
        print("PROBE " + json.dumps(row.asDict()), flush=True)
    spark.stop()


if __name__ == "__main__":
    probe_main()
