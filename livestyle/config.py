"""Typed configuration built from params.yaml: one dataclass per concern.

A style entry in `styles:` may override any key of `network:`, `loss:` and `train:`
for that style only; `style_config()` merges them.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from livestyle.errors import LivestyleError

PARAMS_FILE = "params.yaml"


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
    return apply_profile(params, profile if profile is not None else params.get("profile", "cpu"))


def apply_profile(params: dict[str, Any], profile: str) -> dict[str, Any]:
    profiles = params.get("profiles") or {}
    if profile != "cpu" and profile not in profiles:
        raise LivestyleError(PARAMS_FILE, f"profile {profile!r} is not under profiles: (have cpu, {', '.join(sorted(profiles))})")
    out = deep_merged(params, profiles.get(profile) or {})
    out["profile"] = profile
    return out


def deep_merged(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = deep_merged(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def _build(cls, section: dict[str, Any] | None, where: str):
    """Dataclass from a params section; unknown keys are an error, not silently ignored."""
    section = dict(section or {})
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(section) - names)
    if unknown:
        raise LivestyleError(PARAMS_FILE, f"unknown key(s) in {where}: {', '.join(unknown)}")
    for f in dataclasses.fields(cls):
        if f.name in section and isinstance(section[f.name], list) and f.type.startswith("tuple"):
            section[f.name] = tuple(tuple(v) if isinstance(v, list) else v for v in section[f.name])
    return cls(**section)


@dataclass(frozen=True)
class NetworkConfig:
    """The transformer network (Johnson et al. 2016, pruned as in the reference article)."""

    res_blocks: int = 3
    width: int = 32
    separable: bool = False  # depthwise-separable convs inside the residual blocks
    norm: str = "batch"  # batch | instance
    upsample: str = "resize_conv"  # resize_conv | transpose
    padding: str = "reflect"  # reflect | zero

    def __post_init__(self):
        checks = {
            "res_blocks": 1 <= self.res_blocks <= 5,
            "width": self.width >= 4,
            "norm": self.norm in ("batch", "instance"),
            "upsample": self.upsample in ("resize_conv", "transpose"),
            "padding": self.padding in ("reflect", "zero"),
        }
        for key, ok in checks.items():
            if not ok:
                raise LivestyleError(PARAMS_FILE, f"network.{key} = {getattr(self, key)!r} is not allowed")

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
    style_scale: float = 1.0  # style image is resized to image_size * style_scale
    content_layers: tuple = ("block2_conv2",)
    style_layers: tuple = ("block1_conv2", "block2_conv2", "block3_conv3", "block4_conv3")

    def __post_init__(self):
        if self.normalisation not in ("relative", "johnson"):
            raise LivestyleError(PARAMS_FILE, f"loss.normalisation = {self.normalisation!r}: use relative or johnson")

    @classmethod
    def from_params(cls, d):
        return _build(cls, d, "loss")


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 400
    batch_size: int = 4
    image_size: int = 256
    learning_rate: float = 1e-3
    lr_schedule: str = "cosine"  # constant | cosine
    warmup_steps: int = 0
    seed: int = 0
    checkpoint_every: int = 100
    sample_every: int = 200
    mixed_precision: bool = False
    loop: str = "auto"  # auto (jax on the JAX backend with a GPU/TPU, else keras) | keras | jax
    steps_per_call: int = 50  # jax loop: steps per compiled call (cut at checkpoints and samples)
    init_weights: str = ""  # transformer weights to start from (data/base: the CPU default's base network)

    def __post_init__(self):
        if self.loop not in ("auto", "keras", "jax"):
            raise LivestyleError(PARAMS_FILE, f"train.loop = {self.loop!r}: use auto, keras or jax")
        if self.steps_per_call < 1:
            raise LivestyleError(PARAMS_FILE, f"train.steps_per_call = {self.steps_per_call!r}: must be at least 1")

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


def style_config(params: dict[str, Any], name: str) -> StyleConfig:
    styles = params.get("styles") or {}
    if name not in styles:
        raise LivestyleError(PARAMS_FILE, f"no style {name!r} under styles: (have {', '.join(sorted(styles))})")
    entry = dict(styles[name] or {})
    if "image" not in entry:
        raise LivestyleError(PARAMS_FILE, f"styles.{name} has no image")
    cfg = StyleConfig(
        name=name,
        image=entry.pop("image"),
        credit=entry.pop("credit", ""),
        license=entry.pop("license", ""),
        network=NetworkConfig.from_params(_merged(params.get("network"), entry.pop("network", None))),
        loss=LossConfig.from_params(_merged(params.get("loss"), entry.pop("loss", None))),
        train=TrainConfig.from_params(_merged(params.get("train"), entry.pop("train", None))),
    )
    if entry:
        raise LivestyleError(PARAMS_FILE, f"unknown key(s) in styles.{name}: {', '.join(sorted(entry))}")
    return cfg
