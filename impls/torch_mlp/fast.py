"""The compiled loop step (Config.compile): train.py's step as one pure function, compiled whole.

A fenced speed path, not the lesson; twin of impls/flax_mlp/fast.py. Why: at a small step a GPU
waits on the host, and torch.compile of train_step breaks its graph 7 times; here forward, backward
(torch.func.grad_and_value) and torch's own Adam trace into one graph (benchmarks/README.md).
torch only, before it: torch.compile's plumbing (CompiledStep, which the sweep's compiled step uses
too); jax.jit needs none.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
import torch._functorch.config  # CompiledStep: recompute_views
from torch.optim.adam import adam  # the function torch.optim.Adam.step calls

# ---------------------------------------------- torch.compile's plumbing, both engines (torch only)


class CompiledStep:
    """`step` under torch.compile, counting what dynamo compiles (after the first `warm` calls: a
    recompile). On a GPU, CUDA graphs too: a step replays its kernels, not launched from Python."""

    def __init__(self, step: Callable, dev: torch.device, warm: int = 1):
        # dynamo keeps graphs on code objects that every run of a process shares: without a reset,
        # a grid's runs fill its recompile limit, after which the step runs eager.
        torch._dynamo.reset()
        # Views rebuilt in the backward, not saved: else the sweep's activation saves a bool mask
        # (sweep._prelu). Process-wide: a patch per call costs more.
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
        if dev.type == "cuda":  # CUDA graphs: the state keeps its addresses (sweep._mark_static)
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
