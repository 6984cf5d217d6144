"""Configs of a grid that can train together: the sweep engine's groups (impls/*/sweep.py).

A *group* is the runs that share every field but `learning_rate`, `activation` and `output`, so
the same batches and the same initial weights; its members differ only in numbers a step can take
per member (docs/running.md#terms). Nothing here knows a framework."""

from __future__ import annotations

import os
from dataclasses import fields

from shared.config import Config

MEMBER_FIELDS = ("learning_rate", "activation", "output")  # what may differ inside a group
N_TEST = 10_000  # test images, evaluated after every epoch
EVAL_BYTES = 256 * 2**20  # activations of one evaluation chunk (members evaluated a few at a time)
MAX_BUDGET = 4 * 2**30  # never plan a group above this, whatever the device has


def group_key(cfg: Config) -> str:
    """The fields a group shares, as a stable string: cfg.key() without the member fields."""
    return ",".join(
        f"{f.name}={getattr(cfg, f.name)!r}" for f in fields(cfg) if f.name not in MEMBER_FIELDS
    )


def group_runs(runs: list[Config]) -> list[list[Config]]:
    """`runs` grouped by group_key, groups in order of first appearance, members in run order."""
    groups: dict[str, list[Config]] = {}
    for cfg in runs:
        groups.setdefault(group_key(cfg), []).append(cfg)
    return list(groups.values())


def estimate_bytes(cfg: Config, members: int) -> int:
    """Peak memory of training `members` members of cfg's group together, data included (an upper
    estimate).

    Per parameter: weight, gradient, Adam's two moments and two step temporaries (6 copies). Per
    hidden unit and sample: pre-activation, activation and their gradients (4). Evaluation runs a
    few members at a time (EVAL_BYTES). The datasets: 70000 images x 784 pixels.
    """
    itemsize = 8 if cfg.dtype == "float64" else 4
    sizes = cfg.layer_sizes
    params = sum(i * o + o for i, o in zip(sizes[:-1], sizes[1:]))
    units = sum(sizes[1:])
    data = 70_000 * 784 * itemsize
    return itemsize * members * (6 * params + 4 * cfg.batch_size * units) + EVAL_BYTES + data


def split_group(members: list[Config], budget_bytes: int) -> list[list[Config]]:
    """Members in the fewest consecutive parts that each fit `budget_bytes`, as equal as can be
    (16 members that fit 5 at a time: 4 x 4). A single member always forms a part, even over budget:
    the loop would need as much.
    """
    budget = min(budget_bytes, MAX_BUDGET)
    fits = len(members)
    while fits > 1 and estimate_bytes(members[0], fits) > budget:
        fits -= 1
    parts = -(-len(members) // fits)
    size = -(-len(members) // parts)
    return [members[i : i + size] for i in range(0, len(members), size)]


def host_memory_budget() -> int:
    """Half the memory the OS reports available (MemAvailable), for a group on the CPU."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024 // 2
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES") // 2
