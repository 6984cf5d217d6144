"""Build OUT/report.md and its PNG figures from results records alone (numpy + matplotlib).

The lab report had three sections (loss, accuracy, convergence); each is shown here for both
backends side by side, plus step speed. The first screen says what ran and the answer before any
table. One module per section, named for what a reader looks for:

    overview.py     what ran: configurations, backends, engine, devices, versions
    brief.py        the answer in brief: accuracy torch vs JAX, step-time ratio, runs that did not
                    learn
    loss.py         the reference run's curves and their torch-JAX difference, small multiples
    agreement.py    how closely the twins' loss curves agree, per dtype and learning rate
    accuracy.py     accuracy after k epochs, heatmaps, best runs, torch-minus-JAX distribution
    seeds.py        framework difference vs seed spread (configurations run with several seeds)
    convergence.py  epochs to thresholds, runs that diverged, failed or did not learn
    variants.py     effect of the softmax output and of LeakyReLU (paired runs)
    speed.py        µs/step, torch/JAX ratio, compile time
    common.py       grouping, accessors, table formatting, matplotlib

A section is a function `section(page) -> list of markdown lines` that may write figures into
`page.out`; SECTIONS is the page, in order. To add one, write a module with `section` and list
it. Every figure is a plain PNG with a title, axis labels and a legend, linked from report.md.
"""

from __future__ import annotations

import pathlib

from comparison.report import (
    accuracy,
    agreement,
    brief,
    convergence,
    loss,
    overview,
    seeds,
    speed,
    variants,
)
from comparison.report.common import Page

SECTIONS = (
    overview.section,
    brief.section,
    loss.section,
    agreement.section,
    accuracy.section,
    seeds.section,
    convergence.section,
    variants.section,
    speed.section,
)


def write_report(records: list[dict], out: pathlib.Path) -> pathlib.Path:
    """Write OUT/report.md (atomically: a reader never sees half a page) and its figures."""
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    page = Page(records, out)
    md = [line for section in SECTIONS for line in section(page)]
    path = out / "report.md"
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text("\n".join(md))
    tmp.replace(path)
    return path
