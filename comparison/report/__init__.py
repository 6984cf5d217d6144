"""Build OUT/report.md and its PNG figures from results records alone (numpy + matplotlib).

One module per section (overview, brief, loss, agreement, accuracy, seeds, convergence, variants,
speed; common.py the shared pieces): `section(page) -> list of markdown lines`, which may write
figures into `page.out`; SECTIONS is the page, in order (docs/results-format.md)."""

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
