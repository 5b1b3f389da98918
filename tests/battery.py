"""Run several `dedup-spark` commands in ONE process (one JVM), as a user's shell would one after another.

`python -m tests.battery CASES.json`: CASES is a list of {"name": ..., "argv": [...], "fault": optional}.
Each case's stderr is framed by `@@case NAME` and `@@exit CODE` lines, so a test can check each case's real
stderr (our log lines, the error line, and anything Spark or Python would print) without paying a JVM start
per case. "fault" injects an error inside the run (`_inject`) for the exit-1 cases.
Also the checks the bad-input tests share: `balanced` (the accounting identity) and `one_error_line`.
"""

from __future__ import annotations

import json
import sys

from dedup_spark.cli import main as cli_main
from tests.helpers import read_output, report


def _inject(fault: str | None):
    """A fault inside the ingest step, for exit-1 cases: a Spark SQL error or a Python worker crash."""
    import contextlib
    from unittest import mock

    import dedup_spark.pipeline as pipeline

    if fault is None:
        return contextlib.nullcontext()
    real = pipeline.ingest

    def faulty(spark, raw, *args, **kwargs):
        if fault == "spark_sql_error":
            spark.sql("SELECT raise_error('injected fault in a Spark job')").collect()
        elif fault == "python_worker_crash":

            def crash(batches):
                for _ in batches:
                    raise ZeroDivisionError("injected fault in a Python worker")
                yield from ()

            spark.range(4).mapInArrow(crash, "id long").collect()
        return real(spark, raw, *args, **kwargs)

    return mock.patch.object(pipeline, "ingest", faulty)


def main(path: str) -> int:
    with open(path, encoding="utf-8") as stream:
        cases = json.load(stream)
    for case in cases:
        print(f"@@case {case['name']}", file=sys.stderr, flush=True)
        with _inject(case.get("fault")):
            code = cli_main(case["argv"])
        sys.stdout.flush()
        print(f"@@exit {code}", file=sys.stderr, flush=True)
    return 0


def split(stderr: str) -> dict[str, tuple[int, list[str]]]:
    """name -> (exit code, stderr lines of that case)."""
    cases: dict[str, tuple[int, list[str]]] = {}
    name, lines = None, []
    for line in stderr.splitlines():
        if line.startswith("@@case "):
            name, lines = line[len("@@case ") :], []
        elif line.startswith("@@exit ") and name is not None:
            cases[name] = (int(line[len("@@exit ") :]), lines)
            name = None
        elif name is not None:
            lines.append(line)
    return cases


ERROR_PREFIX = "dedup-spark: error: "


def balanced(out, rows_in: int, quarantined: int | None = None) -> dict:
    """The accounting of a finished run: rows read as the test counted them, and the identity holds."""
    acc = report(out)["accounting"]
    assert acc["rows_read"] == rows_in
    assert acc["rows_read"] == acc["rows_written"] + acc["rows_removed"] + acc["rows_quarantined"]
    assert acc["balanced"]
    assert len(read_output(out / "data")) == acc["rows_written"]
    if quarantined is not None:
        assert acc["rows_quarantined"] == quarantined
    return acc


_LOG_RECORD = r"dedup-spark \d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ (INFO|WARNING) "


def one_error_line(lines: list[str]) -> str:
    """The one line of a failed run's stderr that is not one of our own INFO/WARNING log records (the resolved
    config's YAML belongs to its record); it must be the `dedup-spark: error:` line. Anything else (a Java stack,
    a log4j line, a Python traceback, a second message) fails the check."""
    import re

    rest, in_config = [], False
    for line in lines:
        if re.match(_LOG_RECORD, line):
            in_config = line.endswith("resolved config:")
        elif in_config and not line.startswith(ERROR_PREFIX) and re.match(r"^( *[\w.-]+:| *- )", line):
            continue  # the YAML of the resolved config, part of that log record
        else:
            in_config = False
            rest.append(line)
    assert len(rest) == 1, rest[:20]
    assert rest[0].startswith(ERROR_PREFIX), rest
    return rest[0]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
