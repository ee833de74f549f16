"""ONNX Runtime session settings, named once and read from params.yaml `bench.onnx`.

Measured on the 2-core CPU (docs/CPU_INFERENCE.md): the full graph optimisation level
is worth 1.2-1.4x over `basic` (it lays convolutions out in NCHWc blocks); sequential
execution, since a frame is one chain of dependent convs and a parallel executor only
adds scheduling. Threads are the bench's `threads`.
"""

from __future__ import annotations

from dataclasses import dataclass

from livestyle.config import _build, one_of

_LEVELS = {"disable": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC", "extended": "ORT_ENABLE_EXTENDED", "all": "ORT_ENABLE_ALL"}
_MODES = {"sequential": "ORT_SEQUENTIAL", "parallel": "ORT_PARALLEL"}


@dataclass(frozen=True)
class OrtConfig:
    graph_optimization: str = one_of("all", *_LEVELS)
    execution_mode: str = one_of("sequential", *_MODES)
    # spinning threads wait hot between ops: faster alone, but they steal a shared core
    allow_spinning: bool = True

    @classmethod
    def from_params(cls, d):
        return _build(cls, d, "bench.onnx")


def session(path, threads: int = 2, cfg: OrtConfig | None = None):
    """An InferenceSession on the CPU with these settings."""
    import onnxruntime as ort

    cfg = cfg or OrtConfig()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads  # the CI box has 2 cores; more threads only thrash
    # with one inter-op thread ORT quietly runs a parallel session sequentially
    opts.inter_op_num_threads = threads if cfg.execution_mode == "parallel" else 1
    opts.graph_optimization_level = getattr(ort.GraphOptimizationLevel, _LEVELS[cfg.graph_optimization])
    opts.execution_mode = getattr(ort.ExecutionMode, _MODES[cfg.execution_mode])
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if cfg.allow_spinning else "0")
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
