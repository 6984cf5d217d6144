"""Train the same MLP in PyTorch and in JAX over a config (one run, a preset grid, a TOML file),
write each finished run to OUT/results.jsonl and end with OUT/report.md.

The command line and the plan: which runs are left, as units; comparison/executors.py trains the
units (here or on Ray), comparison/report/ reads the results. Terms and examples: docs/running.md.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import signal
import sys

from comparison import executors
from comparison.machine import measure_floors
from comparison.progress import RunBar, Status, count_line, say_plan
from comparison.results import (
    ResultsCorrupt,
    ResultsFile,
    ResultsLocked,
    WriteFailed,
    latest,
    scan_results,
)
from shared.cli import ArgumentParser, add_run_args, dataset, fail, grid_from_args
from shared.config import Config
from shared.groups import group_runs
from shared.timing import configure_threads


def parse_args(argv=None):
    p = ArgumentParser(
        prog="compare.py",
        description=__doc__.split("\n\n")[0],
        epilog="Results: OUT/results.jsonl, one run per line (schema: docs/results-format.md); "
        "report: OUT/report.md and its PNG figures.",
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
    executors.add_ray_args(p)
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
        help="no progress bar: plain status lines only (for logs)",
    )
    p.add_argument(
        "--log-steps",
        action="store_true",
        help="also print the tutorial's training log (Epoch [1/5], Step [100/600], Loss: ...)",
    )
    add_keep_args(p)
    args = p.parse_args(argv)
    executors.check_ray_args(args)
    return args


def add_keep_args(p) -> None:
    """The flags of what a run leaves besides results.jsonl and the report: models, TensorBoard."""
    p.add_argument(
        "--save-models",
        action="store_true",
        help="save each finished run's model in OUT/models/<run name>/ (torch.pt: torch.save; "
        "jax.orbax: Orbax); evaluate one with either twin: python -m impls.flax_mlp evaluate PATH",
    )
    p.add_argument(
        "--no-tensorboard",
        action="store_true",
        help="write no TensorBoard event files (default: OUT/tensorboard/<run name>/<backend>, "
        "written with the report; view with tensorboard --logdir OUT/tensorboard)",
    )


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
    on_ray = args.executor == "ray"
    if on_ray:
        executors.need_ray()
    devices = {} if on_ray else executors.check_backends(backends, args.device, engine)
    check_out(out)
    datasets = load_datasets(runs, args.data_dir)
    results = open_results(out)
    todo = results.left_to_run(runs, backends)
    units = executors.plan_units(runs, todo, engine, backends)

    # Said once every check has passed (for Ray: once it started): a refused run prints one line.
    def ready() -> None:
        announce(datasets)
        say_plan(todo, units, engine)

    executor = executors.choose(args, datasets, ready=ready)
    floors = {} if on_ray else measure_floors([c for c, _ in todo], devices)
    bar = None if args.quiet else RunBar(len(todo))
    models = out.resolve() / "models" if args.save_models else None  # absolute: Ray's workers
    ctx = executors.Context(datasets, args.device, args.log_steps, floors, bar, models)
    return train_and_write(executor, units, ctx, results, Status(todo, bar))


def train_and_write(executor, units, ctx, results: ResultsFile, status: Status) -> int:
    """The one loop: feed the units to the executor, append each record as it comes back (in any
    order: the report does not depend on it). Ctrl-C, SIGTERM and a full disk stop it with the file
    whole; the exit code says which."""
    interrupted, write_error = False, None
    try:
        if units:
            # closing: a stop in the loop's body cancels what the executor has not finished
            with executor as execute, contextlib.closing(execute(units, ctx)) as outcomes:
                for unit, records in outcomes:
                    if ctx.bar:
                        ctx.bar.unit_done(len(records))
                    for cfg, record in zip(unit.configs, records):
                        results.append(record)
                        status.add(cfg, unit.backend, record)
    except KeyboardInterrupt:
        interrupted = True
    except WriteFailed as e:  # a full disk, a quota: the file is as it was before this run
        write_error = e.error
    finally:
        if ctx.bar:
            ctx.bar.close()
        results.close()
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


def build_report(out: pathlib.Path, tensorboard: bool = True) -> int:
    from comparison.report import write_report

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
    if tensorboard:
        write_tensorboard(records, out)
    return 0


def write_tensorboard(records: list[dict], out: pathlib.Path) -> None:
    """OUT/tensorboard: one TensorBoard run per record (comparison/tensorboard.py), or exit."""
    try:
        from comparison.tensorboard import write_events

        logdir = write_events(records, out / "tensorboard")
    except ImportError as e:
        fail(
            f"TensorBoard event files need tensorboardX ({e}); install it with "
            "pip install tensorboardX, or pass --no-tensorboard"
        )
    except OSError as e:
        fail(
            f"cannot write the TensorBoard files in {out} ({e.strerror or e}); the results are "
            f"intact: free some space and write them with compare.py --report {out}",
            code=1,
        )
    print(f"[compare] TensorBoard: tensorboard --logdir {logdir} ({len(records)} runs)")


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
        return build_report(pathlib.Path(args.report), not args.no_tensorboard)
    grid = grid_from_args(args)
    runs = grid.runs()
    if args.list:
        for i, cfg in enumerate(runs, 1):
            print(f"{i:4d}  {cfg.describe()}")
        print(count_line(runs, args.backend))
        return 0
    out = pathlib.Path(args.out or f"runs/{grid.name}")
    code = run_all(args, runs, out)
    if code == 0:
        code = build_report(out, not args.no_tensorboard)
    return code


if __name__ == "__main__":
    sys.exit(main())
