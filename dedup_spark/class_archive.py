"""A class-data-sharing archive for the driver JVM that the command line starts itself (local runs).

A local run spends seconds loading and verifying Spark's classes before and during its first jobs (300 MB of
linux, NearDup: 36.6-38.0 s without an archive, 30.5-32.4 s with one, alternating). The JVM can write the classes
it loaded to an archive when it exits (`-XX:ArchiveClassesAtExit`, HotSpot 13 and later) and map that archive on
its next start (`-XX:SharedArchiveFile`). The first run writes it, later runs use it.

The archive is valid for one JVM and one class path; a JVM given an archive that does not match them ignores it,
but one given a half-written archive can crash (a truncated file maps pages past its end). So each run writes to
a file of its own, and the archive is published under its final name (`os.replace`) only after the JVM that
wrote it has exited with status 0 (session.finish_class_archive; a failed run kills its JVM, which then writes
nothing); a JVM that fails to start with an archive gets it deleted and starts again without it
(session.get_or_create_session).

Where: `$DEDUP_SPARK_JVM_CACHE`, else `$XDG_CACHE_HOME/dedup-spark/jvm` (`~/.cache/dedup-spark/jvm`); one
archive (about 190 MB) per pyspark, Spark home and java, at most ARCHIVES_KEPT of them. `DEDUP_SPARK_JVM_CACHE=off`
turns it off. Nothing here runs where the JVM is not ours to start: spark-submit, Databricks, Spark Connect.
Options of the user's own for the driver JVM's defaults (`spark.driver.defaultJavaOptions`) turn it off too:
ours would replace theirs.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import shlex
import shutil
import time
from typing import NamedTuple

CACHE_ENV = "DEDUP_SPARK_JVM_CACHE"
OFF = ("", "off", "0", "false", "no")
ARCHIVES_KEPT = 3
# A file a run is still writing is younger than this; older unpublished ones are left by runs that failed.
PARTIAL_MAX_AGE_SECONDS = 3600
OPTION = "spark.driver.defaultJavaOptions"
# The JVM's own notes on the archive (written, mapped, mismatched) would land on the run's console.
QUIET = "-Xlog:cds=off -Xlog:cds+dynamic=off"


class ArchivePlan(NamedTuple):
    """How the JVM about to start uses the archive: `options` for it; `partial` the file it writes at its exit
    (None: it maps `archive`, which exists)."""

    options: str
    archive: str
    partial: str | None


def folder() -> str | None:
    """The archives' folder, or None when turned off."""
    value = os.environ.get(CACHE_ENV)
    if value is not None:
        return None if value.strip().lower() in OFF else value
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "dedup-spark", "jvm")


def environment_key() -> str:
    """What an archive is valid for: this pyspark and its Spark home's jars, and this java binary."""
    import pyspark

    spark_home = os.environ.get("SPARK_HOME") or os.path.dirname(pyspark.__file__)
    jars = os.path.join(spark_home, "jars")
    java_home = os.environ.get("JAVA_HOME")
    java = shutil.which("java", path=os.path.join(java_home, "bin") if java_home else None) or "java"
    java = os.path.realpath(java)
    parts = [pyspark.__version__, os.path.realpath(spark_home), java, _mtime(java)]
    parts += sorted(os.listdir(jars)) if os.path.isdir(jars) else []
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _mtime(path: str) -> str:
    try:
        return str(os.stat(path).st_mtime_ns)
    except OSError:
        return ""


def user_sets_options() -> bool:
    """True when PYSPARK_SUBMIT_ARGS or spark-defaults.conf set the driver JVM's default options."""
    if OPTION in os.environ.get("PYSPARK_SUBMIT_ARGS", ""):
        return True
    conf_dir = os.environ.get("SPARK_CONF_DIR") or os.path.join(os.environ.get("SPARK_HOME", ""), "conf")
    try:
        with open(os.path.join(conf_dir, "spark-defaults.conf"), encoding="utf-8") as defaults:
            return any(line.strip().startswith(OPTION) for line in defaults)
    except OSError:
        return False


def plan() -> ArchivePlan | None:
    """The archive options for a driver JVM this process is about to start, or None (turned off, set by the
    user, or no usable folder)."""
    where = folder()
    if where is None or user_sets_options() or any(c.isspace() or c in "'\"" for c in where):
        return None  # Spark splits the options string at spaces
    try:
        os.makedirs(where, exist_ok=True)
    except OSError:
        return None
    archive = os.path.join(where, f"{environment_key()}.jsa")
    if os.path.isfile(archive):  # a JVM that crashes on a damaged one exits without a report on the console
        return ArchivePlan(f"-XX:SharedArchiveFile={archive} -XX:+SuppressFatalErrorMessage {QUIET}", archive, None)
    if not os.access(where, os.W_OK):
        return None
    partial = f"{archive}.{os.getpid()}.partial"
    return ArchivePlan(f"-XX:ArchiveClassesAtExit={partial} {QUIET}", archive, partial)


def submit_args(options: str) -> str:
    """PYSPARK_SUBMIT_ARGS that give the JVM `options` and keep the user's own arguments (later ones win)."""
    return f"--conf {shlex.quote(f'{OPTION}={options}')} {os.environ.get('PYSPARK_SUBMIT_ARGS', 'pyspark-shell')}"


def publish(partial: str, archive: str) -> bool:
    """Give the archive a JVM finished writing its final name; drop old archives and left-over partial files."""
    if not os.path.isfile(partial) or os.path.getsize(partial) == 0:
        return False
    os.replace(partial, archive)
    where = os.path.dirname(archive)
    archives = sorted(glob.glob(os.path.join(where, "*.jsa")), key=_age)
    stale = [p for p in glob.glob(os.path.join(where, "*.partial")) if _age(p) > PARTIAL_MAX_AGE_SECONDS]
    for path in archives[ARCHIVES_KEPT:] + stale:
        discard(path)
    return True


def _age(path: str) -> float:
    try:
        return time.time() - os.stat(path).st_mtime
    except OSError:
        return float("inf")


def discard(path: str | None) -> None:
    """Remove a file if it is there."""
    if path:
        with contextlib.suppress(OSError):
            os.remove(path)
