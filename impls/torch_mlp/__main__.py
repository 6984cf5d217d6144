"""python -m impls.torch_mlp [--config NAME|FILE.toml] [--set KEY=VALUE ...] [--data-dir DIR] [--device auto|cpu|gpu]

Trains every run of the sweep with PyTorch, printing the seed's log lines, then the seed's closing line
(`Accuracy of the network on the 10000 test images: 97.9 %`), the wall time and the time per step.
Bad flags, missing data or a missing GPU: one line on stderr and exit 2. The twin: python -m impls.flax_mlp.
The loop itself has no framework line, so it lives in shared/cli.py (`backend_main`); the framework
is in impls/torch_mlp/train.py.
"""

import sys

from shared.cli import backend_main


def main(argv: list[str] | None = None) -> int:
    return backend_main("impls.torch_mlp", "PyTorch", argv)


if __name__ == "__main__":
    sys.exit(main())
