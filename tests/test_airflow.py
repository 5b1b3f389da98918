"""examples/airflow/: the DAGs load in a real Airflow, pass valid dedup-spark arguments and are idempotent by run_id
(the on-demand DAGs) or by logical date (the daily DAG, whose runs also go one at a time, in order).

Airflow lives in its own venv (`bash scripts/airflow_venv.sh` creates `.venv-airflow`; `.ci/run` does so, and
`DEDUP_SPARK_AIRFLOW_PYTHON` may name another interpreter). One subprocess in that venv fills a DagBag from
examples/airflow/ and renders the templated arguments with the DAGs' own Jinja environments for a few run ids and
logical dates, and for a scheduled DAG also for its first scheduled runs as its timetable makes them; the tests
below check what it reports. Without the venv they are skipped, except under CI, where they fail.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from dedup_spark.cli import build_parser

REPO = Path(__file__).resolve().parents[1]
DAGS = REPO / "examples" / "airflow"
AIRFLOW_PYTHON = Path(os.environ.get("DEDUP_SPARK_AIRFLOW_PYTHON", REPO / ".venv-airflow" / "bin" / "python"))
# Run ids, each with its logical date (a manual run of the daily DAG is given one); two runs share a day.
LOGICAL_DATES = {
    "manual__2026-11-23T10:00:00+00:00": "2026-11-23T10:00:00+00:00",
    "scheduled__2026-11-24T00:00:00+00:00": "2026-11-24T00:00:00+00:00",
    # differs from the first only where path_safe puts "_"; the same day
    "manual__2026-11-23T10_00_00_00_00": "2026-11-23T00:00:00+00:00",
    "../../etc/passwd": "2027-01-01T00:00:00+00:00",  # run ids given through the API are free text
}
RUN_IDS = list(LOGICAL_DATES)
SCHEDULED_RUNS = 3  # scheduled runs of a DAG with a schedule, from its start date, as its timetable makes them

# Runs inside the Airflow venv: argv[1] the DAG folder, argv[2] the run ids with their logical dates as JSON,
# argv[3] how many scheduled runs to make; prints one JSON line.
CHECK = r"""
import inspect, json, sys, types
from datetime import datetime
from airflow.timetables.base import TimeRestriction
try:
    from airflow.serialization.serialized_objects import DagSerialization as Serialization  # newer Airflow 3
except ImportError:
    from airflow.serialization.serialized_objects import SerializedDAG as Serialization
try:
    from airflow.dag_processing.dagbag import DagBag  # Airflow >= 3.2
except ImportError:
    from airflow.models.dagbag import DagBag

# Airflow 3.3 dropped include_examples (AIRFLOW__CORE__LOAD_EXAMPLES=False, set by the test, covers it).
kwargs = {"include_examples": False} if "include_examples" in inspect.signature(DagBag).parameters else {}
bag = DagBag(dag_folder=sys.argv[1], **kwargs)
report = {"import_errors": {k: str(v) for k, v in bag.import_errors.items()}, "dags": {}}
for dag_id, dag in bag.dags.items():
    env = dag.get_template_env()
    runs = [(run_id, datetime.fromisoformat(date), None) for run_id, date in json.loads(sys.argv[2]).items()]
    # The scheduler's copy of the DAG (serialized, loaded back): its timetable computes the scheduled runs.
    timetable = Serialization.from_dict(Serialization.to_dict(dag)).timetable
    periodic = timetable.periodic
    if periodic:  # the first scheduled runs from the start date, as the scheduler makes them
        restriction, last = TimeRestriction(earliest=dag.start_date, latest=None, catchup=dag.catchup), None
        for _ in range(int(sys.argv[3])):
            info = timetable.next_dagrun_info(last_automated_data_interval=last, restriction=restriction)
            runs.append((f"scheduled__{info.logical_date.isoformat()}", info.logical_date, info))
            last = info.data_interval
    renders = []
    for run_id, logical_date, info in runs:
        for try_number in (1, 2):
            context = {
                "run_id": run_id,
                "params": {key: dag.params[key] for key in dag.params},
                "dag": dag,
                "ti": types.SimpleNamespace(try_number=try_number),
                # Stands in for Airflow's Variable accessor, which needs the metadata database.
                "var": {"value": {"dedup_spark_image": "registry.example.com/dedup-spark:0.1.0"}},
                # What Airflow derives from the logical date.
                "logical_date": logical_date,
                "ds": logical_date.strftime("%Y-%m-%d"),
                "ds_nodash": logical_date.strftime("%Y%m%d"),
            }
            rendered = {}
            for task in dag.tasks:
                fields = {}
                for name in task.template_fields:
                    value = getattr(task, name, None)
                    if value is None:
                        continue
                    fields[name] = task.render_template(value, context, env)
                rendered[task.task_id] = fields
            render = {"run_id": run_id, "try_number": try_number, "tasks": rendered}
            if info is not None:
                interval = info.data_interval
                render["scheduled"] = {"start": interval.start.isoformat(), "end": interval.end.isoformat(),
                                       "run_after": info.run_after.isoformat()}
            renders.append(render)
    raw_fields = ("application", "application_args", "conn_id", "conf", "json")
    report["dags"][dag_id] = {
        "tasks": {t.task_id: {"class": type(t).__name__, "template_fields": list(t.template_fields),
                              "depends_on_past": t.depends_on_past, "retries": t.retries,
                              "retry_delay_seconds": t.retry_delay.total_seconds()}
                  for t in dag.tasks},
        "dag": {"max_active_runs": dag.max_active_runs, "catchup": dag.catchup,
                "max_consecutive_failed_dag_runs": dag.max_consecutive_failed_dag_runs,
                "periodic": periodic, "start_date": dag.start_date and dag.start_date.isoformat()},
        "raw": {t.task_id: {k: getattr(t, k, None) for k in raw_fields} for t in dag.tasks},
        "renders": renders,
    }
print(json.dumps(report, default=str))
"""


@pytest.fixture(scope="module")
def airflow_report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    if not AIRFLOW_PYTHON.exists():
        message = f"no Airflow venv at {AIRFLOW_PYTHON}: bash scripts/airflow_venv.sh creates it"
        if os.environ.get("CI"):
            pytest.fail(message + " (.ci/run must create it, so that CI loads the DAGs)")
        pytest.skip(message)
    home = tmp_path_factory.mktemp("airflow_home")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(AIRFLOW_HOME=str(home), AIRFLOW__CORE__LOAD_EXAMPLES="False", AIRFLOW__CORE__DAGS_FOLDER=str(DAGS))
    proc = subprocess.run(
        [str(AIRFLOW_PYTHON), "-c", CHECK, str(DAGS), json.dumps(LOGICAL_DATES), str(SCHEDULED_RUNS)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=home,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def expected_folder(run_id: str) -> str:
    """Hand-written rule of the DAG docstrings: readable part, then 8 hex digits of SHA-256 of the run id."""
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", run_id).lstrip(".")
    return f"{readable}-{hashlib.sha256(run_id.encode()).hexdigest()[:8]}"


def renders_of(report: dict, dag_id: str, task_id: str = "dedup") -> list[tuple[str, int, dict]]:
    return [(r["run_id"], r["try_number"], r["tasks"][task_id]) for r in report["dags"][dag_id]["renders"]]


def test_dags_load_without_import_errors(airflow_report: dict) -> None:
    assert airflow_report["import_errors"] == {}
    assert set(airflow_report["dags"]) == {"dedup_spark", "dedup_spark_databricks", "dedup_spark_daily"}
    daily = airflow_report["dags"]["dedup_spark_daily"]["tasks"]
    assert {k: v["class"] for k, v in daily.items()} == {"dedup": "SparkSubmitOperator"}
    assert {"application", "application_args"} <= set(daily["dedup"]["template_fields"])
    spark = airflow_report["dags"]["dedup_spark"]["tasks"]
    databricks = airflow_report["dags"]["dedup_spark_databricks"]["tasks"]
    assert {k: v["class"] for k, v in spark.items()} == {"dedup": "SparkSubmitOperator"}
    assert {k: v["class"] for k, v in databricks.items()} == {"dedup": "DatabricksRunNowOperator"}
    assert {"application", "application_args"} <= set(spark["dedup"]["template_fields"])
    assert "json" in databricks["dedup"]["template_fields"]  # job_name etc. are templated inside it or on their own


def test_spark_submit_runs_the_entry_point_with_our_cli(airflow_report: dict) -> None:
    raw = airflow_report["dags"]["dedup_spark"]["raw"]["dedup"]
    assert raw["application"].endswith("/jobs/run_dedup.py")
    assert raw["application"] == "local:///opt/dedup-spark/jobs/run_dedup.py"  # docker/Dockerfile's path
    args = raw["application_args"]
    assert args[0] == "run" and "--overwrite" in args
    assert any(a.startswith("--input=") for a in args) and any(a.startswith("--output=") for a in args)
    assert "spark.kubernetes.container.image" in raw["conf"]


def test_spark_submit_output_is_per_run_and_stable_across_tries(airflow_report: dict) -> None:
    folders = {}
    for run_id, _try_number, fields in renders_of(airflow_report, "dedup_spark"):
        args = build_parser().parse_args(fields["application_args"])  # the rendered arguments are valid CLI input
        assert args.command == "run" and args.overwrite and args.input == "s3a://my-bucket/corpus/"
        assert args.stages == "neardup,exactsubstr"
        assert fields["conf"]["spark.kubernetes.container.image"] == "registry.example.com/dedup-spark:0.1.0"
        assert args.output == f"s3a://my-bucket/dedup/{expected_folder(run_id)}"
        folder = args.output.rsplit("/", 1)[1]
        assert not folder.startswith(".") and folders.setdefault(run_id, folder) == folder  # same on every try
    assert len(set(folders.values())) == len(RUN_IDS)  # never another run's folder
    assert folders["manual__2026-11-23T10:00:00+00:00"].startswith("manual__2026-11-23T10_00_00_00_00-")


def test_databricks_run_now_passes_per_run_output(airflow_report: dict) -> None:
    job = json.loads((DAGS / "databricks_job.json").read_text())
    declared = {p["name"] for p in job["parameters"]}
    outputs = {}
    tokens = {}
    for run_id, try_number, fields in renders_of(airflow_report, "dedup_spark_databricks"):
        # Older providers merge the named arguments into `json` at construction, newer ones at execution.
        request = {**(fields.get("json") or {}), **{k: v for k, v in fields.items() if k != "json"}}
        assert request["job_name"] == job["name"]
        params = request["job_parameters"]
        assert set(params) == declared  # the DAG passes exactly the job's parameters
        assert params["output"] == f"s3://my-bucket/dedup/{expected_folder(run_id)}"
        assert outputs.setdefault(run_id, params["output"]) == params["output"]
        token = request["idempotency_token"]
        assert re.fullmatch(r"[0-9a-f]{40}", token)
        tokens[(run_id, try_number)] = token
        # What the job's Python task receives, after Databricks substitutes {{job.parameters.x}}:
        template = job["tasks"][0]["spark_python_task"]["parameters"]
        argv = [re.sub(r"\{\{job\.parameters\.(\w+)\}\}", lambda m, p=params: p[m.group(1)], a) for a in template]
        parsed = build_parser().parse_args(argv)
        assert parsed.output == params["output"] and parsed.overwrite
    assert len(set(outputs.values())) == len(RUN_IDS)
    assert len(set(tokens.values())) == len(tokens)  # a new try, or another run, starts a new Databricks run


def test_databricks_job_spec_runs_the_entry_point() -> None:
    """No Airflow needed: the job definition beside the DAG runs jobs/run_dedup.py with every parameter used."""
    job = json.loads((DAGS / "databricks_job.json").read_text())
    (task,) = job["tasks"]
    python_task = task["spark_python_task"]
    assert python_task["python_file"].endswith("/jobs/run_dedup.py")
    args = python_task["parameters"]
    assert args[0] == "run" and "--overwrite" in args
    used = set(re.findall(r"\{\{job\.parameters\.(\w+)\}\}", " ".join(args)))
    assert used == {p["name"] for p in job["parameters"]}
    assert {"input", "output"} <= used


def test_daily_dag_adds_batches_in_order_one_at_a_time(airflow_report: dict) -> None:
    """The index takes one batch at a time, in order: one active run, a day waits for the day before, a day that
    fails for good pauses the DAG; failures are retried after a delay (a retry resumes, or re-checks after a
    conflicting commit); missed days are caught up."""
    report = airflow_report["dags"]["dedup_spark_daily"]
    assert report["dag"]["max_active_runs"] == 1
    assert report["dag"]["max_consecutive_failed_dag_runs"] == 1
    assert report["dag"]["periodic"] and report["dag"]["catchup"]
    (task,) = report["tasks"].values()
    assert task["depends_on_past"] is True
    assert task["retries"] >= 1 and task["retry_delay_seconds"] >= 60
    for other in ("dedup_spark", "dedup_spark_databricks"):  # the on-demand DAGs keep no such order
        assert not airflow_report["dags"][other]["dag"]["periodic"]


def test_daily_dag_runs_each_day_after_it_ends_on_that_days_batch(airflow_report: dict) -> None:
    """The scheduler's runs, from the timetable: one per day from the start date; day D's run reads D's batch,
    writes D's folder and starts only once D is over (its batch complete)."""
    start = datetime.fromisoformat(airflow_report["dags"]["dedup_spark_daily"]["dag"]["start_date"])
    scheduled = [r for r in airflow_report["dags"]["dedup_spark_daily"]["renders"] if "scheduled" in r]
    days = sorted({r["scheduled"]["start"] for r in scheduled})
    assert len(days) == SCHEDULED_RUNS
    for n, render in enumerate(r for r in scheduled if r["try_number"] == 1):
        day = start + timedelta(days=n)
        interval = render["scheduled"]
        assert datetime.fromisoformat(interval["start"]) == day
        assert datetime.fromisoformat(interval["end"]) == day + timedelta(days=1)
        assert datetime.fromisoformat(interval["run_after"]) >= day + timedelta(days=1)
        args = build_parser().parse_args(render["tasks"]["dedup"]["application_args"])
        assert args.input == f"s3a://my-bucket/batches/{day:%Y-%m-%d}/"
        assert args.output == f"s3a://my-bucket/dedup-daily/{day:%Y-%m-%d}"


def test_daily_dag_arguments_are_per_day_and_stable_across_runs_of_a_day(airflow_report: dict) -> None:
    """Every render parses with our CLI, with --index and --overwrite; the input and output folders depend only
    on the logical date, so a retry or a cleared and re-run day repeats its command exactly (and resumes), while
    another day never touches them."""
    raw = airflow_report["dags"]["dedup_spark_daily"]["raw"]["dedup"]
    assert raw["application"] == "local:///opt/dedup-spark/jobs/run_dedup.py"
    commands: dict[str, list[str]] = {}
    for run_id, _try_number, fields in renders_of(airflow_report, "dedup_spark_daily"):
        argv = fields["application_args"]
        args = build_parser().parse_args(argv)
        assert args.command == "run" and args.overwrite and args.index == "s3a://my-bucket/dedup-index"
        assert args.index_mode is None or args.index_mode == "update"  # adds the day's survivors
        assert args.stages == "neardup,exactsubstr"
        assert fields["conf"]["spark.kubernetes.container.image"] == "registry.example.com/dedup-spark:0.1.0"
        day = re.fullmatch(r"s3a://my-bucket/batches/(\d{4}-\d{2}-\d{2})/", args.input).group(1)
        assert args.output == f"s3a://my-bucket/dedup-daily/{day}"
        if run_id in LOGICAL_DATES:
            assert day == LOGICAL_DATES[run_id][:10]
        assert commands.setdefault(day, argv) == argv
    # Four given runs on three days, plus the scheduled days.
    assert len(commands) == len(set(d[:10] for d in LOGICAL_DATES.values())) + SCHEDULED_RUNS
