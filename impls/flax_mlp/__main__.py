"""python -m impls.flax_mlp [--config NAME|FILE.toml] [--set KEY=VALUE ...] [--data-dir DIR]
[--device auto|cpu|gpu]: train.py over every run of the config, printing the tutorial's lines.
The twin: python -m impls.torch_mlp.
"""

import sys

from shared.cli import backend_args, dataset, fail, summary


def main(argv: list[str] | None = None) -> int:
    prog = "python -m impls.flax_mlp"
    args, runs = backend_args(prog, "JAX + Flax NNX", argv)
    # The framework is imported once the flags are known to be good, so that bad flags fail at once.
    from impls.flax_mlp import runtime, train

    try:
        device = runtime.resolve_device(args.device)
    except RuntimeError as e:
        fail(str(e), prog=prog)
    for n, cfg in enumerate(runs, 1):
        print(
            f"== run {n}/{len(runs)} on {runtime.describe_device(device)}: {cfg.key()}", flush=True
        )
        data = dataset(cfg.dataset, args.data_dir)
        record = train.train(cfg, data, args.device, log=lambda line: print(line, flush=True))
        print(summary(record, len(data.test_labels)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
