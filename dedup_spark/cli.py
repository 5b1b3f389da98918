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
from dedup_spark.errors import DedupSparkError

log = logging.getLogger("dedup_spark")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dedup-spark", description="Remove near-duplicate documents and repeated substrings from a text corpus."
    )
    parser.add_argument("--version", action="version", version=f"dedup-spark {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="deduplicate a corpus")
    run.add_argument("--input", required=True, help="file, folder, glob or Delta table to read")
    run.add_argument("--output", required=True, help="output folder: data/, removed/, quarantine/, report.json")
    _add_shared_options(
        run,
        "comma-separated dedup stages to run after ingest, in order",
        "default: auto (from _delta_log and suffixes)",
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
    run.add_argument(
        "--index",
        metavar="INDEX",
        help="index of everything kept so far (Delta tables): check the batch against it, then add the survivors",
    )
    run.add_argument(
        "--index-mode", choices=("update", "read-only"), help="read-only: check against --index, add nothing"
    )

    sub = commands.add_parser("contamination", help="find eval documents and text that occur in a train set")
    sub.add_argument("--train", required=True, help="train set: file, folder, glob or Delta table")
    sub.add_argument("--eval", required=True, help="eval set: file, folder, glob or Delta table (never changed)")
    sub.add_argument("--output", required=True, help="output folder: eval/, report.json, quarantine/ (+ train_clean/)")
    _add_shared_options(sub, "tools to use: neardup,exactsubstr (default: both)", "format of both sets; default: auto")
    sub.add_argument("--clean-train", action="store_true", help="also write train_clean/ and train_removed/")
    index = commands.add_parser("index", help="manage the index of `run --index`")
    actions = index.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="seed a new index from a corpus already published (as it is)")
    create.add_argument("--input", required=True, help="the corpus: file, folder, glob or Delta table")
    create.add_argument("--index", required=True, help="folder of the new index")
    create.add_argument("--input-format", choices=INPUT_FORMATS, help="default: auto (from _delta_log and suffixes)")
    create.add_argument("--config", help="YAML config file (input.* settings are used)")
    create.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override a key")
    create.add_argument("--verbose", action="store_true", help="debug logging and tracebacks on errors")
    create.add_argument("--remote", metavar="URL", help="run on a Spark Connect server (sc://host:port)")
    return parser


def _add_shared_options(command: argparse.ArgumentParser, stages_help: str, input_format_help: str) -> None:
    """The options `run` and `contamination` share (read by `_settings`)."""
    command.add_argument("--input-format", choices=INPUT_FORMATS, help=input_format_help)
    command.add_argument("--output-format", choices=OUTPUT_FORMATS, help="default: parquet")
    command.add_argument("--config", help="YAML config file (see conf/default.yaml)")
    command.add_argument("--stages", help=stages_help)
    command.add_argument(
        "--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override any config key"
    )
    command.add_argument("--dry-run", action="store_true", help="check config, inputs and output; write nothing")
    command.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    command.add_argument("--verbose", action="store_true", help="debug logging and tracebacks on errors")
    command.add_argument(
        "--remote",
        metavar="URL",
        help="run on a Spark Connect server (sc://host:port); default: $SPARK_REMOTE, else a classic session",
    )


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
    logging.captureWarnings(True)  # Python warnings become log records like ours, not loose lines on stderr
    if not args.verbose:  # PySpark logs every failed query as a JSON record with the Java stack; our line says it
        logging.getLogger("DataFrameQueryContextLogger").setLevel(logging.CRITICAL + 1)
    args.paths = (None, None)  # (input, output) once the config is resolved, for naming them in errors
    code = _command(args)
    session = sys.modules.get("dedup_spark.session")  # imported by a command that started Spark
    if session is not None:
        sys.stdout.flush()  # the summary shows before any wait for the class archive
        session.finish_class_archive(saved=code == 0)
    return code


def _command(args: argparse.Namespace) -> int:
    """Run the parsed command; its exit code (errors printed as one line, see the module docstring)."""
    try:
        if args.command == "index":
            return _run_index(args)
        return _run_contamination(args) if args.command == "contamination" else _run(args)
    except DedupSparkError as exc:
        return _fail(exc.exit_code, str(exc), args.verbose)
    except ModuleNotFoundError as exc:
        if exc.name != "pyspark":
            raise
        # pyspark is an extra: clusters (Databricks, images with Spark) bring their own.
        message = "pyspark is not installed: pip install 'dedup-spark[spark]', or run where Spark is provided"
        return _fail(2, message, args.verbose)
    except Exception as exc:  # Spark surfaces unreadable input, full disks, ... as generic Java errors
        from dedup_spark.failures import describe

        code, message = describe(exc, *args.paths)
        if code == 1 and getattr(args, "spark_log", None):
            message += f" (Spark's log: {args.spark_log})"
        return _fail(code, message, args.verbose)


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
    cli_settings.update({"index.path": args.index, "index.mode": args.index_mode})
    config = resolve_config(args.config, cli_settings, args.set)
    args.paths = (config.input.path, config.output.path)
    log.info("resolved config:\n%s", dump_yaml(config).rstrip())
    with _locked(config.output, config.dry_run):
        from dedup_spark.pipeline import run_pipeline  # imports pyspark: keep --help and config errors fast

        spark = _session(args, config)
        report = run_pipeline(spark, config)
    print(report.summary())
    return 0


def _locked(output, dry_run: bool):
    """The output folder's lock (outputlock.py) for a run that writes; nothing for a dry run."""
    import contextlib

    from dedup_spark.io.outputlock import output_lock

    folder = output.path
    if not any(c in output.path for c in "/:\\") and output.path.count(".") >= 2:
        folder = output.work_path  # --output names catalog tables: report.json and _work live in work_path
    if dry_run or not folder:
        return contextlib.nullcontext()  # nothing written; or no work_path, which the output check refuses
    return output_lock(folder)


def _session(args: argparse.Namespace, config):
    """The SparkSession (`--remote`: a Spark Connect one), with the run's task slots setting; without --verbose
    the JVM's own stderr goes to a log file named in the log."""
    from dedup_spark import session

    session.use_task_slots(config.spark.task_slots)
    if args.verbose:
        return session.get_or_create_session(remote=args.remote, own_driver_options=True)
    log_file = session.spark_log_in_use or session.new_spark_log_path()
    spark = session.get_or_create_session(remote=args.remote, spark_log=log_file, own_driver_options=True)
    args.spark_log = session.spark_log_in_use
    if args.spark_log:
        log.info("Spark's own log: %s (--verbose shows it here)", args.spark_log)
    return spark


def _run_contamination(args: argparse.Namespace) -> int:
    from dedup_spark.errors import ConfigError
    from dedup_spark.io.paths import overlap

    config = resolve_config(args.config, _settings(args, args.train), args.set)
    args.paths = (config.input.path, config.output.path)
    if overlap(args.eval, args.output):
        raise ConfigError(
            f"--output {args.output!r} and --eval {args.eval!r} overlap (one is inside the other): "
            "pass an output folder outside the eval set"
        )
    log.info("resolved config:\n%s", dump_yaml(config).rstrip())

    with _locked(config.output, config.dry_run):
        from dedup_spark.contamination import run_contamination, summary_lines

        spark = _session(args, config)
        report = run_contamination(spark, config, args.eval, args.clean_train)
    if report["status"] == "succeeded":
        print(summary_lines(report))
    return 0


def _run_index(args: argparse.Namespace) -> int:
    """`index create`: the corpus, ingested with the input settings, becomes a new index (index/incremental.py)."""
    settings = {"input.path": args.input, "output.path": args.index, "input.format": args.input_format}
    config = resolve_config(args.config, settings, args.set)  # output.path: the index folder (checked apart)
    args.paths = (config.input.path, args.index)
    args.dry_run = False
    from dedup_spark.index.incremental import create_index

    spark = _session(args, config)
    summary = create_index(spark, config, args.index)
    print(f"dedup-spark index created: {args.index} version {summary['version']}, {summary['documents']:,} documents")
    return 0


def _fail(code: int, message: str, verbose: bool) -> int:
    if verbose:
        traceback.print_exc()
    one_line = " ".join(part.strip() for part in str(message).splitlines() if part.strip())
    print(f"dedup-spark: error: {one_line}", file=sys.stderr)
    return code


def console_main() -> None:
    """The `dedup-spark` console script: exits with main's code. Databricks python_wheel_task ignores an entry
    point's return value, so a failure must raise SystemExit to fail the task."""
    code = main()
    if code:
        raise SystemExit(code)


if __name__ == "__main__":
    sys.exit(main())
