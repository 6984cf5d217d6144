"""Training and evaluation in Flax NNX + Optax: yunjey's pytorch-tutorial feed-forward loop.

The twin is impls/torch_mlp/train.py; `diff` them to see only the framework lines. Unlike the
tutorial, the dataset sits on the device and each step gathers its batch there, so that a GPU never
waits for the host; the losses are fetched once per epoch, the only other syncs being the log lines.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from impls.flax_mlp import checkpoint, fast, runtime
from impls.flax_mlp.model import MLP, build_model
from shared.batches import epoch_index_matrix
from shared.config import Config
from shared.data import Dataset, scale_images
from shared.record import accuracy, epoch_entry, make_record
from shared.timing import StepClock

LOG_EVERY = 100  # steps between log lines, as in the tutorial


def criterion(outputs: jax.Array, labels: jax.Array) -> jax.Array:
    """Mean cross-entropy over the batch: outputs (B, 10), integer labels (B,) -> 0-d."""
    return optax.softmax_cross_entropy_with_integer_labels(outputs, labels).mean()


def loss_fn(model: MLP, images: jax.Array, labels: jax.Array) -> jax.Array:
    """Mean cross-entropy of the model's outputs: (B, 784), (B,) int -> 0-d (output="softmax": the
    lab report's double softmax, model.py)."""
    return criterion(model(images), labels)


@nnx.jit  # one compiled program; nnx.jit carries the state of model and optimizer in and out
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
    """(mean loss, number of correct predictions) over all `images` at once, 0-d on the device. No
    model.eval() first: with no dropout or batch norm, training and evaluation are one function."""
    outputs = model(images)  # (N, 10)
    return criterion(outputs, labels), (outputs.argmax(axis=1) == labels).sum()


@jax.jit  # one compiled gather: eager JAX ops cost far more Python time than torch's
def get_batch(
    images: jax.Array, labels: jax.Array, order: jax.Array, i: int
) -> tuple[jax.Array, jax.Array]:
    """Batch `i` of an epoch, gathered on the device: order (steps, B) -> (B, 784), (B,)."""
    index = order[i]  # (B,)
    return images[index], labels[index]


def train(
    cfg: Config,
    data: Dataset,
    device: str = "auto",
    log: Callable[[str], object] | None = print,
    *,
    save: str | os.PathLike | None = None,
) -> dict:
    """Train `cfg` on `data`, testing after every epoch: the run's record (shared.record). `log`
    gets the tutorial's lines (None: silent); a loss that turns NaN/inf ends the run, "diverged".
    `save`: where checkpoint.py saves the trained model, if the run ends "ok"."""
    start, log = time.perf_counter(), log or runtime.silent
    dev = runtime.resolve_device(device)
    with runtime.matmul_precision(cfg.tf32), runtime.dtype_scope(cfg.dtype):
        train_images, train_labels, test_images, test_labels = device_data(cfg, data, dev)
        model, optimizer, step = build_training(cfg, dev)

        clock, epochs, curve, status = StepClock(runtime.device_sync(dev)), [], [], "ok"
        for epoch in range(cfg.epochs):
            header = f"Epoch [{epoch + 1}/{cfg.epochs}]"
            order = epoch_order(cfg, data, epoch, dev)  # (steps, B)
            with clock.epoch(step) as timed_step:  # the steps are timed, the test below is not
                losses = train_epoch(timed_step, (train_images, train_labels), order, log, header)
            fast.write_back(step)  # compiled: its state into model (fast.py)
            curve.extend(losses.tolist())
            test_loss, correct = (float(x) for x in evaluate(model, test_images, test_labels))
            test_accuracy = float(accuracy(correct, len(data.test_labels), cfg.dtype))
            if not (np.isfinite(losses).all() and math.isfinite(test_loss)):
                status = "diverged"
                log(f"{header}: the loss is no longer finite after {len(curve)} steps; stopping")
                break
            epochs.append(epoch_entry(epoch, losses, test_loss, test_accuracy))
            log(f"{header}, Test Loss: {test_loss:.4f}, Test Accuracy: {100 * test_accuracy:.2f} %")
        if save is not None and status == "ok":
            checkpoint.save(model, save, cfg)

    return make_record(
        backend="jax",
        cfg=cfg,
        data=data,
        status=status,
        epochs=epochs,
        loss_curve=curve,
        timing=clock.summary(cfg.batch_size),
        wall_s=time.perf_counter() - start,
        **runtime.record_fields(dev, step),
    )


def device_data(cfg: Config, data: Dataset, dev: jax.Device) -> tuple[jax.Array, ...]:
    """The whole dataset on `dev`, moved once: train images (60000, 784) in cfg.dtype, train labels
    (60000,) int32 (JAX's default int), test images (10000, 784), test labels (10000,)."""
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
    # jitted already; cached_partial walks the objects of model and optimizer once, where nnx.jit
    # walks them at every call (Flax's "Performance considerations"; benchmarks/README.md)
    step = nnx.cached_partial(train_step, model, optimizer)
    if cfg.compile:  # speed only, fenced in fast.py: one compiled call (benchmarks/bench_host.py)
        step = fast.FastStep(loss_fn, model, optimizer, dev)
    return model, optimizer, step


def build_optimizer(model: MLP, cfg: Config) -> nnx.Optimizer:
    """Adam with every hyperparameter spelled out, the same in both twins (eps outside the root)."""
    return nnx.Optimizer(
        model, optax.adam(cfg.learning_rate, b1=0.9, b2=0.999, eps=1e-8), wrt=nnx.Param
    )


def epoch_order(cfg: Config, data: Dataset, epoch: int, dev: jax.Device) -> jax.Array:
    """The epoch's batches, rows of training indices (shared/batches.py), on `dev`: (steps, B)."""
    order = epoch_index_matrix(cfg.seed, epoch, len(data.train_labels), cfg.batch_size)
    return jax.device_put(order.astype(np.int32), dev)


def train_epoch(
    step: Callable, train_set: tuple, order: jax.Array, log: Callable[[str], object], header: str
) -> np.ndarray:
    """One epoch of `step` over the batches of `order`, train_set (images, labels) on the device:
    its losses (steps,). Every LOG_EVERY steps the tutorial's line (`header` first) goes to `log`,
    and a loss found NaN/inf there ends the epoch."""
    losses = []
    for i in range(len(order)):
        loss = step(*get_batch(*train_set, order, i))
        losses.append(loss)
        if (i + 1) % LOG_EVERY == 0:
            value = float(loss)  # a sync, as in the tutorial, once every LOG_EVERY steps
            log(f"{header}, Step [{i + 1}/{len(order)}], Loss: {value:.4f}")
            if not math.isfinite(value):
                break
    return np.asarray(jnp.stack(losses))  # the epoch's losses, fetched at once
