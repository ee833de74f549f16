"""Train one style: resumable training loop, with logs and samples.

Two loops, one result format (train.loop): Keras' compiled train step fed from the host
(any backend), or on the JAX backend livestyle.model.fastloop (many steps per compiled call,
data on the device; ~an order of magnitude faster on a GPU).

Resume is exact: batches are drawn from a generator seeded by (seed, step), and a
checkpoint holds the transformer weights, the optimizer state (its step counter
drives the learning-rate schedule) and the loss log up to that step.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import shutil
import time
from pathlib import Path

import keras
import numpy as np
from tqdm import tqdm

from livestyle.atomic import atomic_path, write_json, write_text
from livestyle.config import WEIGHTS, StyleConfig, TrainConfig
from livestyle.errors import LivestyleError
from livestyle.images import center_crop, grid, load_rgb, resize_short_side, save_figure, save_png
from livestyle.model.augment import host_gains, overexpose
from livestyle.model.data import load_images
from livestyle.model.determinism import single_thread_tensorflow
from livestyle.model.lossnet import build_lossnet
from livestyle.model.network import build_transformer
from livestyle.model.temporal import next_frames, start_step
from livestyle.model.trainer import TERMS, StyleTrainer, colour_target, style_grams

_TRAINING_CODE = ("train.py", "trainer.py", "losses.py", "lossnet.py", "network.py", "fastloop.py", "temporal.py")
# the log holds what the run computed, no timings: a rerun or a resumed run writes the
# same bytes (throughput goes to speed.json, which no other stage reads)
LOG_FIELDS = ("step", *TERMS)
SPEED = "speed.json"


def load_style_image(cfg: StyleConfig, size: int) -> np.ndarray:
    """The painting, short side scaled to the training size times style_scale."""
    image = load_rgb(cfg.image)
    return resize_short_side(image, max(16, int(round(size * cfg.loss.style_scale))))


class Batches:
    """Deterministic random batches of training crops, a pure function of the step.

    A prepared crop larger than the training size is cropped again, never shrunk:
    shrinking shows the network objects smaller than a 480x853 camera frame does,
    and a filter trained that way paints large blobs on real frames.
    """

    def __init__(self, files: list[Path], cfg: TrainConfig):
        self.files, self.cfg = files, cfg
        self._cache: dict[Path, np.ndarray] = {}

    def _image(self, p: Path) -> np.ndarray:
        if p in self._cache:
            return self._cache[p]
        img = load_rgb(p)
        if min(img.shape[:2]) < self.cfg.image_size:
            img = resize_short_side(img, self.cfg.image_size)
        if len(self._cache) < 20000:  # bounded: ~4 GB at 256 px
            self._cache[p] = img
        return img

    def __call__(self, step: int) -> np.ndarray:
        rng = np.random.default_rng([self.cfg.seed, step])
        size = self.cfg.image_size
        idx = rng.choice(len(self.files), self.cfg.batch_size, replace=len(self.files) < self.cfg.batch_size)
        crops = []
        for i in idx:
            img = self._image(self.files[i])
            top = rng.integers(0, img.shape[0] - size + 1)
            left = rng.integers(0, img.shape[1] - size + 1)
            crops.append(img[top : top + size, left : left + size])
        batch = np.stack(crops).astype(np.float32)
        flip = rng.random(len(idx)) < 0.5
        batch[flip] = batch[flip, :, ::-1]
        gains = host_gains(rng, len(idx), self.cfg.highlight_prob, self.cfg.highlight_gain)
        return batch if gains is None else overexpose(batch, gains)


def _schedule(cfg: TrainConfig):
    if cfg.lr_schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(
            cfg.learning_rate if cfg.warmup_steps == 0 else 0.0,
            decay_steps=max(1, cfg.steps - cfg.warmup_steps),
            alpha=0.05,
            warmup_target=cfg.learning_rate if cfg.warmup_steps else None,
            warmup_steps=cfg.warmup_steps,
        )
    if cfg.lr_schedule == "constant":
        return cfg.learning_rate
    raise ValueError(f"train.lr_schedule {cfg.lr_schedule!r}: use constant or cosine")


def build_trainer(cfg: StyleConfig) -> tuple[StyleTrainer, np.ndarray]:
    t = cfg.train
    if t.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_bfloat16" if keras.backend.backend() == "jax" else "mixed_float16")
    transformer = build_transformer(cfg.network, t.image_size, t.image_size, seed=t.seed)
    lossnet = build_lossnet(cfg.loss.network, list(cfg.loss.content_layers) + list(cfg.loss.style_layers))
    style = load_style_image(cfg, t.image_size)
    trainer = StyleTrainer(transformer, lossnet, style_grams(lossnet, style, cfg.loss), cfg.loss,
                           update_norm_stats=t.norm_stats == "update",
                           colour_target=colour_target(style) if cfg.loss.colour_weight else None)
    trainer.compile(optimizer=keras.optimizers.Adam(_schedule(t)))
    trainer.build((None, t.image_size, t.image_size, 3))
    trainer.optimizer.build(trainer.trainable_variables)
    return trainer, style


# -- checkpoints ---------------------------------------------------------------


def config_key(cfg: StyleConfig) -> str:
    """What a checkpoint must match to be resumed: everything but the step count."""
    import dataclasses
    import hashlib

    d = dataclasses.asdict(cfg)
    for k in ("credit", "license"):
        d.pop(k)
    # none of these changes a step's math; the loop does (its batches differ): see train_style
    for k in ("steps", "checkpoint_every", "sample_every", "steps_per_call", "loop", "candidates", "choice_photos",
              "choice_probes"):
        d["train"].pop(k)
    # the training code too: a checkpoint made by other code is not this run's past
    code = "".join((Path(__file__).parent / f).read_text() for f in _TRAINING_CODE)
    return hashlib.sha256((json.dumps(d, sort_keys=True, default=str) + code).encode()).hexdigest()[:16]


def save_checkpoint(trainer: StyleTrainer, ckpt_dir: Path, step: int, log_rows: list[dict], key: str,
                    samples_dir: Path | None = None) -> None:
    """Weights, optimizer state and loss log of `step`, and copies of the samples up to
    it: DVC deletes samples/ before rerunning the stage, the checkpoint persists."""
    with atomic_path(ckpt_dir, suffix="") as tmp:
        tmp.mkdir()
        trainer.transformer.save_weights(tmp / WEIGHTS)
        buf = io.BytesIO()
        np.savez(buf, *[keras.ops.convert_to_numpy(v) for v in trainer.optimizer.variables])
        (tmp / "optimizer.npz").write_bytes(buf.getvalue())
        (tmp / "state.json").write_text(json.dumps({"step": step, "key": key, "log": log_rows}))
        if samples_dir is not None:
            (tmp / "samples").mkdir()
            for png in _samples(samples_dir):
                if _sample_step(png) <= step:
                    shutil.copyfile(png, tmp / "samples" / png.name)


def load_checkpoint(trainer: StyleTrainer, ckpt_dir: Path, key: str, samples_dir: Path | None = None) -> tuple[int, list[dict]]:
    """Resume state, or a fresh start when there is none or it belongs to other settings.

    samples_dir is made to hold exactly the samples of the resumed steps (none on a
    fresh start), as an uninterrupted run has them at that step.
    """
    step, log = _resume(trainer, ckpt_dir, key)
    if samples_dir is not None:
        samples_dir.mkdir(parents=True, exist_ok=True)
        for png in _samples(samples_dir):
            png.unlink()
        if step:
            for png in _samples(ckpt_dir / "samples"):
                shutil.copyfile(png, samples_dir / png.name)
    return step, log


def _resume(trainer: StyleTrainer, ckpt_dir: Path, key: str) -> tuple[int, list[dict]]:
    state_file = ckpt_dir / "state.json"
    if not state_file.exists():
        return 0, []
    state = json.loads(state_file.read_text())
    if state.get("key") != key:
        print(f"{ckpt_dir}: checkpoint is for other settings; starting afresh")
        return 0, []
    trainer.transformer.load_weights(ckpt_dir / WEIGHTS)
    with np.load(ckpt_dir / "optimizer.npz") as opt:
        for i, v in enumerate(trainer.optimizer.variables):
            v.assign(opt[f"arr_{i}"])
    return state["step"], state["log"]


def _samples(folder: Path) -> list[Path]:
    return sorted(folder.glob("step_*.png"))


def _sample_step(png: Path) -> int:
    return int(png.stem.removeprefix("step_"))


# -- outputs -------------------------------------------------------------------


def sample_grid(transformer: keras.Model, heldout: list[np.ndarray]) -> np.ndarray:
    """Held-out content on the top row, stylized below."""
    out = transformer.predict(np.stack(heldout).astype(np.float32), verbose=0, batch_size=1)
    return grid(list(heldout) + [np.clip(o, 0, 255).astype(np.uint8) for o in out], cols=len(heldout))


def heldout_crops(folder: Path, size: int, count: int) -> list[np.ndarray]:
    """Centre crops of the held-out photos at their stored scale (short side
    data.heldout_size, about a camera frame's): evaluated as a frame would be, not shrunk."""
    crops = []
    for p in load_images(folder)[:count]:
        img = load_rgb(p)
        if min(img.shape[:2]) < size:
            img = resize_short_side(img, size)
        crops.append(center_crop(img, size, size))
    return crops


def write_log_csv(path: Path, rows: list[dict]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=LOG_FIELDS, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    write_text(path, buf.getvalue())


def plot_losses(path: Path, rows: list[dict], style: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in rows]
    keys = ("content", "style", "tv") + tuple(k for k in ("colour", "temporal") if any(float(r.get(k) or 0) for r in rows))
    fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3.2))
    for ax, key in zip(axes, keys):
        ax.plot(steps, [r[key] for r in rows])
        ax.set_title(f"{key} loss (unweighted)")
        ax.set_xlabel("step")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
    fig.suptitle(f"training: {style}")
    fig.tight_layout()
    save_figure(fig, path, dpi=90)


def at_size(transformer: keras.Model, cfg: StyleConfig, size: int) -> keras.Model:
    """The same weights in a model built for size x size (the network is size-free)."""
    net = build_transformer(cfg.network, size, size, name="eval_transformer")
    net.set_weights(transformer.get_weights())
    return net


def evaluate(trainer: StyleTrainer, net: keras.Model, images: list[np.ndarray]) -> dict[str, float]:
    """Unweighted loss terms on held-out content, inference mode (moving BN statistics)."""
    totals: dict[str, float] = {}
    for img in images:
        x = np.asarray(img, np.float32)[None]
        y = net(x, training=False)
        for k, v in trainer.loss_terms(keras.ops.convert_to_tensor(x), keras.ops.cast(y, "float32")).items():
            totals[k] = totals.get(k, 0.0) + float(keras.ops.convert_to_numpy(v)) / len(images)
    return totals


def load_init_weights(transformer: keras.Model, path: Path) -> None:
    """Start from a trained network instead of random weights: the base network keeps
    a photo's structure from step 0, so a short CPU schedule goes into the style."""
    if not path.is_file():
        raise LivestyleError("params.yaml", f"train.init_weights: no file {path}")
    try:
        transformer.load_weights(path)
    except (ValueError, OSError) as exc:
        raise LivestyleError(path, f"train.init_weights does not fit the network settings ({exc.__class__.__name__}); "
                             "train a base for this network or set train.init_weights: ''") from None


def resolve_loop(t: TrainConfig, files: list[Path]) -> str:
    """train.loop made concrete. auto: the JAX loop on the JAX backend with an accelerator
    when the crops fit on it, else the Keras loop (on a CPU, XLA runs the conv gradients
    3-4x slower inside the JAX loop's compiled loop than in Keras' one-step program)."""
    backend = keras.backend.backend()
    if t.loop == "keras" or (t.loop == "auto" and backend != "jax"):
        return "keras"
    if backend != "jax":
        raise LivestyleError("params.yaml", f"train.loop = jax needs the JAX backend (KERAS_BACKEND=jax), not {backend}")
    import jax

    from livestyle.model.fastloop import fits_on_device

    if t.loop == "auto" and jax.default_backend() == "cpu":
        return "keras"
    if fits_on_device(files, t.image_size):
        return "jax"
    if t.loop == "jax":
        raise LivestyleError("params.yaml", f"train.loop = jax: {len(files)} training crops do not fit on the device; use keras")
    print(f"{len(files)} training crops do not fit on the device: training with the Keras loop")
    return "keras"


def train_style(cfg: StyleConfig, prepared: Path, out_dir: Path, samples_count: int = 4, stop_after: int | None = None) -> dict:
    """Train (or resume) one style into out_dir. `stop_after` ends early, as a kill would."""
    t = cfg.train
    keras.utils.set_random_seed(t.seed)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
        if t.deterministic:
            single_thread_tensorflow()
    out_dir.mkdir(parents=True, exist_ok=True)
    files = load_images(prepared / "train")
    loop = resolve_loop(t, files)
    trainer, style = build_trainer(cfg)
    heldout = heldout_crops(prepared / "heldout", max(t.image_size, 256), samples_count)
    ckpt_dir = out_dir / "checkpoint"
    # a checkpoint is only resumed for the same settings, training images and loop (the
    # loops draw different batches)
    data_id = hashlib.sha256("\n".join(f"{p.name}:{p.stat().st_size}" for p in files).encode()).hexdigest()[:8]
    key = f"{config_key(cfg)}-{data_id}" + ("-jax" if loop == "jax" else "")
    step, rows = load_checkpoint(trainer, ckpt_dir, key, out_dir / "samples")
    if step == 0 and t.init_weights:
        load_init_weights(trainer.transformer, Path(t.init_weights))
    save_png(out_dir / "style.png", style)

    def checkpoint_at(s: int) -> bool:
        return s % t.checkpoint_every == 0 or s == t.steps

    def sample_at(s: int) -> bool:
        return s % t.sample_every == 0 and s < t.steps

    def write_sample(s: int) -> None:
        save_png(out_dir / "samples" / f"step_{s:06d}.png", sample_grid(at_size(trainer.transformer, cfg, len(heldout[0])), heldout))

    def after_step(s: int, rows: list[dict]) -> None:
        """Samples, then the checkpoint (which keeps them), with the Keras model holding the weights of step s."""
        if sample_at(s):
            write_sample(s)
        if checkpoint_at(s):
            save_checkpoint(trainer, ckpt_dir, s, rows, key, out_dir / "samples")

    if step and sample_at(step) and not (out_dir / "samples" / f"step_{step:06d}.png").exists():
        # resumed from a checkpoint made where it did not sample (train.steps grew since)
        write_sample(step)

    temporal_start = start_step(cfg.loss.temporal_weight, cfg.loss.temporal_from, t.steps)
    bar = tqdm(total=t.steps, initial=step, desc=f"train {cfg.name}", unit="step")
    calls: list[float] = []
    if loop == "jax" and step < t.steps:
        from livestyle.model.fastloop import train_loop

        end = t.steps if stop_after is None else min(t.steps, max(stop_after, step + 1))
        # images/s of each call; the first one compiles
        calls = train_loop(trainer, t, files, step, end, rows,
                           lambda s: checkpoint_at(s) or sample_at(s) or s == temporal_start, after_step, bar)[1:]
        step = end
        if stop_after is not None and step >= stop_after:
            bar.close()
            return {"stopped_at": step}
    batches = Batches(files, t)
    speeds: list[float] = []  # images/s of each Keras step
    tick = time.perf_counter()
    while step < t.steps:
        x, offsets = batches(step), None
        if temporal_start is not None and step >= temporal_start:
            # its own stream (seed, step, 1): the photo batches stay those of a run without it
            x, offsets = next_frames(x, np.random.default_rng([t.seed, step, 1]), cfg.loss.temporal_shift,
                                     cfg.loss.temporal_noise, cfg.loss.temporal_moves, cfg.loss.temporal_noise_blur,
                                     cfg.loss.temporal_gain, cfg.loss.temporal_warp)
        logs = trainer.train_on_batch(x, offsets, return_dict=True)
        step += 1
        now = time.perf_counter()
        ips = t.batch_size / max(now - tick, 1e-9)
        tick = now
        rows.append({"step": step, **{k: float(logs[k]) for k in TERMS}})
        speeds.append(ips)
        trainer.reset_metrics()
        bar.set_postfix(loss=f"{rows[-1]['loss']:.3g}", img_s=f"{ips:.1f}")
        bar.update(1)
        after_step(step, rows)
        if stop_after is not None and step >= stop_after:
            bar.close()
            return {"stopped_at": step}
    bar.close()

    with atomic_path(out_dir / WEIGHTS) as tmp:
        trainer.transformer.save_weights(tmp)
    eval_net = at_size(trainer.transformer, cfg, len(heldout[0]))
    save_png(out_dir / "samples.png", sample_grid(eval_net, heldout))
    write_log_csv(out_dir / "loss.csv", rows)
    plot_losses(out_dir / "loss.png", rows, cfg.name)
    metrics = {
        "style": cfg.name,
        "steps": t.steps,
        "final": {k: rows[-1].get(k, 0.0) for k in TERMS} if rows else {},
        "heldout": evaluate(trainer, eval_net, heldout),
        "backend": keras.backend.backend(),
        "loop": loop,
        "params": trainer.transformer.count_params(),
    }
    write_json(out_dir / "train.json", metrics)
    speed = {
        # this session's steps only (a resumed run times the steps after the checkpoint);
        # the first Keras step and the first JAX call compile
        "images_per_s_median": float(np.median(calls or speeds[1:] or [0.0])),
        # jax loop: the whole loop after compiling, checkpoints and samples included
        **({"images_per_s": float(calls[-1])} if calls else {}),
    }
    write_json(out_dir / SPEED, speed)
    return {**metrics, **speed}
