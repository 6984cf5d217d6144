"""Steady-state time of one training step: torch eager, torch compiled and JAX, in one process.

    python benchmarks/bench_step.py                                # the baseline config
    python benchmarks/bench_step.py --set batch_size=100,300,600   # one table row per config
    python benchmarks/bench_step.py --set hidden_layers=1,3 --steps 300 --rounds 7 --device cpu

Each path is set up as its twin's `train` does it (data resident on the device, the shared initial
weights, epoch 0's batch order) and runs its own hot loop: `get_batch` + `train_step`, the JAX step
through `nnx.cached_partial`, the torch step through `functools.partial`, and compiled torch's
through fast.FastStep (Config.compile: one torch.compile graph; CUDA graphs on a GPU). The 1st step
(compilation / warm-up) is timed apart. Then rounds alternate the paths and each one's GEMM floor
(the step's matmuls alone, same shapes, same framework): each round runs `--steps` steps and
synchronises once at its end (shared/timing.py's rule), so a slow spell of the machine hits all.
Printed per config: the median µs/step of each path with its spread over rounds, the ratios to JAX
of the medians, and each path's share of its floor. Ratios are measured in one run on one machine;
compare ratios, not absolute times, across machines. A benchmark, not a test.
"""

from __future__ import annotations

import contextlib
import dataclasses
import pathlib
import statistics
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# The imports below need the sys.path line(s) above: the benchmarks run as scripts from any
# folder, so the checkout goes first on the path; hence `noqa: E402` on each.

from shared.batches import epoch_index_matrix  # noqa: E402
from shared.cli import ArgumentParser, add_run_args, fail, grid_from_args  # noqa: E402
from shared.config import Config  # noqa: E402
from shared.data import DataError, Dataset, load_dataset  # noqa: E402
from shared.timing import configure_threads  # noqa: E402


def matmul_flops(cfg: Config) -> int:
    """Multiply-adds x 2 of one training step's matmuls: forward, weight gradients, and input
    gradients for every layer but the first (nothing needs d loss / d images)."""
    layers = list(zip(cfg.layer_sizes[:-1], cfg.layer_sizes[1:]))  # (fan_in, fan_out) per layer
    per_sample = sum(2 * i * o for i, o in layers)  # forward
    per_sample += sum(2 * i * o for i, o in layers)  # weight gradients
    per_sample += sum(2 * i * o for i, o in layers[1:])  # input gradients
    return cfg.batch_size * per_sample


def torch_stepper(cfg: Config, data: Dataset, device: str):
    """(run(count) -> last loss, sync(loss), device name), set up by the twin's own functions, as
    its train does."""
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
        hot_loop(step, twin.get_batch, images, labels, order, cfg.steps_per_epoch),
        runtime.device_sync(dev),
        runtime.describe_device(dev),
    )


def jax_stepper(cfg: Config, data: Dataset, device: str):
    """(run(count) -> last loss, sync(loss), device name), set up by the twin's own functions, as
    its train does."""
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
        hot_loop(step, twin.get_batch, images, labels, order, cfg.steps_per_epoch),
        runtime.device_sync(dev),
        runtime.describe_device(dev),
    )


def hot_loop(step, get_batch, images, labels, order, steps_per_epoch):
    """The twins' hot loop as `run(count)`, cycling through epoch 0's batches."""
    position = 0

    def run(count: int):
        nonlocal position
        for _ in range(count):
            loss = step(*get_batch(images, labels, order, position % steps_per_epoch))
            position += 1
        return loss

    return run


def floor_shapes(cfg: Config, members: int) -> tuple[tuple, list[tuple], list[tuple]]:
    """Shapes of one sweep step's matmul operands: x (B, 784); weights (784, M, n) then
    (M, in, out); activations (M, B, in) of the deeper layers."""
    sizes = cfg.layer_sizes
    weights = [(784, members, sizes[1])] + [(members, i, o) for i, o in zip(sizes[1:], sizes[2:])]
    return (cfg.batch_size, 784), weights, [(members, cfg.batch_size, w[1]) for w in weights[1:]]


def torch_floor(cfg: Config, members: int, device: str, steps: int):
    """gemm(): the forward and backward matmuls of `steps` sweep steps, same shapes, alone."""
    import torch

    from impls.torch_mlp import runtime

    dev = runtime.resolve_device(device)
    dtype = torch.float64 if cfg.dtype == "float64" else torch.float32
    x_shape, w_shapes, a_shapes = floor_shapes(cfg, members)
    x = torch.randn(x_shape, dtype=dtype, device=dev)
    ws = [torch.randn(shape, dtype=dtype, device=dev) for shape in w_shapes]
    acts = [torch.randn(shape, dtype=dtype, device=dev) for shape in a_shapes]
    return _repeat(_gemm_step, steps, x, ws, acts)


def _repeat(step, steps: int, *args):
    """gemm(): `step(*args)` `steps` times, returning the last result (what the caller syncs)."""

    def gemm():
        for _ in range(steps):
            out = step(*args)
        return out

    return gemm


def _gemm_step(x, ws, acts):
    import torch

    h = x @ ws[0].reshape(784, -1)  # (B, M*n): the wide first layer
    # (784, M*n): its weight gradient (no input gradient: nothing needs d loss / d images)
    out = [x.T @ h]
    for a, w in zip(acts, ws[1:]):  # a (M, B, in), w (M, in, out)
        y = torch.bmm(a, w)  # (M, B, out): forward
        out += [torch.bmm(a.transpose(1, 2), y), torch.bmm(y, w.transpose(1, 2))]  # dW, dx
    return out[-1]


def jax_floor(cfg: Config, members: int, device: str, steps: int):
    """gemm(): the forward and backward matmuls of `steps` sweep steps, same shapes, alone."""
    import jax
    import numpy as np

    from impls.flax_mlp import runtime

    dev = runtime.resolve_device(device)
    rng = np.random.default_rng(0)
    dtype = np.float64 if cfg.dtype == "float64" else np.float32
    x_shape, w_shapes, a_shapes = floor_shapes(cfg, members)
    x = jax.device_put(rng.standard_normal(x_shape).astype(dtype), dev)
    ws = [jax.device_put(rng.standard_normal(shape).astype(dtype), dev) for shape in w_shapes]
    acts = [jax.device_put(rng.standard_normal(shape).astype(dtype), dev) for shape in a_shapes]
    return _repeat(jax.jit(_jax_gemm_step), steps, x, ws, acts)


def _jax_gemm_step(x, ws, acts):
    import jax.numpy as jnp

    h = x @ ws[0].reshape(784, -1)  # (B, M*n): the wide first layer
    out = [x.T @ h]  # (784, M*n): its weight gradient
    for a, w in zip(acts, ws[1:]):  # a (M, B, in), w (M, in, out)
        y = jnp.einsum("mbi,mio->mbo", a, w)  # forward
        out += [jnp.einsum("mbi,mbo->mio", a, y), jnp.einsum("mbo,mio->mbi", y, w)]  # dW, dx
    return out  # all returned, so XLA computes every one


# The paths timed side by side: (name, stepper, compile): torch eager, torch under torch.compile
# (Config.compile; CUDA graphs on a GPU), JAX (always jitted).
PATHS = (("torch", "torch", False), ("torch compiled", "torch", True), ("JAX", "jax", False))
NO_TORCH_COMPILE = (
    "leave out the torch paths that compile (tens of seconds each on a CPU; "
    "tests/test_compiled.py checks them)"
)


@contextlib.contextmanager
def as_trained(cfg: Config):
    """Both twins' matmul precision (TF32 or IEEE float32) and dtype as their train sets them:
    a benchmark times what a run runs (on a GPU JAX's default float32 matmul is TF32, torch's is
    not, so without this the two would not compute the same thing)."""
    from impls.flax_mlp import runtime as jax_runtime
    from impls.torch_mlp import runtime as torch_runtime

    with contextlib.ExitStack() as stack:
        for runtime in (torch_runtime, jax_runtime):
            stack.enter_context(runtime.matmul_precision(cfg.tf32))
            stack.enter_context(runtime.dtype_scope(cfg.dtype))
        yield


def bench(cfg: Config, data: Dataset, device: str, steps: int, rounds: int, *, paths=PATHS) -> dict:
    """Per path (of PATHS) and per GEMM floor: first-call seconds, per-round µs/step, device."""
    steppers = {"torch": torch_stepper, "jax": jax_stepper}
    out = {}
    with as_trained(cfg):
        runners = {}
        for name, framework, compiled in paths:
            run, sync, where = steppers[framework](
                dataclasses.replace(cfg, compile=compiled), data, device
            )
            runners[name] = run, sync
            out[name] = {"first_s": _first(run, sync, steps), "rounds": [], "device": where}
        # The GEMM floor: one step's matmuls alone, same shapes (the sweep's with one member).
        for name, floor, framework in (
            ("torch GEMM", torch_floor, "torch"),
            ("JAX GEMM", jax_floor, "JAX"),
        ):
            run, sync = ignoring_count(floor(cfg, 1, device, steps)), runners[framework][1]
            runners[name] = run, sync
            out[name] = {"first_s": _first(run, sync, 1), "rounds": [], "device": ""}
        for name, rounds_us in time_rounds(runners, steps, rounds).items():
            out[name]["rounds"] = rounds_us
    return out


def time_rounds(runners: dict, steps: int, rounds: int) -> dict[str, list[float]]:
    """{name: µs/step of each round}: each round runs `steps` steps of every (run, sync) runner in
    turn, synced once at its end, so a slow spell of a shared machine falls on all alike."""
    out = {name: [] for name in runners}
    for _ in range(rounds):
        for name, (run, sync) in runners.items():
            t0 = time.perf_counter()
            sync(run(steps))
            out[name].append(1e6 * (time.perf_counter() - t0) / steps)
    return out


def ignoring_count(gemm):
    """gemm() as run(count): it always times `--steps` steps' matmuls."""
    return lambda count: gemm()


def _first(run, sync, steps: int) -> float:
    """Seconds of the first step (compilation / CUDA warm-up); then a few untimed steady steps."""
    t0 = time.perf_counter()
    sync(run(1))
    first_s = time.perf_counter() - t0
    sync(run(max(1, steps // 10)))  # caches, allocator, CUDA graph recording
    return first_s


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
    prog: str, doc: str, round_of: str, default_rounds: int, argv: list[str] | None, add_args=None
):
    """The step benchmarks' shared start: flags, threads, checks, data.

    Returns (args, runs, {dataset: Dataset}). round_of names what a timed round times, for --help
    ('path', 'loop'); add_args(parser), if given, adds a benchmark's own flags."""
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
    parser.add_argument("--no-torch-compile", action="store_true", help=NO_TORCH_COMPILE)
    if add_args is not None:
        add_args(parser)
    args = parser.parse_args(argv)
    configure_threads()  # as compare.py does, before torch loads (shared/timing.py)
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
    args, runs, data = parse_bench_args("bench_step.py", __doc__, "path", 5, argv)
    paths = [p for p in PATHS if not (args.no_torch_compile and p[2])]
    names = [name for name, _, _ in paths]
    ratios = {"torch": "torch/JAX", "torch compiled": "compiled/JAX"}  # each torch path over JAX
    ratios = {n: label for n, label in ratios.items() if n in names}
    header = (
        "config",
        *(f"{n} µs/step" for n in names),
        *ratios.values(),
        *(f"{n} of floor" for n in names),
        "floor torch / JAX µs",
        "first step " + " / ".join(names),
    )
    rows = []
    for cfg in runs:
        try:
            r = bench(cfg, data[cfg.dataset], args.device, args.steps, args.rounds, paths=paths)
        except RuntimeError as e:  # --device gpu where a framework sees none
            fail(str(e))
        med = {b: statistics.median(r[b]["rounds"]) for b in r}
        spread = {
            b: f"{med[b]:.0f} ({min(r[b]['rounds']):.0f}-{max(r[b]['rounds']):.0f})" for b in r
        }
        # A path's GEMM floor is its own framework's: the matmuls alone take that many µs.
        floor = {n: med["JAX GEMM" if n == "JAX" else "torch GEMM"] for n in names}
        rel = {n: f"{med[n] / med['JAX']:.2f}" for n in ratios}  # each torch path over JAX
        rows.append(
            (
                f"{cfg.hidden_layers}x{cfg.hidden_size} b{cfg.batch_size} {cfg.activation} "
                f"{cfg.output}",
                *(spread[n] for n in names),
                *rel.values(),
                *(f"{100 * floor[n] / med[n]:.0f}%" for n in names),
                f"{med['torch GEMM']:.0f} / {med['JAX GEMM']:.0f}",
                " / ".join(f"{r[n]['first_s']:.2f}" for n in names) + " s",
            )
        )
        print(
            f"{rows[-1][0]}: "
            + ", ".join(f"{n} {spread[n]}" for n in names)
            + " µs/step; "
            + ", ".join(f"{label} {rel[n]}" for n, label in ratios.items()),
            flush=True,
        )

    print(
        f"\ndevices: torch {r['torch']['device']}, JAX {r['JAX']['device']}; "
        f"{args.rounds} interleaved rounds of {args.steps} steps each; median (min-max) per round\n"
    )
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print(
        "\ntorch/JAX > 1: JAX's step is faster. Of floor: the time of the step's matmuls alone "
        "(forward, weight and input gradients; same shapes, same framework) over the step's time. "
        "The first step holds the compile."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
