"""## Accuracy: test accuracy after k epochs per learning rate, accuracy per epoch, heatmaps over
the architecture grid, the best configurations, and the torch-minus-JAX accuracy distribution."""

from __future__ import annotations

import math
import pathlib
from dataclasses import dataclass
from statistics import median

import numpy as np

from comparison.report.common import (
    BACKENDS,
    Page,
    acc_at,
    accuracy,
    arch,
    final_acc,
    ok,
    pct,
    plt,
    plural,
    points,
    save,
    table,
)
from comparison.results import config_of


def section(page: Page) -> list[str]:
    md = ["## Accuracy", ""]
    if page.oks:
        md += _after_k_epochs(page)
        fig_acc_epochs(page.pairs, page.out / "accuracy_epochs.png")
        md += ["![accuracy per epoch](accuracy_epochs.png)", ""]
    for b in page.backends:
        if fig_acc_heatmaps(page.pairs, page.out / f"accuracy_heatmap_{b}.png", b):
            md += [f"![{b} accuracy heatmaps](accuracy_heatmap_{b}.png)", ""]
    md += _best(page)
    md += _torch_minus_jax(page)
    return md


def _after_k_epochs(page: Page) -> list[str]:
    """Accuracy after k epochs (3..max, or 1..max for short runs), per backend and lr: best / median
    over the runs of each row, or the one value where every row holds a single run."""
    oks = page.oks
    max_ep = max(len(r["epochs"]) for r in oks)
    eps = list(range(3, max_ep + 1)) if max_ep >= 3 else list(range(1, max_ep + 1))
    groups = []
    for b in page.backends:
        for lr in sorted({r["config"]["learning_rate"] for r in oks}, reverse=True):
            rs = [r for r in oks if r["backend"] == b and r["config"]["learning_rate"] == lr]
            if rs:
                groups.append((b, lr, rs))
    single = all(len(rs) == 1 for _, _, rs in groups)
    rows = []
    for b, lr, rs in groups:
        cells = []
        for k in eps:
            vals = [v for v in (acc_at(r, k) for r in rs) if v is not None]
            cells.append(
                "-"
                if not vals
                else pct(vals[0])
                if single
                else f"{pct(max(vals))} / {pct(median(vals))}"
            )
        rows.append([b, f"{lr:g}", len(rs)] + cells)
    if single:
        return [
            "Test accuracy (%) after k epochs.",
            "",
            table(["backend", "lr", "runs"] + [f"epoch {k}" for k in eps], rows),
            "",
        ]
    return [
        "Test accuracy (%) after k epochs, best and median over runs, per learning rate (a "
        "k-epoch run is the first k epochs of the longer one: Adam's state is the same).",
        "",
        table(["backend", "lr", "runs"] + [f"epoch {k} best / median" for k in eps], rows),
        "",
    ]


def _best(page: Page) -> list[str]:
    """The ten best finished runs per backend; nothing to rank with a single configuration."""
    md = []
    if len(page.pairs) < 2:
        return md
    for b in page.backends:
        mine = (r for r in page.oks if r["backend"] == b)
        # ties by config, so that the ranking does not depend on the order of the records
        top = sorted(mine, key=lambda r: (-final_acc(r), config_of(r).key()))[:10]
        if top:
            md += [
                f"Best configurations, {b}:",
                "",
                table(
                    ["rank", "config", "epochs", "test acc %"],
                    [
                        [
                            i + 1,
                            config_of(r).describe(brief=True),
                            len(r["epochs"]),
                            pct(final_acc(r)),
                        ]
                        for i, r in enumerate(top)
                    ],
                ),
                "",
            ]
    return md


def _torch_minus_jax(page: Page) -> list[str]:
    diffs = [
        final_acc(recs["torch"]) - final_acc(recs["jax"])
        for recs in page.pairs.values()
        if ok(recs.get("torch")) and ok(recs.get("jax"))
    ]
    if not diffs:
        return []
    d = np.array(diffs)
    md = [
        f"torch minus JAX final accuracy over {plural(len(d), 'pair')} of finished runs (learned "
        f"or not): mean {points(d.mean(), sign=True)}, median {points(np.median(d), sign=True)}, "
        f"max |d| {points(np.abs(d).max())} percentage points.",
        "",
    ]
    if len(d) >= 5:
        fig_acc_diff(diffs, page.out / "accuracy_diff.png")
        md += ["![accuracy difference](accuracy_diff.png)", ""]
    return md


# ------------------------------------------------------------------ heatmaps


def heatmap_cells(pairs, backend: str) -> tuple[dict[tuple, float], dict[tuple, str]]:
    """The relu + logits runs of `backend` by (lr, batch, layers, hidden): final accuracy (NaN
    where the run did not finish), and "div" / "err" for runs that diverged / failed."""
    cells: dict[tuple, float] = {}
    failed: dict[tuple, str] = {}
    for recs in pairs.values():
        r = recs.get(backend)
        if r is None:
            continue
        c = config_of(r)
        if (c.activation, c.output) != ("relu", "logits"):
            continue
        key = (c.learning_rate, c.batch_size, c.hidden_layers, c.hidden_size)
        cells[key] = final_acc(r) if ok(r) else np.nan
        if not ok(r):
            failed[key] = "div" if r["status"] == "diverged" else "err"
    return cells, failed


def cell_text(key: tuple, cells: dict[tuple, float], failed: dict[tuple, str]) -> str:
    """A heatmap cell's label: the accuracy in %, the status of a run that did not finish, or
    "not run"."""
    if key in failed:
        return failed[key]
    return points(cells[key], 1) if key in cells else "not run"


def _colour_floor(cells: dict[tuple, float]) -> float:
    """The colour scale starts 10 points below the median run, so that 92 % and 97 % look different;
    a run below that takes the darkest colour and still shows its number."""
    finite = [100 * v for v in cells.values() if not np.isnan(v)]
    return max(0.0, 5 * math.floor((median(finite) - 10) / 5)) if finite else 0.0


@dataclass(frozen=True)
class Heatmaps:
    """What every heatmap of one figure shares: the cells, the axes' values, the colour scale."""

    cells: dict[tuple, float]  # (lr, batch, layers, hidden) -> final accuracy, NaN: not finished
    failed: dict[tuple, str]  # the same keys -> "div" / "err"
    layers: list[int]  # rows, bottom up
    sizes: list[int]  # columns
    vmin: float  # the colour scale's floor, in %
    cmap: object  # matplotlib colormap, grey for NaN


def _heatmap(ax, maps: Heatmaps, lr: float, bs: int):
    """One (learning rate, batch size) heatmap: hidden layers x hidden size, each cell labelled."""
    keys = [[(lr, bs, L, H) for H in maps.sizes] for L in maps.layers]
    grid = np.array([[maps.cells.get(k, np.nan) for k in row] for row in keys]) * 100
    im = ax.imshow(grid, vmin=maps.vmin, vmax=100, cmap=maps.cmap, origin="lower", aspect="auto")
    for (yy, xx), v in np.ndenumerate(grid):
        # white on dark cells; NaN (grey cells) compares False: black
        ax.text(
            xx,
            yy,
            cell_text(keys[yy][xx], maps.cells, maps.failed),
            ha="center",
            va="center",
            fontsize=7,
            color="white" if v < (maps.vmin + 100) / 2 else "black",
        )
    ax.set_xticks(range(len(maps.sizes)), maps.sizes, fontsize=7)
    ax.set_yticks(range(len(maps.layers)), maps.layers, fontsize=7)
    ax.set_title(f"lr {lr:g}, batch {bs}", fontsize=9)
    return im


def fig_acc_heatmaps(pairs, path: pathlib.Path, backend: str) -> bool:
    """Final test accuracy over hidden size x layers, one heatmap per (learning rate, batch size).
    Configurations not run are grey cells marked "not run"."""
    cells, failed = heatmap_cells(pairs, backend)
    lrs = sorted({k[0] for k in cells}, reverse=True)
    batches = sorted({k[1] for k in cells})
    layers = sorted({k[2] for k in cells})
    sizes = sorted({k[3] for k in cells})
    if len(layers) * len(sizes) < 2:
        return False
    pyplot = plt()
    fig, axes = pyplot.subplots(
        len(lrs),
        len(batches),
        figsize=(max(7.5, 3.2 * len(batches) + 1), 2.6 * len(lrs)),
        squeeze=False,
        layout="constrained",
    )
    vmin = _colour_floor(cells)
    # NaN cells light grey; runs below the colour floor the darkest colour
    cmap = pyplot.get_cmap("viridis").with_extremes(bad="#e6e6e6", under="#2b0a3d")
    maps = Heatmaps(cells, failed, layers, sizes, vmin, cmap)
    im = None
    for i, lr in enumerate(lrs):
        for j, bs in enumerate(batches):
            im = _heatmap(axes[i, j], maps, lr, bs)
            if i == len(lrs) - 1:
                axes[i, j].set_xlabel("hidden size", fontsize=8)
            if j == 0:
                axes[i, j].set_ylabel("hidden layers", fontsize=8)
    fig.suptitle(
        f"{backend}: final test accuracy (%), relu + logits; 'div' = diverged, 'err' = failed"
    )
    fig.colorbar(
        im, ax=axes, shrink=0.6, label="test accuracy (%)", extend="min" if vmin > 0 else "neither"
    )
    save(fig, path, dpi=100, tight=False)  # constrained layout already placed everything
    return True


# ------------------------------------------------------------------ other figures


def fig_acc_diff(diffs: list[float], path: pathlib.Path) -> None:
    fig, ax = plt().subplots(figsize=(7, 4))
    d = np.array(diffs) * 100
    ax.hist(d, bins=min(40, max(5, len(d) // 3)), color="#555555")
    ax.axvline(0, color="black", lw=0.8)
    ax.set_xlabel("final test accuracy, torch minus JAX (percentage points)")
    ax.set_ylabel("runs")
    ax.set_title(
        f"torch - JAX accuracy over {len(d)} runs (mean {d.mean():+.3f}, max |d| "
        f"{np.abs(d).max():.3f})"
    )
    ax.grid(alpha=0.3)
    save(fig, path, dpi=110)


def _best_per_lr(pairs) -> dict[tuple, dict]:
    """(backend, learning rate) -> the finished run with the highest final accuracy."""
    best: dict[tuple, dict] = {}
    for recs in pairs.values():
        for b, r in recs.items():
            if ok(r):
                key = (b, r["config"]["learning_rate"])
                if key not in best or final_acc(r) > final_acc(best[key]):
                    best[key] = r
    return best


def fig_acc_epochs(pairs, path: pathlib.Path) -> None:
    """Test accuracy after each epoch: the best run per learning rate, torch solid, JAX dashed."""
    pyplot = plt()
    fig, ax = pyplot.subplots(figsize=(8, 4.5))
    best = _best_per_lr(pairs)
    cmap = pyplot.get_cmap("tab10")
    for i, lr in enumerate(sorted({k[1] for k in best}, reverse=True)):
        for b in BACKENDS:
            r = best.get((b, lr))
            if r:
                ep = [e["epoch"] for e in r["epochs"]]
                acc = [100 * accuracy(e) for e in r["epochs"]]
                ax.plot(
                    ep,
                    acc,
                    marker="o",
                    ms=3,
                    color=cmap(i),
                    ls="-" if b == "torch" else "--",
                    label=f"{b} lr {lr:g} ({arch(config_of(r))} b{r['config']['batch_size']})",
                )
    ax.set_xlabel("epoch")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(
        "Test accuracy after each epoch, best run per learning rate (torch solid, JAX dashed)"
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    save(fig, path, dpi=110)
