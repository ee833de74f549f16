"""The livestyle pipeline as a Prefect flow: the stages of dvc.yaml, one task each.

Design:
- dvc.yaml is the only definition of the stages. The flow reads the graph from DVC
  (livestyle.dag) and submits one coarse task per stage that runs
  `dvc --wait-for-lock repro --single-item STAGE`, so the flow and `dvc repro` run
  the same commands with the same caching.
- DVC owns the artifact cache: Prefect's task cache does not notice a deleted output,
  so tasks use NO_CACHE. A stage `dvc status` calls fresh, whose upstream did not
  rerun in this flow run, is reported and not started (the same decision `dvc repro`
  makes, without one dvc process per stage).
- Two dvc processes can collide on the repo lock ("Unable to acquire lock"):
  `--wait-for-lock`, plus retries from params.yaml `flow:` for real failures.
- Each stage waits for its upstream stages' futures, so per-style branches run in
  parallel on the task runner (threads by default, Dask when asked).
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import os
import re
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import flows  # noqa: F401  (per-project Prefect settings before prefect is imported)
from prefect import allow_failure, flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import ThreadPoolTaskRunner

from livestyle import markdown
from livestyle.config import bounded, check_section, load_params
from livestyle.dag import Dag, read_dag, stale_stages
from livestyle.errors import run_cli

RunnerKind = Literal["thread", "dask"]


@dataclass(frozen=True)
class FlowConfig:
    """params.yaml `flow:`; every field has a default so the section is optional."""

    retries: int = bounded(2, 0)
    retry_delay_s: float = bounded(10.0, 0)
    runner: RunnerKind = "thread"
    max_workers: int = bounded(2, 1)  # threads, or local Dask workers: the 2 cores here
    dask_address: str | None = None  # tcp://host:8786 of a running Dask scheduler
    cron: str = "0 3 * * *"
    deployment: str = "nightly"
    api_url: str = "http://127.0.0.1:4200/api"

    @classmethod
    def from_params(cls, d: dict | None) -> "FlowConfig":
        d = dict(d or {})
        check_section(cls, d, "flow")
        return cls(**d)

    @classmethod
    def load(cls, root: str | os.PathLike) -> "FlowConfig":
        """The flow section of ROOT/params.yaml, with the whole file checked as every
        stage checks it (style names included): bad params stop the run before it starts."""
        path = Path(root) / "params.yaml"
        params = load_params(path) if path.exists() else {}
        return cls.from_params(params.get("flow"))


@dataclass(frozen=True)
class StageOutcome:
    """What one stage task did: `ran` is False when DVC found it up to date."""

    stage: str
    ran: bool
    seconds: float
    note: str = ""
    attempts: int = 1


class StageFailed(RuntimeError):
    pass


def _child_env() -> dict[str, str]:
    # stage commands say `python -m stages.X`: make that the interpreter running the
    # flow, even when a served flow was started without the venv activated
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


_DVC_SAYS = re.compile(r"^(Running stage|Stage '.*' (didn't change|is cached))")
# git/dvc hints printed after every stage: noise in a run log
_DVC_HINT = re.compile(r"To track the changes with git|git add .*dvc\.lock|auto staging"
                       r"|core\.autostage|Use `dvc push`")


def _run_logged(
    cmd: list[str], cwd: str, logger, progress_every_s: float = 30.0
) -> tuple[int, list[str], str]:
    """Run `cmd`, sending its output to the Prefect log line by line.

    tqdm redraws with carriage returns: only the last state of a bar is logged when
    its line ends, plus one snapshot every `progress_every_s`, so a training run
    shows progress in the UI without thousands of log lines.
    """
    proc = subprocess.Popen(
        cmd, cwd=cwd, env=_child_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    tail: list[str] = []
    seen = ""  # DVC's own status lines, to tell what it did
    buf, last_progress = b"", time.monotonic()
    assert proc.stdout is not None
    while chunk := proc.stdout.read1(65536):
        buf += chunk
        *lines, buf = buf.split(b"\n")
        for raw in lines:
            line = raw.rsplit(b"\r", 1)[-1].decode(errors="replace").rstrip()
            if line and _DVC_HINT.search(line):
                logger.debug(line)
            elif line.startswith("ERROR"):
                logger.error(line)
            elif line:
                logger.info(line)
                tail = (tail + [line])[-20:]
                if _DVC_SAYS.search(line):
                    seen += line + "\n"
        if b"\r" in buf and time.monotonic() - last_progress > progress_every_s:
            logger.info(buf.rsplit(b"\r", 1)[-1].decode(errors="replace").strip())
            last_progress = time.monotonic()
    if buf.strip():
        line = buf.rsplit(b"\r", 1)[-1].decode(errors="replace").rstrip()
        logger.info(line)
        tail.append(line)
    return proc.wait(), tail, seen


@task(cache_policy=NO_CACHE, task_run_name="{stage}")
def repro_stage(
    root: str, stage: str, stale: bool | None = None, upstream: list[StageOutcome] | None = None
) -> StageOutcome:
    """`dvc repro` one stage (its upstream stages are tasks of their own).

    stale: whether `dvc status` at flow start listed the stage (None: not checked).
    upstream: outcomes of the stages it depends on (passed so Prefect waits for them
      and so a stage reruns when an upstream one just ran).
    """
    from prefect.runtime import task_run

    logger = get_run_logger()
    if stale is False and not any(u.ran for u in upstream or []):
        logger.info("%s is up to date (dvc status); nothing to run", stage)
        return StageOutcome(stage, ran=False, seconds=0.0, note="up to date")
    t0 = time.monotonic()
    cmd = [sys.executable, "-m", "dvc", "--wait-for-lock", "repro", "--single-item", stage]
    code, tail, said = _run_logged(cmd, root, logger)
    seconds = round(time.monotonic() - t0, 3)
    if code != 0:
        # the stage's own last words, not DVC's generic "failed to reproduce" line
        own = [ln for ln in tail if not ln.startswith("ERROR: failed to reproduce")]
        reason = (own or tail or ["no output"])[-1]
        raise StageFailed(f"{stage}: {reason} (dvc repro exit {code})\n" + "\n".join(tail))
    # `ran` means the outputs may have changed, so downstream stages must be asked:
    # a run-cache restore counts, only "didn't change, skipping" does not
    if "Running stage" in said:
        note = "ran"
    elif "is cached" in said:
        note = "restored from run-cache"
    else:
        note = "up to date"
    return StageOutcome(stage, ran=note != "up to date", seconds=seconds, note=note,
                        attempts=task_run.run_count or 1)


# ---------------------------------------------------------------- UI reports


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.4g}"
    if isinstance(v, (dict, list)):
        return "`" + json.dumps(v, sort_keys=True)[:80] + "`"
    return str(v).replace("|", "\\|").replace("\n", " ")


def _md_table(rows: list[dict[str, Any]]) -> str:
    cols: list[str] = []
    for r in rows:
        cols += [c for c in r if c not in cols]
    return markdown.table(cols, [[_fmt(r.get(c, "")) for c in cols] for r in rows])


def json_to_markdown(obj: Any) -> str:
    """Any metrics JSON as markdown tables, without knowing its schema.

    A list of records or a dict of records becomes one table; scalars become a
    key/value table; other nesting recurses under a sub-heading. Bench and verify
    files change as their stages grow: the report must not break on a new key.
    """
    if isinstance(obj, list) and obj and all(isinstance(r, dict) for r in obj):
        return _md_table(obj)
    if not isinstance(obj, dict):
        return f"`{json.dumps(obj)}`"
    scalars = {k: v for k, v in obj.items() if not isinstance(v, (dict, list))}
    records = {k: v for k, v in obj.items() if isinstance(v, dict)
               and v and all(not isinstance(x, (dict, list)) for x in v.values())}
    parts = []
    if scalars:
        parts.append(_md_table([{"key": k, "value": v} for k, v in scalars.items()]))
    if len(records) > 1:
        parts.append(_md_table([{"": k, **v} for k, v in records.items()]))
        rest = {k: v for k, v in obj.items() if k not in scalars and k not in records}
    else:
        rest = {k: v for k, v in obj.items() if k not in scalars}
    for k, v in rest.items():
        parts.append(f"**{k}**\n\n" + json_to_markdown(v))
    return "\n\n".join(parts) or "_(empty)_"


def _thumbnail_data_uri(png: Path, width: int = 160) -> str | None:
    """A small inline JPEG of a poster frame: the UI cannot load local file paths."""
    try:
        import cv2

        img = cv2.imread(str(png))
        if img is None:
            return None
        h = max(1, round(img.shape[0] * width / img.shape[1]))
        ok, jpg = cv2.imencode(".jpg", cv2.resize(img, (width, h), interpolation=cv2.INTER_AREA),
                               [cv2.IMWRITE_JPEG_QUALITY, 80])
        return "data:image/jpeg;base64," + base64.b64encode(jpg.tobytes()).decode() if ok else None
    except Exception:  # a report must never fail the flow
        return None


def style_report(root: Path, style: str) -> str:
    """Markdown for one style from whatever its stages have written so far."""
    parts = [f"# Style `{style}`"]
    for title, rel in (("Benchmark", f"data/bench/{style}/bench.json"),
                       ("Verification", f"data/verify/{style}/verify.json"),
                       ("Quality", f"data/quality/{style}/quality.json")):
        path = root / rel
        parts.append(f"## {title}\n\n_source: `{rel}`_")
        table = path.with_suffix(".md")
        if table.exists():  # the stage's own table reads better than flattened JSON
            parts.append(table.read_text().replace("\n# ", "\n### ").removeprefix("# "))
            continue
        try:
            parts.append(json_to_markdown(json.loads(path.read_text())))
        except FileNotFoundError:
            parts.append("_not produced yet_")
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            parts.append(f"_unreadable: {exc}_")
    sheet = root / "data" / "quality" / style / "sheet.png"
    if sheet.exists() and (uri := _thumbnail_data_uri(sheet, width=720)):
        parts.append(f"![quality sheet]({uri})\n\nsheet: `{sheet.resolve()}`")
    preview = root / "data" / "preview" / style
    parts.append(f"## Previews\n\n_source: `data/preview/{style}/`_")
    posters = sorted(preview.rglob("*_poster.png"))
    videos = sorted(preview.rglob("*.mp4"))
    for p in posters:
        uri = _thumbnail_data_uri(p)
        parts.append(f"![{p.name}]({uri})" if uri else "")
        parts.append(f"poster: `{p.resolve()}`")
    parts += [f"- video: [`{v.name}`]({v.resolve().as_uri()}) `{v.resolve()}`" for v in videos]
    if not posters and not videos:
        parts.append("_no previews yet_")
    return "\n\n".join(p for p in parts if p)


def artifact_key(*parts: str) -> str:
    """Prefect artifact keys allow only lowercase letters, digits and dashes."""
    return re.sub(r"[^a-z0-9-]+", "-", "-".join(parts).lower()).strip("-")


@task(cache_policy=NO_CACHE, task_run_name="report-{style}")
def report_style(root: str, style: str) -> str:
    md = style_report(Path(root), style)
    create_markdown_artifact(markdown=md, key=artifact_key("livestyle", style),
                             description=f"bench, verify and previews of style {style}")
    return md


# ---------------------------------------------------------------- the flow


def make_task_runner(kind: RunnerKind = "thread", max_workers: int = 2,
                     dask_address: str | None = None):
    """Threads by default: every task is a `dvc` subprocess, so threads are enough.

    "dask" runs tasks on a Dask cluster: the scheduler at `dask_address`, or a local
    cluster of `max_workers` single-thread worker processes. Workers of a real
    cluster must see the repo at the same path and have this project installed.
    """
    if kind == "thread":
        return ThreadPoolTaskRunner(max_workers=max_workers)
    if kind == "dask":
        from prefect_dask import DaskTaskRunner

        if dask_address:
            return DaskTaskRunner(address=dask_address)
        return DaskTaskRunner(cluster_kwargs={
            "n_workers": max_workers, "threads_per_worker": 1, "dashboard_address": None})
    raise ValueError(f"task runner {kind!r}: use 'thread' or 'dask'")


@flow(name="livestyle-pipeline", task_runner=ThreadPoolTaskRunner(max_workers=2),
      log_prints=True)
def livestyle_pipeline(
    root: str = ".",
    styles: list[str] | None = None,
    targets: list[str] | None = None,
    check_status: bool = True,
) -> list[StageOutcome]:
    """Run the stages of the DVC pipeline at `root` that are out of date.

    root: the DVC repo (the project root).
    styles: only these styles' branches (and `prepare`); None: every style. A
      subset leaves out stages that need every style, e.g. `release`.
    targets: only these stages or stage groups (e.g. ["bench"]) and what they need.
    check_status: ask `dvc status` once first and skip fresh stages without starting
      a dvc process; False hands every stage to `dvc repro`, which skips them too.
    """
    logger = get_run_logger()
    root = str(Path(root).resolve())
    cfg = FlowConfig.load(root)
    dag: Dag = read_dag(root).select(styles, targets)
    stale = set(stale_stages(root)) if check_status else None
    logger.info("stages: %s", ", ".join(dag.names))
    if stale is not None:
        logger.info("stale by dvc status: %s", ", ".join(n for n in dag.names if n in stale) or "none")

    stage_task = repro_stage.with_options(retries=cfg.retries,
                                          retry_delay_seconds=cfg.retry_delay_s)
    futures: dict[str, Any] = {}
    for node in dag.stages:
        futures[node.name] = stage_task.submit(
            root, node.name,
            stale=None if stale is None else node.name in stale,
            upstream=[futures[u] for u in node.upstream],
        )
    # a report shows what exists even when a stage of its style failed
    reports = [
        report_style.submit(root, style, wait_for=[
            allow_failure(f) for n, f in futures.items() if dag[n].key == style])
        for style in dag.keys
    ]
    for f in [*futures.values(), *reports]:
        f.wait()
    if not wait_until_recorded([*futures.values(), *reports]):
        logger.debug("the API had not recorded every task run's final state in time")

    rows, outcomes, failed = [], [], []
    for name, f in futures.items():
        state = f.state
        out = f.result() if state.is_completed() else None
        if out is not None:
            outcomes.append(out)
        else:
            failed.append(name)
        rows.append({"stage": name, "style": dag[name].key or "", "state": state.name,
                     "result": out.note if out else _first_line(state.message),
                     "seconds": out.seconds if out else None,
                     "attempts": out.attempts if out else None})
    create_table_artifact(table=rows, key="livestyle-stages",
                          description="what each DVC stage did in this flow run")
    if failed:
        raise StageFailed(f"stages not completed: {', '.join(failed)}")
    return outcomes


def wait_until_recorded(futures: list, timeout_s: float = 30.0) -> bool:
    """Wait until the API holds every task run in the state its future ended in.

    Task states reach the server as events, which its task-run recorder writes to the
    database in the background. The temporary server of a plain run is stopped
    (SIGTERM) the moment the process exits; an event still being written then is
    cancelled and logged as "Error flushing 1 events" with a traceback, though nothing
    failed. Returning only once every task run is recorded leaves the recorder idle.
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import TaskRunFilter, TaskRunFilterId

    # (type, name): a task that never ran ends Pending "NotReady", after a first Pending
    want = {f.task_run_id: (f.state.type, f.state.name) for f in futures}
    task_filter = TaskRunFilter(id=TaskRunFilterId(any_=list(want)))
    deadline = time.monotonic() + timeout_s
    with get_client(sync_client=True) as client:
        while True:
            runs = client.read_task_runs(task_run_filter=task_filter, limit=len(want))
            if {r.id: (r.state.type, r.state.name) for r in runs if r.state} == want:
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)


def _first_line(message: str | None) -> str:
    text = (message or "").split("StageFailed: ", 1)[-1].strip()
    return text.splitlines()[0][:160] if text else ""


def pipeline_for(cfg: FlowConfig):
    """The flow with the task runner params.yaml asks for."""
    return livestyle_pipeline.with_options(
        task_runner=make_task_runner(cfg.runner, cfg.max_workers, cfg.dask_address))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Run the livestyle DVC pipeline as a Prefect flow.")
    p.add_argument("--root", default=".", help="the DVC repo (default: .)")
    p.add_argument("--styles", nargs="+", help="only these styles")
    p.add_argument("--targets", nargs="+", help="only these stages/groups and their upstream")
    p.add_argument("--runner", choices=["thread", "dask"], help="override params flow.runner")
    p.add_argument("--dask-address", help="Dask scheduler, e.g. tcp://host:8786")
    a = p.parse_args(argv)
    cfg = FlowConfig.load(a.root)
    overrides = {k: v for k, v in (("runner", a.runner), ("dask_address", a.dask_address)) if v}
    cfg = FlowConfig.from_params({**asdict(cfg), **overrides})
    state = pipeline_for(cfg)(root=a.root, styles=a.styles, targets=a.targets,
                              return_state=True)
    return 0 if state.is_completed() else 1


if __name__ == "__main__":
    sys.exit(run_cli(main))
