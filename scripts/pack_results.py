"""Pack a results folder into a few tar files for a transfer that caps file count and size.

    python scripts/pack_results.py SRC DST [--max-mib 15] [--max-files 8]

The device machine returns at most 8 files of 16 MiB from $OUT, two folders deep: the
runs that scripts/gpu_ablate.py copied under SRC go into DST/pack_N.tar, greedily by
size; a run's images are left out (weights, logs and JSON are what scoring needs).
"""

from __future__ import annotations

import argparse
import tarfile
from pathlib import Path

KEEP = (".h5", ".json", ".csv", ".log")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--max-mib", type=float, default=15)
    ap.add_argument("--max-files", type=int, default=8)
    args = ap.parse_args()
    src, dst = Path(args.src), Path(args.dst)
    files = [f for f in src.rglob("*") if f.is_file() and f.suffix in KEEP]
    # a finished run's checkpoint repeats its final weights
    files = sorted((f for f in files if not (f.parent.name == "checkpoint" and (f.parent.parent / f.name).exists())),
                   key=lambda f: -f.stat().st_size)
    limit = args.max_mib * 2**20
    packs: list[list[Path]] = []
    sizes: list[int] = []
    for f in files:  # first fit, largest first
        size = f.stat().st_size
        i = next((i for i, s in enumerate(sizes) if s + size <= limit), None)
        if i is None:
            if len(packs) == args.max_files:
                print(f"left out (no room): {f}")
                continue
            packs.append([])
            sizes.append(0)
            i = len(packs) - 1
        packs[i].append(f)
        sizes[i] += size
    dst.mkdir(parents=True, exist_ok=True)
    for i, pack in enumerate(packs):
        with tarfile.open(dst / f"pack_{i}.tar", "w") as tar:
            for f in pack:
                tar.add(f, arcname=str(f.relative_to(src)))
        print(f"pack_{i}.tar: {len(pack)} files, {sizes[i] / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
