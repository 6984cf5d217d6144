"""## Convergence: epochs until accuracy thresholds, runs that diverged or failed, runs that
finished but did not learn. The variants' effects (variants.py) close the section."""

from __future__ import annotations

from statistics import median

from shared.report.common import Page, final_acc, ok, pct, plural, table
from shared.results import config_of

THRESHOLDS = (0.90, 0.95, 0.97, 0.98)
DID_NOT_LEARN_BELOW = (
    0.20  # final accuracy under this is "did not learn": twice chance (ten classes: 10 %)
)
LISTED = 40  # rows of a run list before "... and N more"


def section(page: Page) -> list[str]:
    return (
        ["## Convergence", ""]
        + _thresholds(page)
        + _unfinished(page.records)
        + _did_not_learn(page.records)
    )


def first_reach(rec: dict, threshold: float) -> tuple[int, int] | None:
    """(epoch, step) after which the test accuracy first reached `threshold`, or None."""
    for e in rec["epochs"]:
        if e["test_accuracy"] >= threshold:
            return e["epoch"], e["epoch"] * config_of(rec).steps_per_epoch
    return None


def _thresholds(page: Page) -> list[str]:
    rows = []
    for b in page.backends:
        rs = [r for r in page.records if r["backend"] == b]
        for t in THRESHOLDS:
            reached = [x for x in (first_reach(r, t) for r in rs) if x is not None]
            rows.append(
                [
                    b,
                    f"{100 * t:g}%",
                    f"{len(reached)}/{len(rs)}",
                    f"{median(x[0] for x in reached):g}" if reached else "-",
                    f"{median(x[1] for x in reached):g}" if reached else "-",
                ]
            )
    one = len(page.pairs) == 1  # a single configuration: its epochs, not a median over one run
    header = [
        "backend",
        "threshold",
        "reached" if one else "runs reaching it",
        "epochs" if one else "median epochs",
        "steps" if one else "median steps",
    ]
    return [
        "Epochs (and steps) until the test accuracy first reaches a threshold (evaluated after each epoch):",
        "",
        table(header, rows),
        "",
    ]


def _more(n: int, what: str = "") -> list[str]:
    return [f"... and {n - LISTED} more{what}.", ""] if n > LISTED else []


def _unfinished(records: list[dict]) -> list[str]:
    bad = [r for r in records if r["status"] != "ok"]
    if not bad:
        return ["No run diverged (loss NaN/inf) or failed.", ""]
    return [
        f"{plural(len(bad), 'run')} did not finish normally:",
        "",
        table(
            ["backend", "status", "config", "epochs done", "error"],
            [
                [
                    r["backend"],
                    r["status"],
                    config_of(r).describe(brief=True),
                    len(r["epochs"]),
                    (r.get("error") or "")[:80],
                ]
                for r in bad[:LISTED]
            ],
        ),
        "",
    ] + _more(len(bad), " (see results.jsonl)")


def _did_not_learn(records: list[dict]) -> list[str]:
    stuck = [r for r in records if ok(r) and final_acc(r) < DID_NOT_LEARN_BELOW]
    if not stuck:
        return []
    return [
        f"{plural(len(stuck), 'run')} finished with finite losses but did not learn (final test accuracy below "
        f"{100 * DID_NOT_LEARN_BELOW:g}%, twice the 10% of guessing among ten classes). Adam moves each weight by about lr per step "
        f"whatever the gradient, so lr 1.0 throws the weights far out, the ReLU units die and the net "
        f"predicts one class; the loss stays finite, so these are not 'diverged':",
        "",
        table(
            ["backend", "config", "final test acc %", "final train loss"],
            [
                [
                    r["backend"],
                    config_of(r).describe(brief=True),
                    pct(final_acc(r)),
                    f"{r['epochs'][-1]['train_loss']:.3f}",
                ]
                for r in stuck[:LISTED]
            ],
        ),
        "",
    ] + _more(len(stuck))
