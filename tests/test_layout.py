"""The package's layout: one subpackage per pipeline phase, imports that only look back.

Phases in pipeline order: model < convert < measure < media < release. A module imports
from its own phase, earlier phases and the shared top-level modules (config, errors,
atomic, images, markdown, dag, provenance), which import no phase module; cli.py, the front door,
may import anything. No module may reach itself through its imports.
"""

import ast
from pathlib import Path

import networkx as nx

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "livestyle"
PHASES = ("model", "convert", "measure", "media", "release")
FRONT_DOOR = "cli"


def _imports(path: Path, package: Path = PACKAGE) -> set[str]:
    """livestyle modules a file imports, as keys like 'model.network' or 'config'; lazy,
    TYPE_CHECKING and `from livestyle.model import network` included."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "livestyle":
            parts = node.module.split(".")[1:]
            found.add(".".join(parts))
            found |= {".".join([*parts, a.name]) for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name.partition(".")[2] for a in node.names if a.name.startswith("livestyle.")}
    return {m for m in found if m and (package / (m.replace(".", "/") + ".py")).is_file()}


def _graph(package: Path = PACKAGE) -> nx.DiGraph:
    """Each module (not the docstring-only __init__.py files) and the modules it imports."""
    graph = nx.DiGraph()
    for f in package.rglob("*.py"):
        if f.name == "__init__.py":
            continue
        key = ".".join(f.relative_to(package).with_suffix("").parts)
        graph.add_node(key)
        graph.add_edges_from((key, m) for m in _imports(f, package) if m != key)
    return graph


def _phase(module: str) -> str | None:
    """'model' for 'model.network'; None for a shared top-level module."""
    head, dot, _ = module.partition(".")
    return head if dot else None


def _phase_violations(graph: nx.DiGraph) -> list[str]:
    bad = []
    for module, imported in graph.edges:
        src, dst = _phase(module), _phase(imported)
        if module == FRONT_DOOR or dst is None:
            continue
        if src is None or PHASES.index(dst) > PHASES.index(src):
            bad.append(f"{module} imports {imported}")
    return sorted(bad)


def test_livestyle_imports_have_no_cycles():
    graph = _graph()
    assert graph.number_of_edges() > 20  # the scan sees the package's real imports
    assert list(nx.simple_cycles(graph)) == []


def test_the_scan_sees_a_cycle(tmp_path):
    # the check above can fail: two modules importing each other, one lazily
    a = tmp_path / "a.py"
    a.write_text("def f():\n    from livestyle.release.bundle import x\n")
    assert _imports(a) == {"release.bundle"}


def test_every_module_lives_in_a_phase_or_is_shared():
    shared = {"cli", "config", "errors", "atomic", "images", "markdown", "dag", "provenance"}
    graph = _graph()
    assert {m for m in graph if _phase(m) is None} == shared
    assert {_phase(m) for m in graph} - {None} == set(PHASES)


def test_phase_packages_hold_only_a_docstring():
    # so dvc.yaml deps need not list them: editing one cannot change what a stage computes
    for phase in PHASES:
        body = ast.parse((PACKAGE / phase / "__init__.py").read_text()).body
        assert len(body) == 1 and isinstance(body[0].value, ast.Constant), phase


def test_imports_follow_the_phase_order():
    assert _phase_violations(_graph()) == []


def test_the_phase_rule_sees_a_backward_import(tmp_path):
    # the check above can fail: a phase importing a later one, a shared module a phase
    package = tmp_path / "livestyle"
    for name in ("model", "measure"):
        (package / name).mkdir(parents=True)
    (package / "model" / "network.py").write_text("def f():\n    from livestyle.measure import quality\n")
    (package / "measure" / "quality.py").write_text("from livestyle.model.network import f\n")
    (package / "config.py").write_text("import livestyle.model.network\n")
    (package / "cli.py").write_text("from livestyle.measure.quality import f\n")
    assert _phase_violations(_graph(package)) == [
        "config imports model.network", "model.network imports measure.quality"]
