"""The compiled loop step (Config.compile): train.py's step as one pure function, compiled whole.

A fenced speed path, not the lesson; twin of impls/flax_mlp/fast.py. Why: at a small step a GPU
waits on the host, and torch.compile of train_step breaks its graph 7 times; here forward, backward
(torch.func.grad_and_value) and torch's own Adam trace into one graph (benchmarks/README.md).
torch only, around it: torch.compile's plumbing (jax.jit needs none) and what the sweep does by hand
for speed (XLA fuses it), each computing what its plain form would, bit for bit.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
import torch._functorch.config  # CompiledStep: recompute_views
import torch.nn.functional as F
from torch.optim.adam import adam  # the function torch.optim.Adam.step calls

# ---------------------------------------------------------- torch.compile's plumbing, both engines


class CompiledStep:
    """`step` under torch.compile, counting what dynamo compiles (after the first `warm` calls: a
    recompile). On a GPU, CUDA graphs too: a step replays its kernels, not launched from Python."""

    def __init__(self, step: Callable, dev: torch.device, warm: int = 1):
        # dynamo keeps graphs on code objects that every run of a process shares: without a reset,
        # a grid's runs fill its recompile limit, after which the step runs eager.
        torch._dynamo.reset()
        # Views rebuilt in the backward, not saved: else the sweep's activation saves a bool mask
        # (prelu, below). Process-wide: a patch per call costs more.
        torch._functorch.config.recompute_views = True
        self.mode = "reduce-overhead" if dev.type == "cuda" else "default"
        self.fn = torch.compile(step, mode=self.mode)
        self.warm, self.calls = warm, 0
        self.counts = self.after_warm = _dynamo_counts()

    def __call__(self, *args):
        out = self.fn(*args)
        self.calls += 1
        if self.calls == self.warm:
            self.after_warm = _dynamo_counts()
        # A CUDA graph's outputs live in its own memory, overwritten by its next replay.
        return out.clone() if self.mode == "reduce-overhead" else out

    def stats(self) -> dict:
        """{mode, graphs, graph_breaks, recompiles, cudagraph_skips} (docs/results-format.md)."""
        (g0, b0, s0), (g1, b1, _), (g2, _, s2) = self.counts, self.after_warm, _dynamo_counts()
        return {
            "mode": self.mode,
            "graphs": g1 - g0,
            "graph_breaks": b1 - b0,
            "recompiles": g2 - g1,
            "cudagraph_skips": s2 - s0,
        }


def _dynamo_counts() -> tuple[int, int, int]:
    """(graphs compiled, graph breaks, graphs run without CUDA graphs) so far in this process."""
    counters = torch._dynamo.utils.counters
    graphs, breaks = counters["stats"]["unique_graphs"], sum(counters["graph_break"].values())
    return graphs, breaks, counters["inductor"]["cudagraph_skips"]


# ------------------------------------------------------------------------ the loop's compiled step


class FastStep(CompiledStep):
    """step(images, labels) -> the loss, not synced: one compiled call that updates the model's
    weights and the optimizer's Adam state in place (train.py's evaluate then reads the model)."""

    def __init__(self, loss_fn: Callable, model: torch.nn.Module, optimizer: torch.optim.Adam, dev):
        names, params = zip(*model.named_parameters())
        # Views of the parameters' storage: updated in place, the model sees every step.
        self.params = [p.detach() for p in params]
        self.opt_state = _adam_state(optimizer, params)
        # torch.optim.Adam's hyperparameters, as adam() names them.
        group = optimizer.param_groups[0]
        hyper = {"beta1": group["betas"][0], "beta2": group["betas"][1], "amsgrad": False}
        hyper.update({k: group[k] for k in ("lr", "eps", "weight_decay", "maximize")})
        pure = functools.partial(_pure_step, loss_fn=loss_fn, model=model, names=names, hyper=hyper)
        super().__init__(pure, dev)
        if dev.type == "cuda":  # CUDA graphs: the state keeps its addresses (_mark_static)
            for t in self.params + [t for ts in self.opt_state.values() for t in ts]:
                torch._dynamo.mark_static_address(t, guard=False)

    def __call__(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return super().__call__(self.params, self.opt_state, images, labels)


def write_back(step: Callable) -> None:
    """Put a FastStep's state where train() reads it: in torch, nothing to do (it updates the
    model's parameters and the optimizer's state in place)."""


def _pure_step(params, opt_state, images, labels, *, loss_fn, model, names, hyper):
    """One Adam step: grads of loss_fn at `params` (model's structure, these tensors), then torch's
    Adam (capturable: its step count a tensor, so nothing recompiles), all in place; the loss."""

    def loss_at(weights):  # loss_fn(model, ...) with `weights` swapped in for the parameters
        with_weights = functools.partial(
            torch.func.functional_call, model, dict(zip(names, weights))
        )
        return loss_fn(with_weights, images, labels)

    grads, loss = torch.func.grad_and_value(loss_at)(params)
    with torch.no_grad():
        adam(
            params,
            list(grads),
            opt_state["exp_avg"],
            opt_state["exp_avg_sq"],
            [],  # no amsgrad: no max of the second moments
            opt_state["step"],
            foreach=False,
            capturable=True,
            **hyper,
        )
    return loss.detach()


def _adam_state(optimizer: torch.optim.Adam, params) -> dict[str, list[torch.Tensor]]:
    """The optimizer's own state, made now as its first step() would, but with the step count a
    float64 tensor on the device: capturable Adam computes its bias corrections in the count's
    dtype, and with torch's float32 count the compiled run drifted from eager's (which uses Python
    floats) by 6e-6 in 100 steps, in float32 (now 1e-6) and float64 (now 9e-16) alike.
    {"step", "exp_avg", "exp_avg_sq": [one per parameter]}."""
    state = {"step": [], "exp_avg": [], "exp_avg_sq": []}
    for p in params:
        s = optimizer.state[p]
        s["step"] = torch.zeros((), dtype=torch.float64, device=p.device)
        s["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        s["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        for key in state:
            state[key].append(s[key])
    return state


# ------------------------------------------------------------------- the sweep's tuning (sweep.py)
# Not the algorithm: each piece computes what its plain form would, bit for bit
# (tests/test_sweep.py); benchmarks/README.md ("The torch sweep's tuning") shows what each pays.

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
