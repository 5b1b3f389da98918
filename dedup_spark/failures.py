"""Turn the errors Spark, the JVM and the OS raise into one line that says what, where and the fix.

`describe(exc, input_path, output_path)` -> (exit code, message). It reads the whole text of the exception
(Spark's message, the Java stack and its "Caused by" chain, a Python worker's traceback), never just the
first line, because the useful part (the file, the cause) is often deep inside. No pyspark import here.
"""

from __future__ import annotations

import contextlib
import os
import re

from dedup_spark.errors import InputError

_FILE_IN_MESSAGE = (
    re.compile(r"(?:reading|read) file (\S+?)\.?(?:\s|$)"),
    re.compile(r"footer for file:? ?(\S+?)[,.]?(?:\s|$)"),
    re.compile(r"(file:\S+?|/\S+?): (?:Permission denied|Read-only file system)"),
    re.compile(r"(\S+) is not a Parquet file"),
)
# (markers in the error text, what they mean, how to fix it) for input files Spark could not read.
_TRUNCATED = "the file is truncated (its compressed stream ends early)"
_INPUT_CAUSES = (
    (("Unexpected end of input stream", "Unexpected end of ZLIB input stream", "Truncated source"), _TRUNCATED,
     "replace it"),
    (("incorrect header check", "Not in GZIP format", "not a gzip file"), "it is not valid gzip data",
     "replace it or fix its suffix"),
    (("Unknown frame descriptor",), "it is not valid zstd data", "replace it or fix its suffix"),
    (("is not a Parquet file",), "it is not a Parquet file", "pass the right --input-format, or remove the file"),
    (("CANNOT_READ_FILE_FOOTER", "Could not read footer"), "its Parquet footer is unreadable (corrupt or truncated)",
     "replace the file"),
    (("ParquetDecodingException",), "its Parquet data is corrupt", "replace the file"),
    (("CorruptedException",), "it is corrupt", "replace the file"),
    (("Permission denied",), "permission denied", "make it readable for this user"),
)  # fmt: skip


def describe(exc: BaseException, input_path: str | None, output_path: str | None) -> tuple[int, str]:
    """(exit code, one-line message) for an exception that is not one of ours (`DedupSparkError`)."""
    text = _full_text(exc)
    if isinstance(exc, RecursionError):
        return 1, "unexpected error: RecursionError (too deeply nested data or plan); rerun with --verbose"
    if "No space left on device" in text or isinstance(exc, OSError) and exc.errno == 28:
        where = output_path or "the output"
        return 2, (
            f"no space left on the device while writing (output {where!r}, or Spark's local scratch dir "
            "spark.local.dir); free space there or pass an --output on a larger disk"
        )
    if "Read-only file system" in text or _is_output_permission(text, exc, output_path):
        return 2, (
            f"cannot write to the output folder {output_path!r} (permission denied or read-only file system); "
            "pass an --output this user can write"
        )
    duplicate = re.search(r"COLUMN_ALREADY_EXISTS\] The column `(.+?)` already exists", text)
    if duplicate:
        return InputError.exit_code, (
            f"the input {input_path!r} has two columns named {duplicate.group(1)!r} apart from upper/lower case "
            "(Spark compares column names case-insensitively); rename one of them in the input"
        )
    for markers, meaning, fix in _INPUT_CAUSES:
        if any(marker in text for marker in markers):
            file = _file_named(text) or input_path
            return InputError.exit_code, f"cannot read input file {file!r}: {meaning}; {fix}"
    if "FAILED_READ_FILE" in text or "PATH_NOT_FOUND" in text or "FileNotFoundException" in text:
        file = _file_named(text) or input_path
        cause = _cause(text)
        return InputError.exit_code, f"cannot read input file {file!r}: {cause}; check the file or remove it"
    if "Answer from Java side is empty" in text or "Py4JNetworkError" in type(exc).__name__:
        return 1, (
            "the Spark JVM died (most often out of memory: raise spark.driver.memory, e.g. spark-submit "
            "--driver-memory 4g); its last words are in Spark's log"
        )
    if "MemoryError" in text or "OutOfMemoryError" in text or "Java heap space" in text:
        return 1, (
            "out of memory in a Spark task or the driver; give it more memory (spark.driver.memory, "
            "spark.executor.memory) or lower the batch and chunk sizes (neardup.batch_docs, exactsubstr.chunk_size)"
        )
    return 1, f"unexpected error: {type(exc).__name__}: {_cause(text)}; rerun with --verbose for the traceback"


def _full_text(exc: BaseException) -> str:
    parts = [str(exc)]
    java = getattr(exc, "java_exception", None)
    if java is not None:
        with contextlib.suppress(Exception):  # the JVM may be gone; the Python text is then all there is
            parts.append(str(java.toString()))
    cause = exc.__cause__ or exc.__context__
    if cause is not None and cause is not exc:
        parts.append(str(cause))
    return "\n".join(parts)


def _is_output_permission(text: str, exc: BaseException, output_path: str | None) -> bool:
    if not output_path:
        return False
    if isinstance(exc, PermissionError):
        return _under(getattr(exc, "filename", None) or "", output_path)
    if "Permission denied" not in text and "AccessDenied" not in text:
        return False
    return any(_under(m.group(1), output_path) for m in re.finditer(r"(\S+): Permission denied", text)) or (
        "Mkdirs failed" in text
    )


def _under(path: str, folder: str) -> bool:
    path = path.removeprefix("file:").removeprefix("//")
    if "://" in folder:
        return path.startswith(folder.rstrip("/"))
    folder = os.path.realpath(folder)
    return os.path.realpath(path) == folder or os.path.realpath(path).startswith(folder + os.sep)


def _file_named(text: str) -> str | None:
    for pattern in _FILE_IN_MESSAGE:
        match = pattern.search(text)
        if match:
            path = match.group(1)
            if path.startswith("file:"):  # file:///a%20b -> /a b
                from urllib.parse import unquote

                path = "/" + unquote(path[len("file:") :]).lstrip("/")
            return path
    return None


def _cause(text: str) -> str:
    """The most specific line: the last `Caused by:`, a Python worker's last error line, or the first line."""
    causes = re.findall(r"Caused by: ([^\n]+)", text)
    if causes:
        return causes[-1].strip()[:300]
    python = re.findall(r"^(\w+(?:Error|Exception): [^\n]+)$", text, re.MULTILINE)
    if python:
        return python[-1].strip()[:300]
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0][:300] if lines else "no message"
