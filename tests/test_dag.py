"""livestyle.dag: the stage graph comes from dvc.yaml, in an order a flow can run."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from livestyle.dag import Dag, StageNode, read_dag, stale_stages
from livestyle.errors import LivestyleError

DVC = [sys.executable, "-m", "dvc"]

# prepare -> train@S -> export@S -> {verify@S, bench@S} -> release(all S)
DVC_YAML = """\
stages:
  prepare:
    cmd: python -c "open('prep.txt', 'w').write('p')"
    outs:
      - prep.txt
  train:
    foreach: ${styles}
    do:
      cmd: python -c "open('train_${key}.txt', 'w').write('${item.n}')"
      deps:
        - prep.txt
      params:
        - styles.${key}
      outs:
        - train_${key}.txt
  export:
    foreach: ${styles}
    do:
      cmd: python -c "open('export_${key}.txt', 'w').write('e')"
      deps:
        - train_${key}.txt
      outs:
        - export_${key}.txt
  verify:
    foreach: ${styles}
    do:
      cmd: python -c "open('verify_${key}.txt', 'w').write('v')"
      deps:
        - export_${key}.txt
      outs:
        - verify_${key}.txt
  bench:
    foreach: ${styles}
    do:
      cmd: python -c "open('bench_${key}.txt', 'w').write('b')"
      deps:
        - export_${key}.txt
      outs:
        - bench_${key}.txt
  release:
    cmd: python -c "open('release.txt', 'w').write('r')"
    deps:
      - export_zeta.txt
      - export_alpha.txt
      - bench_zeta.txt
    outs:
      - release.txt
"""


def dvc_repo(path: Path, dvc_yaml: str = DVC_YAML, styles=("zeta", "alpha")) -> Path:
    """A tiny DVC repo; style keys deliberately not in alphabetical order."""
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "init", "-q"], cwd=path, check=True)
    subprocess.run([*DVC, "init", "-q"], cwd=path, check=True)
    for key in ("core.analytics", "core.check_update"):
        subprocess.run([*DVC, "config", key, "false"], cwd=path, check=True)
    params = "styles:\n" + "".join(f"  {s}:\n    n: {i}\n" for i, s in enumerate(styles))
    (path / "params.yaml").write_text(params)
    (path / "dvc.yaml").write_text(dvc_yaml)
    return path


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    return dvc_repo(tmp_path_factory.mktemp("dagrepo"))


def test_read_dag_is_topological_in_dvc_yaml_order(repo):
    dag = read_dag(repo)
    assert dag.names == [
        "prepare",
        "train@zeta", "train@alpha",
        "export@zeta", "export@alpha",
        "verify@zeta", "verify@alpha",
        "bench@zeta", "bench@alpha",
        "release",
    ]
    assert dag["prepare"].upstream == ()
    assert dag["train@alpha"].upstream == ("prepare",)
    assert dag["verify@zeta"].upstream == ("export@zeta",)
    # upstream listed in dvc.yaml order, not by name
    assert dag["release"].upstream == ("export@zeta", "export@alpha", "bench@zeta")
    assert dag.keys == ["zeta", "alpha"]
    assert (dag["bench@alpha"].group, dag["bench@alpha"].key) == ("bench", "alpha")
    assert (dag["release"].group, dag["release"].key) == ("release", None)


def test_names_do_not_depend_on_the_current_directory(repo, tmp_path, monkeypatch):
    # DVC's stage.addressing is relative to the cwd; a flow runs from anywhere
    monkeypatch.chdir(tmp_path)
    assert read_dag(repo).names[:2] == ["prepare", "train@zeta"]


def test_select_styles_keeps_prepare_and_drops_stages_needing_all_styles(repo):
    dag = read_dag(repo)
    sub = dag.select(keys=["alpha"])
    assert sub.names == ["prepare", "train@alpha", "export@alpha", "verify@alpha", "bench@alpha"]
    assert dag.select(keys=["zeta", "alpha"]).names == dag.names
    with pytest.raises(ValueError, match="unknown styles"):
        dag.select(keys=["nope"])


def test_select_targets_adds_upstream_like_dvc_repro(repo):
    dag = read_dag(repo)
    assert dag.select(targets=["verify@zeta"]).names == [
        "prepare", "train@zeta", "export@zeta", "verify@zeta"]
    # a group name selects every style's stage of that group
    assert dag.select(targets=["export"]).names == [
        "prepare", "train@zeta", "train@alpha", "export@zeta", "export@alpha"]
    assert dag.select(keys=["zeta"], targets=["bench"]).names == [
        "prepare", "train@zeta", "export@zeta", "bench@zeta"]
    with pytest.raises(ValueError, match="unknown stage"):
        dag.select(targets=["sweep"])


def test_dag_rejects_an_order_with_downstream_first():
    with pytest.raises(ValueError, match="not before"):
        Dag((StageNode("train@a", ("prepare",)), StageNode("prepare", ())))


def test_stale_stages_follow_dvc_status(tmp_path):
    repo = dvc_repo(tmp_path / "r")
    assert set(stale_stages(repo)) == set(read_dag(repo).names)
    subprocess.run([*DVC, "repro", "-q"], cwd=repo, check=True)
    assert stale_stages(repo) == {}
    # changing one style's params makes only that branch (and release) stale
    (repo / "params.yaml").write_text("styles:\n  zeta:\n    n: 0\n  alpha:\n    n: 7\n")
    assert set(stale_stages(repo)) == {"train@alpha"}  # downstream: once it reruns


def test_a_broken_dvc_yaml_is_one_clear_error(tmp_path):
    repo = dvc_repo(tmp_path / "bad", dvc_yaml="stages:\n  x:\n    cmd: [unclosed\n")
    with pytest.raises(LivestyleError, match="dvc.yaml: cannot read the DVC pipeline"):
        read_dag(repo)


def test_stages_in_a_subdirectory_dvc_yaml_are_addressed_from_the_root(tmp_path):
    repo = dvc_repo(tmp_path / "sub")
    (repo / "extra").mkdir()
    (repo / "extra" / "dvc.yaml").write_text(
        "stages:\n  sweep:\n    cmd: python -c \"open('s.txt', 'w')\"\n"
        "    deps:\n      - ../prep.txt\n    outs:\n      - s.txt\n")
    dag = read_dag(repo)
    assert dag["extra/dvc.yaml:sweep"].upstream == ("prepare",)
    assert dag["extra/dvc.yaml:sweep"].group == "sweep"
    # like `dvc repro`: on demand only
    assert "extra/dvc.yaml:sweep" not in dag.select().names
    assert dag.select(targets=["sweep"]).names == ["prepare", "extra/dvc.yaml:sweep"]
    # the name is a target `dvc repro` accepts from the root
    out = subprocess.run([*DVC, "status", "extra/dvc.yaml:sweep"], cwd=repo,
                         capture_output=True, text=True)
    assert out.returncode == 0 and "sweep" in out.stdout, out.stderr


def _livestyle_imports(module, root, seen=None):
    """Every livestyle module file a module imports, transitively (static, so lazy imports
    count): livestyle/model/network.py for `from livestyle.model.network import x` and for
    `from livestyle.model import network`. Package __init__.py files are not listed: they
    hold only a docstring (tests/test_layout.py checks), nothing a stage computes with."""
    import ast

    seen = set() if seen is None else seen
    for node in ast.walk(ast.parse(module.read_text())):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            path = name.replace(".", "/") + ".py"
            if name.startswith("livestyle") and (root / path).is_file() and path not in seen:
                seen.add(path)
                _livestyle_imports(root / path, root, seen)
    return seen


def test_every_stage_lists_the_modules_its_code_imports():
    import re
    from pathlib import Path

    import yaml

    root = Path(__file__).resolve().parents[1]
    # the root pipeline and the on-demand ones (sweep/dvc.yaml), whose wdir is the root
    stages = {f"{f.relative_to(root)}:{k}": v for f in [root / "dvc.yaml", *root.glob("*/dvc.yaml")]
              for k, v in yaml.safe_load(f.read_text())["stages"].items()}
    assert "sweep/dvc.yaml:sweep" in stages
    missing = {}
    for name, stage in stages.items():
        stage = stage.get("do", stage)
        module = root / "stages" / (re.search(r"stages\.(\w+)", stage["cmd"]).group(1) + ".py")
        gap = sorted(_livestyle_imports(module, root) - set(stage["deps"]))
        if gap:
            missing[name] = gap
    assert not missing, f"dvc.yaml deps lack imported modules (a code change would not rerun the stage): {missing}"
