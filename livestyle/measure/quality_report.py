"""The quality stage's work for one style: stylize photos, score them, write the
metrics JSON and a comparison sheet (painting | photo | ours | reference).

Photos: the prepare stage's held-out photos (never trained on), up to `photos_max`,
plus `extra_photos` and the photos of this style's `references` (a reference is
another filter's output of a photo, e.g. a peer's published image, scored beside
ours). Every photo is stylized at its own size, capped at `max_side`, as a user's
photo would be.

DVC cannot list a params list as deps (dvc.yaml interpolates strings only), so every
optional file must lie under `inputs_dir`, a folder the stage depends on: a changed
reference image then reruns the stage like any other input.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
from tqdm import tqdm

from livestyle.atomic import write_json
from livestyle.config import _build, tracked_input
from livestyle.errors import LivestyleError
from livestyle.images import labelled_sheet, load_rgb, resize
from livestyle.measure.quality import FLAT_METRIC, METRICS, TEXTURE_MIN_SIDE, TEXTURE_SCALE, fmt_figure, mean_scores, score
from livestyle.measure.sky_probes import sky_blob_figures

Stylize = Callable[[np.ndarray], np.ndarray]  # (1, H, W, 3) 0..255 -> same
SKY_PROBES = "sky_probes"  # quality.json: synthetic skies stylized, blotted, mean flat share


@dataclass(frozen=True)
class QualityConfig:
    """params.yaml `quality:` section."""

    photos_max: int = 4  # held-out photos scored per style
    max_side: int = 712  # a photo's long side is capped here (chicago.jpg's 712x474 fits)
    seed: int = 0  # random texture filters and colour projections
    lossnet: bool = True  # also report the training loss network's figures (slower)
    inputs_dir: str = "data/quality_inputs"  # every extra photo and reference lies here
    extra_photos: tuple = ()
    references: Mapping[str, Any] = field(default_factory=dict)  # style -> [{photo, image}]
    sky_probes: int = 12  # synthetic skies (livestyle.measure.sky_probes) checked for blobs; 0 = off

    def __post_init__(self):
        if self.photos_max < 0 or self.max_side < TEXTURE_MIN_SIDE or self.sky_probes < 0:
            raise LivestyleError("params.yaml", f"quality: photos_max and sky_probes must be >= 0 and max_side >= {TEXTURE_MIN_SIDE}")

    @classmethod
    def from_params(cls, d):
        d = dict(d or {})
        d["extra_photos"] = tuple(str(p) for p in d.get("extra_photos") or ())
        d["references"] = dict(d.get("references") or {})
        return _build(cls, d, "quality")

    def _input(self, path, key: str) -> Path:
        """An optional input file, checked: under inputs_dir (so DVC tracks it) and present."""
        p = tracked_input(str(path), self.inputs_dir, key)
        if not p.is_file():
            raise LivestyleError("params.yaml", f"{key}: {p} does not exist")
        return p

    def photos(self, style: str, heldout: list[Path]) -> list[tuple[Path, Path | None]]:
        """(photo, reference image or None) pairs, in order: held-out, extra, references.
        A photo named twice is scored once (with its reference, if it has one)."""
        refs = self.references.get(style) or []
        if not isinstance(refs, list):
            raise LivestyleError("params.yaml", f"quality.references.{style} must be a list of {{photo, image}}")
        pairs: dict[Path, Path | None] = {p: None for p in heldout[: self.photos_max]}
        for i, p in enumerate(self.extra_photos):
            pairs.setdefault(self._input(p, f"quality.extra_photos[{i}]"), None)
        for i, ref in enumerate(refs):
            key = f"quality.references.{style}[{i}]"
            if not isinstance(ref, Mapping) or set(ref) != {"photo", "image"}:
                raise LivestyleError("params.yaml", f"{key} must be {{photo: PATH, image: PATH}}")
            pairs[self._input(ref["photo"], f"{key}.photo")] = self._input(ref["image"], f"{key}.image")
        if not pairs:
            raise LivestyleError("params.yaml", "quality: no photo to score (photos_max is 0 and no extra_photos or references)")
        return list(pairs.items())


def cap_side(rgb: np.ndarray, max_side: int) -> np.ndarray:
    """The photo with its long side at most max_side (aspect ratio kept)."""
    h, w = rgb.shape[:2]
    if max(h, w) <= max_side:
        return rgb
    scale = max_side / max(h, w)
    return resize(rgb, max(1, round(h * scale)), max(1, round(w * scale)))


def photo_names(paths: list[Path]) -> list[str]:
    """Short unique keys for the metrics JSON: the file name, or the path if two share it."""
    names = [p.name for p in paths]
    return [p.name if names.count(p.name) == 1 else p.as_posix() for p in paths]


def caption(title: str, figures: Mapping[str, Any] | None) -> str:
    if not figures:
        return title
    return f"{title}\ntexture {fmt_figure(figures['texture'])}  colour {fmt_figure(figures['colour'])}\ncontent {fmt_figure(figures['content'])}"


def evaluate_style(
    style: str,
    stylize: Stylize,
    painting_path: str | Path,
    photos: list[tuple[Path, Path | None]],
    cfg: QualityConfig,
    out_dir: str | Path,
    loss_cfg=None,
    flicker_ratio: float | None = None,
) -> dict[str, Any]:
    """Score every photo, write out_dir/quality.json and out_dir/sheet.png, return the JSON.

    loss_cfg: the style's LossConfig for the lossnet figures (None: left out).
    """
    out_dir = Path(out_dir)
    painting = load_rgb(painting_path)
    per_photo: dict[str, Any] = {}
    rows = []
    for name, (photo_path, ref_path) in tqdm(list(zip(photo_names([p for p, _ in photos]), photos)), desc=f"quality {style}", unit="photo"):
        photo = cap_side(load_rgb(photo_path), cfg.max_side)
        if min(photo.shape[:2]) < TEXTURE_MIN_SIDE:
            raise LivestyleError(photo_path, f"photo is under {TEXTURE_MIN_SIDE} px on its short side")
        ours = np.clip(np.asarray(stylize(photo[None]))[0], 0, 255)
        reference = {"reference": load_rgb(ref_path)} if ref_path is not None else {}
        figures = score(ours, photo, painting, loss_cfg=loss_cfg, seed=cfg.seed, references=reference)
        per_photo[name] = figures
        rows.append([
            (f"painting\n{style}", painting),
            (caption(f"photo {name}", figures["photo"]), photo),
            (caption("ours", figures), ours),
            (caption(f"reference {ref_path.name}", figures["reference"]), reference["reference"]) if ref_path else None,
        ])
    result: dict[str, Any] = {
        "style": style,
        "photos": len(per_photo),
        "mean": mean_scores(list(per_photo.values())),
        "per_photo": per_photo,
        "settings": {"max_side": cfg.max_side, "seed": cfg.seed, "texture_scale": TEXTURE_SCALE,
                     "lossnet": getattr(loss_cfg, "network", None)},
    }
    if flicker_ratio is not None:
        result["flicker_ratio"] = float(flicker_ratio)
    if cfg.sky_probes:  # blobs over smooth clouds, which held-out photos rarely hold
        result[SKY_PROBES] = sky_blob_figures(stylize, cfg.sky_probes)
    if not any(row[-1] for row in rows):
        rows = [row[:-1] for row in rows]  # no reference column
    labelled_sheet(rows, out_dir / "sheet.png", thumb_height=240, font_size=11)
    write_json(out_dir / "quality.json", result)
    return result


def summary_line(result: Mapping[str, Any]) -> str:
    mean = result["mean"]
    parts = [f"{k} {fmt_figure(mean[k])} (photo {fmt_figure(mean['photo'][k])})" for k in METRICS]
    if FLAT_METRIC in mean:  # blobs: the distances above hardly see them
        parts.append(f"flat area {100 * mean[FLAT_METRIC]:.1f}% (photo {100 * mean['photo'][FLAT_METRIC]:.1f}%)")
    if SKY_PROBES in result:
        parts.append(f"synthetic skies blotted {result[SKY_PROBES]['blotted']}/{result[SKY_PROBES]['count']}")
    return f"{result['style']}: {result['photos']} photo(s), " + ", ".join(parts)
