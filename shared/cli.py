"""Command-line pieces every entry point shares: the same flags, one-line errors, exit 2."""

from __future__ import annotations

import argparse
import sys

from shared.checkpoint import CheckpointError, read_config
from shared.config import FIELD_NAMES, PRESETS, ConfigError, Grid, resolve

_prog = "mlp-twins"  # the name errors start with: the last ArgumentParser's prog


class ArgumentParser(argparse.ArgumentParser):
    """argparse that reports bad input as one line and exits 2 (no usage dump, no traceback)."""

    def __init__(self, *args, **kwargs):
        global _prog
        super().__init__(*args, **kwargs)
        _prog = self.prog

    def error(self, message: str):  # type: ignore[override]
        fail(f"{message} (see {self.prog} --help)", prog=self.prog)


def fail(message: str, prog: str | None = None, code: int = 2):
    """Print one clear line to stderr and exit non-zero."""
    print(f"{prog or _prog}: error: {message}", file=sys.stderr)
    raise SystemExit(code)


def add_run_args(p: argparse.ArgumentParser) -> None:
    """--config, --set, --data-dir, --device: the flags compare.py and both impls share."""
    p.add_argument(
        "--config",
        default="baseline",
        metavar="NAME|FILE.toml",
        help=f"a preset ({', '.join(PRESETS)}) or a TOML file of Config fields (default: baseline)",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"override a field; a comma list (hidden_size=400,600) makes a grid axis. "
        f"Fields: {', '.join(FIELD_NAMES)}",
    )
    p.add_argument(
        "--data-dir",
        default=None,
        metavar="DIR",
        help="folder with the four MNIST IDX files (default: $MLP_TWINS_DATA, then the cache, "
        "then tensorflow-datasets, then download)",
    )
    p.add_argument(
        "--device",
        default="auto",
        choices=("auto", "cpu", "gpu"),
        help="auto: the GPU when there is one, else the CPU (default: auto)",
    )


def grid_from_args(args: argparse.Namespace) -> Grid:
    """The validated grid the flags describe, or exit 2 with the field named."""
    try:
        return resolve(args.config, args.set)
    except ConfigError as e:
        fail(str(e))


def backend_args(
    prog: str, framework: str, argv: list[str] | None = None
) -> tuple[argparse.Namespace, list]:
    """`python -m impls.<twin>`'s flags, parsed and validated: (args, the runs of the grid), or
    exit 2."""
    parser = ArgumentParser(
        prog=prog, description=f"Train the MNIST MLP with {framework} (the tutorial's loop)."
    )
    add_run_args(parser)
    parser.add_argument(
        "--save-models",
        default=None,
        metavar="DIR",
        help="save each finished run's model in DIR/<run name>/ (shared/checkpoint.py); "
        f"evaluate one with: {prog} evaluate PATH",
    )
    args = parser.parse_args(argv)
    runs = grid_from_args(args).runs()
    # The caller imports its framework after this returns: set its threads first
    # (shared/timing.py).
    from shared.timing import configure_threads

    configure_threads()
    return args, runs


def evaluate_args(prog: str, framework: str, argv: list[str] | None = None):
    """`python -m impls.<twin> evaluate PATH`'s flags: (args, the Config of the model), or exit 2.

    The Config is --config/--set where given, else the config.json saved beside PATH, else the
    baseline."""
    parser = ArgumentParser(
        prog=prog,
        description=f"Evaluate a saved model (torch.pt, jax.orbax) on the test set: {framework}.",
    )
    parser.add_argument("path", metavar="PATH", help="a torch.pt file or a jax.orbax folder")
    add_run_args(parser)
    parser.set_defaults(config=None)
    args = parser.parse_args(argv)
    if args.config is None and not args.set:
        try:
            cfg = read_config(args.path)
        except CheckpointError as e:
            fail(str(e))
        if cfg is not None:
            return args, cfg
    args.config = args.config or "baseline"
    runs = grid_from_args(args).runs()
    if len(runs) != 1:
        fail(f"--set: {len(runs)} configurations; allowed: one (a model has one configuration)")
    return args, runs[0]


_datasets: dict = {}  # (name, data_dir) -> Dataset: each dataset is loaded once per process


def dataset(name: str, data_dir: str | None, verbose: bool = True):
    """The dataset `name`, loaded (and checked) once per process, or exit 2 with the problem named.
    `verbose`: say where it came from when it is loaded ("[data] mnist: ...")."""
    from shared.data import DataError, load_dataset

    if (name, data_dir) not in _datasets:
        try:
            _datasets[name, data_dir] = load_dataset(name, data_dir, verbose=verbose)
        except DataError as e:
            fail(str(e))
    return _datasets[name, data_dir]


def summary(record: dict, n_test: int) -> str:
    """The tutorial's closing line, then the times: wall, per step, and the first step (compile
    / warm-up)."""
    if record["epochs"]:
        accuracy = 100 * record["epochs"][-1]["test_accuracy"]
        head = f"Accuracy of the network on the {n_test} test images: {accuracy:.2f} %"
    else:
        head = "No epoch finished, so no test accuracy"
    if record["status"] != "ok":
        head += f" (status: {record['status']} after {record['steps']} steps)"
    us = record["step_time_us"]
    per_step = f"{us:.0f} µs/step" if us is not None else "no steady steps timed"
    first = f"{record['warmup_s']:.2f} s" if record["warmup_s"] is not None else "-"
    steps = f"{record['steps']} steps, {per_step}, first step {first}"
    return f"{head}\nWall time: {record['wall_s']:.1f} s ({steps})"
