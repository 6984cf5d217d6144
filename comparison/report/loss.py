"""## Loss: the reference run's curves overlaid with their per-step difference, its per-epoch table,
and small multiples of the loss curves over learning rate x batch size."""

from __future__ import annotations

import math

import numpy as np

from comparison.report.common import (
    BACKENDS,
    COLORS,
    NAMES,
    STYLES,
    Page,
    accuracy,
    backend_legend,
    curve,
    first_cfg,
    integer_ticks,
    label,
    ok,
    pct,
    plt,
    shared_label,
    smooth,
    table,
    varying,
)
from shared.config import FIELD_NAMES, Config

# The float32 drift, explained once per page: here, beside the figure that shows it; the Agreement
# section points back (Page.explained).
DRIFT = "float32 drift"
DRIFT_TEXT = (
    "**Why the curves part.** With the shared initial weights and the shared batch order the two "
    "curves start on top of each other; the lower panel shows their per-step difference. It is "
    "float32 rounding, amplified: the frameworks' matrix products and sums add in different "
    "orders, so from the first step their results differ in the last bits (about 1e-7 relative), "
    "and training is chaotic: each step starts from the weights the last one left, so a "
    "difference in the last bits grows step after step until it reaches the size of the "
    "batch-to-batch noise of the loss. It does so at any learning rate; it is the same effect as "
    "a change of random seed, not a bug: the curves keep the same statistics, and the parity "
    "tests (tests/test_parity.py) show identical weights give identical outputs, gradients and "
    "Adam steps within float32 tolerance. In float64 (`--set dtype=float64`) the first "
    "differences are about 1e-16 instead of 1e-7, and whole runs stay together."
)
RUNAWAY = 5.0  # a smoothed training loss above this (guessing is ln 10 = 2.3): a symlog y-axis
PANELS = 12  # small multiples at most


def section(page: Page) -> list[str]:
    md = ["## Loss", ""]
    ref = reference(page.pairs)
    if ref:
        name = page.save(fig_loss_reference(ref), "loss_reference.png", dpi=110)
        md += [f"![training loss]({name})", ""]
        if len(ref) > 1:
            md += [DRIFT_TEXT, ""]
            page.explained[DRIFT] = "Loss"
        md += _epoch_table(ref)
    if len(page.pairs) > 1:
        fig, note = fig_loss_grid(page.pairs, ref)
        name = page.save(fig, "loss_grid.png", dpi=100, tight=False)
        md += [f"![loss small multiples]({name})", "", note, ""]
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


def fig_loss_reference(recs: dict[str, dict]):
    """The reference configuration's training loss, every step and a moving mean, torch and JAX
    overlaid; below, their per-step difference."""
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
                ls=STYLES[b],
                label=f"{NAMES[b]} (faint: every step; line: moving mean of {k} steps)",
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
            f"torch − JAX, per step (max |difference| {np.nanmax(np.abs(yt[:n] - yj[:n])):.2e})",
            fontsize=10,
        )
    else:
        ax2.set_title("torch − JAX: needs both backends", fontsize=10)
    ax2.set_xlabel("training step")
    ax2.set_ylabel("loss difference, torch − JAX")
    ax2.grid(alpha=0.3)
    integer_ticks(ax2.xaxis)
    return fig


def panel_configs(
    pairs: dict[str, dict[str, dict]], ref: dict[str, dict] | None
) -> list[dict[str, dict]]:
    """The small multiples: every configuration where there are PANELS or fewer; else a slice
    chosen on purpose around the reference configuration (loss.reference, the tutorial's network):
    its configurations over every learning rate and batch size; where that leaves one panel, over
    the architectures too; where still one, the configurations that differ from it in one field
    (its seeds, its float64 twin). PANELS at most, largest learning rate first."""
    allrecs = list(pairs.values())
    if len(allrecs) <= PANELS or ref is None:
        return sorted(allrecs, key=_panel_order)[:PANELS]
    base = first_cfg(ref)

    def differing(recs: dict[str, dict]) -> set[str]:
        return {n for n in FIELD_NAMES if getattr(first_cfg(recs), n) != getattr(base, n)}

    for free in (_LR_BATCH, _LR_BATCH + ("hidden_size", "hidden_layers")):
        chosen = [recs for recs in allrecs if differing(recs) <= set(free)]
        if len(chosen) > 1:
            return sorted(chosen, key=_panel_order)[:PANELS]
    chosen = [recs for recs in allrecs if len(differing(recs)) <= 1]
    return sorted(chosen, key=_panel_order)[:PANELS]


_LR_BATCH = ("learning_rate", "batch_size")


def _panel_order(recs: dict[str, dict]) -> tuple:
    """Panels by learning rate (largest first, one row each in a grid), then batch size, then the
    rest as --list orders them."""
    c = first_cfg(recs)
    return -c.learning_rate, c.batch_size, c.hidden_layers, c.hidden_size, c.key()


def _plot_panel(ax, recs: dict[str, dict], title: str) -> bool:
    """One small multiple: both backends' smoothed loss over epochs, titled `title`; a symlog
    y-axis where a curve ran away (above RUNAWAY). Returns whether it did."""
    cfg = first_cfg(recs)
    top = 0.0
    for b in BACKENDS:
        r = recs.get(b)
        if r is None or not r["loss_curve"]:
            continue
        x, y = curve(r)
        x = x / cfg.steps_per_epoch  # epochs, so panels with other batch sizes line up
        k = max(1, len(y) // 60)
        ys = smooth(y, k)
        top = max(top, float(np.nanmax(ys, initial=0.0)))
        ax.plot(x[k - 1 :], ys, color=COLORS[b], lw=1.2, ls=STYLES[b])
        if r["status"] != "ok":
            title += f"; {NAMES[b]} {r['status']}"
    runaway = top > RUNAWAY
    if runaway:
        ax.set_yscale("symlog", linthresh=1.0)
        ax.text(0.97, 0.95, "symlog y", transform=ax.transAxes, ha="right", va="top", fontsize=7)
    ax.set_title(title, fontsize=9)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)
    integer_ticks(ax.xaxis)
    return runaway


def fig_loss_grid(pairs: dict[str, dict[str, dict]], ref: dict[str, dict] | None):
    """Small multiples of the training loss over epochs (panel_configs), each titled with the
    fields that vary across the panels, what they share in the title. Returns (the Figure, the
    page's line saying which slice it shows)."""
    panels = panel_configs(pairs, ref)
    cfgs = [first_cfg(recs) for recs in panels]
    vary = varying(cfgs)
    batches = sorted({c.batch_size for c in cfgs})
    lrs = {c.learning_rate for c in cfgs}
    full = set(vary) <= set(_LR_BATCH) and len(cfgs) == len(batches) * len(lrs)
    cols = len(batches) if full and len(batches) > 1 else min(4, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt().subplots(
        rows,
        cols,
        figsize=(3.4 * cols + 0.6, 2.5 * rows + 1.2),
        squeeze=False,
        layout="constrained",
    )
    runaway = [
        _plot_panel(ax, recs, label(c, vary)) for ax, recs, c in zip(axes.flat, panels, cfgs)
    ]
    for ax, recs in zip(axes.flat, panels):
        ax.set_gid(first_cfg(recs).key())  # what the panel shows, for the tests that read titles
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    for ax in axes[-1]:
        ax.set_xlabel("epoch", fontsize=8)
    for ax in axes[:, 0]:
        ax.set_ylabel("training loss", fontsize=8)
    shared = shared_label([first_cfg(recs) for recs in pairs.values()], cfgs)
    title = "Training loss (cross-entropy, moving mean) per epoch" + (
        f": {shared}" if shared else ""
    )
    if any(runaway):
        title += f"\nsymlog y: a loss ran above {RUNAWAY:g} (linear below 1, logarithmic above)"
    fig.suptitle(title, fontsize=11)
    backend_legend(fig)
    note = _slice_note(len(panels), len(pairs), vary, shared)
    return fig, note


def _slice_note(shown: int, total: int, vary: list[str], shared: str) -> str:
    """The page's line under the small multiples: what they show, and where the rest is."""
    what = " and ".join(n.replace("_", " ") for n in vary) or "the configuration"
    if shown == total:
        return f"Training loss of every configuration, one panel each; the panels vary {what}."
    around = (
        f"{shared} (the reference configuration's)" if shared else "the reference configuration"
    )
    return (
        f"Training loss of {shown} of the {total} configurations, a slice chosen on purpose: "
        f"{around} over {what}. Every configuration's final accuracy is under Accuracy."
    )
