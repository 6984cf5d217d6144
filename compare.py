"""Train the same MLP in PyTorch and in JAX over a config (one run, a preset grid, a TOML file)
and write a results file and a report that contrast loss, accuracy, convergence and step speed.

    python compare.py --config grid                   # the lab report's 432 runs, both backends
    python compare.py --config baseline --backend jax # one backend alone
    python compare.py --config smoke --set hidden_size=64,128
    python compare.py --list --config grid            # what would run, then "432 runs"
    python compare.py --report runs/grid              # rebuild the report from results.jsonl alone
    python compare.py --config grid --engine loop     # one run at a time, the readable train.py
    python compare.py --config grid --executor ray    # each group a Ray task, here or on a cluster

Runs go backend after backend for each config (interleaved), from the same initial weights and
the same batch order, so a grid stopped halfway is still a fair comparison. Results are appended
to OUT/results.jsonl one whole line per finished run; rerunning with the same --out skips those.

Terms (executors.py says more):
  run         one config trained on one backend (torch or jax): one record of results.jsonl.
  group       the runs that share everything but learning rate, activation and output
              (shared/groups.py): same batches, same initial weights, so they can train together.
  engine      how runs are trained. `loop`: one run at a time with impls/*/train.py, the readable
              lesson; `sweep`: a group's members at once with impls/*/sweep.py, exactly as the
              loop would, member by member. The default is sweep when two or more runs share a
              group, else loop. A group's records are written once both backends finished it.
  unit        what is trained in one go: one group's unfinished members (sweep) or one run
              (loop), on one backend.
  executor    where units train. `local`: here, one after another; `ray`: each unit a Ray task,
              on this machine or a cluster (docs/scaling.md), records written as tasks finish.
  GEMM floor  what the bare matrix products of one step take on this CPU (numpy, measured at the
              start, shared/machine.py): the reference the report reads step times against.

This file is the command line and the plan (which runs are left, as units); executors.py trains
the units, and the loop in `train_and_write` writes what comes back.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import os
import pathlib
import signal
import sys
import time

import executors
from shared.cli import ArgumentParser, add_run_args, dataset, fail, grid_from_args
from shared.config import Config
from shared.groups import group_key, group_runs
from shared.machine import configure_threads, probe_floors
from shared.results import (
    ResultsCorrupt,
    ResultsFile,
    ResultsLocked,
    latest,
    run_key,
    scan_results,
)

INSTALL_HINT = {"torch": "pip install 'mlp-twins[torch]'", "jax": "pip install 'mlp-twins[jax]'"}


def parse_args(argv=None):
    p = ArgumentParser(
        prog="compare.py",
        description=__doc__.split("\n\n")[0],
        epilog="Results: OUT/results.jsonl (schema in README.md); report: OUT/report.md + PNGs.",
    )
    add_run_args(p)
    p.add_argument(
        "--backend",
        default="both",
        choices=("torch", "jax", "both"),
        help="which framework(s) to run (default: both)",
    )
    p.add_argument(
        "--engine",
        default=None,
        choices=("loop", "sweep"),
        help="loop: one run at a time (impls/*/train.py); sweep: each group of runs that differ "
        "only in learning_rate, activation, output at once (impls/*/sweep.py). Default: sweep "
        "when two or more runs share a group, else loop",
    )
    p.add_argument(
        "--executor",
        default="local",
        choices=("local", "ray"),
        help="local: train here, one unit after another; ray: each group (sweep) or run (loop) "
        "is a Ray task, on a local Ray instance or a cluster (docs/scaling.md). Default: local",
    )
    add_ray_args(p)
    p.add_argument(
        "--out",
        default=None,
        metavar="DIR",
        help="where results.jsonl and the report go (default: runs/<config name>)",
    )
    p.add_argument(
        "--list", action="store_true", help="print the expanded runs and 'N runs', train nothing"
    )
    p.add_argument(
        "--report",
        default=None,
        metavar="OUT",
        help="rebuild OUT/report.md and its figures from OUT/results.jsonl alone, train nothing",
    )
    p.add_argument(
        "--quiet",
        action="store_true",
        help="no progress bar: one plain status line per finished run (for logs)",
    )
    p.add_argument(
        "--log-steps",
        action="store_true",
        help="also print the tutorial's training log (Epoch [1/5], Step [100/600], Loss: ...)",
    )
    args = p.parse_args(argv)
    check_ray_args(args)
    return args


def add_ray_args(p) -> None:
    """The flags of the Ray executor (--executor ray); check_ray_args checks them."""
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
    """Ray flags make sense only with --executor ray, and only with values Ray accepts."""
    given = [
        f
        for f, v in (
            ("--ray-address", args.ray_address),
            ("--ray-gpus-per-task", args.ray_gpus_per_task),
        )
        if v is not None
    ]
    if args.ray_cpus_per_task != 1:
        given.append("--ray-cpus-per-task")
    if args.ray_retries != 3:
        given.append("--ray-retries")
    if given and args.executor != "ray":
        fail(f"{given[0]} needs --executor ray")
    g = args.ray_gpus_per_task
    # Ray's rule for resource amounts: a fraction of one, or whole ones
    if g is not None and not (0 < g <= 1 or (g > 1 and g.is_integer())):
        fail(f"--ray-gpus-per-task {g:g}: give a fraction in (0, 1] or a whole number of GPUs")
    if args.ray_cpus_per_task <= 0:
        fail(f"--ray-cpus-per-task {args.ray_cpus_per_task:g}: must be positive")
    if args.ray_retries < 0:
        fail(f"--ray-retries {args.ray_retries}: must be 0 or more")


def choose_engine(engine: str | None, runs: list[Config]) -> str:
    """--engine, or its default: sweep when two or more runs share a group, else loop."""
    if engine:
        return engine
    return "sweep" if any(len(g) > 1 for g in group_runs(runs)) else "loop"


def run_all(args, runs: list[Config], out: pathlib.Path) -> int:
    """Train what OUT/results.jsonl lacks of `runs` on the chosen executor, writing each record as
    it comes back. 0 when every run is recorded; 130 when interrupted (rerun to resume)."""
    backends = ["torch", "jax"] if args.backend == "both" else [args.backend]
    engine = choose_engine(args.engine, runs)
    # Every check that can fail on bad input runs before --out is touched. With Ray, the workers
    # import the backends (maybe on other machines), and their CPUs are not the one floored here.
    ray = need_ray() if args.executor == "ray" else None
    devices = {} if ray else check_backends(backends, args.device, engine)
    check_out(out)
    datasets = load_datasets(runs, args.data_dir)
    results = open_results(out)
    if ray is None:
        announce(datasets)  # with Ray, once Ray's own checks have passed too (ray_executor)
    todo = left_to_run(results, runs, backends)
    units = executors.plan_units(runs, todo, engine, backends)
    floors = {} if ray else measure_floors([c for c, _ in todo], devices)
    bar = None
    if not args.quiet:
        from tqdm import tqdm

        bar = tqdm(total=len(todo), unit="run", dynamic_ncols=True, file=sys.stderr)
    ctx = executors.Context(datasets, args.device, args.log_steps, floors, bar)
    writer = Writer(results, runs, units, bar, as_they_come=ray is not None)
    executor = (
        ray_executor(ray, args, datasets) if ray else contextlib.nullcontext(executors.run_local)
    )
    return train_and_write(executor, units, ctx, writer)


def train_and_write(executor, units: list[executors.Unit], ctx, writer: Writer) -> int:
    """The one loop: feed the units to the executor, write what comes back. Ctrl-C, SIGTERM and a
    full disk stop it with the file whole; the exit code says which."""
    interrupted, write_error = False, None
    try:
        if units:
            # closing: a stop in the loop's body cancels what the executor has not finished
            with executor as execute, contextlib.closing(execute(units, ctx)) as outcomes:
                for unit, records in outcomes:
                    writer.add(unit, records)
    except KeyboardInterrupt:
        interrupted = True
    except WriteFailed as e:  # a full disk, a quota: the file is as it was before this run
        write_error = e.error
    finally:
        if ctx.bar:
            ctx.bar.close()
        writer.results.close()
    results = writer.results
    if write_error:
        fail(
            f"cannot write {results.path} ({write_error.strerror or write_error}); "
            f"{len(results.records)} finished runs are safe in it. Free some space and run the "
            "same command again to resume.",
            code=1,
        )
    if interrupted:
        print(
            f"[compare] interrupted; {len(results.records)} runs are safe in {results.path}. "
            "Run the same command again to resume.",
            file=sys.stderr,
        )
        return 130
    return 0


def need_ray():
    """The ray module, or exit 2 with the install command where Ray is not installed."""
    ray = executors.import_ray()
    if ray is None:
        fail(f"--executor ray: Ray is not installed; install it with {executors.RAY_HINT}")
    return ray


def check_backends(names: list[str], device: str, engine: str) -> dict[str, str]:
    """Import each backend's train (or sweep) module and resolve the device now, not three hours
    into a grid: backend -> where it runs ("cpu", "gpu:0 NAME"), or exit 2."""
    devices = {}
    for name in names:
        try:
            executors.backend_module(name, engine)
        except ImportError as e:
            fail(
                f"backend {name} is not installed ({e}); install it with {INSTALL_HINT[name]} "
                "or use --backend"
            )
        try:
            devices[name] = executors.device_name(name, device, strict=True)
        except RuntimeError as e:
            fail(f"--device {device}: {e}")
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


def check_out(out: pathlib.Path) -> None:
    """--out must be a folder (or not exist yet): a file there is named, not overwritten."""
    if out.exists() and not out.is_dir():
        fail(f"--out {out}: not a folder (a file is there); allowed: a folder, created if missing")


def load_datasets(runs: list[Config], data_dir) -> dict:
    """Every dataset the runs need, loaded and checked now, before any result is written (or exit
    2). Where they came from is said later (announce), once every other check has passed."""
    return {
        name: dataset(name, data_dir, verbose=False) for name in sorted({c.dataset for c in runs})
    }


def announce(datasets: dict) -> None:
    """Where the data came from, said only once every check has passed: a refused run prints one
    line."""
    for ds in datasets.values():
        print(f"[data] {ds.name}: {ds.source}", file=sys.stderr)


def open_results(out: pathlib.Path) -> ResultsFile:
    try:
        return ResultsFile(out / "results.jsonl").open()
    except (ResultsLocked, ResultsCorrupt) as e:
        fail(str(e))
    except OSError as e:
        reason = e.strerror or e
        fail(f"--out {out}: cannot write there ({reason}); allowed: a folder you can write to")


def left_to_run(results: ResultsFile, runs: list[Config], backends: list[str]) -> list:
    """The (config, backend) pairs not yet finished in results.jsonl, in the order they run:
    config by config, backends interleaved. A rerun with the same --out resumes here. A run whose
    last record is an `error` (a CUDA error, a worker killed) is not finished: it runs again."""
    last = {run_key(r): r["status"] for r in latest(results.records)}
    wanted = [(cfg, b, last.get((b, cfg.key()))) for cfg in runs for b in backends]
    todo = [(cfg, b) for cfg, b, status in wanted if status in (None, "error")]
    skipped = len(wanted) - len(todo)
    if skipped:
        print(
            f"[compare] {skipped} finished runs found in {results.path}; skipping them",
            file=sys.stderr,
        )
    retried = sum(status == "error" for *_, status in wanted)
    if retried:
        print(
            f"[compare] {retried} runs recorded as errors in {results.path}; training them again",
            file=sys.stderr,
        )
    return todo


def measure_floors(runs: list[Config], devices: dict[str, str]) -> dict[str, float]:
    """The GEMM floor of each shape to run, measured now, before training: what numpy's float32
    matrix products of one step take on this CPU, the reference a step time is read against
    (shared/machine.py). A CPU floor says nothing about a GPU's step, so GPU runs get none."""
    if not runs or any(d != "cpu" for d in devices.values()):
        return {}
    t0 = time.perf_counter()
    floors = probe_floors(runs)
    print(
        f"[compare] GEMM floor (numpy float32 matmuls of each step's shapes, {len(floors)} shapes, "
        f"{time.perf_counter() - t0:.1f} s): "
        + ", ".join(f"{k} {v:.0f} µs" for k, v in list(floors.items())[:6])
        + (" ..." if len(floors) > 6 else ""),
        file=sys.stderr,
    )
    return floors


@contextlib.contextmanager
def ray_executor(ray, args, datasets: dict):
    """The Ray executor, once Ray is started (or joined) and the tasks' resources are checked (or
    exit 2); Ray is disconnected afterwards where this started it."""
    try:
        started = executors.start(ray, args.ray_address)
    except Exception as e:  # ConnectionError, a bad address, a cluster that refuses the job
        first = (str(e).strip().splitlines() or [""])[0]
        where = f" at {args.ray_address}" if args.ray_address else ""
        fail(f"--executor ray: cannot start or reach Ray{where}: {type(e).__name__}: {first}")
    try:
        try:
            options = executors.task_options(
                ray,
                gpus_per_task=args.ray_gpus_per_task,
                retries=args.ray_retries,
                cpus_per_task=args.ray_cpus_per_task,
                device=args.device,
            )
        except ValueError as e:
            fail(str(e))
        announce(datasets)
        yield functools.partial(executors.run_ray, ray=ray, options=options)
    finally:
        if started:
            ray.shutdown()


class WriteFailed(Exception):
    """results.jsonl could not take a record (a full disk): the grid stops, the file stays whole."""

    def __init__(self, error: OSError):
        super().__init__(str(error))
        self.error = error


def append(results: ResultsFile, record: dict) -> None:
    """One whole line, fsync'd: a kill after this keeps it. A failed write leaves no part of it."""
    try:
        results.append(record)
    except OSError as e:
        raise WriteFailed(e) from e


def status_line(cfg: Config, recs: dict[str, dict]) -> str:
    parts = []
    for name, r in recs.items():
        if r["status"] == "ok":
            acc = r["epochs"][-1]["test_accuracy"] * 100
            parts.append(f"{name} {acc:.2f}% {r['step_time_us']:.0f}us/step")
        else:
            parts.append(f"{name} {r['status'].upper()}")
    return f"{cfg.describe()} | " + " | ".join(parts)


def part_of(unit: executors.Unit) -> str:
    """What a unit is part of: its run (loop engine) or its group (sweep), on every backend."""
    return group_key(unit.configs[0]) if unit.engine == "sweep" else unit.configs[0].key()


class Writer:
    """Writes what the executor hands back: each record as one whole line of results.jsonl, and a
    status line per finished config (stdout, or above the progress bar).

    Ray's units come back in whatever order their tasks finish: each record is written at once,
    with its own status line. Local units come back in the plan's order, and a part (a run, or a
    group for the sweep engine) is said once every backend has trained it, one line per config
    naming its backends. The loop writes each record at once; the sweep writes a group's records
    once every backend has trained it, in the loop's order (config by config, backends
    interleaved), so that both engines' files read alike.
    """

    def __init__(self, results: ResultsFile, runs, units, bar, *, as_they_come: bool):
        self.results, self.bar, self.as_they_come = results, bar, as_they_come
        self.say = bar.write if bar else print
        self.order = {cfg.key(): i for i, cfg in enumerate(runs)}
        self.left = collections.Counter(part_of(u) for u in units)  # units not back, per part
        self.back = collections.defaultdict(list)  # part -> [(config, backend, record)] back

    def add(self, unit: executors.Unit, records: list[dict]) -> None:
        if self.bar:
            self.bar.update(len(records))
        back = [(cfg, unit.backend, rec) for cfg, rec in zip(unit.configs, records)]
        if self.as_they_come:
            for cfg, backend, rec in back:
                append(self.results, rec)
                self.say(status_line(cfg, {backend: rec}))
            return
        if unit.engine == "loop":
            for *_, rec in back:
                append(self.results, rec)
        part = part_of(unit)
        self.back[part] += back
        self.left[part] -= 1
        if self.left[part] == 0:
            self._finish(part, unit.engine)

    def _finish(self, part: str, engine: str) -> None:
        by_config: dict = {}  # config key -> (config, {backend: record}), in the order of the runs
        for cfg, backend, rec in sorted(self.back.pop(part), key=lambda b: self.order[b[0].key()]):
            by_config.setdefault(cfg.key(), (cfg, {}))[1][backend] = rec
        for cfg, recs in by_config.values():
            if engine == "sweep":
                for rec in recs.values():
                    append(self.results, rec)
            self.say(status_line(cfg, recs))


def build_report(out: pathlib.Path) -> int:
    from shared.report import write_report

    path = out / "results.jsonl"
    records, bad = scan_results(path)
    if bad:  # a report that silently leaves runs out would mislead; the user decides what to drop
        fail(
            f"--report {out}: line {bad[0]} of {path} is not a result record ({len(bad)} such "
            "lines: a run cut short, or an edit); allowed: one JSON record per line: delete those "
            "lines (compare.py on this --out drops a torn last line itself)"
        )
    if not records:
        fail(
            f"--report {out}: no results in {path}; allowed: a folder a compare.py run wrote "
            "(--out)"
        )
    records = latest(records)  # a run retried after an error: its later record counts
    try:
        report = write_report(records, out)
    except OSError as e:  # a full disk: results.jsonl is intact, only the page is missing
        fail(
            f"cannot write the report in {out} ({e.strerror or e}); the results are intact: free "
            f"some space and rebuild it with compare.py --report {out}",
            code=1,
        )
    print(f"[compare] report: {report} ({len(records)} results)")
    return 0


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv=None) -> int:
    configure_threads()  # before a framework is imported: OpenMP reads it once
    # Also before: JAX would take 75% of a GPU when it starts and leave torch no room.
    os.environ.setdefault(executors.PREALLOCATE, "false")
    args = parse_args(argv)
    # SIGTERM (a scheduler's timeout, `timeout 600 ...`) ends the grid like Ctrl-C: cleanly,
    # resumable.
    signal.signal(signal.SIGTERM, _interrupt)
    if args.report is not None:
        return build_report(pathlib.Path(args.report))
    grid = grid_from_args(args)
    runs = grid.runs()
    if args.list:
        for i, cfg in enumerate(runs, 1):
            print(f"{i:4d}  {cfg.describe()}")
        print(f"{len(runs)} runs")
        return 0
    out = pathlib.Path(args.out or f"runs/{grid.name}")
    code = run_all(args, runs, out)
    if code == 0:
        code = build_report(out)
    return code


if __name__ == "__main__":
    sys.exit(main())
