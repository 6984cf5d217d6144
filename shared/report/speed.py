"""## Step speed: µs per training step per architecture and batch size, the torch/JAX ratio,
samples/s, the first step's compile / warm-up time, and the step-time figure."""

from __future__ import annotations

import pathlib
from collections import defaultdict
from statistics import median

import numpy as np

from shared.report.common import BACKENDS, Page, arch, arch_order, cfg_of, plt, save, table


def section(page: Page) -> list[str]:
    md = ["## Step speed", "",
          "Steady-state µs per training step (synchronised at epoch ends only, first step excluded and "
          "reported as compile/warm-up; evaluation excluded).", ""]
    md += _engine_note(page.records)
    speed = step_times(page.records)
    md += [_speed_table(speed), ""]
    md += _compile_line(page.records)
    if len(speed) > 2:
        fig_step_time(page.pairs, page.out / "step_time.png")
        md += ["![step time](step_time.png)", ""]
    return md


def _engine_note(records: list[dict]) -> list[str]:
    """How to read the times of sweep-engine runs (compare.py --engine sweep), when there are any."""
    engines = {r.get("engine", "loop") for r in records}
    if "sweep" not in engines:
        return []
    return [("Runs of the sweep engine trained a group of M members at once: their µs/step is the group's step "
             "time / M, each member's share, and their first-step time the group's compile. ")
            + ("Loop runs (one at a time) are mixed in: their times are per step of one run." if "loop" in engines
               else "Every run here is a sweep run."), ""]


def step_times(records: list[dict]) -> dict[tuple, list[float]]:
    """(arch, batch size, backend) -> µs/step of every run that timed steady steps."""
    speed: dict[tuple, list[float]] = defaultdict(list)
    for r in records:
        if r.get("step_time_us"):
            c = cfg_of(r)
            speed[(arch(c), c.batch_size, r["backend"])].append(r["step_time_us"])
    return speed


def _speed_table(speed: dict[tuple, list[float]]) -> str:
    rows = []
    for a, bs in sorted({(k[0], k[1]) for k in speed}, key=lambda k: (arch_order(k[0]), k[1])):
        t = median(speed[(a, bs, "torch")]) if speed.get((a, bs, "torch")) else None
        j = median(speed[(a, bs, "jax")]) if speed.get((a, bs, "jax")) else None
        rows.append([a, bs, f"{t:.0f}" if t else "-", f"{j:.0f}" if j else "-",
                     f"{t / j:.2f}" if t and j else "-", f"{bs * 1e6 / t:,.0f}" if t else "-",
                     f"{bs * 1e6 / j:,.0f}" if j else "-"])
    return table(["layers x hidden", "batch", "torch µs/step", "JAX µs/step", "torch/JAX",
                  "torch samples/s", "JAX samples/s"], rows)


def _compile_line(records: list[dict]) -> list[str]:
    comp: dict[str, list[float]] = defaultdict(list)
    for r in records:
        if r.get("compile_s") is not None:
            comp[r["backend"]].append(r["compile_s"])
    return ["First step (compile / warm-up), median seconds: " +
            ", ".join(f"{b} {median(v):.3f}" for b, v in comp.items()) + ".", ""]


def _by_backend_arch_batch(pairs) -> dict[tuple, list[float]]:
    times: dict[tuple, list[float]] = defaultdict(list)
    for recs in pairs.values():
        for b, r in recs.items():
            if r.get("step_time_us"):
                c = cfg_of(r)
                times[(b, arch(c), c.batch_size)].append(r["step_time_us"])
    return times


def fig_step_time(pairs, path: pathlib.Path) -> None:
    """µs/step by batch size, one line per architecture, per backend; and the torch/JAX ratio."""
    times = _by_backend_arch_batch(pairs)
    archs = sorted({k[1] for k in times}, key=arch_order)
    batches = sorted({k[2] for k in times})
    pyplot = plt()
    fig, axes = pyplot.subplots(1, 3, figsize=(15, 4.5))
    cmap = pyplot.get_cmap("viridis", max(2, len(archs)))

    def med(b, a, bs):
        return median(times[(b, a, bs)]) if times.get((b, a, bs)) else np.nan

    for ax, b in zip(axes[:2], BACKENDS):
        for i, a in enumerate(archs):
            ax.plot(batches, [med(b, a, bs) for bs in batches], marker="o", color=cmap(i), label=a)
        ax.set_title(f"{b}: median µs per training step")
        ax.set_ylabel("µs / step")
    ax = axes[2]
    for i, a in enumerate(archs):
        ax.plot(batches, [med("torch", a, bs) / med("jax", a, bs) for bs in batches], marker="o", color=cmap(i), label=a)
    ax.axhline(1, color="black", lw=0.8)
    ax.set_title("torch / JAX step time (>1: JAX faster)")
    ax.set_ylabel("ratio")
    for ax in axes:
        ax.set_xlabel("batch size")
        ax.grid(alpha=0.3)
        ax.legend(title="layers x hidden", fontsize=7)
    save(fig, path, dpi=100)
