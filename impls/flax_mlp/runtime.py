"""JAX's process plumbing around the loop: devices, precision, syncs, x64 mode, versions.

The twin is impls/torch_mlp/runtime.py. Kept out of train.py so that the lesson shows only the loop.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
from collections.abc import Callable

import flax
import jax
import optax


def matmul_precision(tf32: bool):
    """float32 matmuls as IEEE float32, or TF32 on GPUs that have it when `tf32`. CPUs ignore it.
    A context manager; the precision is part of jit's cache key (another precision retraces)."""
    precision = "tensorfloat32" if tf32 else "highest"  # "highest": no TF32
    return jax.default_matmul_precision(precision)


def dtype_scope(dtype: str) -> contextlib.AbstractContextManager:
    """What a run in `dtype` needs switched on process-wide: in JAX its x64 mode, put back after
    (without it, float64 arrays are silently made float32)."""
    # Older jax has it in jax.experimental only.
    enable_x64 = jax.enable_x64 if hasattr(jax, "enable_x64") else jax.experimental.enable_x64
    return enable_x64(dtype == "float64")


def resolve_device(device: str) -> jax.Device:
    """ "auto": the GPU if JAX sees one, else the CPU; "cpu"; "gpu" (RuntimeError if none)."""
    if device not in ("auto", "cpu", "gpu"):
        raise ValueError(f"device: got {device!r}; allowed: auto | cpu | gpu")
    if device != "cpu" and _gpus():
        return _gpus()[0]
    if device == "gpu":
        raise RuntimeError(
            "--device gpu: JAX sees no GPU (jax.devices('gpu') finds none; is a CUDA build of "
            "jaxlib installed?); allowed here: auto | cpu"
        )
    return jax.devices("cpu")[0]


def describe_device(dev: jax.Device) -> str:
    """ "cpu", or e.g. "gpu:0 NVIDIA H100 80GB HBM3" (the same spelling in both twins)."""
    return f"gpu:{dev.id} {dev.device_kind}" if dev.platform == "gpu" else "cpu"


def device_sync(dev: jax.Device) -> Callable[[object], None]:
    """What StepClock waits on: the step's output itself (jax.block_until_ready), on any device."""
    return jax.block_until_ready


def _gpus() -> list[jax.Device]:
    try:
        return jax.devices("gpu")
    except RuntimeError:  # no GPU backend in this jaxlib, or no GPU
        return []


def record_fields(dev: jax.Device, step: Callable) -> dict:
    """The record's device, versions and compiled (None: jit's compiles are not torch.compile's)."""
    return {"device": describe_device(dev), "versions": versions(), "compiled": None}


def versions() -> dict[str, str]:
    """This framework's package versions, for the record (which adds python and numpy)."""
    found = {"jax": jax.__version__, "flax": flax.__version__, "optax": optax.__version__}
    # jaxlib's version is the wheel's.
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        found["jaxlib"] = importlib.metadata.version("jaxlib")
    return found


def silent(line: str) -> None:
    """A `log` that prints nothing (train(..., log=None))."""
