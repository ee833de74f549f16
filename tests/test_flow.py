"""flows.pipeline: the Prefect flow runs dvc.yaml's stages and leaves DVC in charge.

The slow tests build a tiny DVC repo in a tmp dir (never in the project tree:
`dvc status` reads every dvc.yaml in a repo) whose stages mimic the real pipeline's
shape and outputs, and run the flow on it against a temporary Prefect server.
"""

import json
import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from flows.pipeline import (
    FlowConfig,
    StageFailed,
    _run_logged,
    artifact_key,
    json_to_markdown,
    livestyle_pipeline,
    make_task_runner,
    style_report,
)
from livestyle.errors import LivestyleError

DVC = [sys.executable, "-m", "dvc"]

# One script for every fixture stage: writes the outputs the real stage would, logs
# start/end times to runlog.txt (untracked), and fails on request via marker files.
STAGE_PY = r'''
import json, sys, time, pathlib
stage, key = sys.argv[1], (sys.argv[2] if len(sys.argv) > 2 else "")
name = f"{stage}@{key}" if key else stage
log = pathlib.Path("runlog.txt")
with log.open("a") as f:
    f.write(f"start {name} {time.time()}\n")
once, always = pathlib.Path(f"fail_once_{name}"), pathlib.Path(f"fail_always_{name}")
if always.exists() or once.exists():
    once.unlink(missing_ok=True)
    sys.exit(f"{name}: failing on purpose")
out = pathlib.Path("data", stage, key)
out.mkdir(parents=True, exist_ok=True)
if stage == "train":
    time.sleep(1.0)  # long enough to see two styles overlap
if stage == "bench":
    (out / "bench.json").write_text(json.dumps({"runtimes": {
        "keras": {"ms_mean": 12.5, "fps": 80.0}, "onnx": {"ms_mean": 7.25, "fps": 138.0}},
        "input": [853, 480]}))
elif stage == "verify":
    (out / "verify.json").write_text(json.dumps({"psnr_db": {"tflite": 48.1, "onnx": 51.0},
                                                 "passed": True}))
elif stage == "preview":
    import cv2, numpy as np
    cv2.imwrite(str(out / "clip_poster.png"), np.full((64, 36, 3), 200, np.uint8))
    (out / "clip.mp4").write_bytes(b"not really a video")
else:
    (out / "done.txt").write_text(name)
with log.open("a") as f:
    f.write(f"end {name} {time.time()}\n")
'''


def _per_style(stage: str, dep: str) -> str:
    return textwrap.indent(textwrap.dedent(f"""\
      {stage}:
        foreach: ${{styles}}
        do:
          cmd: python stage.py {stage} ${{key}}
          deps:
            - stage.py
            - {dep}
          params:
            - styles.${{key}}
          outs:
            - data/{stage}/${{key}}
    """), "  ")


def fixture_repo(path: Path, styles=("a", "b"), flow_params="retries: 1\n  retry_delay_s: 0"):
    path.mkdir(parents=True)
    subprocess.run(["git", "init", "-q"], cwd=path, check=True)
    subprocess.run([*DVC, "init", "-q"], cwd=path, check=True)
    for key in ("core.analytics", "core.check_update"):
        subprocess.run([*DVC, "config", key, "false"], cwd=path, check=True)
    (path / "stage.py").write_text(STAGE_PY)
    (path / "params.yaml").write_text(
        "styles:\n" + "".join(f"  {s}:\n    weight: 1\n" for s in styles)
        + f"flow:\n  {flow_params}\n")
    stages = "stages:\n  prepare:\n    cmd: python stage.py prepare\n" \
             "    deps:\n      - stage.py\n    outs:\n      - data/prepare\n"
    stages += _per_style("train", "data/prepare")
    stages += _per_style("export", "data/train/${key}")
    for s in ("verify", "bench", "preview"):
        stages += _per_style(s, "data/export/${key}")
    stages += "  release:\n    cmd: python stage.py release\n    deps:\n" + "".join(
        f"      - data/{s}/{k}\n" for k in styles for s in ("verify", "bench", "preview")
    ) + "    outs:\n      - data/release\n"
    (path / "dvc.yaml").write_text(stages)
    return path


def runlog(repo: Path) -> list[tuple[str, str, float]]:
    p = repo / "runlog.txt"
    lines = p.read_text().split("\n") if p.exists() else []
    return [(e, n, float(t)) for e, n, t in (ln.split() for ln in lines if ln)]


def dvc_status(repo: Path) -> dict:
    out = subprocess.run([*DVC, "status", "--json"], cwd=repo, capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def mtimes(repo: Path) -> dict[str, int]:
    return {str(p.relative_to(repo)): p.stat().st_mtime_ns
            for p in (repo / "data").rglob("*") if p.is_file()}


def outcomes_by_stage(state) -> dict[str, str]:
    return {o.stage: o.note for o in state.result()}


def artifacts(key: str, state):
    """The artifacts with `key` that the flow run ending in `state` created."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey)

    run_id = ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id])
    with get_client(sync_client=True) as client:
        return client.read_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=[key]), flow_run_id=run_id))


@pytest.fixture(scope="session")
def prefect_server():
    from prefect.testing.utilities import prefect_test_harness

    # a loaded CI machine needs longer than Prefect's default to start a server
    with prefect_test_harness(server_startup_timeout=120):
        yield


# ---------------------------------------------------------------- fast tests


def test_flow_config_defaults_and_typos():
    assert FlowConfig.from_params(None) == FlowConfig()
    cfg = FlowConfig.from_params({"retries": 5, "runner": "dask", "dask_address": "tcp://h:8786"})
    assert (cfg.retries, cfg.runner, cfg.retry_delay_s) == (5, "dask", 10.0)
    with pytest.raises(LivestyleError, match=r"unknown key\(s\) in flow: retry"):
        FlowConfig.from_params({"retry": 3})
    with pytest.raises(LivestyleError, match="flow.runner: expected one of thread, dask, got 'ray'"):
        FlowConfig.from_params({"runner": "ray"})


def test_make_task_runner_kinds():
    from prefect.task_runners import ThreadPoolTaskRunner
    from prefect_dask import DaskTaskRunner

    assert isinstance(make_task_runner("thread", 3), ThreadPoolTaskRunner)
    remote = make_task_runner("dask", dask_address="tcp://10.0.0.5:8786")
    assert isinstance(remote, DaskTaskRunner) and remote.address == "tcp://10.0.0.5:8786"
    assert make_task_runner("dask", 2).cluster_kwargs["n_workers"] == 2
    with pytest.raises(ValueError):
        make_task_runner("ray")


def test_json_to_markdown_renders_any_metrics_shape():
    md = json_to_markdown({"runtimes": {"keras": {"ms": 12.5}, "onnx": {"ms": 7.25, "fps": 138}},
                           "passed": True, "sizes": [[853, 480]]})
    assert "| passed | True |" in md
    # a dict of records becomes one table with the union of columns
    assert "| keras | 12.5 |  |" in md and "| onnx | 7.25 | 138 |" in md
    assert "**sizes**" in md
    assert json_to_markdown([{"a": 1}, {"b": 0.123456}]).splitlines()[-1] == "|  | 0.1235 |"
    assert json_to_markdown({}) == "_(empty)_"


def test_style_report_shows_what_exists_and_survives_bad_files(tmp_path):
    (tmp_path / "data/bench/s").mkdir(parents=True)
    (tmp_path / "data/bench/s/bench.json").write_text('{"ms_mean": 66.0}')
    (tmp_path / "data/verify/s").mkdir(parents=True)
    (tmp_path / "data/verify/s/verify.json").write_text("{not json")
    md = style_report(tmp_path, "s")
    assert "| ms_mean | 66 |" in md
    assert "unreadable" in md
    assert "no previews yet" in md
    assert "not produced yet" in style_report(tmp_path, "other")


def test_artifact_key_is_valid_for_prefect():
    assert artifact_key("livestyle", "The_Scream 2") == "livestyle-the-scream-2"


def test_run_logged_keeps_only_the_last_state_of_a_progress_bar(tmp_path):
    records = []

    class Logger:
        def info(self, msg, *a):
            records.append(msg % a if a else msg)

        debug = info

    code = "import sys\nfor i in range(50): sys.stdout.write(f'\\r{i}/49')\nprint()\nprint('done')"
    rc, tail, _ = _run_logged([sys.executable, "-c", code], str(tmp_path), Logger())
    assert rc == 0 and records == ["49/49", "done"] and tail == records


# ---------------------------------------------------------------- the flow


@pytest.mark.slow
def test_flow_runs_stages_in_parallel_then_dvc_and_flow_agree(prefect_server, tmp_path):
    repo = fixture_repo(tmp_path / "repo")
    state = livestyle_pipeline(root=str(repo), return_state=True)
    assert state.is_completed(), state.message
    ran = outcomes_by_stage(state)
    assert set(ran) == {"prepare", "release"} | {
        f"{s}@{k}" for s in ("train", "export", "verify", "bench", "preview") for k in "ab"}
    assert set(ran.values()) == {"ran"}

    # DVC sees everything done: status is clean and `dvc repro` has nothing to run
    assert dvc_status(repo) == {}
    out = subprocess.run([*DVC, "repro"], cwd=repo, capture_output=True, text=True, check=True)
    assert "Running stage" not in out.stdout

    # per-style branches overlapped on the two worker threads
    t = {(e, n): ts for e, n, ts in runlog(repo)}
    assert t[("start", "train@b")] < t[("end", "train@a")]
    assert t[("start", "train@a")] < t[("end", "train@b")]
    # ...and every stage started after its upstream finished
    assert t[("start", "export@a")] > t[("end", "train@a")]
    assert t[("start", "release")] > max(t[("end", f"{s}@{k}")]
                                         for s in ("verify", "bench", "preview") for k in "ab")

    # the UI gets one report per style and the stage table
    (report,) = artifacts("livestyle-a", state)
    assert "| keras | 12.5 | 80 |" in report.data and "| onnx | 51 |" in report.data
    assert "data:image/jpeg;base64," in report.data and "clip.mp4" in report.data
    (table,) = artifacts("livestyle-stages", state)
    rows = json.loads(table.data)
    assert {r["stage"]: r["result"] for r in rows}["release"] == "ran"

    # a second run starts nothing: no stage command, no output touched
    before, n_log = mtimes(repo), len(runlog(repo))
    again = livestyle_pipeline(root=str(repo), return_state=True)
    assert set(outcomes_by_stage(again).values()) == {"up to date"}
    # same without the status shortcut: every stage goes to `dvc repro`, which skips it
    again = livestyle_pipeline(root=str(repo), check_status=False, return_state=True)
    assert set(outcomes_by_stage(again).values()) == {"up to date"}
    assert mtimes(repo) == before and len(runlog(repo)) == n_log

    # changing one style's params reruns that branch, nothing else; release is
    # asked (its upstream ran) and DVC skips it: its inputs came out byte-identical
    (repo / "params.yaml").write_text((repo / "params.yaml").read_text().replace(
        "  b:\n    weight: 1", "  b:\n    weight: 2"))
    third = outcomes_by_stage(livestyle_pipeline(root=str(repo), return_state=True))
    assert {s for s, note in third.items() if note == "ran"} == {
        "train@b", "export@b", "verify@b", "bench@b", "preview@b"}
    assert third["release"] == "up to date"
    assert dvc_status(repo) == {}

    # work done by `dvc repro` outside the flow: the flow then only reports
    (repo / "params.yaml").write_text((repo / "params.yaml").read_text().replace(
        "  a:\n    weight: 1", "  a:\n    weight: 3"))
    subprocess.run([*DVC, "repro", "-q"], cwd=repo, check=True)
    before, n_log = mtimes(repo), len(runlog(repo))
    fourth = livestyle_pipeline(root=str(repo), return_state=True)
    assert set(outcomes_by_stage(fourth).values()) == {"up to date"}
    assert mtimes(repo) == before and len(runlog(repo)) == n_log


@pytest.mark.slow
def test_failing_stage_is_retried_and_a_broken_branch_stops_alone(prefect_server, tmp_path):
    repo = fixture_repo(tmp_path / "repo")
    (repo / "fail_once_train@a").touch()
    (repo / "fail_always_export@b").touch()
    state = livestyle_pipeline(root=str(repo), return_state=True)

    assert state.is_failed()
    with pytest.raises(StageFailed, match="export@b"):
        state.result()
    starts = [n for e, n, _ in runlog(repo) if e == "start"]
    assert starts.count("train@a") == 2  # failed once, retried (flow.retries: 1)
    (table,) = artifacts("livestyle-stages", state)
    rows = {r["stage"]: r for r in json.loads(table.data)}
    assert (rows["train@a"]["state"], rows["train@a"]["attempts"]) == ("Completed", 2)
    assert rows["export@b"]["state"] == "Failed" and "failing on purpose" in rows["export@b"]["result"]
    assert starts.count("export@b") == 2  # retried, failed again
    # style a's branch finished; nothing downstream of the broken stage ran
    assert {"verify@a", "bench@a", "preview@a"} <= set(starts)
    assert not {"verify@b", "bench@b", "preview@b", "release"} & set(starts)
    stale = dvc_status(repo)
    assert "export@b" in stale and "release" in stale and "verify@a" not in stale
    # style a's report was still written
    (report,) = artifacts("livestyle-a", state)
    assert "| keras | 12.5 | 80 |" in report.data


@pytest.mark.slow
def test_dask_runner_runs_a_style_subset(prefect_server, tmp_path):
    repo = fixture_repo(tmp_path / "repo")
    flow = livestyle_pipeline.with_options(task_runner=make_task_runner("dask", 2))
    state = flow(root=str(repo), styles=["b"], targets=["export"], return_state=True)
    assert state.is_completed(), state.message
    assert set(outcomes_by_stage(state)) == {"prepare", "train@b", "export@b"}
    assert {n for _, n, _ in runlog(repo)} == {"prepare", "train@b", "export@b"}
