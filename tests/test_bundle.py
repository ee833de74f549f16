"""Release bundle: build from a tiny fake tree, verify, and refuse tampered or hostile zips.

The fake-tree helpers here are imported by test_modelcard.py and test_cli.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import hashlib
import shutil
import os
import stat
import zipfile

import pytest

from livestyle.release.bundle import (
    MANIFEST,
    StyleArtifacts,
    build_bundle,
    bundle_summary,
    extract_bundle,
    verify_bundle,
)
from livestyle.errors import LivestyleError
from livestyle.provenance import write_record

TOOLS = {"python": "3.11.0", "livestyle": "0.0.0-test"}  # fixed, so bytes do not depend on the venv


def fake_style(root: Path, name: str, with_json: bool = True) -> StyleArtifacts:
    """data/{export,train,verify,bench,preview}/NAME with fake model bytes, as DVC lays them out."""
    exp = root / "export" / name
    pkg = exp / f"{name}.mlpackage"
    (pkg / "Data" / "com.apple.CoreML" / "weights").mkdir(parents=True)
    (pkg / "Manifest.json").write_text(json.dumps({"fileFormatVersion": "1.0.0"}))
    (pkg / "Data" / "com.apple.CoreML" / "model.mlmodel").write_bytes(b"mlprogram " + name.encode())
    (pkg / "Data" / "com.apple.CoreML" / "weights" / "weight.bin").write_bytes(bytes(range(256)) * 8)
    (exp / f"{name}.mlmodel").write_bytes(b"neuralnetwork " + name.encode())
    (exp / f"{name}.tflite").write_bytes(b"TFL3" + name.encode())
    (exp / f"{name}.onnx").write_bytes(b"onnx " + name.encode())
    (exp / ".gitignore").write_text("/x\n")
    prev = root / "preview" / name
    prev.mkdir(parents=True)
    (prev / "side_by_side.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + name.encode())
    (prev / "preview.gif").write_bytes(b"GIF89a" + name.encode())
    (prev / "poster.png").write_bytes(b"\x89PNG\r\n\x1a\n" + name.encode())
    (prev / "preview.json").write_text(json.dumps({"frames": 12, "fps": 24}))
    if with_json:
        for stage, obj in {
            "train": {"style": name, "steps": 10, "params": 123456, "final": {"loss": 1.5, "content": 1.0}, "backend": "tensorflow"},
            "verify": {"formats": {"tflite": {"psnr_db": 48.2, "passed": True}, "mlpackage": {"psnr_db": 41.0, "passed": True}}, "bound_db": 30.0},
            "bench": {
                "runtimes": {"keras": {"median_ms": 590.0}, "onnxruntime": {"median_ms": 410.5}},
                "estimates": {"a12_gpu": {"ms": 66.0, "fps": 15.2}, "a12_ane": {"ms": 20.1}},
            },
        }.items():
            d = root / stage / name
            d.mkdir(parents=True)
            (d / f"{stage}.json").write_text(json.dumps(obj))
        quality = root / "quality" / name
        quality.mkdir(parents=True)
        figures = {"texture": 12.5, "colour": 9.0, "content": 0.31, "texture_flat": 40.0}
        (quality / "quality.json").write_text(json.dumps({"style": name, "photos": 2, "flicker_ratio": 1.4,
                                                          "mean": {**figures, "photo": {"texture": 118.0, "colour": 43.0, "content": 0.0}}}))
        (quality / "sheet.png").write_bytes(b"\x89PNG\r\n\x1a\nsheet " + name.encode())
    weights = root / "train" / name / "transformer.weights.h5"
    weights.parent.mkdir(parents=True, exist_ok=True)
    weights.write_bytes(b"weights " + name.encode())
    record_export(exp, name, weights)
    config = {"image": f"data/styles/{name}.png", "credit": f"{name} by A. Painter (1900)", "license": "public domain",
              "network": {"res_blocks": 3, "width": 32}, "loss": {"network": "hed_vgg16", "style_weight": 10.0}, "train": {"steps": 10}}
    return StyleArtifacts.from_data_root(name, root, config=config, data={"source": "builtin", "images": 40})


def record_export(exp: Path, name: str, weights: Path) -> dict:
    """export.json as the export stage writes it (livestyle.provenance), for the models in exp."""
    display = {"display": [1920, 1080]}
    models = {f"{name}.mlpackage": {"format": "mlprogram", **display}, f"{name}.mlmodel": {"format": "neuralnetwork", **display},
              f"{name}.tflite": {"format": "tflite", "display": [853, 480]}, f"{name}.onnx": {"format": "onnx", "display": [853, 480]}}
    return write_record(exp, name, "0.1.0", weights, {k: {"height": 853, "width": 480, **v} for k, v in models.items()})


def fake_styles(root: Path) -> dict[str, StyleArtifacts]:
    return {n: fake_style(root, n) for n in ("mosaic", "sketch")}


@pytest.fixture
def bundle(tmp_path) -> Path:
    out = tmp_path / "release" / "livestyle-0.1.0.zip"
    build_bundle(fake_styles(tmp_path / "data"), "0.1.0", out, tools=TOOLS, progress=False)
    return out


def _rewrite(src: Path, dst: Path, change=None, drop=(), add=()) -> Path:
    """Copy a zip entry by entry, changing, dropping or adding entries (as a tamperer would)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            if info.filename in drop:
                continue
            data = zin.read(info)
            if change and info.filename in change:
                data = change[info.filename]
            zout.writestr(info, data)
        for info, data in add:
            zout.writestr(info, data)
    return dst


def test_bundle_holds_every_model_card_and_preview(bundle):
    assert verify_bundle(bundle) == []
    with zipfile.ZipFile(bundle) as zf:
        names = zf.namelist()
        manifest = json.loads(zf.read(MANIFEST))
    for s in ("mosaic", "sketch"):
        for rel in (f"{s}.mlpackage/Manifest.json", f"{s}.mlpackage/Data/com.apple.CoreML/weights/weight.bin",
                    f"{s}.mlmodel", f"{s}.tflite", f"{s}.onnx", "MODEL_CARD.md", "model_card.json",
                    "export.json", "metrics/bench.json", "metrics/verify.json", "metrics/train.json",
                    "preview/side_by_side.mp4", "preview/preview.gif", "preview/poster.png", "preview/preview.json",
                    "metrics/quality.json", "quality/sheet.png"):
            assert f"{s}/{rel}" in names
        assert manifest["styles"][s]["models"]["mlpackage"] == f"{s}/{s}.mlpackage"
        assert manifest["styles"][s]["quality"] == {"metrics": f"{s}/metrics/quality.json", "sheet": f"{s}/quality/sheet.png"}
    assert "BENCHMARKS.md" in names
    assert not any(n.endswith(".gitignore") for n in names)  # DVC bookkeeping stays out
    # manifest covers every other entry with the right digest and size
    assert sorted(manifest["files"]) == sorted(n for n in names if n != MANIFEST)
    with zipfile.ZipFile(bundle) as zf:
        for n, meta in manifest["files"].items():
            data = zf.read(n)
            assert meta == {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    assert manifest["version"] == "0.1.0" and manifest["tools"] == TOOLS
    assert bundle_summary(bundle) == {"version": "0.1.0", "styles": ["mosaic", "sketch"], "files": len(names) - 1,
                                      "bytes": sum(m["size"] for m in manifest["files"].values())}


def test_default_tool_versions_are_recorded(tmp_path):
    out = tmp_path / "b.zip"
    manifest = build_bundle({"mosaic": fake_style(tmp_path / "data", "mosaic")}, "1.0.0", out, progress=False)
    for tool in ("python", "tensorflow", "keras", "coremltools", "onnx", "onnxruntime", "livestyle"):
        assert manifest["tools"][tool]


def test_zip_entries_are_deterministic(bundle):
    with zipfile.ZipFile(bundle) as zf:
        infos = zf.infolist()
    names = [i.filename for i in infos]
    assert names[0] == MANIFEST and names[1:] == sorted(names[1:])
    for i in infos:
        assert i.date_time == (1980, 1, 1, 0, 0, 0)
        assert i.external_attr >> 16 == 0o100644
        assert not i.is_dir()
    media = {i.filename: i.compress_type for i in infos if i.filename.endswith((".mp4", ".gif", ".png"))}
    assert media and set(media.values()) == {zipfile.ZIP_STORED}


def test_building_twice_gives_identical_bytes(tmp_path):
    styles = fake_styles(tmp_path / "data")
    a, b = tmp_path / "a.zip", tmp_path / "b.zip"
    build_bundle(styles, "0.1.0", a, tools=TOOLS, progress=False)
    # different mtimes and permissions on the inputs must not leak into the zip
    for f in (tmp_path / "data").rglob("*"):
        if f.is_file():
            os.utime(f, (1_700_000_000, 1_700_000_000))
            f.chmod(0o600)
    build_bundle(styles, "0.1.0", b, tools=TOOLS, progress=False)
    assert a.read_bytes() == b.read_bytes()


def test_tampered_file_is_caught(bundle, tmp_path):
    name = "mosaic/mosaic.mlpackage/Data/com.apple.CoreML/weights/weight.bin"
    with zipfile.ZipFile(bundle) as zf:
        original = zf.read(name)
    same_size = bytes([original[0] ^ 1]) + original[1:]
    bad = _rewrite(bundle, tmp_path / "bad.zip", change={name: same_size})
    problems = verify_bundle(bad)
    assert problems == [f"{name}: SHA-256 mismatch (changed since the bundle was built)"]
    bad2 = _rewrite(bundle, tmp_path / "bad2.zip", change={"sketch/sketch.onnx": b"evil"})
    assert any(p.startswith("sketch/sketch.onnx: size") for p in verify_bundle(bad2))


def test_missing_file_is_caught(bundle, tmp_path):
    bad = _rewrite(bundle, tmp_path / "bad.zip", drop={"sketch/sketch.tflite"})
    assert verify_bundle(bad) == ["sketch/sketch.tflite: missing (listed in the manifest)"]


def test_extra_file_is_caught(bundle, tmp_path):
    bad = _rewrite(bundle, tmp_path / "bad.zip", add=[(zipfile.ZipInfo("mosaic/backdoor.py"), b"print(1)")])
    assert verify_bundle(bad) == ["mosaic/backdoor.py: extra file not in the manifest"]


def test_changed_manifest_is_caught(bundle, tmp_path):
    with zipfile.ZipFile(bundle) as zf:
        manifest = json.loads(zf.read(MANIFEST))
    # an attacker who swaps a model and fixes its checksum must also fix the size: both are checked
    manifest["files"]["mosaic/mosaic.tflite"]["sha256"] = "0" * 64
    bad = _rewrite(bundle, tmp_path / "bad.zip", change={MANIFEST: json.dumps(manifest).encode()})
    assert verify_bundle(bad) == ["mosaic/mosaic.tflite: SHA-256 mismatch (changed since the bundle was built)"]
    no_manifest = _rewrite(bundle, tmp_path / "none.zip", drop={MANIFEST})
    assert verify_bundle(no_manifest) == [f"{MANIFEST}: missing"]
    garbage = _rewrite(bundle, tmp_path / "garbage.zip", change={MANIFEST: b"{not json"})
    assert verify_bundle(garbage)[0].startswith(f"{MANIFEST}: unreadable")


def test_not_a_zip_and_absent_file(tmp_path):
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"hello")
    assert "not a zip archive" in verify_bundle(junk)[0]
    assert "no such bundle file" in verify_bundle(tmp_path / "absent.zip")[0]


def _symlink_info(name):
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


@pytest.mark.parametrize(
    "entry, reason",
    [
        ("../evil", "'..' in path"),
        ("mosaic/../../evil", "'..' in path"),
        ("/tmp/evil", "absolute path"),
        ("C:/evil", "absolute path"),
        ("mosaic\\..\\evil", "backslash in name"),
        ("symlink", "symlink entry"),
    ],
)
def test_hostile_names_are_refused_without_writing_outside(bundle, tmp_path, entry, reason):
    info = _symlink_info("mosaic/link") if entry == "symlink" else zipfile.ZipInfo(entry)
    (tmp_path / "work").mkdir()
    bad = _rewrite(bundle, tmp_path / "work" / "bad.zip", add=[(info, b"/etc/passwd" if entry == "symlink" else b"pwned")])
    before = sorted(p.name for p in tmp_path.parent.iterdir())
    problems = verify_bundle(bad)
    assert problems and all(("unsafe archive name" in p or "symlink entry" in p) for p in problems)
    assert any(reason in p for p in problems)
    with pytest.raises(LivestyleError, match="refusing to extract"):
        extract_bundle(bad, tmp_path / "work" / "out")
    assert not (tmp_path / "work" / "out").exists()
    assert not (tmp_path / "evil").exists() and not Path("/tmp/evil").exists()
    assert sorted(p.name for p in tmp_path.parent.iterdir()) == before
    assert sorted(p.name for p in (tmp_path / "work").iterdir()) == ["bad.zip"]


def test_manifest_listing_an_unsafe_name_is_refused(bundle, tmp_path):
    with zipfile.ZipFile(bundle) as zf:
        manifest = json.loads(zf.read(MANIFEST))
    manifest["files"]["../evil"] = {"sha256": "0" * 64, "size": 1}
    bad = _rewrite(bundle, tmp_path / "bad.zip", change={MANIFEST: json.dumps(manifest).encode()})
    assert verify_bundle(bad) == ["'../evil': unsafe name in manifest ('..' in path)"]


def test_duplicate_entry_is_refused(bundle, tmp_path):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate we add on purpose
        bad = _rewrite(bundle, tmp_path / "bad.zip", add=[(zipfile.ZipInfo("mosaic/mosaic.onnx"), b"onnx mosaic")])
    assert verify_bundle(bad) == ["mosaic/mosaic.onnx: duplicate entry"]


def test_extract_gives_the_tree_back(bundle, tmp_path):
    out = extract_bundle(bundle, tmp_path / "x" / "unpacked")
    pkg = out / "mosaic" / "mosaic.mlpackage"
    assert (pkg / "Manifest.json").is_file()  # a usable package, no nested zip
    assert (out / "sketch" / "sketch.tflite").read_bytes() == b"TFL3sketch"
    assert json.loads((out / MANIFEST).read_text())["version"] == "0.1.0"
    with pytest.raises(LivestyleError, match="already exists"):
        extract_bundle(bundle, out)


def test_missing_model_file_is_an_error_naming_it(tmp_path):
    styles = fake_styles(tmp_path / "data")
    gone = tmp_path / "data" / "export" / "sketch" / "sketch.onnx"
    gone.unlink()
    out = tmp_path / "b.zip"
    with pytest.raises(LivestyleError) as err:
        build_bundle(styles, "0.1.0", out, tools=TOOLS, progress=False)
    assert str(gone) in str(err.value) and "onnx" in str(err.value)
    assert not out.exists()


def test_mlpackage_without_manifest_is_an_error(tmp_path):
    styles = fake_styles(tmp_path / "data")
    (tmp_path / "data" / "export" / "mosaic" / "mosaic.mlpackage" / "Manifest.json").unlink()
    with pytest.raises(LivestyleError, match="mosaic.mlpackage: missing Core ML package"):
        build_bundle(styles, "0.1.0", tmp_path / "b.zip", tools=TOOLS, progress=False)


def test_failed_build_keeps_the_previous_bundle(bundle, tmp_path):
    good = bundle.read_bytes()
    styles = fake_styles(tmp_path / "data2")
    (tmp_path / "data2" / "verify" / "mosaic" / "verify.json").write_text("{broken")
    with pytest.raises(LivestyleError, match="verify.json: not valid JSON"):
        build_bundle(styles, "0.1.0", bundle, tools=TOOLS, progress=False)
    assert bundle.read_bytes() == good
    assert sorted(p.name for p in bundle.parent.iterdir()) == [bundle.name]  # no temp left behind


def test_optional_jsons_and_preview_may_be_absent(tmp_path):
    art = fake_style(tmp_path / "data", "bare", with_json=False)

    shutil.rmtree(art.preview_dir)
    out = tmp_path / "b.zip"
    build_bundle({"bare": art}, "0.2.0", out, tools=TOOLS, progress=False)
    assert verify_bundle(out) == []
    with zipfile.ZipFile(out) as zf:
        names = zf.namelist()
        card = zf.read("bare/MODEL_CARD.md").decode()
    assert "bare/bare.onnx" in names and not any("/metrics/" in n or "/preview/" in n for n in names)
    assert "not recorded" in card.lower()


def test_extra_files_and_bad_arguments(tmp_path):
    styles = fake_styles(tmp_path / "data")
    lic = tmp_path / "LICENSE"
    lic.write_text("MIT\n")
    out = tmp_path / "b.zip"
    m = build_bundle(styles, "0.1.0", out, extra_files={"LICENSE": lic}, tools=TOOLS, progress=False)
    assert m["files"]["LICENSE"]["size"] == 4 and verify_bundle(out) == []
    with pytest.raises(LivestyleError, match="'..' in path"):
        build_bundle(styles, "0.1.0", out, extra_files={"../LICENSE": lic}, tools=TOOLS, progress=False)
    with pytest.raises(LivestyleError, match="not a plain version"):
        build_bundle(styles, "../1", out, tools=TOOLS, progress=False)


def test_release_builds_every_style_in_params(tmp_path):
    import yaml

    from livestyle.release.bundle import ReleaseConfig, release

    fake_styles(tmp_path / "data")
    summary = tmp_path / "data" / "prepared.json"
    summary.write_text(json.dumps({"source": "skimage.data", "train_images": 40}))
    params = yaml.safe_load(f"""
styles:
  mosaic: {{image: data/styles/mosaic.png, credit: "Mosaic, unknown artist", license: CC0}}
  sketch: {{image: data/styles/sketch.png, network: {{res_blocks: 2}}}}
network: {{res_blocks: 3, width: 16}}
release: {{version: "0.3.0", out_dir: {tmp_path / "rel"}, data_summary: {summary}}}
""")
    path = release(params, tmp_path / "data", progress=False)
    assert path == tmp_path / "rel" / "livestyle-0.3.0.zip" == ReleaseConfig.from_params(params["release"]).bundle_path
    assert verify_bundle(path) == []
    with zipfile.ZipFile(path) as zf:
        mosaic = zf.read("mosaic/MODEL_CARD.md").decode()
        sketch = json.loads(zf.read("sketch/model_card.json"))
    assert "Mosaic, unknown artist" in mosaic and "| license | CC0 |" in mosaic
    assert "| source | skimage.data |" in mosaic  # training data from prepare's summary
    assert sketch["architecture"]["network"]["res_blocks"] == 2 and sketch["architecture"]["network"]["width"] == 16


@pytest.mark.parametrize("section, problem", [
    ({}, "release.version is missing"),
    ({"version": 1.1}, "must be a quoted string"),
    ({"version": "1.0", "outdir": "x"}, "unknown key"),
    ({"version": "a/b"}, "not a plain version"),
])
def test_release_config_errors(section, problem):
    from livestyle.release.bundle import ReleaseConfig

    with pytest.raises(LivestyleError, match=problem):
        ReleaseConfig.from_params(section)


@pytest.mark.slow
def test_real_mlpackage_survives_the_bundle(tmp_path):
    """A Core ML package stored as a tree comes back as one coremltools opens unchanged."""
    ct = pytest.importorskip("coremltools")
    import numpy as np
    from coremltools.converters.mil import Builder as mb

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 3, 8, 8))], opset_version=ct.target.iOS16)
    def prog(x):
        return mb.conv(x=x, weight=np.full((4, 3, 1, 1), 0.5, np.float32), name="stylized")

    art = fake_style(tmp_path / "data", "real")
    shutil.rmtree(art.models["mlpackage"])
    model = ct.convert(prog, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS16)
    model.save(str(art.models["mlpackage"]))
    record_export(art.export_dir, "real", art.weights)  # as a real export: the record after the models
    out = tmp_path / "b.zip"
    build_bundle({"real": art}, "0.1.0", out, tools=TOOLS, progress=False)
    assert verify_bundle(out) == []
    unpacked = extract_bundle(out, tmp_path / "unpacked") / "real" / "real.mlpackage"
    before = ct.utils.load_spec(str(art.models["mlpackage"]))
    after = ct.utils.load_spec(str(unpacked))
    assert after.SerializeToString() == before.SerializeToString()
    orig_files = sorted(p.relative_to(art.models["mlpackage"]).as_posix() for p in art.models["mlpackage"].rglob("*") if p.is_file())
    assert sorted(p.relative_to(unpacked).as_posix() for p in unpacked.rglob("*") if p.is_file()) == orig_files
