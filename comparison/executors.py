"""Units of work and the executors that train them: `run_local` here, one after another, or
`run_ray`, each unit a Ray task on this machine or a cluster; Ray's flags and checks live here too.

Both train a unit with the same `train_unit`, so a unit gives the same records wherever it trains;
compare.py alone writes them. Terms: docs/running.md; Ray: docs/scaling.md.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import os
import pathlib
import signal
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Iterator

from comparison.machine import load_now, shape_key
from shared.checkpoint import model_path
from shared.cli import fail
from shared.config import Config
from shared.groups import group_runs
from shared.record import make_record

RAY_HINT = "pip install 'mlp-twins[ray]'"
ROOT = pathlib.Path(__file__).resolve().parents[1]  # the checkout, shipped to Ray's workers
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
# JAX grabs 75% of a GPU's memory when it starts unless told not to; torch in the same process
# (or other tasks on a shared GPU) would then find none. compare.py sets it for its own process,
# runtime_env for Ray's workers.
PREALLOCATE = "XLA_PYTHON_CLIENT_PREALLOCATE"


@dataclasses.dataclass(frozen=True)
class Unit:
    backend: str  # "torch" | "jax"
    engine: str  # "sweep": configs are one group's members; "loop": configs is one run
    configs: tuple[Config, ...]


@dataclasses.dataclass(frozen=True)
class Context:
    """What every unit of one compare.py command shares, handed to the executor with the units."""

    datasets: dict  # dataset name -> shared.data.Dataset, loaded and checked
    device: str  # --device: auto | cpu | gpu, resolved by each backend where it trains
    log_steps: bool  # also print the tutorial's log (Epoch [1/5], Step [100/600], Loss: ...)
    # Shape (machine.shape_key) -> its GEMM floor in µs: what the bare matrix products of one step
    # take on this CPU (comparison/machine.py). Local CPU runs only: a worker's CPU or a GPU is not
    # the one measured.
    floors: dict = dataclasses.field(default_factory=dict)
    bar: object = None  # progress.RunBar (None with --quiet): told what trains now, epoch by epoch
    # --save-models: where each finished run's model goes (shared.checkpoint.model_path), else None
    models: pathlib.Path | None = None


def plan_units(
    runs: list[Config], todo: list[tuple[Config, str]], engine: str, backends: list[str]
) -> list[Unit]:
    """The unfinished (config, backend) pairs of `todo` as units, a run's (loop) or a group's
    (sweep) backends one after another, in the order of `runs`."""
    left = {(c.key(), b) for c, b in todo}
    units = []
    parts = group_runs(runs) if engine == "sweep" else [[cfg] for cfg in runs]
    for part in parts:
        for backend in backends:
            mine = tuple(c for c in part if (c.key(), backend) in left)
            if mine:
                units.append(Unit(backend, engine, mine))
    return units


# ------------------------------------------------------------------ one unit, in this process


def backend_module(backend: str, engine: str):
    """impls/<twin>/train.py (loop engine) or sweep.py (sweep engine). Imported when asked for, so
    that a missing framework is an ImportError here, which compare.py turns into one line."""
    if backend == "torch":
        from impls.torch_mlp import sweep, train
    elif backend == "jax":
        from impls.flax_mlp import sweep, train
    else:
        raise ValueError(f"backend: got {backend!r}; allowed: torch | jax")
    return sweep if engine == "sweep" else train


def runtime_module(backend: str):
    """impls/<twin>/runtime.py: the twin's devices, precision and versions."""
    if backend == "torch":
        from impls.torch_mlp import runtime
    elif backend == "jax":
        from impls.flax_mlp import runtime
    else:
        raise ValueError(f"backend: got {backend!r}; allowed: torch | jax")
    return runtime


def device_name(backend: str, device: str, strict: bool = False) -> str:
    """Where `backend` runs `device` (auto | cpu | gpu), spelled as its records spell it ("cpu",
    "gpu:0 NAME"); where it cannot be resolved (a missing GPU), the request itself, or with
    `strict` the RuntimeError."""
    runtime = runtime_module(backend)
    try:
        return runtime.describe_device(runtime.resolve_device(device))
    except RuntimeError:
        if strict:
            raise
        return device


def train_unit(
    unit: Unit,
    data,
    device: str,
    log_steps: bool,
    models: pathlib.Path | None = None,
    progress=None,
) -> list[dict]:
    """Train one unit in this process; one record per config of the unit, in order. An exception
    in training becomes an `error` record for each: one broken run must not sink a 432-run grid.
    With `models` (a folder), each run that finished "ok" is saved there and its record's "model"
    says where, relative to the folder above `models` (compare.py's OUT).
    `progress(epoch, epochs, members)`: told after each epoch of a sweep (the loop's runs are
    short enough to count whole)."""
    mod = backend_module(unit.backend, unit.engine)  # outside the try: not installed is not a run
    # Arrays from Ray's object store are read-only, and torch.from_numpy warns on those. The labels
    # are 0.5 MB (the images are scaled into new arrays anyway), so copy them, not the images.
    if not data.train_labels.flags.writeable:
        data = dataclasses.replace(
            data, train_labels=data.train_labels.copy(), test_labels=data.test_labels.copy()
        )
    log = print if log_steps else None
    t0 = time.perf_counter()
    paths = {c.key(): model_path(models, c, unit.backend) for c in unit.configs} if models else {}
    try:
        if unit.engine == "sweep":
            records = mod.train_group(
                list(unit.configs), data, device=device, log=log, progress=progress, save=paths
            )
        else:
            cfg = unit.configs[0]
            records = [mod.train(cfg, data, device=device, log=log, save=paths.get(cfg.key()))]
        for cfg, record in zip(unit.configs, records):
            if paths and record["status"] == "ok":
                record["model"] = str(paths[cfg.key()].relative_to(models.parent))
        return records
    except KeyboardInterrupt:
        raise
    except Exception as e:  # recorded, not fatal
        text = f"{type(e).__name__}: {e}"
        cfg, n = unit.configs[0], len(unit.configs)
        what = (
            f"sweep failed on a group of {n} ({cfg.describe()} ...)"
            if unit.engine == "sweep"
            else f"failed on {cfg.describe()}"
        )
        print(f"[compare] {unit.backend} {what}: {text}", file=sys.stderr)
        if os.environ.get("MLP_TWINS_DEBUG"):
            traceback.print_exc()
        wall_s = (time.perf_counter() - t0) / n  # a group's time, shared among its members
        return failed_records(unit, data, text, wall_s, device_name(unit.backend, device))


def failed_records(unit: Unit, data, text: str, wall_s: float, device: str) -> list[dict]:
    """`error` records for a unit's runs that did not finish: one per config, shaped as its
    engine's records (the sweep's name their group)."""
    n = len(unit.configs)
    return [
        make_record(
            backend=unit.backend,
            cfg=cfg,
            data=data,
            status="error",
            error=text,
            epochs=[],
            loss_curve=[],
            timing={},
            wall_s=wall_s,
            device=device,
            versions={},
            engine=unit.engine,
            group={"members": n, "index": j} if unit.engine == "sweep" else None,
        )
        for j, cfg in enumerate(unit.configs)
    ]


# ------------------------------------------------------------------ the local executor

INSTALL_HINT = {"torch": "pip install 'mlp-twins[torch]'", "jax": "pip install 'mlp-twins[jax]'"}


def check_backends(names: list[str], device: str, engine: str) -> dict[str, str]:
    """Import each backend's train (or sweep) module and resolve the device now, not three hours
    into a grid: backend -> where it runs ("cpu", "gpu:0 NAME"), or exit 2."""
    devices = {}
    for name in names:
        try:
            backend_module(name, engine)
        except ImportError as e:
            fail(
                f"backend {name} is not installed ({e}); install it with {INSTALL_HINT[name]} "
                "or use --backend"
            )
        try:
            devices[name] = device_name(name, device, strict=True)
        except RuntimeError as e:  # the twins' messages may name the flag themselves
            text = str(e)
            fail(text if text.startswith(f"--device {device}") else f"--device {device}: {text}")
    warning = device_mismatch(devices)
    if warning:
        print(f"[compare] warning: {warning}", file=sys.stderr)
    return devices


def device_mismatch(devices: dict[str, str]) -> str | None:
    """One backend on a GPU and the other on the CPU (say, a CPU-only jaxlib) makes timings
    incomparable."""
    on_cpu = sorted(b for b, d in devices.items() if d == "cpu")
    if not on_cpu or len(on_cpu) == len(devices):
        return None
    on_gpu = sorted(set(devices) - set(on_cpu))
    return (
        f"{', '.join(on_gpu)} runs on the GPU but {', '.join(on_cpu)} on the CPU (a CPU-only "
        "build?), so step times are not comparable; install the CUDA build (README) or pass "
        "--device gpu to require it"
    )


def run_local(units: Iterable[Unit], ctx: Context) -> Iterator[tuple[Unit, list[dict]]]:
    """Train the units here, one after another; yield (unit, its records) as each finishes. Each
    record also gets the machine's load when the unit started and its shape's GEMM floor."""
    for unit in units:
        cfg = unit.configs[0]
        progress = None
        if ctx.bar is not None:
            what = (
                f"group {shape_key(cfg)} ({len(unit.configs)} configurations)"
                if unit.engine == "sweep"
                else cfg.describe(brief=True)
            )
            ctx.bar.start_unit(f"{unit.backend} {what}")
            progress = ctx.bar.epoch
        load = load_now()
        data = ctx.datasets[cfg.dataset]
        records = train_unit(unit, data, ctx.device, ctx.log_steps, ctx.models, progress)
        for c, rec in zip(unit.configs, records):
            rec.update(load_at_start=load, gemm_floor_us=ctx.floors.get(shape_key(c)))
        yield unit, records


# ------------------------------------------------------------------ the Ray executor

# Ray's own flags (compare.py --executor ray) and their defaults: a flag off its default needs Ray.
RAY_DEFAULTS = {
    "ray_address": None,
    "ray_gpus_per_task": None,
    "ray_cpus_per_task": 1,
    "ray_retries": 3,
}


def add_ray_args(p) -> None:
    """The Ray executor's flags, added to compare.py's parser; check_ray_args checks them."""
    p.add_argument(
        "--ray-address",
        default=None,
        metavar="ADDR",
        help="with --executor ray: 'auto' or host:port joins a running cluster (default: start a "
        "local Ray instance)",
    )
    p.add_argument(
        "--ray-gpus-per-task",
        type=float,
        default=None,
        metavar="FRACTION",
        help="with --executor ray on a cluster with GPUs: the GPU share of one task, e.g. 0.25 "
        "packs four small groups onto a device (default: 1)",
    )
    p.add_argument(
        "--ray-cpus-per-task",
        type=float,
        default=1,
        metavar="N",
        help="with --executor ray: CPUs one task reserves (default: 1)",
    )
    p.add_argument(
        "--ray-retries",
        type=int,
        default=3,
        metavar="N",
        help="with --executor ray: how often a task whose worker died (killed, out of memory) is "
        "retried before its runs are recorded as errors (default: 3)",
    )


def check_ray_args(args) -> None:
    """Ray flags only with --executor ray, and only values Ray accepts; else exit 2."""
    given = [k for k, default in RAY_DEFAULTS.items() if getattr(args, k) != default]
    if given and args.executor != "ray":
        fail(f"--{given[0].replace('_', '-')} needs --executor ray")
    g = args.ray_gpus_per_task
    # Ray's rule for resource amounts: a fraction of one, or whole ones
    if g is not None and not (0 < g <= 1 or (g > 1 and g.is_integer())):
        fail(f"--ray-gpus-per-task {g:g}: give a fraction in (0, 1] or a whole number of GPUs")
    if args.ray_cpus_per_task <= 0:
        fail(f"--ray-cpus-per-task {args.ray_cpus_per_task:g}: must be positive")
    if args.ray_retries < 0:
        fail(f"--ray-retries {args.ray_retries}: must be 0 or more")


def choose(args, datasets: dict, ready: Callable[[], None]):
    """The executor --executor names, as a context manager that gives `execute(units, ctx)`.
    `ready` is called once every check has passed (at once here; for Ray once Ray has started)."""
    if args.executor == "ray":
        return ray_executor(need_ray(), args, ready)
    ready()
    return contextlib.nullcontext(run_local)


def need_ray():
    """The ray module, or exit 2 with the install command where Ray is not installed."""
    ray = import_ray()
    if ray is None:
        fail(f"--executor ray: Ray is not installed; install it with {RAY_HINT}")
    return ray


@contextlib.contextmanager
def ray_executor(ray, args, ready: Callable[[], None]):
    """The Ray executor, once Ray is started (or joined) and the tasks' resources are checked (or
    exit 2); Ray is disconnected afterwards where this started it."""
    try:
        started = start(ray, args.ray_address)
    except Exception as e:  # ConnectionError, a bad address, a cluster that refuses the job
        first = (str(e).strip().splitlines() or [""])[0]
        where = f" at {args.ray_address}" if args.ray_address else ""
        fail(f"--executor ray: cannot start or reach Ray{where}: {type(e).__name__}: {first}")
    try:
        try:
            options = task_options(
                ray,
                gpus_per_task=args.ray_gpus_per_task,
                retries=args.ray_retries,
                cpus_per_task=args.ray_cpus_per_task,
                device=args.device,
            )
        except ValueError as e:
            fail(str(e))
        ready()
        yield functools.partial(run_ray, ray=ray, options=options)
    finally:
        if started:
            ray.shutdown()


def import_ray():
    """The ray module, or None where it is not installed."""
    try:
        import ray
    except ImportError:
        return None
    return ray


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


def runtime_env() -> dict:
    """What every worker gets: JAX's GPU memory setting, and the checkout's code. An installed
    mlp-twins ships no code (site-packages is not ours to upload: install it on every node)."""
    env = {"env_vars": {PREALLOCATE: os.environ.get(PREALLOCATE, "false")}}
    if (ROOT / "pyproject.toml").is_file():
        env.update(working_dir=str(ROOT), excludes=SHIP_EXCLUDES)
    return env


def task_options(
    ray, *, gpus_per_task: float | None, cpus_per_task: float, retries: int, device: str
) -> dict:
    """Resources for every task: a GPU share where the cluster has GPUs, else CPUs. Raises
    ValueError naming the flag when the request cannot be met."""
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
            "--ray-cpus-per-task/--ray-gpus-per-task: no node of the Ray cluster has "
            f"{want} for one task"
        )
    return options


def task_device(options: dict) -> str:
    """Where a task with `options` (task_options) runs, as far as the driver can tell: "cpu", or
    "gpu" (which GPU, and its name, only the worker knows; a task that died is recorded "gpu")."""
    return "gpu" if options.get("num_gpus") else "cpu"


def run_ray(
    units: Iterable[Unit], ctx: Context, *, ray, options: dict
) -> Iterator[tuple[Unit, list[dict]]]:
    """Submit every unit as a Ray task (`train_unit`, with `options`' resources); yield (unit, its
    records) as each finishes, in the order they finish. Closing the generator (Ctrl-C, SIGTERM,
    an error in the caller) cancels what is left."""
    refs = {name: ray.put(data) for name, data in ctx.datasets.items()}  # once, for every task
    task = ray.remote(train_unit).options(**options)
    pending = {
        task.remote(u, refs[u.configs[0].dataset], ctx.device, ctx.log_steps, ctx.models): u
        for u in units
    }
    try:
        while pending:
            # A timeout, so that a signal is handled within a second rather than when a task ends.
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
            for ref in ready:
                unit = pending.pop(ref)
                try:
                    records = ray.get(ref)
                except ray.exceptions.RayError as e:  # retries spent, or an error outside training
                    records = task_failed(unit, e, ctx.datasets[unit.configs[0].dataset], options)
                yield unit, records
    finally:
        for ref in pending:
            # force: a running task's worker is stopped, not left training
            ray.cancel(ref, force=True)


def task_failed(unit: Unit, e: Exception, data, options: dict) -> list[dict]:
    """A task Ray gave up on (retries spent): error records naming the cause, and the grid goes
    on."""
    text = failure_text(e, options["max_retries"])
    print(
        f"[compare] {unit.backend} task failed on {len(unit.configs)} run(s) "
        f"({unit.configs[0].describe()} ...): {text}",
        file=sys.stderr,
    )
    return failed_records(unit, data, text, 0.0, task_device(options))


def failure_text(e: Exception, retries: int) -> str:
    """The cause of a failed task in one line: the original exception where Ray wraps one."""
    cause = getattr(e, "cause", None) or e
    first = (str(cause).strip().splitlines() or [""])[0][:300]
    return f"{type(cause).__name__} on Ray (max_retries={retries}): {first}"
