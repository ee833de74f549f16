"""Training throughput: images/s of the full train step (transformer + loss network +
backward + Adam) at 256x256, for each batch size. Backend from KERAS_BACKEND.

    KERAS_BACKEND=jax python scripts/bench_train.py --batch 4 16 --steps 50
Prints one line per configuration and a JSON summary.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, nargs="+", default=[4, 16])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--precision", nargs="+", default=["fp32", "mixed"])
    ap.add_argument("--style", default="data/styles/mosaic.png")
    args = ap.parse_args()

    import keras

    from livestyle.config import StyleConfig, TrainConfig
    from livestyle.train import build_trainer

    results = []
    for precision in args.precision:
        for batch in args.batch:
            keras.mixed_precision.set_global_policy("float32")
            keras.backend.clear_session()
            train = TrainConfig(batch_size=batch, image_size=args.size, mixed_precision=precision == "mixed")
            cfg = StyleConfig(name="bench", image=args.style, train=train)
            trainer, _ = build_trainer(cfg)
            x = np.random.default_rng(0).uniform(0, 255, (batch, args.size, args.size, 3)).astype(np.float32)
            for _ in range(args.warmup):
                trainer.train_on_batch(x)
            # train_on_batch returns host floats: each step is synchronised
            t0 = time.perf_counter()
            for _ in range(args.steps):
                logs = trainer.train_on_batch(x, return_dict=True)
            dt = time.perf_counter() - t0
            ips = batch * args.steps / dt
            row = {"backend": keras.backend.backend(), "precision": precision, "batch": batch, "size": args.size,
                   "images_per_s": round(ips, 1), "ms_per_step": round(1000 * dt / args.steps, 2),
                   "loss_finite": bool(np.isfinite(float(logs["loss"])))}
            print(row, flush=True)
            results.append(row)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
