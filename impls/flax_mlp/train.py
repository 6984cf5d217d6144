"""Training and evaluation in Flax NNX + Optax: the tutorial's loop, with the dataset on the device.

Step 4 of the reading order (this package's __init__.py). Mirrored function for function by
impls/torch_mlp/train.py: `diff` the two files to see only the framework lines. Read top to bottom:
loss_fn, train_step, evaluate, get_batch, then train, which runs them; the set-up helpers it calls
come after it. The loop is yunjey's pytorch-tutorial feed-forward example ("the tutorial":
cross-entropy, Adam, `Epoch [1/5], Step [100/600], Loss: 0.3124` every 100 steps), changed in four
ways:

* the dataset moves to the device once; each step gathers its batch there (`get_batch`), in the
  shared batch order of shared/batches.py (no DataLoader, no host-to-device copy per step);
* each step's loss stays on the device and is fetched once per epoch; the log lines, every 100
  steps, are the only other syncs, so a GPU is never stalled by the Python loop;
* the test set is evaluated after every epoch, outside the timed steps (shared/timing.py);
* a loss that turns NaN/inf ends the run early with status "diverged" instead of training on.

Speed: every function the loop calls per step is compiled (jit), since an eager JAX op costs far
more Python time than its torch twin (an eager `images[index]` gather alone took ~0.7 ms on the
CPU, jitted ~0.06 ms). The step goes through `nnx.cached_partial` (see `build_training`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from impls.flax_mlp import runtime
from impls.flax_mlp.model import MLP, build_model
from shared.batches import epoch_index_matrix
from shared.config import Config
from shared.data import Dataset, scale_images
from shared.record import accuracy, epoch_entry, make_record
from shared.timing import StepClock

LOG_EVERY = 100  # steps between log lines, as in the tutorial


def criterion(outputs: jax.Array, labels: jax.Array) -> jax.Array:
    """Mean cross-entropy over the batch: outputs (B, 10), integer labels (B,) -> 0-d.

    The tutorial's loss, torch's nn.CrossEntropyLoss(), as optax spells it.
    """
    return optax.softmax_cross_entropy_with_integer_labels(outputs, labels).mean()


def loss_fn(model: MLP, images: jax.Array, labels: jax.Array) -> jax.Array:
    """Mean cross-entropy of the model's outputs: (B, 784) float32, (B,) int -> 0-d.

    With output="softmax" the outputs are already probabilities and this applies a second softmax
    (the lab report's double softmax; see model.py): the loss cannot go below ~1.461.
    """
    return criterion(model(images), labels)


# Compiled into one program; model and optimizer are NNX objects: nnx.jit carries their state in
# and out.
@nnx.jit
def train_step(
    model: MLP, optimizer: nnx.Optimizer, images: jax.Array, labels: jax.Array
) -> jax.Array:
    """One Adam step on one batch, updating model and optimizer in place; the loss, not synced."""
    loss, grads = nnx.value_and_grad(loss_fn)(model, images, labels)
    optimizer.update(model, grads)
    # A 0-d array on the device: reading it (float()) would wait for the computation.
    return loss


@nnx.jit  # evaluation compiled into one program (JAX records no autograd graph unless asked)
def evaluate(model: MLP, images: jax.Array, labels: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(mean loss, number of correct predictions) over all `images` at once, 0-d on the device.

    No switch to an evaluation mode (model.eval()) first: the MLP has no dropout or batch norm, so
    training and evaluation compute the same function. The count becomes the accuracy in train(),
    in the run's dtype (shared.results.accuracy), as the tutorial counts its correct predictions.
    """
    outputs = model(images)  # (N, 10)
    return criterion(outputs, labels), (outputs.argmax(axis=1) == labels).sum()


@jax.jit  # one compiled gather instead of two eager indexing ops, each ~10x slower from Python
def get_batch(
    images: jax.Array, labels: jax.Array, order: jax.Array, i: int
) -> tuple[jax.Array, jax.Array]:
    """Batch `i` of an epoch, gathered on the device: order (steps, B) -> (B, 784), (B,)."""
    index = order[i]  # (B,)
    return images[index], labels[index]


def train(
    cfg: Config, data: Dataset, device: str = "auto", log: Callable[[str], object] | None = print
) -> dict:
    """Train `cfg` on `data`, evaluating after every epoch; returns shared.results' record.

    `log` gets the tutorial's lines (None: silent). A loss that turns NaN/inf stops the run with
    status "diverged"; a missing GPU raises RuntimeError; any other error propagates.
    """
    start = time.perf_counter()
    log = log or runtime.silent
    dev = runtime.resolve_device(device)
    with runtime.matmul_precision(cfg.tf32), runtime.dtype_scope(cfg.dtype):
        train_images, train_labels, test_images, test_labels = device_data(cfg, data, dev)
        model, optimizer, step = build_training(cfg, dev)

        clock = StepClock(runtime.device_sync(dev))
        epochs, curve, status = [], [], "ok"
        for epoch in range(cfg.epochs):
            header = f"Epoch [{epoch + 1}/{cfg.epochs}]"
            order = epoch_order(cfg, data, epoch, dev)  # (steps, B)
            losses = train_epoch(step, (train_images, train_labels), order, clock, log, header)
            curve.extend(losses.tolist())
            test_loss, correct = (float(x) for x in evaluate(model, test_images, test_labels))
            test_accuracy = float(accuracy(correct, len(data.test_labels), cfg.dtype))
            if not (np.isfinite(losses).all() and math.isfinite(test_loss)):
                status = "diverged"
                log(f"{header}: the loss is no longer finite after {len(curve)} steps; stopping")
                break
            epochs.append(epoch_entry(epoch, losses, test_loss, test_accuracy))
            log(f"{header}, Test Loss: {test_loss:.4f}, Test Accuracy: {100 * test_accuracy:.2f} %")

    return make_record(
        backend="jax",
        cfg=cfg,
        data=data,
        status=status,
        epochs=epochs,
        loss_curve=curve,
        timing=clock.summary(cfg.batch_size),
        wall_s=time.perf_counter() - start,
        device=runtime.describe_device(dev),
        versions=runtime.versions(),
        compiled=runtime.compile_stats(step),
    )


# ------------------------------------------------------------- what train() calls, in its order


def device_data(cfg: Config, data: Dataset, dev: jax.Device) -> tuple[jax.Array, ...]:
    """The whole dataset on `dev`, moved once; every batch is then gathered there (get_batch).

    (train images (60000, 784) float32 | float64, train labels (60000,) int32, JAX's default int,
    test images (10000, 784), test labels (10000,)).
    """
    return (
        jax.device_put(scale_images(data.train_images, cfg.dtype), dev),
        jax.device_put(data.train_labels.astype(np.int32), dev),
        jax.device_put(scale_images(data.test_images, cfg.dtype), dev),
        jax.device_put(data.test_labels.astype(np.int32), dev),
    )


def build_training(cfg: Config, dev: jax.Device) -> tuple[MLP, nnx.Optimizer, Callable]:
    """Model and optimizer on `dev`, and the step the hot loop calls with a batch only."""
    model = build_model(cfg)
    nnx.update(model, jax.device_put(nnx.state(model), dev))  # the model's arrays onto `dev`
    optimizer = build_optimizer(model, cfg)
    # A plain nnx.jit call walks the Python object graph of model and optimizer on every call
    # (Flax's "Performance considerations" guide), which costs a visible share of a step this small
    # (~2.7 vs ~2.1 ms on the CPU). cached_partial walks it once. It is jitted whatever
    # cfg.compile says (runtime.CompiledStep passes it through).
    step = nnx.cached_partial(train_step, model, optimizer)
    return model, optimizer, runtime.CompiledStep(step, dev) if cfg.compile else step


def build_optimizer(model: MLP, cfg: Config) -> nnx.Optimizer:
    """Adam with every hyperparameter spelled out, the same in both twins.

    Both put eps outside the square root, after bias correction: torch divides by
    sqrt(v_hat) + eps, optax.adam by sqrt(v_hat + eps_root) + eps with eps_root = 0.
    """
    return nnx.Optimizer(
        model, optax.adam(cfg.learning_rate, b1=0.9, b2=0.999, eps=1e-8), wrt=nnx.Param
    )


def epoch_order(cfg: Config, data: Dataset, epoch: int, dev: jax.Device) -> jax.Array:
    """The epoch's batches, rows of training indices (shared/batches.py), on `dev`: (steps, B)."""
    order = epoch_index_matrix(cfg.seed, epoch, len(data.train_labels), cfg.batch_size)
    return jax.device_put(order.astype(np.int32), dev)


def train_epoch(
    step: Callable,
    train_set: tuple,
    order: jax.Array,
    clock: StepClock,
    log: Callable[[str], object],
    header: str,
) -> np.ndarray:
    """One epoch of `step` over the batches of `order`, timed by `clock`: its losses (steps,).

    `train_set` is (images, labels), the training set on the device. Every LOG_EVERY steps the
    tutorial's line goes to `log`, `header` ("Epoch [1/5]") first; a loss found NaN/inf there ends
    the epoch at once (train() then stops the run).
    """
    losses = []
    clock.start_epoch()
    for i in range(len(order)):
        loss = step(*get_batch(*train_set, order, i))
        clock.after_step(loss)
        losses.append(loss)
        if (i + 1) % LOG_EVERY == 0:
            value = float(loss)  # a sync, as in the tutorial, once every LOG_EVERY steps
            log(f"{header}, Step [{i + 1}/{len(order)}], Loss: {value:.4f}")
            if not math.isfinite(value):
                break
    clock.end_epoch(loss)
    return np.asarray(jnp.stack(losses))  # the epoch's losses, fetched at once
