"""What the PyTorch sweep (sweep.py) does only for speed, on one device or under one compiler.

Not the algorithm: each piece computes what its plain form would, bit for bit (tests/test_sweep.py);
benchmarks/README.md ("The torch sweep's tuning") shows what each pays. JAX's twin needs none.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from impls.torch_mlp.compiled import CompiledStep

ADAM_BLOCK = 1 << 20  # elements per block of Adam's update: a few blocks fit the CPU's cache


def prelu(x: torch.Tensor, slopes: torch.Tensor) -> torch.Tensor:
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


def row_blocks(*tensors: torch.Tensor):
    """The tensors cut alike along dim 0 into blocks of about ADAM_BLOCK elements: zip of splits.
    Why: eager torch makes one pass over memory per op, and Adam's passes over a block after its
    first hit the cache. Compiled, inductor fuses the passes into one loop, and a GPU has no CPU
    cache to fit (a block is kernel launches more, in a step bound by launches): one block."""
    rows = max(1, ADAM_BLOCK // tensors[0][0].numel())
    if torch.compiler.is_compiling() or tensors[0].device.type != "cpu":
        rows = tensors[0].shape[0]
    return zip(*(t.split(rows) for t in tensors))


def compile_step(step: Callable, state, members, images, labels, index: torch.Tensor):
    """The sweep's `step` under torch.compile (compiled.CompiledStep), compiled now on copies of the
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
