"""Opening a Core ML model file: the one place coremltools reads a path, as an MLModel
(load_mlmodel) or as its protobuf spec (load_spec)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

from livestyle.errors import LivestyleError


def _read(path: str | os.PathLike, read: Callable[[str], Any]):
    """read(str(path)); a missing or unreadable file is a LivestyleError naming it."""
    path = Path(path)
    if not path.exists():
        raise LivestyleError(path, "no such Core ML model")
    try:
        return read(str(path))
    except Exception as exc:  # coremltools raises bare Exceptions for bad files
        raise LivestyleError(path, f"not a readable Core ML model ({exc.__class__.__name__}: {exc})") from None


def load_mlmodel(path: str | os.PathLike, *, for_prediction: bool = False):
    """The MLModel of a .mlpackage or .mlmodel; a missing or unreadable file is a
    LivestyleError naming it.

    By default only the spec and weights are read (skip_model_load): that works on
    Linux and is all that costing, quantizing or inspecting needs. for_prediction
    compiles it for `predict` on every compute unit, which coremltools does only on macOS.
    """
    import coremltools as ct

    if for_prediction:
        return _read(path, lambda p: ct.models.MLModel(p, compute_units=ct.ComputeUnit.ALL))
    return _read(path, lambda p: ct.models.MLModel(p, skip_model_load=True))


def load_spec(path: str | os.PathLike):
    """The protobuf spec (Model_pb2.Model) of a .mlpackage or .mlmodel, without building an
    MLModel: what the executors and the interface check read. A missing or unreadable file
    is a LivestyleError naming it."""
    import coremltools as ct

    return _read(path, ct.utils.load_spec)
