"""Checkpoints in PyTorch: the tutorial's `torch.save(model.state_dict(), ...)`, read back with
`torch.load(..., weights_only=True)`.

The twin is impls/flax_mlp/checkpoint.py (Orbax). `save` writes a finished run's model (train.py
and sweep.py, when asked to); `load` reads one back as the framework-free weights of
shared/init.py, which either twin's set_weights takes: so a model trained here is evaluated by JAX
and the reverse (`python -m impls.flax_mlp evaluate PATH`, __main__.py). A file that cannot be
used raises shared.checkpoint.CheckpointError, one line.
"""

from __future__ import annotations

import os

import torch

from impls.torch_mlp import runtime
from impls.torch_mlp.model import MLP, build_model, get_weights
from shared.checkpoint import CheckpointError, check_shapes, write_config
from shared.config import Config
from shared.files import atomic_file
from shared.init import Weights


def save(model: MLP, path: str | os.PathLike, cfg: Config) -> None:
    """model.state_dict() saved by torch.save in the file `path` (atomically), its Config by it."""
    # On the CPU, so that a machine without a GPU loads it as it is.
    state = {name: tensor.cpu() for name, tensor in model.state_dict().items()}
    with atomic_file(path) as tmp:
        torch.save(state, tmp)
    write_config(path, cfg)


def load(path: str | os.PathLike, cfg: Config) -> Weights:
    """The torch.save file `path` as [(W (in, out), b (out,)), ...], checked against `cfg`."""
    try:
        # weights_only: tensors and plain containers only, no arbitrary pickled code
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a truncated zip, a pickle of something else
        raise _unreadable(path, e) from None
    check_shapes(path, cfg, _layer_shapes(path, state))
    with runtime.dtype_scope(cfg.dtype):
        model = build_model(cfg)
        model.load_state_dict(state)
        return get_weights(model)


def _layer_shapes(path, state) -> list[tuple[tuple, tuple]]:
    """(W (in, out), b) shapes of the layers in a state_dict, or CheckpointError naming its keys."""
    keys = sorted(state) if isinstance(state, dict) else []
    parts = [k.split(".") for k in keys]
    layers = sorted({p[1] for p in parts if len(p) == 3 and p[1].isdigit()}, key=int)
    wanted = [f"layers.{i}.{p}" for i in layers for p in ("weight", "bias")]
    if not layers or sorted(wanted) != keys or not all(torch.is_tensor(state[k]) for k in keys):
        found = ", ".join(keys[:6]) if keys else type(state).__name__
        raise CheckpointError(
            f"{path}: expected this MLP's torch state_dict (layers.0.weight, layers.0.bias, ...); "
            f"found {found}"
        )
    # torch keeps a weight as (out, in): its shape reversed is W's (in, out)
    return [
        (tuple(state[f"layers.{i}.weight"].shape[::-1]), tuple(state[f"layers.{i}.bias"].shape))
        for i in layers
    ]


def _unreadable(path, e: Exception) -> CheckpointError:
    first = (str(e).strip().splitlines() or [""])[0][:120]
    return CheckpointError(
        f"{path}: expected a torch.save file of a state_dict; found one torch cannot read "
        f"(truncated or damaged?): {type(e).__name__}: {first}"
    )
