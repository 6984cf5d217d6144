"""## Step speed: µs per training step per architecture and batch size, the torch/JAX ratio,
samples/s, the first step's compile / warm-up time, and the step-time figure.

Each path apart where the results hold compiled runs (`--set compile=false,true`): torch, torch
compiled, JAX and JAX compiled (impls/*/fast.py), one row each, every path's ratio to the JAX run
of the same configuration, and torch.compile's graphs, graph breaks and recompiles."""

from __future__ import annotations

from collections import defaultdict
from statistics import median

import numpy as np

from comparison.progress import plural
from comparison.report.common import (
    BACKENDS,
    COLORS,
    PATHS,
    STYLES,
    Page,
    arch,
    arch_order,
    backend_legend,
    eager_key,
    path_of,
    plt,
    table,
)
from comparison.results import config_of, warmup_s

NOISY = 1.5  # p90 / p10 of a run's windowed step times above this: the machine did not hold still


def section(page: Page) -> list[str]:
    md = [
        "## Step speed",
        "",
        "Steady-state µs per training step (synchronised at epoch ends only, first step excluded "
        "and reported as compile/warm-up; evaluation excluded).",
        "",
    ]
    records = page.timed  # every path
    md += _engine_note(records)
    speed = step_times(records)
    noisy = noisy_cells(records)
    floors = floors_of(records)
    md += _noise_warning(records, noisy)
    md += _floor_note(floors)  # what the table's floor columns mean, before the table
    if any(k[2].endswith(" compiled") for k in speed):
        md += [_path_table(speed, floors, noisy, _warmups(records)), ""]
    else:
        md += [_speed_table(speed, floors, noisy), ""]
    md += _floor_warning(speed, floors)
    md += _spread_table(records)
    md += _warmup_line(records)
    md += compiled_lines(records)
    if sum(not k[2].endswith(" compiled") for k in speed) > 2:
        sweep = any(r.get("engine") == "sweep" for r in records)
        name = page.save(fig_step_time(page.pairs, sweep), "step_time.png", dpi=100, tight=False)
        md += [f"![step time]({name})", ""]
    return md


def _engine_note(records: list[dict]) -> list[str]:
    """How to read the times of sweep-engine runs (compare.py --engine sweep), if there are any."""
    engines = {r.get("engine", "loop") for r in records}
    if "sweep" not in engines:
        return []
    return [
        (
            "The sweep engine trains a group of M configurations in one step, all of them at "
            "once: a sweep run's µs/step here is that group step's time / M, its share (compare "
            "it with a loop run's step, not with a group's), and its first-step time the group's "
            "compile. "
        )
        + (
            "Loop runs (one at a time) are mixed in: their times are per step of one run."
            if "loop" in engines
            else "Every run here is a sweep run."
        ),
        "",
    ]


def step_times(records: list[dict]) -> dict[tuple, list[float]]:
    """(arch, batch size, path) -> µs/step of every run that timed steady steps; a path is
    "torch", "torch compiled", "jax" or "jax compiled" (common.path_of)."""
    speed: dict[tuple, list[float]] = defaultdict(list)
    for r in records:
        if r.get("step_time_us"):
            c = config_of(r)
            speed[(arch(c), c.batch_size, path_of(r))].append(r["step_time_us"])
    return speed


def paired_ratios(pairs: dict[str, dict[str, dict]]) -> list[tuple[float, bool]]:
    """(torch µs/step / JAX µs/step, noisy) of every configuration both backends timed; noisy where
    either run's step times varied by more than NOISY (p90/p10)."""
    out = []
    for recs in pairs.values():
        t, j = recs.get("torch"), recs.get("jax")
        if t and j and t.get("step_time_us") and j.get("step_time_us"):
            noisy = any((ratio_spread(r) or 0) > NOISY for r in (t, j))
            out.append((t["step_time_us"] / j["step_time_us"], noisy))
    return out


def compiled_ratios(records: list[dict]) -> list[tuple[float, bool]]:
    """paired_ratios of the torch compiled runs: each against the JAX run of its configuration
    (compile false where there is one, else the same key; records as Page.timed holds them)."""
    timed = [r for r in records if r["backend"] == "jax" and r.get("step_time_us")]
    # The compile-false runs last, so that they win where both are there.
    jax = {eager_key(r): r for r in sorted(timed, key=lambda r: not config_of(r).compile)}
    out = []
    for t in records:
        j = jax.get(eager_key(t))
        if path_of(t) == "torch compiled" and t.get("step_time_us") and j:
            noisy = any((ratio_spread(r) or 0) > NOISY for r in (t, j))
            out.append((t["step_time_us"] / j["step_time_us"], noisy))
    return out


def floors_of(records: list[dict]) -> dict[tuple, float]:
    """(arch, batch size) -> the GEMM floor compare.py measured at its start (the median over
    sessions)."""
    found: dict[tuple, list[float]] = defaultdict(list)
    for r in records:
        if r.get("gemm_floor_us"):
            c = config_of(r)
            found[(arch(c), c.batch_size)].append(r["gemm_floor_us"])
    return {k: median(v) for k, v in found.items()}


def ratio_spread(rec: dict) -> float | None:
    """p90 / p10 of a run's windowed µs/step; None where the run has no spread recorded."""
    s = rec.get("step_time_spread")
    return s["p90"] / s["p10"] if s and s.get("p10") else None


def noisy_cells(records: list[dict]) -> set[tuple]:
    """(arch, batch size, path) of the table cells that rest on at least one noisy run."""
    out = set()
    for r in records:
        spread = ratio_spread(r)
        if spread is not None and spread > NOISY:
            c = config_of(r)
            out.add((arch(c), c.batch_size, path_of(r)))
    return out


def _noise_warning(records: list[dict], noisy: set[tuple]) -> list[str]:
    if not noisy:
        return []
    runs = [r for r in records if (ratio_spread(r) or 0) > NOISY]
    loads = [r["load_at_start"] for r in runs if r.get("load_at_start")]
    load = (
        f" The 1-minute load at their start reached {max(x['load_1m'] for x in loads):g} on "
        f"{loads[0]['cpus']} CPUs (this run's own previous work counts in it)."
        if loads
        else ""
    )
    return [
        f"> **Warning: noisy timings.** {len(runs)} of {len(records)} runs had step times that "
        f"varied by more than {NOISY}x between windows of steps (p90/p10): another process was "
        f"probably competing for the CPU.{load} Cells marked ⚠ rest on such runs; do not quote "
        "their µs/step or torch/JAX ratio. Rerun those configurations on an idle machine (delete "
        "their lines from results.jsonl).",
        "",
    ]


def _us(t: float | None, warn: bool) -> str:
    return f"{t:.0f}{' ⚠' if warn else ''}" if t else "-"


def _speed_table(
    speed: dict[tuple, list[float]], floors: dict[tuple, float], noisy: set[tuple]
) -> str:
    rows = []
    for a, bs in sorted({(k[0], k[1]) for k in speed}, key=lambda k: (arch_order(k[0]), k[1])):
        t = median(speed[(a, bs, "torch")]) if speed.get((a, bs, "torch")) else None
        j = median(speed[(a, bs, "jax")]) if speed.get((a, bs, "jax")) else None
        nt, nj = (a, bs, "torch") in noisy, (a, bs, "jax") in noisy
        f = floors.get((a, bs))
        rows.append(
            [
                a,
                bs,
                _us(t, nt),
                _us(j, nj),
                f"{t / j:.2f}{' ⚠' if nt or nj else ''}" if t and j else "-",
                f"{f:.0f}" if f else "-",
                f"{t / f:.1f}" if t and f else "-",
                f"{j / f:.1f}" if j and f else "-",
                f"{bs * 1e6 / t:,.0f}" if t else "-",
                f"{bs * 1e6 / j:,.0f}" if j else "-",
            ]
        )
    return table(
        [
            "layers x hidden",
            "batch",
            "torch µs/step",
            "JAX µs/step",
            "torch / JAX (ratio, x)",
            "GEMM floor µs",
            "torch / floor",
            "JAX / floor",
            "torch samples/s",
            "JAX samples/s",
        ],
        rows,
    )


def _warmups(records: list[dict]) -> dict[tuple, list[float]]:
    """(arch, batch size, path) -> the first-step (compile / warm-up) seconds of its runs."""
    out: dict[tuple, list[float]] = defaultdict(list)
    for r in records:
        if warmup_s(r) is not None:
            c = config_of(r)
            out[(arch(c), c.batch_size, path_of(r))].append(warmup_s(r))
    return out


def _path_table(
    speed: dict[tuple, list[float]],
    floors: dict[tuple, float],
    noisy: set[tuple],
    warmups: dict[tuple, list[float]],
) -> str:
    """One row per path (common.PATHS) of each architecture and batch size: medians
    of µs/step and its ratio to JAX's, to the GEMM floor, samples/s and the first step apart."""
    rows = []
    for a, bs in sorted({(k[0], k[1]) for k in speed}, key=lambda k: (arch_order(k[0]), k[1])):
        # JAX's lesson step is the reference; its compiled step where that alone ran.
        ref = "jax" if speed.get((a, bs, "jax")) else "jax compiled"
        j = median(speed[(a, bs, ref)]) if speed.get((a, bs, ref)) else None
        f = floors.get((a, bs))
        for path in [p for p in PATHS if speed.get((a, bs, p))]:
            t, warn = median(speed[(a, bs, path)]), (a, bs, path) in noisy
            jwarn = warn or (a, bs, ref) in noisy
            w = warmups.get((a, bs, path))
            rows.append(
                [
                    a,
                    bs,
                    path,
                    _us(t, warn),
                    f"{t / j:.2f}{' ⚠' if jwarn else ''}" if j and path != ref else "-",
                    f"{f:.0f}" if f else "-",
                    f"{t / f:.1f}" if f else "-",
                    f"{bs * 1e6 / t:,.0f}",
                    f"{median(w):.3f}" if w else "-",
                ]
            )
    header = [
        "layers x hidden",
        "batch",
        "path",
        "µs/step",
        "/ JAX (x)",
        "GEMM floor µs",
        "/ floor",
    ]
    return table(header + ["samples/s", "first step s (compile / warm-up)"], rows)


def compiled_lines(records: list[dict]) -> list[str]:
    """torch.compile's counts over the compiled runs (the most in any run), and a warning where a
    run recompiled after its first steps or ran a graph without a CUDA graph; nothing where no run
    was compiled."""
    runs = [r for r in records if r.get("compiled")]
    if not runs:
        return []
    counts = [r["compiled"] for r in runs]
    most = {k: max(c.get(k) or 0 for c in counts) for k in ("graphs", "graph_breaks", "recompiles")}
    modes = ", ".join(sorted({str(c.get("mode")) for c in counts}))
    md = [
        f"torch.compile, {plural(len(runs), 'compiled run')} (mode {modes}), the most in any run: "
        f"{plural(most['graphs'], 'graph')}, {plural(most['graph_breaks'], 'graph break')}, "
        f"{plural(most['recompiles'], 'recompile')}.",
        "",
    ]
    md += _warning(
        runs,
        "recompiles",
        "torch.compile recompiled",
        "compiled again after their first step ({where}): that compile time is inside their "
        "steady µs/step, so the compiled path reads slower than it is. Find the guard that "
        "failed (TORCH_LOGS=recompiles) and rerun.",
    )
    md += _warning(
        runs,
        "cudagraph_skips",
        "CUDA graphs skipped",
        "ran a graph without a CUDA graph ({where}), launching its kernels one by one: the "
        "compiled path reads slower than CUDA graphs make it. TORCH_LOGS=cudagraphs says why.",
    )
    return md


def _warning(runs: list[dict], count: str, title: str, text: str) -> list[str]:
    """A warning naming the compiled runs whose `count` (a key of their `compiled`) is above 0."""
    flagged = [r for r in runs if (r["compiled"].get(count) or 0) > 0]
    if not flagged:
        return []
    where = ", ".join(sorted({config_of(r).describe(brief=True) for r in flagged})[:5])
    return [
        f"> **Warning: {title}.** {len(flagged)} of {len(runs)} compiled runs "
        + text.format(where=where),
        "",
    ]


def _floor_note(floors: dict[tuple, float]) -> list[str]:
    if not floors:
        return [
            "No GEMM floor in these results (measured by compare.py on CPU runs since it records "
            "one).",
            "",
        ]
    return [
        "GEMM floor: what numpy's float32 matrix products of one step (forward, weight and input "
        "gradients, same shapes) take on this machine, measured by compare.py at its start. x / "
        "floor is how many times that the whole step costs: activations, loss, Adam and the "
        "framework's own overhead.",
        "",
    ]


def _floor_warning(speed: dict[tuple, list[float]], floors: dict[tuple, float]) -> list[str]:
    """A step faster than its own GEMMs means the floor was measured while the machine was busy."""
    beaten = sorted(
        {
            f"{a} b{bs}"
            for (a, bs, _), t in speed.items()
            if (a, bs) in floors and median(t) < floors[(a, bs)]
        }
    )
    if not beaten:
        return []
    return [
        "> **Warning: the GEMM floor is not a floor here.** A whole step ran faster than its "
        f"matrix products alone ({', '.join(beaten)}): the probe ran while other processes held "
        "the CPU (numpy's BLAS threads stall like torch's). Ratios to the floor below 1 mean "
        "nothing; rerun on an idle machine.",
        "",
    ]


def _spread_table(records: list[dict]) -> list[str]:
    """Medians over runs of p10 / p50 / p90 µs/step and of p90/p10, and the worst p90/p10: per
    architecture, batch and backend when that makes a dozen rows or fewer, else per backend (µs of
    other shapes mixed)."""
    timed = [r for r in records if r.get("step_time_spread")]
    shapes = {(arch(config_of(r)), config_of(r).batch_size) for r in timed}
    compiled = any(path_of(r).endswith(" compiled") for r in timed)
    paths = len({path_of(r) for r in timed}) if compiled else len(BACKENDS)
    per_shape = len(shapes) * paths <= 12

    def key(r):
        return (
            (arch(config_of(r)), config_of(r).batch_size, path_of(r))
            if per_shape
            else (path_of(r),)
        )

    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in timed:
        groups[key(r)].append(r)
    rows = []
    for k in sorted(
        groups,
        key=lambda k: (
            (arch_order(k[0]), k[1], PATHS.index(k[2])) if per_shape else PATHS.index(k[0])
        ),
    ):
        sp = [r["step_time_spread"] for r in groups[k]]
        ratios = [x for x in map(ratio_spread, groups[k]) if x]
        rows.append(
            list(k)
            + [len(sp)]
            + [f"{median(x[q] for x in sp):.0f}" for q in ("p10", "p50", "p90")]
            + ([f"{median(ratios):.2f}", f"{max(ratios):.2f}"] if ratios else ["-", "-"])
        )
    if not rows:
        return []
    label = "path" if compiled else "backend"
    head = (["layers x hidden", "batch", label] if per_shape else [label]) + [
        "runs",
        "p10",
        "p50",
        "p90",
    ]
    return [
        "Spread of step times within runs (µs/step of windows of 50 steps, one window per epoch "
        f"for the sweep engine; medians over runs; p90/p10 above {NOISY} marks a run noisy):",
        "",
        table(head + ["p90/p10 (median)", "p90/p10 (worst)"], rows),
        "",
    ]


def _warmup_line(records: list[dict]) -> list[str]:
    warmups: dict[str, list[float]] = defaultdict(list)
    for r in records:
        if warmup_s(r) is not None:
            warmups[path_of(r)].append(warmup_s(r))
    if any(p.endswith(" compiled") for p in warmups):  # the paths in the table's order
        warmups = {p: warmups[p] for p in PATHS if p in warmups}
    return [
        "First step (compile / warm-up), median seconds: "
        + ", ".join(f"{b} {median(v):.3f}" for b, v in warmups.items())
        + ".",
        "",
    ]


def _by_backend_arch_batch(pairs) -> dict[tuple, list[float]]:
    times: dict[tuple, list[float]] = defaultdict(list)
    for recs in pairs.values():
        for b, r in recs.items():
            if r.get("step_time_us"):
                c = config_of(r)
                times[(b, (c.hidden_layers, c.hidden_size), c.batch_size)].append(r["step_time_us"])
    return times


def fig_step_time(pairs, sweep: bool):
    """Median µs per training step by batch size, one panel per architecture (layers as rows,
    hidden sizes as columns), torch and JAX in their colours; each batch size's torch / JAX ratio
    written above its points. `sweep`: the times are shares of a group's step."""
    times = _by_backend_arch_batch(pairs)
    archs = sorted({k[1] for k in times})
    layers = sorted({a[0] for a in archs})
    sizes = sorted({a[1] for a in archs})
    batches = sorted({k[2] for k in times})
    fig, axes = plt().subplots(
        len(layers),
        len(sizes),
        figsize=(max(7.0, 3.3 * len(sizes) + 0.8), 2.6 * len(layers) + 1.2),
        squeeze=False,
        layout="constrained",
    )

    def med(b, a, bs):
        return median(times[(b, a, bs)]) if times.get((b, a, bs)) else np.nan

    for i, n in enumerate(layers):
        for j, h in enumerate(sizes):
            ax, a = axes[i, j], (n, h)
            if a not in archs:
                ax.axis("off")
                continue
            for b in BACKENDS:
                y = [med(b, a, bs) for bs in batches]
                ax.plot(batches, y, marker="o", ms=4, color=COLORS[b], ls=STYLES[b])
            for bs in batches:
                t, j_ = med("torch", a, bs), med("jax", a, bs)
                if np.isfinite(t) and np.isfinite(j_):
                    where = (bs, max(t, j_))
                    ax.annotate(
                        f"{t / j_:.2f}x",
                        where,
                        xytext=(0, 5),
                        textcoords="offset points",
                        ha="center",
                        fontsize=7,
                    )
            ax.set_title(f"{n}x{h} (layers x hidden)", fontsize=9)
            ax.set_gid(f"{n}x{h}")
            ax.set_xticks(batches)
            ax.set_ylim(0, 1.2 * ax.get_ylim()[1])  # from 0, room for the ratios
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.3)
            if i == len(layers) - 1:
                ax.set_xlabel("batch size", fontsize=8)
            if j == 0:
                ax.set_ylabel("µs per step", fontsize=8)
    what = "sweep runs: a run's share of its group's step (group step / members)" if sweep else ""
    fig.suptitle(
        "Steady-state µs per training step, median over runs"
        + (f"\n{what}" if what else "")
        + "\nnumbers: the step-time ratio torch / JAX (above 1x: JAX faster)",
        fontsize=10,
    )
    backend_legend(fig)
    return fig
