"""DVC stage: one release bundle with every style, plus a contact sheet of all styles."""

from pathlib import Path

from livestyle.config import load_params
from livestyle.errors import run_cli
from livestyle.media.preview import contact_sheet
from livestyle.release.bundle import release


def main(argv):
    params = load_params()
    styles = sorted(params["styles"])
    posters = {s: p for s in styles for p in sorted(Path("data/preview", s, "media").glob("*_poster.png"))[:1]}
    frames = sorted(Path("data/preview", styles[0], "media").glob("*_frame.png"))
    if posters and frames:
        contact_sheet(posters, frames[0], Path(params["release"]["out_dir"]) / "contact_sheet.png")
    print(release(params))


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
