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
    from livestyle.release.bundle import bundle_summary, verify_bundle

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
    from livestyle.measure.quality import TEXTURE_MIN_SIDE, format_table, score

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


def cmd_stylize(args: argparse.Namespace) -> int:
    """Apply a style to your own photo, folder of photos or video (-o OUT), or live to a
    camera (--camera 0, or a video file standing in for one). The style is one the
    pipeline trained (--style NAME, from params.yaml and data/train/NAME) or an exported
    model (--model PATH). --stabilise steadies a video or the camera against flicker by
    blending in the previous output where the motion is trusted. Camera window keys: n/p
    style, +/- strength, t stabilise on/off, s save the frame, q or Esc quit. Without a
    display the camera runs headless: no window, the stylized frames go to -o if given,
    the frame rate is printed; Ctrl-C stops it."""
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # the user's output, not TensorFlow's start-up log
    from livestyle.convert.runtime import Runner, check_strength, open_model, open_style, resolve_styles

    strength = check_strength(args.strength)
    palette = None if args.palette is None else check_strength(args.palette, "--palette")
    stabilise = _stabilise(args)
    if (args.source is None) == (args.camera is None):
        raise LivestyleError("SOURCE", "give a photo, folder or video, or --camera INDEX|VIDEO (one of the two)")
    if bool(args.style) == bool(args.model):
        raise LivestyleError("--style", "give --style NAME or --model PATH (one of the two)")
    if args.max_side < 0:
        raise LivestyleError("--max-side", f"must be 0 (no cap) or more, got {args.max_side}")
    if args.model:
        runner: Runner = open_model(args.model, args.params, palette)
        names, open_one = [runner.name], lambda _: runner
    else:
        names, open_one = resolve_styles(args.style, args.params), lambda name: open_style(name, args.params, palette)
    if args.camera is not None:
        from livestyle.media.live import Styles, run_camera

        styles = Styles(names, open_one)
        default = styles[0].input_size if args.model else None
        run_camera(args.camera, styles, args.out, size=_size(args.size), default_size=default or _export_size(args.params),
                   strength=strength, save_dir=args.save_dir, max_frames=args.frames, stabilise=stabilise)
        return 0
    if len(names) > 1:
        raise LivestyleError("--style", "one style for a file or folder (several switch live with --camera and n/p)")
    if not args.out:
        raise LivestyleError(args.source, "where to? give the output path with -o OUT")
    from livestyle.media.stylize import stylize_path

    print(stylize_path(open_one(names[0]), args.source, args.out, strength, args.max_side or None, stabilise))
    return 0


def _stabilise(args: argparse.Namespace) -> float:
    """--stabilise's blend strength (0: off). Its value is optional, so in
    `stylize --stabilise clip.mp4 -o out.mp4` argparse hands it the source: given back."""
    from livestyle.media.stabilise import DEFAULT_STRENGTH, TemporalBlend

    text = args.stabilise
    if text is None:
        return 0.0
    try:
        value = float(text) if text else DEFAULT_STRENGTH  # "": the flag without a value
    except ValueError:
        if args.source is not None or args.camera is not None:
            raise LivestyleError("--stabilise", f"expected a strength from 0 to under 1, got {text!r}") from None
        args.source, value = text, DEFAULT_STRENGTH
    try:
        TemporalBlend(value)
    except ValueError as exc:
        raise LivestyleError("--stabilise", str(exc)) from None
    return value


def _size(text: str | None) -> tuple[int, int] | None:
    """"WIDTHxHEIGHT" (as ffmpeg writes sizes) -> (height, width)."""
    if text is None:
        return None
    w, _, h = text.lower().partition("x")
    if not (w.isdigit() and h.isdigit() and int(w) > 0 and int(h) > 0):
        raise LivestyleError("--size", f"expected WIDTHxHEIGHT, e.g. 480x853, got {text!r}")
    return int(h), int(w)


def _export_size(params_path: str) -> tuple[int, int]:
    """The first export size (the phone model's input), or its default without params."""
    from livestyle.config import load_params
    from livestyle.convert.export import ExportConfig

    try:
        return tuple(ExportConfig.from_params(load_params(params_path).get("export")).sizes[0])
    except LivestyleError:
        return ExportConfig().sizes[0]


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

    p = sub.add_parser("stylize", help="apply a style to your photos, videos or camera", description=cmd_stylize.__doc__)
    p.add_argument("source", nargs="?", metavar="SOURCE", help="a photo, a folder of photos, or a video (anything ffmpeg reads)")
    p.add_argument("-o", "--out", metavar="OUT", help="output file (a folder for a folder); with --camera, a video to record to")
    p.add_argument("--style", action="append", metavar="NAME", help="a trained style; with --camera repeat it, or give 'all', to switch with n/p")
    p.add_argument("--model", metavar="PATH", help="an exported model: .onnx, .tflite, .weights.h5 (network from --params), Core ML on macOS")
    p.add_argument("--camera", metavar="INDEX|VIDEO", help="live: a camera index (0) or a video file standing in for one")
    p.add_argument("--strength", type=float, default=1.0, help="0..1: strength * stylized + (1 - strength) * photo (default 1)")
    p.add_argument("--palette", type=float, metavar="STRENGTH",
                   help="0..1: the style's palette map (Keras weights with their palette.json; default params' "
                        "network.palette_strength): the painting's colours on stills, more flicker on video")
    p.add_argument("--stabilise", nargs="?", const="", metavar="STRENGTH",
                   help="video and --camera: blend in the previous output, warped by optical flow, where the motion is "
                        "trusted: less flicker (0..1, default 0.7 when given; off without it)")
    p.add_argument("--max-side", type=int, default=1920, help="photos and videos: cap the long side at this (default 1920, 0: no cap)")
    p.add_argument("--size", metavar="WxH", help="--camera: frame size (default the export size, 480x853, turned like the source)")
    p.add_argument("--frames", type=int, default=0, metavar="N", help="--camera: stop after N frames (default: q, the clip's end or Ctrl-C)")
    p.add_argument("--save-dir", default=".", metavar="DIR", help="--camera: where s saves frames (default .)")
    p.add_argument("--params", default="params.yaml", metavar="PARAMS", help="the project's params.yaml (styles, network, export size)")
    p.set_defaults(func=cmd_stylize)
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
