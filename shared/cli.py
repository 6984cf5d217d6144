"""Command-line pieces every entry point shares: the same flags, one-line errors, exit 2."""

from __future__ import annotations

import argparse
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
