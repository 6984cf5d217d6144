"""## Convergence: epochs until accuracy thresholds, runs that diverged or failed, runs that
finished but did not learn. The variants' effects (variants.py) close the section."""

from __future__ import annotations

from collections import defaultdict
from statistics import median

from comparison.progress import plural
from comparison.report.common import (
    DID_NOT_LEARN_BELOW,
    Page,
    accuracy,
    final_acc,
    first_cfg,
    learned,
    ok,
    path_of,
    pct,
    table,
)
from comparison.results import config_of

THRESHOLDS = (0.90, 0.95, 0.97, 0.98)
LISTED = 40  # rows of a run list before "... and N more"
EXAMPLES = 4  # configurations shown of the runs that did not learn


def section(page: Page) -> list[str]:
    return (
        ["## Convergence", ""]
        + _thresholds(page)
        + _unfinished(page.records)
        + _did_not_learn(page)
    )


def first_reach(rec: dict, threshold: float) -> tuple[int, int] | None:
    """(epoch, step) after which the test accuracy first reached `threshold`, or None."""
    for e in rec["epochs"]:
        if accuracy(e) >= threshold:
            return e["epoch"], e["epoch"] * config_of(rec).steps_per_epoch
    return None


def _thresholds(page: Page) -> list[str]:
    """Per backend and threshold: how many runs reached it, and after how many epochs (the median
    over those runs). Steps only for a single configuration: over runs of several batch sizes a
    median of steps and a median of epochs would describe different runs."""
    one = len(page.pairs) == 1  # a single configuration: its epochs and steps, not medians
    rows = []
    for b in page.backends:
        rs = [r for r in page.records if r["backend"] == b]
        for t in THRESHOLDS:
            reached = [x for x in (first_reach(r, t) for r in rs) if x is not None]
            row = [b, f"{100 * t:g}%", f"{len(reached)}/{len(rs)}"]
            row.append(f"{median(x[0] for x in reached):g}" if reached else "-")
            if one:
                row.append(f"{reached[0][1]}" if reached else "-")
            rows.append(row)
    header = ["backend", "threshold", "reached" if one else "runs reaching it"]
    header += ["epochs", "steps"] if one else ["median epochs"]
    intro = (
        "Epochs (and steps) until the test accuracy first reaches a threshold (evaluated after "
        "each epoch):"
        if one
        else "Epochs until the test accuracy first reaches a threshold (evaluated after each "
        "epoch; the median over the runs that reach it; an epoch is 60,000 images, 600 steps at "
        "batch 100, 100 at batch 600):"
    )
    return [intro, "", table(header, rows), ""]


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
                    path_of(r),
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


def did_not_learn(records: list[dict]) -> list[dict]:
    """Runs that finished with finite losses and a final test accuracy under DID_NOT_LEARN_BELOW."""
    return [r for r in records if ok(r) and not learned(r)]


def _lr_output(rec: dict) -> tuple[float, str]:
    """A record's (learning rate, output): the cells the runs that did not learn are counted in."""
    c = config_of(rec)
    return c.learning_rate, c.output


def stuck_counts(records: list[dict]) -> dict[tuple[float, str], dict[str, list[int]]]:
    """(learning rate, output) -> {backend: [runs that did not learn, runs]}, for the (learning
    rate, output) pairs with at least one such run; largest learning rate first, logits first."""
    counts: dict[tuple[float, str], dict[str, list[int]]] = defaultdict(
        lambda: defaultdict(lambda: [0, 0])
    )
    for r in records:
        cell = counts[_lr_output(r)][r["backend"]]
        cell[0] += ok(r) and not learned(r)
        cell[1] += 1
    stuck = {k: v for k, v in counts.items() if any(n for n, _ in v.values())}
    return dict(sorted(stuck.items(), key=lambda kv: (-kv[0][0], kv[0][1])))


def _why_stuck(stuck: list[dict]) -> str:
    """The mechanisms behind the runs listed: Adam at a large learning rate, the double softmax."""
    why = []
    if any(r["config"]["learning_rate"] >= 0.1 for r in stuck):
        why.append(
            "Adam moves each weight by about lr per step whatever the gradient, so a learning "
            "rate of 1 throws the weights far out, the ReLU units die and the net predicts one "
            "class."
        )
    if any(
        r["config"].get("output") == "softmax" and r["config"]["learning_rate"] < 0.1 for r in stuck
    ):
        why.append(
            "With the softmax output the inner softmax can saturate, at a lower learning rate too "
            "(why: under the effect of `output=softmax` below)."
        )
    return " ".join(why + ["The loss stays finite, so these runs are not 'diverged'."])


def _did_not_learn(page: Page) -> list[str]:
    stuck = did_not_learn(page.records)
    if not stuck:
        return []
    backends = page.backends
    rows = [
        [f"{lr:g}", output] + [f"{v[b][0]} of {v[b][1]}" if b in v else "-" for b in backends]
        for (lr, output), v in stuck_counts(page.records).items()
    ]
    return [
        f"{plural(len(stuck), 'run')} finished with finite losses but did not learn (final test "
        f"accuracy below {100 * DID_NOT_LEARN_BELOW:g}%, twice the 10% of guessing among ten "
        "classes), per learning rate and output; the other learning rates and outputs had none. "
        + _why_stuck(stuck),
        "",
        table(["lr", "output"] + [f"{b}: did not learn" for b in backends], rows),
        "",
    ] + _stuck_examples(page, stuck)


def _stuck_examples(page: Page, stuck: list[dict]) -> list[str]:
    """The first configuration that did not learn of each (learning rate, output), EXAMPLES at most,
    with both backends' final accuracy and training loss."""
    chosen: dict[tuple, dict[str, dict]] = {}
    for r in stuck:
        key = _lr_output(r)
        if key not in chosen and len(chosen) < EXAMPLES:
            chosen[key] = page.pairs[config_of(r).key()]
    rows = []
    for recs in chosen.values():
        rows.append(
            [first_cfg(recs).describe(brief=True)]
            + [pct(final_acc(recs[b])) if ok(recs.get(b)) else "-" for b in page.backends]
            + [
                f"{recs[b]['epochs'][-1]['train_loss']:.3f}" if ok(recs.get(b)) else "-"
                for b in page.backends
            ]
        )
    header = ["example"] + [f"{b} final test acc %" for b in page.backends]
    header += [f"{b} final train loss" for b in page.backends]
    return [f"{plural(len(rows), 'example')}:", "", table(header, rows), ""]
