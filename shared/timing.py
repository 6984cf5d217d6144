"""One way to time a training loop, the same in both backends.

Frameworks run asynchronously on a GPU (JAX always dispatches asynchronously),
so a clock read after a step measures the *launch*, not the work. `StepClock`
synchronises only where it has to: once after the very first step (whose time,
reported as `compile_s`, holds JIT compilation / CUDA warm-up) and once at each
epoch's end. Syncing after every step would defeat the async dispatch we are
trying to measure. Evaluation happens between `end_epoch` and the next
`start_epoch`, so it never counts as step time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


class StepClock:
    def __init__(self, sync: Callable[[Any], Any]):
        self.sync = sync  # blocks until `value` (the last step's output) is computed
        self.compile_s: float | None = None
        self.steady_s = 0.0
        self.steady_steps = 0
        self._t0 = 0.0
        self._steps = 0

    def start_epoch(self) -> None:
        self._t0 = time.perf_counter()
        self._steps = 0

    def after_step(self, value: Any) -> None:
        if self.compile_s is None:  # the very first step: compile / warm-up, reported apart
            self.sync(value)
            self.compile_s = time.perf_counter() - self._t0
            self._t0 = time.perf_counter()
            return
        self._steps += 1

    def record_compile(self, seconds: float) -> None:
        """For engines that compile a whole epoch ahead of time (impls/*/sweep.py): that time is the
        warm-up, reported apart as `compile_s`, and every step after it counts as steady."""
        self.compile_s = seconds

    def add_steps(self, count: int) -> None:
        """`count` steps that ran as one call (a scanned epoch), after `record_compile`."""
        self._steps += count

    def end_epoch(self, value: Any) -> None:
        self.sync(value)
        self.steady_s += time.perf_counter() - self._t0
        self.steady_steps += self._steps

    def summary(self, batch_size: int) -> dict[str, float | None]:
        us = 1e6 * self.steady_s / self.steady_steps if self.steady_steps else None
        return {
            "compile_s": self.compile_s,
            "step_time_us": us,
            "samples_per_s": batch_size * 1e6 / us if us else None,
            "train_s": self.steady_s + (self.compile_s or 0.0),
        }
