"""One way to time a training loop, the same in both backends.

Frameworks run asynchronously on a GPU (JAX always dispatches asynchronously),
so a clock read after a step measures the *launch*, not the work. `StepClock`
synchronises only where it has to: once after the very first step (whose time,
reported as `warmup_s`, holds JIT compilation / CUDA warm-up) and once at each
epoch's end. Syncing after every step would defeat the async dispatch we are
trying to measure. Evaluation happens between `end_epoch` and the next
`start_epoch`, so it never counts as step time.

The spread: a mean hides a machine that was busy for half the run. The clock also
synchronises every WINDOW steps (a drained queue once per 50 steps costs about one
step's latency, well under 2 %) and keeps each window's µs/step; `summary` gives
their 10th, 50th and 90th percentiles. A p90/p10 far above 1 means the timings are noisy.
An engine that runs a whole epoch as one call (add_steps) has one window per epoch.
"""

from __future__ import annotations

import contextlib
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
