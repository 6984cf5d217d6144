"""The sweep engine in JAX + Optax: a group of configs trained together, as one wider network.

The twin is impls/torch_mlp/sweep.py; docs/sweep-engine.md says how and why. Each member of a group
(shared/groups.py) trains exactly as train.py would train it alone: the weights get a member axis,
and learning rate, activation and output become per-member numbers. A whole epoch is one lax.scan
under jit, with the weights and Adam's state donated: one Python call per epoch.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from impls.flax_mlp import checkpoint, runtime
from impls.flax_mlp.model import LEAKY_SLOPE, build_model, get_weights, set_weights
from impls.flax_mlp.train import LOG_EVERY, device_data, epoch_order
from shared.config import Config
from shared.data import Dataset
from shared.groups import EVAL_BYTES, group_key, host_memory_budget, split_group
from shared.init import Weights
from shared.record import accuracy
from shared.sweep_records import GroupRecords
from shared.timing import StepClock

BETA1, BETA2, EPS = 0.9, 0.999, 1e-8  # train.py's Adam: optax.adam(b1=0.9, b2=0.999, eps=1e-8)
_ADAM = optax.scale_by_adam(b1=BETA1, b2=BETA2, eps=EPS)  # optax.adam, less its scale by -lr


def init_params(cfg: Config, members: int, dev: jax.Device) -> list[tuple[jax.Array, jax.Array]]:
    """The loop's initial weights, one copy per member: [(W, b), ...], first W (784, M, n) (a free
    view as (784, M*n) for the wide GEMM), b (M, n); then W (M, in, out), b (M, out)."""
    weights = get_weights(build_model(cfg))
    params = []
    for i, (w, b) in enumerate(weights):
        axis = 1 if i == 0 else 0  # the member axis: 1 in the first W, 0 everywhere else
        w = np.repeat(np.expand_dims(w, axis), members, axis=axis)
        b = np.repeat(b[None], members, axis=0)
        params.append((jax.device_put(w, dev), jax.device_put(b, dev)))
    return params


def member_constants(cfgs: list[Config], dev: jax.Device) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(-lr (M,), optax.adam's last transformation being a scale by -lr, negative slope (M,),
    softmax flag (M,) bool): what differs between members."""
    dtype = np.float64 if cfgs[0].dtype == "float64" else np.float32
    lr = jax.device_put(np.array([-c.learning_rate for c in cfgs], dtype=dtype), dev)
    slopes = jax.device_put(
        np.array([0.0 if c.activation == "relu" else LEAKY_SLOPE for c in cfgs], dtype=dtype), dev
    )
    softmax = jax.device_put(np.array([c.output == "softmax" for c in cfgs]), dev)
    return lr, slopes, softmax


def forward(params, slopes: jax.Array, softmax: jax.Array, images: jax.Array) -> jax.Array:
    """All members on one batch: images (B, 784) -> outputs (B, M, 10)."""
    (w, b), *rest = params
    batch, (members, width) = images.shape[0], b.shape
    # One wide GEMM for every member's first layer: (B, 784) @ (784, M*n), bias after (nnx.Linear)
    x = (images @ w.reshape(784, members * width)).reshape(batch, members, width) + b  # (B, M, n)
    for w, b in rest:
        x = jnp.where(x > 0, x, slopes[:, None] * x)  # x if x > 0 else slope * x, per member
        x = jnp.einsum("bmi,mio->bmo", x, w) + b  # (B, M, out): a batched matmul over members
    # The lab report's double softmax, only for the members that have it (see model.py).
    return jnp.where(softmax[:, None], jax.nn.softmax(x, axis=-1), x)  # (B, M, 10)


def loss_fn(
    params, slopes: jax.Array, softmax: jax.Array, images: jax.Array, labels: jax.Array
) -> jax.Array:
    """Every member's mean cross-entropy (train.py's criterion): (M,)."""
    outputs = forward(params, slopes, softmax, images)  # (B, M, 10)
    targets = jnp.broadcast_to(labels[:, None], outputs.shape[:2])  # (B, M)
    return optax.softmax_cross_entropy_with_integer_labels(outputs, targets).mean(axis=0)


def init_adam(params) -> optax.ScaleByAdamState:
    """Adam's state for the stacked weights: moments per tensor, the step count."""
    return _ADAM.init(params)


@jax.tree_util.register_dataclass  # a pytree of arrays: jit, scan and donation take it whole
@dataclasses.dataclass(frozen=True)
class State:
    """What an epoch changes: the stacked weights, Adam's state, who is alive (M,) bool. JAX's
    arrays are immutable: each epoch returns a new State (the old one is donated to it)."""

    params: list
    opt_state: optax.ScaleByAdamState
    alive: jax.Array


def adam_step(params, grads, opt_state: optax.ScaleByAdamState, lr: jax.Array, alive: jax.Array):
    """optax.adam's update, each member with its lr: (params, opt_state), new. optax.adam is
    scale_by_adam, then scale(-lr): with -lr per member, each member's slice rounds exactly as an
    independent optax.adam. Frozen members are set to 0."""
    updates, opt_state = _ADAM.update(grads, opt_state)
    leaves, tree = jax.tree.flatten(params)
    new = [
        jnp.where(_along_members(alive, i, p), p + _along_members(lr, i, p) * u, 0)
        for i, (p, u) in enumerate(zip(leaves, jax.tree.leaves(updates)))
    ]
    return jax.tree.unflatten(tree, new), opt_state


def freeze(state: State) -> State:
    """Zero the weights and Adam state of members no longer alive (their step size is already 0),
    in a new State."""

    def zero(tree):
        leaves, structure = jax.tree.flatten(tree)
        alive = [_along_members(state.alive, i, t) for i, t in enumerate(leaves)]
        return jax.tree.unflatten(structure, [jnp.where(a, t, 0) for a, t in zip(alive, leaves)])

    opt_state = state.opt_state._replace(mu=zero(state.opt_state.mu), nu=zero(state.opt_state.nu))
    return State(zero(state.params), opt_state, state.alive)


def train_step(
    params,
    opt_state: optax.ScaleByAdamState,
    alive: jax.Array,
    members,
    images: jax.Array,
    labels: jax.Array,
):
    """One Adam step of every member on one shared batch: (params, opt_state, losses (M,))."""
    lr, slopes, softmax = members

    def total(p):  # jax.value_and_grad wants a scalar: the summed losses, the losses as aux
        losses = loss_fn(p, slopes, softmax, images, labels)  # (M,)
        return losses.sum(), losses

    # Members never mix, so d(sum of losses)/d(member m's weights) = d(loss m)/d(them): one
    # backward pass for all.
    (_, losses), grads = jax.value_and_grad(total, has_aux=True)(params)
    params, opt_state = adam_step(params, grads, opt_state, lr, alive)
    return params, opt_state, losses


# The State's arrays are updated in place (donated); the step function is part of the program.
@functools.partial(jax.jit, donate_argnums=0, static_argnames="step_fn")
def train_epoch(
    state: State,
    members,
    images: jax.Array,
    labels: jax.Array,
    order: jax.Array,
    step_fn: Callable = train_step,
) -> tuple[State, jax.Array]:
    """One epoch over order (steps, B): (the new State, losses (steps, M)), one lax.scan."""

    def step(state, xs):
        params, opt_state, alive = state.params, state.opt_state, state.alive
        i, index = xs  # step number, (B,)
        params, opt_state, losses = step_fn(
            params, opt_state, alive, members, images[index], labels[index]
        )
        # Where train.py reads the loss and stops a run whose loss is not finite.
        alive = jnp.where((i + 1) % LOG_EVERY == 0, alive & jnp.isfinite(losses), alive)
        return State(params, opt_state, alive), losses

    return jax.lax.scan(step, state, (jnp.arange(order.shape[0]), order))


def compile_epoch(
    cfg: Config, state: State, members, images: jax.Array, labels: jax.Array, order
) -> tuple[Callable, Callable]:
    """(run_epoch(state, members, images, labels, order), the step it runs), compiled now for
    these shapes where there is something to compile, so that the compile is timed as warm-up."""
    step = train_step  # jit traces it into the epoch's program, whatever cfg.compile says
    run_epoch = train_epoch.lower(state, members, images, labels, order, step).compile()
    return run_epoch, step


def evaluate(
    params, members, images: jax.Array, labels: jax.Array
) -> tuple[np.ndarray, np.ndarray]:
    """(mean loss (M,), correct predictions (M,)) over all `images`, a few members at a time."""
    _, slopes, softmax = members
    count, widest = params[0][1].shape[0], max(b.shape[-1] for _, b in params)
    chunk = max(1, EVAL_BYTES // (3 * images.shape[0] * widest * images.dtype.itemsize))
    losses, corrects = [], []
    for lo in range(0, count, chunk):
        part = _members(params, lo, lo + chunk)
        loss, correct = _evaluate_chunk(
            part, slopes[lo : lo + chunk], softmax[lo : lo + chunk], images, labels
        )
        losses.append(loss)
        corrects.append(correct)
    return np.asarray(jnp.concatenate(losses)), np.asarray(jnp.concatenate(corrects))


def memory_budget(dev: jax.Device) -> int:
    """Bytes a group may plan to use: half the GPU's free memory, or half the host's available."""
    stats = dev.memory_stats() if dev.platform == "gpu" else None
    if stats and "bytes_limit" in stats:
        return (stats["bytes_limit"] - stats.get("bytes_in_use", 0)) // 2
    return host_memory_budget()


def train_group(
    cfgs: list[Config],
    data: Dataset,
    device: str = "auto",
    log: Callable[[str], object] | None = print,
    progress: Callable[[int, int, int], object] | None = None,
    *,
    save: dict | None = None,
) -> list[dict]:
    """Train the members `cfgs` of one group (shared/groups.py) together, in parts that fit memory:
    a loop-shaped record each, in order, engine "sweep", its step time the group's / M.
    `progress(epoch, epochs, members)` is told after each epoch (compare.py's progress bar).
    `save`: {config key: path}, where each member that ends "ok" is saved as train.py saves it."""
    keys = {group_key(c) for c in cfgs}
    if len(keys) != 1:
        raise ValueError(
            f"train_group: the configs form {len(keys)} groups, not one (they differ beyond "
            f"learning_rate, activation, output)"
        )
    dev = runtime.resolve_device(device)
    records = []
    for part in split_group(cfgs, memory_budget(dev)):
        records += _train_part(part, data, dev, log or runtime.silent, save or {}, progress)
    return records


def _train_part(
    cfgs: list[Config],
    data: Dataset,
    dev: jax.Device,
    log: Callable[[str], object],
    save: dict,
    progress: Callable[[int, int, int], object] | None = None,
) -> list[dict]:
    start = time.perf_counter()
    cfg, count = cfgs[0], len(cfgs)  # cfg: what the members share
    records = GroupRecords("jax", cfgs, log, LOG_EVERY, progress)  # shared/sweep_records.py
    with runtime.matmul_precision(cfg.tf32), runtime.dtype_scope(cfg.dtype):
        train_images, train_labels, test_images, test_labels = device_data(cfg, data, dev)
        params = init_params(cfg, count, dev)
        alive = jax.device_put(np.ones(count, dtype=bool), dev)  # (M,)
        state = State(params, init_adam(params), alive)
        members = member_constants(cfgs, dev)

        clock = StepClock(runtime.device_sync(dev))
        order = epoch_order(cfg, data, 0, dev)
        t0 = time.perf_counter()
        run_epoch, step = compile_epoch(cfg, state, members, train_images, train_labels, order)
        clock.record_warmup(time.perf_counter() - t0)
        for epoch in range(cfg.epochs):
            order = epoch_order(cfg, data, epoch, dev) if epoch else order  # (steps, B)
            clock.start_epoch()
            state, losses = run_epoch(state, members, train_images, train_labels, order)
            clock.add_steps(cfg.steps_per_epoch)
            clock.end_epoch(losses)
            losses = np.asarray(losses)  # (steps, M): the epoch's losses, fetched at once
            test_loss, correct = evaluate(state.params, members, test_images, test_labels)
            test_accuracy = accuracy(correct, len(data.test_labels), cfg.dtype)  # (M,)
            alive = records.record_epoch(epoch, losses, test_loss, test_accuracy)  # (M,) bool
            state = freeze(dataclasses.replace(state, alive=jax.device_put(alive, dev)))
            if not alive.any():
                break
        save_members(cfgs, state.params, records.status, save)

    wall_s = time.perf_counter() - start
    return records.records(data, clock, wall_s, **runtime.record_fields(dev, step))


def save_members(cfgs: list[Config], params, status: list[str], save: dict) -> None:
    """Each member that ended "ok" and has a path in `save` ({config key: path}): its weights split
    out of the stacked ones, set into the loop's model of its config and saved as train.py saves
    that model (checkpoint.py), so that both engines leave the same files."""
    for j, cfg in enumerate(cfgs):
        if status[j] == "ok" and cfg.key() in save:
            model = build_model(cfg)
            set_weights(model, member_weights(params, j))
            checkpoint.save(model, save[cfg.key()], cfg)


def member_weights(params, j: int) -> Weights:
    """Member j's weights out of the stacked ones: [(W (in, out), b (out,)), ...] as numpy."""
    # The member axis kept, of length 1: axis 1 of the first W (784, 1, n), axis 0 elsewhere.
    (w, b), *rest = _members(params, j, j + 1)
    first = (np.asarray(w[:, 0]), np.asarray(b[0]))
    return [first] + [(np.asarray(w[0]), np.asarray(b[0])) for w, b in rest]


def _along_members(vec: jax.Array, index: int, p: jax.Array) -> jax.Array:
    """vec (M,) shaped to broadcast along the member axis of flat parameter `index`."""
    shape = [1] * p.ndim
    shape[1 if index == 0 else 0] = vec.shape[0]
    return vec.reshape(shape)


def _members(params, lo: int, hi: int):
    """Members lo..hi-1 of the stacked weights (torch: views; JAX: copies)."""
    (w, b), *rest = params
    return [(w[:, lo:hi], b[lo:hi])] + [(w[lo:hi], b[lo:hi]) for w, b in rest]


@jax.jit
def _evaluate_chunk(params, slopes, softmax, images, labels):
    outputs = forward(params, slopes, softmax, images)  # (N, c, 10)
    targets = jnp.broadcast_to(labels[:, None], outputs.shape[:2])
    loss = optax.softmax_cross_entropy_with_integer_labels(outputs, targets).mean(axis=0)
    return loss, (outputs.argmax(axis=-1) == targets).sum(axis=0)
