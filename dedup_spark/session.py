"""The one place that creates or finds the SparkSession, and the only one that reads what kind of session it is:
its task slots, job tags, master, Delta Lake support.

Everything here works on a classic session and on Spark Connect (Databricks serverless and shared clusters): no
SparkContext, no JVM, except to start and stop a local driver JVM of the command line's own with its options
(`OWN_JVM_OPTIONS`) and class archive (class_archive.py). Connect servers may refuse some reads; each helper says
what it returns then.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import tempfile
import time

from pyspark.sql import SparkSession

from dedup_spark import class_archive

log = logging.getLogger("dedup_spark")

# Where Spark's own console output goes when the CLI runs without --verbose (see `get_or_create_session`).
# One folder per user: another user's folder of the same name would not be writable.
SPARK_LOG_DIR = os.path.join(tempfile.gettempdir(), f"dedup-spark-logs-{os.getuid()}")
# The Spark setting that tells dedup-spark how many tasks the cluster runs at once (cores of all executors), for
# sessions whose settings say nothing else about it (see `task_slots`): `--conf spark.dedup.taskSlots=64`.
TASK_SLOTS_SETTING = "spark.dedup.taskSlots"
# Task slots assumed when no setting tells: enough tasks to keep a small cluster busy, few enough that each task
# of a small corpus still has work.
DEFAULT_TASK_SLOTS = 8
# The run's spark.task_slots setting (`use_task_slots`; None: read from the session).
_task_slots: int | None = None
# The job tag `tag_jobs` set last (None: none).
_job_tag: str | None = None
# The file the JVM started by this process writes its stderr to (None: not redirected, or not started here).
spark_log_in_use: str | None = None
# Options of a driver JVM the command line starts itself (local runs; never a JVM of spark-submit, Databricks or
# Connect). C1 only: HotSpot's optimising compiler (C2) compiles Spark's hot paths on the cores the tasks need, and a
# run is over before its faster code pays that back (measured on 2 cores, alternating, NearDup on 300 MB of linux
# 27.6-34.1 s with it against 21.4-31.7 s without, 1 GB 51.9 / 45.5 and 55.5 / 49.7 s). Options the user gives the
# JVM come after these and win: `spark.driver.extraJavaOptions=-XX:TieredStopAtLevel=4` restores C2.
OWN_JVM_OPTIONS = "-XX:TieredStopAtLevel=1"
# How the JVM started by this process uses the class archive (None: it does not).
_archive_plan: class_archive.ArchivePlan | None = None
# Seconds a JVM may take to write the class archive as it exits (about 10-20 s for a run's 190 MB here).
ARCHIVE_WAIT_SECONDS = 300


def get_or_create_session(
    app_name: str = "dedup-spark",
    spark_log: str | None = None,
    remote: str | None = None,
    own_driver_options: bool = False,
) -> SparkSession:
    """Return the active session (Databricks, spark-submit) or start one.

    No master or resource settings here: spark-submit, Databricks or spark-defaults.conf decide them, and
    with none of those PySpark runs `local[*]`. remote: a Spark Connect URL (`sc://host:port`); without it
    PySpark's own rule holds (`SPARK_REMOTE` set: a Connect session, else a classic one).

    spark_log: a file for everything the JVM this call starts writes to stderr (log4j's console, JVM warnings,
    Python workers' stderr), so a failing run shows one line, not Spark's stack traces; None leaves the JVM's
    stderr on the terminal (--verbose). A session that already exists is returned as it is.

    own_driver_options: a driver JVM this call starts gets `OWN_JVM_OPTIONS`, and maps the class archive of earlier
    runs or writes one at its exit (class_archive.py; `finish_class_archive` publishes it).
    """
    # Local Python workers must use this interpreter (the one with our dependencies), not the system python.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(app_name)
    if remote:
        builder = builder.remote(remote)
    own_start = own_driver_options and not (remote or SparkSession.getActiveSession() or _started_elsewhere())
    start = (lambda: _start_own_driver(builder)) if own_start else builder.getOrCreate
    global spark_log_in_use
    if spark_log is None or SparkSession.getActiveSession() is not None:
        return start()
    os.makedirs(os.path.dirname(spark_log) or ".", exist_ok=True)
    sys.stderr.flush()
    log_fd = os.open(spark_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    saved = os.dup(2)
    os.dup2(log_fd, 2)  # the JVM started now inherits this stderr; Python's own stderr is restored below
    try:
        session = start()
        spark_log_in_use = spark_log
        return session
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(log_fd)


def _started_elsewhere() -> bool:
    """True when getOrCreate would not start a JVM of this process: a Connect session, or spark-submit's JVM."""
    try:
        from pyspark import SparkContext
    except ImportError:  # a Connect-only pyspark
        return True
    running = SparkContext._active_spark_context is not None
    return running or "SPARK_REMOTE" in os.environ or "PYSPARK_GATEWAY_PORT" in os.environ


def _start_own_driver(builder: SparkSession.Builder) -> SparkSession:
    """Start the session's JVM with `OWN_JVM_OPTIONS` and the class archive's options (class_archive.plan), unless
    the user sets the driver JVM's default options (ours would replace theirs). A JVM that dies at start with an
    archive (a damaged file) gets the archive deleted and is started again without it."""
    global _archive_plan
    if class_archive.user_sets_options():
        return builder.getOrCreate()
    plan = class_archive.plan()
    saved = os.environ.get("PYSPARK_SUBMIT_ARGS")
    options = OWN_JVM_OPTIONS if plan is None else f"{OWN_JVM_OPTIONS} {plan.options}"
    os.environ["PYSPARK_SUBMIT_ARGS"] = class_archive.submit_args(options)
    try:
        session = builder.getOrCreate()
    except Exception:
        if plan is None or plan.partial is not None:
            raise
        log.warning("the JVM did not start with the class archive %s; deleted, starting without it", plan.archive)
        class_archive.discard(plan.archive)
        os.environ["PYSPARK_SUBMIT_ARGS"] = class_archive.submit_args(OWN_JVM_OPTIONS)
        return builder.getOrCreate()
    finally:
        _restore("PYSPARK_SUBMIT_ARGS", saved)
    _archive_plan = plan
    return session


def _restore(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


def finish_class_archive(saved: bool) -> None:
    """At the end of a command: if this process's JVM is to write the class archive, stop the JVM now. After a
    success (`saved`) wait until it has written the archive and publish it (class_archive.publish); after a
    failure kill it, so it writes nothing. Nothing when this process's JVM writes no archive."""
    global _archive_plan
    plan, _archive_plan = _archive_plan, None
    if plan is None or plan.partial is None:
        return
    from pyspark import SparkContext

    process = getattr(SparkContext._gateway, "proc", None)
    if SparkContext._active_spark_context is not None:
        SparkContext._active_spark_context.stop()
    try:
        if process is not None and process.stdin is not None and saved:
            _save_archive(process, plan)
        elif process is not None:
            process.kill()
            process.wait()
    finally:
        SparkContext._gateway = SparkContext._jvm = None  # a later session in this process starts a new JVM
        class_archive.discard(plan.partial)  # gone once published


def _save_archive(process: subprocess.Popen, plan: class_archive.ArchivePlan) -> None:
    started = time.time()
    log.info("saving the JVM's loaded classes for faster starts (once): %s", plan.archive)
    process.stdin.close()  # the gateway JVM exits when its stdin closes, and writes the archive as it exits
    try:
        code = process.wait(timeout=ARCHIVE_WAIT_SECONDS)
    except subprocess.TimeoutExpired:
        log.warning("the JVM took over %d s to write the class archive; not used", ARCHIVE_WAIT_SECONDS)
        process.kill()
        process.wait()
        return
    if code == 0 and class_archive.publish(plan.partial, plan.archive):
        log.info("class archive saved in %.1f s", time.time() - started)


def new_spark_log_path() -> str:
    """A fresh file name under SPARK_LOG_DIR for one run's Spark output."""
    return os.path.join(SPARK_LOG_DIR, f"spark-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}.log")


def use_task_slots(slots: int | None) -> None:
    """Make `task_slots` return `slots` (the run's `spark.task_slots` setting); None: read the session again."""
    global _task_slots
    _task_slots = slots


def task_slots(spark: SparkSession) -> int:
    """Tasks the session's cluster runs at once: the run's `spark.task_slots` (`use_task_slots`), else read from
    the session's settings (never from a SparkContext, which Spark Connect does not have): `spark.dedup.taskSlots`,
    else `spark.default.parallelism`, else the master (`local[N]`, `local[*]`, `local-cluster[W,C,M]`), else
    `spark.executor.instances` x `spark.executor.cores`, else `spark.cores.max`, else DEFAULT_TASK_SLOTS.
    Only the work's split into tasks depends on it, never an output."""
    if _task_slots is not None:
        return _task_slots
    for key in (TASK_SLOTS_SETTING, "spark.default.parallelism"):
        value = _setting(spark, key)
        if value.isdigit() and int(value) > 0:
            return int(value)
    url = master(spark)
    local = re.fullmatch(r"local\[(\*|\d+)(?:,\s*\d+)?\]|local-cluster\[(\d+),\s*(\d+),\s*\d+\]", url)
    if local and local.group(1) is not None:
        return (os.cpu_count() or 1) if local.group(1) == "*" else max(int(local.group(1)), 1)
    if local:
        return int(local.group(2)) * int(local.group(3))
    if url == "local":
        return 1
    instances, cores = _setting(spark, "spark.executor.instances"), _setting(spark, "spark.executor.cores")
    if instances.isdigit() and cores.isdigit() and int(instances) * int(cores) > 0:
        return int(instances) * int(cores)
    cores_max = _setting(spark, "spark.cores.max")
    return int(cores_max) if cores_max.isdigit() and int(cores_max) > 0 else DEFAULT_TASK_SLOTS


def _setting(spark: SparkSession, key: str) -> str:
    """A session setting's value, "" when unset or when the server refuses to show it."""
    try:
        return str(spark.conf.get(key, "") or "").strip()
    except Exception:  # Spark Connect servers may refuse to show a static config
        return ""


def tag_jobs(spark: SparkSession, tag: str | None) -> None:
    """Tag the Spark jobs that follow with `tag` in place of the last one set here (None: no tag of ours). Tags
    show in the Spark UI and are what Connect clients interrupt jobs by; the caller's own tags stay. Sessions
    without job tags (classic Spark 3.5) run untagged."""
    global _job_tag
    previous, _job_tag = _job_tag, None
    try:
        if previous is not None:
            spark.removeTag(previous)
        if tag is not None:
            spark.addTag(tag)
            _job_tag = tag
    except Exception:  # no job tags on this session: progress in the UI is a nicety, not a need
        pass


def master(spark: SparkSession) -> str:
    """The session's master URL ("unknown" where the server does not show it)."""
    return _setting(spark, "spark.master") or "unknown"


def is_local_mode(spark: SparkSession) -> bool:
    """True when driver and executors share this machine (master local[...])."""
    return master(spark).startswith("local")


def session_has_delta(spark: SparkSession) -> bool:
    """True on Databricks and on sessions configured with the Delta Lake extension."""
    if "DATABRICKS_RUNTIME_VERSION" in os.environ:
        return True
    return "DeltaSparkSessionExtension" in _setting(spark, "spark.sql.extensions")
