"""One results format: JSONL, one JSON object per finished run per backend.

`make_record` builds the object both backends return, so the keys never drift
apart. `ResultsFile` appends whole lines: each line is written with a single
`os.write` on an `O_APPEND` descriptor and fsync'd, so a kill leaves either the
whole line or none of it; a line cut short by a power loss is skipped (and
reported) on read. An exclusive `flock` on `results.jsonl.lock` keeps a second
process off the same file: it is refused with a clear message. The lock file is
deleted when the run ends (a kill -9 leaves it, harmless: a lock dies with its
process, and the next run takes it over).
"""

from __future__ import annotations

import contextlib
import errno
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


def config_of(record: dict) -> Config:
    """The Config a record ran (ConfigError where its "config" is not a valid one)."""
    return Config(**record["config"])


def run_key(record: dict) -> tuple[str, str] | None:
    """(backend, the config's key): which run a record is of; None where its config is invalid."""
    try:
        return record["backend"], config_of(record).key()
    except Exception:
        return None


def latest(records: list[dict]) -> list[dict]:
    """Each run's last record, in the order the runs first appear. A run recorded as an `error`
    is trained again by the next compare.py on the same --out, which appends its new record: the
    later line is the one that counts. Records of an invalid config are kept as they are."""
    last: dict = {}
    for i, record in enumerate(records):
        last[run_key(record) or i] = record
    return list(last.values())


def warmup_s(record: dict) -> float | None:
    """A record's compile and warm-up time. Records written before the field's rename (the committed
    docs/results/*) call it `compile_s`."""
    return record["warmup_s"] if "warmup_s" in record else record.get("compile_s")


def downsample(
    curve: list[float], max_points: int = 1000, digits: int = 7
) -> tuple[list[float | None], int]:
    """Every k-th loss, k the smallest stride that keeps at most `max_points` (a 432-run grid stays
    a few MB); `digits` significant digits: 7 is all a float32 holds, a float64 run keeps all 17
    (its parity with the other framework is checked to 1e-9); non-finite losses become None."""
    every = max(1, math.ceil(len(curve) / max_points))
    return [float(f"{x:.{digits}g}") if math.isfinite(x) else None for x in curve[::every]], every


class ResultsLocked(RuntimeError):
    pass


class ResultsCorrupt(RuntimeError):
    """A line before the last one is not a result record: a person edited the file, or another
    program wrote into it. Refused rather than skipped, so that no finished run is silently lost."""


class ResultsFile:
    """`with ResultsFile(path) as rf: rf.append(record)`; `rf.records`: what was there before."""

    def __init__(self, path: str | os.PathLike):
        self.path = pathlib.Path(path)
        self.lock_path = pathlib.Path(str(self.path) + ".lock")
        self._lock_fd: int | None = None
        self.records: list[dict] = []
        self.skipped_lines = 0

    def open(self) -> ResultsFile:
        """Take the lock (or raise ResultsLocked), drop a torn last line, read what is there (or
        raise ResultsCorrupt, lock released)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock()
        records, bad_lines = scan_results(self.path)
        torn = self._torn_tail()
        garbage = [
            n for n in bad_lines if not (torn and n == bad_lines[-1] == _line_count(self.path))
        ]
        if garbage:
            self.close()
            raise ResultsCorrupt(
                f"line {garbage[0]} of {self.path} is not a result record ({len(garbage)} such "
                f"lines); allowed: one JSON record per line: delete those lines and rerun"
            )
        if torn:
            self._repair_tail()
        self.records, self.skipped_lines = records, len(bad_lines)
        return self

    def _lock(self) -> None:
        """flock the lock file. Its inode is checked after locking: a closing process deletes the
        file, and a lock taken on the deleted inode would let two processes in."""
        while True:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise ResultsLocked(
                    f"{self.path} is in use by another process (lock {self.lock_path}); "
                    f"wait for it or use another --out"
                ) from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self.lock_path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                self._lock_fd = fd
                return
            # Deleted by its last holder between our open and our lock: take the new one.
            os.close(fd)

    def _torn_tail(self) -> bool:
        try:
            with open(self.path, "rb") as f:
                f.seek(0, os.SEEK_END)
                if f.tell() == 0:
                    return False
                f.seek(-1, os.SEEK_END)
                return f.read(1) != b"\n"
        except FileNotFoundError:
            return False

    def _repair_tail(self) -> None:
        """A torn last line (power loss mid-write) is cut off so the next append starts clean; a
        whole record that only lacks its newline gets one."""
        data = self.path.read_bytes()
        keep = data.rfind(b"\n") + 1
        try:
            complete = isinstance(json.loads(data[keep:]), dict)
        except ValueError:
            complete = False
        with open(self.path, "r+b") as f:
            if complete:
                f.seek(0, os.SEEK_END)
                f.write(b"\n")
            else:
                f.truncate(keep)
                print(f"[results] dropped a torn last line of {self.path}", file=sys.stderr)

    def append(self, record: dict) -> None:
        """Write `record` as one whole line, or raise OSError leaving the file as it was: a full
        disk can take part of a write, and that part is cut off again."""
        line = (json.dumps(record, allow_nan=False, separators=(",", ":")) + "\n").encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            size = os.fstat(
                fd
            ).st_size  # where this line starts (we hold the lock: nobody else appends)
            try:
                written = os.write(fd, line)  # one write of the whole line
                if written != len(line):
                    raise OSError(
                        errno.ENOSPC,
                        f"{os.strerror(errno.ENOSPC)} ({written} of {len(line)} bytes written)",
                    )
                os.fsync(fd)
            except OSError:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, size)
                raise
        finally:
            os.close(fd)
        self.records.append(record)

    def close(self) -> None:
        if self._lock_fd is not None:
            # While still locked: see _lock for why that is safe.
            self.lock_path.unlink(missing_ok=True)
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> ResultsFile:
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()


def scan_results(path: str | os.PathLike) -> tuple[list[dict], list[int]]:
    """All complete records of a results file, and the numbers (from 1) of its unreadable lines."""
    path = pathlib.Path(path)
    if not path.exists():
        return [], []
    records, bad = [], []
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            bad.append(number)
            continue
        if isinstance(rec, dict) and "backend" in rec and "config" in rec:
            records.append(rec)
        else:
            bad.append(number)
    return records, bad


def _line_count(path: pathlib.Path) -> int:
    return len(path.read_text(errors="replace").splitlines())
