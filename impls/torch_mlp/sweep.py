"""The sweep engine in PyTorch: a group of configs trained together, as one wider network.

The twin is impls/flax_mlp/sweep.py; docs/sweep-engine.md says how and why. Each member of a group
(shared/groups.py) trains exactly as train.py would train it alone: the weights get a member axis,
and learning rate, activation and output become per-member numbers. What is there only for speed on
one device or compiler is fenced off at the end.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from impls.torch_mlp import checkpoint, runtime
from impls.torch_mlp.fast import CompiledStep
from impls.torch_mlp.model import LEAKY_SLOPE, build_model, get_weights, set_weights
from impls.torch_mlp.train import LOG_EVERY, device_data, epoch_order
from shared.config import Config
from shared.data import Dataset
from shared.groups import EVAL_BYTES, group_key, host_memory_budget, split_group
from shared.init import Weights
from shared.record import accuracy
from shared.sweep_records import GroupRecords
from shared.timing import StepClock

BETA1, BETA2, EPS = 0.9, 0.999, 1e-8  # train.py's Adam: torch.optim.Adam(betas=..., eps=...)


def init_params(
    cfg: Config, members: int, dev: torch.device
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The loop's initial weights, one copy per member: [(W, b), ...], first W (784, M, n) (a free
    view as (784, M*n) for the wide GEMM), b (M, n); then W (M, in, out), b (M, out)."""
    weights = get_weights(build_model(cfg))
    params = []
    for i, (w, b) in enumerate(weights):
        axis = 1 if i == 0 else 0  # the member axis: 1 in the first W, 0 everywhere else
        w = np.repeat(np.expand_dims(w, axis), members, axis=axis)
        b = np.repeat(b[None], members, axis=0)
        params.append((torch.from_numpy(w).to(dev), torch.from_numpy(b).to(dev)))
    return params


def member_constants(
    cfgs: list[Config], dev: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(lr (M,) float64 as torch.optim.Adam keeps it, negative slope (M,), softmax flag (M,) bool):
    what differs between members."""
    dtype = torch.float64 if cfgs[0].dtype == "float64" else torch.float32
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
    # One wide GEMM for every member's first layer: (B, 784) @ (784, M*n), bias fused (nn.Linear)
    x = torch.addmm(b.reshape(-1), images, w.reshape(784, members * width))
    x = x.view(batch, members, width)  # (B, M, n)
    for w, b in rest:
        x = _prelu(x, slopes)  # x if x > 0 else slope * x, per member (F.prelu, below)
        x = torch.einsum("bmi,mio->bmo", x, w) + b  # (B, M, out): a batched matmul over members
    # The lab report's double softmax, only for the members that have it (see model.py).
    return torch.where(softmax[:, None], torch.softmax(x, dim=-1), x)  # (B, M, 10)


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
    """What an epoch changes: the stacked weights, Adam's state, who is alive (M,) bool. torch
    updates the weights and Adam's state in place: only `alive` is ever replaced."""

    params: list
    opt_state: dict
    alive: torch.Tensor


@torch.no_grad()  # the update is not an op to differentiate
def adam_step(params, grads, opt_state: dict, lr: torch.Tensor, alive: torch.Tensor) -> None:
    """torch.optim.Adam's update, each member with its lr, in place: its ops in its order and its
    step size, computed in double and rounded once, so each member's slice rounds exactly as an
    independent Adam. Frozen members get step size 0."""
    flat = [p for layer in params for p in layer]
    neg_step_size, bias_correction2_sqrt = _step_sizes(opt_state, lr, alive, flat[0].dtype)
    flat_grads = [g for layer in grads for g in layer]
    for i, tensors in enumerate(zip(flat, flat_grads, opt_state["m"], opt_state["v"])):
        step_size = _along_members(neg_step_size, i, flat[i]).expand_as(flat[i])  # a view, no copy
        for p, grad, m, v, size in _row_blocks(*tensors, step_size):  # cache-sized, below
            m.lerp_(grad, 1 - BETA1)
            v.mul_(BETA2).addcmul_(grad, grad, value=1 - BETA2)
            denom = v.sqrt().div_(bias_correction2_sqrt).add_(EPS)
            p.add_(torch.mul(m, size).div_(denom))


# Eager even when compiled (a graph break): dynamo would make the step count, a Python int, a
# constant and recompile every step; and the fused update gets these as inputs, not per element.
@torch.compiler.disable
def _step_sizes(
    opt_state: dict, lr: torch.Tensor, alive: torch.Tensor, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """Count the step; (-lr / bias correction 1 per member (M,) in `dtype`, 0 if frozen;
    sqrt(bias correction 2), a 0-d float64 tensor), computed in double as torch.optim.Adam does."""
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
    """Zero the weights and Adam state of members no longer alive (their step size is already 0),
    in place: `state` itself."""
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
    # backward pass for all. torch.func, not torch.autograd.grad: torch.compile traces it.
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
    """One epoch over order (steps, B): (the new State, losses (steps, M)), a step at a time."""
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
    cfg: Config, state: State, members, images: torch.Tensor, labels: torch.Tensor, order
) -> tuple[Callable, Callable]:
    """(run_epoch(state, members, images, labels, order), the step it runs), compiled now for
    these shapes where there is something to compile, so that the compile is timed as warm-up."""
    step = train_step  # eager: torch runs each op as Python calls it
    if cfg.compile:  # torch.compile, on copies of the state (below)
        step = _compile_step(step, state, members, images, labels, order[0])
    run_epoch = functools.partial(train_epoch, step_fn=step)
    return run_epoch, step


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
        loss, correct = _evaluate_chunk(
            part, slopes[lo : lo + chunk], softmax[lo : lo + chunk], images, labels
        )
        losses.append(loss)
        corrects.append(correct)
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
    dev: torch.device,
    log: Callable[[str], object],
    save: dict,
    progress: Callable[[int, int, int], object] | None = None,
) -> list[dict]:
    start = time.perf_counter()
    cfg, count = cfgs[0], len(cfgs)  # cfg: what the members share
    records = GroupRecords("torch", cfgs, log, LOG_EVERY, progress)  # shared/sweep_records.py
    with runtime.matmul_precision(cfg.tf32), runtime.dtype_scope(cfg.dtype):
        train_images, train_labels, test_images, test_labels = device_data(cfg, data, dev)
        params = init_params(cfg, count, dev)
        alive = torch.ones(count, dtype=torch.bool, device=dev)  # (M,)
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
            losses = losses.cpu().numpy()  # (steps, M): the epoch's losses, fetched at once
            test_loss, correct = evaluate(state.params, members, test_images, test_labels)
            test_accuracy = accuracy(correct, len(data.test_labels), cfg.dtype)  # (M,)
            alive = records.record_epoch(epoch, losses, test_loss, test_accuracy)  # (M,) bool
            state = freeze(dataclasses.replace(state, alive=torch.from_numpy(alive).to(dev)))
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
    first = (w[:, 0].detach().cpu().numpy(), b[0].detach().cpu().numpy())
    return [first] + [(w[0].detach().cpu().numpy(), b[0].detach().cpu().numpy()) for w, b in rest]


def _along_members(vec: torch.Tensor, index: int, p: torch.Tensor) -> torch.Tensor:
    """vec (M,) shaped to broadcast along the member axis of flat parameter `index`."""
    shape = [1] * p.ndim
    shape[1 if index == 0 else 0] = vec.shape[0]
    return vec.reshape(shape)


def _members(params, lo: int, hi: int):
    """Members lo..hi-1 of the stacked weights (torch: views; JAX: copies)."""
    (w, b), *rest = params
    return [(w[:, lo:hi], b[lo:hi])] + [(w[lo:hi], b[lo:hi]) for w, b in rest]


@torch.no_grad()  # no autograd graph for evaluation
def _evaluate_chunk(params, slopes, softmax, images, labels):
    outputs = forward(params, slopes, softmax, images)  # (N, c, 10)
    targets = labels[:, None].expand(-1, outputs.shape[1])
    loss = F.cross_entropy(outputs.permute(0, 2, 1), targets, reduction="none").mean(dim=0)
    return loss, (outputs.argmax(dim=-1) == targets).sum(dim=0)


# -------------------------------------------------------- torch only, for speed: not the algorithm
# XLA does these itself (it fuses Adam's passes and the activation; jit compiles the epoch whole).
# Each computes what its plain form would, bit for bit (tests/test_sweep.py, test_compiled.py);
# benchmarks/README.md ("The torch sweep's tuning") shows what each pays.

_ADAM_BLOCK = 1 << 20  # elements per block of Adam's update: a few blocks fit the CPU's cache


def _prelu(x: torch.Tensor, slopes: torch.Tensor) -> torch.Tensor:
    """F.prelu(x, slopes), one slope per member (dim 1), its backward reading the output, not x."""
    return _PReLU.apply(x, slopes)


class _PReLU(torch.autograd.Function):
    # Why: compiled, F.prelu's backward saves the mask x > 0 as a bool tensor, which inductor's CPU
    # code writes slowly; the output, saved anyway, gives the same mask for slopes in [0, 1].
    # forward and setup_context apart, as torch.func's transforms require of a Function.

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


def _row_blocks(*tensors: torch.Tensor):
    """The tensors cut alike along dim 0 into blocks of about _ADAM_BLOCK elements: zip of splits.
    Why: eager torch makes one pass over memory per op, and Adam's passes over a block after its
    first hit the cache. Compiled, inductor fuses the passes into one loop, and a GPU has no CPU
    cache to fit (a block is kernel launches more, in a step bound by launches): one block."""
    rows = max(1, _ADAM_BLOCK // tensors[0][0].numel())
    if torch.compiler.is_compiling() or tensors[0].device.type != "cpu":
        rows = tensors[0].shape[0]
    return zip(*(t.split(rows) for t in tensors))


def _compile_step(step: Callable, state, members, images, labels, index: torch.Tensor):
    """The sweep's `step` under torch.compile (CompiledStep), compiled now on copies of the
    state and the batch `index` (B,), so that the compile is timed as the warm-up."""
    images, labels, opt_state = images[index], labels[index], state.opt_state
    compiled = CompiledStep(step, images.device)
    copies = [tuple(p.clone() for p in layer) for layer in state.params]
    state_copy = {"step": opt_state["step"], "m": [t.clone() for t in opt_state["m"]]}
    state_copy["v"] = [t.clone() for t in opt_state["v"]]
    # Needed on a GPU only (CUDA graphs), inert on the CPU, where the tests run it.
    _mark_static(state.params, opt_state)
    _mark_static(copies, state_copy)
    compiled(copies, state_copy, state.alive, members, images, labels)
    return compiled


def _mark_static(params, opt_state: dict) -> None:
    # Why: "reduce-overhead" records a CUDA graph for Adam's graph, which updates the weights and
    # moments in place, only if they keep their addresses (are static), as nn.Module parameters do.
    # Unguarded: the warm-up's copies differ in address, which costs one re-recording, no recompile.
    for t in [p for layer in params for p in layer] + opt_state["m"] + opt_state["v"]:
        torch._dynamo.mark_static_address(t, guard=False)
