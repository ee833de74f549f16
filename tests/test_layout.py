"""The package's import graph: no module may reach itself through its imports."""

import ast
from pathlib import Path

import networkx as nx

ROOT = Path(__file__).resolve().parents[1]


def _imports(path: Path) -> set[str]:
    """livestyle modules a file imports, lazy, TYPE_CHECKING and `from livestyle import x` included."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module == "livestyle":
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("livestyle."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("livestyle.")}
    return {m for m in found if (ROOT / "livestyle" / f"{m}.py").is_file()}


def test_livestyle_imports_have_no_cycles():
    graph = nx.DiGraph()
    for f in (ROOT / "livestyle").glob("*.py"):
        graph.add_node(f.stem)
        graph.add_edges_from((f.stem, m) for m in _imports(f) if m != f.stem)
    assert graph.number_of_edges() > 20  # the scan sees the package's real imports
    assert list(nx.simple_cycles(graph)) == []


def test_the_scan_sees_a_cycle(tmp_path):
    # the check above can fail: two modules importing each other, one lazily
    a = tmp_path / "a.py"
    a.write_text("def f():\n    from livestyle.bundle import x\n")
    assert _imports(a) == {"bundle"}
