"""The page's head: what was run, on what, with which versions, and how many runs finished."""

from __future__ import annotations

from shared.report.common import Page, plural, table


def section(page: Page) -> list[str]:
    records = page.records
    devices = sorted({f"{r['backend']}: {r['device']}" for r in records})
    versions = {}
    for r in records:
        versions.update(r.get("versions", {}))
    md = [
        "# mlp-twins: PyTorch vs JAX report",
        "",
        f"{plural(len(page.pairs), 'configuration')}, {plural(len(records), 'result')} ({', '.join(page.backends)}). "
        f"Dataset: {records[0]['dataset'].get('name')}.",
        "",
        "Devices: " + "; ".join(devices) + ".",
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in sorted(versions.items())) + ".",
        "",
    ]
    counts = [
        [b]
        + [
            sum(1 for r in records if r["backend"] == b and r["status"] == s)
            for s in ("ok", "diverged", "error")
        ]
        for b in page.backends
    ]
    return md + [table(["backend", "ok", "diverged", "error"], counts), ""]
