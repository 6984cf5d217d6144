"""Train the same MLP in PyTorch and in JAX over a config (one run, a preset grid, a TOML file)
and write a results file and a report that contrast loss, accuracy, convergence and step speed.

    python compare.py --config grid                   # the lab report's 432 runs, both backends
    python compare.py --config baseline --backend jax # one backend alone
    python compare.py --config smoke --set hidden_size=64,128
    python compare.py --list --config grid            # what would run, then "432 runs"
    python compare.py --report runs/grid              # rebuild the report from results.jsonl alone
    python compare.py --config grid --engine loop     # one run at a time, the readable train.py
    python compare.py --config grid --executor ray    # each group a Ray task, here or on a cluster

Runs go backend after backend for each config (interleaved), from the same initial weights and the
same batch order, so a grid stopped halfway is still a fair comparison. Results are appended to
OUT/results.jsonl one whole line per finished run; rerunning with the same --out skips those.

Engines: `loop` trains one run at a time with impls/*/train.py; `sweep` trains each group of runs
that share everything but learning rate, activation and output (shared/groups.py) together with
impls/*/sweep.py, exactly as the loop would, member by member. The default is sweep when two or
more runs share a group, else loop. A group's records are written once both backends finished it.

Executors: `local` trains here, unit after unit; `ray` (executors.py, docs/scaling.md) makes each unit
(a group's members on one backend, or one run) a Ray task and writes records as tasks finish.
"""

from __future__ import annotations

import importlib
import os
import pathlib
import signal
import sys
import time
import traceback

import executors
from shared.cli import ArgumentParser, add_run_args, dataset, fail, grid_from_args
from shared.config import Config
from shared.groups import group_runs
from shared.machine import configure_threads, load_now, probe_floors, shape_key
from shared.results import (
    ResultsCorrupt,
    ResultsFile,
    ResultsLocked,
    config_of,
    make_record,
    scan_results,
)

BACKENDS = {"torch": "impls.torch_mlp.train", "jax": "impls.flax_mlp.train"}
SWEEPS = {"torch": "impls.torch_mlp.sweep", "jax": "impls.flax_mlp.sweep"}
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
        help="loop: one run at a time (impls/*/train.py); sweep: each group of runs that differ only "
        "in learning_rate, activation, output at once (impls/*/sweep.py). Default: sweep when "
        "two or more runs share a group, else loop",
    )
    p.add_argument(
        "--executor",
        default="local",
        choices=("local", "ray"),
        help="local: train here, one unit after another; ray: each group (sweep) or run (loop) is a "
        "Ray task, on a local Ray instance or a cluster (docs/scaling.md). Default: local",
    )
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
        help="with --executor ray on a cluster with GPUs: the GPU share of one task, e.g. 0.25 packs "
        "four small groups onto a device (default: 1)",
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
        help="also print the seed-format training log (Epoch [1/5], Step [100/600], Loss: ...)",
    )
    args = p.parse_args(argv)
    check_ray_args(args)
    return args


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
    if g is not None and not (
        0 < g <= 1 or (g > 1 and g.is_integer())
    ):  # Ray's rule for resource amounts
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


def load_backends(
    names: list[str], device: str, engine: str = "loop"
) -> tuple[dict, dict[str, str]]:
    """Import each backend's train (or sweep) module and check the device now, not three hours into a grid."""
    mods, devices = {}, {}
    for name in names:
        try:
            mods[name] = importlib.import_module((SWEEPS if engine == "sweep" else BACKENDS)[name])
        except ImportError as e:
            fail(
                f"backend {name} is not installed ({e}); install it with {INSTALL_HINT[name]} or use --backend"
            )
        try:
            devices[name] = device_name(mods[name], device, strict=True)
        except RuntimeError as e:
            fail(f"--device {device}: {e}")
    warning = device_mismatch(devices)
    if warning:
        print(f"[compare] warning: {warning}", file=sys.stderr)
    return mods, devices


def device_name(mod, device: str, strict: bool = False) -> str:
    """Where backend `mod` runs `device` (auto | cpu | gpu), spelled as its records spell it ("cpu",
    "gpu:0 NAME"); the request itself where it cannot be resolved (a missing GPU: the error recorded)."""
    runtime = importlib.import_module(mod.__name__.rsplit(".", 1)[0] + ".runtime")
    try:
        return runtime.describe_device(runtime.resolve_device(device))
    except RuntimeError:
        if strict:
            raise
        return device


def device_mismatch(devices: dict[str, str]) -> str | None:
    """One backend on a GPU and the other on the CPU (say, a CPU-only jaxlib) makes timings incomparable."""
    on_cpu = sorted(b for b, d in devices.items() if d == "cpu")
    if not on_cpu or len(on_cpu) == len(devices):
        return None
    on_gpu = sorted(set(devices) - set(on_cpu))
    return (
        f"{', '.join(on_gpu)} runs on the GPU but {', '.join(on_cpu)} on the CPU (a CPU-only build?), so step "
        f"times are not comparable; install the CUDA build (README) or pass --device gpu to require it"
    )


def status_line(cfg: Config, recs: dict[str, dict]) -> str:
    parts = []
    for name, r in recs.items():
        if r["status"] == "ok":
            acc = r["epochs"][-1]["test_accuracy"] * 100
            parts.append(f"{name} {acc:.2f}% {r['step_time_us']:.0f}us/step")
        else:
            parts.append(f"{name} {r['status'].upper()}")
    return f"{cfg.describe()} | " + " | ".join(parts)


def run_all(args, runs: list[Config], out: pathlib.Path) -> int:
    backends = ["torch", "jax"] if args.backend == "both" else [args.backend]
    engine = choose_engine(args.engine, runs)
    # Every check that can fail on bad input runs before --out is touched.
    if args.executor == "ray":
        ray = executors.import_ray()
        if ray is None:
            fail(f"--executor ray: Ray is not installed; install it with {executors.RAY_HINT}")
        mods, devices = (
            {},
            {},
        )  # the backends are imported by the workers, which may be other machines
    else:
        mods, devices = load_backends(backends, args.device, engine)
    check_out(out)
    datasets = load_datasets(runs, args.data_dir)
    results = open_results(out)
    if args.executor != "ray":  # Ray's own checks come first (run_on_ray)
        announce(datasets)
    done = {(r["backend"], config_of(r).key()) for r in results.records if _valid(r)}
    todo = [(cfg, b) for cfg in runs for b in backends if (b, cfg.key()) not in done]
    skipped = len(runs) * len(backends) - len(todo)
    if skipped:
        print(
            f"[compare] {skipped} finished runs found in {out / 'results.jsonl'}; skipping them",
            file=sys.stderr,
        )
    floors = (
        {} if args.executor == "ray" else measure_floors([c for c, _ in todo], devices)
    )  # a worker's CPU is not ours

    bar = None
    if not args.quiet:
        from tqdm import tqdm

        bar = tqdm(total=len(todo), unit="run", dynamic_ncols=True, file=sys.stderr)
    say = bar.write if bar else print
    interrupted, write_error = False, None
    try:
        if args.executor == "ray":
            run_on_ray(ray, args, engine, backends, runs, todo, results, datasets, bar, say)
            runs = []  # all done above
        elif engine == "sweep":
            run_groups(args, runs, todo, mods, results, datasets, bar, say, floors)
            runs = []  # all done above
        for cfg in runs:
            mine = [(c, b) for c, b in todo if c is cfg]
            if not mine:
                continue
            data = datasets[cfg.dataset]
            recs = {}
            for _, name in mine:
                if bar:
                    bar.set_description(f"{name} {cfg.describe(brief=True)}")
                load = load_now()
                recs[name] = train_one(mods[name], name, cfg, data, args)
                recs[name].update(load_at_start=load, gemm_floor_us=floors.get(shape_key(cfg)))
                append(results, recs[name])
                if bar:
                    bar.update(1)
            say(status_line(cfg, recs))
    except KeyboardInterrupt:
        interrupted = True
    except WriteFailed as e:  # a full disk, a quota: the file is as it was before this run
        write_error = e.error
    finally:
        if bar:
            bar.close()
        results.close()
    if write_error:
        fail(
            f"cannot write {results.path} ({write_error.strerror or write_error}); {len(results.records)} "
            f"finished runs are safe in it. Free some space and run the same command again to resume.",
            code=1,
        )
    if interrupted:
        print(
            f"[compare] interrupted; {len(results.records)} runs are safe in {out / 'results.jsonl'}. "
            f"Run the same command again to resume.",
            file=sys.stderr,
        )
        return 130
    return 0


def run_on_ray(ray, args, engine, backends, runs, todo, results, datasets, bar, say) -> None:
    """The Ray executor: every unit (a group's members on one backend, or one run) a Ray task; this
    process alone writes the records, as tasks finish, in the order they finish."""
    units = executors.plan_units(runs, todo, engine, backends)
    if not units:
        return
    started = _start_ray(ray, args)
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
        outcomes = executors.run(
            ray, units, datasets, device=args.device, log_steps=args.log_steps, options=options
        )
        try:
            for unit, outcome in outcomes:
                if isinstance(outcome, Exception):
                    outcome = _task_failed(
                        unit,
                        outcome,
                        datasets[unit.configs[0].dataset],
                        args,
                        executors.task_device(options),
                    )
                for cfg, rec in zip(unit.configs, outcome):
                    append(results, rec)  # whole line, fsync'd: a kill after this keeps it
                    say(status_line(cfg, {unit.backend: rec}))
                if bar:
                    bar.update(len(outcome))
        finally:
            outcomes.close()  # cancels the tasks still outstanding (Ctrl-C, SIGTERM)
    finally:
        if started:
            ray.shutdown()


def announce(datasets: dict) -> None:
    """Where the data came from, said only once every check has passed: a refused run prints one line."""
    for ds in datasets.values():
        print(f"[data] {ds.name}: {ds.source}", file=sys.stderr)


def _start_ray(ray, args) -> bool:
    try:
        return executors.start(ray, args.ray_address)
    except Exception as e:  # ConnectionError, a bad address, a cluster that refuses the job
        first = (str(e).strip().splitlines() or [""])[0]
        fail(
            f"--executor ray: cannot start or reach Ray{f' at {args.ray_address}' if args.ray_address else ''}: "
            f"{type(e).__name__}: {first}"
        )


def _task_failed(unit, e: Exception, data, args, device: str) -> list[dict]:
    """A task Ray gave up on (retries spent): error records naming the cause, and the grid goes on."""
    text = executors.failure_text(e, args.ray_retries)
    print(
        f"[compare] {unit.backend} task failed on {len(unit.configs)} run(s) ({unit.configs[0].describe()} ...): "
        f"{text}",
        file=sys.stderr,
    )
    return failed_records(unit.backend, list(unit.configs), data, text, 0.0, device, unit.engine)


def failed_records(
    name: str, members: list[Config], data, text: str, wall_s: float, device: str, engine: str
) -> list[dict]:
    """`error` records for runs that did not finish: one per member, shaped as the engine's records."""
    group = (
        (lambda j: {"members": len(members), "index": j}) if engine == "sweep" else (lambda j: None)
    )
    return [
        make_record(
            backend=name,
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
            engine=engine,
            group=group(j),
        )
        for j, cfg in enumerate(members)
    ]


def run_groups(args, runs, todo, mods, results, datasets, bar, say, floors) -> None:
    """The sweep engine: each group's unfinished members, backend after backend, then their records
    in the loop's order (config by config, backends interleaved)."""
    for group in group_runs(runs):
        mine = [(c, b) for c, b in todo if any(c is g for g in group)]
        if not mine:
            continue
        data = datasets[group[0].dataset]
        recs: dict = {}
        for name in mods:
            members = [c for c, b in mine if b == name]
            if not members:
                continue
            if bar:
                c = members[0]
                bar.set_description(f"{name} {shape_key(c)} group of {len(members)}")
            load = load_now()
            for cfg, rec in zip(members, train_group(mods[name], name, members, data, args)):
                rec.update(load_at_start=load, gemm_floor_us=floors.get(shape_key(cfg)))
                recs[(cfg.key(), name)] = rec
            if bar:
                bar.update(len(members))
        for cfg in group:
            done = {name: recs[(cfg.key(), name)] for name in mods if (cfg.key(), name) in recs}
            for rec in done.values():
                append(results, rec)
            if done:
                say(status_line(cfg, done))


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


def measure_floors(runs: list[Config], devices: dict[str, str]) -> dict[str, float]:
    """The GEMM floor of each shape to run, measured now, before training. A CPU floor says nothing
    about a GPU's step, so GPU runs get none."""
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


def check_out(out: pathlib.Path) -> None:
    """--out must be a folder (or not exist yet): a file there is named, not overwritten."""
    if out.exists() and not out.is_dir():
        fail(f"--out {out}: not a folder (a file is there); allowed: a folder, created if missing")


def load_datasets(runs: list[Config], data_dir) -> dict:
    """Every dataset the runs need, loaded and checked now, before any result is written (or exit 2).
    Where they came from is said later (announce), once every other check has passed."""
    return {
        name: dataset(name, data_dir, verbose=False) for name in sorted({c.dataset for c in runs})
    }


def open_results(out: pathlib.Path) -> ResultsFile:
    try:
        return ResultsFile(out / "results.jsonl").open()
    except (ResultsLocked, ResultsCorrupt) as e:
        fail(str(e))
    except OSError as e:
        fail(
            f"--out {out}: cannot write there ({e.strerror or e}); allowed: a folder you can write to"
        )


def train_group(mod, name: str, members: list[Config], data, args) -> list[dict]:
    """One backend's sweep over one group; an exception becomes an `error` record for each member."""
    t0 = time.perf_counter()
    log = print if args.log_steps else None
    try:
        return mod.train_group(members, data, device=args.device, log=log)
    except KeyboardInterrupt:
        raise
    except Exception as e:  # recorded, not fatal: one broken group must not sink a 432-run grid
        text = f"{type(e).__name__}: {e}"
        print(
            f"[compare] {name} sweep failed on a group of {len(members)} ({members[0].describe()} ...): {text}",
            file=sys.stderr,
        )
        if os.environ.get("MLP_TWINS_DEBUG"):
            traceback.print_exc()
        return failed_records(
            name,
            members,
            data,
            text,
            (time.perf_counter() - t0) / len(members),
            device_name(mod, args.device),
            "sweep",
        )


def _valid(record: dict) -> bool:
    try:
        config_of(record)
        return True
    except Exception:
        return False


def train_one(mod, name: str, cfg: Config, data, args) -> dict:
    """One backend on one config; an exception becomes an `error` record and the grid goes on."""
    t0 = time.perf_counter()
    log = print if args.log_steps else None
    try:
        return mod.train(cfg, data, device=args.device, log=log)
    except KeyboardInterrupt:
        raise
    except Exception as e:  # recorded, not fatal: one broken config must not sink a 432-run grid
        text = f"{type(e).__name__}: {e}"
        print(f"[compare] {name} failed on {cfg.describe()}: {text}", file=sys.stderr)
        if os.environ.get("MLP_TWINS_DEBUG"):
            traceback.print_exc()
        return failed_records(
            name, [cfg], data, text, time.perf_counter() - t0, device_name(mod, args.device), "loop"
        )[0]


def build_report(out: pathlib.Path) -> int:
    from shared.report import write_report

    path = out / "results.jsonl"
    records, bad = scan_results(path)
    if bad:  # a report that silently leaves runs out would mislead; the user decides what to drop
        fail(
            f"--report {out}: line {bad[0]} of {path} is not a result record ({len(bad)} such lines: a run cut "
            f"short, or an edit); allowed: one JSON record per line: delete those lines (compare.py on "
            f"this --out drops a torn last line itself)"
        )
    if not records:
        fail(
            f"--report {out}: no results in {path}; allowed: a folder a compare.py run wrote (--out)"
        )
    try:
        report = write_report(records, out)
    except OSError as e:  # a full disk: results.jsonl is intact, only the page is missing
        fail(
            f"cannot write the report in {out} ({e.strerror or e}); the results are intact: free some space "
            f"and rebuild it with compare.py --report {out}",
            code=1,
        )
    print(f"[compare] report: {report} ({len(records)} results)")
    return 0


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv=None) -> int:
    configure_threads()  # before a framework is imported: OpenMP reads it once
    args = parse_args(argv)
    # SIGTERM (a scheduler's timeout, `timeout 600 ...`) ends the grid like Ctrl-C: cleanly, resumable.
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
