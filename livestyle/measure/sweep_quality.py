"""The sweep's quality side: trained architectures scored against a peer's output, and
the quality-vs-latency and quality-vs-size fronts.

Speed does not depend on the weights, quality does. The sweep times seeded variants;
quality comes from the architectures trained with one schedule (data/sweep_trained,
its README says how), each stylizing the same photos, scored by livestyle.measure.quality's
measures that training does not optimise, beside a peer's published output of the
first photo.

The rule (stated again in sweep.md): each of texture, colour and content distance is
divided by the peer's on the peer's photo; an architecture's `vs_peer` is the worst of
the three ratios (1.0 = the peer's figures, lower = better), and it is *at peer
quality* when vs_peer <= 1 + tolerance. A front is the Pareto set over (cost, vs_peer),
so the smallest (or fastest) member at peer quality is the answer to "how small can
the network get before it looks worse than the peer".

Weights are stored as fp16 .npz (one array per variable, keyed by its Keras path): a
tenth of the fp32 .weights.h5 files, small enough for git; packing checks the fp16
copy's output against the fp32 original (PSNR, recorded in the manifest).
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from livestyle.atomic import write_bytes, write_json
from livestyle.config import NetworkConfig, _build, bounded
from livestyle.errors import LivestyleError
from livestyle.images import load_rgb
from livestyle.measure.quality import FLAT_METRIC, METRICS, TEXTURE_MIN_SIDE, score
from livestyle.measure.quality_report import cap_side
from livestyle.provenance import file_sha256

# the figures kept per architecture: the three distances and the blob figure
FIGURES = (*METRICS, FLAT_METRIC)

MANIFEST = "trained.json"
INPUTS_README = "data/quality_inputs/README.md"


# ---------------------------------------------------------------- fp16 weights


def save_fp16(model, path: str | Path) -> str:
    """Every variable of `model` as fp16 in a compressed .npz keyed by its path; the file's sha256."""
    arrays = {v.path: np.asarray(v.numpy(), np.float16) for v in model.weights}
    bad = [k for k, a in arrays.items() if not np.isfinite(a).all()]
    if bad:
        raise ValueError(f"{path}: fp16 overflows in {', '.join(bad)}")
    buf = io.BytesIO()
    # np.savez_compressed stamps each member with the time: fixed stamps, so a repack is byte-identical
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for key, a in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, a, allow_pickle=False)
            zf.writestr(zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0)), member.getvalue(),
                        compress_type=zipfile.ZIP_DEFLATED)
    write_bytes(path, buf.getvalue())
    return file_sha256(path)


def load_fp16(model, path: str | Path):
    """Assign the arrays of save_fp16's file to `model`'s variables (every one, by path)."""
    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files}
    wanted = {v.path for v in model.weights}
    if set(arrays) != wanted:
        extra, missing = sorted(set(arrays) - wanted), sorted(wanted - set(arrays))
        raise LivestyleError(path, f"weights do not match the network (missing {missing[:3]}, extra {extra[:3]})")
    for v in model.weights:
        if tuple(arrays[v.path].shape) != tuple(v.shape):
            raise LivestyleError(path, f"{v.path}: shape {arrays[v.path].shape}, the network has {tuple(v.shape)}")
        v.assign(arrays[v.path].astype(np.float32))
    return model


# ---------------------------------------------------------------- trained manifest


@dataclass(frozen=True)
class TrainedArch:
    name: str
    net: NetworkConfig
    path: Path
    sha256: str
    input_levels: tuple | None = None  # as trained.json records; None: sweep.quality.input_levels


def trained_architectures(folder: str | Path | None) -> list[TrainedArch]:
    """The architectures of `folder`/trained.json, in manifest order; none for ""."""
    if not folder:
        return []
    manifest = Path(folder) / MANIFEST
    try:
        entries = json.loads(manifest.read_text())["architectures"]
    except FileNotFoundError:
        raise LivestyleError(manifest, "no such manifest (sweep.trained names a folder without trained.json)") from None
    except (ValueError, KeyError) as exc:
        raise LivestyleError(manifest, f"not a trained-architecture manifest ({exc.__class__.__name__})") from None
    return [TrainedArch(name, NetworkConfig(res_blocks=e["res_blocks"], width=e["width"], separable=e["separable"]),
                        Path(folder) / e["file"], e["sha256"],
                        tuple(e["input_levels"]) if e.get("input_levels") else None) for name, e in entries.items()]


def load_trained(arch: TrainedArch, height: int, width: int, input_levels: tuple = (0, 255)):
    """The trained network built at height x width, after checking the file's sha256,
    with the inference input levels the manifest records for it (a filter trained on
    overexposed crops ships with 0..255), else `input_levels` (NetworkConfig.input_levels)."""
    from livestyle.model.network import build_transformer

    if not arch.path.is_file():
        raise LivestyleError(arch.path, "trained weights missing (listed in the manifest)")
    if file_sha256(arch.path) != arch.sha256:
        raise LivestyleError(arch.path, "sha256 differs from the manifest: the weights changed after packing")
    levels = arch.input_levels or input_levels
    return load_fp16(build_transformer(arch.net, height, width, input_levels=levels), arch.path)


def _recipe_runs(recipe: Path) -> dict[str, dict]:
    """{run name: {net, steps}} of an ablation spec's architecture runs (names a_*)."""
    import yaml

    spec = yaml.safe_load(Path(recipe).read_text())
    common = spec.get("set") or {}
    out = {}
    for name, run in spec["runs"].items():
        if not name.startswith("a_"):
            continue
        s = {**common, **(run.get("set") or {})}
        net = {k.split(".", 1)[1]: v for k, v in s.items() if k.startswith("network.")}
        out[name] = {"net": NetworkConfig(**net), "steps": s.get("train.steps"), "style": run["style"], "recipe": str(recipe)}
    return out


def pack_trained(src: str | Path, out: str | Path, recipes: Sequence[str | Path], photo: str | Path,
                 train: Mapping[str, Any], max_side: int = 712, input_levels: Sequence[int] | None = None) -> dict:
    """fp16 copies of scripts/gpu_ablate.py's architecture runs (src/NAME.weights.h5 and
    src/NAME.train.json) into `out`, with trained.json. A run named in several recipes
    comes from the last. `train`: the training section the runs used (profiles.gpu);
    `input_levels`: the inference levels they ship with (the profile's network.input_levels),
    recorded so the sweep scores them as deployed."""
    from livestyle.convert.export import load_transformer
    from livestyle.convert.verify import psnr

    runs: dict[str, dict] = {}
    for r in recipes:
        runs.update(_recipe_runs(Path(r)))
    image = cap_side(load_rgb(photo), max_side)[None].astype(np.float32)
    entries = {}
    for name, run in runs.items():
        log = json.loads((Path(src) / f"{name}.train.json").read_text())
        net = replace(run["net"], input_levels=tuple(input_levels)) if input_levels else run["net"]
        original = load_transformer(Path(src) / f"{name}.weights.h5", net, *image.shape[1:3])
        sha = save_fp16(original, Path(out) / f"{name}.npz")
        copy = load_trained(TrainedArch(name, run["net"], Path(out) / f"{name}.npz", sha, net.input_levels), *image.shape[1:3])
        db = psnr(np.asarray(original(image, training=False)), np.asarray(copy(image, training=False)))
        entries[name] = {
            "file": f"{name}.npz", "res_blocks": run["net"].res_blocks, "width": run["net"].width,
            "separable": run["net"].separable, "style": run["style"], "steps": log["steps"],
            "batch": train["batch_size"], "image_size": train["image_size"], "recipe": run["recipe"],
            "params": log["params"], "sha256": sha, "final_losses": log["final"], "heldout_losses": log.get("heldout"),
            "fp16_psnr_db_vs_fp32": round(db, 2), "psnr_photo": Path(photo).name,
        }
        if input_levels:
            entries[name]["input_levels"] = list(input_levels)
    manifest = {"architectures": entries}
    write_json(Path(out) / MANIFEST, manifest)
    return manifest


# ---------------------------------------------------------------- quality


@dataclass(frozen=True)
class SweepQualityConfig:
    """params.yaml `sweep.quality`: the inputs, and the peer rule's tolerance."""

    painting: str = "data/quality_inputs/udnie.jpg"
    photos: tuple = ("data/quality_inputs/chicago.jpg",)
    reference: str = "data/quality_inputs/lengstrom_chicago_udnie.jpg"  # the peer's output of photos[0]; "" none
    max_side: int = bounded(712, TEXTURE_MIN_SIDE)  # a photo's long side, as the quality stage
    seed: int = 0
    tolerance: float = bounded(0.10, 0.0)  # at peer quality: every distance <= peer's x (1 + tolerance)
    flat_tolerance: float = bounded(0.01, 0.0)  # and flat patches (blobs) <= the peer's share + this
    fps: tuple = (15, 30)  # frame rates a recommendation is made for
    input_levels: tuple = (0, 255)  # the stage passes network.input_levels: scored as deployed

    @classmethod
    def from_params(cls, d):
        return _build(cls, dict(d or {}), "sweep.quality")

    def missing(self) -> list[str]:
        """Inputs that are not there (the reference counts: without it nothing is judged)."""
        paths = [self.painting, *self.photos] + ([self.reference] if self.reference else [])
        return [p for p in paths if not Path(p).is_file()]


def measure(archs: Sequence[TrainedArch], cfg: SweepQualityConfig) -> dict[str, Any]:
    """Texture, colour and content distances of every trained architecture (mean over the
    photos), the peer's and the unstylized photo's on photos[0], and each
    architecture's figures on photos[0] (what the peer is compared with).

    {"architectures": {name: {texture, colour, content, "first_photo": {...}}},
     "peer": {...} | None, "photo": {...}, "photos": [...], "painting": ..., "reference": ...}
    """
    from tqdm import tqdm

    painting = load_rgb(cfg.painting)
    per_arch: dict[str, list[dict]] = {a.name: [] for a in archs}
    peer = first_photo = None
    for i, path in enumerate(cfg.photos):
        photo = cap_side(load_rgb(path, min_side=TEXTURE_MIN_SIDE), cfg.max_side)
        images = {}
        for a in tqdm(archs, desc=f"sweep quality {Path(path).name}", unit="arch"):
            model = load_trained(a, *photo.shape[:2], cfg.input_levels)
            images[a.name] = np.clip(np.asarray(model(photo[None].astype(np.float32), training=False))[0], 0, 255)
        if i == 0 and cfg.reference:
            images["peer"] = load_rgb(cfg.reference)
        first, *rest = images
        s = score(images[first], photo, painting, seed=cfg.seed, references={k: images[k] for k in rest})
        figures = {first: {k: s[k] for k in FIGURES}, **{k: s[k] for k in rest}}
        for a in archs:
            per_arch[a.name].append(figures[a.name])
        if i == 0:
            peer, first_photo = figures.get("peer"), s["photo"]
    out = {}
    for name, values in per_arch.items():
        out[name] = {k: float(np.mean([v[k] for v in values])) for k in FIGURES}
        out[name]["first_photo"] = values[0]
    return {"architectures": out, "peer": peer, "photo": first_photo, "photos": [str(p) for p in cfg.photos],
            "painting": cfg.painting, "reference": cfg.reference or None, "tolerance": cfg.tolerance,
            "flat_tolerance": cfg.flat_tolerance}


def vs_peer(figures: Mapping[str, float], peer: Mapping[str, float], flat_tolerance: float) -> dict[str, Any]:
    """Each distance over the peer's, `score`: the worst of them (1.0 = the peer), and
    `blob`: flat patches cover more than the peer's share + flat_tolerance of the frame.
    The distances hardly see a blob (a flat white sky scored better than the peer), so
    a blob rules a network out of peer quality whatever its score."""
    ratios = {k: figures[k] / peer[k] if peer[k] > 0 else (1.0 if figures[k] <= 0 else float("inf")) for k in METRICS}
    blob = figures.get(FLAT_METRIC, 0.0) > peer.get(FLAT_METRIC, 0.0) + flat_tolerance
    return {**{k: round(v, 4) for k, v in ratios.items()}, "score": round(max(ratios.values()), 4), "blob": bool(blob)}


def at_peer_quality(vp: Mapping[str, Any] | None, tolerance: float) -> bool:
    """No distance more than `tolerance` worse than the peer's, and no blob."""
    return bool(vp) and vp["score"] <= 1.0 + tolerance and not vp.get("blob", False)


# ---------------------------------------------------------------- fronts


def pareto(points: Sequence[tuple[float, float, str]]) -> list[str]:
    """Names of the points no other point beats on both cost and score (lower is better
    for both), in order of cost; of exact ties the first listed is kept."""
    members, best = [], float("inf")
    for cost, s, name in sorted(points, key=lambda p: (p[0], p[1])):
        if s < best:
            members.append(name)
            best = s
    return members


def latency_keys(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    return [k for k in (rows[0] if rows else {}) if k.endswith("_latency_ms_estimate")]


def fronts(rows: Sequence[Mapping[str, Any]], tolerance: float, fps: Sequence[float]) -> dict[str, Any]:
    """Fronts over the rows that carry `quality` with a `vs_peer` score.

    {"fronts": {"<profile>_latency": {...}, "size": {...}}, "recommended": {profile: {"<fps>": {...}}}}
    Each front: cost key, members (arch, in order of cost), smallest_at_peer_quality
    (the cheapest member with score <= 1 + tolerance, or None) and a note when None.
    A recommendation: the best-scoring architecture at peer quality whose latency
    estimate meets 1000/fps ms (ties: the faster), or None with why.
    """
    limit = 1.0 + tolerance
    scored = [r for r in rows if (r.get("quality") or {}).get("vs_peer")]
    at_peer = [r for r in scored if at_peer_quality(r["quality"]["vs_peer"], tolerance)]
    best = min(scored, key=lambda r: r["quality"]["vs_peer"]["score"], default=None)
    none_why = (f"no architecture is at peer quality (vs peer <= {limit:.2f}); the closest is {best['arch']} at "
                f"{best['quality']['vs_peer']['score']:.2f}x the peer" if best else "no architecture has a quality score")
    out: dict[str, Any] = {"fronts": {}, "recommended": {}}
    costs = {k[: -len("_ms_estimate")]: k for k in latency_keys(rows)}
    costs["size"] = "weight_bytes"
    for front, key in costs.items():
        members = pareto([(r[key], r["quality"]["vs_peer"]["score"], r["arch"]) for r in scored])
        ok = [r for r in at_peer if r["arch"] in members]
        smallest = min(ok, key=lambda r: r[key])["arch"] if ok else None
        out["fronts"][front] = {"cost": key, "members": members, "smallest_at_peer_quality": smallest,
                                "note": None if smallest else none_why}
    for key in latency_keys(rows):
        profile = key[: -len("_latency_ms_estimate")]
        out["recommended"][profile] = {}
        for f in fps:
            budget = 1e3 / f
            fits = [r for r in at_peer if r[key] <= budget]
            pick = min(fits, key=lambda r: (r["quality"]["vs_peer"]["score"], r[key]), default=None)
            entry: dict[str, Any] = {"fps": f, "budget_ms": round(budget, 2), "arch": None, "why": None}
            if pick:
                entry.update(_pick(pick, key))
                out["recommended"][profile][f"{f:g}"] = entry
                continue
            # what a user gets within the budget all the same: the best-scoring architecture that meets it
            near = min((r for r in scored if r[key] <= budget), key=lambda r: (r["quality"]["vs_peer"]["score"], r[key]), default=None)
            entry["closest_in_budget"] = _pick(near, key) if near else None
            if not at_peer:
                entry["why"] = f"no architecture is at peer quality (vs peer <= {limit:.2f})"
            else:
                fastest = min(at_peer, key=lambda r: r[key])
                entry["why"] = (f"no architecture at peer quality meets {budget:.1f} ms (estimate); the fastest at peer "
                                f"quality, {fastest['arch']}, is {fastest[key]:.1f} ms")
            out["recommended"][profile][f"{f:g}"] = entry
    return out


def _pick(row: Mapping[str, Any], key: str) -> dict[str, Any]:
    return {"arch": row["arch"], "trained": row.get("trained"), "latency_ms_estimate": row[key],
            "vs_peer": row["quality"]["vs_peer"]["score"]}
