"""Which of a style's training runs ships.

Runs of one recipe that differ only by their seed paint different filters: on
chicago.jpg Udnie's colour distance ranged 4.7-9.6 over five seeds of one recipe, as
wide as any knob tried (docs/ABLATIONS.md sections 14, 19, 20). With `train.candidates`
above 1 the train stage trains that many seeds and ships one, chosen by the independent
judge (livestyle.measure.quality: texture, colour, content; no training optimises it) on
the prepared held-out photos, which no run trained on. The comparison photos
(quality.photos, e.g. chicago.jpg) are never used to choose.

Held-out photos rarely hold a large smooth region, where trained filters fail by painting
a flat blob (a black one over chicago.jpg's dark cloud on two Scream runs of four in
docs/ABLATIONS.md section 22, none seen on the held-out photos). So where the judge also
counts SKY_BLOBS, the synthetic skies of livestyle.measure.sky_probes a run painted a flat
blob on, only the runs with the fewest go on to the rule.

The rule: among the runs whose mean content distance is within CONTENT_SLACK of the
best run's (the scene stays readable), the lowest sum of the texture rank and the
colour rank; ties go to the lower colour distance, then the lower seed.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path
from typing import Callable

import numpy as np

from livestyle.atomic import atomic_path, write_json
from livestyle.config import WEIGHTS, StyleConfig

CONTENT_SLACK = 0.10  # the quality issue's own bound: content within 10 % of the reference
FIGURES = ("texture", "colour", "content")  # the keys of a judge's figures
SKY_BLOBS = "sky_blobs"  # optional key: probes painted with a flat blob
CHOICE_FILE = "choice.json"
RUNS_DIR = "candidates"  # data/train/STYLE/candidates/seed_N: each run, resumable on its own


def candidate_seeds(cfg: StyleConfig) -> list[int]:
    return [cfg.train.seed + k for k in range(cfg.train.candidates)]


def choose(figures: dict[int, dict]) -> int:
    """The seed to ship, from {seed: {texture, colour, content[, sky_blobs]}} (the rule in
    the module's docstring)."""
    fewest = min(f.get(SKY_BLOBS, 0) for f in figures.values())
    pool = {s: f for s, f in figures.items() if f.get(SKY_BLOBS, 0) == fewest}
    best_content = min(f["content"] for f in pool.values())
    eligible = sorted(s for s, f in pool.items() if f["content"] <= best_content * (1 + CONTENT_SLACK))

    def ranks(key: str) -> dict[int, int]:
        return {s: r for r, s in enumerate(sorted(eligible, key=lambda s: (figures[s][key], s)))}

    texture, colour = ranks("texture"), ranks("colour")
    return min(eligible, key=lambda s: (texture[s] + colour[s], figures[s]["colour"], s))


def adopt_run(run_dir: Path, out_dir: Path) -> None:
    """Copy the chosen run's files (weights, logs, samples, checkpoint) into the style's
    folder, each replaced in one rename: a kill leaves the old file or the new one."""
    for item in sorted(Path(run_dir).iterdir()):
        with atomic_path(Path(out_dir) / item.name) as tmp:
            (shutil.copytree if item.is_dir() else shutil.copy2)(item, tmp)


def train_candidates(cfg: StyleConfig, train: Callable[[StyleConfig, Path], object], out_dir: Path,
                     judge: Callable[[Path], dict]) -> dict:
    """Train each candidate seed with `train(cfg, run_dir)`, score each run's weights with
    `judge(weights)` ({texture, colour, content} on held-out photos, and sky_blobs where
    it counts them), adopt the chosen run into out_dir and write out_dir/choice.json. One
    candidate trains straight into out_dir, unjudged."""
    seeds = candidate_seeds(cfg)
    if len(seeds) == 1:
        train(cfg, out_dir)
        record = {"chosen_seed": seeds[0], "candidates": 1}
    else:
        runs = {s: Path(out_dir) / RUNS_DIR / f"seed_{s}" for s in seeds}
        for s, run_dir in runs.items():
            train(replace(cfg, train=replace(cfg.train, seed=s)), run_dir)
        # the figures as floats, the count of blotted skies as a count
        figures = {s: {k: (int if k == SKY_BLOBS else float)(v) for k, v in judge(run_dir / WEIGHTS).items()
                       if k in (*FIGURES, SKY_BLOBS)}
                   for s, run_dir in runs.items()}
        chosen = choose(figures)
        adopt_run(runs[chosen], out_dir)
        record = {"chosen_seed": chosen, "candidates": len(seeds), "content_slack": CONTENT_SLACK,
                  "runs": {str(s): f for s, f in figures.items()},
                  **{f"chosen_{k}": figures[chosen][k] for k in FIGURES}}
    write_json(Path(out_dir) / CHOICE_FILE, record)
    return record
