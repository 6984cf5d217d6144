"""The results file: results.jsonl, one whole JSON line per finished run (shared/record.py builds
it), appended, read back and locked against a second writer.

Why: a grid of hours must survive a kill or a full disk with every finished run intact and
resumable; how a line is written whole is in `ResultsFile.append` (docs/results-format.md).
`to_dataframe` turns a file into a pandas DataFrame, one row per run.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import math
import os
import pathlib
import sys

from shared.checkpoint import run_name
from shared.config import FIELD_NAMES, Config


def config_of(record: dict) -> Config:
    """The Config a record ran (ConfigError where its "config" is not a valid one)."""
    return Config(**record["config"])


def varying(cfgs: list[Config]) -> list[str]:
    """The Config fields whose values differ among `cfgs`, in Config's order."""
    return [n for n in FIELD_NAMES if len({getattr(c, n) for c in cfgs}) > 1]


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


class ResultsLocked(RuntimeError):
    pass


class ResultsCorrupt(RuntimeError):
    """A line before the last one is not a result record: a person edited the file, or another
    program wrote into it. Refused rather than skipped, so that no finished run is silently lost."""


class WriteFailed(Exception):
    """results.jsonl could not take a record (a full disk): the grid stops, the file stays whole."""

    def __init__(self, error: OSError):
        super().__init__(str(error))
        self.error = error


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
        """Write `record` as one whole line, or raise WriteFailed leaving the file as it was: a full
        disk can take part of a write, and that part is cut off again."""
        line = (json.dumps(record, allow_nan=False, separators=(",", ":")) + "\n").encode()
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as e:
            raise WriteFailed(e) from e
        try:
            # where this line starts (we hold the lock: nobody else appends)
            size = os.fstat(fd).st_size
            try:
                written = os.write(fd, line)  # one write of the whole line
                if written != len(line):
                    raise OSError(
                        errno.ENOSPC,
                        f"{os.strerror(errno.ENOSPC)} ({written} of {len(line)} bytes written)",
                    )
                os.fsync(fd)
            except OSError as e:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, size)
                raise WriteFailed(e) from e
        finally:
            os.close(fd)
        self.records.append(record)

    def left_to_run(self, runs: list[Config], backends: list[str]) -> list[tuple[Config, str]]:
        """The (config, backend) pairs not yet finished, in the order they run: config by config,
        backends interleaved. A rerun with the same --out resumes here. A run whose last record
        is an `error` (a CUDA error, a worker killed) is not finished: it runs again."""
        last = {run_key(r): r["status"] for r in latest(self.records)}
        wanted = [(cfg, b, last.get((b, cfg.key()))) for cfg in runs for b in backends]
        todo = [(cfg, b) for cfg, b, status in wanted if status in (None, "error")]
        skipped = len(wanted) - len(todo)
        if skipped:
            print(
                f"[compare] {skipped} finished runs found in {self.path}; skipping them",
                file=sys.stderr,
            )
        retried = sum(status == "error" for *_, status in wanted)
        if retried:
            print(
                f"[compare] {retried} runs recorded as errors in {self.path}; training them again",
                file=sys.stderr,
            )
        return todo

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


# ------------------------------------------------------------------ as a pandas DataFrame

TIMINGS = ("step_time_us", "samples_per_s", "warmup_s", "train_s", "wall_s", "gemm_floor_us")


def to_dataframe(results: str | os.PathLike | list[dict]):
    """One row per run: `results` is a results.jsonl, the folder holding it (compare.py's --out),
    or its records. Needs pandas (pip install pandas); ValueError for a file with unreadable
    lines (compare.py --report names them)."""
    import pandas as pd

    if isinstance(results, list):
        records = results
    else:
        path = pathlib.Path(results)
        path = path / "results.jsonl" if path.is_dir() else path
        records, bad = scan_results(path)
        if bad:
            raise ValueError(f"{path}: line {bad[0]} is not a result record ({len(bad)} such)")
    columns = ["backend", "engine", "status", *FIELD_NAMES, "run_name", "final_test_accuracy"]
    columns += ["final_test_loss", "final_train_loss", "epochs_done", "steps", *TIMINGS]
    return pd.DataFrame([row(r) for r in records], columns=[*columns, "device", "model"])


def row(record: dict) -> dict:
    """A record's row of to_dataframe."""
    last = record["epochs"][-1] if record["epochs"] else {}
    cfg = config_of(record)  # every field, those older files lack at their defaults
    return {
        "backend": record["backend"],
        "engine": record.get("engine", "loop"),
        "status": record["status"],
        **cfg.to_dict(),
        "run_name": run_name(cfg),
        "final_test_accuracy": last.get("test_accuracy", math.nan),
        "final_test_loss": last.get("test_loss", math.nan),
        "final_train_loss": last.get("train_loss", math.nan),
        "epochs_done": len(record["epochs"]),
        "steps": record["steps"],
        **{t: record.get(t) for t in TIMINGS},
        "warmup_s": warmup_s(record),
        "device": record.get("device"),
        "model": record.get("model"),
    }
