"""Where compare.py's units of work run when they do not run in its own loop: as Ray tasks.

A *unit* is what one task trains: for the sweep engine one group's unfinished members on one
backend (shared/groups.py), for the loop engine one run on one backend. The driver (compare.py)
plans the units, puts each dataset into Ray's object store once (`ray.put`), submits every unit as
a task with its resources declared, and writes the records itself as tasks finish (`ray.wait`), in
whatever order they finish: workers never touch results.jsonl, so its lock, fsync and resume are
the local executor's.

Workers get the code, not the data files: from a checkout the repository's code (compare.py,
executors.py, shared/, impls/) is shipped as the job's `working_dir`; from an installed mlp-twins
each node must have it installed. Ray is imported lazily, so nothing else needs it.

A task that dies (worker killed, out of memory) is retried by Ray (`max_retries`); one that still
fails comes back as the exception, which compare.py records as error records naming the cause.
An exception inside training is caught in the task, exactly as the local loop catches it.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import os
import pathlib
import signal
from collections.abc import Iterator

from shared.config import Config
from shared.groups import group_runs

RAY_HINT = "pip install 'mlp-twins[ray]'"
ROOT = pathlib.Path(__file__).resolve().parent
# What a worker needs from a checkout is its Python code; results, figures and history stay here.
SHIP_EXCLUDES = [
    ".git",
    ".venv",
    ".ci",
    "runs",
    "docs",
    "benchmarks",
    "tests",
    "*.png",
    "*.jsonl",
    "__pycache__",
]
# Test-only fault injection (tests/test_ray.py): a path; the first task to create that file kills its
# own worker with SIGKILL, as the OOM killer would. Read by the driver and passed to the tasks as an
# argument, so it reaches workers that were started before it was set.
KILL_ONCE_ENV = "MLP_TWINS_TEST_KILL_ONCE"


@dataclasses.dataclass(frozen=True)
class Unit:
    backend: str
    engine: str  # "sweep": configs are one group's members; "loop": configs is one run
    configs: tuple[Config, ...]


def plan_units(
    runs: list[Config], todo: list[tuple[Config, str]], engine: str, backends: list[str]
) -> list[Unit]:
    """The unfinished (config, backend) pairs of `todo` as units, in the local executor's order."""
    left = {(c.key(), b) for c, b in todo}
    units = []
    parts = group_runs(runs) if engine == "sweep" else [[cfg] for cfg in runs]
    for part in parts:
        for backend in backends:
            mine = tuple(c for c in part if (c.key(), backend) in left)
            if mine:
                units.append(Unit(backend, engine, mine))
    return units


def import_ray():
    """The ray module, or None where it is not installed."""
    try:
        return importlib.import_module("ray")
    except ImportError:
        return None


def start(ray, address: str | None, num_cpus: int | None = None) -> bool:
    """Connect to Ray: `address` None starts a local instance, "auto" or host:port joins a cluster.
    Returns whether this call connected (and so should disconnect); an already initialised Ray
    (a test's instance, a notebook's) is used as it is. Raises ConnectionError and the like."""
    if ray.is_initialized():
        return False
    term = signal.getsignal(signal.SIGTERM)
    kwargs = {"num_cpus": num_cpus, "include_dashboard": False} if address is None else {}
    ray.init(address=address, runtime_env=runtime_env(), logging_level=logging.WARNING, **kwargs)
    # ray.init installs its own SIGTERM handler (sys.exit); compare.py's turns SIGTERM into the
    # resumable Ctrl-C path, which also cancels the outstanding tasks.
    if callable(term):
        signal.signal(signal.SIGTERM, term)
    return True


def runtime_env() -> dict | None:
    """Ship the checkout's code to the workers; an installed mlp-twins ships nothing (site-packages
    is not ours to upload: install it on every node)."""
    if not (ROOT / "pyproject.toml").is_file():
        return None
    return {"working_dir": str(ROOT), "excludes": SHIP_EXCLUDES}


def task_options(
    ray, *, gpus_per_task: float | None, cpus_per_task: float, retries: int, device: str
) -> dict:
    """Resources for every task: a GPU share where the cluster has GPUs, else CPUs. Raises ValueError
    naming the flag when the request cannot be met."""
    gpus = ray.cluster_resources().get("GPU", 0)
    if gpus_per_task is not None and not gpus:
        raise ValueError(f"--ray-gpus-per-task {gpus_per_task:g}: the Ray cluster has no GPUs")
    if device == "gpu" and not gpus:
        raise ValueError("--device gpu: the Ray cluster has no GPUs")
    options = {"num_cpus": cpus_per_task, "max_retries": retries}
    if gpus and device != "cpu":
        options["num_gpus"] = 1 if gpus_per_task is None else gpus_per_task
    # A task no node can hold would wait forever; say so now instead.
    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    if not any(
        n.get("CPU", 0) >= cpus_per_task and n.get("GPU", 0) >= options.get("num_gpus", 0)
        for n in nodes
    ):
        want = f"{cpus_per_task:g} CPUs" + (
            f" and {options['num_gpus']:g} GPU" if "num_gpus" in options else ""
        )
        raise ValueError(
            f"--ray-cpus-per-task/--ray-gpus-per-task: no node of the Ray cluster has {want} for one task"
        )
    return options


def task_device(options: dict) -> str:
    """Where a task with `options` (task_options) runs, as far as the driver can tell: "cpu", or "gpu"
    (which GPU, and its name, only the worker knows; the records of a task that died say "gpu")."""
    return "gpu" if options.get("num_gpus") else "cpu"


def run(
    ray, units: list[Unit], datasets: dict, *, device: str, log_steps: bool, options: dict
) -> Iterator[tuple[Unit, list[dict] | Exception]]:
    """Submit every unit; yield (unit, its records) or (unit, the exception that ended it) as each
    finishes. Closing the generator (Ctrl-C, SIGTERM, an error in the caller) cancels what is left."""
    refs = {
        name: ray.put(data) for name, data in datasets.items()
    }  # once each, shared by every task
    task = ray.remote(run_unit).options(**options)
    kill_once = os.environ.get(KILL_ONCE_ENV)
    pending = {
        task.remote(u, refs[u.configs[0].dataset], device, log_steps, kill_once): u for u in units
    }
    try:
        while pending:
            # A timeout, so that a signal is handled within a second rather than when a task ends.
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
            for ref in ready:
                unit = pending.pop(ref)
                try:
                    outcome = ray.get(ref)
                except ray.exceptions.RayError as e:  # retries spent, or an error outside training
                    outcome = e
                yield unit, outcome
    finally:
        for ref in pending:
            ray.cancel(
                ref, force=True
            )  # force: a running task's worker is stopped, not left training


def failure_text(e: Exception, retries: int) -> str:
    """The cause of a failed task in one line: the original exception where Ray wraps one."""
    cause = getattr(e, "cause", None) or e
    first = (str(cause).strip().splitlines() or [""])[0][:300]
    return f"{type(cause).__name__} on Ray (max_retries={retries}): {first}"


def run_unit(
    unit: Unit, data, device: str, log_steps: bool, kill_once: str | None = None
) -> list[dict]:
    """The task: train one unit in this worker and return its records (the loop's or the sweep's)."""
    if kill_once:
        _kill_once(kill_once)
    # Fractional GPUs put several tasks on one device: JAX must not grab 75% of it up front.
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    import compare  # the local executor's train_one / train_group: same error handling, same records

    # The object store hands out read-only arrays; torch.from_numpy warns on those. Labels are 0.5 MB
    # and the images are scaled into new arrays anyway, so copy the labels and leave the images shared.
    data = dataclasses.replace(
        data, train_labels=data.train_labels.copy(), test_labels=data.test_labels.copy()
    )
    args = argparse_like(device, log_steps)
    if unit.engine == "sweep":
        mod = importlib.import_module(compare.SWEEPS[unit.backend])
        return compare.train_group(mod, unit.backend, list(unit.configs), data, args)
    mod = importlib.import_module(compare.BACKENDS[unit.backend])
    return [compare.train_one(mod, unit.backend, unit.configs[0], data, args)]


def argparse_like(device: str, log_steps: bool):
    """What compare.train_one / train_group read from compare.py's parsed flags."""
    import types

    return types.SimpleNamespace(device=device, log_steps=log_steps)


def _kill_once(marker: str) -> None:
    """Test hook (KILL_ONCE_ENV): O_EXCL makes exactly one task, the first, create the marker and die."""
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
    except FileExistsError:
        return
    os.kill(os.getpid(), signal.SIGKILL)
