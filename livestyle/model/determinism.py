"""What makes a CPU training process give the same bytes on a rerun and on a resume.

Op determinism fixes each kernel's arithmetic; the rest is the process: Python's str
hash salt, the thread pools of numpy's BLAS and of TensorFlow, and the cores the
threads run on. The train stage calls ensure_deterministic_process() first thing and
train_style calls single_thread_tensorflow() (train.deterministic, on by default).
"""

from __future__ import annotations

import fcntl
import os
import sys
import tempfile
from pathlib import Path

# What a byte-identical training process needs in its environment before Python and the
# libraries start: Python's str hash salt fixed, and the BLAS/OpenMP pools of numpy's
# libraries on one thread. With the pools at their default (both cores), 2 of 8 fresh
# 6-step runs of the default style on a loaded machine wrote different weights; with
# them at one thread, 8 of 8 the same (TensorFlow's own threads are set by
# single_thread_tensorflow; turning oneDNN off did not help: 1 of 4 still differed).
DETERMINISTIC_ENV = {"PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
                     "MKL_NUM_THREADS": "1"}

# held for the life of the process: the lock on the CPU it is pinned to
_cpu_lock = None


def ensure_deterministic_process() -> None:
    """Re-run this process's command line with DETERMINISTIC_ENV unless it already has
    it, then pin it to one CPU.

    Python salts str hashes per process, and somewhere below Keras that salt orders
    floating-point sums: with one thread, four runs of the default style gave three
    different weight files, with the seed fixed four the same. Call it before any work.
    """
    if all(os.environ.get(k) == v for k, v in DETERMINISTIC_ENV.items()):
        pin_to_one_cpu()
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], {**os.environ, **DETERMINISTIC_ENV})


def pin_to_one_cpu(lock_dir: Path | None = None) -> int | None:
    """Run this process on one of the CPUs it may use, one no other pinned training
    process holds where there is one; returns that CPU (None where the OS cannot pin).

    With TensorFlow on one thread, the Python thread and TensorFlow's compute thread still
    run ops side by side on two cores, and which thread ran which op changed the last
    bits: 1 in 3 to 1 in 8 fresh runs of the train stage wrote other weights (CI failed
    on it). Pinned to either core, 12 of 12 runs wrote the same bytes, at the same
    img/s (3.25-3.36 pinned, 2.37-3.30 not); on a loaded machine the two threads still
    interleave on their one core, and 1 run in 3 of the slow test differed. A lock file
    per CPU keeps two trainings the flow runs side by side on different cores.
    """
    global _cpu_lock
    if not hasattr(os, "sched_setaffinity"):
        return None
    allowed = sorted(os.sched_getaffinity(0))
    lock_dir = Path(lock_dir or tempfile.gettempdir())
    chosen = allowed[0]
    for cpu in allowed:
        try:  # another user's lock file may not be ours to open: then that CPU is skipped
            handle = open(lock_dir / f"livestyle-train-cpu{cpu}.lock", "a")
        except OSError:
            continue
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # another training process holds this CPU
            handle.close()
            continue
        _cpu_lock, chosen = handle, cpu
        break
    try:
        os.sched_setaffinity(0, {chosen})
    except OSError:  # a container that forbids it: train unpinned, as before
        return None
    return chosen


def single_thread_tensorflow() -> None:
    """One TensorFlow thread inside and between ops, so a rerun or a resumed run of
    training gives the same outputs on this machine (byte for byte once pinned to a CPU
    on an idle machine).

    Op determinism alone is not enough on CPU: with several threads, partial sums are
    added in the order threads finish. Two runs of the default style's settings differed
    after two steps; with one thread between ops but both inside them, 1 of 4 four-step
    runs and a pair of 16-step runs still differed. One thread inside and between ops
    gave the same weights every time, at 2.8-3.4 img/s against 3.1-3.2 with both cores
    (measured with the second core busy; train.deterministic: false uses both).
    """
    import tensorflow as tf

    threading = tf.config.threading
    if threading.get_inter_op_parallelism_threads() == threading.get_intra_op_parallelism_threads() == 1:
        return
    try:
        threading.set_inter_op_parallelism_threads(1)
        threading.set_intra_op_parallelism_threads(1)
    except RuntimeError:  # TensorFlow already ran an op in this process (a test, a notebook)
        print("note: TensorFlow was initialised before training; a rerun may differ in the last bits "
              "(TF_NUM_INTEROP_THREADS=1 TF_NUM_INTRAOP_THREADS=1 for byte-identical runs)")
