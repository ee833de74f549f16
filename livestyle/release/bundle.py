"""Release bundles: one deterministic zip per version, and a verifier for it.

Layout inside the zip (every path POSIX, relative, sorted):

    manifest.json                 format, version, styles, tool versions, and the
                                  SHA-256 and size of every other file
    BENCHMARKS.md                 the bench tables of every style, one page
    S/S.mlpackage/...             Core ML mlprogram, stored as a tree (see below)
    S/S.mlmodel                   Core ML neuralnetwork (iOS14)
    S/S.tflite, S/S.onnx          other platforms
    S/MODEL_CARD.md, S/model_card.json
    S/export.json                 the export record: weights and model digests (livestyle.provenance)
    S/metrics/{train,verify,bench,quality}.json
    S/preview/...                 mp4s, gif, poster, preview.json
    S/quality/sheet.png           painting | photo | ours | reference, with figures

The .mlpackage is stored as a tree, not as a nested S.mlpackage.zip: every file in it
gets its own checksum in the manifest (a tamper names the file), the verifier streams
one zip instead of opening zips inside zips, and unzipping the bundle once gives a
package Xcode opens as is.

Determinism: entries sorted, every timestamp 1980-01-01 00:00 (the zip epoch), mode
0644 for every file, no directory entries, fixed compression level. Building twice
from the same inputs with the same tools gives identical bytes, so DVC sees no change.

Verification streams each entry from the zip and hashes it; nothing is extracted.
Archive names are checked before anything is read (absolute paths, drive letters,
'..', backslashes, symlink entries, duplicates), and reads stop at the size the
manifest states, so a crafted entry can neither escape nor balloon.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import platform
import re
import shutil
import stat
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Iterable, Mapping

from livestyle.atomic import atomic_path
from livestyle.config import STYLE_NAME, check_section
from livestyle.errors import LivestyleError
from livestyle.provenance import RECORD, check_export, mismatches, record_problem, tree_sha256
from livestyle.release.artifacts import StyleArtifacts, read_json

FORMAT = "livestyle-bundle/1"
MANIFEST = "manifest.json"
BENCHMARKS = "BENCHMARKS.md"
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
FILE_MODE = 0o100644  # regular file, rw-r--r--
# already-compressed media: deflating them again costs time and saves nothing
STORED_SUFFIXES = {".mp4", ".gif", ".png", ".jpg", ".jpeg", ".zip", ".webm"}
MANIFEST_MAX_BYTES = 16 * 1024 * 1024
CHUNK = 1 << 20
# distribution names whose versions go in the manifest; the first installed name wins
TOOLS = {
    "tensorflow": ("tensorflow", "tensorflow-cpu"),
    "keras": ("keras",),
    "coremltools": ("coremltools",),
    "onnx": ("onnx",),
    "onnxruntime": ("onnxruntime", "onnxruntime-gpu"),
    "tf2onnx": ("tf2onnx",),
    "ai-edge-litert": ("ai-edge-litert",),
}
_VERSION_RE = re.compile(r"^[0-9A-Za-z][0-9A-Za-z.+_-]*$")


@dataclass(frozen=True)
class ReleaseConfig:
    """params.yaml `release:`. The version is the one a tag vX.Y.Z must match."""

    version: str
    out_dir: str = "data/release"
    # archive name -> file added at the top of the bundle, e.g. {LICENSE: LICENSE}
    extra_files: Mapping[str, str] = field(default_factory=dict)
    # JSON describing the training data (prepare's summary), shown in every model card
    data_summary: str | None = None

    @classmethod
    def from_params(cls, d: Mapping[str, Any] | None) -> "ReleaseConfig":
        d = dict(d or {})
        if "version" not in d:
            raise LivestyleError("params.yaml", "release.version is missing")
        if not isinstance(d["version"], str):
            # YAML reads 1.10 as the number 1.1: only a string keeps the version exact
            raise LivestyleError("params.yaml", f"release.version must be a quoted string, got {d['version']!r}")
        if not _VERSION_RE.match(d["version"]):
            raise LivestyleError("params.yaml", f"release.version {d['version']!r} is not a plain version string")
        d["extra_files"] = dict(d.get("extra_files") or {})
        check_section(cls, d, "release")
        return cls(**d)

    @property
    def bundle_path(self) -> Path:
        return Path(self.out_dir) / bundle_name(self.version)


def release(params: Mapping[str, Any], data_root: str | os.PathLike = "data", progress: bool = True) -> Path:
    """What the release stage runs: one bundle with every style in params `styles:`.

    Reads each style's merged config (network/loss/train, credit, license) for its
    model card, and the DVC layout data/{export,train,verify,bench,preview,quality}/S.
    """
    import dataclasses

    from livestyle.config import style_config

    cfg = ReleaseConfig.from_params(params.get("release"))
    data = read_json(cfg.data_summary) if cfg.data_summary else {}
    styles = {
        name: StyleArtifacts.from_data_root(name, data_root, config=dataclasses.asdict(style_config(params, name)), data=data)
        for name in sorted(params.get("styles") or {})
    }
    build_bundle(styles, cfg.version, cfg.bundle_path, extra_files=cfg.extra_files, progress=progress)
    return cfg.bundle_path


def tool_versions() -> dict[str, str]:
    """Versions of the tools that produced the models, read from package metadata.

    Metadata, not imports: importing TensorFlow to read a version costs seconds.
    """
    import livestyle

    out = {"python": platform.python_version(), "livestyle": livestyle.__version__}
    for tool, dists in TOOLS.items():
        out[tool] = "not installed"
        for dist in dists:
            try:
                out[tool] = importlib.metadata.version(dist)
                break
            except importlib.metadata.PackageNotFoundError:
                continue
    return dict(sorted(out.items()))


def bundle_name(version: str) -> str:
    """File name of the bundle for a version: livestyle-0.1.0.zip."""
    return f"livestyle-{version}.zip"


# ---------------------------------------------------------------- building


def _tree_files(root: Path) -> list[Path]:
    """Regular files under root (symlinks followed: DVC may link from its cache), sorted."""
    return sorted((p for p in root.rglob("*") if p.is_file()), key=lambda p: p.relative_to(root).as_posix())


def _style_entries(art: StyleArtifacts) -> tuple[dict[str, Path | bytes], dict[str, Any]]:
    """Archive name -> source (file path or bytes) for one style, and its manifest entry."""
    from livestyle.release import modelcard

    s = art.name
    if not STYLE_NAME.match(s):
        raise LivestyleError(art.export_dir, f"style name {s!r} is not a safe file name")
    entries: dict[str, Path | bytes] = {}
    models: dict[str, str] = {}
    for fmt, path in art.models.items():
        if fmt == "mlpackage":
            # an mlpackage is a directory; without its Manifest.json Core ML cannot open it
            if not path.is_dir() or not (path / "Manifest.json").is_file():
                raise LivestyleError(path, f"missing Core ML package (need a directory with Manifest.json; run export@{s})")
            for f in _tree_files(path):
                entries[f"{s}/{path.name}/{f.relative_to(path).as_posix()}"] = f
        elif not path.is_file():
            raise LivestyleError(path, f"missing {fmt} model file (run export@{s})")
        else:
            entries[f"{s}/{path.name}"] = path
        models[fmt] = f"{s}/{path.name}"

    # one export of the trained weights, never models of two runs
    record = check_export(art.export_dir, s, art.weights)
    for path in art.models.values():
        if path.name not in record["models"]:
            raise LivestyleError(path, f"not among the models {RECORD} records; rerun `dvc repro export@{s}`")
    entries[f"{s}/{RECORD}"] = Path(art.export_dir) / RECORD
    quality_json = Path(art.quality_dir) / "quality.json" if art.quality_dir else None
    for which, path in (("train", art.train_json), ("verify", art.verify_json), ("bench", art.bench_json), ("quality", quality_json)):
        if path is not None and Path(path).is_file():
            read_json(path)  # refuse a corrupt metrics file now, naming it
            entries[f"{s}/metrics/{which}.json"] = Path(path)
    if art.preview_dir is not None and Path(art.preview_dir).is_dir():
        for f in _tree_files(Path(art.preview_dir)):
            rel = f.relative_to(art.preview_dir).as_posix()
            # dot files are DVC/OS bookkeeping (.gitignore, .DS_Store), not previews
            if not any(part.startswith(".") for part in rel.split("/")):
                entries[f"{s}/preview/{rel}"] = f

    index: dict[str, Any] = {"models": models, "model_card": f"{s}/MODEL_CARD.md"}
    quality = {"metrics": f"{s}/metrics/quality.json", "sheet": f"{s}/quality/sheet.png"}
    if art.quality_dir is not None and (Path(art.quality_dir) / "sheet.png").is_file():
        entries[quality["sheet"]] = Path(art.quality_dir) / "sheet.png"
    quality = {k: rel for k, rel in quality.items() if rel in entries}
    if quality:
        index["quality"] = quality

    sizes = {fmt: _size(entries, rel) for fmt, rel in models.items()}
    card = modelcard.build_card(art, model_sizes=sizes)
    entries[f"{s}/model_card.json"] = (json.dumps(card, indent=2, sort_keys=True) + "\n").encode()
    entries[f"{s}/MODEL_CARD.md"] = modelcard.render_markdown(card).encode()
    return entries, index


def _size(entries: Mapping[str, Path | bytes], rel: str) -> int:
    """Bytes of a model: a file, or the sum of a package tree."""
    if rel in entries:
        src = entries[rel]
        return len(src) if isinstance(src, bytes) else Path(src).stat().st_size
    prefix = rel + "/"
    return sum(Path(v).stat().st_size for k, v in entries.items() if k.startswith(prefix) and not isinstance(v, bytes))


def _hash_source(src: Path | bytes) -> tuple[str, int]:
    h = hashlib.sha256()
    if isinstance(src, bytes):
        h.update(src)
        return h.hexdigest(), len(src)
    size = 0
    with open(src, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def _zipinfo(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
    info.create_system = 3  # unix, so external_attr carries the mode on every host
    info.external_attr = FILE_MODE << 16
    stored = PurePosixPath(name).suffix.lower() in STORED_SUFFIXES
    info.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
    return info


def _write_entry(zf: zipfile.ZipFile, name: str, src: Path | bytes) -> None:
    info = _zipinfo(name)
    if isinstance(src, bytes):
        zf.writestr(info, src, compresslevel=6)
        return
    info.file_size = Path(src).stat().st_size  # lets zipfile choose zip64 up front for big files
    with open(src, "rb") as fin, zf.open(info, "w", force_zip64=info.file_size > 0x7FFFFFFF) as fout:
        shutil.copyfileobj(fin, fout, CHUNK)


def build_bundle(
    styles: Mapping[str, StyleArtifacts],
    version: str,
    out_zip: str | os.PathLike,
    extra_files: Mapping[str, str | os.PathLike] | None = None,
    tools: Mapping[str, str] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Write the release zip for `version` atomically; return its manifest.

    styles: name -> StyleArtifacts (a missing model file is a LivestyleError naming it).
    extra_files: archive name -> file to add at the top level (e.g. {"LICENSE": "LICENSE"}).
    tools: tool versions for the manifest (default: `tool_versions()` of this environment).
    The finished zip is verified before it replaces `out_zip`, so a bad build never
    overwrites a good bundle.
    """
    out_zip = Path(out_zip)
    if not _VERSION_RE.match(str(version)):
        raise LivestyleError(out_zip, f"version {version!r} is not a plain version string")
    if not styles:
        raise LivestyleError(out_zip, "no styles to bundle")

    from livestyle.release import modelcard

    entries: dict[str, Path | bytes] = {}
    style_index: dict[str, Any] = {}
    for name in sorted(styles):
        art = styles[name]
        if art.name != name:
            raise LivestyleError(art.export_dir, f"style key {name!r} does not match artifacts name {art.name!r}")
        style_entries, style_index[name] = _style_entries(art)
        entries.update(style_entries)
    benches = {name: styles[name].load_json("bench") for name in sorted(styles)}
    entries[BENCHMARKS] = modelcard.render_benchmarks(str(version), benches).encode()
    for arcname, path in sorted((extra_files or {}).items()):
        problem = unsafe_name(arcname)
        if problem or arcname == MANIFEST or arcname in entries:
            raise LivestyleError(path, f"cannot add as {arcname!r}: {problem or 'name already used'}")
        if not Path(path).is_file():
            raise LivestyleError(path, "missing extra file")
        entries[arcname] = Path(path)

    names = sorted(entries)
    files = {}
    for name in _progress(names, progress, "hash"):
        digest, size = _hash_source(entries[name])
        files[name] = {"sha256": digest, "size": size}
    manifest = {
        "format": FORMAT,
        "version": str(version),
        "styles": style_index,
        "tools": dict(sorted((tools if tools is not None else tool_versions()).items())),
        "files": files,
    }
    manifest_bytes = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()

    with atomic_path(out_zip) as tmp:
        with zipfile.ZipFile(tmp, "w", allowZip64=True) as zf:
            # manifest first: a reader streaming the zip knows what to expect before the files
            _write_entry(zf, MANIFEST, manifest_bytes)
            for name in _progress(names, progress, "zip"):
                _write_entry(zf, name, entries[name])
        problems = verify_bundle(tmp)
        if problems:
            raise LivestyleError(out_zip, "built bundle does not verify: " + "; ".join(problems[:3]))
    return manifest


def _progress(items: list, enabled: bool, desc: str) -> Iterable:
    if not enabled:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=f"bundle {desc}", unit="file", leave=False)


# ---------------------------------------------------------------- verifying


def unsafe_name(name: str) -> str | None:
    """Why an archive name could write outside the extraction folder, or None if safe."""
    if not name:
        return "empty name"
    if "\\" in name:
        return "backslash in name"
    if "\x00" in name:
        return "NUL in name"
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return "absolute path"
    parts = name.rstrip("/").split("/")
    if any(p == ".." for p in parts):
        return "'..' in path"
    if any(p in ("", ".") for p in parts):
        return "empty or '.' path component"
    return None


def _is_symlink(info: zipfile.ZipInfo) -> bool:
    return info.create_system == 3 and stat.S_ISLNK(info.external_attr >> 16)


def _stream_hash(zf: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> tuple[str, int]:
    """SHA-256 and size of an entry, reading at most limit+1 bytes (a bomb stops early)."""
    h = hashlib.sha256()
    size = 0
    with zf.open(info) as f:
        while size <= limit and (chunk := f.read(min(CHUNK, limit + 1 - size))):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def read_manifest(zf: zipfile.ZipFile) -> tuple[dict | None, str | None]:
    """The manifest of an open bundle, or (None, problem)."""
    try:
        info = zf.getinfo(MANIFEST)
    except KeyError:
        return None, f"{MANIFEST}: missing"
    if info.file_size > MANIFEST_MAX_BYTES:
        return None, f"{MANIFEST}: too large ({info.file_size} bytes)"
    try:
        with zf.open(info) as f:
            manifest = json.loads(f.read(MANIFEST_MAX_BYTES + 1))
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        return None, f"{MANIFEST}: unreadable ({exc.__class__.__name__}: {exc})"
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        return None, f"{MANIFEST}: not a {FORMAT} manifest"
    files = manifest.get("files")
    if not isinstance(files, dict) or not all(
        isinstance(v, dict) and isinstance(v.get("sha256"), str) and isinstance(v.get("size"), int) and v["size"] >= 0
        for v in files.values()
    ):
        return None, f"{MANIFEST}: 'files' must map names to {{sha256, size}}"
    return manifest, None


def verify_bundle(path: str | os.PathLike, progress: bool = False) -> list[str]:
    """Problems with a bundle, one line each; [] means every file is present and intact.

    Refuses: unsafe archive names (absolute, '..', backslash, symlink entries),
    duplicate names, a missing or malformed manifest, a file the manifest lists that
    is missing, a file it does not list (extra), any size or SHA-256 mismatch, and a
    style whose models are not the ones its export.json records (two export runs mixed).
    Streams from the zip; never extracts.
    """
    path = Path(path)
    if not path.is_file():
        return ["no such bundle file"]
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        return [f"not a zip archive ({exc})"]
    problems: list[str] = []
    with zf:
        infos = zf.infolist()
        seen: set[str] = set()
        for info in infos:
            reason = unsafe_name(info.filename)
            if reason:
                problems.append(f"{info.filename!r}: unsafe archive name ({reason})")
            if _is_symlink(info):
                problems.append(f"{info.filename}: symlink entry")
            if info.filename in seen:
                problems.append(f"{info.filename}: duplicate entry")
            seen.add(info.filename)
        if problems:
            # a hostile archive: do not read any further
            return problems

        manifest, problem = read_manifest(zf)
        if problem:
            return [problem]
        listed: dict[str, dict] = manifest["files"]
        for name in sorted(listed):
            reason = unsafe_name(name)
            if reason or name == MANIFEST:
                problems.append(f"{name!r}: unsafe name in manifest ({reason or 'lists itself'})")
        if problems:
            return problems

        by_name = {i.filename: i for i in infos}
        listed_dirs = {str(p) + "/" for name in listed for p in PurePosixPath(name).parents if str(p) != "."}
        for name in sorted(set(by_name) - set(listed) - {MANIFEST}):
            if by_name[name].is_dir() and name in listed_dirs:
                continue  # a re-zip's directory entry of a listed file: harmless
            problems.append(f"{name}: extra file not in the manifest")
        for name in _progress(sorted(listed), progress, "verify"):
            want = listed[name]
            info = by_name.get(name)
            if info is None:
                problems.append(f"{name}: missing (listed in the manifest)")
                continue
            if info.is_dir():
                problems.append(f"{name}: is a directory entry, expected a file")
                continue
            if info.file_size != want["size"]:
                problems.append(f"{name}: size {info.file_size} != {want['size']} in the manifest")
                continue
            try:
                digest, size = _stream_hash(zf, info, want["size"])
            except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
                problems.append(f"{name}: unreadable ({exc.__class__.__name__}: {exc})")
                continue
            if size != want["size"]:
                problems.append(f"{name}: read {size} bytes, manifest says {want['size']}")
            elif digest != want["sha256"]:
                problems.append(f"{name}: SHA-256 mismatch (changed since the bundle was built)")
        for style, entry in sorted((manifest.get("styles") or {}).items()):
            for fmt, rel in sorted(((entry or {}).get("models") or {}).items()):
                if rel not in listed and not any(n.startswith(f"{rel}/") for n in listed):
                    problems.append(f"{rel}: {style} {fmt} model named in the manifest has no files")
            for what, rel in sorted(((entry or {}).get("quality") or {}).items()):
                if rel not in listed:
                    problems.append(f"{rel}: {style} quality {what} named in the manifest is not listed")
        if not problems:
            # the manifest's digests are the files' (checked above): compare them with the record
            problems += _export_mismatches(zf, manifest)
    return problems


def _export_mismatches(zf: zipfile.ZipFile, manifest: dict) -> list[str]:
    """Each style's models against its export record: one set from one export run."""
    listed: dict[str, dict] = manifest["files"]
    problems = []
    for style in sorted(manifest.get("styles") or {}):
        rel = f"{style}/{RECORD}"
        if rel not in listed or rel not in zf.namelist():
            problems.append(f"{rel}: missing, so nothing shows the models come from one export")
            continue
        try:
            with zf.open(rel) as f:
                record = json.loads(f.read(MANIFEST_MAX_BYTES + 1))
        except (zipfile.BadZipFile, OSError, ValueError) as exc:
            problems.append(f"{rel}: unreadable ({exc.__class__.__name__})")
            continue
        problem = record_problem(record)
        if problem:
            problems.append(f"{rel}: {problem}")
            continue
        digests = {name: _listed_digest(listed, f"{style}/{name}") for name in record["models"]}
        problems += [f"{style}/{name}: {p}" for name, p in mismatches(record, digests)]
    return problems


def _listed_digest(listed: Mapping[str, dict], rel: str) -> str | None:
    """A model's digest from the manifest: its file's, or its folder's tree digest."""
    if rel in listed:
        return listed[rel]["sha256"]
    prefix = rel + "/"
    tree = {name[len(prefix):]: meta["sha256"] for name, meta in listed.items() if name.startswith(prefix)}
    return tree_sha256(tree) if tree else None


def bundle_summary(path: str | os.PathLike) -> dict[str, Any]:
    """Version, styles, file count and total bytes of a bundle (read from its manifest)."""
    with zipfile.ZipFile(path) as zf:
        manifest, problem = read_manifest(zf)
    if problem:
        raise LivestyleError(path, problem)
    files = manifest["files"]
    return {
        "version": manifest.get("version"),
        "styles": sorted(manifest.get("styles") or {}),
        "files": len(files),
        "bytes": sum(v["size"] for v in files.values()),
    }


def extract_bundle(path: str | os.PathLike, dest: str | os.PathLike) -> Path:
    """Verify, then extract into `dest` (which must not exist) atomically.

    Extraction goes to a temp folder beside dest and only names the manifest lists
    (already checked safe) are written, each resolved and checked to stay inside it.
    """
    path, dest = Path(path), Path(dest)
    problems = verify_bundle(path)
    if problems:
        raise LivestyleError(path, f"refusing to extract: {problems[0]}" + (f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""))
    if dest.exists():
        raise LivestyleError(dest, "already exists")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        root = tmp.resolve()
        with zipfile.ZipFile(path) as zf:
            for name in [MANIFEST, *sorted(read_manifest(zf)[0]["files"])]:
                target = (root / name).resolve()
                if root not in target.parents:
                    raise LivestyleError(path, f"{name!r} would extract outside the folder")
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(name) as fin, open(target, "wb") as fout:
                    shutil.copyfileobj(fin, fout, CHUNK)
        os.replace(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest
