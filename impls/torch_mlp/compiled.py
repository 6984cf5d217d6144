"""torch.compile's plumbing for both engines: a step under torch.compile and what dynamo compiled.

PyTorch only: JAX's steps are jitted where they are defined and need no wrapper (the twins'
runtime.py record what each compiled).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch._functorch.config  # CompiledStep: recompute_views


class CompiledStep:
    """`step` under torch.compile, counting what dynamo compiles (after the first `warm` calls: a
    recompile). On a GPU, CUDA graphs too: a step replays its kernels, not launched from Python."""

    def __init__(self, step: Callable, dev: torch.device, warm: int = 1):
        # dynamo keeps graphs on code objects that every run of a process shares: without a reset,
        # a grid's runs fill its recompile limit, after which the step runs eager.
        torch._dynamo.reset()
        # Views rebuilt in the backward, not saved: else the sweep's activation saves a bool mask
        # (impls/torch_mlp/sweep_tuning.py). Process-wide: a patch per call costs more.
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
