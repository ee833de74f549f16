"""livestyle.images.save_figure: the one figure saver, atomic and byte-for-byte repeatable."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from livestyle.images import save_figure


def _figure():
    fig, ax = plt.subplots(figsize=(2, 1.5))
    ax.plot([0, 1, 2], [2, 0, 1])
    return fig


def test_a_png_figure_repeats_its_bytes_and_a_jpg_name_gets_jpeg(tmp_path):
    open_before = set(plt.get_fignums())
    a, b = save_figure(_figure(), tmp_path / "a.png", dpi=50), save_figure(_figure(), tmp_path / "b.png", dpi=50)
    assert a.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and a.read_bytes() == b.read_bytes()
    assert b"Software" not in a.read_bytes()  # no matplotlib version in the file
    assert save_figure(_figure(), tmp_path / "c.jpg").read_bytes()[:3] == b"\xff\xd8\xff"
    assert set(plt.get_fignums()) == open_before  # each figure closed once saved
