"""The sweep engine in PyTorch: a group of grid members trained together, each exactly as train.py would.

Mirrored function for function by impls/flax_mlp/sweep.py. Read it next to train.py: the same
loop, over M members at once. A group (shared/groups.py) shares batches and initial weights; its
members differ in learning rate, activation and output, so every weight gets a leading member axis
and those three become per-member numbers:

  learning rate -> Adam's step size per member (Adam is elementwise: M stacked Adams with their
                   own step sizes are M independent Adams, same formula, same rounding);
  activation    -> a negative slope per member: 0 is ReLU, 0.01 LeakyReLU (F.prelu, slope per member);
  output        -> a softmax flag per member (the seed report's double softmax where it is set).

Why this formulation (measured, shared/notes/sweep-probes.md and benchmarks/bench_sweep.py): on the
CPU the members' first layers sit side by side in one (784, M*H) matrix, so the biggest matmul of
every step is one wide GEMM on the shared batch, which the BLAS runs near its peak; deeper layers
are batched matmuls over the member axis (einsum -> bmm). Adam is written out (torch.optim.Adam
takes no per-member lr) in place, a cache-sized block of rows at a time: with 16 members its state
no longer fits in cache, and eager torch makes one pass over memory per op. With `compile` set
(Config) the step runs under torch.compile instead, which fuses Adam's passes into one loop.

A member whose loss turns NaN/inf stops where the loop would stop it (at a log step, or at the end
of the epoch) and is then frozen: its weights and Adam state are zeroed and its step size is 0, so
it computes finite nonsense nobody reads, and the others go on untouched (members never mix).
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from impls.torch_mlp import runtime
from impls.torch_mlp.model import LEAKY_SLOPE, build_model, get_weights
from impls.torch_mlp.train import LOG_EVERY, device_data
from shared.batches import epoch_index_matrix
from shared.config import Config
from shared.data import Dataset
from shared.groups import EVAL_BYTES, group_key, host_memory_budget, split_group
from shared.results import make_record
from shared.timing import StepClock, spread_share

BETA1, BETA2, EPS = (
    0.9,
    0.999,
    1e-8,
)  # train.py's Adam: torch.optim.Adam(betas=(0.9, 0.999), eps=1e-8)
_ADAM_BLOCK = (
    1 << 20
)  # elements per block of Adam's update: 4 MB in float32, five of them fit a 32 MB L3


def init_params(
    cfg: Config, members: int, dev: torch.device
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The loop's initial weights, one copy per member: [(W, b), ...] with a member axis.

    First layer: W (784, M, n) (reshaped to (784, M*n) for the wide GEMM, a free view), b (M, n).
    Other layers: W (M, in, out), b (M, out).
    """
    weights = get_weights(
        build_model(cfg)
    )  # shared or native, float32 or float64: train.py's very start
    params = []
    for i, (w, b) in enumerate(weights):
        w = (
            np.repeat(w[:, None, :], members, axis=1)
            if i == 0
            else np.repeat(w[None], members, axis=0)
        )
        b = np.repeat(b[None], members, axis=0)
        params.append(
            (
                torch.from_numpy(w).to(dev).requires_grad_(),
                torch.from_numpy(b).to(dev).requires_grad_(),
            )
        )
    return params


def member_constants(
    cfgs: list[Config], dev: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(lr (M,) float64, negative slope (M,), softmax flag (M,) bool): what differs between members."""
    dtype = torch.float64 if cfgs[0].dtype == "float64" else torch.float32
    lr = torch.tensor(
        [c.learning_rate for c in cfgs], dtype=torch.float64, device=dev
    )  # step sizes in double, as torch.optim.Adam
    slopes = torch.tensor(
        [0.0 if c.activation == "relu" else LEAKY_SLOPE for c in cfgs], dtype=dtype, device=dev
    )
    softmax = torch.tensor([c.output == "softmax" for c in cfgs], device=dev)
    return lr, slopes, softmax


def forward(
    params, slopes: torch.Tensor, softmax: torch.Tensor, images: torch.Tensor
) -> torch.Tensor:
    """All members on one batch: images (B, 784) -> outputs (B, M, 10)."""
    (w, b), *rest = params
    batch, (members, width) = images.shape[0], b.shape
    # One wide GEMM for every member's first layer: (B, 784) @ (784, M*n), bias fused as in nn.Linear.
    x = torch.addmm(b.reshape(-1), images, w.reshape(784, members * width)).view(
        batch, members, width
    )  # (B, M, n)
    for w, b in rest:
        x = F.prelu(
            x, slopes
        )  # per member: x if x > 0 else slope * x (slope 0: ReLU); dim 1 is the member axis
        x = torch.einsum("bmi,mio->bmo", x, w) + b  # (B, M, out): a batched matmul over members
    # The seed report's double softmax, only for the members that have it (see model.py).
    return torch.where(softmax[:, None], torch.softmax(x, dim=-1), x)  # (B, M, 10)


def loss_fn(
    params, slopes: torch.Tensor, softmax: torch.Tensor, images: torch.Tensor, labels: torch.Tensor
) -> torch.Tensor:
    """Every member's mean cross-entropy (train.py's criterion): (M,)."""
    outputs = forward(params, slopes, softmax, images)  # (B, M, 10)
    targets = labels[:, None].expand(-1, outputs.shape[1])  # (B, M)
    return F.cross_entropy(outputs.permute(0, 2, 1), targets, reduction="none").mean(
        dim=0
    )  # classes on dim 1


def init_adam(params) -> dict:
    """Adam's state for the stacked weights: the moments per tensor and the step count."""
    flat = [p for layer in params for p in layer]
    return {
        "step": 0,
        "m": [torch.zeros_like(p) for p in flat],
        "v": [torch.zeros_like(p) for p in flat],
    }


@torch.no_grad()  # the update is not an op to differentiate
def adam_step(
    params, grads: list[torch.Tensor], opt_state: dict, lr: torch.Tensor, alive: torch.Tensor
) -> None:
    """torch.optim.Adam's update (its single-tensor CPU path), for every member with its own lr, in place.

    The same ops in the same order as torch.optim.Adam, so each member's slice rounds exactly as an
    independent Adam: m.lerp_(g, 1 - b1); v.mul_(b2).addcmul_(g, g, 1 - b2); denom = sqrt(v) / sqrt(bc2) + eps
    (eps outside the root, after bias correction); p += (-lr / bc1) * m / denom, the step size computed in
    double and rounded once, as addcdiv_ does with its `value`. Frozen members get step size 0.
    """
    opt_state["step"] += 1
    step = opt_state["step"]
    bias_correction1 = 1 - BETA1**step
    bias_correction2_sqrt = (1 - BETA2**step) ** 0.5
    flat = [p for layer in params for p in layer]
    neg_step_size = (-lr / bias_correction1).to(flat[0].dtype) * alive  # (M,)
    for i, tensors in enumerate(zip(flat, grads, opt_state["m"], opt_state["v"])):
        step_size = _along_members(neg_step_size, i, flat[i]).expand_as(flat[i])  # a view, no copy
        rows = max(
            1, _ADAM_BLOCK // flat[i][0].numel()
        )  # rows (along dim 0) in a block of ~_ADAM_BLOCK elements
        if torch.compiler.is_compiling():  # inductor fuses the passes below: one block will do
            rows = flat[i].shape[0]
        # Eager torch runs each op below as one pass over memory; with 16 members the first layer's
        # tensors are ~25 MB each, and eight whole-tensor passes streaming from RAM took a third of a
        # step at batch 100. Done a block of rows at a time, the passes after the first hit the cache
        # (XLA fuses them instead). Same ops per element, so the same rounding.
        for p, grad, m, v, size in zip(*(t.split(rows) for t in (*tensors, step_size))):
            m.lerp_(grad, 1 - BETA1)
            v.mul_(BETA2).addcmul_(grad, grad, value=1 - BETA2)
            denom = v.sqrt().div_(bias_correction2_sqrt).add_(EPS)
            p.add_(torch.mul(m, size).div_(denom))


@torch.no_grad()
def freeze(params, opt_state: dict, alive: torch.Tensor) -> None:
    """Zero the weights and Adam state of members no longer alive (their step size is already 0)."""
    flat = [p for layer in params for p in layer]
    for i, tensors in enumerate(zip(flat, opt_state["m"], opt_state["v"])):
        dead = ~_along_members(alive, i, flat[i])
        for t in tensors:
            t.masked_fill_(dead, 0)


def train_step(
    params,
    opt_state: dict,
    alive: torch.Tensor,
    members,
    images: torch.Tensor,
    labels: torch.Tensor,
) -> torch.Tensor:
    """One Adam step of every member on one shared batch, in place; returns the losses (M,), not synced."""
    lr, slopes, softmax = members
    losses = loss_fn(params, slopes, softmax, images, labels)  # (M,), recorded by torch's autograd
    # Members never mix, so d(sum of losses)/d(member m's weights) = d(loss m)/d(them): one backward for all.
    grads = torch.autograd.grad(losses.sum(), [p for layer in params for p in layer])
    adam_step(params, grads, opt_state, lr, alive)
    return losses.detach()


def train_epoch(
    params,
    opt_state: dict,
    alive: torch.Tensor,
    members,
    images: torch.Tensor,
    labels: torch.Tensor,
    order: torch.Tensor,
    step_fn: Callable = train_step,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One epoch over order (steps, B): (alive (M,) bool, losses (steps, M)). Eager, step by step."""
    losses = []
    for i in range(order.shape[0]):
        index = order[i]  # (B,)
        losses.append(step_fn(params, opt_state, alive, members, images[index], labels[index]))
        if (
            (i + 1) % LOG_EVERY == 0
        ):  # where train.py reads the loss and stops a run whose loss is not finite
            alive = alive & torch.isfinite(losses[-1])
            freeze(params, opt_state, alive)
    return alive, torch.stack(losses)


def compile_epoch(
    params,
    opt_state: dict,
    alive: torch.Tensor,
    members,
    images: torch.Tensor,
    labels: torch.Tensor,
    order: torch.Tensor,
) -> Callable:
    """The epoch function, ready to run. Eager torch has nothing to compile: train_epoch itself."""
    return train_epoch


@torch.no_grad()  # no autograd graph for evaluation
def evaluate(
    params, members, images: torch.Tensor, labels: torch.Tensor
) -> tuple[np.ndarray, np.ndarray]:
    """(mean loss (M,), accuracy (M,)) over all `images`, a few members at a time (memory)."""
    _, slopes, softmax = members
    count, widest = params[0][1].shape[0], max(b.shape[-1] for _, b in params)
    chunk = max(1, EVAL_BYTES // (3 * images.shape[0] * widest * images.dtype.itemsize))
    losses, accuracies = [], []
    for lo in range(0, count, chunk):
        part = _members(params, lo, lo + chunk)
        outputs = forward(
            part, slopes[lo : lo + chunk], softmax[lo : lo + chunk], images
        )  # (N, c, 10)
        targets = labels[:, None].expand(-1, outputs.shape[1])
        losses.append(
            F.cross_entropy(outputs.permute(0, 2, 1), targets, reduction="none").mean(dim=0)
        )
        accuracies.append((outputs.argmax(dim=-1) == targets).to(outputs.dtype).mean(dim=0))
    return torch.cat(losses).cpu().numpy(), torch.cat(accuracies).cpu().numpy()


def memory_budget(dev: torch.device) -> int:
    """Bytes a group may plan to use: half the GPU's free memory, or half the host's available memory."""
    if dev.type == "cuda":
        return torch.cuda.mem_get_info(dev)[0] // 2
    return host_memory_budget()


def train_group(
    cfgs: list[Config],
    data: Dataset,
    device: str = "auto",
    log: Callable[[str], object] | None = print,
) -> list[dict]:
    """Train the members `cfgs` of one group (shared/groups.py) together; one record per member, in order.

    Split into parts that fit memory first (shared.groups.split_group). Each record is the loop's
    (shared.results.make_record) with engine "sweep" and the group it ran in; its step time is the
    group's step time / M, the share of one member.
    """
    keys = {group_key(c) for c in cfgs}
    if len(keys) != 1:
        raise ValueError(
            f"train_group: the configs form {len(keys)} groups, not one (they differ beyond "
            f"learning_rate, activation, output)"
        )
    dev = runtime.resolve_device(device)
    records = []
    for part in split_group(cfgs, memory_budget(dev)):
        records += _train_part(part, data, dev, log or runtime.silent)
    return records


def _train_part(
    cfgs: list[Config], data: Dataset, dev: torch.device, log: Callable[[str], object]
) -> list[dict]:
    start = time.perf_counter()
    cfg, count = cfgs[0], len(cfgs)  # cfg: what the members share
    with runtime.matmul_precision(cfg.tf32), runtime.dtype_scope(cfg.dtype):
        train_images, train_labels, test_images, test_labels = device_data(cfg, data, dev)
        params = init_params(cfg, count, dev)
        opt_state = init_adam(params)
        members = member_constants(cfgs, dev)
        alive = torch.ones(count, dtype=torch.bool, device=dev)  # (M,)

        clock = StepClock(runtime.device_sync(dev))
        order = _order(cfg, data, 0, dev)
        t0 = time.perf_counter()
        run_epoch = compile_epoch(
            params, opt_state, alive, members, train_images, train_labels, order
        )
        # torch.compile: the stacked step compiled here, on copies of the state (the warm-up).
        batch = train_images[order[0]], train_labels[order[0]]
        step = _compiled_step(params, opt_state, alive, members, *batch) if cfg.compile else None
        run_epoch = functools.partial(run_epoch, step_fn=step) if step else run_epoch
        clock.record_warmup(time.perf_counter() - t0)
        curves = [[] for _ in cfgs]
        epochs = [[] for _ in cfgs]
        status = ["ok"] * count
        for epoch in range(cfg.epochs):
            order = _order(cfg, data, epoch, dev) if epoch else order  # (steps, B)
            clock.start_epoch()
            alive, losses = run_epoch(
                params, opt_state, alive, members, train_images, train_labels, order
            )  # torch: in place
            clock.add_steps(cfg.steps_per_epoch)
            clock.end_epoch(losses)
            losses = losses.cpu().numpy()  # (steps, M): the epoch's losses, fetched at once
            test_loss, test_accuracy = evaluate(params, members, test_images, test_labels)
            alive = torch.from_numpy(
                _record_epoch(
                    cfgs, epoch, losses, test_loss, test_accuracy, curves, epochs, status, log
                )
            ).to(dev)
            freeze(params, opt_state, alive)
            if not alive.any():
                break

    return _records(
        cfgs,
        data,
        status,
        epochs,
        curves,
        clock,
        time.perf_counter() - start,
        runtime.describe_device(dev),
        runtime.versions(),
        compiled=runtime.compile_stats(step),
    )


def _compiled_step(params, opt_state: dict, alive, members, images, labels) -> Callable:
    """train_step under torch.compile (runtime.CompiledStep), compiled now on copies of the state.

    opt_state's step count becomes a 0-d float64 tensor (as in torch.optim.Adam's capturable mode):
    one graph for every step, no recompile. As a Python int dynamo recompiled once to make it
    symbolic, and the fused Adam ran 1.3-1.6x slower than the eager blocked one (measured). Either
    way inductor evaluates the bias corrections' pow() inside the fused loop, per element.
    """
    opt_state["step"] = torch.tensor(
        float(opt_state["step"]), dtype=torch.float64, device=labels.device
    )
    step = runtime.CompiledStep(train_step, images.device)
    copies = [tuple(p.detach().clone().requires_grad_() for p in layer) for layer in params]
    state = {k: v.clone() if k == "step" else [t.clone() for t in v] for k, v in opt_state.items()}
    step(copies, state, alive, members, images, labels)
    return step


def _along_members(vec: torch.Tensor, index: int, p: torch.Tensor) -> torch.Tensor:
    """vec (M,) shaped to broadcast along the member axis of flat parameter `index` (axis 1 for the first W)."""
    shape = [1] * p.ndim
    shape[1 if index == 0 else 0] = vec.shape[0]
    return vec.reshape(shape)


def _members(params, lo: int, hi: int):
    """Members lo..hi-1 of the stacked weights (torch: views; JAX: copies)."""
    (w, b), *rest = params
    return [(w[:, lo:hi], b[lo:hi])] + [(w[lo:hi], b[lo:hi]) for w, b in rest]


def _order(cfg: Config, data: Dataset, epoch: int, dev: torch.device) -> torch.Tensor:
    return torch.from_numpy(
        epoch_index_matrix(cfg.seed, epoch, len(data.train_labels), cfg.batch_size)
    ).to(dev)


# ------------------------------------------------- framework-free bookkeeping (identical in both twins)


def _record_epoch(
    cfgs, epoch, losses, test_loss, test_accuracy, curves, epochs, status, log
) -> np.ndarray:
    """Cut each live member's curve where train.py would have stopped, judge it as train.py does, log it.

    Returns who is alive after this epoch, (M,) bool.
    """
    steps = losses.shape[0]
    alive = np.array([s == "ok" for s in status])
    for j, cfg in enumerate(cfgs):
        if not alive[j]:
            continue
        curve = losses[:, j]
        stops = [i for i in range(LOG_EVERY - 1, steps, LOG_EVERY) if not math.isfinite(curve[i])]
        curve = (
            curve[: stops[0] + 1] if stops else curve
        )  # train.py breaks right after that log line
        curves[j].extend(curve.tolist())
        if not (np.isfinite(curve).all() and math.isfinite(test_loss[j])):
            status[j], alive[j] = "diverged", False
            log(
                f"[{_name(cfg)}] Epoch [{epoch + 1}/{cfg.epochs}]: the loss is no longer finite after "
                f"{len(curves[j])} steps; stopping"
            )
            continue
        epochs[j].append(
            {
                "epoch": epoch + 1,
                "train_loss": float(curve.mean(dtype=np.float64)),
                "test_loss": float(test_loss[j]),
                "test_accuracy": float(test_accuracy[j]),
            }
        )
        log(
            f"[{_name(cfg)}] Epoch [{epoch + 1}/{cfg.epochs}], Test Loss: {test_loss[j]:.4f}, "
            f"Test Accuracy: {100 * test_accuracy[j]:.2f} %"
        )
    return alive


def _records(
    cfgs, data, status, epochs, curves, clock, wall_s, device, versions, compiled=None
) -> list[dict]:
    """One make_record per member; times are the group's divided by M (each member's share)."""
    count, group = len(cfgs), clock.summary(cfgs[0].batch_size)
    share = {
        "warmup_s": group["warmup_s"],
        "train_s": group["train_s"] / count,
        "step_time_us": group["step_time_us"] / count if group["step_time_us"] else None,
    }
    share["samples_per_s"] = (
        cfgs[0].batch_size * 1e6 / share["step_time_us"] if share["step_time_us"] else None
    )
    share["step_time_spread"] = spread_share(group["step_time_spread"], count)
    return [
        make_record(
            backend=_BACKEND,
            cfg=cfg,
            data=data,
            status=status[j],
            epochs=epochs[j],
            loss_curve=curves[j],
            timing=share,
            wall_s=wall_s / count,
            device=device,
            versions=versions,
            engine="sweep",
            compiled=compiled,
            group={
                "key": group_key(cfg),
                "members": count,
                "index": j,
                "group_step_time_us": group["step_time_us"],
            },
        )
        for j, cfg in enumerate(cfgs)
    ]


def _name(cfg: Config) -> str:
    return f"lr={cfg.learning_rate:g} {cfg.activation} {cfg.output}"


_BACKEND = "torch"
