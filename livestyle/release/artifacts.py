"""Where one style's stage outputs live: what the release bundle packs and the model
card reads (one definition, imported by both)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from livestyle.config import WEIGHTS
from livestyle.errors import LivestyleError
from livestyle.provenance import RECORD


@dataclass(frozen=True)
class StyleArtifacts:
    """Where one style's stage outputs live, plus what the model card needs from params.

    Model files are required; the JSONs and the preview folder are optional (a missing
    one is rendered as "not recorded" in the model card).
    `config` is the style's params (e.g. `dataclasses.asdict(style_config(params, S))`:
    network, loss, train, image, credit, license); `data` describes the training data
    (e.g. prepare's summary JSON).
    """

    name: str
    export_dir: Path
    train_json: Path | None = None
    verify_json: Path | None = None
    bench_json: Path | None = None
    preview_dir: Path | None = None
    quality_dir: Path | None = None
    config: Mapping[str, Any] = field(default_factory=dict)
    data: Mapping[str, Any] = field(default_factory=dict)
    # the trained weights: when set, the models must have been exported from them
    weights: Path | None = None

    @classmethod
    def from_data_root(cls, name: str, data_root: str | os.PathLike = "data", config=None, data=None) -> "StyleArtifacts":
        """The DVC layout: data/{export,train,verify,bench,preview,quality}/S/."""
        root = Path(data_root)
        return cls(
            name=name,
            export_dir=root / "export" / name,
            train_json=root / "train" / name / "train.json",
            verify_json=root / "verify" / name / "verify.json",
            bench_json=root / "bench" / name / "bench.json",
            preview_dir=root / "preview" / name,
            quality_dir=root / "quality" / name,
            config=dict(config or {}),
            data=dict(data or {}),
            weights=root / "train" / name / WEIGHTS,
        )

    @property
    def models(self) -> dict[str, Path]:
        """Format -> path of each model file the bundle requires."""
        d, s = Path(self.export_dir), self.name
        return {
            "mlpackage": d / f"{s}.mlpackage",
            "mlmodel": d / f"{s}.mlmodel",
            "tflite": d / f"{s}.tflite",
            "onnx": d / f"{s}.onnx",
        }

    def load_json(self, which: str) -> dict:
        """One of train/verify/bench/export/preview/quality as a dict; {} if the file is absent."""
        path = {
            "train": self.train_json,
            "verify": self.verify_json,
            "bench": self.bench_json,
            "export": Path(self.export_dir) / RECORD,
            "preview": Path(self.preview_dir) / "preview.json" if self.preview_dir else None,
            "quality": Path(self.quality_dir) / "quality.json" if self.quality_dir else None,
        }[which]
        return read_json(path) if path is not None and Path(path).is_file() else {}


def read_json(path: str | os.PathLike) -> dict:
    """A JSON object from a stage output; unreadable or non-object JSON is a LivestyleError."""
    try:
        value = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise LivestyleError(path, f"cannot read ({exc.__class__.__name__})") from None
    except json.JSONDecodeError as exc:
        raise LivestyleError(path, f"not valid JSON (line {exc.lineno}: {exc.msg})") from None
    if not isinstance(value, dict):
        raise LivestyleError(path, "expected a JSON object")
    return value
