"""The answer in brief, the rest of the first screen, before any table: final test accuracy torch
vs JAX, the step-time ratio, and how many runs did not learn, diverged or failed."""

from __future__ import annotations

from statistics import mean, median

from comparison.progress import plural
from comparison.report.common import (
    DID_NOT_LEARN_BELOW,
    NAMES,
    Page,
    final_acc,
    learned,
    path_of,
    pct,
    points,
)
from comparison.report.convergence import did_not_learn, stuck_counts
from comparison.report.speed import NOISY, compiled_ratios, paired_ratios


def section(page: Page) -> list[str]:
    lines = [accuracy_line(page), speed_line(page), outcome_line(page)]
    return ["**In brief.**", ""] + [f"- {line}" for line in lines if line] + [""]


def accuracy_line(page: Page) -> str:
    """Final test accuracy per backend over the configurations every backend learned: median and
    mean, and of the torch − JAX gap per configuration; the values themselves for one."""
    both = [
        recs for recs in page.pairs.values() if all(learned(recs.get(b)) for b in page.backends)
    ]
    if not both:
        return "**Final test accuracy**: no configuration learned in every backend."
    finals = {b: [final_acc(recs[b]) for recs in both] for b in page.backends}
    gaps = [t - j for t, j in zip(finals.get("torch", []), finals.get("jax", []))]
    if len(both) == 1:
        each = ", ".join(f"{NAMES[b]} {pct(v[0])} %" for b, v in finals.items())
        gap = f" (torch − JAX {points(gaps[0], sign=True)} points)" if gaps else ""
        return f"**Final test accuracy**: {each}{gap}."
    each = "; ".join(
        f"{NAMES[b]} median {pct(median(v))} %, mean {pct(mean(v))} %, best {pct(max(v))} %"
        for b, v in finals.items()
    )
    text = (
        f"**Final test accuracy** over the {len(both)} configurations where "
        f"{'both backends' if len(finals) > 1 else 'the backend'} learned (final test accuracy at "
        f"least {100 * DID_NOT_LEARN_BELOW:g} %): {each}"
    )
    if gaps:
        text += (
            f"; torch − JAX per configuration: median {points(median(gaps), sign=True)}, mean "
            f"{points(mean(gaps), sign=True)}, largest |gap| {points(max(map(abs, gaps)))} points"
        )
    return text + "."


def speed_line(page: Page) -> str:
    """The steady-state step-time ratio torch / JAX over the configurations both timed."""
    ratios = paired_ratios(page.pairs)
    if not ratios:
        return ""
    r = [x for x, _ in ratios]
    mid = median(r)
    faster = "JAX faster" if mid > 1 else "torch faster" if mid < 1 else "as fast"
    over = (
        f"median {mid:.2f}x over {len(r)} configurations (range {min(r):.2f}x–{max(r):.2f}x)"
        if len(r) > 1
        else f"{mid:.2f}x"
    )
    torch = [path_of(r) for r in page.records if r["backend"] == "torch"]
    who = "torch compiled" if torch and set(torch) == {"torch compiled"} else "torch"
    jax = [path_of(r) for r in page.records if r["backend"] == "jax"]
    jax_who = "JAX compiled" if jax and set(jax) == {"jax compiled"} else "JAX"
    text = (
        f"**Step-time ratio**, {who} / {jax_who} (a ratio of steady-state µs per training step, "
        f"the first step, which compiles or warms up, left out; above 1x JAX is faster): {over}, "
        f"{faster}."
    )
    noisy = sum(n for _, n in ratios)
    if noisy:
        text += (
            f" ⚠ In {noisy} of them a run's step times varied by more than {NOISY}x: another "
            "process held the CPU; do not quote these (see Step speed)."
        )
    return text + _compiled_ratio(page)


def _compiled_ratio(page: Page) -> str:
    """The same ratio for the torch compiled runs that have an eager twin (Page.set_aside), each
    against the JAX run of its configuration; "" when there are none."""
    ratios = compiled_ratios(page.timed) if page.set_aside else []
    if not ratios:
        return ""
    r = [x for x, _ in ratios]
    noisy = sum(n for _, n in ratios)
    return (
        f" torch compiled / JAX: median {median(r):.2f}x over {plural(len(r), 'configuration')}"
        + (f" (⚠ {noisy} noisy)" if noisy else "")
        + "."
    )


def outcome_line(page: Page) -> str:
    """Runs that did not learn (per learning rate and output), diverged, failed."""
    records = page.records
    stuck = did_not_learn(records)
    diverged = sum(r["status"] == "diverged" for r in records)
    failed = sum(r["status"] == "error" for r in records)
    end = f"Diverged (a loss went NaN or infinite): {diverged}; failed (an error): {failed}."
    if not stuck:
        return (
            f"**Every run learned** (final test accuracy ≥ {100 * DID_NOT_LEARN_BELOW:g} %). {end}"
        )
    per_backend = ", ".join(
        f"{NAMES[b]} {sum(r['backend'] == b for r in stuck)}" for b in page.backends
    )
    where = ", ".join(
        f"lr {lr:g} {output} {sum(n for n, _ in v.values())}"
        for (lr, output), v in stuck_counts(records).items()
    )
    return (
        f"**Did not learn** (finished, final test accuracy below {100 * DID_NOT_LEARN_BELOW:g} %): "
        f"{len(stuck)} of {plural(len(records), 'run')} ({per_backend}): {where} (see "
        f"Convergence). {end}"
    )
