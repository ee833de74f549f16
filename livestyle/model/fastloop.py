"""The training loop on the JAX backend: many steps per compiled call, data on the device.

Keras' train_on_batch costs a host round trip per step (a numpy batch up, the logs
down), which held an H100 to ~150 images/s while the step alone runs 442-924
(scripts/bench_train.py; docs/RESULTS.md). Here:
- every training crop is uploaded once (uint8); each step's batch (random crop and
  flip) is drawn on the device from fold_in(key(seed), step), so a resumed run
  draws the batches an uninterrupted one does, as the Keras loop's do;
- one jitted call runs up to `train.steps_per_call` steps in a lax.fori_loop over
  Keras' stateless API (transformer.stateless_call, StyleTrainer.total_loss,
  optimizer.stateless_apply): the math of Keras' own JAX train step;
- the call's per-step loss terms are fetched only after the next call is dispatched,
  so logging never stalls the device;
- the Keras variables get the state back only where they are read: checkpoints,
  samples and the end.
"""

from __future__ import annotations

import functools
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import jax
import jax.numpy as jnp
import keras
import numpy as np
from tqdm import tqdm

from livestyle.config import TrainConfig
from livestyle.images import center_crop, load_rgb, resize_short_side
from livestyle.model.augment import overexpose
from livestyle.model.temporal import (WARP_CELLS, correlated_noise, field_from, max_move, moved_window, reach, start_step,
                                      warped_window)
from livestyle.model.trainer import TERMS, StyleTrainer
# a larger training set stays on the host and the Keras loop trains on it
_DATA_BUDGET = 8 << 30


def fits_on_device(files: list[Path], size: int) -> bool:
    """Whether every crop (at the first file's size) fits the budget for device data."""
    h, w = load_rgb(files[0]).shape[:2]
    if min(h, w) < size:
        h, w = round(h * size / min(h, w)), round(w * size / min(h, w))
    budget = _DATA_BUDGET
    stats = jax.devices()[0].memory_stats() or {}
    if "bytes_limit" in stats:
        budget = min(budget, stats["bytes_limit"] // 4)
    return len(files) * h * w * 3 <= budget


def load_crops(files: list[Path], size: int) -> np.ndarray:
    """All training crops as one uint8 array (N, H, W, 3); a crop smaller than `size` is
    scaled up as the Keras loop's Batches does, crops of unequal size are centre-cropped
    to the smallest."""

    def load(p):
        img = load_rgb(p)
        return resize_short_side(img, size) if min(img.shape[:2]) < size else img

    with ThreadPoolExecutor(8) as pool:
        images = list(tqdm(pool.map(load, files), total=len(files), desc="load crops", unit="img", leave=False))
    h = min(i.shape[0] for i in images)
    w = min(i.shape[1] for i in images)
    return np.stack([i if i.shape[:2] == (h, w) else center_crop(i, h, w) for i in images])


def random_batch(data, step, *, seed: int, batch: int, size: int, highlight_prob: float = 0.0,
                 highlight_gain: float = 1.0):
    """Batch `step`: crops chosen without replacement (with, when there are fewer than
    a batch), a random size x size window of each and a random horizontal flip; a share
    `highlight_prob` of them overexposed (livestyle.model.augment, gains from
    fold_in(key(seed + 2), step), so batches without it are unchanged)."""
    k_pick, k_top, k_left, k_flip = jax.random.split(jax.random.fold_in(jax.random.key(seed), step), 4)
    n, h, w, _ = data.shape
    idx = jax.random.choice(k_pick, n, (batch,), replace=n < batch)
    top = jax.random.randint(k_top, (batch,), 0, h - size + 1)
    left = jax.random.randint(k_left, (batch,), 0, w - size + 1)
    flip = jax.random.bernoulli(k_flip, 0.5, (batch,))

    def one(i, t, l, f):
        crop = jax.lax.dynamic_slice(data, (i, t, l, 0), (1, size, size, 3))[0]
        return jnp.where(f, crop[:, ::-1], crop)

    crops = jax.vmap(one)(idx, top, left, flip).astype(jnp.float32)
    if highlight_prob <= 0:
        return crops
    k_pick, k_gain = jax.random.split(jax.random.fold_in(jax.random.key(seed + 2), step))
    gains = jnp.where(jax.random.bernoulli(k_pick, highlight_prob, (batch,)),
                      jax.random.uniform(k_gain, (batch,), jnp.float32, 1.0, highlight_gain), 1.0)
    return overexpose(crops, gains)


def next_frames(batch, step, *, seed: int, shift: float, noise: float, moves: str = "subpixel",
                noise_blur: float = 0.0, gain: float = 0.0, warp: float = 0.0):
    """livestyle.model.temporal.next_frames on the device: (frames and next frames, 2B; the
    motion: offset rows (B, 2), or each image's field for warp moves), drawn from
    fold_in(key(seed + 1), step)."""
    k_move, k_noise = jax.random.split(jax.random.fold_in(jax.random.key(seed + 1), step))
    n, h, w, _ = batch.shape
    pad = int(np.ceil(max_move(shift, warp, moves))) + reach(moves)
    padded = jnp.pad(batch, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="reflect")
    grain = correlated_noise(noise * jax.random.normal(k_noise, batch.shape), noise_blur)
    if moves == "warp":
        k_shift, k_field = jax.random.split(k_move)
        translation = jax.random.uniform(k_shift, (n, 2), jnp.float32, -shift, shift)
        controls = jnp.clip(warp * jax.random.normal(k_field, (n, WARP_CELLS + 1, WARP_CELLS + 1, 2)), -2 * warp, 2 * warp)
        motion = field_from(controls, translation, h, w, warp)
        moved = warped_window(padded, motion, pad, h, w) + grain
    else:
        offset = jax.random.uniform(k_move, (2,), jnp.float32, -shift, shift)
        if moves == "whole":
            offset = jnp.round(offset)
        moved = moved_window(padded, offset, pad, h, w, moves) + grain
        motion = jnp.tile(offset[None], (n, 1))
    if gain:  # its own key: a run without it draws what it drew before
        moved = moved * jax.random.uniform(jax.random.fold_in(k_noise, 1), (n, 1, 1, 3), jnp.float32, 1 - gain, 1 + gain)
    return jnp.concatenate([batch, jnp.clip(moved, 0, 255)]), motion


class DeviceLoop:
    """Compiled multi-step training of a StyleTrainer on device-resident data.

    State is (trainable, non-trainable, optimizer) variable values of the transformer
    and Adam; the frozen loss network's weights are an argument, not state.
    `draw(data, step)` makes batch `step` from `data` (default: random_batch).
    """

    def __init__(self, trainer: StyleTrainer, cfg: TrainConfig, data, draw: Callable | None = None):
        if isinstance(trainer.optimizer, keras.optimizers.LossScaleOptimizer):
            raise ValueError("the JAX loop runs bfloat16 without loss scaling; got a LossScaleOptimizer")
        self.trainer, self.length = trainer, cfg.steps_per_call
        net = trainer.transformer
        self.refs = (net.trainable_variables, net.non_trainable_variables, trainer.optimizer.variables)
        # the optimizer was built on trainer.trainable_variables: the same list, in order
        if [id(v) for v in trainer.trainable_variables] != [id(v) for v in net.trainable_variables]:
            raise ValueError("trainer and transformer disagree on the trainable variables")
        self.frozen_refs = trainer.lossnet.variables  # content_net shares these
        self.frozen = [v.value for v in self.frozen_refs]
        self.data = jax.device_put(data)
        self.draw = draw or (lambda d, s: random_batch(d, s, seed=cfg.seed, batch=cfg.batch_size, size=cfg.image_size,
                                                       highlight_prob=cfg.highlight_prob,
                                                       highlight_gain=cfg.highlight_gain))
        loss = trainer.cfg
        # two programs: steps before the temporal term starts run without the next frames
        self.temporal_start = start_step(loss.temporal_weight, loss.temporal_from, cfg.steps)
        self.pair = lambda x, s: next_frames(x, s, seed=cfg.seed, shift=loss.temporal_shift, noise=loss.temporal_noise,
                                             moves=loss.temporal_moves, noise_blur=loss.temporal_noise_blur,
                                             gain=loss.temporal_gain, warp=loss.temporal_warp)
        self._calls = {paired: jax.jit(functools.partial(self._steps, paired=paired), donate_argnums=0) for paired in (False, True)}
        # compiled, so that a copy of a state still being computed is queued, not waited for
        self._copy = jax.jit(lambda state: jax.tree.map(jnp.copy, state))

    def read_state(self):
        """The Keras variables' values, copied (the state's buffers are donated to calls)."""
        return tuple([jnp.array(v.value, copy=True) for v in refs] for refs in self.refs)

    def write_back(self, state) -> None:
        """Into the Keras variables; `state` must not be donated afterwards (use snapshot)."""
        for refs, values in zip(self.refs, state):
            for v, value in zip(refs, values):
                v.assign(value)

    def snapshot(self, state):
        """A copy of `state` that later calls do not consume (asynchronous)."""
        return self._copy(state)

    def paired(self, step: int) -> bool:
        """Whether step trains with the temporal term (a call never straddles its start:
        train_loop syncs there)."""
        return self.temporal_start is not None and step >= self.temporal_start

    def run(self, state, start: int, n: int):
        """Steps start..start+n-1 (n <= steps_per_call): (new state, logs). Asynchronous:
        returns once dispatched, `state` is consumed; rows :n of logs (steps_per_call, 5)
        are the steps' loss terms, already on their way to the host."""
        if not 1 <= n <= self.length:
            raise ValueError(f"a call runs 1..{self.length} steps, not {n}")
        if self.paired(start) != self.paired(start + n - 1):
            raise ValueError(f"steps {start}..{start + n - 1} straddle the temporal term's start")
        state, logs = self._calls[self.paired(start)](state, self.frozen, self.data, jnp.int32(start), jnp.int32(n))
        # queued now, the copy waits for this call only, not for the calls dispatched after it
        logs.copy_to_host_async()
        return state, logs

    def _step(self, state, frozen, data, step, paired):
        trainable, non_trainable, opt = state
        net, trainer = self.trainer.transformer, self.trainer
        x, offsets = self.draw(data, step), None
        if paired:
            x, offsets = self.pair(x, step)

        def loss_fn(trainable):
            y, new_non_trainable = net.stateless_call(trainable, non_trainable, x, training=trainer.update_norm_stats)
            with keras.StatelessScope(state_mapping=list(zip(self.frozen_refs, frozen))):
                total, terms = trainer.total_loss(x, y, offsets)
            return total, (terms, new_non_trainable)

        (total, (terms, non_trainable)), grads = jax.value_and_grad(loss_fn, has_aux=True)(trainable)
        trainable, opt = trainer.optimizer.stateless_apply(opt, grads, trainable)
        return (trainable, non_trainable, opt), jnp.stack([total] + [terms[k] for k in TERMS[1:]])

    def _steps(self, state, frozen, data, start, n, paired):
        if self.length == 1:
            # no loop: XLA:CPU runs conv gradients 3-4x slower inside one (measured, jax 0.10)
            state, row = self._step(state, frozen, data, start, paired)
            return state, row[None]

        def body(i, carry):
            state, logs = carry
            state, row = self._step(state, frozen, data, start + i, paired)
            return state, logs.at[i].set(row)

        # n is traced: one compiled program serves every call length up to self.length
        return jax.lax.fori_loop(0, n, body, (state, jnp.zeros((self.length, len(TERMS)), jnp.float32)))


def train_loop(
    trainer: StyleTrainer,
    cfg: TrainConfig,
    files: list[Path],
    step: int,
    end: int,
    rows: list[dict],
    sync_at: Callable[[int], bool],
    on_sync: Callable[[int, list[dict]], None],
    bar: tqdm,
) -> list[float]:
    """Train from `step` to `end`, appending one row per step to `rows`.

    Calls end where `sync_at(step)` holds, and there `on_sync(step, rows)` runs with the
    Keras variables holding that step's state; at `end` they hold the final state.
    Returns images/s after each call: the first call's own (it includes compilation),
    then the running figure over every call since the first.
    """
    loop = DeviceLoop(trainer, cfg, load_crops(files, cfg.image_size))
    state = loop.read_state()
    throughput: list[float] = []
    pending = None
    tick = time.perf_counter()
    since, images = tick, 0
    while step < end or pending is not None:
        current = None
        if step < end:
            n = min(loop.length, end - step)
            n = next(k for k in range(1, n + 1) if k == n or sync_at(step + k))
            state, logs = loop.run(state, step, n)
            step += n
            # copied before the next call donates the state's buffers
            current = (step, n, logs, loop.snapshot(state) if step == end or sync_at(step) else None)
        if pending is not None:
            # the previous call's logs, fetched while the device runs the call just dispatched
            done, n_done, logs_done, snap = pending
            values = np.asarray(logs_done)[:n_done]
            now = time.perf_counter()
            # cumulative since the first (compiling) call: a window between two fetches
            # is no measure, as checkpoints written on the host overlap device work and
            # made single windows read 2e6 images/s (measured)
            if not throughput:
                ips, since, images = cfg.batch_size * n_done / max(now - tick, 1e-9), now, 0
            else:
                images += cfg.batch_size * n_done
                ips = images / max(now - since, 1e-9)
            throughput.append(ips)
            for k, row in enumerate(values):
                rows.append({"step": done - n_done + k + 1, **{t: float(v) for t, v in zip(TERMS, row)}})
            bar.set_postfix(loss=f"{rows[-1]['loss']:.3g}", img_s=f"{ips:.1f}")
            bar.update(n_done)
            if snap is not None:
                loop.write_back(snap)
                if sync_at(done):
                    on_sync(done, rows)
        pending = current
    return throughput
