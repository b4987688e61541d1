"""The layout's rules, checked on the source: no two modules import each other (a circle hides which one is
the lower layer), and the language imports nothing heavy. Imports under ``if TYPE_CHECKING:`` do not run and
do not count."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("airflow_amml", "compiler", "operators")


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def runtime_imports(tree: ast.AST):
    """Import statements that run (those inside `if TYPE_CHECKING:` are left out)."""
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(n) for child in node.body for n in ast.walk(child))
    return [n for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom) and id(n) not in skipped]


def imported(name: str, path: Path, node: ast.AST, known: dict[str, Path]) -> set[str]:
    if isinstance(node, ast.Import):
        targets = [alias.name for alias in node.names]
    else:
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        base = package[: len(package) - node.level + 1] if node.level else []
        module = ".".join([*base, *([node.module] if node.module else [])])
        targets = [module, *(f"{module}.{alias.name}" for alias in node.names)]
    return {t for t in targets if t in known and t != name}


def import_graph() -> dict[str, set[str]]:
    known = modules()
    return {
        name: set().union(*(imported(name, path, n, known) for n in runtime_imports(ast.parse(path.read_text()))))
        for name, path in known.items()
    }


def test_no_two_modules_import_each_other():
    graph = import_graph()
    mutual = sorted(
        (a, b)
        for a, targets in graph.items()
        for b in targets
        if a < b and a in graph.get(b, set()) and not (a.startswith(b + ".") or b.startswith(a + "."))
    )
    assert mutual == []


def test_the_compiler_imports_no_airflow_numpy_tensorflow_or_runtime():
    """At import time (semantics.py reaches numpy lazily, for transcendental functions the two VMs must
    compute bit for bit alike; only folding such a constant loads it)."""
    import subprocess
    import sys

    code = "import sys, compiler, compiler.vm; print(sorted(m for m in {HEAVY} if m in sys.modules))"
    heavy = {"airflow", "numpy", "pandas", "tensorflow", "keras", "airflow_amml"}
    result = subprocess.run(
        [sys.executable, "-c", code.format(HEAVY=sorted(heavy))], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def imported_names(path: Path) -> set[str]:
    """Every module an import statement in ``path`` names (absolute imports; at module level or in a function)."""
    names = set()
    for node in runtime_imports(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_only_the_airflow_side_imports_airflow():
    """The runtime imports no Airflow by structure, not by care: only `operators/`, the dags loader, the plugin
    and the provider entry point may (the loader and `operators/` are outside these packages' scan)."""
    allowed = {"airflow_amml.plugin", "airflow_amml.provider_info"}
    offenders = {
        name: sorted(n for n in imported_names(path) if n == "airflow" or n.startswith("airflow."))
        for name, path in modules().items()
        if not name.startswith("operators") and name not in allowed
    }
    assert {name: found for name, found in offenders.items() if found} == {}


def test_the_runtime_and_the_registry_import_nothing_from_operators():
    """`operators/` sits above the runtime: registry, runtime and components get URLs from the RunConfig, never
    a connection. Outside them only two edges reach `operators.connections`: the plugin, and `amml` (`cli`), which
    imports it lazily and only when AMML_REGISTRY_CONN_ID or AMML_ARTIFACT_CONN_ID is set."""
    edges = {
        "airflow_amml.cli": {"operators.connections"},
        "airflow_amml.plugin": {"operators.connections", "operators.pipeline_page"},
    }
    reaching = {
        name: sorted(n for n in imported_names(path) if n == "operators" or n.startswith("operators."))
        for name, path in modules().items()
        if name.startswith("airflow_amml") or name.startswith("compiler")
    }
    unexpected = {name: found for name, found in reaching.items() if set(found) - edges.get(name, set())}
    assert unexpected == {}
    for layer in ("airflow_amml.registry", "airflow_amml.runtime", "airflow_amml.components"):
        assert not any(found for name, found in reaching.items() if name.startswith(layer)), layer
