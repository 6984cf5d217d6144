"""Effects of the lab report's variants (softmax output, LeakyReLU): paired runs that differ in one
field only, overall and per learning rate. Part of the Convergence section."""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from comparison.report.common import Page, final_acc, ok, points, table

# (field, reference, variant)
VARIANTS = (
    ("output", "logits", "softmax"),
    ("activation", "relu", "leaky_relu"),
)

SOFTMAX_TEXT = (
    "The softmax output feeds probabilities to a cross-entropy that applies log-softmax again "
    "(the lab report's double softmax): the loss cannot fall below -log(e/(e+9)) ≈ 1.461, and the "
    "gradients are squashed by the inner softmax, vanishing once it saturates; the "
    "per-learning-rate rows show where that costs most."
)


def section(page: Page) -> list[str]:
    return variant_effects(page.pairs, page.backends)


def _paired(pairs, backend: str, field: str) -> dict[tuple, dict[str, dict]]:
    """Runs of `backend` grouped by every config field except `field`:
    {rest: {value of field: record}}."""
    by_key: dict[tuple, dict[str, dict]] = defaultdict(dict)
    for recs in pairs.values():
        r = recs.get(backend)
        if r is None:
            continue
        c = r["config"]
        by_key[tuple(sorted((k, v) for k, v in c.items() if k != field))][c[field]] = r
    return by_key


def _rows(pairs, backend: str, field: str, a: str, b_: str) -> list[list]:
    """Table rows of one backend: all pairs, then per learning rate when there are several."""
    d: dict[float, list[float]] = defaultdict(list)  # learning rate -> paired differences
    div: dict[float, dict[str, int]] = defaultdict(lambda: {a: 0, b_: 0})
    for pair in _paired(pairs, backend, field).values():
        if a in pair and b_ in pair:
            lr = pair[a]["config"]["learning_rate"]
            for v in (a, b_):
                div[lr][v] += pair[v]["status"] != "ok"
            if ok(pair[a]) and ok(pair[b_]):
                d[lr].append(final_acc(pair[b_]) - final_acc(pair[a]))
    groups = [
        (
            "all",
            [x for v in d.values() for x in v],
            [sum(n[v] for n in div.values()) for v in (a, b_)],
        )
    ]
    if len(d) > 1:
        groups += [(f"{lr:g}", d[lr], [div[lr][a], div[lr][b_]]) for lr in sorted(d, reverse=True)]
    return [
        [
            backend,
            label,
            len(diffs),
            points(np.mean(diffs), sign=True),
            points(np.median(diffs), sign=True),
            f"{bad[0]} / {bad[1]}",
        ]
        for label, diffs, bad in groups
        if diffs
    ]


def variant_effects(pairs, backends) -> list[str]:
    """Paired effect of one field (softmax output, LeakyReLU), the config otherwise the same:
    overall and per learning rate."""
    md = []
    for field, a, b_ in VARIANTS:
        rows = [row for b in backends for row in _rows(pairs, b, field, a, b_)]
        if rows:
            md += [
                f"Effect of `{field}={b_}` against `{field}={a}` (final test accuracy, paired runs "
                "that differ only there), over all pairs and per learning rate:",
                "",
                table(
                    [
                        "backend",
                        "lr",
                        "pairs",
                        "mean diff (points)",
                        "median diff",
                        f"not ok: {a} / {b_}",
                    ],
                    rows,
                ),
                "",
            ]
    if any("output" in m for m in md):
        md += [SOFTMAX_TEXT, ""]
    return md
