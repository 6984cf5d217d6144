"""## Framework difference vs seed spread: is a torch−JAX gap larger than what changing the
random seed does?

A configuration run with several seeds (`--set seed=0,1,2,3,4`) gives, per backend, a spread of
final accuracies from the seed alone (initial weights and batch order). torch and JAX differ
"beyond seed noise" only where the gap between their means exceeds that spread.
"""

from __future__ import annotations

import pathlib
from collections import defaultdict

import numpy as np

from comparison.report.common import BACKENDS, COLORS, Page, final_acc, ok, plt, points, save, table
from comparison.results import config_of

MIN_SEEDS = 3
MAX_IN_FIGURE = 40


def section(page: Page) -> list[str]:
    stats = seed_stats(page.records)
    if not stats:
        return []
    rows, beyond = [], 0
    for name, per_backend in stats:
        t, j = per_backend.get("torch"), per_backend.get("jax")
        cells = [name] + [_cell(per_backend.get(b)) for b in BACKENDS]
        if t and j:
            gap, spread = abs(t["mean"] - j["mean"]), max(t["std"], j["std"])
            over = gap > spread
            beyond += over
            cells += [points(gap), points(spread), "**beyond**" if over else "within"]
        else:
            cells += ["-", "-", "-"]
        rows.append(cells)
    both = sum(1 for _, pb in stats if {"torch", "jax"} <= pb.keys())
    fig_seed_spread(stats, page.out / "seed_spread.png")
    return [
        "## Framework difference vs seed spread",
        "",
        f"Configurations run with at least {MIN_SEEDS} seeds: {len(stats)}. Final test accuracy "
        "(%) per backend over the seeds: mean ± standard deviation [min – max]. The seed spread "
        "is the larger of the two standard deviations; the gap is |mean torch − mean JAX|.",
        "",
        f"**torch and JAX differ by more than the seed spread in {beyond} of {both} "
        "configurations.**",
        "",
        table(
            [
                "configuration",
                "seeds",
                "torch",
                "JAX",
                "gap (points)",
                "seed spread",
                "gap vs spread",
            ],
            [[r[0], _n_seeds(stats, r[0])] + r[1:] for r in rows],
        ),
        "",
        "![seed spread](seed_spread.png)",
        "",
    ]


def seed_stats(records: list[dict]) -> list[tuple[str, dict[str, dict]]]:
    """[(configuration without its seed, {backend: {mean, std, min, max, values}})] for every
    configuration with >= MIN_SEEDS seeds finished ok in some backend; std with ddof=1."""
    finals: dict[tuple, dict[str, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    names = {}
    for r in records:
        if ok(r):
            cfg = config_of(r)
            key = tuple((k, v) for k, v in cfg.to_dict().items() if k != "seed")
            finals[key][r["backend"]][cfg.seed] = final_acc(r)
            dtype = "" if cfg.dtype == "float32" else f" {cfg.dtype}"
            names[key] = f"{cfg.describe(brief=True)}{dtype} e{cfg.epochs}"
    out = []
    for key, per_backend in finals.items():
        summary = {}
        for b, by_seed in per_backend.items():
            if len(by_seed) >= MIN_SEEDS:
                v = np.array([by_seed[s] for s in sorted(by_seed)])
                summary[b] = {
                    "mean": v.mean(),
                    "std": v.std(ddof=1),
                    "min": v.min(),
                    "max": v.max(),
                    "values": v,
                }
        if summary:
            out.append((names[key], summary))
    return sorted(out, key=lambda kv: kv[0])


def _cell(s: dict | None) -> str:
    if not s:
        return "-"
    spread = f"[{points(s['min'])} – {points(s['max'])}]"
    return f"{points(s['mean'])} ± {points(s['std'])} {spread}"


def _n_seeds(stats, name: str) -> str:
    per_backend = dict(stats)[name]
    return " / ".join(
        str(len(per_backend[b]["values"])) if b in per_backend else "-" for b in BACKENDS
    )


def fig_seed_spread(stats: list[tuple[str, dict[str, dict]]], path: pathlib.Path) -> None:
    """Per configuration, each backend's seeds as dots with mean ± std, side by side."""
    stats = stats[:MAX_IN_FIGURE]
    fig, ax = plt().subplots(figsize=(max(6.0, 0.55 * len(stats) + 2), 5))
    for i, (_, per_backend) in enumerate(stats):
        for k, b in enumerate(BACKENDS):
            s = per_backend.get(b)
            if not s:
                continue
            x = i + (k - 0.5) * 0.3
            ax.scatter(
                np.full(len(s["values"]), x),
                100 * s["values"],
                s=12,
                color=COLORS[b],
                alpha=0.6,
                label=b if i == 0 else None,
            )
            ax.errorbar(
                x, 100 * s["mean"], yerr=100 * s["std"], fmt="_", color=COLORS[b], capsize=4, lw=1.5
            )
    ax.set_xticks(range(len(stats)))
    ax.set_xticklabels([name for name, _ in stats], rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("final test accuracy (%)")
    ax.set_title(
        "Seed spread per configuration: torch and JAX side by side (dots: seeds; bar: mean ± std)"
    )
    ax.legend()
    ax.grid(alpha=0.3, axis="y")
    save(fig, path, dpi=110)
