"""Training and evaluation in PyTorch: the tutorial's loop, with the dataset resident on the device.

Step 4 of the reading order (this package's __init__.py). Mirrored function for function by
impls/flax_mlp/train.py: `diff` the two files to see only the framework lines. Read top to bottom:
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

Speed: torch runs every op eagerly as Python calls it, so the step is a plain function; with
`compile` set (Config) it runs under torch.compile instead (runtime.CompiledStep; on a GPU, CUDA
graphs), its compile timed as the first step's warm-up.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from impls.torch_mlp import runtime
from impls.torch_mlp.model import MLP, build_model
from shared.batches import epoch_index_matrix
from shared.config import Config
from shared.data import Dataset, scale_images
from shared.record import accuracy, epoch_entry, make_record
from shared.timing import StepClock

LOG_EVERY = 100  # steps between log lines, as in the tutorial


# The tutorial's loss module, `criterion = nn.CrossEntropyLoss()` there.
_cross_entropy = nn.CrossEntropyLoss()


def criterion(outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the batch: outputs (B, 10), integer labels (B,) -> 0-d.

    The tutorial's nn.CrossEntropyLoss() module, called through a function as its twin is.
    """
    return _cross_entropy(outputs, labels)


def loss_fn(model: MLP, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of the model's outputs: (B, 784) float32, (B,) int -> 0-d.

    With output="softmax" the outputs are already probabilities and this applies a second softmax
    (the lab report's double softmax; see model.py): the loss cannot go below ~1.461.
    """
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
    """(mean loss, number of correct predictions) over all `images` at once, 0-d on the device.

    No switch to an evaluation mode (model.eval()) first: the MLP has no dropout or batch norm, so
    training and evaluation compute the same function. The count becomes the accuracy in train(),
    in the run's dtype (shared.results.accuracy), as the tutorial counts its correct predictions.
    """
    outputs = model(images)  # (N, 10)
    return criterion(outputs, labels), (outputs.argmax(dim=1) == labels).sum()


def get_batch(
    images: torch.Tensor, labels: torch.Tensor, order: torch.Tensor, i: int
) -> tuple[torch.Tensor, torch.Tensor]:
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
        backend="torch",
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


def device_data(cfg: Config, data: Dataset, dev: torch.device) -> tuple[torch.Tensor, ...]:
    """The whole dataset on `dev`, moved once; every batch is then gathered there (get_batch).

    (train images (60000, 784) float32 | float64, train labels (60000,) int64, what cross_entropy
    takes, test images (10000, 784), test labels (10000,)).
    """
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
    # torch dispatches each op eagerly from Python, so there is no per-call traversal to cache: a
    # plain partial is all it takes; with cfg.compile, torch.compile traces it into graphs.
    step = functools.partial(train_step, model, optimizer)
    return model, optimizer, runtime.CompiledStep(step, dev) if cfg.compile else step


def build_optimizer(model: MLP, cfg: Config) -> torch.optim.Adam:
    """Adam with every hyperparameter spelled out, the same in both twins.

    Both put eps outside the square root, after bias correction: torch divides by
    sqrt(v_hat) + eps, optax.adam by sqrt(v_hat + eps_root) + eps with eps_root = 0. Compiled, its
    step count is a tensor on the device (capturable): torch.compile does not recompile per step;
    and the update is torch's fused kernel, one vectorised pass per tensor: inductor's own fusion
    of it evaluated pow(beta, step) for every 8 floats (1.2 of a 4.8 ms CPU step; see
    benchmarks/README.md). Eager, it is the tutorial's Adam, whose rounding sweep.py mirrors.
    """
    return torch.optim.Adam(
        model.parameters(),
        lr=cfg.learning_rate,
        betas=(0.9, 0.999),
        eps=1e-8,
        capturable=cfg.compile,
        fused=cfg.compile or None,  # None: torch's default implementation
    )


def epoch_order(cfg: Config, data: Dataset, epoch: int, dev: torch.device) -> torch.Tensor:
    """The epoch's batches, rows of training indices (shared/batches.py), on `dev`: (steps, B)."""
    order = epoch_index_matrix(cfg.seed, epoch, len(data.train_labels), cfg.batch_size)
    return torch.from_numpy(order).to(dev)


def train_epoch(
    step: Callable,
    train_set: tuple,
    order: torch.Tensor,
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
            value = loss.item()  # a sync, as in the tutorial, once every LOG_EVERY steps
            log(f"{header}, Step [{i + 1}/{len(order)}], Loss: {value:.4f}")
            if not math.isfinite(value):
                break
    clock.end_epoch(loss)
    return torch.stack(losses).cpu().numpy()  # the epoch's losses, fetched at once
