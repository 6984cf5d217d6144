"""Process plumbing for the PyTorch twin: devices, precision, dtypes, syncs and versions.

Not part of the lesson (that is train.py): what a run needs from its process around the training
loop. Mirrored function for function by impls/flax_mlp/runtime.py.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
from collections.abc import Callable

import torch


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
    (JAX's twin has to enable its x64 mode here.)
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


def versions() -> dict[str, str]:
    """This framework's package versions, for the record (shared.results adds python and numpy)."""
    found = {"torch": torch.__version__}
    # torchvision is optional here.
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        found["torchvision"] = importlib.metadata.version("torchvision")
    return found


def silent(line: str) -> None:
    """A `log` that prints nothing (train(..., log=None))."""
