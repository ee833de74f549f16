from pathlib import Path

import numpy as np
import pytest

from livestyle.images import load_rgb
from livestyle.model import procedural


@pytest.mark.parametrize("name", sorted(procedural.BUILTIN))
def test_committed_style_images_are_what_the_code_makes(name):
    # the default styles need no file from outside: the PNGs are this generator's output
    committed = load_rgb(Path("data/styles") / f"{name}.png")
    assert np.array_equal(committed, procedural.render(name))


@pytest.mark.parametrize("name", sorted(procedural.BUILTIN))
def test_styles_are_deterministic_and_textured(name):
    a, b = procedural.render(name, seed=1), procedural.render(name, seed=1)
    assert np.array_equal(a, b)
    assert a.shape == (512, 512, 3) and a.dtype == np.uint8
    assert a.std() > 10  # not a flat image
    assert not np.array_equal(a, procedural.render(name, seed=2))


def test_mosaic_is_colourful_and_sketch_is_nearly_grey():
    mosaic, sketch = procedural.render("mosaic").astype(int), procedural.render("sketch").astype(int)
    chroma = lambda im: np.abs(im - im.mean(axis=2, keepdims=True)).mean()
    assert chroma(mosaic) > 20 > 5 > chroma(sketch)
