"""The machine a run is timed on: its load when a run starts, and a GEMM floor (what one step's
bare matrix products take in numpy on this CPU). Numpy only, no framework.

Why: step times mean something only against the machine they ran on (docs/timing.md).
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np

from shared.config import Config
from shared.timing import available_cpus


def load_now() -> dict[str, float | int]:
    """The 1-minute load average and the CPUs available: load >= cpus means every core was busy."""
    try:
        load1 = os.getloadavg()[0]
    except OSError:
        load1 = float("nan")
    return {"load_1m": round(load1, 2), "cpus": available_cpus()}


# ------------------------------------------------------------------ the GEMM floor


def step_gemms(cfg: Config) -> list[tuple[int, int, int]]:
    """(m, k, n) of every matrix product in one training step: per layer the forward X @ W, the
    weight gradient X^T @ dY and, for every layer but the first, the input gradient dY @ W^T."""
    b, shapes = cfg.batch_size, []
    for i, (fan_in, fan_out) in enumerate(zip(cfg.layer_sizes[:-1], cfg.layer_sizes[1:])):
        shapes.append((b, fan_in, fan_out))  # forward
        shapes.append((fan_in, b, fan_out))  # weight gradient
        if i > 0:
            shapes.append((b, fan_out, fan_in))  # input gradient
    return shapes


def gemm_floor_us(cfg: Config, budget_s: float = 0.15) -> float:
    """µs for one step's GEMMs in float32 numpy on this machine: the fastest of the rounds timed
    within `budget_s` (at least 5). The fastest, because a floor is what the machine can do: on a
    busy machine the median measures the other processes (numpy's BLAS threads stall like torch's).
    A framework's step does these and more (activations, loss, Adam, dispatch)."""
    rng = np.random.default_rng(0)
    pairs = [
        (
            rng.standard_normal((m, k), dtype=np.float32),
            rng.standard_normal((k, n), dtype=np.float32),
        )
        for m, k, n in step_gemms(cfg)
    ]
    outs = [np.empty((a.shape[0], b.shape[1]), np.float32) for a, b in pairs]

    def once() -> float:
        t0 = time.perf_counter()
        for (a, b), out in zip(pairs, outs):
            np.matmul(a, b, out=out)
        return time.perf_counter() - t0

    once()  # warm-up: BLAS threads start, pages are touched
    times, deadline = [], time.perf_counter() + budget_s
    while len(times) < 5 or (time.perf_counter() < deadline and len(times) < 200):
        times.append(once())
    return 1e6 * min(times)


def shape_key(cfg: Config) -> str:
    """The floor depends on the layer sizes and the batch only: "1x500 b100"."""
    return f"{cfg.hidden_layers}x{cfg.hidden_size} b{cfg.batch_size}"


def probe_floors(runs: list[Config], budget_s: float = 0.15) -> dict[str, float]:
    """The GEMM floor of every distinct (architecture, batch) in `runs`, in µs/step."""
    floors: dict[str, float] = {}
    for cfg in runs:
        key = shape_key(cfg)
        if key not in floors:
            floors[key] = round(gemm_floor_us(cfg, budget_s), 1)
    return floors


def measure_floors(runs: list[Config], devices: dict[str, str]) -> dict[str, float]:
    """The GEMM floor of each shape to run, measured now, before training: what numpy's float32
    matrix products of one step take on this CPU, the reference a step time is read against
    (comparison/machine.py). A CPU floor says nothing about a GPU's step, so GPU runs get none."""
    if not runs or any(d != "cpu" for d in devices.values()):
        return {}
    t0 = time.perf_counter()
    floors = probe_floors(runs)
    print(
        f"[compare] GEMM floor (numpy float32 matmuls of each step's shapes, {len(floors)} shapes, "
        f"{time.perf_counter() - t0:.1f} s): "
        + ", ".join(f"{k} {v:.0f} µs" for k, v in list(floors.items())[:6])
        + (" ..." if len(floors) > 6 else ""),
        file=sys.stderr,
    )
    return floors
