"""python -m impls.flax_mlp [--config NAME|FILE.toml] [--set KEY=VALUE ...] [--data-dir DIR] [--device auto|cpu|gpu]

Trains every run of the sweep with JAX + Flax NNX, printing the seed's log lines, then the seed's closing line
(`Accuracy of the network on the 10000 test images: 97.9 %`), the wall time and the time per step.
Bad flags, missing data or a missing GPU: one line on stderr and exit 2. The twin: python -m impls.torch_mlp.
"""

from __future__ import annotations

import sys

from shared.cli import ArgumentParser, add_run_args, fail, sweep_from_args

PROG = "python -m impls.flax_mlp"


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog=PROG, description="Train the MNIST MLP with JAX + Flax NNX (the seed's loop).")
    add_run_args(parser)
    args = parser.parse_args(argv)
    runs = sweep_from_args(args).runs()

    # The framework is imported once the flags are known to be good, so that bad flags fail at once.
    from impls.flax_mlp.train import describe_device, resolve_device, train
    from shared.data import DataError, load_dataset

    try:
        device = resolve_device(args.device)
    except RuntimeError as e:
        fail(str(e), prog=PROG)
    datasets = {}
    for n, cfg in enumerate(runs, 1):
        print(f"== run {n}/{len(runs)} on {describe_device(device)}: {cfg.key()}", flush=True)
        if cfg.dataset not in datasets:
            try:
                datasets[cfg.dataset] = load_dataset(cfg.dataset, args.data_dir)
            except DataError as e:
                fail(str(e), prog=PROG)
        data = datasets[cfg.dataset]
        record = train(cfg, data, args.device, log=lambda line: print(line, flush=True))
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
    return (f"{head}\nWall time: {record['wall_s']:.1f} s ({record['steps']} steps, {per_step}, "
            f"first step {record['compile_s']:.2f} s)")


if __name__ == "__main__":
    sys.exit(main())
