"""One run per output folder: a lock file `DIR/_dedup_spark.lock` held for the whole run.

The file holds JSON: host, pid, start time, a random token and a heartbeat (seconds since the epoch) that a
background thread refreshes every HEARTBEAT_SECONDS. A second run finding the file is refused (UsageError,
exit 2) with one line naming when and where the holder started, unless the lock is stale:
- the holder ran on this host and its pid no longer exists (killed, crashed), or
- its heartbeat is older than STALE_SECONDS (a dead run on another host; a live run refreshes it every minute).
A stale lock is taken over with a warning. A run that ends in any way (success, error) deletes its lock.

Local folders: the file is created with O_CREAT|O_EXCL, so of two runs starting at once exactly one wins.
Object stores (s3://, gs://, dbfs:/ through pyarrow): pyarrow offers no create-if-absent, so the lock is
"check, write, read back the token": it stops a second run started a few seconds after the first (the case
seen in practice), but two runs started within the same second may both pass. Documented in the README.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

from dedup_spark.errors import UsageError
from dedup_spark.io import storage

log = logging.getLogger("dedup_spark")

LOCK_NAME = storage.LOCK_NAME
HEARTBEAT_SECONDS = 60
STALE_SECONDS = 15 * 60


@contextlib.contextmanager
def output_lock(folder: str) -> Iterator[str]:
    """Hold the lock of `folder` (created if missing) for the block; yields the lock file's path."""
    path = storage.join(folder, LOCK_NAME)
    now = time.time()
    info = {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(now)),
        "heartbeat": now,
        "token": uuid.uuid4().hex,
    }
    created = not storage.exists(folder)
    _acquire(folder, path, info)
    stop = threading.Event()
    beat = threading.Thread(target=_heartbeat, args=(path, info, stop), name="dedup-spark-lock", daemon=True)
    beat.start()
    try:
        yield path
    finally:
        stop.set()
        beat.join(timeout=5)
        _release(path, info["token"])
        if created and storage.is_empty_or_missing(folder):
            with contextlib.suppress(OSError):
                storage.delete(folder)  # a run that failed before writing leaves no empty folder behind


def _acquire(folder: str, path: str, info: dict[str, Any]) -> None:
    if storage.exists(folder) and not storage.is_dir(folder):
        raise UsageError(f"--output {folder!r} is a file; pass a folder")
    try:
        storage.make_dirs(folder)
        for _attempt in range(3):
            if _create_exclusive(path, info):
                return
            holder = _read(path)
            if holder is None:
                continue  # it vanished between our create and our read: try again
            why = stale_reason(holder)
            if why is None:
                raise UsageError(
                    f"output folder {folder!r} is in use by another dedup-spark run started {holder.get('started')} "
                    f"on host {holder.get('host')} (pid {holder.get('pid')}); wait for it to end, or delete {path} "
                    "if that run is dead"
                )
            log.warning("taking over the lock %s of a dead run (%s)", path, why)
            _remove_stale(path, holder)
    except PermissionError as exc:
        raise UsageError(
            f"cannot write to the output folder {folder!r} ({exc.strerror}); pass an --output this user can write"
        ) from exc
    except OSError as exc:
        if exc.errno in (13, 30, 28):  # EACCES, EROFS (read-only file system), ENOSPC
            raise UsageError(
                f"cannot write to the output folder {folder!r} ({exc.strerror}); pass another --output"
            ) from exc
        raise
    raise UsageError(f"cannot take the lock {path}: other runs keep taking it; try again")


def stale_reason(holder: dict[str, Any], now: float | None = None) -> str | None:
    """Why a lock's holder is dead, or None when it may be alive."""
    now = time.time() if now is None else now
    same_host = holder.get("host") == socket.gethostname() and isinstance(holder.get("pid"), int)
    if same_host and not _pid_alive(holder["pid"]):
        return f"pid {holder['pid']} on this host is gone"
    age = now - float(holder.get("heartbeat") or 0)
    if age > STALE_SECONDS:
        return f"no heartbeat for {age / 60:.0f} minutes (stale after {STALE_SECONDS // 60})"
    return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_local(path: str) -> bool:
    return "://" not in path


def _create_exclusive(path: str, info: dict[str, Any]) -> bool:
    data = json.dumps(info).encode("utf-8")
    if _is_local(path):
        try:
            fd = os.open(os.path.abspath(path), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as stream:
            stream.write(data)
        return True
    if storage.exists(path):
        return False
    storage.write_text(path, data.decode("utf-8"))
    holder = _read(path)
    return holder is not None and holder.get("token") == info["token"]


def _read(path: str) -> dict[str, Any] | None:
    """The lock's content; a file too new to be complete reads as a fresh lock of unknown holder."""
    try:
        text = storage.read_text(path)
    except (FileNotFoundError, OSError):
        return None if not storage.exists(path) else {"heartbeat": time.time()}
    try:
        holder = json.loads(text)
    except ValueError:
        holder = None
    if not isinstance(holder, dict):
        mtime = os.path.getmtime(path) if _is_local(path) and os.path.exists(path) else 0
        return {"host": "unknown", "pid": "unknown", "started": "at an unknown time", "heartbeat": mtime}
    return holder


def _remove_stale(path: str, holder: dict[str, Any]) -> None:
    if _is_local(path):
        aside = f"{path}.stale-{uuid.uuid4().hex[:8]}"
        try:
            os.rename(path, aside)  # atomic: of two runs taking over, one renames, the other retries
        except FileNotFoundError:
            return
        os.remove(aside)
    else:
        storage.delete(path)


def _heartbeat(path: str, info: dict[str, Any], stop: threading.Event) -> None:
    while not stop.wait(HEARTBEAT_SECONDS):
        holder = _read(path)
        if holder is None or holder.get("token") != info["token"]:
            log.warning("the output lock %s was removed or taken by another run", path)
            return
        info["heartbeat"] = time.time()
        try:
            storage.write_text(path, json.dumps(info))
        except OSError as exc:  # a full disk must not kill the run from a side thread; the run itself will say
            log.warning("cannot refresh the output lock %s: %s", path, exc)


def _release(path: str, token: str) -> None:
    holder = _read(path)
    if holder is not None and holder.get("token") == token:
        with contextlib.suppress(OSError):
            storage.delete(path)
