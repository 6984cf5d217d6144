"""## Accuracy: test accuracy after k epochs per learning rate, accuracy per epoch of the best
configuration per learning rate, heatmaps of every configuration per backend and of torch − JAX,
and the best configurations."""

from __future__ import annotations

from dataclasses import dataclass
from statistics import median

import numpy as np

from comparison.progress import plural
from comparison.report.common import (
    BACKENDS,
    COLORS,
    NAMES,
    STYLES,
    Page,
    acc_at,
    accuracy,
    backend_legend,
    final_acc,
    first_cfg,
    integer_ticks,
    label,
    ok,
    pct,
    plt,
    points,
    shared_label,
    table,
    varying,
)
from shared.config import Config


def section(page: Page) -> list[str]:
    md = ["## Accuracy", ""]
    if page.oks:
        md += _after_k_epochs(page)
    if best_per_lr(page.pairs):
        name = page.save(fig_acc_epochs(page.pairs), "accuracy_epochs.png", dpi=110, tight=False)
        md += [f"![accuracy per epoch]({name})", ""]
    md += _heatmaps(page)
    md += _best(page)
    md += _torch_minus_jax(page)
    return md


def _heatmaps(page: Page) -> list[str]:
    """Every configuration's final accuracy per backend, and torch − JAX, as heatmaps (Facets)."""
    fc = facets(page.pairs)
    if fc is None:
        if len(page.pairs) < 4:
            return []
        vary = ", ".join(varying([first_cfg(recs) for recs in page.pairs.values()]))
        return [
            f"No heatmaps: these {len(page.pairs)} configurations, varying in {vary}, do not form "
            f"a grid of at most {MAX_PANELS} panels; the tables here and under Convergence list "
            "them.",
            "",
        ]
    md = [
        f"Final test accuracy of all {plural(len(fc.pairs), 'configuration')}, one heatmap per "
        "backend and one of torch − JAX; each panel is one "
        + " and ".join(_OUTER_WORDS.get(n, n) for n in fc.outer)
        + (", its cells the architectures and batch sizes." if fc.outer else "."),
        "",
    ]
    for b in page.backends:
        name = page.save(fig_acc_heatmaps(fc, b), f"accuracy_heatmap_{b}.png", 100, tight=False)
        md += [f"![{NAMES[b]} final test accuracy, every configuration]({name})", ""]
    if len(page.backends) == 2:
        name = page.save(fig_acc_heatmaps(fc, "diff"), "accuracy_heatmap_diff.png", 100, False)
        md += [f"![torch − JAX final test accuracy, every configuration]({name})", ""]
    return md


_OUTER_WORDS = {"learning_rate": "learning rate (rows)"}


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
    """The ten configurations with the best final accuracy (the mean over the backends), each
    backend's beside it: a ranking that compares one configuration in both."""
    if len(page.pairs) < 2:
        return []
    done = [recs for recs in page.pairs.values() if all(ok(recs.get(b)) for b in page.backends)]
    # ties by configuration, so that the ranking does not depend on the order of the records
    top = sorted(done, key=lambda recs: (-_mean_final(recs, page.backends), _key(recs)))[:10]
    if not top:
        return []
    both = len(page.backends) == 2
    rows = []
    for i, recs in enumerate(top):
        row = [i + 1, first_cfg(recs).describe(brief=True), len(recs[page.backends[0]]["epochs"])]
        row += [pct(final_acc(recs[b])) for b in page.backends]
        if both:
            row.append(points(final_acc(recs["torch"]) - final_acc(recs["jax"]), sign=True))
        rows.append(row)
    header = ["rank", "configuration", "epochs"]
    header += [f"{NAMES[b]} final test acc %" for b in page.backends]
    header += ["torch − JAX (points)"] if both else []
    by = "the mean of torch's and JAX's final test accuracy" if both else "final test accuracy"
    return [f"Best configurations, by {by}:", "", table(header, rows), ""]


def _mean_final(recs: dict[str, dict], backends) -> float:
    return float(np.mean([final_acc(recs[b]) for b in backends if b in recs]))


def _key(recs: dict[str, dict]) -> str:
    return first_cfg(recs).key()


def _rank(recs: dict[str, dict]) -> tuple:
    """Best first: the highest mean final accuracy over the backends, ties by configuration."""
    return -_mean_final(recs, BACKENDS), _key(recs)


def _torch_minus_jax(page: Page) -> list[str]:
    diffs = [
        final_acc(recs["torch"]) - final_acc(recs["jax"])
        for recs in page.pairs.values()
        if ok(recs.get("torch")) and ok(recs.get("jax"))
    ]
    if not diffs:
        return []
    d = np.array(diffs)
    within = int(np.sum(np.abs(d) <= 0.001 + 1e-9))
    return [
        f"torch − JAX final test accuracy over the {plural(len(d), 'configuration')} both "
        f"finished (learned or not): mean {points(d.mean(), sign=True)}, median "
        f"{points(np.median(d), sign=True)}, largest |gap| {points(np.abs(d).max())} points; "
        f"{within} of {len(d)} within ±0.1 points (ten test images).",
        "",
    ]


# ------------------------------------------------------------------ heatmaps

INNER = ("hidden_layers", "hidden_size", "batch_size")  # a panel: architectures x batch sizes
MAX_PANELS = 24  # more panels than this are no longer a grid one reads at a glance


@dataclass(frozen=True)
class Facets:
    """Every configuration as one cell. Panels: a row per learning rate, a column per combination of
    the other fields that vary (activation, output, ...); in a panel, a row per architecture
    (layers x hidden) and a column per batch size."""

    outer: list[str]  # the fields that name a panel, learning_rate first
    rows: list[tuple]  # panel rows: (learning rate,) or () where it does not vary
    cols: list[tuple]  # panel columns: values of the other outer fields
    archs: list[tuple[int, int]]  # cell rows: (layers, hidden), top down
    batches: list[int]  # cell columns
    pairs: dict[tuple, dict[str, dict]]  # (row, col, arch, batch) -> {backend: record}

    def panel_cfg(self, row: tuple, col: tuple) -> Config | None:
        """A configuration of the panel (row, col), or None where none ran there."""
        for (r, c, _, _), recs in self.pairs.items():
            if (r, c) == (row, col):
                return first_cfg(recs)
        return None


def facets(pairs) -> Facets | None:
    """The configurations of `pairs` laid out as Facets; None for fewer than 4 configurations (the
    tables say it all) or more than MAX_PANELS panels (not a grid: say a list of seeds)."""
    cfgs = [first_cfg(recs) for recs in pairs.values()]
    vary = varying(cfgs)
    outer = [n for n in vary if n not in INNER]
    outer = sorted(outer, key=lambda n: n != "learning_rate")  # learning rate first: panel rows
    lr = outer[:1] if outer[:1] == ["learning_rate"] else []
    rest = [n for n in outer if n not in lr]
    cells = {}
    for recs in pairs.values():
        c = first_cfg(recs)
        key = (
            tuple(getattr(c, n) for n in lr),
            tuple(getattr(c, n) for n in rest),
            (c.hidden_layers, c.hidden_size),
            c.batch_size,
        )
        cells[key] = recs
    rows = sorted({k[0] for k in cells}, key=lambda r: [-v for v in r])
    cols = sorted({k[1] for k in cells}, key=_col_order(rest))
    if len(cfgs) < 4 or len(rows) * len(cols) > MAX_PANELS:
        return None
    archs = sorted({k[2] for k in cells})
    batches = sorted({k[3] for k in cells})
    return Facets(lr + rest, rows, cols, archs, batches, cells)


def _col_order(names: list[str]):
    """Panel columns with Config's defaults first (relu before leaky_relu, logits before softmax),
    numbers up."""
    default = Config()

    def key(col: tuple) -> tuple:
        return tuple((v != getattr(default, n), str(v)) for n, v in zip(names, col))

    return key


def cell(recs: dict[str, dict] | None, backend: str) -> tuple[float, str]:
    """(value, label) of a heatmap cell: the final test accuracy in % and its text; for backend
    "diff" torch − JAX in points. A run that did not finish: NaN and "div" (diverged) / "err"
    (failed); a configuration not run: NaN and "not run"."""
    if recs is None:
        return np.nan, "not run"
    runs = [recs.get(b) for b in (("torch", "jax") if backend == "diff" else (backend,))]
    for r in runs:
        if r is None:
            return np.nan, "not run"
        if not ok(r):
            return np.nan, "div" if r["status"] == "diverged" else "err"
    if backend == "diff":
        d = final_acc(runs[0]) - final_acc(runs[1])
        text = points(d, sign=True)
        return 100 * d, "0" if float(text) == 0 else text
    return 100 * final_acc(runs[0]), points(final_acc(runs[0]), 1)


def _panel(ax, fc: Facets, row: tuple, col: tuple, backend: str, *, norm, cmap) -> None:
    """One panel: architectures x batch sizes, each cell coloured and labelled (cell()). An
    accuracy is coloured by its error, 100 − accuracy (_accuracy_norm)."""
    grid = np.full((len(fc.archs), len(fc.batches)), np.nan)
    for i, a in enumerate(fc.archs):
        for j, bs in enumerate(fc.batches):
            recs = fc.pairs.get((row, col, a, bs))
            value, text = cell(recs, backend)
            grid[i, j] = value if backend == "diff" else 100 - value
            finite = np.isfinite(grid[i, j])
            colour = cmap(norm(grid[i, j])) if finite else (0.9, 0.9, 0.9, 1)
            dark = np.dot(colour[:3], (0.299, 0.587, 0.114)) < 0.5
            gid = first_cfg(recs).key() if recs else None  # which configuration, for the tests
            ink = "white" if dark else "black"
            ax.text(j, i, text, ha="center", va="center", fontsize=6.5, gid=gid, color=ink)
    cmap = cmap.with_extremes(bad="#e6e6e6")  # NaN cells light grey
    ax.imshow(np.ma.masked_invalid(grid), norm=norm, cmap=cmap, aspect="auto", interpolation="none")
    ax.set_xticks(range(len(fc.batches)), fc.batches, fontsize=7)
    ax.set_yticks(range(len(fc.archs)), [f"{layers}x{h}" for layers, h in fc.archs], fontsize=7)
    cfg = fc.panel_cfg(row, col)
    ax.set_title(label(cfg, fc.outer) if fc.outer else f"all {len(fc.pairs)}", fontsize=8.5)
    ax.set_gid(repr(row + col))  # the panel's values of the outer fields, for the tests


def _accuracy_norm(fc: Facets):
    """Colour by the test error (100 − accuracy) on a log scale, from the data's best to its worst:
    92 % and 97 % differ as clearly as 34 % and 80 %."""
    from matplotlib.colors import LogNorm

    errors = [100 - cell(recs, b)[0] for recs in fc.pairs.values() for b in BACKENDS]
    errors = [e for e in errors if np.isfinite(e)]
    lo = max(min(errors, default=1.0), 0.1)
    hi = max(max(errors, default=100.0), lo * 1.5)
    return LogNorm(lo, hi)


def _diff_norm(fc: Facets):
    """torch − JAX in points, symmetric about 0 and linear within ±0.1 (ten test images), on a log
    scale beyond: gaps of 0.05 and of 40 points show side by side."""
    from matplotlib.colors import SymLogNorm

    gaps = [abs(cell(recs, "diff")[0]) for recs in fc.pairs.values()]
    top = max([g for g in gaps if np.isfinite(g)] + [0.2])
    return SymLogNorm(linthresh=0.1, linscale=0.5, vmin=-top, vmax=top, base=10)


def fig_acc_heatmaps(fc: Facets, backend: str):
    """Final test accuracy of every configuration (backend "torch" or "jax"), or torch − JAX
    (backend "diff"), as Facets' panels; one colour scale for the figure, set by the data."""
    from matplotlib.cm import ScalarMappable

    pyplot = plt()
    nr, nc = len(fc.rows), len(fc.cols)
    fig, axes = pyplot.subplots(
        nr,
        nc,
        figsize=(
            max(8.5, 1.0 + nc * (0.75 * len(fc.batches) + 0.9)),
            1.2 + nr * (0.3 * len(fc.archs) + 0.8),
        ),
        squeeze=False,
        layout="constrained",
    )
    if backend == "diff":
        norm, cmap = _diff_norm(fc), pyplot.get_cmap("RdBu_r")  # red: torch higher; blue: JAX
    else:
        norm, cmap = _accuracy_norm(fc), pyplot.get_cmap("viridis_r")  # bright: low error
    for i, row in enumerate(fc.rows):
        for j, col in enumerate(fc.cols):
            ax = axes[i, j]
            if fc.panel_cfg(row, col) is None:
                ax.axis("off")
                continue
            _panel(ax, fc, row, col, backend, norm=norm, cmap=cmap)
            if i == nr - 1:
                ax.set_xlabel("batch size", fontsize=7.5)
            if j == 0:
                ax.set_ylabel("layers x hidden", fontsize=7.5)
    fig.suptitle(_heatmap_title(fc, backend), fontsize=11)
    shrink = 0.6 if nr > 2 else 0.95
    bar = fig.colorbar(ScalarMappable(norm, cmap), ax=axes, shrink=shrink, aspect=30)
    if backend == "diff":
        ticks = [t for t in (0.1, 1, 10, 50) if t <= norm.vmax]
        values = [-t for t in ticks[::-1]] + [0] + ticks
        bar.set_ticks(values, labels=[f"{v:+g}" if v else "0" for v in values])
        bar.minorticks_off()
        bar.set_label("torch − JAX final test accuracy (points)\nsymlog: linear within ±0.1")
    else:
        steps = (1, 2, 3, 5, 10, 20, 50, 90)
        if sum(norm.vmin <= t <= norm.vmax for t in steps) < 3:  # a narrow range: finer ticks
            steps = (1, 1.5, 2, 2.5, 3, 4, 5, 6, 7, 8, 10, 12, 15, 20, 30, 50, 70, 90)
        ticks = [t for t in steps if norm.vmin <= t <= norm.vmax]
        bar.set_ticks(ticks, labels=[f"{100 - t:g}" for t in ticks])
        bar.minorticks_off()
        bar.ax.invert_yaxis()  # the best accuracy on top
        bar.set_label("final test accuracy (%)\ncolour: log scale of the error, 100 − accuracy")
    return fig


def _heatmap_title(fc: Facets, backend: str) -> str:
    n = len(fc.pairs)
    if backend == "diff":
        head = (
            f"torch − JAX final test accuracy (points), all {n} configurations: red where torch "
            "is higher, blue where JAX is"
        )
    else:
        head = f"{NAMES[backend]}: final test accuracy (%), all {n} configurations"
    return head + "\n'div': diverged, 'err': failed, 'not run': not in the results"


# ------------------------------------------------------------------ accuracy per epoch


def best_per_lr(pairs) -> list[dict[str, dict]]:
    """Per learning rate, the configuration with the best final accuracy (the mean over its
    backends, every one of which finished it), largest learning rate first."""
    best: dict[float, dict] = {}
    for recs in pairs.values():
        if not all(ok(r) for r in recs.values()):
            continue
        lr = first_cfg(recs).learning_rate
        # ties by configuration, whatever the order of the records
        if lr not in best or _rank(recs) < _rank(best[lr]):
            best[lr] = recs
    return [best[lr] for lr in sorted(best, reverse=True)]


def fig_acc_epochs(pairs):
    """Test accuracy after each epoch, one panel per learning rate: the configuration with the
    best final accuracy at that rate, torch and JAX on the same configuration."""
    chosen = best_per_lr(pairs)
    cfgs = [first_cfg(recs) for recs in chosen]
    vary = varying(cfgs)
    cols = max(1, min(4, len(chosen)))
    rows = -(-len(chosen) // cols) or 1
    size = (3.6 * cols + 0.6, 2.8 * rows + 1.0)
    fig, axes = plt().subplots(rows, cols, figsize=size, squeeze=False, layout="constrained")
    for ax, recs, cfg in zip(axes.flat, chosen, cfgs):
        for b in BACKENDS:
            r = recs.get(b)
            if r:
                ep = [e["epoch"] for e in r["epochs"]]
                acc = [100 * accuracy(e) for e in r["epochs"]]
                ax.plot(ep, acc, marker="o", ms=3, color=COLORS[b], ls=STYLES[b])
        ax.set_title(label(cfg, vary) if vary else cfg.describe(brief=True), fontsize=9)
        ax.set_gid(cfg.key())  # what the panel shows, for the tests that read titles
        ax.set_xlabel("epoch", fontsize=8)
        ax.set_ylabel("test accuracy (%)", fontsize=8)
        ax.tick_params(labelsize=7)
        integer_ticks(ax.xaxis)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(chosen) :]:
        ax.axis("off")
    title = "Test accuracy after each epoch"
    if len(chosen) > 1:
        title += ": per learning rate, the configuration with the best final accuracy (mean of\n"
        title += "torch and JAX), both backends on that same configuration"
        common = shared_label([first_cfg(recs) for recs in pairs.values()], cfgs)
        title += f"; every panel: {common}" if common else ""
    fig.suptitle(title, fontsize=10.5)
    present = [b for b in BACKENDS if any(b in recs for recs in chosen)]
    backend_legend(fig, present)
    return fig
