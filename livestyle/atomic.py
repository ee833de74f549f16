"""Atomic output writing: a killed stage never leaves a half file that looks whole."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path; rename it onto `path` only on success.

    Works for files and directories (e.g. an .mlpackage): whatever the caller
    creates at the yielded path replaces `path` in one rename. The temporary path
    lives outside DVC outputs (see scratch_dir) and is removed on any failure,
    Ctrl-C included.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # keep the real suffix so libraries that dispatch on it (cv2, PIL) still work
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=scratch_dir(path)))
    tmp = tmp_dir / (path.stem + (suffix if suffix is not None else path.suffix))
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"{path}: nothing was written")
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


def scratch_dir(path: Path) -> Path:
    """Where temporary files for `path` are made: the DVC repo's .dvc/tmp/livestyle.

    Beside `path` would be inside a DVC output (data/export/S/.S.tflite.*), where a
    stage killed by SIGKILL, which no cleanup survives, leaves a half file that DVC
    then hashes. .dvc/tmp is DVC's own git-ignored scratch space. Outside a DVC repo,
    or where .dvc/tmp is on another filesystem (a rename must not copy), it is the
    folder of `path`.
    """
    parent = path.parent.resolve()
    for folder in (parent, *parent.parents):
        if (folder / ".dvc").is_dir():
            scratch = folder / ".dvc" / "tmp" / "livestyle"
            scratch.mkdir(parents=True, exist_ok=True)
            return scratch if scratch.stat().st_dev == parent.stat().st_dev else parent
    return parent


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Deterministic JSON (sorted keys, fixed indent) so DVC hashes stay stable."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_jsonable) + "\n")


def _jsonable(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
