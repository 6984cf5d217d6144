"""Training and evaluation in PyTorch: yunjey's pytorch-tutorial feed-forward loop (the tutorial).

The twin is impls/flax_mlp/train.py; `diff` them to see only the framework lines. Unlike the
tutorial, the dataset sits on the device and each step gathers its batch there, so that a GPU never
waits for the host; the losses are fetched once per epoch, the only other syncs being the log lines.
"""

from __future__ import annotations

import functools
import math
import os
import time
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from impls.torch_mlp import checkpoint, fast, runtime
from impls.torch_mlp.model import MLP, build_model
from shared.batches import epoch_index_matrix
from shared.config import Config
from shared.data import Dataset, scale_images
from shared.record import accuracy, epoch_entry, make_record
from shared.timing import StepClock

LOG_EVERY = 100  # steps between log lines, as in the tutorial

_cross_entropy = nn.CrossEntropyLoss()  # the tutorial's `criterion = nn.CrossEntropyLoss()`


def criterion(outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the batch: outputs (B, 10), integer labels (B,) -> 0-d."""
    return _cross_entropy(outputs, labels)


def loss_fn(model: MLP, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of the model's outputs: (B, 784), (B,) int -> 0-d (output="softmax": the
    lab report's double softmax, model.py)."""
    return criterion(model(images), labels)


def train_step(
    model: MLP, optimizer: torch.optim.Adam, images: torch.Tensor, labels: torch.Tensor
) -> torch.Tensor:
    """One Adam step on one batch, updating model and optimizer in place; the loss, not synced."""
    loss = loss_fn(model, images, labels)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    # A 0-d tensor on the device: reading it (.item()) would wait for the GPU.
    return loss.detach()


@torch.no_grad()  # evaluation takes no gradient: no autograd graph to record
def evaluate(
    model: MLP, images: torch.Tensor, labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean loss, number of correct predictions) over all `images` at once, 0-d on the device. No
    model.eval() first: with no dropout or batch norm, training and evaluation are one function."""
    outputs = model(images)  # (N, 10)
    return criterion(outputs, labels), (outputs.argmax(dim=1) == labels).sum()


def get_batch(
    images: torch.Tensor, labels: torch.Tensor, order: torch.Tensor, i: int
) -> tuple[torch.Tensor, torch.Tensor]:
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
        backend="torch",
        cfg=cfg,
        data=data,
        status=status,
        epochs=epochs,
        loss_curve=curve,
        timing=clock.summary(cfg.batch_size),
        wall_s=time.perf_counter() - start,
        **runtime.record_fields(dev, step),
    )


def device_data(cfg: Config, data: Dataset, dev: torch.device) -> tuple[torch.Tensor, ...]:
    """The whole dataset on `dev`, moved once: train images (60000, 784) in cfg.dtype, train labels
    (60000,) int64 (what cross_entropy takes), test images (10000, 784), test labels (10000,)."""
    return (
        torch.from_numpy(scale_images(data.train_images, cfg.dtype)).to(dev),
        torch.from_numpy(data.train_labels).to(dev),
        torch.from_numpy(scale_images(data.test_images, cfg.dtype)).to(dev),
        torch.from_numpy(data.test_labels).to(dev),
    )


def build_training(cfg: Config, dev: torch.device) -> tuple[MLP, torch.optim.Adam, Callable]:
    """Model and optimizer on `dev`, and the step the hot loop calls with a batch only."""
    model = build_model(cfg).to(dev)
    optimizer = build_optimizer(model, cfg)
    step = functools.partial(train_step, model, optimizer)  # torch runs each op as Python calls it
    if cfg.compile:  # speed only, fenced in fast.py: one compiled call (benchmarks/bench_host.py)
        step = fast.FastStep(loss_fn, model, optimizer, dev)
    return model, optimizer, step


def build_optimizer(model: MLP, cfg: Config) -> torch.optim.Adam:
    """Adam with every hyperparameter spelled out, the same in both twins (eps outside the root)."""
    return torch.optim.Adam(model.parameters(), lr=cfg.learning_rate, betas=(0.9, 0.999), eps=1e-8)


def epoch_order(cfg: Config, data: Dataset, epoch: int, dev: torch.device) -> torch.Tensor:
    """The epoch's batches, rows of training indices (shared/batches.py), on `dev`: (steps, B)."""
    order = epoch_index_matrix(cfg.seed, epoch, len(data.train_labels), cfg.batch_size)
    return torch.from_numpy(order).to(dev)


def train_epoch(
    step: Callable, train_set: tuple, order: torch.Tensor, log: Callable[[str], object], header: str
) -> np.ndarray:
    """One epoch of `step` over the batches of `order`, train_set (images, labels) on the device:
    its losses (steps,). Every LOG_EVERY steps the tutorial's line (`header` first) goes to `log`,
    and a loss found NaN/inf there ends the epoch."""
    losses = []
    for i in range(len(order)):
        loss = step(*get_batch(*train_set, order, i))
        losses.append(loss)
        if (i + 1) % LOG_EVERY == 0:
            value = loss.item()  # a sync, as in the tutorial, once every LOG_EVERY steps
            log(f"{header}, Step [{i + 1}/{len(order)}], Loss: {value:.4f}")
            if not math.isfinite(value):
                break
    return torch.stack(losses).cpu().numpy()  # the epoch's losses, fetched at once
