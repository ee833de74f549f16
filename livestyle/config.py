"""Typed configuration built from params.yaml: one dataclass per concern.

A style entry in `styles:` may override any key of `network:`, `loss:` and `train:`
for that style only; `style_config()` merges them.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from livestyle.errors import LivestyleError

PARAMS_FILE = "params.yaml"
# a trained style's weights, data/train/<style>/WEIGHTS: written by train, read by the later stages and tools
WEIGHTS = "transformer.weights.h5"


def load_params(path: str | Path = PARAMS_FILE, profile: str | None = None) -> dict[str, Any]:
    """params.yaml with its profile applied: `profiles.<profile>` (default: the file's own
    `profile:` key) merged over the top-level sections, so `profile: gpu` turns the CPU
    default into the production schedule for every stage at once."""
    path = Path(path)
    try:
        params = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise LivestyleError(path, "no such params file") from None
    except yaml.YAMLError as exc:
        raise LivestyleError(path, f"not valid YAML ({exc.__class__.__name__})") from None
    if not isinstance(params, dict):
        raise LivestyleError(path, "expected a mapping at the top level")
    check_styles(params)
    return apply_profile(params, profile if profile is not None else params.get("profile", "cpu"))


def apply_profile(params: dict[str, Any], profile: str) -> dict[str, Any]:
    profiles = params.get("profiles") or {}
    if profile != "cpu" and profile not in profiles:
        raise LivestyleError(PARAMS_FILE, f"profile {profile!r} is not under profiles: (have cpu, {', '.join(sorted(profiles))})")
    out = deep_merged(params, profiles.get(profile) or {})
    out["profile"] = profile
    return out


def with_overrides(params: dict, items: list[str]) -> dict:
    """params with each dotted `KEY=VALUE` set (e.g. `network.width=16`, the value read as
    YAML): the scripts' --set, so any key can be overridden without a flag of its own."""
    over: dict = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise LivestyleError("--set", f"{item!r}: expected KEY=VALUE, e.g. network.width=16")
        *parents, leaf = key.split(".")
        node = over
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = yaml.safe_load(value)
    return deep_merged(params, over)


def deep_merged(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = deep_merged(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


# style names become stage names (train@NAME), params keys (styles.NAME) and folders
# (data/train/NAME): no dots (a dotted params key), no slashes (a path out of data/)
STYLE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


def check_style_name(name: Any) -> None:
    if not isinstance(name, str) or not STYLE_NAME.match(name):
        raise LivestyleError(PARAMS_FILE, f"styles: {name!r} is not a valid style name; rename it using letters, "
                             "digits, '_' and '-', starting with a letter or digit")


def check_styles(params: dict[str, Any]) -> None:
    """Every key under `styles:` is a usable name, before any stage builds a path from one."""
    styles = params.get("styles")
    if styles is None:
        return
    if not isinstance(styles, dict):
        raise LivestyleError(PARAMS_FILE, f"styles: expected a mapping of style names to entries, got {styles!r}")
    for name in styles:
        check_style_name(name)


def bounded(default: Any, lo: float | None = None, hi: float | None = None) -> Any:
    """A config field whose params value must lie in [lo, hi] (checked by check_section)."""
    return field(default=default, metadata={"lo": lo, "hi": hi})


def one_of(default: Any, *choices: Any) -> Any:
    """A config field whose params value must be one of `choices` (checked by check_section)."""
    return field(default=default, metadata={"choices": choices})


def check_section(cls, section: Any, where: str) -> None:
    """The one check of a params section against a config dataclass: unknown keys, wrong
    types and values out of range each raise one line naming the key, e.g.
    `params.yaml: train.steps: expected a positive integer, got 'abc'`.
    Types come from the field annotations, ranges from `bounded` / `one_of`."""
    if not isinstance(section, Mapping):
        raise LivestyleError(PARAMS_FILE, f"{where}: expected a mapping of keys to values, got {_shown(section)}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(section) - set(fields))
    if unknown:
        raise LivestyleError(PARAMS_FILE, f"unknown key(s) in {where}: {', '.join(map(str, unknown))}")
    hints = _type_hints(cls)
    for key, value in section.items():
        meta = fields[key].metadata
        if not (_type_ok(value, hints.get(key)) and _range_ok(value, meta)):
            raise LivestyleError(PARAMS_FILE, f"{where}.{key}: expected {_describe(hints.get(key), meta)}, got {_shown(value)}"
                                 + _quoted_number_hint(value))


def check_fields(cfg, where: str) -> None:
    """check_section on a built config (one made in code, not read from params)."""
    check_section(type(cfg), {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)}, where)


def _type_hints(cls) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls)
    except Exception:  # an annotation that does not resolve: check keys and ranges only
        return {}


def _type_ok(value: Any, hint: Any) -> bool:
    if hint is None or hint is Any:
        return True
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, a) for a in args)
    if origin is typing.Literal:
        return value in args
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    base = origin or hint
    if base in (tuple, list):
        return isinstance(value, (tuple, list))
    if base in (dict, Mapping):
        return isinstance(value, Mapping)
    if dataclasses.is_dataclass(base):
        return isinstance(value, (base, Mapping))  # a nested section, built by its own from_params
    return isinstance(value, base) if isinstance(base, type) else True


def _quoted_number_hint(value: Any) -> str:
    """YAML reads '32' and 1e-3 (no dot) as strings: say so, it is the usual cause."""
    if not isinstance(value, str):
        return ""
    try:
        float(value)
    except ValueError:
        return ""
    return " (a string: write numbers without quotes, exponents with a dot: 1.0e-3)"


def _range_ok(value: Any, meta: Mapping) -> bool:
    if meta.get("choices") and value not in meta["choices"]:
        return False
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        lo, hi = meta.get("lo"), meta.get("hi")
        return (lo is None or value >= lo) and (hi is None or value <= hi)
    return True


def _describe(hint: Any, meta: Mapping) -> str:
    """What a field accepts, in words, for the error line."""
    if meta.get("choices"):
        return "one of " + ", ".join(map(str, meta["choices"]))
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Literal:
        return "one of " + ", ".join(map(str, args))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a, meta) for a in args)
    lo, hi = meta.get("lo"), meta.get("hi")
    if hint is int and lo == 1 and hi is None:
        return "a positive integer"
    noun = _noun(hint)
    if lo is not None and hi is not None:
        return f"{noun} from {lo} to {hi}"
    if lo is not None:
        return f"{noun} >= {lo}"
    if hi is not None:
        return f"{noun} <= {hi}"
    return noun


def _noun(hint: Any) -> str:
    nouns = {int: "an integer", float: "a number", bool: "true or false", str: "a string", type(None): "null",
             tuple: "a list", list: "a list", dict: "a mapping", Mapping: "a mapping"}
    base = typing.get_origin(hint) or hint
    if dataclasses.is_dataclass(base):
        return "a mapping"  # a nested section
    return nouns.get(base, f"a {getattr(base, '__name__', base)}")


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _build(cls, section: dict[str, Any] | None, where: str):
    """Dataclass from a params section, checked first (check_section): a typo or a wrong
    type is one clear line, not a traceback from deep inside a stage."""
    section = {} if section is None else section
    check_section(cls, section, where)
    section = dict(section)
    for f in dataclasses.fields(cls):
        if f.name in section and isinstance(section[f.name], list) and f.type.startswith("tuple"):
            section[f.name] = tuple(tuple(v) if isinstance(v, list) else v for v in section[f.name])
    return cls(**section)


@dataclass(frozen=True)
class NetworkConfig:
    """The transformer network (Johnson et al. 2016, pruned as in the reference article)."""

    res_blocks: int = bounded(3, 1, 5)
    width: int = bounded(32, 4)
    separable: bool = False  # depthwise-separable convs inside the residual blocks
    norm: str = one_of("batch", "batch", "instance")
    upsample: str = one_of("resize_conv", "resize_conv", "transpose")
    padding: str = one_of("reflect", "reflect", "zero")
    # binomial blur taps before each stride-2 conv and after each nearest upsample; 0 = off.
    # Without it a 1-3 px move of the scene repaints the strokes (they are tied to the
    # stride-4 grid) while a 4 px move does not. Alone it barely cut the flicker of real
    # video; with the temporal term it is the gpu_video profile (docs/ABLATIONS.md s. 13)
    antialias: int = one_of(0, 0, 3, 5)
    # Inference only (export, preview, quality; training sees 0..255): input pixels are
    # mapped to these levels first. Trained filters answer saturated highlights, rare in
    # their training crops, with flat white blobs; video levels keep skies painted.
    input_levels: tuple = (0, 255)
    # Inference only: at least this many px reflected past the frame's last row and column
    # (with the padding to a multiple of 4), cropped after. The network's stride-4 grid
    # serves the last 3 px worst and GPU-trained filters paint a red column there; 3 px
    # moves it out of the frame at 480 px wide for 4 more columns (docs/ABLATIONS.md s. 19).
    edge_margin: int = bounded(0, 0, 16)
    # Inference only: how much of the style's palette map (livestyle.model.palette, fitted
    # by its train stage) the model applies: 0 = none, 1 = the filter's colours moved onto
    # the painting's mean and covariance (docs/ABLATIONS.md section 19).
    palette_strength: float = bounded(0.0, 0.0, 1.0)

    def __post_init__(self):
        check_fields(self, "network")
        levels = tuple(self.input_levels)
        if len(levels) != 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in levels) \
                or not 0 <= levels[0] < levels[1] <= 255:
            raise LivestyleError(PARAMS_FILE, f"network.input_levels = {list(levels)!r}: expected [lo, hi] with "
                                 "0 <= lo < hi <= 255, e.g. [16, 235]")

    @classmethod
    def from_params(cls, d):
        return _build(cls, d, "network")


@dataclass(frozen=True)
class LossConfig:
    network: str = "hed_vgg16"  # imagenet_vgg16 | hed_vgg16 (offline) | vgg16 | vgg19 (downloaded)
    normalisation: str = "relative"  # relative (per layer) | johnson (plain MSE, peer's weights)
    content_weight: float = 1.0
    style_weight: float = 1.0
    tv_weight: float = 1.0
    # the painting's colour mean and covariance, matched over each batch's pixels
    # (livestyle.model.losses.colour_loss); 0 = off
    colour_weight: float = 0.0
    style_scale: float = 1.0  # style image is resized to image_size * style_scale
    content_layers: tuple = ("block2_conv2",)
    style_layers: tuple = ("block1_conv2", "block2_conv2", "block3_conv3", "block4_conv3")
    # one weight per style layer (empty: all 1); block1_conv1's Gram is mostly the colours
    style_layer_weights: tuple = ()
    # temporal stability (livestyle.model.temporal): each batch also runs a "next frame" of
    # itself, moved by up to temporal_shift px (sub-pixel) and with sensor noise of std
    # temporal_noise (0..255); the output must move with it. 0 = off. It starts at
    # temporal_from x train.steps: on from step 0 it washed the style out (docs/ABLATIONS.md)
    temporal_weight: float = 0.0
    temporal_shift: float = 3.0
    temporal_noise: float = 0.0
    temporal_from: float = 0.0
    # subpixel: moves resampled bilinearly, which also blurs the next frame, so the term
    # asks the filter to commute with a blur (soft strokes); whole: exact pixel moves;
    # lanczos: sub-pixel moves resampled with a sharp kernel (livestyle.model.temporal);
    # warp: each image its own translation plus a smooth local field of std temporal_warp px
    # (non-rigid motion: fur, faces), resampled bicubically
    temporal_moves: str = one_of("subpixel", "subpixel", "whole", "lanczos", "warp")
    temporal_warp: float = 0.0
    # none: the plain squared distance, which a paler output lowers; contrast / detail: each
    # image's distance over its output's variance / its detail's (the image less a blur),
    # blind to the output's contrast (section 18)
    temporal_normalise: str = one_of("none", "none", "contrast", "detail")
    # what else changes between real frames besides motion: the noise made spatially
    # correlated by a Gaussian of this std in px (demosaicing and codecs correlate
    # sensor noise; 0 = white), and each channel's gain drawn in 1 +- temporal_gain
    # (exposure and white balance drift; 0 = off)
    temporal_noise_blur: float = 0.0
    temporal_gain: float = 0.0

    def __post_init__(self):
        if self.normalisation not in ("relative", "johnson"):
            raise LivestyleError(PARAMS_FILE, f"loss.normalisation = {self.normalisation!r}: use relative or johnson")
        if min(self.temporal_weight, self.temporal_shift, self.temporal_noise, self.temporal_warp) < 0:
            raise LivestyleError(PARAMS_FILE, "loss.temporal_weight, temporal_shift, temporal_noise and temporal_warp must be >= 0")
        if self.colour_weight < 0:
            raise LivestyleError(PARAMS_FILE, f"loss.colour_weight = {self.colour_weight!r}: must be >= 0 (0 = off)")
        if self.style_layer_weights and len(self.style_layer_weights) != len(self.style_layers):
            raise LivestyleError(PARAMS_FILE, f"loss.style_layer_weights has {len(self.style_layer_weights)} values for "
                                 f"{len(self.style_layers)} style_layers: give one per layer, or [] for all 1")
        if any(float(w) < 0 for w in self.style_layer_weights):
            raise LivestyleError(PARAMS_FILE, "loss.style_layer_weights must be >= 0")
        if self.temporal_noise_blur < 0 or not 0 <= self.temporal_gain < 0.5:
            raise LivestyleError(PARAMS_FILE, "loss.temporal_noise_blur must be >= 0 and loss.temporal_gain in [0, 0.5)")
        if not 0 <= self.temporal_from < 1:
            raise LivestyleError(PARAMS_FILE, f"loss.temporal_from = {self.temporal_from!r}: a fraction of train.steps, 0 to below 1")

    @classmethod
    def from_params(cls, d):
        return _build(cls, d, "loss")


@dataclass(frozen=True)
class TrainConfig:
    steps: int = bounded(400, 1)
    batch_size: int = bounded(4, 1)
    image_size: int = bounded(256, 16)  # the network downsamples by 4
    learning_rate: float = bounded(1e-3, 0)
    lr_schedule: str = one_of("cosine", "constant", "cosine")
    warmup_steps: int = bounded(0, 0)
    seed: int = bounded(0, 0)  # numpy seeds are non-negative
    checkpoint_every: int = bounded(100, 1)
    sample_every: int = bounded(200, 1)
    mixed_precision: bool = False
    # auto: jax on the JAX backend with a GPU/TPU, else keras
    loop: str = one_of("auto", "auto", "keras", "jax")
    steps_per_call: int = bounded(50, 1)  # jax loop: steps per compiled call (cut at checkpoints and samples)
    init_weights: str = ""  # transformer weights to start from (data/base: the CPU default's base network)
    # update: batch norm normalises by each batch and learns moving statistics (training
    # from scratch); frozen: it uses the starting network's moving statistics, as export
    # does (a fine-tune on small batches otherwise replaces them with noisy ones)
    norm_stats: str = one_of("update", "update", "frozen")
    # livestyle.model.augment: this share of crops brightened by a gain in [1, highlight_gain]
    # and clipped, so blown-out skies are seen in training (0 = off)
    highlight_prob: float = bounded(0.0, 0.0, 1.0)
    highlight_gain: float = bounded(1.6, 1.0, 4.0)
    # one TensorFlow thread, a fixed str hash seed, one BLAS thread and one CPU, so a rerun or a
    # resumed run gives the same weights (byte for byte on an idle machine; under load the
    # last bits may still differ: livestyle.model.determinism); false uses every core
    deterministic: bool = True
    # after training: training photos the style's palette map is fitted on
    # (livestyle.model.palette; applied at network.palette_strength)
    palette_photos: int = bounded(40, 1)
    # runs trained per style (seeds seed, seed+1, ...); the one shipped is chosen by the
    # independent quality judge on choice_photos prepared held-out photos
    # (livestyle.model.choice). 1: one run, nothing to choose
    candidates: int = bounded(1, 1)
    choice_photos: int = bounded(8, 1)
    # synthetic skies (livestyle.measure.sky_probes) each candidate also paints: runs that
    # paint flat blobs on fewer of them are preferred before the figures are ranked; 0 = off
    choice_probes: int = bounded(12, 0)

    def __post_init__(self):
        check_fields(self, "train")

    @classmethod
    def from_params(cls, d):
        return _build(cls, d, "train")


@dataclass(frozen=True)
class StyleConfig:
    name: str
    image: str
    credit: str = ""
    license: str = ""
    network: NetworkConfig = field(default_factory=NetworkConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


def _merged(base: dict | None, override: dict | None) -> dict:
    out = copy.deepcopy(base or {})
    out.update(override or {})
    return out


def _style_section(cls, params: dict[str, Any], entry: dict, key: str, name: str):
    """A style's network/loss/train: the top-level section with the style's overrides,
    each checked where it is written (so an error names styles.NAME.train.steps, not train.steps)."""
    base, override = params.get(key), entry.pop(key, None)
    check_section(cls, base or {}, key)
    if override is not None:
        check_section(cls, override, f"styles.{name}.{key}")
    return cls.from_params(_merged(base, override))


def style_config(params: dict[str, Any], name: str) -> StyleConfig:
    check_styles(params)
    styles = params.get("styles") or {}
    check_style_name(name)
    if name not in styles:
        raise LivestyleError(PARAMS_FILE, f"no style {name!r} under styles: (have {', '.join(sorted(styles))})")
    entry = styles[name] or {}
    if not isinstance(entry, Mapping):
        raise LivestyleError(PARAMS_FILE, f"styles.{name}: expected a mapping with image, credit, license, got {entry!r}")
    entry = dict(entry)
    if "image" not in entry:
        raise LivestyleError(PARAMS_FILE, f"styles.{name} has no image")
    for key in ("image", "credit", "license"):
        if not isinstance(entry.get(key, ""), str):
            raise LivestyleError(PARAMS_FILE, f"styles.{name}.{key}: expected a string, got {entry[key]!r}")
    cfg = StyleConfig(
        name=name,
        image=entry.pop("image"),
        credit=entry.pop("credit", ""),
        license=entry.pop("license", ""),
        network=_style_section(NetworkConfig, params, entry, "network", name),
        loss=_style_section(LossConfig, params, entry, "loss", name),
        train=_style_section(TrainConfig, params, entry, "train", name),
    )
    if entry:
        raise LivestyleError(PARAMS_FILE, f"unknown key(s) in styles.{name}: {', '.join(sorted(entry))}")
    return cfg


def tracked_input(path: str | os.PathLike, root: str | os.PathLike, key: str) -> Path:
    """A user's input named in params.yaml, checked to lie under `root`: a folder its
    stage lists as a DVC dependency, so a replaced file reruns the stage. A symlink
    placed under root counts (the path is not resolved), for data kept elsewhere."""
    p, r = Path(os.path.abspath(path)), Path(os.path.abspath(root))
    if r not in p.parents:
        raise LivestyleError(PARAMS_FILE, f"{key}: {path} is not under {root}/: move or link it there, "
                             "so DVC reruns the stage when it changes")
    return Path(path)
