"""The house rules of dedup_spark/, read from the source (no Spark): every import counted, at any depth of a module.

- no import loop between modules, and no module imports another's private (`_name`) names;
- the tool folders (neardup/, exactsubstr/) import neither each other nor io/ beyond io/storage.py;
- nothing Spark Connect lacks (SparkContext, RDDs, JVM, cache/persist); session settings and Delta detection
  are touched only by session.py and sparkops.py;
- package `__init__.py` files are empty and no module is over 400 lines;
- the pipeline's stage registry names exactly the stages the config accepts, each keeping the Stage contract.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tests.conftest import REPO

PACKAGE = REPO / "dedup_spark"
TOOLS = ("neardup", "exactsubstr")


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(path: Path) -> list[tuple[str, list[str]]]:
    """(module, names imported from it) for every `import` / `from ... import` of dedup_spark in the file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("dedup_spark"):
            found.append((node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            found += [(a.name, []) for a in node.names if a.name.startswith("dedup_spark")]
    return found


def graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports (`from dedup_spark.io import storage` is dedup_spark.io.storage)."""
    known = modules()
    edges: dict[str, set[str]] = {}
    for name, path in known.items():
        targets = set()
        for module, names in imports(path):
            targets |= {f"{module}.{n}" for n in names if f"{module}.{n}" in known} or {module}
        edges[name] = {t for t in targets if t in known and t != name and known[t].name != "__init__.py"}
    return edges


def test_the_import_graph_has_no_loop():
    edges, state, loops = graph(), {}, []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = "open"
        for target in sorted(edges[node]):
            if state.get(target) == "open":
                loops.append(trail[trail.index(target) :] + [target])
            elif target not in state:
                visit(target, [*trail, target])
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    assert not loops, loops


def test_no_module_imports_private_names_of_another():
    private = [
        (name, module, n)
        for name, path in modules().items()
        for module, names in imports(path)
        for n in names
        if n.startswith("_") and n != "__version__"
    ]
    assert not private, private


def test_tool_folders_import_neither_each_other_nor_io_beyond_storage():
    wrong = []
    for name, targets in graph().items():
        tool = name.split(".")[1:2]
        if not tool or tool[0] not in TOOLS:
            continue
        for target in targets:
            other = target.split(".")[1] if "." in target else ""
            if (other in TOOLS and other != tool[0]) or (other == "io" and target != "dedup_spark.io.storage"):
                wrong.append((name, target))
    assert not wrong, wrong


def test_nothing_spark_connect_lacks():
    """Spark Connect sessions (Databricks serverless, shared clusters) have no SparkContext, RDDs or JVM, and
    Databricks serverless refuses cache/persist: no library module may use them. session.py may touch the local
    JVM it starts itself (its gateway process, for the class archive), and nothing else of a SparkContext."""
    markers = ("sparkContext", ".rdd", "_jvm", "_jsc", "_jdf", ".cache(", ".persist(", "SparkContext.")
    found = [(name, m) for name, path in modules().items() for m in markers if m in path.read_text()]
    session_only = {"SparkContext._gateway", "SparkContext._jvm", "SparkContext._active_spark_context"}
    session = (REPO / "dedup_spark" / "session.py").read_text()
    assert set(re.findall(r"SparkContext\.\w+", session)) <= session_only
    assert "_jvm" not in session.replace("SparkContext._jvm", "")
    assert not [f for f in found if f[0] != "dedup_spark.session"], found


def test_session_settings_and_delta_only_in_session_and_sparkops():
    allowed = {"dedup_spark.session", "dedup_spark.sparkops"}
    markers = (".conf.", "spark.sql.extensions", "DATABRICKS_RUNTIME_VERSION")
    found = [
        (name, marker)
        for name, path in modules().items()
        if name not in allowed
        for marker in markers
        if marker in path.read_text()
    ]
    assert not found, found


def test_init_files_are_empty_and_modules_short():
    for name, path in modules().items():
        lines = path.read_text().splitlines()
        if path.name == "__init__.py" and name != "dedup_spark":
            assert not lines, f"{path} is not empty"
        assert len(lines) <= 400, f"{path}: {len(lines)} lines"


def test_the_registry_names_the_configured_stages_and_each_keeps_the_contract():
    from dedup_spark.config_checks import STAGE_NAMES
    from dedup_spark.pipeline import STAGES

    assert tuple(STAGES) == STAGE_NAMES
    for name, stage in STAGES.items():
        assert stage.name == name
        assert set(stage.required_columns) >= {"_dd_id"}, name
        assert callable(stage.run) and callable(stage.plan), name
