"""How closely the twins' loss curves agree, per dtype and learning rate: float32 drifts (chaos,
not a bug), float64 does not. Configurations where a twin did not learn or blew up are left out."""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from comparison.progress import plural
from comparison.report.common import Page, curve, first_cfg, learned, table
from comparison.report.loss import DRIFT, DRIFT_TEXT
from shared.config import Config

F64_TOL = 1e-9  # what the float64 parity tests hold whole runs to (tests/test_parity.py)
BLEW_UP = 10.0  # a training loss above this many times the run's first one: the run blew up

# Why float32 curves part is explained once, under Loss (loss.DRIFT_TEXT); here only where the
# page has no such paragraph (a reference run of one backend).
POINTER = (
    "Why float32 curves drift apart while float64 ones stay together: see Loss. This table "
    "measures it per dtype and learning rate; in float64 whole runs agreeing to ~1e-9 is the "
    "proof that the two implementations compute the same algorithm."
)
MEASURE = (
    "Max |Δ loss| is the largest |torch − JAX| between the two stored training-loss curves of a "
    "configuration, step by step."
)


def section(page: Page) -> list[str]:
    compared, left_out = split(page.pairs)
    if not left_out:  # every configuration split weighs, compared or not, has a row
        return []
    why = (
        POINTER
        if DRIFT in page.explained
        else DRIFT_TEXT.replace("the lower panel shows", "Loss shows")
    )
    md = ["## Agreement of the twins", "", why, "", MEASURE, "", _left_out_text(left_out), ""]
    md += [_table(compared, left_out), ""]
    return md + _float64(compared)


def split(pairs) -> tuple[list[tuple[Config, float]], dict[tuple[str, float], list]]:
    """(config, max |Δ loss|) of the configurations both twins learned without blowing up, and
    (dtype, lr) -> [left out as did not learn or did not finish, left out as blew up, the largest
    max |Δ loss| of those left out]."""
    compared = []
    left_out: dict[tuple[str, float], list] = defaultdict(lambda: [0, 0, 0.0])
    for recs in pairs.values():
        d = max_curve_diff(recs)
        if d is None:
            continue
        cfg = first_cfg(recs)
        row = left_out[(cfg.dtype, cfg.learning_rate)]  # every (dtype, lr) gets a row
        if not all(learned(r) for r in recs.values()):
            row[0] += 1
        elif any(blew_up(r) for r in recs.values()):
            row[1] += 1
        else:
            compared.append((cfg, d))
            continue
        row[2] = max(row[2], d)
    return compared, left_out


def blew_up(rec: dict) -> bool:
    """A stored training loss above BLEW_UP times the first: Adam at lr 1 sends losses to 1e10
    before some runs recover; their |Δ loss| measures the blow-up, not the twins."""
    _, y = curve(rec)
    y = y[np.isfinite(y)]
    return bool(y.size) and float(y.max()) > BLEW_UP * abs(float(y[0]))


def _left_out_text(left_out: dict[tuple[str, float], list]) -> str:
    stuck, blown = (sum(v[i] for v in left_out.values()) for i in (0, 1))
    if not stuck and not blown:
        return "Every configuration both twins ran is compared."
    peak = max(v[2] for v in left_out.values())
    return (
        f"Left out: {plural(stuck, 'configuration')} where a twin did not learn (or did not "
        f"finish) and {blown} where a twin's training loss blew up (rose above {BLEW_UP:g}x its "
        f"first value) and came back. Their max |Δ loss| (up to {peak:.2g}) measures how far the "
        "losses ran off, not how closely the twins agree."
    )


def _table(compared: list[tuple[Config, float]], left_out: dict) -> str:
    rows = []
    for dtype, lr in sorted(left_out, key=lambda k: (k[0], -k[1])):
        diffs = [d for cfg, d in compared if (cfg.dtype, cfg.learning_rate) == (dtype, lr)]
        stats = [f"{np.median(diffs):.2g}", f"{max(diffs):.2g}"] if diffs else ["-", "-"]
        stuck, blown, _ = left_out[(dtype, lr)]
        rows.append([dtype, f"{lr:g}", len(diffs)] + stats + [stuck, blown])
    header = ["dtype", "lr", "compared", "median max \\|Δ loss\\|", "largest max \\|Δ loss\\|"]
    return table(header + ["left out: did not learn", "left out: blew up"], rows)


def _float64(compared: list[tuple[Config, float]]) -> list[str]:
    f64 = sorted(((c, d) for c, d in compared if c.dtype == "float64"), key=lambda cd: -cd[1])
    if not f64:
        return []
    worst = f64[0][1]
    verdict = "within" if worst <= F64_TOL else "**beyond**"
    rows = [[c.describe(brief=True), f"{c.epochs * c.steps_per_epoch}", f"{d:.2g}"] for c, d in f64]
    return [
        f"float64: the largest max |Δ| over whole runs is {worst:.2g}, {verdict} the tests' "
        f"{F64_TOL:g}.",
        "",
        table(["float64 configuration", "steps", "max \\|Δ loss\\| (torch − JAX)"], rows[:20]),
        "",
    ]


def max_curve_diff(recs: dict[str, dict]) -> float | None:
    """max |torch − JAX| over the stored loss curves of one configuration (steps both have, both
    finite), or None without both backends' curves."""
    if not {"torch", "jax"} <= recs.keys():
        return None
    (_, yt), (_, yj) = curve(recs["torch"]), curve(recs["jax"])
    n = min(len(yt), len(yj))
    if n == 0 or recs["torch"].get("loss_curve_every") != recs["jax"].get("loss_curve_every"):
        return None
    d = np.abs(yt[:n] - yj[:n])
    d = d[np.isfinite(d)]
    return float(d.max()) if d.size else None
