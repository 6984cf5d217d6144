"""The compiled loop step (Config.compile): train.py's step as one pure function, compiled whole.

A fenced speed path, not the lesson; twin of impls/torch_mlp/fast.py. Why: at a small step a GPU
waits on the host, and nnx.jit flattens every Variable on each call; here, as Flax's performance
guide recommends, nnx.split once and a jax.jit of a pure step over flat, donated arrays.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
from flax import nnx


class FastStep:
    """step(images, labels) -> the loss, not synced: one jitted call that replaces the weights and
    Adam state it holds (donated); write_back puts them into the model and optimizer."""

    def __init__(self, loss_fn: Callable, model: nnx.Module, optimizer: nnx.Optimizer, dev):
        graphdef, state = nnx.split((model, optimizer))
        # A flat list of arrays: the cheapest pytree for jit to flatten on every call.
        self.leaves, self.treedef = jax.tree.flatten(state)
        self.targets = (model, optimizer)
        pure = functools.partial(
            _pure_step, loss_fn=loss_fn, graphdef=graphdef, treedef=self.treedef
        )
        self.fn = jax.jit(pure, donate_argnums=0)  # on `dev`: where the leaves already are

    def __call__(self, images: jax.Array, labels: jax.Array) -> jax.Array:
        self.leaves, loss = self.fn(self.leaves, images, labels)
        return loss


def write_back(step: Callable) -> None:
    """Put a FastStep's state where train() reads it: into the model and optimizer (their arrays
    were donated to the first step), before evaluate."""
    if isinstance(step, FastStep):
        nnx.update(step.targets, jax.tree.unflatten(step.treedef, step.leaves))


def _pure_step(leaves, images, labels, *, loss_fn, graphdef, treedef):
    """One Adam step, the two lines of train.py's train_step on the model and optimizer rebuilt
    from `leaves` (nnx.merge runs at trace time only): (the new leaves, the loss)."""
    model, optimizer = nnx.merge(graphdef, jax.tree.unflatten(treedef, leaves))
    loss, grads = nnx.value_and_grad(loss_fn)(model, images, labels)
    optimizer.update(model, grads)
    return jax.tree.leaves(nnx.state((model, optimizer))), loss
