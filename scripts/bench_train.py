"""Training throughput (images/s) for each precision and batch size. Backend from KERAS_BACKEND.

step: the train step alone (transformer + loss network + backward + Adam) on one
batch already in memory, through train_on_batch.
real (--real-loop): train_style itself, as `dvc repro` runs it, on a small prepared
folder of synthetic photos made here: batches, logs, checkpoints and samples included;
the figure is speed.json's images_per_s_median (the first, compiling, call excluded).

    KERAS_BACKEND=jax python scripts/bench_train.py --batch 4 16 --steps 50
    KERAS_BACKEND=jax python scripts/bench_train.py --real-loop --batch 16 --size 256 --steps 400 --precision mixed
Prints one line per measurement and a JSON summary (also written to --json as it goes).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np


def synthetic_prepared(root: Path, size: int, count: int, seed: int = 0) -> Path:
    """A prepare-stage folder: `count` training crops of size x size and two held-out
    photos, smooth colour fields with edges and grain (no download, no skimage)."""
    from livestyle.images import save_png

    rng = np.random.default_rng(seed)

    def photo(h, w):
        yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
        img = np.zeros((h, w, 3))
        for _ in range(6):
            f, phase, colour = rng.uniform(1, 12, 2), rng.uniform(0, 6.3), rng.uniform(-60, 60, 3)
            img += np.sin(f[0] * 6.3 * yy + f[1] * 6.3 * xx + phase)[..., None] * colour
        img += (yy[..., None] < rng.uniform(0.3, 0.7)) * rng.uniform(-50, 50, 3)  # an edge
        return np.clip(img + 128 + rng.normal(0, 6, img.shape), 0, 255).astype(np.uint8)

    (root / "train").mkdir(parents=True)
    (root / "heldout").mkdir()
    for i in range(count):
        save_png(root / "train" / f"{i:06d}.png", photo(size, size))
    for i in range(2):
        save_png(root / "heldout" / f"{i:04d}.png", photo(max(size, 256), max(size, 256) * 4 // 3))
    return root


def _loss(args):
    from livestyle.config import LossConfig

    return LossConfig(network=args.lossnet) if args.lossnet else LossConfig()


def bench_step(args, batch: int, precision: str) -> dict:
    import keras

    from livestyle.config import StyleConfig, TrainConfig
    from livestyle.model.train import build_trainer

    train = TrainConfig(batch_size=batch, image_size=args.size, mixed_precision=precision == "mixed")
    trainer, _ = build_trainer(StyleConfig(name="bench", image=args.style, loss=_loss(args), train=train))
    x = np.random.default_rng(0).uniform(0, 255, (batch, args.size, args.size, 3)).astype(np.float32)
    for _ in range(args.warmup):
        trainer.train_on_batch(x)
    # train_on_batch returns host floats: each step is synchronised
    t0 = time.perf_counter()
    for _ in range(args.step_steps):
        logs = trainer.train_on_batch(x, return_dict=True)
    dt = time.perf_counter() - t0
    return {"images_per_s": round(batch * args.step_steps / dt, 1), "ms_per_step": round(1000 * dt / args.step_steps, 2),
            "loss_finite": bool(np.isfinite(float(logs["loss"])))}


def bench_real(args, batch: int, precision: str, steps_per_call: int, prepared: Path, out: Path) -> dict:
    from livestyle.config import StyleConfig, TrainConfig
    from livestyle.model.train import train_style

    train = TrainConfig(steps=args.steps, batch_size=batch, image_size=args.size, mixed_precision=precision == "mixed",
                        checkpoint_every=args.checkpoint_every, sample_every=args.sample_every, loop=args.loop,
                        steps_per_call=steps_per_call)
    t0 = time.perf_counter()
    metrics = train_style(StyleConfig(name="bench", image=args.style, loss=_loss(args), train=train), prepared, out)
    wall = time.perf_counter() - t0
    return {"images_per_s": round(metrics["images_per_s_median"], 1), "loop": metrics["loop"], "steps": args.steps,
            "steps_per_call": steps_per_call, "wall_s": round(wall, 1),
            "loss_finite": bool(np.isfinite(metrics["final"]["loss"]))}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, nargs="+", default=[4, 16])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--steps", type=int, default=50, help="real loop: its train.steps; step only: timed steps")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--precision", nargs="+", default=["fp32", "mixed"])
    ap.add_argument("--style", default="data/styles/mosaic.png")
    ap.add_argument("--lossnet", default=None, help="loss.network (default: LossConfig's); all are VGG blocks 1-4")
    ap.add_argument("--real-loop", action="store_true", help="also time train_style itself")
    ap.add_argument("--loop", default="auto", help="real loop: train.loop (auto | keras | jax)")
    ap.add_argument("--steps-per-call", type=int, nargs="+", default=[50], help="real loop: one run per value")
    ap.add_argument("--checkpoint-every", type=int, default=200)
    ap.add_argument("--sample-every", type=int, default=200)
    ap.add_argument("--images", type=int, default=256, help="real loop: synthetic training crops")
    ap.add_argument("--json", default=None, help="write the summary here after every measurement")
    args = ap.parse_args()
    args.step_steps = min(args.steps, 50) if args.real_loop else args.steps

    import keras

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        prepared = synthetic_prepared(Path(tmp) / "prepared", args.size, args.images) if args.real_loop else None
        for precision in args.precision:
            for batch in args.batch:
                runs = [("step", None)] + [("real", n) for n in args.steps_per_call if args.real_loop]
                for mode, steps_per_call in runs:
                    keras.mixed_precision.set_global_policy("float32")
                    keras.backend.clear_session()
                    row = {"mode": mode, "backend": keras.backend.backend(), "precision": precision, "batch": batch,
                           "size": args.size}
                    if mode == "step":
                        row.update(bench_step(args, batch, precision))
                    else:
                        out = Path(tmp) / f"train_{precision}_{batch}_{steps_per_call}"
                        row.update(bench_real(args, batch, precision, steps_per_call, prepared, out))
                    print(row, flush=True)
                    results.append(row)
                    if args.json:
                        Path(args.json).write_text(json.dumps(results, indent=1))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
