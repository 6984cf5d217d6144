"""What a user sees while compare.py runs: the plan line, the progress bar (counted in runs, moved
per epoch by a sweep group) and the status lines (a group's step once, then each configuration).
The words are the glossary's (docs/running.md#terms): configuration, run, group, engine."""

from __future__ import annotations

import collections
import sys

from comparison.machine import shape_key
from shared.config import Config
from shared.groups import group_key


def status_line(cfg: Config, recs: dict[str, dict]) -> str:
    """A finished configuration: each backend's final test accuracy, and a loop run's µs per step
    (a sweep run's step is its group's: group_line says it once)."""
    parts = []
    for name, r in recs.items():
        if r["status"] == "ok":
            acc = r["epochs"][-1]["test_accuracy"] * 100
            loop = r.get("engine", "loop") == "loop" and r.get("step_time_us")
            parts.append(
                f"{name} {acc:.2f}%" + (f" {r['step_time_us']:.0f} µs/step" if loop else "")
            )
        else:
            parts.append(f"{name} {r['status'].upper()}")
    return f"{cfg.describe()} | " + " | ".join(parts)


def group_line(cfg: Config, backend: str, group: dict) -> str:
    """A sweep group back from one backend: one step trained all its configurations together, and
    took this long (the record's group_step_time_us)."""
    step = group.get("group_step_time_us")
    return (
        f"[group] {backend} {shape_key(cfg)} {cfg.dataset} epochs={cfg.epochs} seed={cfg.seed}: "
        f"{plural(group.get('members', 1), 'configuration')} trained together, one step training "
        "all of them" + (f" | {step:.0f} µs per group step" if step else "")
    )


class Status:
    """Status lines (stdout, or above the progress bar): a sweep group's step once per backend as
    it comes back ("[group] torch 1x500 b100 ...: 16 configurations trained together ... | 39294 µs
    per group step"), then one line per configuration once every backend it runs on is back
    ("CONFIG | torch 97.86% 5773 µs/step | jax 97.88% 2065 µs/step"; µs/step for loop runs only)."""

    def __init__(self, todo: list[tuple[Config, str]], bar):
        self.bar, self.say = bar, (bar.write if bar else print)
        self.waiting = collections.Counter(cfg.key() for cfg, _ in todo)
        self.back: dict[str, dict[str, dict]] = collections.defaultdict(dict)
        self.groups_said: set[tuple] = set()

    def add(self, cfg: Config, backend: str, record: dict) -> None:
        group = record.get("group") or {}
        said = (backend, group.get("key"), group.get("group_step_time_us"))
        if record.get("engine") == "sweep" and group and said not in self.groups_said:
            self.groups_said.add(said)
            self.say(group_line(cfg, backend, group))
        back = self.back[cfg.key()]
        back[backend] = record
        if len(back) == self.waiting[cfg.key()]:
            self.say(status_line(cfg, self.back.pop(cfg.key())))


def say_plan(todo: list, units: list, engine: str) -> None:
    """What is about to train, in the words of the report: runs, configurations, groups."""
    if not todo:
        return
    configs = len({c.key() for c, _ in todo})
    groups = len({group_key(u.configs[0]) for u in units})
    how = (
        f"the sweep engine, {plural(groups, 'group')} (one step trains a group's configurations "
        "together)"
        if engine == "sweep"
        else "the loop engine, one run at a time"
    )
    print(
        f"[compare] {plural(len(todo), 'run')} to train ({plural(configs, 'configuration')} x "
        f"{plural(len({b for _, b in todo}), 'backend')}) with {how}",
        file=sys.stderr,
    )


class RunBar:
    """The progress bar, counted in runs. A sweep group moves it after each epoch (its share of the
    group's runs), so that a group which trains for minutes moves it; a loop run counts when it
    finishes. Told by the local executor (start_unit, epoch) and by train_and_write (unit_done)."""

    def __init__(self, total: int):
        from tqdm import tqdm

        fmt = "{l_bar}{bar}| {n:.1f}/{total_fmt} runs [{elapsed}<{remaining}]"
        self.bar = tqdm(total=total, dynamic_ncols=True, file=sys.stderr, bar_format=fmt)
        self.what, self.within = "", 0.0

    def start_unit(self, what: str) -> None:
        self.what, self.within = what, 0.0
        self.bar.set_description(what)

    def epoch(self, done: int, epochs: int, members: int) -> None:
        """A sweep part of `members` configurations finished epoch `done` of `epochs`."""
        self.within += members / epochs
        self.bar.update(members / epochs)
        self.bar.set_description(f"{self.what}, epoch {done}/{epochs}")

    def unit_done(self, runs: int) -> None:
        """A unit's `runs` are back: what its epochs did not count yet (a group stopped early)."""
        self.bar.update(runs - self.within)
        self.within = 0.0

    def write(self, line: str) -> None:
        self.bar.write(line)

    def close(self) -> None:
        self.bar.close()


def count_line(runs: list[Config], backend: str) -> str:
    """ "432 configurations, 864 runs": a run is one configuration on one backend."""
    n = len(runs) * (2 if backend == "both" else 1)
    return f"{plural(len(runs), 'configuration')}, {plural(n, 'run')}"


def plural(n: int, word: str) -> str:
    """ "1 configuration", "4 configurations": a one-run report must not say "1 configurations"."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"
