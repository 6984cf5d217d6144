"""The sweep engine's bookkeeping, the same for both twins: each member's numbers, as the loop
(train.py) would have recorded them on its own.

`GroupRecords` cuts a member's loss curve where the loop would have stopped, judges it as the loop
does ("diverged" once a loss is NaN/inf), logs the loop's lines and makes one record per member
(shared/record.py). Nothing here knows a framework."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from shared.config import Config
from shared.data import Dataset
from shared.groups import group_key
from shared.record import epoch_entry, make_record
from shared.timing import StepClock, spread_share


@dataclass
class GroupRecords:
    """The records of one group's members, filled in epoch by epoch (so not frozen).

    `log_every` is the loop's LOG_EVERY: the loop reads the loss, and may stop, only every
    `log_every` steps, so that is where a member's curve is cut.
    """

    backend: str  # "torch" | "jax"
    cfgs: list[Config]  # the members, in order
    log: Callable[[str], object]
    log_every: int
    curves: list[list[float]] = field(init=False)  # per member: its step losses so far
    epochs: list[list[dict]] = field(init=False)  # per member: its finished epochs (epoch_entry)
    status: list[str] = field(init=False)  # per member: "ok" | "diverged"

    def __post_init__(self) -> None:
        self.curves = [[] for _ in self.cfgs]
        self.epochs = [[] for _ in self.cfgs]
        self.status = ["ok"] * len(self.cfgs)

    def record_epoch(
        self, epoch: int, losses: np.ndarray, test_loss: np.ndarray, test_accuracy: np.ndarray
    ) -> np.ndarray:
        """Add 0-based `epoch`: losses (steps, M), test loss and accuracy (M,) of every member.

        Each member still alive is cut where train.py would have stopped, judged and logged as
        train.py does. Returns who is alive after this epoch, (M,) bool.
        """
        alive = np.array([s == "ok" for s in self.status])
        for j, cfg in enumerate(self.cfgs):
            if not alive[j]:
                continue
            header = f"[{_name(cfg)}] Epoch [{epoch + 1}/{cfg.epochs}]"
            curve = losses[:, j]
            log_steps = range(self.log_every - 1, len(curve), self.log_every)
            stops = [i for i in log_steps if not math.isfinite(curve[i])]
            curve = curve[: stops[0] + 1] if stops else curve  # train.py stops after that log line
            self.curves[j].extend(curve.tolist())
            if not (np.isfinite(curve).all() and math.isfinite(test_loss[j])):
                self.status[j], alive[j] = "diverged", False
                self.log(
                    f"{header}: the loss is no longer finite after {len(self.curves[j])} steps; "
                    "stopping"
                )
                continue
            self.epochs[j].append(epoch_entry(epoch, curve, test_loss[j], test_accuracy[j]))
            self.log(
                f"{header}, Test Loss: {test_loss[j]:.4f}, "
                f"Test Accuracy: {100 * test_accuracy[j]:.2f} %"
            )
        return alive

    def records(
        self,
        data: Dataset,
        clock: StepClock,
        wall_s: float,
        device: str,
        versions: dict,
        compiled: dict | None = None,
    ) -> list[dict]:
        """One make_record per member, engine "sweep"; times are the group's divided by M.
        `compiled`: the group's torch.compile counts (runtime.record_fields), else None."""
        count, group = len(self.cfgs), clock.summary(self.cfgs[0].batch_size)
        share = _member_share(group, count, self.cfgs[0].batch_size)
        return [
            make_record(
                backend=self.backend,
                cfg=cfg,
                data=data,
                status=self.status[j],
                epochs=self.epochs[j],
                loss_curve=self.curves[j],
                timing=share,
                wall_s=wall_s / count,
                device=device,
                versions=versions,
                compiled=compiled,
                engine="sweep",
                group={
                    "key": group_key(cfg),
                    "members": count,
                    "index": j,
                    "group_step_time_us": group["step_time_us"],
                },
            )
            for j, cfg in enumerate(self.cfgs)
        ]


def _member_share(group: dict, count: int, batch_size: int) -> dict:
    """A group's timing (StepClock.summary) as the share of each of its `count` members."""
    step_us = group["step_time_us"] / count if group["step_time_us"] else None
    return {
        "warmup_s": group["warmup_s"],
        "train_s": group["train_s"] / count,
        "step_time_us": step_us,
        "samples_per_s": batch_size * 1e6 / step_us if step_us else None,
        "step_time_spread": spread_share(group["step_time_spread"], count),
    }


def _name(cfg: Config) -> str:
    """A member's name in log lines: what sets it apart in its group."""
    return f"lr={cfg.learning_rate:g} {cfg.activation} {cfg.output}"
