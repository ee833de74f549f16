"""Opening a Core ML model file: the one place coremltools' MLModel reads a path."""

from __future__ import annotations

import os
from pathlib import Path

from livestyle.errors import LivestyleError


def load_mlmodel(path: str | os.PathLike, *, for_prediction: bool = False):
    """The MLModel of a .mlpackage or .mlmodel; a missing or unreadable file is a
    LivestyleError naming it.

    By default only the spec and weights are read (skip_model_load): that works on
    Linux and is all that costing, quantizing or inspecting needs. for_prediction
    compiles it for `predict` on every compute unit, which coremltools does only on macOS.
    """
    import coremltools as ct

    path = Path(path)
    if not path.exists():
        raise LivestyleError(path, "no such Core ML model")
    try:
        if for_prediction:
            return ct.models.MLModel(str(path), compute_units=ct.ComputeUnit.ALL)
        return ct.models.MLModel(str(path), skip_model_load=True)
    except Exception as exc:  # coremltools raises bare Exceptions for bad files
        raise LivestyleError(path, f"not a readable Core ML model ({exc.__class__.__name__})") from None
