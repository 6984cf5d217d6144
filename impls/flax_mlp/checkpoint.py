"""Checkpoints in Flax NNX: the model's state (nnx.state) saved and restored with Orbax.

The twin is impls/torch_mlp/checkpoint.py (torch.save). `save` writes a finished run's model
(train.py and sweep.py, when asked to); `load` reads one back as the framework-free weights of
shared/init.py, which either twin's set_weights takes: so a model trained here is evaluated by
PyTorch and the reverse (`python -m impls.torch_mlp evaluate PATH`, __main__.py). A checkpoint
that cannot be used raises shared.checkpoint.CheckpointError, one line.
"""

from __future__ import annotations

import os

import jax.numpy as jnp
import orbax.checkpoint as ocp
from flax import nnx

from impls.flax_mlp import runtime
from impls.flax_mlp.model import MLP, get_weights
from shared.checkpoint import CheckpointError, check_shapes, write_config
from shared.config import Config
from shared.files import atomic_folder
from shared.init import Weights


def save(model: MLP, path: str | os.PathLike, cfg: Config) -> None:
    """nnx.state(model) saved by Orbax in the folder `path` (atomically), its Config by it."""
    with atomic_folder(path) as tmp:
        checkpointer = ocp.StandardCheckpointer()
        checkpointer.save(os.path.abspath(tmp), nnx.state(model))  # Orbax wants it absolute
        checkpointer.wait_until_finished()
    write_config(path, cfg)


def load(path: str | os.PathLike, cfg: Config) -> Weights:
    """The Orbax checkpoint `path` as [(W (in, out), b (out,)), ...], checked against `cfg`."""
    path = os.path.abspath(path)
    checkpointer = ocp.StandardCheckpointer()
    try:
        state = checkpointer.metadata(path).item_metadata.tree  # shapes, no arrays yet
    except Exception as e:  # a folder cut short, or another program's
        raise _unreadable(path, e) from None
    check_shapes(path, cfg, _layer_shapes(path, state))
    with runtime.dtype_scope(cfg.dtype):
        # The NNX way: an abstract model (shapes only), its state restored into, then merged.
        dtype = jnp.dtype(cfg.dtype)
        abstract = nnx.eval_shape(
            lambda: MLP(cfg.layer_sizes, cfg.activation, cfg.output, dtype, rngs=nnx.Rngs(0))
        )
        graphdef, abstract_state = nnx.split(abstract)
        try:
            restored = checkpointer.restore(path, abstract_state)
        except Exception as e:
            raise _unreadable(path, e) from None
        return get_weights(nnx.merge(graphdef, restored))


def _layer_shapes(path, tree) -> list[tuple[tuple, tuple]]:
    """(W (in, out), b) shapes of the layers in Orbax's metadata, or CheckpointError naming it."""
    try:
        layers = tree["layers"]
        return [
            (tuple(layers[i]["kernel"]["value"].shape), tuple(layers[i]["bias"]["value"].shape))
            for i in sorted(layers, key=int)
        ]
    except (KeyError, TypeError, ValueError, AttributeError):
        found = ", ".join(map(str, tree)) if isinstance(tree, dict) else type(tree).__name__
        raise CheckpointError(
            f"{path}: expected this MLP's NNX state (layers/0/kernel, layers/0/bias, ...); "
            f"found {found}"
        ) from None


def _unreadable(path, e: Exception) -> CheckpointError:
    first = (str(e).strip().splitlines() or [""])[0][:120]
    return CheckpointError(
        f"{path}: expected an Orbax checkpoint of an NNX state; found one Orbax cannot read "
        f"(truncated or damaged?): {type(e).__name__}: {first}"
    )
