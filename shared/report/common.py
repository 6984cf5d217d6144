"""What every report section uses: the records grouped by configuration, small accessors, table and
number formatting, and matplotlib set up for files (no display)."""

from __future__ import annotations

import math
import pathlib
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from shared.config import Config
from shared.results import config_of

BACKENDS = ("torch", "jax")
COLORS = {"torch": "#ee4c2c", "jax": "#1a73e8"}  # PyTorch orange-red, JAX blue


def pairs_of(records: list[dict]) -> dict[str, dict[str, dict]]:
    """config key -> {backend: record}; the last record of a (config, backend) wins."""
    out: dict[str, dict[str, dict]] = defaultdict(dict)
    for r in records:
        out[config_of(r).key()][r["backend"]] = r
    return out


@dataclass
class Page:
    """What a section reads (the records, grouped) and where it writes its figures."""

    records: list[dict]
    out: pathlib.Path
    pairs: dict[str, dict[str, dict]] = field(init=False)
    backends: list[str] = field(init=False)  # those present, torch first

    def __post_init__(self) -> None:
        self.pairs = pairs_of(self.records)
        self.backends = [b for b in BACKENDS if any(r["backend"] == b for r in self.records)]

    @property
    def oks(self) -> list[dict]:
        return [r for r in self.records if ok(r)]


def first_cfg(recs: dict[str, dict]) -> Config:
    """The config of a {backend: record} pair (both backends share it)."""
    return config_of(next(iter(recs.values())))


def ok(rec: dict | None) -> bool:
    return rec is not None and rec["status"] == "ok" and bool(rec["epochs"])


def final_acc(rec: dict) -> float:
    return rec["epochs"][-1]["test_accuracy"]


def acc_at(rec: dict, epoch: int) -> float | None:
    for e in rec["epochs"]:
        if e["epoch"] == epoch:
            return e["test_accuracy"]
    return None


def curve(rec: dict) -> tuple[np.ndarray, np.ndarray]:
    """(step numbers, training losses) of a record's stored loss curve; None (non-finite) -> NaN."""
    every = rec.get("loss_curve_every", 1) or 1
    y = np.array([np.nan if v is None else v for v in rec["loss_curve"]], dtype=float)
    return np.arange(1, len(y) + 1) * every, y


def smooth(y: np.ndarray, k: int) -> np.ndarray:
    if k <= 1 or len(y) < k:
        return y
    return np.convolve(y, np.ones(k) / k, mode="valid")


def arch(cfg: Config) -> str:
    return f"{cfg.hidden_layers}x{cfg.hidden_size}"


def arch_order(a: str) -> tuple[int, ...]:
    """Sort key of an arch() string: layers, then hidden size, as numbers."""
    return tuple(map(int, a.split("x")))


def table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def plural(n: int, word: str) -> str:
    """ "1 configuration", "4 configurations": a single run's report must not say "1 configurations"."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def pct(x: float | None) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.2f}"


def plt():
    """matplotlib.pyplot on the file-only Agg backend (reports are built on headless machines)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as pyplot

    return pyplot


def save(fig, path: pathlib.Path, dpi: int, tight: bool = True) -> None:
    if tight:
        fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt().close(fig)
