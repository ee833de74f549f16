"""livestyle.measure.quality (the metrics), the `quality@S` stage's work, and its DVC metrics file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from livestyle.errors import LivestyleError
from livestyle.images import load_rgb, save_png
from livestyle.measure import quality as q

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


def painting(h=96, w=128, seed=0) -> np.ndarray:
    """A stroke-like texture: random oriented blobs of a few saturated colours."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.zeros((h, w, 3))
    palette = np.array([[230, 60, 30], [30, 80, 200], [250, 210, 40], [20, 20, 20]], float)
    for _ in range(60):
        cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(3, 9)
        mask = np.sin((xx - cx) * 0.9 + (yy - cy) * 0.4) > 0.2
        mask &= (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
        img[mask] = palette[rng.integers(len(palette))]
    return img.astype(np.uint8)


def photo(h=64, w=80) -> np.ndarray:
    """Smooth shapes: a gradient sky, a disc and a bar (structure, little texture)."""
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    img = np.stack([80 + 120 * yy, 120 + 60 * xx, 200 - 100 * yy], -1)
    img[(yy - 0.4) ** 2 + (xx - 0.5) ** 2 < 0.04] = [200, 90, 40]
    img[int(h * 0.7) : int(h * 0.8), 5:-5] = [40, 40, 40]
    return img.astype(np.uint8)


def test_identical_images_score_zero():
    p = painting()
    assert q.texture_distance(p, p) == pytest.approx(0, abs=1e-9)
    assert q.colour_distance(p, p) == pytest.approx(0, abs=1e-9)
    assert q.content_distance(p, p) == pytest.approx(0, abs=1e-9)
    ph = photo()
    assert q.content_distance(ph, ph) == pytest.approx(0, abs=1e-9)


def test_texture_of_the_painting_beats_a_flat_image():
    big = painting(96, 256, seed=1)
    crop = big[:, 100:228]  # a piece of the same painting, at its scale (same short side)
    flat = np.full_like(crop, big.reshape(-1, 3).mean(0).astype(np.uint8))  # same mean colour, no texture
    d_crop = q.texture_distance(crop, big)
    d_flat = q.texture_distance(flat, big)
    assert np.isfinite(d_crop) and d_crop < d_flat / 5


def test_colour_distance_grows_with_a_colour_shift():
    p = painting()
    d10, d40 = (q.colour_distance(p, np.clip(p.astype(int) + k, 0, 255)) for k in (10, 40))
    assert 1 < d10 < d40
    assert q.srgb_to_lab(np.array([[[255, 255, 255]]]))[0, 0] == pytest.approx([100, 0, 0], abs=0.01)
    assert q.srgb_to_lab(np.array([[[255, 0, 0]]]))[0, 0] == pytest.approx([53.24, 80.09, 67.20], abs=0.05)


def test_a_pure_lab_shift_reads_its_length(monkeypatch):
    # with Lab given directly, a cloud moved by (6, 8, 0) (|d| = 10) scores about 10
    monkeypatch.setattr(q, "srgb_to_lab", lambda x: np.asarray(x, np.float64))
    lab = np.random.default_rng(0).normal(50, 15, (64, 64, 3))
    assert q.colour_distance(lab, lab + [6.0, 8.0, 0.0], projections=256) == pytest.approx(10, rel=0.1)


def test_content_distance_sees_lost_structure_not_colour():
    ph = photo()
    recoloured = (255 - ph.astype(int)) // 2 + 60  # new colours, same shapes (inverted luminance)
    noise = np.random.default_rng(0).integers(0, 256, ph.shape).astype(np.uint8)
    brighter = np.clip(ph.astype(int) * 0.8 + 40, 0, 255)  # same structure, other contrast
    assert q.content_distance(brighter, ph) < 0.02
    assert q.content_distance(noise, ph) > 0.5
    assert q.content_distance(recoloured, ph) > 0.5  # inverted structure (up to 2; flat patches count as kept)
    # a stylized image of another size is resized to the photo
    assert q.content_distance(q.resample(ph, 128, 160), ph) < 0.05


def test_determinism_and_seed():
    p, other = painting(), painting(seed=5)
    assert q.texture_distance(other, p, seed=0) == q.texture_distance(other, p, seed=0)
    assert q.colour_distance(other, p, seed=0) == q.colour_distance(other, p, seed=0)
    assert q.texture_distance(other, p, seed=0) != q.texture_distance(other, p, seed=1)
    filters = q.texture_filters(0)
    assert [f.shape for f in filters] == [(3, 3, 3, 64), (3, 3, 64, 128), (3, 3, 128, 256), (3, 3, 256, 256)]
    assert all(abs(float(f.reshape(-1, f.shape[-1]).mean(0).max())) < 1e-6 for f in filters)  # zero mean per filter


def test_texture_compares_at_the_stylized_scale():
    p = painting(96, 128)
    big = p.repeat(2, axis=0).repeat(2, axis=1)  # the same painting, scanned at twice the size
    assert q.texture_distance(p, big) == pytest.approx(0, abs=1e-6)
    assert q.texture_distance(p[:48, :64], big) > 0.2 * q.texture_distance(p, painting(96, 128, seed=7))
    with pytest.raises(ValueError, match="38 px"):
        q.texture_grams(np.zeros((30, 64, 3), np.uint8))


def test_resample_keeps_constants_and_shapes():
    flat = np.full((50, 70, 3), 123, np.uint8)
    for hw in ((25, 35), (100, 140), (50, 70)):
        out = q.resample(flat, *hw)
        assert out.shape == (*hw, 3) and np.allclose(out, 123, atol=1e-3)
    assert q.resample_short_side(flat, 20).shape == (20, 28, 3)
    ramp = np.arange(8, dtype=np.float32)[:, None, None] * np.ones((1, 3, 1))
    assert q.resample(ramp, 4, 3)[:, 0, 0] == pytest.approx([0.5, 2.5, 4.5, 6.5])  # area means of pairs


def test_score_has_the_photo_baseline():
    p, ph = painting(), photo()
    stylized = np.clip(ph.astype(int) // 2 + p[:64, :80] // 2, 0, 255).astype(np.uint8)
    s = q.score(stylized, ph, p, references={"reference": p[:64, :80]})
    assert set(s) == {"texture", "colour", "content", "flat_area", "texture_flat", "photo", "reference"}
    assert set(s["photo"]) == set(s["reference"]) == {"texture", "colour", "content", "flat_area"}
    assert s["texture_flat"] == pytest.approx(q.texture_distance(np.full_like(ph, 90), p))  # any flat image
    assert s["photo"]["content"] == 0 and s["photo"]["texture"] > s["texture"]
    assert s["reference"]["texture"] < s["photo"]["texture"]
    table = q.format_table(s, columns=("reference",))
    assert "texture" in table and "stylized/photo" in table.splitlines()[0] and "flat image" in table.splitlines()[-1]
    m = q.mean_scores([s, {**s, "texture": s["texture"] + 2}])
    assert m["texture"] == pytest.approx(s["texture"] + 1) and m["photo"] == pytest.approx(s["photo"])


def test_flat_area_finds_a_painted_blob_and_ignores_texture_and_small_flat_spots():
    rng = np.random.default_rng(0)
    textured = rng.integers(0, 256, (120, 200, 3)).astype(np.uint8)  # a stroke-like busy frame
    assert q.flat_area(textured) == 0.0
    blob = textured.copy()
    blob[10:70, 20:120] = (250, 245, 230)  # a cream blob over a quarter of the frame
    # the patch loses a half window at each edge to the std window
    assert 0.6 * 60 * 100 / blob.size * 3 < q.flat_area(blob) <= 60 * 100 / (120 * 200)
    speck = textured.copy()
    speck[5:15, 5:15] = 128  # 10x10 px: under FLAT_MIN_PATCH of the frame once the window trims it
    assert q.flat_area(speck) == 0.0
    assert q.flat_area(np.full((40, 60, 3), 200, np.uint8)) == 1.0  # all flat


@pytest.mark.slow
def test_lossnet_distances_match_the_training_loss_terms():
    from livestyle.config import LossConfig

    cfg = LossConfig(content_layers=("block1_conv2",), style_layers=("block1_conv2", "block2_conv2"))
    p, ph = painting(), photo()
    same = q.lossnet_distances(ph, ph, p, cfg)
    assert same["lossnet_content"] == pytest.approx(0, abs=1e-6) and same["lossnet_style"] > 0
    s = q.score(ph, ph, p, loss_cfg=cfg)
    assert s["photo"]["lossnet_style"] == pytest.approx(same["lossnet_style"], rel=1e-5)


# ---------------------------------------------------------------- the stage


def _stage_tree(root: Path, references: bool = True, weights: bool = False) -> dict:
    """A tiny project: held-out photos, a painting, params (and untrained weights)."""
    for i in range(2):
        save_png(root / "data/prepared/heldout" / f"{i:04d}.png", np.roll(photo(72, 90), 10 * i, axis=1))
    save_png(root / "data/styles/p.png", painting())
    inputs = root / "data/quality_inputs"
    save_png(inputs / "extra.png", photo(80, 64))
    save_png(inputs / "peer.png", painting(80, 64, seed=3))
    net = {"res_blocks": 1, "width": 4}
    if weights:
        from livestyle.config import NetworkConfig
        from livestyle.model.network import build_transformer

        (root / "data/train/p").mkdir(parents=True)
        build_transformer(NetworkConfig(**net), 32, 32).save_weights(root / "data/train/p/transformer.weights.h5")
    (root / "data/preview/p").mkdir(parents=True)
    (root / "data/preview/p/preview.json").write_text(json.dumps({"warp_error_ratio": 1.25}))
    quality = {"photos_max": 1, "max_side": 64, "seed": 0, "lossnet": False, "inputs_dir": "data/quality_inputs", "sky_probes": 3,
               "extra_photos": ["data/quality_inputs/extra.png"],
               "references": {"p": [{"photo": "data/quality_inputs/extra.png", "image": "data/quality_inputs/peer.png"}]} if references else {}}
    params = {"styles": {"p": {"image": "data/styles/p.png"}}, "network": net, "quality": quality}
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    return params


def _warm_stylizer(weights, net):
    """Stands in for the Keras transformer (fast tests): a warm, flattened photo."""
    assert weights == Path("data/train/p/transformer.weights.h5") and net.width == 4
    return lambda batch: np.asarray(batch, np.float32) * [0.6, 0.45, 0.3] + 60


@pytest.mark.parametrize("keras_weights", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_stage_writes_metrics_dvc_reads_and_a_sheet(tmp_path, monkeypatch, keras_weights, capsys):
    from stages import quality as stage

    _stage_tree(tmp_path, weights=keras_weights)
    monkeypatch.chdir(tmp_path)
    if not keras_weights:
        monkeypatch.setattr(stage, "stylizer", _warm_stylizer)
    assert stage.main(["p"]) in (None, 0)
    out = capsys.readouterr().out
    assert "flat area " in out and "synthetic skies blotted " in out  # the blob figures, in the line a user reads
    # the path dvc.yaml declares as the stage's metrics file, for this style
    do = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["quality"]["do"]
    (metrics_path,) = [next(iter(m)) for m in do["metrics"]]
    assert do["metrics"][0][metrics_path] == {"cache": False}
    result = json.loads(Path(metrics_path.replace("${key}", "p")).read_text())
    assert result["photos"] == 2 and set(result["per_photo"]) == {"0000.png", "extra.png"}
    for key in (*q.METRICS, q.FLAT_METRIC):
        assert np.isfinite(result["mean"][key]) and np.isfinite(result["mean"]["photo"][key])
    assert "reference" in result["per_photo"]["extra.png"] and "reference" not in result["per_photo"]["0000.png"]
    assert result["flicker_ratio"] == 1.25
    skies = result["sky_probes"]
    assert skies["count"] == 3 and f"blotted {skies['blotted']}/3" in out
    if not keras_weights:
        assert skies["blotted"] == 0  # the warm filter paints no blob (an untrained network paints all flat)
    sheet = load_rgb(Path(do["outs"][0].replace("${key}", "p")))
    assert sheet.shape[0] > 2 * 240 and sheet.shape[1] > 3 * 200  # two rows, four columns


def test_stage_names_a_missing_optional_file(tmp_path, monkeypatch, capsys):
    from livestyle.errors import run_cli
    from stages import quality as stage

    params = _stage_tree(tmp_path)
    params["quality"]["references"]["p"][0]["image"] = "data/quality_inputs/nope.png"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    assert run_cli(stage.main, ["p"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == "error: params.yaml: quality.references.p[0].image: data/quality_inputs/nope.png does not exist"
    params["quality"]["extra_photos"] = [str(SHARED / "anywhere.jpg")]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(LivestyleError, match=r"quality.extra_photos\[0\].*not under data/quality_inputs/"):
        stage.main(["p"])


def test_dvc_yaml_lists_what_the_stage_reads():
    do = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["quality"]["do"]
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    declared = {k.split(".", 1)[1] for k in do["params"] if k.startswith("quality.")}
    assert declared == set(params["quality"])  # every key of the section, nothing else
    deps = set(do["deps"])
    assert livestyle_imports("stages/quality.py") <= deps
    assert "data/preview/${key}/preview.json" in deps and "${quality.inputs_dir}" in deps


def livestyle_imports(module: str) -> set[str]:
    """The module and every livestyle module it imports, directly or not (lazy imports too)."""
    import ast

    seen, todo = set(), [module]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for node in ast.walk(ast.parse((ROOT / path).read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("livestyle."):
                # a module (livestyle.model.network) or modules of a package (livestyle.model)
                for name in [node.module, *(f"{node.module}.{a.name}" for a in node.names)]:
                    if (ROOT / (path := name.replace(".", "/") + ".py")).is_file():
                        todo.append(path)
    return seen


@pytest.mark.skipif(not (SHARED / "reference/peers").is_dir(), reason="shared peer images not present")
def test_peer_output_beats_the_plain_photo():
    ph = load_rgb(SHARED / "data/content/chicago.jpg")[::2, ::2]
    peer = load_rgb(SHARED / "reference/peers/lengstrom_chicago_the_scream.jpg")[::2, ::2]
    scream = load_rgb(SHARED / "data/styles/the_scream.jpg")
    s = q.score(peer, ph, scream)
    assert s["texture"] < 0.2 * s["photo"]["texture"] and s["colour"] < 0.5 * s["photo"]["colour"]
    assert 0.05 < s["content"] < 0.5


@pytest.mark.parametrize("name,magic", [("sheet.png", b"\x89PNG"), ("sheet.jpg", b"\xff\xd8\xff")])
def test_a_comparison_sheet_is_written_in_the_format_its_name_says(tmp_path, name, magic):
    from livestyle.images import labelled_sheet

    rows = [[("painting", np.full((40, 30, 3), 200, np.uint8)), ("ours\ntex 1.0", np.zeros((30, 50, 3), np.uint8))]]
    out = labelled_sheet(rows, tmp_path / name, thumb_height=32)
    assert out.read_bytes()[:len(magic)] == magic
    assert Image.open(out).size[0] > 80  # both cells drawn side by side


def test_a_filter_that_blots_dark_clouds_is_counted_on_the_synthetic_skies(tmp_path, monkeypatch):
    from stages import quality as stage

    params = _stage_tree(tmp_path)
    params["quality"]["sky_probes"] = 8
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)

    def blotting_stylizer(weights, net):  # a warm filter that paints every dark region one flat colour
        warm = _warm_stylizer(weights, net)
        return lambda b: np.where((np.asarray(b) @ [0.299, 0.587, 0.114] < 110)[..., None], 10.0, warm(b))

    monkeypatch.setattr(stage, "stylizer", blotting_stylizer)
    stage.main(["p"])
    skies = json.loads(Path("data/quality/p/quality.json").read_text())["sky_probes"]
    assert skies["count"] == 8 and skies["blotted"] >= 2 and 0 < skies["mean_flat_area"] < 0.5
