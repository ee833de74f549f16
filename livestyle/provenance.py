"""Which weights an export came from, and whether a set of model files still matches it.

The export stage writes export.json last, with the SHA-256 of the weights it read and
of every model file it wrote, and removes the old one first: a folder without it is an
unfinished export. Verify, bench and release check the files against the record before
using them, and verify-bundle checks a bundle's models against its copy, so models of
two export runs (a killed export leaves new Core ML files beside old TFLite ones) are
never verified, benchmarked or shipped as one set.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Mapping

from livestyle.atomic import write_json
from livestyle.errors import LivestyleError

RECORD = "export.json"
CHUNK = 1 << 20


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def tree_sha256(files: Mapping[str, str]) -> str:
    """One digest of a folder model (.mlpackage) from its files' relative paths and
    digests: the same from the files on disk and from a bundle's manifest."""
    h = hashlib.sha256()
    for rel in sorted(files):
        h.update(f"{rel}\0{files[rel]}\n".encode())
    return h.hexdigest()


def model_sha256(path: str | Path) -> str:
    """Digest of a model file, or of a folder model's tree."""
    path = Path(path)
    if path.is_dir():
        return tree_sha256({p.relative_to(path).as_posix(): file_sha256(p) for p in path.rglob("*") if p.is_file()})
    return file_sha256(path)


def start_export(out_dir: str | Path, style: str, weights: str | Path) -> None:
    """Drop the old record before writing models: until the new one is written, the
    folder reads as an unfinished export, never as the old, complete one. Missing
    weights are refused first, so a run that cannot export leaves the old set whole."""
    _need_weights(weights, style)
    (Path(out_dir) / RECORD).unlink(missing_ok=True)


def _need_weights(weights: str | Path, style: str) -> None:
    if not Path(weights).is_file():
        raise LivestyleError(weights, f"missing: no trained weights; run `dvc repro train@{style}`")


def write_record(out_dir: str | Path, style: str, version: str, weights: str | Path, models: Mapping[str, dict]) -> dict:
    """export.json: the models written (name -> format, sizes) with their digests, and
    the digest of the weights they came from. Written last, once every model is in place."""
    out_dir = Path(out_dir)
    record = {
        "style": style,
        "version": version,
        "weights_sha256": file_sha256(weights),
        "models": {name: {**m, "sha256": model_sha256(out_dir / name)} for name, m in sorted(models.items())},
    }
    write_json(out_dir / RECORD, record)
    return record


def _rerun(style: str) -> str:
    return f"rerun `dvc repro export@{style}`"


def read_record(export_dir: str | Path, style: str) -> dict:
    """The export record, or one line saying the export did not finish."""
    path = Path(export_dir) / RECORD
    if not path.is_file():
        raise LivestyleError(path, f"missing: the export of {style} did not finish; {_rerun(style)}")
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LivestyleError(path, f"unreadable ({exc.__class__.__name__}); {_rerun(style)}") from None
    problem = record_problem(record)
    if problem:
        raise LivestyleError(path, f"{problem}; {_rerun(style)}")
    return record


def record_problem(record: Any) -> str | None:
    """What makes a parsed export.json unusable, or None."""
    models = record.get("models") if isinstance(record, dict) else None
    if not isinstance(models, dict) or not isinstance(record.get("weights_sha256"), str) or not all(
        isinstance(m, dict) and isinstance(m.get("sha256"), str) for m in models.values()
    ):
        return "records no weights and model digests (an older export)"
    return None


def mismatches(record: Mapping[str, Any], digests: Mapping[str, str | None]) -> list[tuple[str, str]]:
    """(model name, problem) for each recorded model whose digest (name -> digest,
    None: absent) is not the recorded one."""
    problems = []
    for name, model in sorted(record["models"].items()):
        found = digests.get(name)
        if found is None:
            problems.append((name, f"missing (listed in {RECORD})"))
        elif found != model["sha256"]:
            problems.append((name, f"not the file {RECORD} records (models of two export runs?)"))
    return problems


def check_export(export_dir: str | Path, style: str, weights: str | Path | None = None) -> dict:
    """The record of a complete, consistent export: every model file as recorded and,
    given `weights`, made from them. Anything else is one line telling to rerun it."""
    export_dir = Path(export_dir)
    record = read_record(export_dir, style)
    if weights is not None:
        _need_weights(weights, style)
        if file_sha256(weights) != record["weights_sha256"]:
            raise LivestyleError(export_dir / RECORD, f"the models were exported from other weights than {weights}; {_rerun(style)}")
    digests = {name: model_sha256(export_dir / name) if (export_dir / name).exists() else None for name in record["models"]}
    for name, problem in mismatches(record, digests):
        raise LivestyleError(export_dir / name, f"{problem}; {_rerun(style)}")
    return record
