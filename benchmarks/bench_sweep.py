"""Member-steps per second, the loop (train.py) vs the sweep engine (sweep.py), in one process.

    # 784-500-10, 16 members, batch 100/300/600
    python benchmarks/bench_sweep.py
    # quick
    python benchmarks/bench_sweep.py --batches 100 --steps 20 --rounds 2 --members 4 --hidden 64
    # 784-500-500-10: the deeper layers' batched matmuls
    python benchmarks/bench_sweep.py --layers 2

A *member-step* is one step of one grid member. The loop does one per call (one run at a time, as
`compare.py --engine loop`); the sweep does M per step (the members of a group: the grid's learning
rates x activations x outputs, 16 by default). Each is set up as its `train` / `train_group` does it
(data resident on the device, the shared initial weights, epoch 0's batch order); the first call
(compilation, warm-up) is timed apart; then each round times every path's loop, sweep and floor
in turn, each synchronised once at its end (shared/timing.py's rule), so a slow spell of the
machine hits every path alike.
Three paths: torch eager, torch compiled (Config.compile: the loop's step and the sweep's stacked
step under torch.compile, their compile in the first call), JAX.

Also printed: the matmul GFLOP/s the sweep achieves, against a *GEMM floor* measured in the same run
(the forward and backward matmuls of one sweep step, same shapes, nothing else, in the same
framework): the fraction says how much of a step is arithmetic and how much everything else
(activations, loss, Adam's passes over the state, dispatch). torch eager and torch compiled share
one floor, the median of both paths' floor rounds. Every path runs as the grid's runs do: the
config's TF32 setting (off by default) and dtype in both twins (bench_step.as_trained). Peak
memory, per path: the device's peak on a GPU (marked ≤ where JAX's peak, which cannot be reset,
is only a bound), the process's peak resident size on the CPU (both frameworks share the process,
so it only grows: ≤ on every row). The last line reads
`speedup at batch 100: torch N.NNx, torch compiled N.NNx, jax N.NNx`
(sweep over loop, member-steps/s).
A benchmark, not a test: compare ratios, not absolute times, across machines.
"""

from __future__ import annotations

import dataclasses
import itertools
import pathlib
import resource
import statistics
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
# The imports below need the sys.path line(s) above: the benchmarks run as scripts from any
# folder, so the checkout goes first on the path; hence `noqa: E402` on each.

from bench_step import (  # noqa: E402
    NO_TORCH_COMPILE,
    as_trained,
    check_devices,
    jax_floor,
    jax_stepper,
    matmul_flops,
    torch_floor,
    torch_stepper,
)

from shared.batches import epoch_index_matrix  # noqa: E402
from shared.cli import ArgumentParser, fail  # noqa: E402
from shared.config import ACTIVATIONS, GRID_LEARNING_RATES, OUTPUTS, Config  # noqa: E402
from shared.data import DataError, Dataset, load_dataset  # noqa: E402
from shared.groups import estimate_bytes  # noqa: E402
from shared.timing import configure_threads  # noqa: E402


def members_of(base: Config, count: int) -> list[Config]:
    """`count` members of base's group, cycling through the grid's lr x activation x output."""
    combos = itertools.cycle(itertools.product(GRID_LEARNING_RATES, ACTIVATIONS, OUTPUTS))
    return [
        dataclasses.replace(base, learning_rate=lr, activation=a, output=o)
        for lr, a, o in itertools.islice(combos, count)
    ]


def gemm_flops(cfg: Config, members: int) -> int:
    """The matmul FLOPs of one sweep step: the loop's (bench_step.matmul_flops) times M."""
    return members * matmul_flops(cfg)


def torch_sweeper(cfgs: list[Config], data: Dataset, device: str, steps: int):
    """(run() -> losses of `steps` steps of every member, sync, gemm() -> the matmuls alone, device
    name)."""
    import torch

    from impls.torch_mlp import runtime, sweep

    cfg, dev = cfgs[0], runtime.resolve_device(device)
    images, labels, _, _ = sweep.device_data(cfg, data, dev)  # (60000, 784), (60000,)
    params = sweep.init_params(cfg, len(cfgs), dev)
    opt_state = sweep.init_adam(params)
    members = sweep.member_constants(cfgs, dev)
    alive = torch.ones(len(cfgs), dtype=torch.bool, device=dev)
    order = torch.from_numpy(
        epoch_index_matrix(cfg.seed, 0, len(data.train_labels), cfg.batch_size)[:steps]
    ).to(dev)

    # as sweep._train_part does: compiled ahead (with cfg.compile; on copies of the state)
    state = sweep.State(params, opt_state, alive)
    run_epoch, _ = sweep.compile_epoch(cfg, state, members, images, labels, order)

    def run():
        state = sweep.State(params, opt_state, alive)
        return run_epoch(state, members, images, labels, order)[1]

    gemm = torch_floor(cfg, len(cfgs), device, steps)
    return run, runtime.device_sync(dev), gemm, runtime.describe_device(dev)


def jax_sweeper(cfgs: list[Config], data: Dataset, device: str, steps: int):
    """(run() -> losses of `steps` steps of every member, sync, gemm() -> the matmuls alone, device
    name)."""
    import jax
    import numpy as np

    from impls.flax_mlp import runtime, sweep

    cfg, dev = cfgs[0], runtime.resolve_device(device)
    # Every array is put on `dev` explicitly, as train_group does: jitted code runs where its
    # inputs are.
    images, labels, _, _ = sweep.device_data(cfg, data, dev)  # (60000, 784), (60000,)
    params = sweep.init_params(cfg, len(cfgs), dev)
    members = sweep.member_constants(cfgs, dev)
    alive = jax.device_put(np.ones(len(cfgs), dtype=bool), dev)
    state = {"now": sweep.State(params, sweep.init_adam(params), alive)}
    order = jax.device_put(
        epoch_index_matrix(cfg.seed, 0, len(data.train_labels), cfg.batch_size)[:steps].astype(
            np.int32
        ),
        dev,
    )
    # as sweep._train_part does: the whole epoch compiled ahead of time
    epoch, _ = sweep.compile_epoch(cfg, state["now"], members, images, labels, order)

    def run():
        state["now"], losses = epoch(state["now"], members, images, labels, order)
        return losses

    gemm = jax_floor(cfg, len(cfgs), device, steps)
    return run, runtime.device_sync(dev), gemm, runtime.describe_device(dev)


def peak_meter(framework: str, device: str):
    """peak() -> (bytes, exact): the peak memory of one path from now on (its setup, first calls).

    torch on a GPU: its peak counter reset now, less what other paths still hold (exact). JAX
    cannot reset its peak: exact when its process-wide peak rose during the path, else only an
    upper bound. On the CPU: the process's peak resident size, which only grows (an upper bound).
    """
    if framework == "torch":
        import torch

        from impls.torch_mlp import runtime

        dev = runtime.resolve_device(device)
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)
            held = torch.cuda.memory_allocated(dev)
            return lambda: (torch.cuda.max_memory_allocated(dev) - held, True)
    else:
        from impls.flax_mlp import runtime

        dev = runtime.resolve_device(device)
        stats = dev.memory_stats() if dev.platform == "gpu" else None
        if stats:
            held, before = stats.get("bytes_in_use", 0), stats.get("peak_bytes_in_use", 0)

            def peak():
                now = dev.memory_stats().get("peak_bytes_in_use", 0)
                return now - held, now > before

            return peak
    return lambda: (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, False)  # KiB


# The paths timed side by side: (name, loop's stepper, sweeper, compile).
PATHS = (
    ("torch", torch_stepper, torch_sweeper, False),
    ("torch compiled", torch_stepper, torch_sweeper, True),  # torch.compile (Config.compile)
    ("jax", jax_stepper, jax_sweeper, False),
)


def bench(
    base: Config, data: Dataset, device: str, members: int, steps: int, rounds: int, *, paths=PATHS
) -> dict:
    """Per path (of PATHS): loop and sweep µs per member-step (per round), first-call seconds,
    GEMM floor µs/step. Every path is set up first; then each round times every path in turn
    (loop, sweep, floor), so that a slow spell of a shared machine falls on all paths alike."""
    cfgs = members_of(base, members)
    loop_cfg = dataclasses.replace(base, learning_rate=1e-3)  # relu logits: the loop's step
    out, runs = {}, {}
    with as_trained(base):  # TF32 off and the dtype, as the grid's runs (bench_step.as_trained)
        for name, stepper, sweeper, compiled in paths:
            peak = peak_meter(name.split()[0], device)
            run_loop, sync_loop, where = stepper(
                dataclasses.replace(loop_cfg, compile=compiled), data, device
            )
            t0 = time.perf_counter()
            sync_loop(run_loop(1))
            first_loop = time.perf_counter() - t0
            t0 = time.perf_counter()
            run_sweep, sync_sweep, gemm, _ = sweeper(
                [dataclasses.replace(c, compile=compiled) for c in cfgs], data, device, steps
            )
            sync_sweep(run_sweep())  # includes the ahead-of-time compile (JAX, torch compiled)
            first_sweep = time.perf_counter() - t0
            sync_sweep(gemm())
            # Each path's peak before the next is set up.
            out[name] = {"loop": [], "sweep": [], "gemm": [], "first_s": (first_loop, first_sweep)}
            out[name].update(device=where, peak=peak())
            runs[name] = (run_loop, sync_loop, run_sweep, sync_sweep, gemm)
        # A CompiledStep resets dynamo (impls/torch_mlp/fast.py): the compiled loop's step compiles
        # again here, before the timed rounds.
        if "torch compiled" in runs:
            run_loop, sync_loop = runs["torch compiled"][:2]
            sync_loop(run_loop(1))
        for _ in range(rounds):
            for name, (run_loop, sync_loop, run_sweep, sync_sweep, gemm) in runs.items():
                r = out[name]
                t0 = time.perf_counter()
                sync_loop(run_loop(steps))
                r["loop"].append(1e6 * (time.perf_counter() - t0) / steps)  # one member per step
                t0 = time.perf_counter()
                sync_sweep(run_sweep())
                member_steps = steps * members
                r["sweep"].append(1e6 * (time.perf_counter() - t0) / member_steps)
                t0 = time.perf_counter()
                sync_sweep(gemm())
                r["gemm"].append(1e6 * (time.perf_counter() - t0) / steps)  # per group step
    return out


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="bench_sweep.py", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--batches",
        default="100,300,600",
        help="batch sizes, comma-separated (default 100,300,600)",
    )
    parser.add_argument(
        "--hidden", type=int, default=500, help="hidden units per layer (default 500)"
    )
    parser.add_argument(
        "--layers", type=int, default=1, help="hidden layers, 1 to 3 as in the grid (default 1)"
    )
    parser.add_argument(
        "--members", type=int, default=16, help="members in the group (default 16, the grid's)"
    )
    parser.add_argument(
        "--steps",
        type=int,
        default=60,
        help="steps per timed round (default 60; at most one epoch)",
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="timed rounds, interleaved (default 3)"
    )
    parser.add_argument(
        "--data-dir", default=None, metavar="DIR", help="folder with the MNIST IDX files"
    )
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "gpu"))
    parser.add_argument("--no-torch-compile", action="store_true", help=NO_TORCH_COMPILE)
    args = parser.parse_args(argv)
    paths = [p for p in PATHS if not (args.no_torch_compile and p[3])]
    try:
        batches = [int(b) for b in args.batches.split(",")]
    except ValueError:
        fail(
            f"--batches: got {args.batches!r}; allowed: comma-separated integers such as "
            "100,300,600"
        )
    if args.steps < 1 or args.rounds < 1 or args.members < 1 or args.hidden < 1:
        fail(
            "--steps, --rounds, --members and --hidden must be >= 1; got "
            f"{args.steps}, {args.rounds}, {args.members}, {args.hidden}"
        )
    if not 1 <= args.layers <= 3:
        fail(f"--layers: got {args.layers}; allowed: 1, 2 or 3 (the grid's depths)")
    if not batches or any(not 1 <= b <= 60_000 // args.steps for b in batches):
        fail(
            f"--batches: got {args.batches!r}; allowed: 1 to {60_000 // args.steps} with "
            f"--steps {args.steps} (a round stays within one epoch)"
        )
    configure_threads()  # as compare.py does, before torch loads (shared/timing.py)
    check_devices(args.device)  # --device gpu with no GPU: one line, before the data is loaded
    try:
        data = load_dataset("mnist", args.data_dir)
    except DataError as e:
        fail(str(e))

    header = (
        "config",
        "framework",
        "loop member-steps/s",
        "sweep member-steps/s",
        "sweep/loop",
        "sweep GFLOP/s",
        "GEMM floor GFLOP/s",
        "of floor",
        "est. / peak memory",
        "first call loop / sweep",
    )
    rows, speedup = [], {}
    for batch in batches:
        base = Config(hidden_size=args.hidden, hidden_layers=args.layers, batch_size=batch)
        try:
            r = bench(base, data, args.device, args.members, args.steps, args.rounds, paths=paths)
        except RuntimeError as e:  # --device gpu where a framework sees none
            fail(str(e))
        # torch eager and torch compiled time the same matmuls as their floor: one median over
        # both paths' rounds, so the two rows divide by one number (a floor timed per path moved
        # by up to 30 % between them on this VM, idle).
        floors: dict[str, list[float]] = {}
        for name, x in r.items():
            floors.setdefault(name.split()[0], []).extend(x["gemm"])
        for name, x in r.items():
            loop_us, sweep_us = (statistics.median(x[k]) for k in ("loop", "sweep"))
            gemm_us = statistics.median(floors[name.split()[0]])
            flops = gemm_flops(base, args.members)
            achieved, floor = flops / (sweep_us * args.members * 1e3), flops / (gemm_us * 1e3)
            ratio = loop_us / sweep_us
            if batch == batches[0]:
                speedup[name] = ratio
            rows.append(
                (
                    f"{args.layers}x{args.hidden} b{batch} M={args.members}",
                    name,
                    f"{1e6 / loop_us:,.0f}",
                    f"{1e6 / sweep_us:,.0f}",
                    f"{ratio:.2f}x",
                    f"{achieved:.0f}",
                    f"{floor:.0f}",
                    f"{100 * achieved / floor:.0f}%",
                    f"{estimate_bytes(base, args.members) / 2**20:.0f} / "
                    f"{'' if x['peak'][1] else '≤ '}{x['peak'][0] / 2**20:.0f} MiB",
                    f"{x['first_s'][0]:.2f} s / {x['first_s'][1]:.2f} s",
                )
            )
            print(
                f"{rows[-1][0]} {name}: loop {rows[-1][2]}, sweep {rows[-1][3]} member-steps/s "
                f"({rows[-1][4]}), "
                f"{rows[-1][7]} of the GEMM floor",
                flush=True,
            )

    devices = ", ".join(f"{n} {x['device']}" for n, x in r.items())
    print(
        f"\ndevices: {devices}; {args.rounds} interleaved rounds of {args.steps} steps; medians\n"
    )
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print(
        "\nsweep/loop: member-steps per second of the sweep over the loop's. GFLOP/s counts the "
        "matmuls of a step (forward, weight and input gradients); the GEMM floor runs those "
        "matmuls alone."
    )
    print(
        f"speedup at batch {batches[0]}: "
        + ", ".join(f"{name} {ratio:.2f}x" for name, ratio in speedup.items())
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
