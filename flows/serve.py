"""Serve the pipeline flow on the schedule in params.yaml `flow.cron`.

    prefect server start --host 127.0.0.1      # one terminal: the API and UI
    python -m flows.serve                      # another: schedules and runs the flow

A schedule needs a real Prefect server: the temporary one a bare flow call starts
dies with the process and cannot schedule. `flow.serve` keeps this
process polling that server and runs each scheduled flow run in a subprocess, with
the task runner params.yaml asks for.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import asdict
from pathlib import Path

import httpx

from flows import PROJECT_ROOT
from flows.pipeline import FlowConfig, pipeline_for
from livestyle.errors import LivestyleError


def check_server(api_url: str) -> None:
    """Fail in one line, with the command to run, when no server answers."""
    try:
        httpx.get(api_url.rstrip("/") + "/health", timeout=5).raise_for_status()
    except httpx.HTTPError as exc:
        raise LivestyleError(api_url, f"no Prefect server answers ({exc.__class__.__name__}); "
                             "start one with `prefect server start --host 127.0.0.1`") from exc


def serve(root: str | os.PathLike = PROJECT_ROOT, cfg: FlowConfig | None = None,
          api_url: str | None = None) -> None:
    """Register deployment `cfg.deployment` with schedule `cfg.cron` and serve it.

    Blocks until interrupted. api_url: PREFECT_API_URL if set, else params
    `flow.api_url` (the local server, http://127.0.0.1:4200/api).
    """
    from prefect.settings import PREFECT_API_URL, temporary_settings

    root = Path(root).resolve()
    cfg = cfg or FlowConfig.load(root)
    api_url = api_url or os.environ.get("PREFECT_API_URL") or cfg.api_url
    check_server(api_url)
    with temporary_settings(updates={PREFECT_API_URL: api_url}):
        pipeline_for(cfg).serve(
            name=cfg.deployment,
            cron=cfg.cron,
            parameters={"root": str(root)},
            description=f"livestyle DVC pipeline in {root}, on cron '{cfg.cron}'",
            tags=["livestyle"],
        )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Serve the livestyle flow on its cron schedule.")
    p.add_argument("--root", default=str(PROJECT_ROOT), help="the DVC repo")
    p.add_argument("--cron", help="override params flow.cron, e.g. '0 3 * * *'")
    p.add_argument("--name", help="override params flow.deployment")
    p.add_argument("--runner", choices=["thread", "dask"], help="override params flow.runner")
    p.add_argument("--dask-address", help="Dask scheduler, e.g. tcp://host:8786")
    p.add_argument("--api-url", help="Prefect API (default: PREFECT_API_URL or flow.api_url)")
    a = p.parse_args(argv)
    overrides = {"cron": a.cron, "deployment": a.name, "runner": a.runner,
                 "dask_address": a.dask_address}
    try:
        cfg = FlowConfig.load(a.root)
        cfg = FlowConfig.from_params({**asdict(cfg), **{k: v for k, v in overrides.items() if v}})
        serve(a.root, cfg, a.api_url)
    except LivestyleError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
