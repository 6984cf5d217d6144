"""One results format: JSONL, one JSON object per finished run per backend.

`make_record` builds the object both backends return, so the keys never drift
apart. `ResultsFile` appends whole lines: each line is written with a single
`os.write` on an `O_APPEND` descriptor and fsync'd, so a kill leaves either the
whole line or none of it; a line cut short by a power loss is skipped (and
reported) on read. An exclusive `flock` on `results.jsonl.lock` keeps a second
process off the same file: it is refused with a clear message.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import pathlib
import platform
import sys
from typing import Any

import numpy as np

from shared.config import Config
from shared.data import Dataset

STATUSES = ("ok", "diverged", "error")


def make_record(*, backend: str, cfg: Config, data: Dataset | None, status: str, epochs: list[dict],
                loss_curve: list[float], timing: dict, wall_s: float, device: str,
                versions: dict[str, str], error: str | None = None, engine: str = "loop",
                group: dict | None = None) -> dict[str, Any]:
    """The one result object. `epochs`: [{epoch, train_loss, test_loss, test_accuracy}, ...].

    `engine`: "loop" (impls/*/train.py, one run at a time) or "sweep" (impls/*/sweep.py, a group of
    members at once); `group`: for the sweep, {key, members, index, group_step_time_us}, else None.
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
        "compile_s": timing.get("compile_s"),
        "train_s": timing.get("train_s"),
        "wall_s": wall_s,
        "device": device,
        "versions": {"python": platform.python_version(), "numpy": np.__version__, **versions},
        "dataset": {"name": data.name, "md5": data.md5} if data is not None else {"name": cfg.dataset},
    }


def downsample(curve: list[float], max_points: int = 1000, digits: int = 7) -> tuple[list[float | None], int]:
    """Every k-th loss, k the smallest stride that keeps at most `max_points` (a 432-run grid stays a
    few MB); `digits` significant digits: 7 is all a float32 holds, a float64 run keeps all 17 (its
    parity with the other framework is checked to 1e-9); non-finite losses become None."""
    every = max(1, math.ceil(len(curve) / max_points))
    return [float(f"{x:.{digits}g}") if math.isfinite(x) else None for x in curve[::every]], every


class ResultsLocked(RuntimeError):
    pass


class ResultsFile:
    """`with ResultsFile(path) as rf: rf.append(record)`; `rf.records` holds what was there before."""

    def __init__(self, path: str | os.PathLike):
        self.path = pathlib.Path(path)
        self._lock_fd: int | None = None
        self.records: list[dict] = []
        self.skipped_lines = 0

    def open(self) -> "ResultsFile":
        """Take the lock (or raise ResultsLocked) and read what is already there."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(str(self.path) + ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            self._lock_fd = None
            raise ResultsLocked(f"{self.path} is in use by another process (lock {self.path}.lock); "
                                f"wait for it or use another --out") from None
        self.records, self.skipped_lines = read_results(self.path)
        self._repair_tail()
        return self

    def _repair_tail(self) -> None:
        """A torn last line (power loss mid-write) is cut off so the next append starts clean."""
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            keep = data.rfind(b"\n") + 1
            with open(self.path, "r+b") as f:
                f.truncate(keep)
            print(f"[results] dropped a torn last line of {self.path}", file=sys.stderr)

    def append(self, record: dict) -> None:
        line = (json.dumps(record, allow_nan=False, separators=(",", ":")) + "\n").encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)  # one write of the whole line
            os.fsync(fd)
        finally:
            os.close(fd)
        self.records.append(record)

    def close(self) -> None:
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> "ResultsFile":
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()


def read_results(path: str | os.PathLike) -> tuple[list[dict], int]:
    """All complete records of a results file, and how many lines were unreadable."""
    path = pathlib.Path(path)
    if not path.exists():
        return [], 0
    records, bad = [], 0
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            bad += 1
            continue
        if isinstance(rec, dict) and "backend" in rec and "config" in rec:
            records.append(rec)
        else:
            bad += 1
    return records, bad
