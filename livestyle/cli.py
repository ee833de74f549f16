"""The `livestyle` command. Subcommands register in `build_parser`; each is a function
(args) -> exit code, so adding one is a parser entry and a function.

Bad input (LivestyleError) prints one line "livestyle: path: problem" on stderr and
exits 1: a user sees what to fix, not a traceback.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from livestyle.errors import LivestyleError


def cmd_verify_bundle(args: argparse.Namespace) -> int:
    """Check every file of a release bundle against its manifest."""
    from livestyle.bundle import bundle_summary, verify_bundle

    problems = verify_bundle(args.bundle)
    if problems:
        for p in problems:
            print(f"{args.bundle}: {p}")
        print(f"FAILED: {args.bundle}: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    s = bundle_summary(args.bundle)
    print(f"OK: {args.bundle}: version {s['version']}, {len(s['styles'])} style(s) ({', '.join(s['styles'])}), {s['files']} files, {s['bytes']} bytes verified")
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    """Score a stylized image against its photo and painting with measures training does
    not optimise (texture under a fixed random CNN, Lab colour distribution, lost photo
    structure), beside the unstylized photo's figures. 0 = best for every measure."""
    from livestyle.atomic import write_json
    from livestyle.images import load_rgb
    from livestyle.quality import TEXTURE_MIN_SIDE, format_table, score

    images = {}
    for key in ("stylized", "photo", "painting"):
        path = getattr(args, key)
        images[key] = load_rgb(path)
        if min(images[key].shape[:2]) < TEXTURE_MIN_SIDE:
            raise LivestyleError(path, f"image is under {TEXTURE_MIN_SIDE} px on its short side")
    loss_cfg = None
    if args.lossnet:
        from livestyle.config import LossConfig, load_params

        loss = dict(load_params(args.params).get("loss") or {}) if args.params else {}
        loss_cfg = LossConfig.from_params({**loss, "network": args.lossnet})
    figures = score(images["stylized"], images["photo"], images["painting"], loss_cfg=loss_cfg, seed=args.seed)
    print(format_table(figures))
    if args.json:
        write_json(args.json, {"files": {k: str(getattr(args, k)) for k in images}, "seed": args.seed, **figures})
    return 0


def build_parser() -> argparse.ArgumentParser:
    from livestyle import __version__

    parser = argparse.ArgumentParser(prog="livestyle", description="Paintings into real-time video filters.")
    parser.add_argument("--version", action="version", version=f"livestyle {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("verify-bundle", help="check a release bundle's checksums and manifest", description=cmd_verify_bundle.__doc__)
    p.add_argument("bundle", metavar="BUNDLE", help="release zip, e.g. data/release/livestyle-0.1.0.zip")
    p.set_defaults(func=cmd_verify_bundle)

    p = sub.add_parser("score", help="quality figures of a stylized image (texture, colour, content)", description=cmd_score.__doc__)
    p.add_argument("stylized", metavar="STYLIZED", help="the stylized image (any format Pillow reads)")
    p.add_argument("--photo", required=True, help="the photo it was made from")
    p.add_argument("--painting", required=True, help="the style's painting")
    p.add_argument("--lossnet", metavar="NETWORK", help="also the training loss figures under this loss network (hed_vgg16, vgg16, vgg19)")
    p.add_argument("--params", metavar="PARAMS", help="with --lossnet: take loss layers and style_scale from this params.yaml's loss: section")
    p.add_argument("--seed", type=int, default=0, help="seed of the random texture filters and colour projections (default 0)")
    p.add_argument("--json", metavar="OUT", help="also write the figures to this JSON file")
    p.set_defaults(func=cmd_score)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except LivestyleError as exc:
        print(f"livestyle: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
