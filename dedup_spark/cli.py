"""Command line: `dedup-spark run --input=PATH --output=DIR [options]`.

Exit codes (Airflow and Databricks decide success by these alone):
  0 success, 1 unexpected error, 2 usage or config error, 3 input error.
One line on stderr says what went wrong and how to fix it; `--verbose` adds the traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
import traceback

from dedup_spark import __version__
from dedup_spark.config import INPUT_FORMATS, OUTPUT_FORMATS, dump_yaml, resolve_config
from dedup_spark.errors import DedupSparkError, InputError

log = logging.getLogger("dedup_spark")

# Phrases in Spark/Java errors that mean the input data, not our code, is at fault.
_INPUT_ERROR_MARKERS = (
    "PATH_NOT_FOUND",
    "FileNotFoundException",
    "is not a Parquet file",
    "Could not read footer",
    "CANNOT_READ_FILE_FOOTER",
    "UNABLE_TO_INFER_SCHEMA",
    "FAILED_READ_FILE",
    "Malformed",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dedup-spark", description="Remove near-duplicate documents and repeated substrings from a text corpus."
    )
    parser.add_argument("--version", action="version", version=f"dedup-spark {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="deduplicate a corpus")
    run.add_argument("--input", required=True, help="file, folder, glob or Delta table to read")
    run.add_argument("--output", required=True, help="output folder: data/, removed/, quarantine/, report.json")
    run.add_argument("--input-format", choices=INPUT_FORMATS, help="default: auto (from _delta_log and suffixes)")
    run.add_argument("--output-format", choices=OUTPUT_FORMATS, help="default: parquet")
    run.add_argument("--config", help="YAML config file (see conf/default.yaml)")
    run.add_argument("--stages", help="comma-separated dedup stages to run after ingest, in order")
    run.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override any config key")
    run.add_argument(
        "--dry-run", action="store_true", help="check config, input schema and output, print the plan; write nothing"
    )
    run.add_argument(
        "--stop-after",
        metavar="STEP",
        help="run ingest and the stages up to STEP, keep _work/ and stop; the same command without it resumes",
    )
    run.add_argument(
        "--protect",
        action="append",
        metavar="PATH",
        help="held-out set (repeatable): never removed; input documents near-duplicating it are removed",
    )
    run.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    run.add_argument("--verbose", action="store_true", help="debug logging and tracebacks on errors")
    _add_contamination_parser(commands)
    return parser


def _add_contamination_parser(commands: argparse._SubParsersAction) -> None:
    """`contamination`: eval documents and eval text found in a train set (options as for `run`)."""
    sub = commands.add_parser("contamination", help="find eval documents and text that occur in a train set")
    sub.add_argument("--train", required=True, help="train set: file, folder, glob or Delta table")
    sub.add_argument("--eval", required=True, help="eval set: file, folder, glob or Delta table (never changed)")
    sub.add_argument("--output", required=True, help="output folder: eval/, report.json, quarantine/ (+ train_clean/)")
    sub.add_argument("--input-format", choices=INPUT_FORMATS, help="format of both sets; default: auto")
    sub.add_argument("--output-format", choices=OUTPUT_FORMATS, help="default: parquet")
    sub.add_argument("--config", help="YAML config file (see conf/default.yaml)")
    sub.add_argument("--stages", help="tools to use: neardup,exactsubstr (default: both)")
    sub.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override any config key")
    sub.add_argument("--clean-train", action="store_true", help="also write train_clean/ and train_removed/")
    sub.add_argument("--dry-run", action="store_true", help="check config, inputs and output; write nothing")
    sub.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    sub.add_argument("--verbose", action="store_true", help="debug logging and tracebacks on errors")


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse already printed the usage error (exit 2) or the help (exit 0)
        return int(exc.code or 0)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="dedup-spark %(asctime)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("py4j").setLevel(logging.WARNING)
    try:
        return _run_contamination(args) if args.command == "contamination" else _run(args)
    except DedupSparkError as exc:
        return _fail(exc.exit_code, str(exc), args.verbose)
    except ModuleNotFoundError as exc:
        if exc.name != "pyspark":
            raise
        # pyspark is an extra: clusters (Databricks, images with Spark) bring their own.
        message = "pyspark is not installed: pip install 'dedup-spark[spark]', or run where Spark is provided"
        return _fail(2, message, args.verbose)
    except Exception as exc:  # Spark surfaces unreadable input as generic Java errors at action time
        message = str(exc)
        if any(marker in message for marker in _INPUT_ERROR_MARKERS):
            return _fail(InputError.exit_code, f"cannot read the input: {_first_line(message)}", args.verbose)
        return _fail(1, f"unexpected error: {type(exc).__name__}: {_first_line(message)}", args.verbose)


def _settings(args: argparse.Namespace, input_path: str) -> dict[str, object]:
    """The settings the options both commands share give (None: not given, the config file or default decides)."""
    return {
        "input.path": input_path,
        "output.path": args.output,
        "input.format": args.input_format,
        "output.format": args.output_format,
        "stages": args.stages,
        "output.overwrite": True if args.overwrite else None,
        "dry_run": True if args.dry_run else None,
    }


def _run(args: argparse.Namespace) -> int:
    cli_settings = {**_settings(args, args.input), "stop_after": args.stop_after, "protect": args.protect}
    config = resolve_config(args.config, cli_settings, args.set)
    log.info("resolved config:\n%s", dump_yaml(config).rstrip())

    from dedup_spark.pipeline import run_pipeline  # imports pyspark: keep --help and config errors fast
    from dedup_spark.session import get_or_create_session

    spark = get_or_create_session()
    report = run_pipeline(spark, config)
    print(report.summary())
    return 0


def _run_contamination(args: argparse.Namespace) -> int:
    from pathlib import Path

    from dedup_spark.errors import ConfigError

    config = resolve_config(args.config, _settings(args, args.train), args.set)
    if Path(args.eval).resolve() == Path(args.output).resolve():
        raise ConfigError("--output must not be the same path as --eval")
    log.info("resolved config:\n%s", dump_yaml(config).rstrip())

    from dedup_spark.contamination import run_contamination, summary_lines
    from dedup_spark.session import get_or_create_session

    spark = get_or_create_session()
    report = run_contamination(spark, config, args.eval, args.clean_train)
    if report["status"] == "succeeded":
        print(summary_lines(report))
    return 0


def _first_line(message: str) -> str:
    lines = [line for line in message.strip().splitlines() if line.strip()]
    return lines[0][:400] if lines else ""


def _fail(code: int, message: str, verbose: bool) -> int:
    if verbose:
        traceback.print_exc()
    print(f"dedup-spark: error: {message}", file=sys.stderr)
    return code


def console_main() -> None:
    """The `dedup-spark` console script: exits with main's code. Databricks python_wheel_task ignores an entry
    point's return value, so a failure must raise SystemExit to fail the task."""
    code = main()
    if code:
        raise SystemExit(code)


if __name__ == "__main__":
    sys.exit(main())
