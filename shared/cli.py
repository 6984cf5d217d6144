"""Command-line pieces every entry point shares: the same flags, one-line errors, exit 2."""

from __future__ import annotations

import argparse
import importlib
import sys

from shared.config import FIELD_NAMES, PRESETS, ConfigError, Sweep, resolve


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
    p.add_argument("--config", default="baseline", metavar="NAME|FILE.toml",
                   help=f"a preset ({', '.join(PRESETS)}) or a TOML file of Config fields (default: baseline)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help=f"override a field; a comma list (hidden_size=400,600) makes a grid axis. "
                        f"Fields: {', '.join(FIELD_NAMES)}")
    p.add_argument("--data-dir", default=None, metavar="DIR",
                   help="folder with the four MNIST IDX files (default: $MLP_TWINS_DATA, then the cache, "
                        "then tensorflow-datasets, then download)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "gpu"),
                   help="auto: the GPU when there is one, else the CPU (default: auto)")


def sweep_from_args(args: argparse.Namespace) -> Sweep:
    """The validated sweep the flags describe, or exit 2 with the field named."""
    try:
        return resolve(args.config, args.set)
    except ConfigError as e:
        fail(str(e))


def backend_main(package: str, framework: str, argv: list[str] | None = None) -> int:
    """`python -m impls.<twin>`: train every run of the sweep with one framework, printing the seed's
    log lines and closing line. Both twins' __main__.py call this with their own package."""
    prog = f"python -m {package}"
    parser = ArgumentParser(prog=prog, description=f"Train the MNIST MLP with {framework} (the seed's loop).")
    add_run_args(parser)
    args = parser.parse_args(argv)
    runs = sweep_from_args(args).runs()

    # The framework is imported once the flags are known to be good, so that bad flags fail at once,
    # and after its threads are set (shared/machine.py).
    from shared.machine import configure_threads

    configure_threads()
    twin = importlib.import_module(f"{package}.train")
    from shared.data import DataError, load_dataset

    try:
        device = twin.resolve_device(args.device)
    except RuntimeError as e:
        fail(str(e), prog=prog)
    datasets = {}
    for n, cfg in enumerate(runs, 1):
        print(f"== run {n}/{len(runs)} on {twin.describe_device(device)}: {cfg.key()}", flush=True)
        if cfg.dataset not in datasets:
            try:
                datasets[cfg.dataset] = load_dataset(cfg.dataset, args.data_dir)
            except DataError as e:
                fail(str(e), prog=prog)
        data = datasets[cfg.dataset]
        record = twin.train(cfg, data, args.device, log=lambda line: print(line, flush=True))
        print(summary(record, len(data.test_labels)), flush=True)
    return 0


def summary(record: dict, n_test: int) -> str:
    """The seed's closing line, then the times: wall, per step, and the first step (compile / warm-up)."""
    if record["epochs"]:
        accuracy = 100 * record["epochs"][-1]["test_accuracy"]
        head = f"Accuracy of the network on the {n_test} test images: {accuracy:.2f} %"
    else:
        head = "No epoch finished, so no test accuracy"
    if record["status"] != "ok":
        head += f" (status: {record['status']} after {record['steps']} steps)"
    us = record["step_time_us"]
    per_step = f"{us:.0f} µs/step" if us is not None else "no steady steps timed"
    first = f"{record['compile_s']:.2f} s" if record["compile_s"] is not None else "-"
    return f"{head}\nWall time: {record['wall_s']:.1f} s ({record['steps']} steps, {per_step}, first step {first})"
