"""Score trained filters the way the project's ablations judge them.

    python scripts/score_runs.py OUT_DIR --profile gpu --set network.antialias=0 \
        --photo ../shared/data/content/chicago.jpg --skimage astronaut,coffee,chelsea,rocket \
        --strengths 0,1 --fit-photos gpu_carry/photos --probes 24 \
        --heldout-photos gpu_carry/photos --heldout-split --choice-photos 8 --choose s1,s2 \
        --painting-dir ../shared/data/styles \
        s1=/tmp/r52/u_sc1_aa0_s1/train/udnie/transformer.weights.h5 \
        's2=/tmp/r52/u_sc1_aa0_s2/train/udnie/transformer.weights.h5@{"antialias": 0}'

How docs/ABLATIONS.md scores GPU runs (sections 19-26): photo figures at palette strengths
0 and 1 (the palette map fitted as the train stage fits it), the synthetic sky probes a
filter blots, and the train stage's choice among runs replayed on held-out photos.

Each run is LABEL=WEIGHTS.h5, with the network settings it was trained with named after
it as JSON where they differ from params.yaml's (`@{"antialias": 3}`, as
scripts/flicker_compare.py takes them). Its style is the weights' folder name; its painting
--painting-dir/STYLE.jpg (or .png), else params.yaml's styles.STYLE.image, else the painting
its palette.json was fitted against.

Per run, at each --strengths palette strength (network.palette_strength):
- each --photo and --skimage photo scored by livestyle.measure.quality.score (texture,
  colour, content, flat_area), the stylized photo saved as OUT_DIR/LABEL/PHOTO_pS.png;
- the sky probes (livestyle.measure.sky_probes): each probe's flat area and the count
  blotted, by the train stage's rule (sky_blob_figures: a flat area above 0, i.e. a flat
  patch of at least quality.FLAT_MIN_PATCH = 0.005 of the frame).
With --heldout-photos, the train stage's judge: quality.filter_figures on the held-out
photos at palette strength 0, plus the probes blotted at strength 0; with --choose A,B,C
(repeatable) the run livestyle.model.choice.choose ships among those runs.

A strength above 0 needs the style's palette map (palette.json beside the weights): where
there is none it is fitted as the train stage fits it (livestyle.model.palette, on
--fit-count photos of --fit-photos at --fit-side px short side) and written beside the
weights, or kept in memory where that folder is not writable.

Writes OUT_DIR/scores.json (everything, figures unrounded) and OUT_DIR/scores.md (one row
per run and strength: each photo's `texture / colour / content`, the probes blotted). Bad
input (a missing weights file, an unreadable photo, bad JSON, a run without `=`) is one
line on stderr and exit code 2, before anything is written.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
from tqdm import tqdm

from livestyle import markdown
from livestyle.atomic import write_text
from livestyle.config import STYLE_NAME, NetworkConfig, TrainConfig, load_params, style_config, with_overrides
from livestyle.convert.export import load_transformer, stylizer
from livestyle.errors import LivestyleError, run_cli
from livestyle.images import load_rgb, save_png
from livestyle.media import clip_filters
from livestyle.measure.quality import FLAT_METRIC, METRICS, TEXTURE_MIN_SIDE, filter_figures, resample_short_side, score
from livestyle.measure.quality_report import cap_side
from livestyle.measure.sky_probes import PROBE_SIZE, probe_flat_areas
from livestyle.model.choice import SKY_BLOBS, choose
from livestyle.model.data import IMAGE_SUFFIXES, DataConfig, _builtin_image, _is_heldout
from livestyle.model.palette import PALETTE_FILE, fit_palette, load_palette, save_palette, training_photos
from livestyle.provenance import file_sha256

FIGURES = (*METRICS, FLAT_METRIC)  # per photo and strength: texture, colour, content, flat_area
RUN_SYNTAX = clip_filters.FILTER_SYNTAX


@dataclasses.dataclass
class Run:
    label: str
    weights: Path
    overrides: dict
    style: str = ""
    painting: str = ""
    net: NetworkConfig | None = None
    palette: dict | None = None  # how its palette map was found: read, fitted and written, fitted in memory
    scored_weights: Path | None = None  # the weights the stylizer loads (a linked copy beside an in-memory map)


def parse_run(spec: str) -> Run:
    """LABEL=WEIGHTS[@{network overrides as JSON}], the flicker scripts' syntax."""
    label, weights, overrides = clip_filters.parse_filter(spec)
    if not STYLE_NAME.match(label):
        raise LivestyleError(spec, f"label {label!r} names a folder of OUT_DIR: use letters, digits, '_' and '-'")
    return Run(label, weights, overrides)


def parse_strengths(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values or not all(0 <= v <= 1 for v in values):
        raise LivestyleError("--strengths", f"{text!r}: expected palette strengths from 0 to 1, e.g. 0,1")
    return list(dict.fromkeys(values))


def key(strength: float) -> str:
    return f"{strength:g}"


def shrunk(image: np.ndarray, max_side: int | None, name) -> np.ndarray:
    """The photo capped at max_side px on its long side as the quality stage caps it,
    checked to be large enough for the texture measure."""
    image = cap_side(image, max_side) if max_side else image
    if min(image.shape[:2]) < TEXTURE_MIN_SIDE:
        raise LivestyleError(name, f"photo is {image.shape[1]}x{image.shape[0]} px, under the texture measure's "
                             f"{TEXTURE_MIN_SIDE} px on its short side: give a larger photo (or --max-side)")
    return image


def probe_size(max_side: int | None) -> tuple[int, int]:
    h, w = PROBE_SIZE
    s = min(1.0, max_side / max(h, w)) if max_side else 1.0
    return round(h * s), round(w * s)


def painting_for(run: Run, painting_dir: str | None, params: dict) -> str:
    """--painting-dir/STYLE.jpg|png, else params' styles.STYLE.image, else its palette's painting."""
    if painting_dir:
        for suffix in (".jpg", ".jpeg", ".png"):
            path = Path(painting_dir) / f"{run.style}{suffix}"
            if path.exists():
                return str(path)
    entry = (params.get("styles") or {}).get(run.style) or {}
    if isinstance(entry, dict) and entry.get("image"):
        return str(entry["image"])
    palette = load_palette(run.weights)
    if palette and palette.get("painting"):
        return str(palette["painting"])
    raise LivestyleError(run.weights, f"no painting for style {run.style!r} (the weights' folder name): give "
                         f"--painting-dir DIR holding {run.style}.jpg, or set styles.{run.style}.image in params.yaml")


def resolve_run(run: Run, params: dict, painting_dir: str | None) -> np.ndarray:
    """Fill in the run's style, painting and network, checking that its weights load into that
    network; returns the painting."""
    if not run.weights.is_file():
        raise LivestyleError(run.weights, f"no such weights file (run {run.label}): give {RUN_SYNTAX}")
    run.style = run.weights.parent.name
    run.painting = painting_for(run, painting_dir, params)
    styles = dict(params.get("styles") or {})
    styles[run.style] = {**(styles.get(run.style) or {}), "image": run.painting}
    net = style_config({**params, "styles": styles}, run.style).network
    try:
        run.net = dataclasses.replace(net, **run.overrides)
    except TypeError:
        known = ", ".join(f.name for f in dataclasses.fields(NetworkConfig))
        raise LivestyleError(f"{run.label}=...@{json.dumps(run.overrides)}",
                             f"not a network setting; the keys are {known}") from None
    except LivestyleError as exc:
        raise LivestyleError(f"{run.label}=...@{json.dumps(run.overrides)}", exc.problem) from None
    try:  # before anything is written: the weights are a transformer of this network
        with warnings.catch_warnings():  # Keras warns per layer before it raises: the one line below says it
            warnings.simplefilter("ignore")
            load_transformer(run.weights, dataclasses.replace(run.net, palette_strength=0.0), 32, 32)
    except Exception as exc:  # noqa: BLE001 - h5py and Keras raise many kinds; one line names the file
        reason = (str(exc).splitlines() or [""])[0][:200]
        raise LivestyleError(run.weights, f"does not load into the network ({type(exc).__name__}: {reason}); check "
                             "--profile, --set and the run's @{...} overrides against how it was trained") from None
    return load_rgb(run.painting)


def skimage_photos(names: str) -> dict[str, np.ndarray]:
    """scikit-image's sample photos by name, loaded as the prepare stage loads its built-ins."""
    out = {}
    for name in filter(None, (n.strip() for n in names.split(","))):
        try:
            image = np.asarray(_builtin_image(name))
        except Exception as exc:  # noqa: BLE001 - unknown name, or a data file skimage cannot fetch
            raise LivestyleError(f"--skimage {name}", f"not a scikit-image photo ({type(exc).__name__}); "
                                 "try astronaut, coffee, chelsea, rocket") from None
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=2)
        if image.ndim != 3 or image.shape[2] < 3:
            raise LivestyleError(f"--skimage {name}", f"not an RGB photo (shape {image.shape})")
        out[name] = image[..., :3]
    return out


def image_files(folder: str) -> list[Path]:
    files = sorted(p for p in Path(folder).glob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise LivestyleError(folder, "no photos (jpg, png) in this folder: give a folder of photos")
    return files


def heldout_photos(args, data: DataConfig) -> dict[str, np.ndarray]:
    """The first --choice-photos of --heldout-photos (with --heldout-split: of the photos
    the prepare stage holds out of that folder by data.seed and data.heldout_fraction)."""
    files = image_files(args.heldout_photos)
    if args.heldout_split:
        files = [p for p in files if _is_heldout(p.name, data.seed, data.heldout_fraction)]
        if not files:
            raise LivestyleError(args.heldout_photos, f"the prepare stage holds out none of these photos (data.seed "
                                 f"{data.seed}, heldout_fraction {data.heldout_fraction}): drop --heldout-split")
    return {p.name: shrunk(load_rgb(p), args.max_side, p) for p in files[: args.choice_photos]}


def main(argv: list[str]) -> int:
    try:
        return score_runs(argv)
    except LivestyleError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def arguments() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", metavar="OUT_DIR")
    ap.add_argument("runs", nargs="+", metavar=RUN_SYNTAX)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--profile", default=None, help="params.yaml profile the weights were trained with (gpu)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a params key, e.g. network.antialias=0")
    ap.add_argument("--photo", action="append", default=[], help="a photo to score (repeatable)")
    ap.add_argument("--skimage", default="", metavar="A,B", help="scikit-image photos to score, e.g. astronaut,coffee")
    ap.add_argument("--strengths", default="0,1", help="palette strengths (default 0,1)")
    ap.add_argument("--max-side", type=int, default=None, help="shrink photos and probes to this long side (px)")
    ap.add_argument("--probes", type=int, default=None, help="sky probes (default params train.choice_probes)")
    ap.add_argument("--fit-photos", default="data/prepared/train", help="photos a missing palette map is fitted on")
    ap.add_argument("--fit-count", type=int, default=None, help="default params train.palette_photos")
    ap.add_argument("--fit-side", type=int, default=None, help="their short side, px (default params data.image_size)")
    ap.add_argument("--heldout-photos", default=None, metavar="DIR", help="photos for the train stage's judge")
    ap.add_argument("--heldout-split", action="store_true", help="only those the prepare stage holds out of DIR")
    ap.add_argument("--choice-photos", type=int, default=None, help="default params train.choice_photos")
    ap.add_argument("--choose", action="append", default=[], metavar="A,B,C", help="runs to choose among (repeatable)")
    ap.add_argument("--painting-dir", default=None, help="folder of paintings named STYLE.jpg or STYLE.png")
    return ap


def score_runs(argv: list[str]) -> int:
    args = arguments().parse_args(argv)
    # everything is checked and read before anything is written
    runs = [parse_run(spec) for spec in args.runs]
    labels = [r.label for r in runs]
    if len(set(labels)) < len(labels):
        raise LivestyleError("runs", f"a label is given twice ({', '.join(labels)}): give each run its own")
    strengths = parse_strengths(args.strengths)
    params = with_overrides(load_params(args.params, profile=args.profile), args.set)
    data = DataConfig.from_params(params.get("data"))
    train = TrainConfig.from_params(params.get("train"))
    n_probes = train.choice_probes if args.probes is None else args.probes
    for flag, value in (("--probes", n_probes), ("--max-side", args.max_side), ("--fit-count", args.fit_count),
                        ("--fit-side", args.fit_side), ("--choice-photos", args.choice_photos)):
        if value is not None and value < (0 if flag == "--probes" else 1):
            raise LivestyleError(flag, f"{value}: expected a {'count' if flag == '--probes' else 'positive number'}")
    args.choice_photos = args.choice_photos or train.choice_photos
    groups = [[g.strip() for g in group.split(",") if g.strip()] for group in args.choose]
    for group in groups:
        unknown = [g for g in group if g not in labels]
        if unknown or not group:
            raise LivestyleError("--choose", f"{','.join(group)}: {', '.join(unknown) or 'no runs'} not among the runs "
                                 f"({', '.join(labels)})")
    if groups and not args.heldout_photos:
        raise LivestyleError("--choose", "the choice is made on held-out photos: give --heldout-photos DIR")

    photos = {}
    sources = {}
    for path in args.photo:
        name = Path(path).stem
        if name in photos:
            raise LivestyleError(path, f"a second photo named {name!r}: rename one (PNGs are named after it)")
        try:
            image = load_rgb(path)
        except LivestyleError as exc:
            raise LivestyleError(exc.path, f"{exc.problem}; --photo takes a JPEG or PNG photo") from None
        photos[name], sources[name] = shrunk(image, args.max_side, path), str(path)
    for name, image in skimage_photos(args.skimage).items():
        if name in photos:
            raise LivestyleError(f"--skimage {name}", f"a photo named {name!r} is given twice")
        photos[name], sources[name] = shrunk(image, args.max_side, f"--skimage {name}"), f"skimage.data.{name}"
    heldout = heldout_photos(args, data) if args.heldout_photos else {}

    paintings = {r.label: resolve_run(r, params, args.painting_dir) for r in runs}
    shas = {r.label: file_sha256(r.weights) for r in runs}
    needs_map = any(s > 0 for s in strengths)
    unmapped = [r for r in runs if needs_map and load_palette(r.weights) is None]
    fit_side = args.fit_side or data.image_size
    fit_images = []
    if unmapped:
        fit_files = training_photos(Path(args.fit_photos), args.fit_count or train.palette_photos)
        fit_images = [resample_short_side(load_rgb(p), fit_side) for p in fit_files]

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    size = probe_size(args.max_side)
    probe_strengths = sorted(set(strengths) | ({0.0} if heldout else set()))
    total = len(fit_images) * len(unmapped) + len(runs) * (
        len(strengths) * len(photos) + len(probe_strengths) * n_probes + len(heldout))
    record: dict = {
        "profile": params.get("profile"), "set": args.set, "strengths": strengths, "max_side": args.max_side,
        "photos": sources,
        "probes": {"count": n_probes, "size": list(size), "blotted": "flat_area > 0 (sky_blob_figures)"},
        "runs": {},
    }
    if heldout:
        record["heldout"] = {"folder": args.heldout_photos, "photos": list(heldout), "palette_strength": 0.0}
    with contextlib.ExitStack() as stack, tqdm(total=total, desc="score", unit="image") as bar:
        for run in runs:
            painting = paintings[run.label]
            plain = stylizer(run.weights, dataclasses.replace(run.net, palette_strength=0.0))  # no palette map
            prepare_palette(run, shas[run.label], needs_map, plain, fit_images, painting, bar, stack)
            result = record["runs"][run.label] = {
                "label": run.label, "weights": str(run.weights), "weights_sha256": shas[run.label],
                "style": run.style, "painting": run.painting, "overrides": run.overrides,
                "network": dataclasses.asdict(run.net), "palette": run.palette,
                "photos": {name: {} for name in photos}, "probes": {},
            }
            for s in probe_strengths:
                stylize = plain if s == 0 else stylizer(run.scored_weights, dataclasses.replace(run.net, palette_strength=s))
                if s in strengths:
                    for name, photo in photos.items():
                        bar.set_postfix_str(f"{run.label} {name} p{key(s)}")
                        y = np.clip(stylize(np.asarray(photo, np.float32)[None])[0], 0, 255)
                        save_png(out / run.label / f"{name}_p{key(s)}.png", y)
                        figures = score(y, photo, painting)
                        result["photos"][name][key(s)] = {k: float(figures[k]) for k in FIGURES}
                        bar.update()
                bar.set_postfix_str(f"{run.label} probes p{key(s)}")
                areas = []
                for k in range(n_probes):
                    areas += probe_flat_areas(stylize, 1, seed=k, size=size)
                    bar.update()
                # the train stage's rule (sky_blob_figures): flat_area is 0 below FLAT_MIN_PATCH
                result["probes"][key(s)] = {"flat_areas": areas, "blotted": sum(a > 0 for a in areas), "count": n_probes}
                if s == 0 and heldout:
                    bar.set_postfix_str(f"{run.label} held-out")
                    judged = filter_figures(stylize, list(heldout.values()), painting)
                    if n_probes:  # as the train stage judges a candidate
                        judged[SKY_BLOBS] = result["probes"][key(0.0)]["blotted"]
                    result["heldout"] = judged
                    bar.update(len(heldout))
    record["choices"] = [{"group": group, "chosen": chosen(group, record["runs"])} for group in groups]
    write_text(out / "scores.json", json.dumps(record, indent=1) + "\n")
    write_text(out / "scores.md", report(record) + "\n")
    for c in record["choices"]:
        print(f"choice among {', '.join(c['group'])}: {c['chosen']}")
    print(out / "scores.md")
    return 0


def prepare_palette(run: Run, sha: str, needs_map: bool, plain, fit_images: list, painting: np.ndarray, bar,
                    stack: contextlib.ExitStack) -> None:
    """The run's palette map: read beside the weights, else fitted as the train stage fits
    it (on `plain`, the filter without a map) and written there, else (a folder not
    writable) beside a link to the weights in a temporary folder, so that the deployed
    model (convert.export.load_transformer) applies it."""
    run.scored_weights, run.palette = run.weights, None
    if not needs_map:
        return
    path = run.weights.with_name(PALETTE_FILE)
    existing = load_palette(run.weights)
    if existing is not None:
        recorded = existing.get("weights_sha256")  # None: a map written without it
        run.palette = {"source": "read", "path": str(path), "matches_weights": None if recorded is None else recorded == sha}
        if run.palette["matches_weights"] is False:
            tqdm.write(f"warning: {path} was fitted for other weights (weights_sha256 differs); strengths above 0 use it")
        return
    bar.set_postfix_str(f"{run.label} palette")

    def counted(images):
        for image in images:
            yield image
            bar.update()

    fitted = {**fit_palette(plain, counted(fit_images), painting), "weights_sha256": sha, "painting": run.painting}
    if os.access(run.weights.parent, os.W_OK):
        save_palette(path, fitted)
        run.palette = {"source": "fitted, written", "path": str(path), "matches_weights": True}
        return
    folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="score_runs."))) / run.label
    folder.mkdir()
    run.scored_weights = folder / run.weights.name
    run.scored_weights.symlink_to(run.weights.resolve())
    save_palette(folder / PALETTE_FILE, fitted)
    run.palette = {"source": "fitted, in memory (weights folder not writable)", "path": None, "matches_weights": True,
                   "matrix": fitted["matrix"], "offset": fitted["offset"]}


def chosen(group: list[str], runs: dict) -> str:
    """The label livestyle.model.choice.choose ships among `group` (its seeds: the group's order)."""
    figures = {i: runs[label]["heldout"] for i, label in enumerate(group)}
    return group[choose(figures)]


def report(record: dict) -> str:
    """scores.md: a row per run and strength, each photo's texture / colour / content."""
    photos = list(record["photos"])
    n = record["probes"]["count"]
    rows = []
    for label, run in record["runs"].items():
        for s in record["strengths"]:
            cells = [label, run["style"], key(s)]
            cells += [" / ".join(f"{run['photos'][p][key(s)][k]:.3f}" for k in METRICS) for p in photos]
            flat = max((run["photos"][p][key(s)][FLAT_METRIC] for p in photos), default=None)
            cells.append("-" if flat is None else f"{flat:.3f}")
            cells.append(f"{run['probes'][key(s)]['blotted']} / {n}")
            rows.append(cells)
    lines = ["# Filter scores", "",
             f"profile {record['profile']}" + "".join(f", --set {s}" for s in record["set"])
             + f"; photos: texture / colour / content (0 = best); flat area: the largest share of a photo in "
             + f"flat blobs; sky probes blotted of {n}"
             + (f"; photos shrunk to {record['max_side']} px" if record["max_side"] else ""), "",
             markdown.table(["run", "style", "palette strength", *photos, "flat area", "probes blotted"], rows,
                            "llr" + "r" * len(photos) + "rr")]
    if "heldout" in record:
        held = record["heldout"]
        lines += ["", f"## The train stage's judge: {len(held['photos'])} held-out photos, palette strength 0", "",
                  markdown.table(["run", "texture", "colour", "content", "probes blotted"],
                                 [[label, *(f"{run['heldout'][k]:.3f}" for k in METRICS),
                                   f"{run['probes']['0']['blotted']} / {n}"] for label, run in record["runs"].items()],
                                 "lrrrr")]
    if record["choices"]:
        lines += ["", "## Choice (livestyle.model.choice.choose)", ""]
        lines += [f"- {', '.join(c['group'])}: **{c['chosen']}**" for c in record["choices"]]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
