"""The one record a run returns (a line of results.jsonl), built alike by both twins.

Both twins call `make_record`, so the keys never drift apart; comparison/results.py writes and
reads the records (docs/results-format.md).
"""

from __future__ import annotations

import math
import platform
from typing import Any

import numpy as np

from shared.config import Config
from shared.data import Dataset

STATUSES = ("ok", "diverged", "error")


def make_record(
    *,
    backend: str,
    cfg: Config,
    data: Dataset | None,
    status: str,
    epochs: list[dict],
    loss_curve: list[float],
    timing: dict,
    wall_s: float,
    device: str,
    versions: dict[str, str],
    error: str | None = None,
    engine: str = "loop",
    group: dict | None = None,
    compiled: dict | None = None,
) -> dict[str, Any]:
    """The one result object. `epochs`: [{epoch, train_loss, test_loss, test_accuracy}, ...].

    `engine`: "loop" (impls/*/train.py, one run at a time) or "sweep" (impls/*/sweep.py, a group of
    members at once); `group`: for the sweep, {key, members, index, group_step_time_us}, else None;
    `compiled`: torch.compile's counts, {mode, graphs, graph_breaks, recompiles}, else None.
    """
    assert status in STATUSES, status
    curve, every = downsample(loss_curve, digits=17 if cfg.dtype == "float64" else 7)
    return {
        "backend": backend,
        "engine": engine,
        "group": group,
        "config": cfg.to_dict(),
        "status": status,
        "error": error,
        "epochs": epochs,
        "loss_curve": curve,
        "loss_curve_every": every,
        "steps": len(loss_curve),
        "step_time_us": timing.get("step_time_us"),
        "samples_per_s": timing.get("samples_per_s"),
        # {p10, p50, p90, windows} µs/step, or None
        "step_time_spread": timing.get("step_time_spread"),
        "warmup_s": timing.get("warmup_s"),  # compile and warm-up, timed apart from steady state
        "train_s": timing.get("train_s"),
        "compiled": compiled,
        "wall_s": wall_s,
        "device": device,
        "versions": {"python": platform.python_version(), "numpy": np.__version__, **versions},
        "dataset": {"name": data.name, "md5": data.md5}
        if data is not None
        else {"name": cfg.dataset},
    }


def epoch_entry(epoch: int, losses: np.ndarray, test_loss: float, test_accuracy: float) -> dict:
    """One item of a record's "epochs", for 0-based `epoch`: its number from 1, the mean of its step
    `losses` (summed in float64), the test loss and the test accuracy (a fraction)."""
    return {
        "epoch": epoch + 1,
        "train_loss": float(losses.mean(dtype=np.float64)),
        "test_loss": float(test_loss),
        "test_accuracy": float(test_accuracy),
    }


def accuracy(correct, total: int, dtype: str):
    """`correct` / `total` in the run's dtype (Config.dtype), as one IEEE division.

    So a float64 run records k / 10000 exactly (8994 correct: 0.8994) and a float32 run the float32
    nearest to it (0.899399995803833). A mean on the device would not do: XLA turns the division by
    a constant N into a multiplication by 1/N, off by one unit in the last place for some k.
    `correct` is a count or a numpy array of counts; the result is alike.
    """
    return np.asarray(correct, dtype) / np.asarray(total, dtype)


def downsample(
    curve: list[float], max_points: int = 1000, digits: int = 7
) -> tuple[list[float | None], int]:
    """Every k-th loss, k the smallest stride that keeps at most `max_points` (a 432-run grid stays
    a few MB); `digits` significant digits: 7 is all a float32 holds, a float64 run keeps all 17
    (its parity with the other framework is checked to 1e-9); non-finite losses become None."""
    every = max(1, math.ceil(len(curve) / max_points))
    return [float(f"{x:.{digits}g}") if math.isfinite(x) else None for x in curve[::every]], every
