import json
import zipfile

import numpy as np
import pytest
from PIL import Image

from livestyle.errors import LivestyleError
from livestyle.model.data import DataConfig, classify, heldout_frames, prepare


def _photo(seed, h=96, w=128):
    rng = np.random.default_rng(seed)
    base = rng.uniform(0, 255, (h // 8, w // 8, 3))
    return np.asarray(Image.fromarray(base.astype(np.uint8)).resize((w, h), Image.BILINEAR))


@pytest.fixture
def coco_folder(tmp_path):
    root = tmp_path / "train2017"
    (root / "sub").mkdir(parents=True)
    for i in range(6):
        Image.fromarray(_photo(i)).save(root / f"{i:012d}.jpg", quality=95)
    Image.fromarray(_photo(9)[..., 0]).save(root / "gray.jpg")  # grayscale
    Image.fromarray(_photo(10, 20, 20)).save(root / "sub" / "tiny.png")  # tiny
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")  # unreadable
    return root


def _cfg(coco, **kw):
    return DataConfig(coco=str(coco), image_size=32, crops_per_image=2, heldout_fraction=0.2, heldout_min=1, heldout_size=48, min_side=32, **kw)


def test_coco_folder_skips_and_counts_bad_images(coco_folder, tmp_path):
    stats = prepare(_cfg(coco_folder), tmp_path / "out")
    assert stats["skipped"] == {"grayscale": 1, "tiny": 1, "unreadable": 1}
    assert stats["train_images"] + stats["heldout_images"] == 6
    assert stats["heldout_images"] >= 1
    crops = sorted((tmp_path / "out" / "train").glob("*.png"))
    assert len(crops) == stats["train_images"] * 2
    assert np.asarray(Image.open(crops[0])).shape == (32, 32, 3)
    assert json.loads((tmp_path / "out" / "prepare.json").read_text()) == stats


def test_coco_zip_reads_the_same_images(coco_folder, tmp_path):
    archive = tmp_path / "train2017.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for p in sorted(coco_folder.rglob("*")):
            if p.is_file():
                zf.write(p, f"train2017/{p.relative_to(coco_folder)}")
    a = prepare(_cfg(coco_folder), tmp_path / "a")
    b = prepare(_cfg(archive), tmp_path / "b")
    assert a == b


def test_prepare_is_deterministic(coco_folder, tmp_path):
    prepare(_cfg(coco_folder), tmp_path / "a")
    prepare(_cfg(coco_folder), tmp_path / "b")
    for pa in sorted((tmp_path / "a").rglob("*.png")):
        pb = tmp_path / "b" / pa.relative_to(tmp_path / "a")
        assert np.array_equal(np.asarray(Image.open(pa)), np.asarray(Image.open(pb)))


def test_builtin_set_works_offline(tmp_path):
    stats = prepare(DataConfig(builtin=("astronaut", "camera", "coffee", "chelsea", "sklearn:china.jpg"), image_size=32,
                               crops_per_image=1, heldout_min=1), tmp_path / "out")
    assert stats["skipped"]["grayscale"] == 1  # camera
    assert stats["train_images"] >= 3 and stats["heldout_images"] >= 1


def test_bad_coco_path_is_one_clear_error(tmp_path):
    with pytest.raises(LivestyleError, match="neither a folder nor a zip"):
        prepare(_cfg(tmp_path / "nope"), tmp_path / "out")


def test_no_usable_image_keeps_previous_output(tmp_path):
    root = tmp_path / "grays"
    root.mkdir()
    Image.fromarray(_photo(1)[..., 0]).save(root / "g.png")
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("previous")
    with pytest.raises(LivestyleError, match="no usable training image"):
        prepare(_cfg(root), out)
    assert (out / "keep.txt").read_text() == "previous"


def test_classify_rgb_encoded_grey_as_grayscale():
    grey = np.repeat(_photo(3)[..., :1], 3, axis=2)
    assert classify(grey, 16) == "grayscale"
    assert classify(_photo(3), 16) is None
    assert classify(_photo(3, 10, 10), 16) == "tiny"


def test_heldout_frames_have_the_model_size(coco_folder, tmp_path):
    prepare(_cfg(coco_folder), tmp_path / "out")
    frames = heldout_frames(tmp_path / "out" / "heldout", 53, 30, 2)
    assert all(f.shape == (53, 30, 3) and f.dtype == np.uint8 for f in frames)
