"""The sweep engine in PyTorch: a group of configs trained together, as one wider network.

Step 5 of the reading order (this package's __init__.py), the advanced part. Mirrored function for
function by impls/flax_mlp/sweep.py. Read it next to train.py: the same loop, over M members at
once. A group (shared/groups.py) is the configs of a grid that share batches and initial weights;
each of them is a member, trained exactly as train.py would train it alone. Members differ in
learning rate, activation and output, so every weight gets a member axis and those three become
per-member numbers:

  learning rate -> Adam's step size per member (Adam is elementwise: M stacked Adams with their
                   own step sizes are M independent Adams, same formula, same rounding);
  activation    -> a negative slope per member: 0 is ReLU, 0.01 LeakyReLU (F.prelu, one slope
                   per member);
  output        -> a softmax flag per member (the lab report's double softmax).

Why this formulation (measured by benchmarks/bench_sweep.py, see benchmarks/README.md): on the CPU
the members' first layers sit side by side in one (784, M*H) matrix, so the biggest matmul of every
step is one wide GEMM (matrix product) on the shared batch, which the BLAS runs near its peak;
deeper layers are batched matmuls over the member axis (einsum -> bmm). Adam is written out
(torch.optim.Adam takes no per-member lr) in place, on the CPU a cache-sized block of rows at a
time: with 16 members its state no longer fits in cache, and eager torch makes one pass over memory
per op (on a GPU, one block: no CPU cache to fit, and each block costs kernel launches). With
`compile` set (Config) the step runs under torch.compile instead, which fuses Adam's passes into
one loop (the blocks are then skipped; the bias corrections enter that loop as inputs).

A member whose loss turns NaN/inf stops where the loop would stop it (at a log step, or at the end
of the epoch) and is then frozen: its weights and Adam state are zeroed and its step size is 0, so
it computes finite nonsense nobody reads, and the others go on untouched (members never mix).
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from impls.torch_mlp import runtime
from impls.torch_mlp.model import LEAKY_SLOPE, build_model, get_weights
from impls.torch_mlp.train import LOG_EVERY, device_data, epoch_order
from shared.config import Config
from shared.data import Dataset
from shared.groups import EVAL_BYTES, group_key, host_memory_budget, split_group
from shared.record import accuracy
from shared.sweep_records import GroupRecords
from shared.timing import StepClock

BETA1, BETA2, EPS = 0.9, 0.999, 1e-8  # train.py's Adam: torch.optim.Adam(betas=..., eps=...)
_ADAM_BLOCK = 1 << 20  # elements per block of Adam's update: 4 MB in float32; five fit a 32 MB L3


def init_params(
    cfg: Config, members: int, dev: torch.device
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The loop's initial weights, one copy per member: [(W, b), ...] with a member axis.

    First layer: W (784, M, n) (reshaped to (784, M*n) for the wide GEMM, a free view), b (M, n).
    Other layers: W (M, in, out), b (M, out).
    """
    # Shared or native, float32 or float64: train.py's very start.
    weights = get_weights(build_model(cfg))
    params = []
    for i, (w, b) in enumerate(weights):
        axis = 1 if i == 0 else 0  # the member axis: 1 in the first W, 0 everywhere else
        w = np.repeat(np.expand_dims(w, axis), members, axis=axis)
        b = np.repeat(b[None], members, axis=0)
        # Plain tensors, not requires_grad: torch.func.grad_and_value differentiates (train_step).
        params.append((torch.from_numpy(w).to(dev), torch.from_numpy(b).to(dev)))
    return params


def member_constants(
    cfgs: list[Config], dev: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """What differs between members: (lr (M,) float64, negative slope (M,), softmax flag (M,))."""
    dtype = torch.float64 if cfgs[0].dtype == "float64" else torch.float32
    # Step sizes in double, as torch.optim.Adam keeps them.
    lr = torch.tensor([c.learning_rate for c in cfgs], dtype=torch.float64, device=dev)
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
    # One wide GEMM for every member's first layer: (B, 784) @ (784, M*n), bias fused as in
    # nn.Linear.
    x = torch.addmm(b.reshape(-1), images, w.reshape(784, members * width))
    x = x.view(batch, members, width)  # (B, M, n)
    for w, b in rest:
        # Per member: x if x > 0 else slope * x (slope 0: ReLU); the member axis is the second.
        x = _PReLU.apply(x, slopes)  # F.prelu, its backward reading the output (see _PReLU)
        x = torch.einsum("bmi,mio->bmo", x, w) + b  # (B, M, out): a batched matmul over members
    # The lab report's double softmax, only for the members that have it (see model.py).
    return torch.where(softmax[:, None], torch.softmax(x, dim=-1), x)  # (B, M, 10)


class _PReLU(torch.autograd.Function):
    """F.prelu(x, slopes), one slope per member (dim 1), its backward reading the output, not x.

    The same values and gradients as F.prelu: with slopes in [0, 1], out > 0 exactly where x > 0.
    Why: F.prelu's backward needs the mask x > 0. Compiled, AOTAutograd saves it as a bool tensor,
    which inductor's CPU code writes ~20x slower than floats (measured: 6 of a 45 ms sweep step at
    batch 100; benchmarks/README.md). The output is saved anyway, for the next layer's weight
    gradient, so the mask read off it costs no store (with runtime.CompiledStep's recompute_views).
    forward and setup_context apart, as torch.func's transforms require of a Function.
    """

    @staticmethod
    def forward(x: torch.Tensor, slopes: torch.Tensor) -> torch.Tensor:
        return F.prelu(x, slopes)

    @staticmethod
    def setup_context(ctx, inputs: tuple, output: torch.Tensor) -> None:
        ctx.save_for_backward(output, inputs[1])

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        out, slopes = ctx.saved_tensors
        return torch.where(out > 0, grad, slopes[:, None] * grad), None  # F.prelu's gradient


def loss_fn(
    params, slopes: torch.Tensor, softmax: torch.Tensor, images: torch.Tensor, labels: torch.Tensor
) -> torch.Tensor:
    """Every member's mean cross-entropy (train.py's criterion): (M,)."""
    outputs = forward(params, slopes, softmax, images)  # (B, M, 10)
    targets = labels[:, None].expand(-1, outputs.shape[1])  # (B, M)
    losses = F.cross_entropy(outputs.permute(0, 2, 1), targets, reduction="none")  # classes: dim 1
    return losses.mean(dim=0)


def init_adam(params) -> dict:
    """Adam's state for the stacked weights: the moments per tensor and the step count."""
    flat = [p for layer in params for p in layer]
    return {
        "step": 0,
        "m": [torch.zeros_like(p) for p in flat],
        "v": [torch.zeros_like(p) for p in flat],
    }


@dataclasses.dataclass(frozen=True)
class State:
    """What an epoch changes: the stacked weights, Adam's state, who is alive (M,) bool.

    torch updates the weights and Adam's state in place: only `alive` is ever replaced.
    """

    params: list
    opt_state: dict
    alive: torch.Tensor


@torch.no_grad()  # the update is not an op to differentiate
def adam_step(params, grads, opt_state: dict, lr: torch.Tensor, alive: torch.Tensor) -> None:
    """torch.optim.Adam's update (its single-tensor CPU path), each member with its lr, in place.

    The same ops in the same order as torch.optim.Adam, so each member's slice rounds exactly as an
    independent Adam: m.lerp_(g, 1 - b1); v.mul_(b2).addcmul_(g, g, 1 - b2);
    denom = sqrt(v) / sqrt(bc2) + eps (eps outside the root, after bias correction);
    p += (-lr / bc1) * m / denom, the step size computed in double and rounded once, as addcdiv_
    does with its `value`. Frozen members get step size 0.
    """
    flat = [p for layer in params for p in layer]
    neg_step_size, bias_correction2_sqrt = _step_sizes(opt_state, lr, alive, flat[0].dtype)
    flat_grads = [g for layer in grads for g in layer]
    for i, tensors in enumerate(zip(flat, flat_grads, opt_state["m"], opt_state["v"])):
        step_size = _along_members(neg_step_size, i, flat[i]).expand_as(flat[i])  # a view, no copy
        rows = max(1, _ADAM_BLOCK // flat[i][0].numel())  # rows (dim 0) in ~_ADAM_BLOCK elements
        # Inductor fuses the passes below, and a GPU has no CPU cache to fit (each block would be
        # ~8 more kernel launches in a step bound by launches): one block will do.
        if torch.compiler.is_compiling() or flat[i].device.type != "cpu":
            rows = flat[i].shape[0]
        # Eager torch runs each op below as one pass over memory; with 16 members the first
        # layer's tensors are ~25 MB each, and eight whole-tensor passes streaming from RAM took a
        # third of a step at batch 100. Done a block of rows at a time, the passes after the first
        # hit the cache (XLA fuses them instead). Same ops per element, so the same rounding.
        for p, grad, m, v, size in zip(*(t.split(rows) for t in (*tensors, step_size))):
            m.lerp_(grad, 1 - BETA1)
            v.mul_(BETA2).addcmul_(grad, grad, value=1 - BETA2)
            denom = v.sqrt().div_(bias_correction2_sqrt).add_(EPS)
            p.add_(torch.mul(m, size).div_(denom))


@torch.compiler.disable  # compiled, a graph break: the update's fused loop gets these as inputs
def _step_sizes(
    opt_state: dict, lr: torch.Tensor, alive: torch.Tensor, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """Count the step; (-lr / bias correction 1 per member (M,) in `dtype`, 0 if frozen;
    sqrt(bias correction 2), a 0-d float64 tensor), computed in double as torch.optim.Adam does.

    Run eagerly even under torch.compile, for two reasons. The step count is a Python int, which
    dynamo would bake into the graph as a constant, recompiling every step. And traced, inductor
    inlined these pow(beta, step) into the fused update and evaluated them once per element
    (measured: the compiled Adam no faster than the eager blocked one). As graph inputs they are
    read once per element instead.
    """
    opt_state["step"] += 1
    step = opt_state["step"]
    bias_correction1 = 1 - BETA1**step
    bias_correction2_sqrt = (1 - BETA2**step) ** 0.5
    neg_step_size = (-lr / bias_correction1).to(dtype) * alive  # (M,)
    # torch.full, not torch.tensor: on a GPU that copies from the host and waits for the device.
    sqrt_bc2 = torch.full((), bias_correction2_sqrt, dtype=torch.float64, device=lr.device)
    return neg_step_size, sqrt_bc2


@torch.no_grad()
def freeze(state: State) -> State:
    """Zero the weights and Adam state of members no longer alive (their step size is already 0).

    torch zeroes them in place and returns `state` itself.
    """
    flat = [p for layer in state.params for p in layer]
    for i, tensors in enumerate(zip(flat, state.opt_state["m"], state.opt_state["v"])):
        dead = ~_along_members(state.alive, i, flat[i])
        for t in tensors:
            t.masked_fill_(dead, 0)
    return state


def train_step(
    params,
    opt_state: dict,
    alive: torch.Tensor,
    members,
    images: torch.Tensor,
    labels: torch.Tensor,
) -> torch.Tensor:
    """One Adam step of every member on one shared batch, in place: the losses (M,), not synced."""
    lr, slopes, softmax = members

    def total(p):  # torch.func.grad_and_value wants a scalar: the summed losses, the losses as aux
        losses = loss_fn(p, slopes, softmax, images, labels)  # (M,)
        return losses.sum(), losses

    # Members never mix, so d(sum of losses)/d(member m's weights) = d(loss m)/d(them): one
    # backward pass for all. torch.func (JAX-style transforms), not torch.autograd.grad, because
    # torch.compile traces it: forward and backward in one graph.
    grads, (_, losses) = torch.func.grad_and_value(total, has_aux=True)(params)
    adam_step(params, grads, opt_state, lr, alive)
    return losses


def train_epoch(
    state: State,
    members,
    images: torch.Tensor,
    labels: torch.Tensor,
    order: torch.Tensor,
    step_fn: Callable = train_step,
) -> tuple[State, torch.Tensor]:
    """One epoch over order (steps, B): (the new State, losses (steps, M)). Step by step, each one
    `step_fn`: train_step, eager, or train_step under torch.compile (_compiled_step)."""
    params, opt_state, alive = state.params, state.opt_state, state.alive
    losses = []
    for i in range(order.shape[0]):
        index = order[i]  # (B,)
        losses.append(step_fn(params, opt_state, alive, members, images[index], labels[index]))
        # Where train.py reads the loss and stops a run whose loss is not finite.
        if (i + 1) % LOG_EVERY == 0:
            alive = alive & torch.isfinite(losses[-1])
            freeze(State(params, opt_state, alive))
    return State(params, opt_state, alive), torch.stack(losses)


def compile_epoch(
    state: State, members, images: torch.Tensor, labels: torch.Tensor, order: torch.Tensor
) -> Callable:
    """The epoch function, ready to run. Eager torch has nothing to compile: train_epoch itself."""
    return train_epoch


@torch.no_grad()  # no autograd graph for evaluation
def evaluate(
    params, members, images: torch.Tensor, labels: torch.Tensor
) -> tuple[np.ndarray, np.ndarray]:
    """(mean loss (M,), correct predictions (M,)) over all `images`, a few members at a time."""
    _, slopes, softmax = members
    count, widest = params[0][1].shape[0], max(b.shape[-1] for _, b in params)
    chunk = max(1, EVAL_BYTES // (3 * images.shape[0] * widest * images.dtype.itemsize))
    losses, corrects = [], []
    for lo in range(0, count, chunk):
        part = _members(params, lo, lo + chunk)
        outputs = forward(part, slopes[lo : lo + chunk], softmax[lo : lo + chunk], images)
        targets = labels[:, None].expand(-1, outputs.shape[1])  # outputs (N, c, 10), targets (N, c)
        loss = F.cross_entropy(outputs.permute(0, 2, 1), targets, reduction="none")
        losses.append(loss.mean(dim=0))
        corrects.append((outputs.argmax(dim=-1) == targets).sum(dim=0))
    return torch.cat(losses).cpu().numpy(), torch.cat(corrects).cpu().numpy()


def memory_budget(dev: torch.device) -> int:
    """Bytes a group may plan to use: half the GPU's free memory, or half the host's available."""
    if dev.type == "cuda":
        return torch.cuda.mem_get_info(dev)[0] // 2
    return host_memory_budget()


def train_group(
    cfgs: list[Config],
    data: Dataset,
    device: str = "auto",
    log: Callable[[str], object] | None = print,
) -> list[dict]:
    """Train the members `cfgs` of one group (shared/groups.py) together: a record each, in order.

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
    records = GroupRecords("torch", cfgs, log, LOG_EVERY)  # shared/sweep_records.py
    with runtime.matmul_precision(cfg.tf32), runtime.dtype_scope(cfg.dtype):
        train_images, train_labels, test_images, test_labels = device_data(cfg, data, dev)
        params = init_params(cfg, count, dev)
        alive = torch.ones(count, dtype=torch.bool, device=dev)  # (M,)
        state = State(params, init_adam(params), alive)
        members = member_constants(cfgs, dev)

        clock = StepClock(runtime.device_sync(dev))
        order = epoch_order(cfg, data, 0, dev)
        t0 = time.perf_counter()
        run_epoch = compile_epoch(state, members, train_images, train_labels, order)
        # torch.compile: the stacked step compiled here, on copies of the state (the warm-up).
        step = train_step
        if cfg.compile:
            step = _compiled_step(state, members, train_images[order[0]], train_labels[order[0]])
            run_epoch = functools.partial(run_epoch, step_fn=step)
        clock.record_warmup(time.perf_counter() - t0)
        for epoch in range(cfg.epochs):
            order = epoch_order(cfg, data, epoch, dev) if epoch else order  # (steps, B)
            clock.start_epoch()
            state, losses = run_epoch(state, members, train_images, train_labels, order)
            clock.add_steps(cfg.steps_per_epoch)
            clock.end_epoch(losses)
            losses = losses.cpu().numpy()  # (steps, M): the epoch's losses, fetched at once
            test_loss, correct = evaluate(state.params, members, test_images, test_labels)
            test_accuracy = accuracy(correct, len(data.test_labels), cfg.dtype)  # (M,)
            alive = records.record_epoch(epoch, losses, test_loss, test_accuracy)  # (M,) bool
            state = freeze(dataclasses.replace(state, alive=torch.from_numpy(alive).to(dev)))
            if not alive.any():
                break

    wall_s = time.perf_counter() - start
    device, versions = runtime.describe_device(dev), runtime.versions()
    return records.records(data, clock, wall_s, device, versions, runtime.compile_stats(step))


def _compiled_step(state: State, members, images: torch.Tensor, labels: torch.Tensor) -> Callable:
    """train_step under torch.compile (runtime.CompiledStep), compiled now on copies of the state.

    Two graphs: the forward and backward, then Adam's fused update; between them _step_sizes runs
    eagerly (a graph break), so the step count stays a Python int that dynamo never sees (no
    recompile) and the bias corrections enter the fused update as inputs.
    """
    opt_state = state.opt_state
    step = runtime.CompiledStep(train_step, images.device)
    copies = [tuple(p.clone() for p in layer) for layer in state.params]
    state_copy = {"step": opt_state["step"], "m": [t.clone() for t in opt_state["m"]]}
    state_copy["v"] = [t.clone() for t in opt_state["v"]]
    # Needed on a GPU only (CUDA graphs), inert on the CPU, where the tests run it.
    _mark_static(state.params, opt_state)
    _mark_static(copies, state_copy)
    step(copies, state_copy, state.alive, members, images, labels)
    return step


def _mark_static(params, opt_state: dict) -> None:
    """Tell CUDA graphs that the weights and Adam's moments keep their addresses from step to step.

    Adam's graph updates them in place; "reduce-overhead" records a CUDA graph for a graph that
    mutates its inputs only if they are static (as nn.Module parameters and torch.optim's state
    are), and would otherwise run that graph without one. Unguarded: the warm-up's copies and the
    state itself differ in address, which costs one re-recording, not a recompile.
    """
    for t in [p for layer in params for p in layer] + opt_state["m"] + opt_state["v"]:
        torch._dynamo.mark_static_address(t, guard=False)


def _along_members(vec: torch.Tensor, index: int, p: torch.Tensor) -> torch.Tensor:
    """vec (M,) shaped to broadcast along the member axis of flat parameter `index`.

    The member axis is axis 1 in the first W, axis 0 everywhere else.
    """
    shape = [1] * p.ndim
    shape[1 if index == 0 else 0] = vec.shape[0]
    return vec.reshape(shape)


def _members(params, lo: int, hi: int):
    """Members lo..hi-1 of the stacked weights (torch: views; JAX: copies)."""
    (w, b), *rest = params
    return [(w[:, lo:hi], b[lo:hi])] + [(w[lo:hi], b[lo:hi]) for w, b in rest]
