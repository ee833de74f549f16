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
from livestyle.errors import LivestyleError
from livestyle.media.preview import PreviewConfig

FILTER_SYNTAX = 'LABEL=WEIGHTS.h5[@{"antialias": 3}]'


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("out")
    ap.add_argument("filters", nargs="+", metavar="LABEL=WEIGHTS")
    ap.add_argument("--clip", required=True)
    ap.add_argument("--max-seconds", type=float)
    ap.add_argument("--profile", default=None, help="params.yaml profile whose network settings apply (gpu for GPU-trained weights)")


def parse_filter(spec: str) -> tuple[str, Path, dict]:
    """LABEL=WEIGHTS[@{network overrides as JSON}] -> (label, weights, overrides); one
    LivestyleError line naming the spec when it is not that."""
    label, sep, rest = spec.partition("=")
    if not sep or not label or not rest:
        raise LivestyleError(spec, f"expected {FILTER_SYNTAX}")
    weights, at, overrides = rest.partition("@")
    try:
        over = json.loads(overrides) if at else {}
    except json.JSONDecodeError as exc:
        raise LivestyleError(spec, f"the network overrides after '@' are not JSON ({exc.msg}): "
                             "write them as @{\"antialias\": 3}, quoted for the shell") from None
    if not isinstance(over, dict):
        raise LivestyleError(spec, "the network overrides after '@' must be a JSON object, e.g. @{\"antialias\": 3}")
    return label, Path(weights), over


def resolve(args: argparse.Namespace) -> tuple[PreviewConfig, list[tuple[str, Path, NetworkConfig]]]:
    """The preview settings, and each filter as (label, weights, its network settings)."""
    params = load_params(profile=args.profile)
    cfg = PreviewConfig.from_params(params.get("preview"))
    if args.max_seconds:
        cfg = dataclasses.replace(cfg, max_seconds=args.max_seconds)
    net = NetworkConfig.from_params(params.get("network"))
    filters = []
    for spec in args.filters:
        try:
            label, weights, overrides = parse_filter(spec)
        except LivestyleError as exc:
            raise SystemExit(f"filter {exc}") from None
        filters.append((label, weights, dataclasses.replace(net, **overrides) if overrides else net))
    return cfg, filters
