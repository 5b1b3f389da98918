"""A throwaway Spark Connect server on 127.0.0.1 for the `connect` tests.

Started as ../shared/docs/ENVIRONMENT.md says, from the pip-installed pyspark (its jars ship spark-connect):
`spark-daemon.sh submit ...SparkConnectServer` with master local[2], a free port and private PID and log folders
(the standalone cluster's environment, `cluster.daemon_env`). Its Python workers run this venv's interpreter
(PYSPARK_PYTHON), which has dedup_spark installed, as a Databricks cluster has the job's wheel. `stop()` ends it
by its PID (SIGTERM, then SIGKILL with everything it started).
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.cluster import IDENT, alive, daemon_env, descendants, free_port, kill, proc, spark_home, tail

SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"
# The same small-data settings the classic runs of these tests use (tests/test_connect.py).
SERVER_CONFS = {
    "spark.sql.shuffle.partitions": "4",
    "spark.ui.showConsoleProgress": "false",
}


class ConnectServer:
    """Use as: `s = ConnectServer(root); try: s.start() ... finally: s.stop()`; logs stay under `root`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port, self.ui_port = free_port(), free_port()
        self.url = f"sc://127.0.0.1:{self.port}"
        self.log_dir, self.pid_dir, self.conf_dir = root / "logs", root / "pids", root / "conf"
        for folder in (self.log_dir, self.pid_dir, self.conf_dir):
            folder.mkdir(parents=True, exist_ok=True)
        self.proc = None
        self.seen: set = set()

    def env(self) -> dict[str, str]:
        return daemon_env(self.root, PYSPARK_PYTHON=sys.executable)

    def log_text(self) -> str:
        found = sorted(self.log_dir.glob(f"spark-{IDENT}-{SERVER_CLASS}-1-*.out"))
        return tail(found[0], 60) if found else "(no server log yet)"

    def start(self, timeout: float = 180) -> None:
        """Start the server; return once its gRPC port takes connections."""
        confs = {**SERVER_CONFS, "spark.connect.grpc.binding.port": str(self.port), "spark.ui.port": str(self.ui_port)}
        command = ["bash", str(spark_home() / "sbin" / "spark-daemon.sh"), "submit", SERVER_CLASS, "1"]
        command += ["--name", "dedup-spark-connect-test", "--master", "local[2]"]
        for key, value in confs.items():
            command += ["--conf", f"{key}={value}"]
        result = subprocess.run(command, env=self.env(), capture_output=True, text=True, timeout=120)
        pid_file = self.pid_dir / f"spark-{IDENT}-{SERVER_CLASS}-1.pid"
        pid_text = pid_file.read_text().strip() if pid_file.exists() else ""
        self.proc = proc(int(pid_text)) if pid_text.isdigit() else None
        if result.returncode != 0 or self.proc is None:
            raise RuntimeError(f"no Connect server (exit {result.returncode}): {result.stdout}{result.stderr}")
        deadline = time.monotonic() + timeout
        while not self._port_open():
            if not alive(self.proc) or time.monotonic() > deadline:
                raise RuntimeError(f"Connect server did not start; its log:\n{self.log_text()}")
            time.sleep(0.5)

    def _port_open(self) -> bool:
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", self.port)) == 0

    def running_jobs(self) -> int:
        """Jobs the server runs now (its UI's REST API), e.g. the last write of a client that was killed."""
        import json
        import urllib.request

        base = f"http://127.0.0.1:{self.ui_port}/api/v1/applications"
        with urllib.request.urlopen(base, timeout=10) as answer:
            app = json.load(answer)[0]["id"]
        with urllib.request.urlopen(f"{base}/{app}/jobs?status=running", timeout=10) as answer:
            return len(json.load(answer))

    def stop(self) -> None:
        if self.proc is None:
            return
        if alive(self.proc):
            self.seen.update(descendants(self.proc))
            kill([self.proc], signal.SIGTERM)
        deadline = time.monotonic() + 20
        while alive(self.proc) and time.monotonic() < deadline:
            time.sleep(0.2)
        kill([self.proc, *self.seen])
