"""Score trained filters against a peer's published output of the same photo and painting.

    python scripts/peer_comparison.py OUT.png --photo chicago.jpg \
        --style the_scream PAINTING PEER_IMAGE LABEL=WEIGHTS.h5 [LABEL=WEIGHTS.h5 ...] \
        [--style udnie ...]

One row per style: painting | photo | peer | each filter, captioned with the independent
figures of livestyle.measure.quality.score (texture, colour, content, as the quality stage and
the sweep compute them); the same figures are printed as a markdown table. PEER "-"
leaves the peer out (photos it never published). Filters use params.yaml's network
settings (--profile gpu for GPU-trained weights), input levels included; --norm
instance for instance-norm weights, --input-levels 0 255 to see a filter without the
level mapping, --set network.width=16 for any other key.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np

from livestyle import markdown
from livestyle.config import NetworkConfig, load_params, with_overrides
from livestyle.convert.export import stylizer
from livestyle.images import labelled_sheet, load_rgb
from livestyle.measure import quality


def stylize(weights: str, photo: np.ndarray, net: NetworkConfig) -> np.ndarray:
    return np.clip(stylizer(Path(weights), net)(photo[None])[0], 0, 255).astype(np.uint8)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--photo", required=True)
    ap.add_argument("--profile", default=None, help="params.yaml profile whose network settings apply (gpu for GPU-trained weights)")
    ap.add_argument("--norm", default=None, help="batch | instance (default: params.yaml)")
    ap.add_argument("--input-levels", type=float, nargs=2, default=None, metavar=("LO", "HI"),
                    help="inference input levels (default: params.yaml network.input_levels)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="dotted params override for the weights, e.g. network.width=16")
    ap.add_argument("--style", nargs="+", action="append", required=True, metavar="NAME PAINTING PEER LABEL=WEIGHTS")
    args = ap.parse_args()
    photo = load_rgb(args.photo)
    net = NetworkConfig.from_params(with_overrides(load_params(profile=args.profile), args.set)["network"])
    net = dataclasses.replace(net, **({"norm": args.norm} if args.norm else {}),
                              **({"input_levels": tuple(args.input_levels)} if args.input_levels else {}))
    rows, figures = [], []
    for name, painting_path, peer_path, *filters in args.style:
        painting = load_rgb(painting_path)
        cells = [(f"{name}\n(painting)", painting)]
        # "-": no peer output of this photo (a held-out photo of your own)
        candidates = [("photo", photo)] + ([("peer", load_rgb(peer_path))] if peer_path != "-" else [])
        candidates += [(label, stylize(w, photo, net)) for label, w in (f.split("=", 1) for f in filters)]
        # quality.score: the figures the quality stage and the sweep report (the painting at
        # each image's short side), so numbers here and in `dvc metrics show` agree
        scored = quality.score(photo, photo, painting, references={label: image for label, image in candidates[1:]})
        for label, image in candidates:
            f = scored["photo"] if label == "photo" else scored[label]
            figures.append([name, label, f"{f['texture']:.2f}", f"{f['colour']:.2f}", f"{f['content']:.3f}"])
            cells.append((f"{label}\ntex {f['texture']:.2f}  col {f['colour']:.2f}  cont {f['content']:.3f}", image))
        rows.append(cells)
    labelled_sheet(rows, args.out, thumb_height=200)
    print(markdown.table(["style", "image", "texture", "colour", "content"], figures, align="llrrr"))


if __name__ == "__main__":
    main()
