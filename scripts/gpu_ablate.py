"""Run several trainings side by side on one GPU and copy each result out as it ends.

    python scripts/gpu_ablate.py ABLATION.yaml --photos DIR --styles-dir DIR --content IMG \
        --out $OUT --limit-s 520 [--parallel 10] [--gpus 2]

ABLATION.yaml: {runs: {NAME: {style: the_scream, set: {loss.network: imagenet_vgg16, ...}}},
set: {...common...}}, over params.yaml's profiles.gpu. Each run is scripts/gpu_train.py
in its own process (XLA memory not preallocated, so they share the card); its weights,
stylized images, loss log and train.json land in OUT/NAME/ when it finishes, and a
run still going at --limit-s is killed and reported, so a cut call loses nothing finished.
With --gpus N the runs are dealt round-robin over N cards (CUDA_VISIBLE_DEVICES per run).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml


def card_env(env: dict[str, str], index: int, gpus: int) -> dict[str, str]:
    """The environment of the index-th run: runs dealt round-robin over gpus cards, each
    process seeing one (JAX would otherwise put every run on card 0)."""
    if gpus <= 1:
        return env
    return {**env, "CUDA_VISIBLE_DEVICES": str(index % gpus)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("spec")
    ap.add_argument("--photos", required=True)
    ap.add_argument("--styles-dir", required=True)
    ap.add_argument("--content", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--work", default="/tmp/ablate")
    ap.add_argument("--limit-s", type=float, default=520)
    ap.add_argument("--parallel", type=int, default=10)
    ap.add_argument("--gpus", type=int, default=1, help="cards to deal the runs over")
    args = ap.parse_args()
    spec = yaml.safe_load(Path(args.spec).read_text())
    out, work = Path(args.out), Path(args.work)
    out.mkdir(parents=True, exist_ok=True)
    common = [f"{k}={json.dumps(v)}" for k, v in (spec.get("set") or {}).items()]
    base = [sys.executable, "scripts/gpu_train.py", "--photos", args.photos, "--styles-dir", args.styles_dir,
            "--content", args.content]
    # one shared prepare, so every run trains on the same crops
    prepared = work / "prepared"
    env = {**os.environ, "XLA_PYTHON_CLIENT_PREALLOCATE": "false"}
    pending = list(spec["runs"].items())
    envs = {name: card_env(env, i, args.gpus) for i, (name, _) in enumerate(pending)}
    running: dict[str, tuple[subprocess.Popen, float]] = {}
    start = time.time()
    status = {}
    while pending or running:
        while pending and len(running) < args.parallel:
            name, run = pending.pop(0)
            sets = common + [f"{k}={json.dumps(v)}" for k, v in (run.get("set") or {}).items()]
            cmd = base + ["--out", str(work / name), "--set", f"prepared_dir={prepared}"]
            for s in sets:
                cmd += ["--set", s]
            cmd.append(run["style"])
            log = open(out / f"{name}.log", "w")
            running[name] = (subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=envs[name]), time.time())
            if not prepared.exists():  # let the first run prepare before others start
                while running[name][0].poll() is None and not (prepared / "prepare.json").exists():
                    time.sleep(1)
        for name, (proc, t0) in list(running.items()):
            if proc.poll() is None and time.time() - start < args.limit_s:
                continue
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            status[name] = {"rc": proc.returncode, "wall_s": round(time.time() - t0, 1)}
            dst = out / name
            src = work / name
            # checkpoint/: what a run cut at --limit-s leaves
            for pattern in ("stylized/*.png", "train/*/transformer.weights.h5", "train/*/train.json", "train/*/speed.json",
                            "train/*/loss.csv", "train/*/samples.png", "summary.json",
                            "train/*/checkpoint/transformer.weights.h5", "train/*/checkpoint/state.json"):
                for f in src.glob(pattern):
                    (dst / f.relative_to(src)).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(f, dst / f.relative_to(src))
            del running[name]
            (out / "status.json").write_text(json.dumps(status, indent=1))
            print(name, status[name], flush=True)
        time.sleep(2)


if __name__ == "__main__":
    main()
