"""Training and evaluation in Flax NNX + Optax: the seed's loop, with the whole dataset resident on the device.

Mirrored function for function by impls/torch_mlp/train.py: `diff` the two files to see only the
framework lines. The loop is yunjey's pytorch-tutorial feed-forward example (cross-entropy,
Adam, `Epoch [1/5], Step [100/600], Loss: 0.3124` every 100 steps), changed in four ways:

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
from shared.results import make_record
from shared.timing import StepClock

LOG_EVERY = 100  # steps between log lines, as in the seed

# Mean cross-entropy over the batch, from the model's outputs and integer labels, as in the seed.
criterion = lambda outputs, labels: optax.softmax_cross_entropy_with_integer_labels(
    outputs, labels
).mean()  # noqa: E731


def build_optimizer(model: MLP, cfg: Config) -> nnx.Optimizer:
    """Adam with every hyperparameter spelled out, the same in both twins.

    Both put eps outside the square root, after bias correction: torch divides by
    sqrt(v_hat) + eps, optax.adam by sqrt(v_hat + eps_root) + eps with eps_root = 0.
    """
    return nnx.Optimizer(
        model, optax.adam(cfg.learning_rate, b1=0.9, b2=0.999, eps=1e-8), wrt=nnx.Param
    )


def loss_fn(model: MLP, images: jax.Array, labels: jax.Array) -> jax.Array:
    """Mean cross-entropy of the model's outputs: (B, 784) float32, (B,) int -> 0-d.

    With output="softmax" the outputs are already probabilities and this applies a second softmax
    (the seed report's double softmax; see model.py): the loss cannot go below ~1.461.
    """
    return criterion(model(images), labels)


@nnx.jit  # compiled into one program; model and optimizer are NNX objects: nnx.jit carries their state in and out
def train_step(
    model: MLP, optimizer: nnx.Optimizer, images: jax.Array, labels: jax.Array
) -> jax.Array:
    """One Adam step on one batch, updating model and optimizer in place; returns the loss, not synced."""
    loss, grads = nnx.value_and_grad(loss_fn)(model, images, labels)
    optimizer.update(model, grads)
    return loss  # a 0-d array on the device: reading it (float()) would wait for the computation


@nnx.jit  # evaluation compiled into one program (JAX records no autograd graph unless asked)
def evaluate(model: MLP, images: jax.Array, labels: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(mean loss, accuracy as a fraction) over all `images` at once, as 0-d arrays on the device.

    No switch to an evaluation mode (model.eval()) first: the MLP has no dropout or batch norm, so
    training and evaluation compute the same function.
    """
    outputs = model(images)  # (N, 10)
    return criterion(outputs, labels), (outputs.argmax(axis=1) == labels).mean()


@jax.jit  # one compiled gather instead of two eager indexing ops, each ~10x slower from Python
def get_batch(
    images: jax.Array, labels: jax.Array, order: jax.Array, i: int
) -> tuple[jax.Array, jax.Array]:
    """Batch `i` of an epoch, gathered on the device: order (steps, B) -> (B, 784), (B,)."""
    index = order[i]  # (B,)
    return images[index], labels[index]


def device_data(cfg: Config, data: Dataset, dev: jax.Device) -> tuple[jax.Array, ...]:
    """The whole dataset on `dev`, moved once; every batch is then gathered there (get_batch)."""
    train_images = jax.device_put(
        scale_images(data.train_images, cfg.dtype), dev
    )  # (60000, 784) float32 | float64
    train_labels = jax.device_put(
        data.train_labels.astype(np.int32), dev
    )  # (60000,) int32, JAX's default int
    test_images = jax.device_put(scale_images(data.test_images, cfg.dtype), dev)  # (10000, 784)
    test_labels = jax.device_put(data.test_labels.astype(np.int32), dev)  # (10000,)
    return train_images, train_labels, test_images, test_labels


def build_training(cfg: Config, dev: jax.Device) -> tuple[MLP, nnx.Optimizer, Callable]:
    """Model and optimizer on `dev`, and the step the hot loop calls with a batch only."""
    model = build_model(cfg)
    nnx.update(model, jax.device_put(nnx.state(model), dev))  # the model's arrays onto `dev`
    optimizer = build_optimizer(model, cfg)
    # A plain nnx.jit call walks the Python object graph of model and optimizer on every call (Flax's
    # "Performance considerations" guide), which costs a visible share of a step this small (~2.7 vs ~2.1 ms
    # on the CPU). cached_partial walks it once.
    step = nnx.cached_partial(train_step, model, optimizer)
    return model, optimizer, runtime.CompiledStep(step, dev) if cfg.compile else step


def train(
    cfg: Config, data: Dataset, device: str = "auto", log: Callable[[str], object] | None = print
) -> dict:
    """Train `cfg` on `data`, evaluating after every epoch; returns shared.results' record.

    `log` gets the seed's lines (None: silent). A loss that turns NaN/inf stops the run with status
    "diverged"; a missing GPU raises RuntimeError; any other error propagates.
    """
    start = time.perf_counter()
    log = log or runtime.silent
    dev = runtime.resolve_device(device)
    with runtime.matmul_precision(cfg.tf32), runtime.dtype_scope(cfg.dtype):
        train_images, train_labels, test_images, test_labels = device_data(cfg, data, dev)
        model, optimizer, step = build_training(cfg, dev)

        clock = StepClock(runtime.device_sync(dev))
        epochs, curve, status = [], [], "ok"
        steps = cfg.steps_per_epoch
        for epoch in range(cfg.epochs):
            order = jax.device_put(
                epoch_index_matrix(cfg.seed, epoch, len(data.train_labels), cfg.batch_size).astype(
                    np.int32
                ),
                dev,
            )  # (steps, B)
            losses = []
            clock.start_epoch()
            for i in range(steps):
                loss = step(*get_batch(train_images, train_labels, order, i))
                clock.after_step(loss)
                losses.append(loss)
                if (i + 1) % LOG_EVERY == 0:
                    value = float(loss)  # a sync, as in the seed, once every LOG_EVERY steps
                    log(
                        f"Epoch [{epoch + 1}/{cfg.epochs}], Step [{i + 1}/{steps}], Loss: {value:.4f}"
                    )
                    if not math.isfinite(value):
                        break
            clock.end_epoch(loss)
            epoch_losses = np.asarray(
                jnp.stack(losses)
            )  # (steps,): the epoch's losses, fetched at once
            curve.extend(epoch_losses.tolist())
            test_loss, test_accuracy = (float(x) for x in evaluate(model, test_images, test_labels))
            if not (np.isfinite(epoch_losses).all() and math.isfinite(test_loss)):
                status = "diverged"
                log(
                    f"Epoch [{epoch + 1}/{cfg.epochs}]: the loss is no longer finite after {len(curve)} steps; stopping"
                )
                break
            epochs.append(
                {
                    "epoch": epoch + 1,
                    "train_loss": float(epoch_losses.mean(dtype=np.float64)),
                    "test_loss": test_loss,
                    "test_accuracy": test_accuracy,
                }
            )
            log(
                f"Epoch [{epoch + 1}/{cfg.epochs}], Test Loss: {test_loss:.4f}, Test Accuracy: {100 * test_accuracy:.2f} %"
            )

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
