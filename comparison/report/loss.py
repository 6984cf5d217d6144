"""## Loss: the reference run's curves overlaid with their per-step difference, its per-epoch table,
and small multiples of the loss curves over learning rate x batch size."""

from __future__ import annotations

import math
import pathlib

import numpy as np

from comparison.report.common import (
    BACKENDS,
    COLORS,
    Page,
    accuracy,
    arch,
    curve,
    first_cfg,
    ok,
    pct,
    plt,
    save,
    smooth,
    table,
)
from shared.config import Config

DRIFT_TEXT = (
    "With the shared initial weights and the shared batch order the two curves start on top of "
    "each other; the lower panel shows their per-step difference. It is float32 rounding, "
    "amplified: the frameworks' matrix products and sums add in different orders, so from the "
    "first step their results differ in the last bits (about 1e-7 relative), and training is "
    "chaotic: each step starts from the weights the last one left, so a difference in the last "
    "bits grows step after step until it reaches the size of the batch-to-batch noise of the "
    "loss. It does so at any learning rate, this one included; it is the same effect as a change "
    "of random seed, not a bug: the curves keep the same statistics, and the parity tests "
    "(tests/test_parity.py) show identical weights give identical outputs, gradients and Adam "
    "steps within float32 tolerance. The same configuration run with `--set dtype=float64` starts "
    "from differences of about 1e-16 instead of 1e-7; where the results hold such a run, compare "
    "its panel."
)


def section(page: Page) -> list[str]:
    md = ["## Loss", ""]
    ref = reference(page.pairs)
    if ref:
        fig_loss_reference(ref, page.out / "loss_reference.png")
        md += ["![training loss](loss_reference.png)", "", DRIFT_TEXT, ""]
        md += _epoch_table(ref)
    if len(page.pairs) > 1:
        fig_loss_grid(page.pairs, page.out / "loss_grid.png")
        md += ["![loss small multiples](loss_grid.png)", ""]
    return md


def reference(pairs: dict[str, dict[str, dict]]) -> dict[str, dict] | None:
    """The run to show in detail: the one closest to the tutorial's network (Config's defaults:
    fewest differing fields, then the nearest learning rate), among runs where every backend
    finished normally."""
    base = Config().to_dict()

    def distance(recs: dict[str, dict]) -> tuple:
        c = next(iter(recs.values()))["config"]
        differing = sum(
            c[k] != base[k]
            for k in ("hidden_size", "hidden_layers", "activation", "output", "batch_size")
        )
        return (
            not all(ok(r) for r in recs.values()),
            differing,
            abs(math.log10(c["learning_rate"] / base["learning_rate"])),
        )

    candidates = [recs for recs in pairs.values() if any(ok(r) for r in recs.values())]
    return min(candidates, key=distance) if candidates else None


def _epoch_table(ref: dict[str, dict]) -> list[str]:
    rows = []
    for b in BACKENDS:
        r = ref.get(b)
        if r:
            for e in r["epochs"]:
                rows.append(
                    [
                        b,
                        e["epoch"],
                        f"{e['train_loss']:.4f}",
                        f"{e['test_loss']:.4f}",
                        pct(accuracy(e)),
                    ]
                )
    return [
        f"Per epoch, {first_cfg(ref).describe(brief=True)}:",
        "",
        table(["backend", "epoch", "train loss", "test loss", "test acc %"], rows),
        "",
    ]


def fig_loss_reference(recs: dict[str, dict], path: pathlib.Path) -> None:
    fig, (ax, ax2) = plt().subplots(
        2, 1, figsize=(9, 6.5), sharex=True, gridspec_kw={"height_ratios": [2, 1]}
    )
    curves = {}
    for b in BACKENDS:
        if ok(recs.get(b)):
            x, y = curve(recs[b])
            curves[b] = (x, y)
            ax.plot(x, y, color=COLORS[b], alpha=0.25, lw=0.6)
            k = max(1, len(y) // 100)
            ax.plot(
                x[k - 1 :],
                smooth(y, k),
                color=COLORS[b],
                lw=1.6,
                ls="-" if b == "torch" else "--",
                label=f"{b} (moving mean of {k})",
            )
    ax.set_ylabel("training loss (cross-entropy)")
    ax.set_title(f"Training loss, {first_cfg(recs).describe(brief=True)}: torch and JAX overlaid")
    ax.legend()
    ax.grid(alpha=0.3)
    if len(curves) == 2:
        (x, yt), (_, yj) = curves["torch"], curves["jax"]
        n = min(len(yt), len(yj))
        ax2.plot(x[:n], yt[:n] - yj[:n], color="black", lw=0.7)
        ax2.set_title(
            f"torch - JAX, per step (max |diff| {np.nanmax(np.abs(yt[:n] - yj[:n])):.2e})",
            fontsize=10,
        )
    else:
        ax2.set_title("difference: needs both backends", fontsize=10)
    ax2.set_xlabel("training step")
    ax2.set_ylabel("loss difference")
    ax2.grid(alpha=0.3)
    save(fig, path, dpi=110)


def panel_configs(pairs: dict[str, dict[str, dict]], limit: int = 12) -> list[dict[str, dict]]:
    """Up to `limit` runs for small multiples: the lr x batch panels of the first architecture."""
    allrecs = list(pairs.values())
    if len(allrecs) <= limit:
        return sorted(allrecs, key=_panel_order)

    def family(
        recs: dict[str, dict],
    ) -> tuple:  # everything but learning rate, batch size and epochs
        c = first_cfg(recs)
        return c.hidden_size, c.hidden_layers, c.activation, c.output, c.dataset

    chosen = [recs for recs in allrecs if family(recs) == family(allrecs[0])]
    return sorted(chosen, key=_panel_order)[:limit]


def _panel_order(recs: dict[str, dict]) -> tuple:
    """Panels by batch size, then from the largest learning rate down."""
    c = first_cfg(recs)
    return c.batch_size, -c.learning_rate


def _plot_panel(ax, recs: dict[str, dict]) -> str:
    """One small multiple: both backends' smoothed loss over epochs; returns the run's label."""
    cfg = first_cfg(recs)
    for b in BACKENDS:
        r = recs.get(b)
        if r is None or not r["loss_curve"]:
            continue
        x, y = curve(r)
        x = x / cfg.steps_per_epoch  # epochs, so panels with other batch sizes line up
        k = max(1, len(y) // 60)
        ax.plot(
            x[k - 1 :],
            smooth(y, k),
            color=COLORS[b],
            lw=1.2,
            ls="-" if b == "torch" else "--",
            label=b + ("" if r["status"] == "ok" else f" ({r['status']})"),
        )
    ax.set_title(f"b{cfg.batch_size} lr{cfg.learning_rate:g}", fontsize=9)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return cfg.describe(brief=True)


def fig_loss_grid(pairs: dict[str, dict[str, dict]], path: pathlib.Path) -> list[str]:
    panels = panel_configs(pairs)
    cols = min(4, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt().subplots(rows, cols, figsize=(3.6 * cols, 2.8 * rows), squeeze=False)
    titles = [_plot_panel(ax, recs) for ax, recs in zip(axes.flat, panels)]
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    for ax in axes[-1]:
        ax.set_xlabel("epoch", fontsize=8)
    for ax in axes[:, 0]:
        ax.set_ylabel("train loss", fontsize=8)
    c0 = first_cfg(panels[0])
    fig.suptitle(
        f"Training loss, torch (solid) vs JAX (dashed): {arch(c0)} {c0.activation} {c0.output}"
    )
    save(fig, path, dpi=100)
    return titles
