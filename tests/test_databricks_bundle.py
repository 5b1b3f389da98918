"""The Databricks Asset Bundle (databricks.yml, resources/*.yml): structure, variables, and that every task's
entry point and parameters resolve to our CLI the way a Databricks python_wheel_task calls it.

No Databricks here: the YAML is checked against the documented bundle schema by hand, and the tasks are run
through the real entry point (argparse, config resolution, resume fingerprints) with the pipeline replaced, after
the bundle's ${...} and the job parameters' {{...}} are resolved as the CLI and Databricks resolve them. The daily
job's own checks are in tests/test_databricks_daily.py.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
from importlib import metadata
from itertools import pairwise
from pathlib import Path

import pytest
import yaml

from dedup_spark import cli, resume
from dedup_spark.io import writers

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "databricks.yml"
STEPS = ("ingest", "neardup", "exactsubstr")
# Sample values for what a deployment supplies: the required variable, and the current user (dev target).
SAMPLE = {"var.input_table": "main.raw.corpus", "workspace.current_user.short_name": "alice"}
# Interpolations the bundle may use besides ${var.*}.
KNOWN_REFERENCES = {"bundle.name", "bundle.target", "workspace.current_user.short_name"}
_REFERENCE = re.compile(r"\$\{([A-Za-z0-9_.\-]+)\}")
# Left out of the project copy the slow test builds from.
_NOT_BUILT = (".venv", ".git", "build", "dist", "*.egg-info", "data", "benchmarks", "out", "__pycache__")


def _pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def _entry_point(wheel_task: dict) -> metadata.EntryPoint:
    """The entry point a python_wheel_task runs, found the way Databricks finds it: by name, in the metadata of
    the installed distribution `package_name`."""
    found = metadata.distribution(wheel_task["package_name"]).entry_points
    (entry,) = [e for e in found if e.name == wheel_task["entry_point"]]
    return entry


@pytest.fixture(scope="module")
def bundle() -> dict:
    return load_bundle()


def load_bundle() -> dict:
    """databricks.yml with the files of its `include` globs merged in (resources are keyed by name)."""
    root = yaml.safe_load(BUNDLE.read_text())
    root["_files"] = {}
    for pattern in root.get("include", []):
        files = sorted(REPO.glob(pattern))
        assert files, f"include pattern {pattern!r} matches no file"
        for file in files:
            part = yaml.safe_load(file.read_text())
            assert set(part) <= {"resources", "variables", "targets"}, f"{file.name}: unexpected top-level keys"
            for kind, items in part.get("resources", {}).items():
                for name, resource in items.items():
                    assert name not in root.setdefault("resources", {}).setdefault(kind, {}), f"{name} twice"
                    root["resources"][kind][name] = resource
                    root["_files"][name] = file
    return root


# A job cluster (classic compute); the daily batch against the index (job cluster); serverless compute.
JOBS = ("dedup_spark", "dedup_spark_daily", "dedup_spark_serverless")
CLUSTER_JOBS = ("dedup_spark", "dedup_spark_daily")
# The day a schedule triggers a run of the daily job, and a day given by hand (`--params batch_date=...`).
TRIGGER_DATE, GIVEN_DATE = "2026-12-07", "2026-12-05"
_DYNAMIC = re.compile(r"\{\{\s*([A-Za-z0-9_.]+)\s*\}\}")


@pytest.fixture(scope="module")
def jobs(bundle) -> dict[str, dict]:
    assert tuple(bundle["resources"]["jobs"]) == JOBS
    return bundle["resources"]["jobs"]


@pytest.fixture(scope="module")
def job(jobs) -> dict:
    return jobs["dedup_spark"]


@pytest.fixture(params=JOBS)
def any_job(request, jobs) -> dict:
    return jobs[request.param]


@pytest.fixture(params=CLUSTER_JOBS)
def cluster_job_name(request) -> str:
    return request.param


def _values(bundle: dict, target: str) -> dict[str, object]:
    """Variable values as a deployment to `target` sees them: defaults, target overrides, SAMPLE."""
    values = {f"var.{k}": v["default"] for k, v in bundle["variables"].items() if "default" in v}
    values.update({f"var.{k}": v for k, v in bundle["targets"][target].get("variables", {}).items()})
    values.update(SAMPLE)
    values["bundle.name"], values["bundle.target"] = bundle["bundle"]["name"], target
    return {key: _substitute(value, values) for key, value in values.items()}


def _substitute(value: object, values: dict[str, object]) -> object:
    """Resolve ${...} references recursively, as the Databricks CLI does at deploy time."""
    if isinstance(value, dict):
        return {k: _substitute(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, values) for v in value]
    if not isinstance(value, str):
        return value
    for _ in range(5):  # a target's value may itself hold a reference
        value = _REFERENCE.sub(lambda m: str(values[m.group(1)]), value)
    return value


def _run_parameters(job: dict, given: dict[str, str]) -> dict[str, str]:
    """The job parameters of a run, as Databricks sets them: the defaults, with the dynamic value references of the
    trigger resolved (a scheduled run at TRIGGER_DATE), overridden by those given (`--params`)."""
    trigger = {"job.trigger.time.iso_date": TRIGGER_DATE}
    defaults = {p["name"]: _DYNAMIC.sub(lambda m: trigger[m.group(1)], p["default"]) for p in job.get("parameters", [])}
    assert set(given) <= set(defaults), "a parameter the job does not declare"
    return {**defaults, **given}


def _resolve_dynamic(value: object, parameters: dict[str, str]) -> object:
    """Replace {{job.parameters.<name>}} as Databricks does when a task starts; any other {{...}} is an error here."""
    if isinstance(value, list):
        return [_resolve_dynamic(v, parameters) for v in value]
    if not isinstance(value, str):
        return value

    def one(match: re.Match) -> str:
        namespace, _, name = match.group(1).rpartition(".")
        assert namespace == "job.parameters" and name in parameters, f"unknown reference {match.group(0)}"
        return parameters[name]

    return _DYNAMIC.sub(one, value)


def _resolve_dynamic_tasks(tasks: list[dict], parameters: dict[str, str]) -> list[dict]:
    """The tasks as they start: their parameters' {{job.parameters.<name>}} resolved."""
    for task in tasks:
        wheel_task = task["python_wheel_task"]
        wheel_task["parameters"] = _resolve_dynamic(wheel_task["parameters"], parameters)
    return tasks


def _references(value: object) -> set[str]:
    if isinstance(value, dict):
        return set().union(*(_references(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(_references(v) for v in value)) if value else set()
    return set(_REFERENCE.findall(value)) if isinstance(value, str) else set()


def test_bundle_has_name_artifact_and_dev_and_prod_targets(bundle):
    assert bundle["bundle"]["name"] == "dedup_spark"
    targets = bundle["targets"]
    assert set(targets) == {"dev", "prod"}
    assert [name for name, t in targets.items() if t.get("default")] == ["dev"]
    assert targets["dev"]["mode"] == "development"
    # Production mode needs an explicit root_path (one shared copy), per the bundle docs.
    assert targets["prod"]["mode"] == "production" and targets["prod"]["workspace"]["root_path"]
    (artifact,) = bundle["artifacts"].values()
    assert artifact["type"] == "whl" and artifact["path"] == "."
    assert (REPO / artifact["path"] / "pyproject.toml").is_file()
    assert "--wheel-dir dist" in artifact["build"]  # the folder the tasks' libraries point into


def test_every_variable_used_is_defined_and_every_defined_one_used(bundle):
    defined = set(bundle["variables"])
    tree = {k: v for k, v in bundle.items() if k not in ("variables", "_files")}
    used = _references(tree)
    assert {r.removeprefix("var.") for r in used if r.startswith("var.")} == defined
    assert {r for r in used if not r.startswith("var.")} <= KNOWN_REFERENCES
    for target in bundle["targets"].values():
        assert set(target.get("variables", {})) <= defined
    # Only the input has no default: a deployment must name it (--var input_table=...).
    assert [k for k, v in bundle["variables"].items() if "default" not in v] == ["input_table"]
    assert all(v.get("description") for v in bundle["variables"].values())


def test_job_chains_three_wheel_tasks_on_one_job_cluster(bundle, jobs, cluster_job_name):
    job = jobs[cluster_job_name]
    tasks = job["tasks"]
    assert [t["task_key"] for t in tasks] == list(STEPS)
    assert "depends_on" not in tasks[0]
    for before, task in pairwise(tasks):
        assert task["depends_on"] == [{"task_key": before["task_key"]}]
    assert job["max_concurrent_runs"] == 1  # runs share the work folder and the tables
    (cluster,) = job["job_clusters"]
    assert cluster["new_cluster"]["data_security_mode"] == "SINGLE_USER"  # Unity Catalog with Python UDFs
    assert {"spark_version", "node_type_id", "num_workers"} <= set(cluster["new_cluster"])
    (artifact,) = bundle["artifacts"].values()
    wheel_dir = (REPO / artifact["path"] / "dist").resolve()
    for task in tasks:
        assert task["job_cluster_key"] == cluster["job_cluster_key"]
        assert set(task["python_wheel_task"]) == {"package_name", "entry_point", "parameters"}
        (library,) = task["libraries"]
        whl = (bundle["_files"][cluster_job_name].parent / library["whl"]).resolve(strict=False)
        assert whl.parent == wheel_dir and whl.name == "*.whl"


def test_serverless_job_runs_the_same_tasks_in_an_environment_with_the_wheel(bundle, jobs):
    """No cluster: each task names the job's environment, whose dependencies install the wheel the artifact
    builds; the parameters are the classic job's plus the task slots that serverless does not show."""
    serverless, classic = jobs["dedup_spark_serverless"], jobs["dedup_spark"]
    assert "job_clusters" not in serverless and serverless["max_concurrent_runs"] == 1
    (environment,) = serverless["environments"]
    assert environment["spec"]["environment_version"] == "4"
    (dependency,) = environment["spec"]["dependencies"]
    (artifact,) = bundle["artifacts"].values()
    whl = (bundle["_files"]["dedup_spark_serverless"].parent / dependency).resolve(strict=False)
    assert whl.parent == (REPO / artifact["path"] / "dist").resolve() and whl.name == "*.whl"
    for task, twin in zip(serverless["tasks"], classic["tasks"], strict=True):
        assert task["environment_key"] == environment["environment_key"]
        assert not {"job_cluster_key", "libraries", "new_cluster", "existing_cluster_id"} & set(task)
        assert task.get("depends_on") == twin.get("depends_on") and task["task_key"] == twin["task_key"]
        parameters = task["python_wheel_task"]["parameters"]
        slots = "--set=spark.task_slots=${var.serverless_task_slots}"
        assert [p for p in parameters if p != slots] == twin["python_wheel_task"]["parameters"]
        assert slots in parameters


def test_job_matches_the_databricks_job_schema(any_job):
    """databricks-bundles holds Databricks' own typed job models, generated from the bundle JSON schema: they
    reject unknown fields, wrong enum values and wrong types (${var.*} is accepted where a value may be one)."""
    jobs = pytest.importorskip("databricks.bundles.jobs")
    parsed = jobs.Job.from_dict(any_job)
    assert [task.task_key for task in parsed.tasks] == list(STEPS)
    assert all(task.python_wheel_task.entry_point == "dedup-spark" for task in parsed.tasks)


def test_package_name_and_entry_point_resolve_like_databricks_does(any_job):
    """Databricks looks the entry point up in the installed distribution's metadata, then calls it."""
    project = _pyproject()["project"]
    for task in any_job["tasks"]:
        wheel_task = task["python_wheel_task"]
        assert wheel_task["package_name"] == project["name"]
        # A wrapper of cli.main that turns a non-zero code into SystemExit (test_a_failing_run_fails_...).
        target = project["scripts"][wheel_task["entry_point"]]
        assert target == "dedup_spark.cli:console_main"
        assert _entry_point(wheel_task).load() is getattr(cli, target.split(":")[1])


def _call_tasks(tasks: list[dict], monkeypatch) -> list:
    """Call each task's entry point as Databricks does (sys.argv = [package, *parameters]) with the pipeline
    replaced; returns the configs it was given."""
    import dedup_spark.pipeline
    import dedup_spark.session

    configs = []

    class Report:
        def summary(self) -> str:
            return "stub"

    def fake_pipeline(spark, config):
        configs.append(config)
        return Report()

    monkeypatch.setattr(dedup_spark.pipeline, "run_pipeline", fake_pipeline)
    monkeypatch.setattr(dedup_spark.session, "get_or_create_session", lambda *a, **k: None)
    for task in tasks:
        wheel_task = task["python_wheel_task"]
        assert not _references(wheel_task), "unresolved ${...} in the parameters"
        assert not _DYNAMIC.search(" ".join(wheel_task["parameters"])), "unresolved {{...}} in the parameters"
        monkeypatch.setattr(sys, "argv", [wheel_task["package_name"], *wheel_task["parameters"]])
        assert _entry_point(wheel_task).load()() in (0, None)  # success, whichever of the two it is
    return configs


@pytest.mark.parametrize("target", ["dev", "prod"])
def test_task_parameters_resolve_to_our_cli_and_chain_through_resume(bundle, any_job, target, monkeypatch):
    """Each task, called as Databricks calls it, resolves to the config we expect; the three tasks differ only in
    --stop-after, so each reuses the steps the one before completed."""
    values = _values(bundle, target)
    daily = "schedule" in any_job
    tasks = _resolve_dynamic_tasks(_substitute(any_job["tasks"], values), _run_parameters(any_job, {}))
    configs = _call_tasks(tasks, monkeypatch)
    assert len(configs) == 3

    catalog, schema, prefix = values["var.catalog"], values["var.schema"], values["var.output_prefix"]
    work = f"/Volumes/{catalog}/{schema}/{values['var.work_volume']}/{prefix}"
    volume = f"/Volumes/{catalog}/{schema}/{values['var.daily_volume']}"
    for config, step in zip(configs, STEPS, strict=True):
        assert config.input.text_column == "text"
        assert config.input.id_column is None  # the empty default: derived ids
        assert config.output.format == "delta"
        if daily:  # the day's batch, a folder of its own for the day's outputs, the index
            assert config.input.path == f"{volume}/batches/{TRIGGER_DATE}/"
            assert config.output.path == f"{volume}/out/{TRIGGER_DATE}"
            assert not writers.is_table_prefix(config.output.path)  # a folder: the date's dashes are no table name
            assert writers.output_files_dir(config.output) == config.output.path
            assert config.index.path == f"{volume}/index" and config.index.mode == "update"
        else:
            assert config.input.path == "main.raw.corpus" and config.index.path is None
            assert config.output.path == f"{catalog}.{schema}.{prefix}"
            assert writers.is_table_prefix(config.output.path)
            assert writers.parse_table_prefix(config.output.path).table("data") == f"{catalog}.{schema}.{prefix}_data"
            assert writers.output_files_dir(config.output) == work
        assert config.output.overwrite and config.stages == ("neardup", "exactsubstr")
        assert config.stop_after == (None if step == "exactsubstr" else step)
        serverless = "environments" in any_job
        assert config.spark.task_slots == (values["var.serverless_task_slots"] if serverless else None)
    if target == "dev":
        assert schema == "dedup_alice"

    # Resume matches steps by fingerprint: the steps a task shares with the one before must match exactly.
    identity = resume.InputIdentity("delta", "main.raw.corpus", 3, 100, {"path": "main.raw.corpus", "version": 7})
    prints = [resume.fingerprints(c, identity, resume.steps_to_run(c)) for c in configs]
    assert [list(p) for p in prints] == [["ingest"], ["ingest", "neardup"], list(STEPS)]
    assert prints[0]["ingest"] == prints[1]["ingest"] == prints[2]["ingest"]
    assert prints[1]["neardup"] == prints[2]["neardup"]


def test_task_parameters_differ_only_in_stop_after(any_job):
    without = []
    for task in any_job["tasks"]:
        parameters = task["python_wheel_task"]["parameters"]
        stops = [p for p in parameters if p.startswith("--stop-after")]
        expected = [] if task["task_key"] == "exactsubstr" else [f"--stop-after={task['task_key']}"]
        assert stops == expected
        without.append([p for p in parameters if not p.startswith("--stop-after")])
    assert without[0] == without[1] == without[2]


def test_a_failing_run_fails_the_databricks_task(job, monkeypatch):
    wheel_task = job["tasks"][0]["python_wheel_task"]
    monkeypatch.setattr(sys, "argv", [wheel_task["package_name"], "run", "--input=x"])  # no --output: exit 2
    with pytest.raises(SystemExit) as failure:
        _entry_point(wheel_task).load()()
    assert failure.value.code == 2


def test_the_wheel_leaves_spark_to_the_cluster():
    dependencies = _pyproject()["project"]["dependencies"]
    assert not [d for d in dependencies if re.match(r"pyspark\b", d)]


@pytest.mark.slow
def test_artifact_build_makes_the_wheel_the_tasks_install(bundle, job, tmp_path):
    """Run the artifact's build command on a copy of the project, then call the built wheel's entry point the way
    Databricks does, from the wheel's own files."""
    (artifact,) = bundle["artifacts"].values()
    project = tmp_path / "project"
    shutil.copytree(REPO / artifact["path"], project, ignore=shutil.ignore_patterns(*_NOT_BUILT))
    command = artifact["build"].replace("python3", sys.executable)
    subprocess.run(command, shell=True, cwd=project, check=True, capture_output=True)
    (wheel,) = (project / "dist").glob("*.whl")  # what the tasks' libraries entry, ../dist/*.whl, picks up
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)], check=True
    )
    wheel_task = job["tasks"][0]["python_wheel_task"]
    probe = (
        "import sys; from importlib import metadata\n"
        f"sys.argv = [{wheel_task['package_name']!r}, '--version']\n"
        f"dist = metadata.distribution({wheel_task['package_name']!r})\n"
        f"(entry,) = [e for e in dist.entry_points if e.name == {wheel_task['entry_point']!r}]\n"
        "code = entry.load()()\nimport dedup_spark\nprint(dedup_spark.__file__)\nprint(code)\n"
    )
    # -S (no .pth files) and a cwd outside the checkout: the checkout's editable install cannot shadow the wheel;
    # the venv's packages stay importable through PYTHONPATH, after the wheel's folder.
    path = f"{site}{os.pathsep}{sysconfig.get_paths()['purelib']}"
    result = subprocess.run(
        [sys.executable, "-S", "-c", probe],
        env={"PYTHONPATH": path},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    version, module_file, returned = result.stdout.split("\n")[-4:-1]
    assert version == "dedup-spark 0.1.0"
    assert module_file.startswith(str(site))  # the wheel's code, not the checkout
    assert returned == "None"  # console_main returns on success and raises SystemExit(code) on failure
