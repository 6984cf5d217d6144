"""Steady-state time of one training step, torch vs JAX, measured in one process, rounds interleaved.

    python benchmarks/bench_step.py                                    # the baseline config
    python benchmarks/bench_step.py --set batch_size=100,300,600       # a sweep: one table row per config
    python benchmarks/bench_step.py --set hidden_layers=1,3 --steps 300 --rounds 7 --device cpu

Each twin is set up as its `train` does it (data resident on the device, the shared initial weights,
epoch 0's batch order) and runs its own hot loop: `get_batch` + `train_step`, the JAX step through
`nnx.cached_partial`, the torch step through `functools.partial`. The first step (compilation /
warm-up) is timed apart. Then rounds alternate torch, JAX, torch, JAX, ...: each round runs `--steps`
steps and synchronises once at its end (shared/timing.py's rule), so a slow spell of the machine hits
both. Printed per config: the median µs/step of each twin with its spread over rounds, the torch/JAX
ratio of the medians, and the matmul GFLOP/s each achieves. The ratio is measured in one run on one
machine; compare ratios, not absolute times, across machines. A benchmark, not a test.
"""

from __future__ import annotations

import contextlib
import pathlib
import statistics
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from shared.batches import epoch_index_matrix  # noqa: E402
from shared.cli import ArgumentParser, add_run_args, fail, grid_from_args  # noqa: E402
from shared.config import Config  # noqa: E402
from shared.data import DataError, Dataset, load_dataset  # noqa: E402
from shared.machine import configure_threads  # noqa: E402


def matmul_flops(cfg: Config) -> int:
    """Multiply-adds x 2 of one training step's matmuls: forward, weight gradients, and input
    gradients for every layer but the first (nothing needs d loss / d images)."""
    layers = list(zip(cfg.layer_sizes[:-1], cfg.layer_sizes[1:]))  # (fan_in, fan_out) per layer
    per_sample = sum(2 * i * o for i, o in layers)  # forward
    per_sample += sum(2 * i * o for i, o in layers)  # weight gradients
    per_sample += sum(2 * i * o for i, o in layers[1:])  # input gradients
    return cfg.batch_size * per_sample


def torch_stepper(cfg: Config, data: Dataset, device: str):
    """(run(count) -> last loss, sync(loss), device name), set up by the twin's own functions, as its train does."""
    import torch

    from impls.torch_mlp import runtime
    from impls.torch_mlp import train as twin

    dev = runtime.resolve_device(device)
    images, labels, _, _ = twin.device_data(cfg, data, dev)
    _, _, step = twin.build_training(cfg, dev)
    order = torch.from_numpy(
        epoch_index_matrix(cfg.seed, 0, len(data.train_labels), cfg.batch_size)
    ).to(dev)
    return (
        _runner(step, twin.get_batch, images, labels, order, cfg.steps_per_epoch),
        runtime.device_sync(dev),
        runtime.describe_device(dev),
    )


def jax_stepper(cfg: Config, data: Dataset, device: str):
    """(run(count) -> last loss, sync(loss), device name), set up by the twin's own functions, as its train does."""
    import jax
    import numpy as np

    from impls.flax_mlp import runtime
    from impls.flax_mlp import train as twin

    dev = runtime.resolve_device(device)
    images, labels, _, _ = twin.device_data(cfg, data, dev)
    _, _, step = twin.build_training(cfg, dev)
    order = jax.device_put(
        epoch_index_matrix(cfg.seed, 0, len(data.train_labels), cfg.batch_size).astype(np.int32),
        dev,
    )
    return (
        _runner(step, twin.get_batch, images, labels, order, cfg.steps_per_epoch),
        runtime.device_sync(dev),
        runtime.describe_device(dev),
    )


def _runner(step, get_batch, images, labels, order, steps_per_epoch):
    """The twins' hot loop as `run(count)`, cycling through epoch 0's batches."""
    position = 0

    def run(count: int):
        nonlocal position
        for _ in range(count):
            loss = step(*get_batch(images, labels, order, position % steps_per_epoch))
            position += 1
        return loss

    return run


def bench(cfg: Config, data: Dataset, device: str, steps: int, rounds: int) -> dict:
    """Per backend: first-step seconds, per-round µs/step, device name."""
    from impls.flax_mlp import runtime as jax_runtime
    from impls.torch_mlp import runtime as torch_runtime

    out = {}
    with contextlib.ExitStack() as stack:
        for runtime in (
            torch_runtime,
            jax_runtime,
        ):  # both twins' TF32 setting and dtype, as in train
            stack.enter_context(runtime.matmul_precision(cfg.tf32))
            stack.enter_context(runtime.dtype_scope(cfg.dtype))
        runners = {}
        for name, stepper in (("torch", torch_stepper), ("jax", jax_stepper)):
            run, sync, where = stepper(cfg, data, device)
            t0 = time.perf_counter()
            sync(run(1))  # compilation / CUDA warm-up
            first_s = time.perf_counter() - t0
            sync(
                run(max(1, steps // 10))
            )  # a few steady steps before the clock starts (caches, allocator)
            runners[name] = run, sync
            out[name] = {"first_s": first_s, "rounds": [], "device": where}
        for _ in range(rounds):
            for name, (run, sync) in runners.items():
                t0 = time.perf_counter()
                sync(run(steps))
                out[name]["rounds"].append(1e6 * (time.perf_counter() - t0) / steps)
    return out


def check_devices(device: str) -> None:
    """--device gpu where a framework sees no GPU: one line now, before the data is loaded."""
    from impls.flax_mlp import runtime as jax_runtime
    from impls.torch_mlp import runtime as torch_runtime

    for runtime in (torch_runtime, jax_runtime):
        try:
            runtime.resolve_device(device)
        except RuntimeError as e:
            fail(str(e))


def parse_bench_args(
    prog: str, doc: str, round_of: str, default_rounds: int, argv: list[str] | None
):
    """The step benchmarks' shared start: flags, threads, checks, data. (args, runs, {dataset: Dataset}).
    round_of names what a timed round times, for --help ('backend', 'loop')."""
    parser = ArgumentParser(prog=prog, description=doc.split("\n\n")[0])
    add_run_args(parser)
    parser.add_argument(
        "--steps", type=int, default=200, help="steps per timed round (default 200)"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=default_rounds,
        help=f"timed rounds per {round_of}, interleaved (default {default_rounds})",
    )
    args = parser.parse_args(argv)
    configure_threads()  # as compare.py does, before torch loads (shared/machine.py)
    if args.steps < 1 or args.rounds < 1:
        fail(f"--steps and --rounds must be >= 1; got {args.steps} and {args.rounds}")
    runs = grid_from_args(args).runs()
    check_devices(args.device)
    try:
        data = {
            name: load_dataset(name, args.data_dir) for name in sorted({c.dataset for c in runs})
        }
    except DataError as e:
        fail(str(e))
    return args, runs, data


def main(argv: list[str] | None = None) -> int:
    args, runs, data = parse_bench_args("bench_step.py", __doc__, "backend", 5, argv)

    header = (
        "config",
        "torch µs/step",
        "JAX µs/step",
        "torch/JAX",
        "torch GFLOP/s",
        "JAX GFLOP/s",
        "first step torch / JAX",
    )
    rows = []
    for cfg in runs:
        try:
            r = bench(cfg, data[cfg.dataset], args.device, args.steps, args.rounds)
        except RuntimeError as e:  # --device gpu where a framework sees none
            fail(str(e))
        med = {b: statistics.median(r[b]["rounds"]) for b in r}
        spread = {
            b: f"{med[b]:.0f} ({min(r[b]['rounds']):.0f}-{max(r[b]['rounds']):.0f})" for b in r
        }
        gflops = {b: matmul_flops(cfg) / (med[b] * 1e3) for b in r}
        rows.append(
            (
                f"{cfg.hidden_layers}x{cfg.hidden_size} b{cfg.batch_size} {cfg.activation} {cfg.output}",
                spread["torch"],
                spread["jax"],
                f"{med['torch'] / med['jax']:.2f}",
                f"{gflops['torch']:.1f}",
                f"{gflops['jax']:.1f}",
                f"{r['torch']['first_s']:.3f} s / {r['jax']['first_s']:.3f} s",
            )
        )
        print(
            f"{rows[-1][0]}: torch {spread['torch']} µs/step, JAX {spread['jax']} µs/step, "
            f"torch/JAX {rows[-1][3]}",
            flush=True,
        )

    print(
        f"\ndevices: torch {r['torch']['device']}, JAX {r['jax']['device']}; "
        f"{args.rounds} interleaved rounds of {args.steps} steps each; median (min-max) per round\n"
    )
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print(
        "\ntorch/JAX > 1: JAX's step is faster. GFLOP/s counts the step's matmuls only (forward, weight "
        "and input gradients)."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
