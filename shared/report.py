"""Build OUT/report.md and its PNG figures from results records alone (numpy + matplotlib).

The seed lab report had three sections (loss, accuracy, convergence); each is shown here for both
backends side by side, plus step speed. Every figure is a plain PNG with a title, axis labels and
a legend, written next to report.md and linked from it.
"""

from __future__ import annotations

import math
import pathlib
from collections import defaultdict
from statistics import median

import numpy as np

from shared.config import Config

BACKENDS = ("torch", "jax")
COLORS = {"torch": "#ee4c2c", "jax": "#1a73e8"}  # PyTorch orange-red, JAX blue
THRESHOLDS = (0.90, 0.95, 0.97, 0.98)
CHANCE = 0.20  # a final accuracy below this is "did not learn": ten classes give 10% by guessing


# ------------------------------------------------------------------ helpers


def _pairs(records: list[dict]) -> dict[str, dict[str, dict]]:
    """config key -> {backend: record}; the last record of a (config, backend) wins."""
    out: dict[str, dict[str, dict]] = defaultdict(dict)
    for r in records:
        out[Config(**r["config"]).key()][r["backend"]] = r
    return out


def _cfg(rec: dict) -> Config:
    return Config(**rec["config"])


def _ok(rec: dict | None) -> bool:
    return rec is not None and rec["status"] == "ok" and bool(rec["epochs"])


def _final_acc(rec: dict) -> float:
    return rec["epochs"][-1]["test_accuracy"]


def _acc_at(rec: dict, epoch: int) -> float | None:
    for e in rec["epochs"]:
        if e["epoch"] == epoch:
            return e["test_accuracy"]
    return None


def _curve(rec: dict) -> tuple[np.ndarray, np.ndarray]:
    every = rec.get("loss_curve_every", 1) or 1
    y = np.array([np.nan if v is None else v for v in rec["loss_curve"]], dtype=float)
    return np.arange(1, len(y) + 1) * every, y


def _smooth(y: np.ndarray, k: int) -> np.ndarray:
    if k <= 1 or len(y) < k:
        return y
    return np.convolve(y, np.ones(k) / k, mode="valid")


def _arch(cfg: Config) -> str:
    return f"{cfg.hidden_layers}x{cfg.hidden_size}"


def _short(cfg: Config) -> str:
    return f"{_arch(cfg)} {cfg.activation} {cfg.output} b{cfg.batch_size} lr{cfg.learning_rate:g}"


def _table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _pct(x: float | None) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.2f}"


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _reference(pairs: dict[str, dict[str, dict]]) -> dict[str, dict] | None:
    """The run to show in detail: the one closest to the seed's baseline (fewest differing fields,
    then the nearest learning rate), among runs where every backend finished normally."""
    base = Config().to_dict()

    def distance(recs: dict[str, dict]) -> tuple:
        c = next(iter(recs.values()))["config"]
        differing = sum(c[k] != base[k] for k in ("hidden_size", "hidden_layers", "activation", "output", "batch_size"))
        return (not all(_ok(r) for r in recs.values()), differing,
                abs(math.log10(c["learning_rate"] / base["learning_rate"])))

    candidates = [recs for recs in pairs.values() if any(_ok(r) for r in recs.values())]
    return min(candidates, key=distance) if candidates else None


# ------------------------------------------------------------------ figures


def fig_loss_reference(recs: dict[str, dict], path: pathlib.Path) -> None:
    plt = _plt()
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(9, 6.5), sharex=True, gridspec_kw={"height_ratios": [2, 1]})
    curves = {}
    for b in BACKENDS:
        if _ok(recs.get(b)):
            x, y = _curve(recs[b])
            curves[b] = (x, y)
            ax.plot(x, y, color=COLORS[b], alpha=0.25, lw=0.6)
            k = max(1, len(y) // 100)
            ax.plot(x[k - 1:], _smooth(y, k), color=COLORS[b], lw=1.6, ls="-" if b == "torch" else "--",
                    label=f"{b} (moving mean of {k})")
    ax.set_ylabel("training loss (cross-entropy)")
    ax.set_title(f"Training loss, {_short(_cfg(next(iter(recs.values()))))}: torch and JAX overlaid")
    ax.legend()
    ax.grid(alpha=0.3)
    if len(curves) == 2:
        (x, yt), (_, yj) = curves["torch"], curves["jax"]
        n = min(len(yt), len(yj))
        ax2.plot(x[:n], yt[:n] - yj[:n], color="black", lw=0.7)
        ax2.set_title(f"torch - JAX, per step (max |diff| {np.nanmax(np.abs(yt[:n] - yj[:n])):.2e})", fontsize=10)
    else:
        ax2.set_title("difference: needs both backends", fontsize=10)
    ax2.set_xlabel("training step")
    ax2.set_ylabel("loss difference")
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _panel_configs(pairs: dict[str, dict[str, dict]], limit: int = 12) -> list[dict[str, dict]]:
    """Up to `limit` runs for small multiples: the lr x batch panels of the first architecture."""
    allrecs = list(pairs.values())
    if len(allrecs) <= limit:
        return sorted(allrecs, key=_panel_order)

    def family(recs: dict[str, dict]) -> tuple:  # everything but learning rate, batch size and epochs
        c = _cfg(next(iter(recs.values())))
        return c.hidden_size, c.hidden_layers, c.activation, c.output, c.dataset

    chosen = [recs for recs in allrecs if family(recs) == family(allrecs[0])]
    return sorted(chosen, key=_panel_order)[:limit]


def _panel_order(recs: dict[str, dict]) -> tuple:
    """Panels by batch size, then from the largest learning rate down."""
    c = _cfg(next(iter(recs.values())))
    return c.batch_size, -c.learning_rate


def fig_loss_grid(pairs: dict[str, dict[str, dict]], path: pathlib.Path) -> list[str]:
    plt = _plt()
    panels = _panel_configs(pairs)
    cols = min(4, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.8 * rows), squeeze=False)
    titles = []
    for ax, recs in zip(axes.flat, panels):
        cfg = _cfg(next(iter(recs.values())))
        for b in BACKENDS:
            r = recs.get(b)
            if r is None or not r["loss_curve"]:
                continue
            x, y = _curve(r)
            x = x / cfg.steps_per_epoch  # epochs, so panels with other batch sizes line up
            k = max(1, len(y) // 60)
            ax.plot(x[k - 1:], _smooth(y, k), color=COLORS[b], lw=1.2, ls="-" if b == "torch" else "--",
                    label=b + ("" if r["status"] == "ok" else f" ({r['status']})"))
        ax.set_title(f"b{cfg.batch_size} lr{cfg.learning_rate:g}", fontsize=9)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        titles.append(_short(cfg))
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    for ax in axes[-1]:
        ax.set_xlabel("epoch", fontsize=8)
    for ax in axes[:, 0]:
        ax.set_ylabel("train loss", fontsize=8)
    c0 = _cfg(next(iter(panels[0].values())))
    fig.suptitle(f"Training loss, torch (solid) vs JAX (dashed): {_arch(c0)} {c0.activation} {c0.output}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return titles


def _heatmap_cells(pairs, backend: str) -> tuple[dict[tuple, float], dict[tuple, str]]:
    """The relu + logits runs of `backend` by (lr, batch, layers, hidden): final accuracy (NaN where the
    run did not finish), and "div" / "err" for runs that diverged / failed."""
    cells: dict[tuple, float] = {}
    failed: dict[tuple, str] = {}
    for recs in pairs.values():
        r = recs.get(backend)
        if r is None:
            continue
        c = _cfg(r)
        if (c.activation, c.output) != ("relu", "logits"):
            continue
        key = (c.learning_rate, c.batch_size, c.hidden_layers, c.hidden_size)
        cells[key] = _final_acc(r) if _ok(r) else np.nan
        if not _ok(r):
            failed[key] = "div" if r["status"] == "diverged" else "err"
    return cells, failed


def _cell_text(key: tuple, cells: dict[tuple, float], failed: dict[tuple, str]) -> str:
    """A heatmap cell's label: the accuracy in %, the status of a run that did not finish, or "not run"."""
    if key in failed:
        return failed[key]
    return f"{100 * cells[key]:.1f}" if key in cells else "not run"


def fig_acc_heatmaps(pairs, path: pathlib.Path, backend: str) -> bool:
    """Final test accuracy over hidden size x layers, one heatmap per (learning rate, batch size).
    Configurations not run are grey cells marked "not run"."""
    cells, failed = _heatmap_cells(pairs, backend)
    lrs = sorted({k[0] for k in cells}, reverse=True)
    batches = sorted({k[1] for k in cells})
    layers = sorted({k[2] for k in cells})
    sizes = sorted({k[3] for k in cells})
    if len(layers) * len(sizes) < 2:
        return False
    plt = _plt()
    fig, axes = plt.subplots(len(lrs), len(batches), figsize=(max(7.5, 3.2 * len(batches) + 1), 2.6 * len(lrs)), squeeze=False,
                             layout="constrained")
    # The colour scale starts 10 points below the median run, so that 92 % and 97 % look different;
    # a run below that takes the darkest colour and still shows its number.
    finite = [100 * v for v in cells.values() if not np.isnan(v)]
    vmin = max(0.0, 5 * math.floor((median(finite) - 10) / 5)) if finite else 0.0
    cmap = plt.get_cmap("viridis").with_extremes(bad="#e6e6e6", under="#2b0a3d")  # NaN cells: light grey
    im = None
    for i, lr in enumerate(lrs):
        for j, bs in enumerate(batches):
            ax = axes[i, j]
            keys = [[(lr, bs, L, H) for H in sizes] for L in layers]
            grid = np.array([[cells.get(k, np.nan) for k in row] for row in keys]) * 100
            im = ax.imshow(grid, vmin=vmin, vmax=100, cmap=cmap, origin="lower", aspect="auto")
            for (yy, xx), v in np.ndenumerate(grid):
                k = keys[yy][xx]
                ax.text(xx, yy, _cell_text(k, cells, failed), ha="center", va="center", fontsize=7,
                        color="white" if v < (vmin + 100) / 2 else "black")  # NaN (grey cells): black
            ax.set_xticks(range(len(sizes)), sizes, fontsize=7)
            ax.set_yticks(range(len(layers)), layers, fontsize=7)
            ax.set_title(f"lr {lr:g}, batch {bs}", fontsize=9)
            if i == len(lrs) - 1:
                ax.set_xlabel("hidden size", fontsize=8)
            if j == 0:
                ax.set_ylabel("hidden layers", fontsize=8)
    fig.suptitle(f"{backend}: final test accuracy (%), relu + logits; 'div' = diverged, 'err' = failed")
    fig.colorbar(im, ax=axes, shrink=0.6, label="test accuracy (%)", extend="min" if vmin > 0 else "neither")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def fig_acc_diff(diffs: list[float], path: pathlib.Path) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4))
    d = np.array(diffs) * 100
    ax.hist(d, bins=min(40, max(5, len(d) // 3)), color="#555555")
    ax.axvline(0, color="black", lw=0.8)
    ax.set_xlabel("final test accuracy, torch minus JAX (percentage points)")
    ax.set_ylabel("runs")
    ax.set_title(f"torch - JAX accuracy over {len(d)} runs (mean {d.mean():+.3f}, max |d| {np.abs(d).max():.3f})")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def fig_acc_epochs(pairs, path: pathlib.Path) -> None:
    """Test accuracy after each epoch: the best run per learning rate, torch solid, JAX dashed."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    best: dict[tuple, dict] = {}
    for recs in pairs.values():
        for b, r in recs.items():
            if _ok(r):
                key = (b, r["config"]["learning_rate"])
                if key not in best or _final_acc(r) > _final_acc(best[key]):
                    best[key] = r
    lrs = sorted({k[1] for k in best}, reverse=True)
    cmap = _plt().get_cmap("tab10")
    for i, lr in enumerate(lrs):
        for b in BACKENDS:
            r = best.get((b, lr))
            if r:
                ep = [e["epoch"] for e in r["epochs"]]
                acc = [100 * e["test_accuracy"] for e in r["epochs"]]
                ax.plot(ep, acc, marker="o", ms=3, color=cmap(i), ls="-" if b == "torch" else "--",
                        label=f"{b} lr {lr:g} ({_arch(_cfg(r))} b{r['config']['batch_size']})")
    ax.set_xlabel("epoch")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Test accuracy after each epoch, best run per learning rate (torch solid, JAX dashed)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def fig_step_time(pairs, path: pathlib.Path) -> None:
    """µs/step by batch size, one line per architecture, per backend; and the torch/JAX ratio."""
    times: dict[tuple, list[float]] = defaultdict(list)
    for recs in pairs.values():
        for b, r in recs.items():
            if r.get("step_time_us"):
                c = _cfg(r)
                times[(b, _arch(c), c.batch_size)].append(r["step_time_us"])
    archs = sorted({k[1] for k in times}, key=lambda a: tuple(map(int, a.split("x"))))
    batches = sorted({k[2] for k in times})
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    cmap = plt.get_cmap("viridis", max(2, len(archs)))
    for ax, b in zip(axes[:2], BACKENDS):
        for i, a in enumerate(archs):
            ys = [median(times[(b, a, bs)]) if times.get((b, a, bs)) else np.nan for bs in batches]
            ax.plot(batches, ys, marker="o", color=cmap(i), label=a)
        ax.set_title(f"{b}: median µs per training step")
        ax.set_xlabel("batch size")
        ax.set_ylabel("µs / step")
        ax.grid(alpha=0.3)
        ax.legend(title="layers x hidden", fontsize=7)
    ax = axes[2]
    for i, a in enumerate(archs):
        ys = [median(times[("torch", a, bs)]) / median(times[("jax", a, bs)])
              if times.get(("torch", a, bs)) and times.get(("jax", a, bs)) else np.nan for bs in batches]
        ax.plot(batches, ys, marker="o", color=cmap(i), label=a)
    ax.axhline(1, color="black", lw=0.8)
    ax.set_title("torch / JAX step time (>1: JAX faster)")
    ax.set_xlabel("batch size")
    ax.set_ylabel("ratio")
    ax.grid(alpha=0.3)
    ax.legend(title="layers x hidden", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# ------------------------------------------------------------------ report


def write_report(records: list[dict], out: pathlib.Path) -> pathlib.Path:
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    pairs = _pairs(records)
    md: list[str] = []
    first = records[0]
    backends = [b for b in BACKENDS if any(r["backend"] == b for r in records)]
    devices = sorted({f"{r['backend']}: {r['device']}" for r in records})
    versions = {}
    for r in records:
        versions.update({k: v for k, v in r.get("versions", {}).items()})
    md += ["# mlp-twins: PyTorch vs JAX report", "",
           f"{len(pairs)} configurations, {len(records)} results ({', '.join(backends)}). "
           f"Dataset: {first['dataset'].get('name')}.", "",
           "Devices: " + "; ".join(devices) + ".", "",
           "Versions: " + ", ".join(f"{k} {v}" for k, v in sorted(versions.items())) + ".", ""]
    counts = [[b] + [sum(1 for r in records if r["backend"] == b and r["status"] == s) for s in ("ok", "diverged", "error")]
              for b in backends]
    md += [_table(["backend", "ok", "diverged", "error"], counts), ""]

    # ---- loss
    md += ["## Loss", ""]
    ref = _reference(pairs)
    if ref:
        fig_loss_reference(ref, out / "loss_reference.png")
        md += ["![training loss](loss_reference.png)", "",
               "With the shared initial weights and the shared batch order the two curves start on top of each "
               "other; the lower panel shows their per-step difference. The frameworks sum in different orders, "
               "so their float32 results differ in the last bits; at small learning rates the curves stay together "
               "for the whole run, while at large ones training amplifies those bits (the same effect as changing "
               "the seed) and the curves separate after a few hundred steps while keeping the same statistics.", ""]
        rows = []
        for b in BACKENDS:
            r = ref.get(b)
            if r:
                for e in r["epochs"]:
                    rows.append([b, e["epoch"], f"{e['train_loss']:.4f}", f"{e['test_loss']:.4f}", _pct(e["test_accuracy"])])
        md += [f"Per epoch, {_short(_cfg(next(iter(ref.values()))))}:", "",
               _table(["backend", "epoch", "train loss", "test loss", "test acc %"], rows), ""]
    if len(pairs) > 1:
        fig_loss_grid(pairs, out / "loss_grid.png")
        md += ["![loss small multiples](loss_grid.png)", ""]

    # ---- accuracy
    md += ["## Accuracy", ""]
    oks = [r for r in records if _ok(r)]
    max_ep = max((len(r["epochs"]) for r in oks), default=0)
    eps = list(range(3, max_ep + 1)) if max_ep >= 3 else list(range(1, max_ep + 1))
    if oks:
        md += ["Test accuracy (%) after k epochs, best and median over runs, per learning rate "
               "(a k-epoch run is the first k epochs of the longer one: Adam's state is the same).", ""]
        rows = []
        for b in backends:
            for lr in sorted({r["config"]["learning_rate"] for r in oks}, reverse=True):
                rs = [r for r in oks if r["backend"] == b and r["config"]["learning_rate"] == lr]
                if not rs:
                    continue
                cells = []
                for k in eps:
                    vals = [v for v in (_acc_at(r, k) for r in rs) if v is not None]
                    cells.append(f"{_pct(max(vals))} / {_pct(median(vals))}" if vals else "-")
                rows.append([b, f"{lr:g}", len(rs)] + cells)
        md += [_table(["backend", "lr", "runs"] + [f"epoch {k} best / median" for k in eps], rows), ""]
        fig_acc_epochs(pairs, out / "accuracy_epochs.png")
        md += ["![accuracy per epoch](accuracy_epochs.png)", ""]
    for b in backends:
        if fig_acc_heatmaps(pairs, out / f"accuracy_heatmap_{b}.png", b):
            md += [f"![{b} accuracy heatmaps](accuracy_heatmap_{b}.png)", ""]
    for b in backends:
        top = sorted((r for r in oks if r["backend"] == b), key=_final_acc, reverse=True)[:10]
        if top:
            md += [f"Best configurations, {b}:", "",
                   _table(["rank", "config", "epochs", "test acc %"],
                          [[i + 1, _short(_cfg(r)), len(r["epochs"]), _pct(_final_acc(r))] for i, r in enumerate(top)]), ""]
    diffs = [_final_acc(recs["torch"]) - _final_acc(recs["jax"]) for recs in pairs.values()
             if _ok(recs.get("torch")) and _ok(recs.get("jax"))]
    if diffs:
        d = np.array(diffs) * 100
        md += [f"torch minus JAX final accuracy over {len(d)} paired runs: mean {d.mean():+.3f}, "
               f"median {np.median(d):+.3f}, max |d| {np.abs(d).max():.3f} percentage points.", ""]
        if len(d) >= 5:
            fig_acc_diff(diffs, out / "accuracy_diff.png")
            md += ["![accuracy difference](accuracy_diff.png)", ""]

    # ---- convergence
    md += ["## Convergence", ""]
    rows = []
    for b in backends:
        rs = [r for r in records if r["backend"] == b]
        for t in THRESHOLDS:
            reached = []
            for r in rs:
                for e in r["epochs"]:
                    if e["test_accuracy"] >= t:
                        reached.append((e["epoch"], e["epoch"] * Config(**r["config"]).steps_per_epoch))
                        break
            rows.append([b, f"{100 * t:g}%", f"{len(reached)}/{len(rs)}",
                         f"{median(x[0] for x in reached):g}" if reached else "-",
                         f"{median(x[1] for x in reached):g}" if reached else "-"])
    md += ["Epochs (and steps) until the test accuracy first reaches a threshold (evaluated after each epoch):", "",
           _table(["backend", "threshold", "runs reaching it", "median epochs", "median steps"], rows), ""]
    bad = [r for r in records if r["status"] != "ok"]
    if bad:
        md += [f"{len(bad)} runs did not finish normally:", "",
               _table(["backend", "status", "config", "epochs done", "error"],
                      [[r["backend"], r["status"], _short(_cfg(r)), len(r["epochs"]), (r.get("error") or "")[:80]]
                       for r in bad[:40]]), ""]
        if len(bad) > 40:
            md += [f"... and {len(bad) - 40} more (see results.jsonl).", ""]
    else:
        md += ["No run diverged (loss NaN/inf) or failed.", ""]
    stuck = [r for r in records if _ok(r) and _final_acc(r) < CHANCE]
    if stuck:
        md += [f"{len(stuck)} runs finished with finite losses but did not learn (final test accuracy below "
               f"{100 * CHANCE:g}%, about chance for ten classes). Adam moves each weight by about lr per step "
               f"whatever the gradient, so lr 1.0 throws the weights far out, the ReLU units die and the net "
               f"predicts one class; the loss stays finite, so these are not 'diverged':", "",
               _table(["backend", "config", "final test acc %", "final train loss"],
                      [[r["backend"], _short(_cfg(r)), _pct(_final_acc(r)), f"{r['epochs'][-1]['train_loss']:.3f}"]
                       for r in stuck[:40]]), ""]
        if len(stuck) > 40:
            md += [f"... and {len(stuck) - 40} more.", ""]
    md += _variant_effects(pairs, backends)

    # ---- step speed
    md += ["## Step speed", "",
           "Steady-state µs per training step (synchronised at epoch ends only, first step excluded and "
           "reported as compile/warm-up; evaluation excluded).", ""]
    engines = {r.get("engine", "loop") for r in records}
    if "sweep" in engines:
        md += [("Runs of the sweep engine trained a group of M members at once: their µs/step is the group's step "
                "time / M, each member's share, and their first-step time the group's compile. ")
               + ("Loop runs (one at a time) are mixed in: their times are per step of one run." if "loop" in engines
                  else "Every run here is a sweep run."), ""]
    speed: dict[tuple, list[float]] = defaultdict(list)
    comp: dict[str, list[float]] = defaultdict(list)
    for r in records:
        if r.get("step_time_us"):
            c = _cfg(r)
            speed[(_arch(c), c.batch_size, r["backend"])].append(r["step_time_us"])
        if r.get("compile_s") is not None:
            comp[r["backend"]].append(r["compile_s"])
    rows = []
    for arch, bs in sorted({(k[0], k[1]) for k in speed}, key=lambda k: (tuple(map(int, k[0].split("x"))), k[1])):
        t = median(speed[(arch, bs, "torch")]) if speed.get((arch, bs, "torch")) else None
        j = median(speed[(arch, bs, "jax")]) if speed.get((arch, bs, "jax")) else None
        rows.append([arch, bs, f"{t:.0f}" if t else "-", f"{j:.0f}" if j else "-",
                     f"{t / j:.2f}" if t and j else "-", f"{bs * 1e6 / t:,.0f}" if t else "-",
                     f"{bs * 1e6 / j:,.0f}" if j else "-"])
    md += [_table(["layers x hidden", "batch", "torch µs/step", "JAX µs/step", "torch/JAX",
                   "torch samples/s", "JAX samples/s"], rows), ""]
    md += ["First step (compile / warm-up), median seconds: " +
           ", ".join(f"{b} {median(v):.3f}" for b, v in comp.items()) + ".", ""]
    if len(speed) > 2:
        fig_step_time(pairs, out / "step_time.png")
        md += ["![step time](step_time.png)", ""]

    path = out / "report.md"
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text("\n".join(md))
    tmp.replace(path)
    return path


def _variant_effects(pairs, backends) -> list[str]:
    """Paired effect of one field (softmax output, LeakyReLU): same config otherwise; overall and per lr."""
    md = []
    for field, a, b_ in (("output", "logits", "softmax"), ("activation", "relu", "leaky_relu")):
        rows = []
        for b in backends:
            by_key: dict[str, dict[str, dict]] = defaultdict(dict)
            for recs in pairs.values():
                r = recs.get(b)
                if r is None:
                    continue
                c = r["config"]
                rest = tuple(sorted((k, v) for k, v in c.items() if k != field))
                by_key[rest][c[field]] = r
            d: dict[float, list[float]] = defaultdict(list)  # learning rate -> paired differences
            div: dict[float, dict[str, int]] = defaultdict(lambda: {a: 0, b_: 0})
            for pair in by_key.values():
                if a in pair and b_ in pair:
                    lr = pair[a]["config"]["learning_rate"]
                    for v in (a, b_):
                        div[lr][v] += pair[v]["status"] != "ok"
                    if _ok(pair[a]) and _ok(pair[b_]):
                        d[lr].append(_final_acc(pair[b_]) - _final_acc(pair[a]))
            groups = [("all", [x for v in d.values() for x in v], [sum(n[v] for n in div.values()) for v in (a, b_)])]
            if len(d) > 1:
                groups += [(f"{lr:g}", d[lr], [div[lr][a], div[lr][b_]]) for lr in sorted(d, reverse=True)]
            for label, diffs, bad in groups:
                if diffs:
                    rows.append([b, label, len(diffs), f"{100 * np.mean(diffs):+.2f}", f"{100 * np.median(diffs):+.2f}",
                                 f"{bad[0]} / {bad[1]}"])
        if rows:
            md += [f"Effect of `{field}={b_}` against `{field}={a}` (final test accuracy, paired runs that differ only "
                   f"there), over all pairs and per learning rate:", "",
                   _table(["backend", "lr", "pairs", "mean diff (points)", "median diff", f"not ok: {a} / {b_}"], rows), ""]
    if any("output" in m for m in md):
        md += ["The softmax output feeds probabilities to a cross-entropy that applies log-softmax again "
               "(the seed report's double softmax): the loss cannot fall below -log(e/(e+9)) ≈ 1.461, and the "
               "gradients are squashed by the inner softmax, vanishing once it saturates; the per-learning-rate "
               "rows show where that costs most.", ""]
    return md
