"""PyTorch's process plumbing around the loop: devices, precision, syncs, versions.

The twin is impls/flax_mlp/runtime.py. Kept out of train.py so that the lesson shows only the loop.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
from collections.abc import Callable

import torch

from impls.torch_mlp.fast import CompiledStep


@contextlib.contextmanager
def matmul_precision(tf32: bool):
    """float32 matmuls as IEEE float32, or TF32 on GPUs that have it when `tf32`. CPUs ignore it."""
    saved = torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32
    torch.set_float32_matmul_precision("high" if tf32 else "highest")  # "highest": no TF32
    torch.backends.cudnn.allow_tf32 = tf32  # convolutions (none here): nothing else uses TF32
    try:
        yield
    finally:  # process-wide knobs: put them back for whatever runs next
        torch.set_float32_matmul_precision(saved[0])
        torch.backends.cudnn.allow_tf32 = saved[1]


def dtype_scope(dtype: str) -> contextlib.AbstractContextManager:
    """What a run in `dtype` needs switched on process-wide: in torch nothing (tensors carry it)."""
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


def record_fields(dev: torch.device, step: Callable) -> dict:
    """The record's device, versions and compiled (what a CompiledStep compiled; None: eager)."""
    compiled = step.stats() if isinstance(step, CompiledStep) else None
    return {"device": describe_device(dev), "versions": versions(), "compiled": compiled}


def versions() -> dict[str, str]:
    """This framework's package versions, for the record (which adds python and numpy)."""
    found = {"torch": torch.__version__}
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        found["torchvision"] = importlib.metadata.version("torchvision")
    return found


def silent(line: str) -> None:
    """A `log` that prints nothing (train(..., log=None))."""
