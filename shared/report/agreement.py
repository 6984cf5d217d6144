"""How closely the twins' loss curves agree, per dtype: float32 drifts (chaos, not a bug), float64 does not."""

from __future__ import annotations

import numpy as np

from shared.report.common import Page, curve, first_cfg, table

F64_TOL = 1e-9  # what the float64 parity tests hold whole runs to (tests/test_parity.py)

TEXT = (
    "Both twins start from the same weights and see the same batches, so any difference between their "
    "curves comes from rounding: the frameworks sum in different orders, and the results differ in the last "
    "bits. In float32 training amplifies those bits (a chaotic system: the same happens when one weight "
    "changes by 1e-7), so curves that agree to ~1e-6 for the first hundred steps drift apart to ~1e-3-1e-2 "
    "over an epoch while keeping the same statistics. In float64 the first differences are ~1e9 times "
    "smaller and whole runs stay together: that is the proof that the two implementations compute the same "
    "algorithm."
)


def section(page: Page) -> list[str]:
    rows = []
    for recs in page.pairs.values():
        d = max_curve_diff(recs)
        if d is not None:
            rows.append((first_cfg(recs), d))
    if not rows:
        return []
    md = ["## Agreement of the twins", "", TEXT, ""]
    summary = []
    for dtype in ("float32", "float64"):
        diffs = [d for cfg, d in rows if cfg.dtype == dtype]
        if diffs:
            summary.append([dtype, len(diffs), f"{np.median(diffs):.2g}", f"{max(diffs):.2g}"])
    md += [
        table(
            ["dtype", "configurations", "median max \\|Δ loss\\|", "largest max \\|Δ loss\\|"],
            summary,
        ),
        "",
    ]
    f64 = sorted(((cfg, d) for cfg, d in rows if cfg.dtype == "float64"), key=lambda cd: -cd[1])
    if f64:
        worst = f64[0][1]
        verdict = "within" if worst <= F64_TOL else "**beyond**"
        md += [
            f"float64: the largest max |Δ| over whole runs is {worst:.2g}, {verdict} the tests' {F64_TOL:g}.",
            "",
        ]
        md += [
            table(
                ["float64 configuration", "steps", "max \\|Δ loss\\| (torch − JAX)"],
                [
                    [cfg.describe(brief=True), f"{cfg.epochs * cfg.steps_per_epoch}", f"{d:.2g}"]
                    for cfg, d in f64[:20]
                ],
            ),
            "",
        ]
    return md


def max_curve_diff(recs: dict[str, dict]) -> float | None:
    """max |torch − JAX| over the stored loss curves of one configuration (steps both have, both finite),
    or None without both backends' curves."""
    if not {"torch", "jax"} <= recs.keys():
        return None
    (xt, yt), (xj, yj) = curve(recs["torch"]), curve(recs["jax"])
    n = min(len(yt), len(yj))
    if n == 0 or recs["torch"].get("loss_curve_every") != recs["jax"].get("loss_curve_every"):
        return None
    d = np.abs(yt[:n] - yj[:n])
    d = d[np.isfinite(d)]
    return float(d.max()) if d.size else None
