"""The stage graph, read from dvc.yaml: the one definition of the pipeline.

The Prefect flow (flows/pipeline.py) runs the same stages as `dvc repro`. So that the
two can never drift apart, nothing here lists a stage: names and edges come from
DVC's own index (`Repo.index.graph`, the graph `dvc dag` draws), and staleness comes
from `dvc status`, the check `dvc repro` itself makes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from collections.abc import Sequence
from pathlib import Path
from typing import Iterable

from livestyle.errors import LivestyleError

# `foreach` stages are named GROUP@KEY (DVC's own syntax); the key is the style.
FOREACH_SEP = "@"


@dataclass(frozen=True)
class StageNode:
    """One DVC stage: `name` is what `dvc repro` takes as a target."""

    name: str
    upstream: tuple[str, ...]

    @property
    def group(self) -> str:
        """'train' for 'train@la_muse'; the name itself for a plain stage."""
        return self.name.rpartition(":")[2].partition(FOREACH_SEP)[0]

    @property
    def key(self) -> str | None:
        """The foreach key ('la_muse' for 'train@la_muse'), None for a plain stage."""
        _, sep, key = self.name.rpartition(":")[2].partition(FOREACH_SEP)
        return key if sep else None


@dataclass(frozen=True)
class Dag:
    """Stages in a deterministic topological order (upstream before downstream).

    Ties are broken by the order the stages appear in dvc.yaml, so a reader sees
    the flow's tasks in the order they wrote them.
    """

    stages: tuple[StageNode, ...]

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for node in self.stages:
            missing = [u for u in node.upstream if u not in seen]
            if missing:
                raise ValueError(f"{node.name}: upstream {missing} not before it")
            seen.add(node.name)

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.stages]

    def __getitem__(self, name: str) -> StageNode:
        for node in self.stages:
            if node.name == name:
                return node
        raise KeyError(name)

    @property
    def keys(self) -> list[str]:
        """Foreach keys (styles) in first-seen order."""
        out: list[str] = []
        for node in self.stages:
            if node.key is not None and node.key not in out:
                out.append(node.key)
        return out

    def ancestors(self, name: str) -> set[str]:
        todo, out = list(self[name].upstream), set()
        while todo:
            n = todo.pop()
            if n not in out:
                out.add(n)
                todo.extend(self[n].upstream)
        return out

    def select(
        self, keys: Iterable[str] | None = None, targets: Iterable[str] | None = None
    ) -> "Dag":
        """The sub-DAG for some styles and/or target stages, upstream included.

        keys: keep only stages whose own foreach key and every upstream foreach key
          is among `keys` (so `release`, which needs every style, drops out when a
          subset is asked for, while `prepare` stays).
        targets: stage names or group names ('release', 'bench'); the result is
          those stages plus everything upstream of them, as `dvc repro T` would run.
          None: the root dvc.yaml's stages, as `dvc repro` runs them (a dvc.yaml in a
          subfolder, like sweep/dvc.yaml, runs only when targeted).
        """
        names = set(self.names) if targets is not None else {n for n in self.names if ":" not in n}
        if keys is not None:
            keys = set(keys)
            unknown = keys - set(self.keys)
            if unknown:
                raise ValueError(f"unknown styles {sorted(unknown)}; dvc.yaml has {self.keys}")
            names = {
                n
                for n in names
                if all(
                    self[m].key is None or self[m].key in keys
                    for m in self.ancestors(n) | {n}
                )
            }
        if targets is not None:
            wanted: set[str] = set()
            for t in targets:
                hits = [n for n in self.names if n == t or self[n].group == t]
                if not hits:
                    raise ValueError(f"unknown stage {t!r}; dvc.yaml has {self.names}")
                for h in hits:
                    wanted |= {h} | self.ancestors(h)
            names &= wanted
        return Dag(tuple(s for s in self.stages if s.name in names))


def _target(stage) -> str:
    """The name `dvc repro` takes when run in the repo root.

    Not `stage.addressing`: that is relative to the current directory, which for a
    flow is not necessarily the repo.
    """
    path = stage.path_in_repo.replace(os.sep, "/")
    if path == "dvc.yaml":
        return stage.name
    return f"{path}:{stage.name}" if stage.name else path


def read_dag(root: str | os.PathLike = ".") -> Dag:
    """Read every pipeline stage of the DVC repo at `root` and its dependencies.

    Only pipeline stages (dvc.yaml) become nodes: `.dvc` files of `dvc add` are data
    sources with no command, nothing for a flow to run.
    """
    import networkx as nx
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    root = Path(root)
    try:
        with Repo(os.fspath(root)) as repo:
            graph = repo.index.graph  # edges point from a stage to what it depends on
            order = {_target(s): i for i, s in enumerate(repo.index.stages)}
            pipeline = {_target(s) for s in repo.index.stages if s.cmd}
            upstream = {
                _target(s): tuple(
                    sorted(
                        (_target(d) for d in graph.successors(s) if _target(d) in pipeline),
                        key=order.__getitem__,
                    )
                )
                for s in graph.nodes
                if _target(s) in pipeline
            }
    except DvcException as exc:
        # DVC keeps the useful part (which key, which line) in the chained cause
        cause = str(exc.__cause__).strip().splitlines()[0] if exc.__cause__ else ""
        detail = f"{exc} ({cause})" if cause else str(exc)
        raise LivestyleError(root / "dvc.yaml", f"cannot read the DVC pipeline: {detail}") from exc

    dep_graph = nx.DiGraph()
    dep_graph.add_nodes_from(upstream)
    dep_graph.add_edges_from((u, n) for n, ups in upstream.items() for u in ups)
    ordered = nx.lexicographical_topological_sort(dep_graph, key=order.__getitem__)
    return Dag(tuple(StageNode(n, upstream[n]) for n in ordered))


def stale_stages(root: str | os.PathLike = ".", dvc: Sequence[str] | None = None) -> dict[str, list]:
    """Stages `dvc repro` would run, with DVC's reasons (`dvc status --json`).

    Runs the CLI rather than `Repo.status()` so that `--wait-for-lock` applies: a
    stage of the flow may hold the repo lock at the same moment.
    """
    # this interpreter's DVC: a bare `dvc` may not be on PATH (CI runs .venv/bin/python)
    dvc = list(dvc) if dvc else [sys.executable, "-m", "dvc"]
    proc = subprocess.run(
        [*dvc, "--wait-for-lock", "status", "--json"],
        cwd=root,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise LivestyleError(Path(root) / "dvc.yaml", f"dvc status failed: {proc.stderr.strip()}")
    # DVC may print warnings before the JSON; the JSON is the last line.
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    status = json.loads(lines[-1]) if lines else {}
    return dict(status)
