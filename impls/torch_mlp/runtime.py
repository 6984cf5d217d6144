"""Process plumbing for the PyTorch twin: devices, precision, dtypes, syncs and versions.

Not part of the lesson (that is train.py): what a run needs from its process around the training
loop. Mirrored function for function by impls/flax_mlp/runtime.py.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
from collections.abc import Callable

import torch
import torch._functorch.config  # CompiledStep: recompute_views


@contextlib.contextmanager
def matmul_precision(tf32: bool):
    """float32 matmuls as IEEE float32, or TF32 on GPUs that have it when `tf32`. CPUs ignore it."""
    saved = torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32
    torch.set_float32_matmul_precision("high" if tf32 else "highest")  # "highest": no TF32
    # Convolutions: there are none here; set so that nothing uses TF32.
    torch.backends.cudnn.allow_tf32 = tf32
    try:
        yield
    finally:  # process-wide knobs: put them back for whatever runs next
        torch.set_float32_matmul_precision(saved[0])
        torch.backends.cudnn.allow_tf32 = saved[1]


def dtype_scope(dtype: str) -> contextlib.AbstractContextManager:
    """What a run in `dtype` (Config.dtype) needs switched on process-wide: in torch, nothing.

    Tensors carry their dtype, and build_model and train make a float64 run's tensors float64.
    (Adam's step count: eager, it is read as a Python number; compiled, the fused Adam keeps it in
    float32 whatever the default dtype and counts exactly. JAX's twin has to enable its x64 mode
    here.)
    """
    return contextlib.nullcontext()


def resolve_device(device: str) -> torch.device:
    """ "auto": the GPU if torch sees one, else the CPU; "cpu"; "gpu" (RuntimeError if none)."""
    if device not in ("auto", "cpu", "gpu"):
        raise ValueError(f"device: got {device!r}; allowed: auto | cpu | gpu")
    if device != "cpu" and torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    if device == "gpu":
        raise RuntimeError(
            "--device gpu: torch sees no CUDA GPU (torch.cuda.is_available() is False); "
            "allowed here: auto | cpu"
        )
    return torch.device("cpu")


def describe_device(dev: torch.device) -> str:
    """ "cpu", or e.g. "gpu:0 NVIDIA H100 80GB HBM3" (the same spelling in both twins)."""
    return f"gpu:{dev.index} {torch.cuda.get_device_name(dev)}" if dev.type == "cuda" else "cpu"


def device_sync(dev: torch.device) -> Callable[[object], None]:
    """What StepClock waits on: the GPU's queue (torch.cuda.synchronize); the CPU has no queue."""
    if dev.type == "cuda":
        return lambda value: torch.cuda.synchronize(dev)
    return lambda value: None


class CompiledStep:
    """`step` under torch.compile, counting what dynamo compiles for it.

    On the CPU inductor fuses the step's elementwise ops into C++ loops; on a GPU, mode=
    "reduce-overhead" also records CUDA graphs, so that a step replays its kernels instead of
    launching each from Python. The first `warm` calls compile (tens of seconds on a CPU); a graph
    compiled after them is a recompile. dynamo's caches are reset first: it keeps compiled graphs on
    code objects shared by every run of a process (a grid), which would fill up to its recompile
    limit (measured: the 8th run), after which it runs the step eager. So one CompiledStep at a
    time.
    """

    def __init__(self, step: Callable, dev: torch.device, warm: int = 1):
        torch._dynamo.reset()
        # Let AOTAutograd's partitioner rebuild views in the backward instead of saving them:
        # without it, it saved the sweep's activation mask (a bool) beside a view of the
        # activations, the store sweep._PReLU exists to avoid. Set process-wide once, like the
        # reset above (a patch around every call cost ~30 µs a step).
        torch._functorch.config.recompute_views = True
        self.mode = "reduce-overhead" if dev.type == "cuda" else "default"
        self.fn = torch.compile(step, mode=self.mode)
        self.warm, self.calls = warm, 0
        self.counts = self.after_warm = _dynamo_counts()

    def __call__(self, *args):
        out = self.fn(*args)
        self.calls += 1
        if self.calls == self.warm:
            self.after_warm = _dynamo_counts()
        # A CUDA graph's outputs live in its own memory, overwritten by its next replay.
        return out.clone() if self.mode == "reduce-overhead" else out

    def stats(self) -> dict:
        """{mode, graphs, graph_breaks, recompiles, cudagraph_skips}: graphs and breaks of the
        warm-up calls, graphs compiled after them, and the graphs that "reduce-overhead" left
        without a CUDA graph (TORCH_LOGS=cudagraphs says why; 0 off the GPU)."""
        (g0, b0, s0), (g1, b1, _), (g2, _, s2) = self.counts, self.after_warm, _dynamo_counts()
        return {
            "mode": self.mode,
            "graphs": g1 - g0,
            "graph_breaks": b1 - b0,
            "recompiles": g2 - g1,
            "cudagraph_skips": s2 - s0,
        }


def _dynamo_counts() -> tuple[int, int, int]:
    """(graphs compiled, graph breaks, graphs run without CUDA graphs) so far in this process,
    from torch._dynamo's counters."""
    counters = torch._dynamo.utils.counters
    graphs, breaks = counters["stats"]["unique_graphs"], sum(counters["graph_break"].values())
    return graphs, breaks, counters["inductor"]["cudagraph_skips"]


def compile_stats(step: Callable) -> dict | None:
    """What a CompiledStep compiled (CompiledStep.stats), or None for an eager step."""
    return step.stats() if isinstance(step, CompiledStep) else None


def versions() -> dict[str, str]:
    """This framework's package versions, for the record (shared.results adds python and numpy)."""
    found = {"torch": torch.__version__}
    # torchvision is optional here.
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        found["torchvision"] = importlib.metadata.version("torchvision")
    return found


def silent(line: str) -> None:
    """A `log` that prints nothing (train(..., log=None))."""
