"""One way to time a training loop, the same in both backends, and torch's threads set before it
loads.

`StepClock` times the first step apart (`warmup_s`: compilation, warm-up) and synchronises only
once per epoch and per window of WINDOW steps, because a sync after every step would defeat the
asynchronous dispatch being measured (docs/timing.md)."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np

WINDOW = 50  # steps per timed window of the spread


class StepClock:
    def __init__(self, sync: Callable[[Any], Any]):
        self.sync = sync  # blocks until `value` (the last step's output) is computed
        self.warmup_s: float | None = (
            None  # compile and warm-up (the first step), timed apart from steady state
        )
        self.steady_s = 0.0
        self.steady_steps = 0
        self._t0 = 0.0
        self._steps = 0
        self.windows_us: list[float] = []  # µs/step of each WINDOW-step window
        self._window_t0 = 0.0
        self._scanned = False  # steps come as whole epochs (add_steps): one window per epoch

    def start_epoch(self) -> None:
        self._t0 = self._window_t0 = time.perf_counter()
        self._steps = 0

    def after_step(self, value: Any) -> None:
        if self.warmup_s is None:  # the very first step: compile / warm-up, reported apart
            self.sync(value)
            self.warmup_s = time.perf_counter() - self._t0
            self._t0 = self._window_t0 = time.perf_counter()
            return
        self._steps += 1
        if self._steps % WINDOW == 0:
            self.sync(value)
            now = time.perf_counter()
            self.windows_us.append(1e6 * (now - self._window_t0) / WINDOW)
            self._window_t0 = now

    @contextlib.contextmanager
    def epoch(self, step: Callable):
        """Times one epoch of the loop: yields `step` followed by after_step at every call; at the
        end, synced on its last output, end_epoch."""
        last = []

        def timed_step(*args):
            last[:] = [step(*args)]
            self.after_step(last[0])
            return last[0]

        self.start_epoch()
        yield timed_step
        self.end_epoch(last[0] if last else None)

    def record_warmup(self, seconds: float) -> None:
        """For engines that compile a whole epoch ahead of time (impls/*/sweep.py): that time is the
        warm-up, reported apart as `warmup_s`, and every step after it counts as steady."""
        self.warmup_s = seconds

    def add_steps(self, count: int) -> None:
        """`count` steps that ran as one call (a scanned epoch), after `record_warmup`."""
        self._steps += count
        self._scanned = True

    def end_epoch(self, value: Any) -> None:
        self.sync(value)
        elapsed = time.perf_counter() - self._t0
        self.steady_s += elapsed
        self.steady_steps += self._steps
        if self._scanned and self._steps:
            self.windows_us.append(1e6 * elapsed / self._steps)

    def summary(self, batch_size: int) -> dict[str, float | None]:
        us = 1e6 * self.steady_s / self.steady_steps if self.steady_steps else None
        return {
            "warmup_s": self.warmup_s,
            "step_time_us": us,
            "samples_per_s": batch_size * 1e6 / us if us else None,
            "train_s": self.steady_s + (self.warmup_s or 0.0),
            "step_time_spread": spread(self.windows_us),
        }


def spread(windows_us: list[float]) -> dict[str, float] | None:
    """p10 / p50 / p90 of the windows' µs/step and how many windows there were (None: no window)."""
    if not windows_us:
        return None
    p10, p50, p90 = np.percentile(windows_us, [10, 50, 90])
    return {
        "p10": round(float(p10), 1),
        "p50": round(float(p50), 1),
        "p90": round(float(p90), 1),
        "windows": len(windows_us),
    }


def spread_share(group_spread: dict[str, float] | None, members: int) -> dict[str, float] | None:
    """A group's spread as each of its `members` members' share (µs divided by M, as step times)."""
    if group_spread is None:
        return None
    return {
        **{k: round(group_spread[k] / members, 1) for k in ("p10", "p50", "p90")},
        "windows": group_spread["windows"],
    }


# ------------------------------------------------------------------ threads, set before torch loads


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask: a container's or taskset's limit), not the
    machine's count that os.cpu_count() and OpenMP's default see."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # macOS has no affinity mask
        return os.cpu_count() or 1


def thread_env(environ: dict | None = None) -> dict[str, str]:
    """OpenMP settings for torch's CPU threads that the user has not set: one thread per CPU this
    process may use, and waiting threads that sleep rather than spin (on a shared CPU a spinning
    team stalls whenever one of its threads is descheduled; measured in benchmarks/README.md).
    JAX's CPU backend does not use OpenMP, so this changes torch only."""
    environ = os.environ if environ is None else environ
    wanted = {"OMP_NUM_THREADS": str(available_cpus()), "OMP_WAIT_POLICY": "PASSIVE"}
    return {k: v for k, v in wanted.items() if k not in environ}


def configure_threads() -> dict[str, str]:
    """Set thread_env() in this process's environment (before any framework import); what it set."""
    changes = thread_env()
    os.environ.update(changes)
    return changes
