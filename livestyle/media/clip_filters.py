"""The command line shared by the scripts that run trained filters over a clip
(scripts/flicker_compare.py, scripts/flicker_where.py): OUT, LABEL=WEIGHTS[@{network
overrides as JSON}] ..., --clip, --max-seconds, --profile; resolved against params.yaml's
preview: and network: sections as `dvc repro preview@S` resolves them."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from livestyle.config import NetworkConfig, load_params
from livestyle.media.preview import PreviewConfig


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("out")
    ap.add_argument("filters", nargs="+", metavar="LABEL=WEIGHTS")
    ap.add_argument("--clip", required=True)
    ap.add_argument("--max-seconds", type=float)
    ap.add_argument("--profile", default=None, help="params.yaml profile whose network settings apply (gpu for GPU-trained weights)")


def resolve(args: argparse.Namespace) -> tuple[PreviewConfig, list[tuple[str, Path, NetworkConfig]]]:
    """The preview settings, and each filter as (label, weights, its network settings)."""
    params = load_params(profile=args.profile)
    cfg = PreviewConfig.from_params(params.get("preview"))
    if args.max_seconds:
        cfg = dataclasses.replace(cfg, max_seconds=args.max_seconds)
    net = NetworkConfig.from_params(params.get("network"))
    filters = []
    for spec in args.filters:
        label, sep, rest = spec.partition("=")
        if not sep or not label:
            raise SystemExit(f"filter {spec!r}: expected LABEL=WEIGHTS.h5[@{{\"antialias\": 3}}]")
        weights, _, overrides = rest.partition("@")
        filters.append((label, Path(weights), dataclasses.replace(net, **json.loads(overrides)) if overrides else net))
    return cfg, filters
