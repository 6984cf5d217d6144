"""Host time of a training step with negligible arithmetic: every path beside its framework's floor.

    python benchmarks/bench_host.py                          # 784-8-10, batch 10, on the CPU
    python benchmarks/bench_host.py --steps 1000 --rounds 7
    python benchmarks/bench_host.py --profile                # cProfile of each path, then the table
    python benchmarks/bench_host.py --no-torch-compile       # without the torch paths that compile

At 784-8-10 and batch 10 a step's arithmetic is a few thousand multiply-adds, so what a step costs
here is what the host spends on it: Python, the framework's dispatch, guards, pytree flattening.
On a GPU that host time is the step (the kernels are shorter than their launch), so 1e6 / µs is the
most steps per second the path can run there, whatever the card. Paths, each set up as its `train`
or `train_group` does it: the loop's step (get_batch + train_step) eager and compiled
(Config.compile) in each twin, the sweep engine's epoch with one member, per step, and each
framework's *floor*: the plainest idiomatic loop written from scratch (an nn.Module +
torch.optim.Adam loop; a jax.jit of a pure function with optax Adam and donated state, the batch
gathered inside). Each round runs `--steps` steps of every path in turn, synchronised once at its
end (shared/timing.py's rule); the table gives each path's minimum over the rounds (the least
disturbed, on a shared machine) and its ratio to its framework's floor. Ratios, measured in one
run; compare ratios, not absolute times, across machines or loads. A benchmark, not a test.
"""

from __future__ import annotations

import cProfile
import dataclasses
import io
import os
import pathlib
import pstats
import statistics
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
# The imports below need the sys.path line(s) above: the benchmarks run as scripts from any
# folder, so the checkout goes first on the path; hence `noqa: E402` on each.

from bench_step import (  # noqa: E402
    as_trained,
    hot_loop,
    ignoring_count,
    jax_stepper,
    parse_bench_args,
    time_rounds,
    torch_stepper,
)
from bench_sweep import jax_sweeper, torch_sweeper  # noqa: E402

from shared.batches import epoch_index_matrix  # noqa: E402
from shared.config import Config  # noqa: E402
from shared.data import Dataset, scale_images  # noqa: E402

# What the benchmark measures unless --set says otherwise: a net whose arithmetic is negligible.
DEFAULTS = {"hidden_size": "8", "batch_size": "10", "hidden_layers": "1"}


def torch_floor_loop(cfg: Config, data: Dataset, device: str):
    """(run(count) -> last loss, sync): the plainest torch loop, written from scratch as the
    tutorial would be with resident data: an nn.Sequential, F.cross_entropy, torch.optim.Adam."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    from impls.torch_mlp import runtime

    dev = runtime.resolve_device(device)
    dtype = getattr(torch, cfg.dtype)
    images = torch.from_numpy(scale_images(data.train_images, cfg.dtype)).to(dev)
    labels = torch.from_numpy(data.train_labels).to(dev)
    order = torch.from_numpy(_order(cfg, data)).to(dev)
    layers = []
    for n_in, n_out in zip(cfg.layer_sizes[:-2], cfg.layer_sizes[1:-1]):
        layers += [nn.Linear(n_in, n_out, dtype=dtype), nn.ReLU()]
    model = nn.Sequential(*layers, nn.Linear(cfg.layer_sizes[-2], 10, dtype=dtype)).to(dev)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate)
    position = 0

    def run(count: int):
        nonlocal position
        for _ in range(count):
            index = order[position % len(order)]
            loss = F.cross_entropy(model(images[index]), labels[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            position += 1
        return loss.detach()

    return run, runtime.device_sync(dev)


def jax_floor_loop(cfg: Config, data: Dataset, device: str):
    """(run(count) -> last loss, sync): the plainest JAX loop, written from scratch: a jax.jit of a
    pure function of (params, Adam state) with both donated, optax.adam, the batch gathered
    inside the jitted step."""
    import functools

    import jax
    import numpy as np
    import optax

    from impls.flax_mlp import runtime

    dev = runtime.resolve_device(device)
    images = jax.device_put(scale_images(data.train_images, cfg.dtype), dev)
    labels = jax.device_put(data.train_labels.astype(np.int32), dev)
    order = jax.device_put(_order(cfg, data).astype(np.int32), dev)
    rng = np.random.default_rng(cfg.seed)
    params = [
        (rng.uniform(-1, 1, (n_in, n_out)) / np.sqrt(n_in), np.zeros(n_out))
        for n_in, n_out in zip(cfg.layer_sizes[:-1], cfg.layer_sizes[1:])
    ]
    params = jax.device_put([(w.astype(cfg.dtype), b.astype(cfg.dtype)) for w, b in params], dev)
    optimizer = optax.adam(cfg.learning_rate)

    def loss_fn(params, x, y):
        for w, b in params[:-1]:
            x = jax.nn.relu(x @ w + b)
        w, b = params[-1]
        return optax.softmax_cross_entropy_with_integer_labels(x @ w + b, y).mean()

    @functools.partial(jax.jit, donate_argnums=(0, 1))
    def step(params, opt_state, images, labels, order, i):
        index = order[i]
        loss, grads = jax.value_and_grad(loss_fn)(params, images[index], labels[index])
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    state = {"params": params, "opt_state": optimizer.init(params), "position": 0}

    def run(count: int):
        for _ in range(count):
            i = state["position"] % order.shape[0]
            state["params"], state["opt_state"], loss = step(
                state["params"], state["opt_state"], images, labels, order, i
            )
            state["position"] += 1
        return loss

    return run, jax.block_until_ready


def torch_compiled_lesson(cfg: Config, data: Dataset, device: str, steps: int):
    """(run(count), sync): the compiled loop before fast.py, for the before/after: train.py's own
    train_step under torch.compile (fast.CompiledStep), Adam capturable and fused."""
    import functools

    import torch

    from impls.torch_mlp import runtime
    from impls.torch_mlp import train as twin
    from impls.torch_mlp.fast import CompiledStep
    from impls.torch_mlp.model import build_model

    dev = runtime.resolve_device(device)
    images, labels, _, _ = twin.device_data(cfg, data, dev)
    model = build_model(cfg).to(dev)
    optimizer = torch.optim.Adam(
        model.parameters(), lr=cfg.learning_rate, capturable=True, fused=True
    )
    step = CompiledStep(functools.partial(twin.train_step, model, optimizer), dev)
    order = torch.from_numpy(_order(cfg, data)).to(dev)
    run = hot_loop(step, twin.get_batch, images, labels, order, len(order))
    return run, runtime.device_sync(dev)


def _order(cfg: Config, data: Dataset):
    return epoch_index_matrix(cfg.seed, 0, len(data.train_labels), cfg.batch_size)


def _loop(stepper, compiled: bool):
    def make(cfg, data, device, steps):
        run, sync, _ = stepper(dataclasses.replace(cfg, compile=compiled), data, device)
        return run, sync

    return make


def _sweep(sweeper, compiled: bool):
    """The sweep engine's epoch with one member, `steps` steps long, as run(count) (count is
    always `steps`: the epoch is compiled for that length)."""

    def make(cfg, data, device, steps):
        run, sync, _, _ = sweeper([dataclasses.replace(cfg, compile=compiled)], data, device, steps)
        return ignoring_count(run), sync

    return make


def _floor(floor_loop):
    return lambda cfg, data, device, steps: floor_loop(cfg, data, device)


# (name, framework, make(cfg, data, device, steps) -> (run(count), sync)), in the table's order.
PATHS = (
    ("torch loop, eager", "torch", _loop(torch_stepper, False)),
    ("torch loop, compiled", "torch", _loop(torch_stepper, True)),
    ("torch loop, train_step under torch.compile", "torch", torch_compiled_lesson),
    ("torch sweep epoch, eager", "torch", _sweep(torch_sweeper, False)),
    ("torch sweep epoch, compiled", "torch", _sweep(torch_sweeper, True)),
    ("torch floor", "torch", _floor(torch_floor_loop)),
    ("JAX loop", "JAX", _loop(jax_stepper, False)),
    ("JAX loop, compiled", "JAX", _loop(jax_stepper, True)),
    ("JAX sweep epoch (scan)", "JAX", _sweep(jax_sweeper, False)),
    ("JAX floor", "JAX", _floor(jax_floor_loop)),
)


def bench(
    cfg: Config, data: Dataset, device: str, steps: int, rounds: int, *, paths=PATHS, top=0
) -> dict:
    """{path: µs/step of each round}: every path set up, warmed up twice (a CompiledStep resets
    dynamo, so the torch paths compiled before the last one compile again), then timed in turn.
    With `top`, first a cProfile of each path's `steps` steps, its `top` functions by own time."""
    import torch

    # One torch thread: a step this small has nothing to split, and on a shared CPU a second
    # OpenMP thread turns every op into a wait for a core (a GPU's host loop is one thread too).
    torch.set_num_threads(1)
    with as_trained(cfg):  # TF32 and dtype as in train
        runners = {name: make(cfg, data, device, steps) for name, _, make in paths}
        for _ in range(2):
            for run, sync in runners.values():
                sync(run(steps))
        for name, (run, sync) in runners.items() if top else ():
            profile(name, run, sync, steps, top)
        return time_rounds(runners, steps, rounds)


def profile(name: str, run, sync, steps: int, top: int) -> None:
    """cProfile of `steps` steps of a warmed-up path: the functions with the most own time, per
    step. Where the host time goes, call by call; the profiler's own cost inflates every Python
    call alike, so read it for shares, not for µs."""
    profiler = cProfile.Profile()
    profiler.enable()
    sync(run(steps))
    profiler.disable()
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    print(f"\n## {name}: {stats.total_calls / steps:.0f} Python calls a step")
    stats.sort_stats("tottime").print_stats(top)
    print(_own_times(text.getvalue()))


def _own_times(report: str) -> str:
    """pstats' table, from its header line on."""
    lines = report.splitlines()
    start = next((i for i, line in enumerate(lines) if "ncalls" in line), 0)
    return "\n".join(line for line in lines[start:] if line.strip())


def with_defaults(argv: list[str]) -> list[str]:
    """argv with a --set of DEFAULTS for every field it does not set itself."""
    named = {item.split("=", 1)[0].strip() for flag, item in zip(argv, argv[1:]) if flag == "--set"}
    extra = []
    for key, value in DEFAULTS.items():
        extra += [] if key in named else ["--set", f"{key}={value}"]
    return extra + argv


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args, runs, data = parse_bench_args(
        "bench_host.py", __doc__, "path", 5, with_defaults(argv), add_args=_add_profile
    )
    no_compile = args.no_torch_compile
    paths = [p for p in PATHS if not (no_compile and p[1] == "torch" and "compile" in p[0])]
    load_before = os.getloadavg()
    header = ("config", "path", "µs/step (min)", "median", "x its floor", "GPU ceiling steps/s")
    rows = []
    for cfg in runs:
        r = bench(
            cfg,
            data[cfg.dataset],
            args.device,
            args.steps,
            args.rounds,
            paths=paths,
            top=12 if args.profile else 0,
        )
        best = {name: min(us) for name, us in r.items()}
        floor = {"torch": best["torch floor"], "JAX": best["JAX floor"]}
        for name, framework, _ in paths:
            rows.append(
                (
                    "-".join(map(str, cfg.layer_sizes)) + f" b{cfg.batch_size} {cfg.dtype}",
                    name,
                    f"{best[name]:.0f}",
                    f"{statistics.median(r[name]):.0f}",
                    f"{best[name] / floor[framework]:.2f}",
                    f"{1e6 / best[name]:,.0f}",
                )
            )
    load_after = os.getloadavg()
    print(
        f"\n{args.rounds} interleaved rounds of {args.steps} steps; device {args.device}; "
        f"load average {_load(load_before)} before, {_load(load_after)} after\n"
    )
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print(
        "\nx its floor: the path's minimum over its framework's floor's (torch floor: nn.Module + "
        "torch.optim.Adam; JAX floor: jax.jit of a pure step, donated state). GPU ceiling: "
        "1e6 / µs, the most steps per second this host time allows on any card."
    )
    return 0


def _add_profile(parser) -> None:
    parser.add_argument(
        "--profile", action="store_true", help="a cProfile of each path first, before the timing"
    )


def _load(avg: tuple[float, float, float]) -> str:
    return ", ".join(f"{x:.2f}" for x in avg)


if __name__ == "__main__":
    raise SystemExit(main())
