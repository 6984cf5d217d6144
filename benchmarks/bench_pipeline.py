"""The speed ladder's input pipelines: how much of a step is the data's way to the model.

    python benchmarks/bench_pipeline.py                        # the tutorial: 784-500-10, batch 100
    python benchmarks/bench_pipeline.py --set batch_size=100,600 --steps 300 --rounds 5 --device cpu

The *speed ladder* climbs from the tutorial's code as written to the fastest path the twins take;
its rungs are measured one at a time (here: the input pipeline; bench_step.py: the step itself).
*Rung 0* is the bottom: the tutorial's own input pipeline, before any change. Per configuration,
four loops run the same twin `train_step` (the same model, optimizer and batch size) and differ
only in how a batch reaches it:

  rung 0, torch: the tutorial's pipeline. torchvision.datasets.MNIST read from the local IDX files
          with transform=ToTensor(), DataLoader(batch_size, shuffle=True), and per step
          images.reshape(-1, 28*28).to(device), labels.to(device), as yunjey's tutorial does;
  rung 0, JAX:   the common host pipeline: numpy batches cut from the scaled arrays in the shared
          batch order, and jax.device_put of each batch before the step;
  resident, torch and JAX: what impls/*/train.py do: the dataset on the device once, each batch
          gathered there (`get_batch`), as benchmarks/bench_step.py times it.

The first steps (JAX's compilation, warm-up) are run apart. Then rounds alternate the four loops;
each round runs --steps steps and synchronises once at its end, so a slow spell of the machine hits
all four. Printed: the median µs/step of each loop with its min-max over rounds, and its ratio to
the same framework's resident loop (x resident > 1: the pipeline costs that factor). A benchmark,
not a test.
"""

from __future__ import annotations

import contextlib
import pathlib
import statistics
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
# The imports below need the sys.path line(s) above: the benchmarks run as scripts from any
# folder, so the checkout goes first on the path; hence `noqa: E402` on each.

from bench_step import jax_stepper, parse_bench_args, torch_stepper  # noqa: E402

from shared.batches import epoch_index_matrix  # noqa: E402
from shared.config import Config  # noqa: E402
from shared.data import SPLITS, Dataset, scale_images  # noqa: E402
from shared.data.folders import TORCHVISION_DIR  # noqa: E402
from shared.data.idx import _idx_header  # noqa: E402

LOOPS = ("torch rung 0", "JAX rung 0", "torch resident", "JAX resident")
WHAT = {
    "torch rung 0": "torchvision MNIST + DataLoader(batch_size={b}, shuffle=True) + ToTensor(), "
    ".to(device) per step",
    "JAX rung 0": "numpy batches + jax.device_put per step",
    "torch resident": "dataset on the device, batches gathered there",
    "JAX resident": "dataset on the device, batches gathered there",
}


def write_raw_idx(data: Dataset, root: pathlib.Path) -> pathlib.Path:
    """The four IDX files, uncompressed, in torchvision's <root>/MNIST/raw/ layout: the verified
    arrays written back with their headers (byte for byte the published files), whatever source
    they came from."""
    raw = root / TORCHVISION_DIR[data.name] / "raw"
    raw.mkdir(parents=True)
    arrays = {
        "train": (data.train_images, data.train_labels),
        "test": (data.test_images, data.test_labels),
    }
    for stem, (split, kind) in SPLITS.items():
        images, labels = arrays[split]
        body = (images if kind == "images" else labels).astype("uint8").tobytes()
        (raw / stem).write_bytes(_idx_header(kind, len(labels)) + body)
    return root


def tutorial_loader(cfg: Config, root: pathlib.Path):
    """The tutorial's pipeline: torchvision's MNIST dataset with ToTensor(), in a shuffling
    DataLoader."""
    import torch
    import torchvision
    from torchvision import transforms

    dataset_class = (
        torchvision.datasets.MNIST if cfg.dataset == "mnist" else torchvision.datasets.FashionMNIST
    )
    dataset = dataset_class(
        root=str(root), train=True, transform=transforms.ToTensor(), download=False
    )
    generator = torch.Generator().manual_seed(cfg.seed)
    return torch.utils.data.DataLoader(
        dataset, batch_size=cfg.batch_size, shuffle=True, generator=generator
    )


def torch_rung0(cfg: Config, data: Dataset, device: str, root: pathlib.Path):
    """run(count) -> last loss: the tutorial's loop body, batches from the DataLoader, cycling
    epochs."""
    from impls.torch_mlp import runtime
    from impls.torch_mlp import train as twin

    dev = runtime.resolve_device(device)
    _, _, step = twin.build_training(cfg, dev)
    loader = tutorial_loader(cfg, root)
    batches = iter(loader)

    def run(count: int):
        nonlocal batches
        for _ in range(count):
            try:
                images, labels = next(batches)
            except (
                StopIteration
            ):  # the next epoch: a new shuffle, as the tutorial's `for epoch` loop does
                batches = iter(loader)
                images, labels = next(batches)
            loss = step(images.reshape(-1, 28 * 28).to(dev), labels.to(dev))
        return loss

    return run, runtime.device_sync(dev)


def jax_rung0(cfg: Config, data: Dataset, device: str):
    """run(count) -> last loss: numpy batches on the host, jax.device_put of each, then the jitted
    step."""
    import jax
    import numpy as np

    from impls.flax_mlp import runtime
    from impls.flax_mlp import train as twin

    dev = runtime.resolve_device(device)
    images = scale_images(data.train_images, cfg.dtype)  # (60000, 784), on the host
    labels = data.train_labels.astype(np.int32)
    _, _, step = twin.build_training(cfg, dev)
    order = epoch_index_matrix(cfg.seed, 0, len(labels), cfg.batch_size)  # (steps, B) numpy
    position = 0

    def run(count: int):
        nonlocal position
        for _ in range(count):
            index = order[position % cfg.steps_per_epoch]
            loss = step(jax.device_put(images[index], dev), jax.device_put(labels[index], dev))
            position += 1
        return loss

    return run, runtime.device_sync(dev)


def bench(
    cfg: Config, data: Dataset, device: str, steps: int, rounds: int, root: pathlib.Path
) -> dict[str, list[float]]:
    """Loop name -> µs/step of each round, the four loops' rounds interleaved."""
    from impls.flax_mlp import runtime as jax_runtime
    from impls.torch_mlp import runtime as torch_runtime

    with contextlib.ExitStack() as stack:
        for runtime in (
            torch_runtime,
            jax_runtime,
        ):  # both twins' TF32 setting and dtype, as in train
            stack.enter_context(runtime.matmul_precision(cfg.tf32))
            stack.enter_context(runtime.dtype_scope(cfg.dtype))
        loops = {
            "torch rung 0": torch_rung0(cfg, data, device, root),
            "JAX rung 0": jax_rung0(cfg, data, device),
            "torch resident": torch_stepper(cfg, data, device)[:2],
            "JAX resident": jax_stepper(cfg, data, device)[:2],
        }
        for (
            run,
            sync,
        ) in loops.values():  # compilation, warm-up, a few steady steps before the clock starts
            sync(run(1))
            sync(run(max(1, steps // 10)))
        times: dict[str, list[float]] = {name: [] for name in LOOPS}
        for _ in range(rounds):
            for name in LOOPS:
                run, sync = loops[name]
                t0 = time.perf_counter()
                sync(run(steps))
                times[name].append(1e6 * (time.perf_counter() - t0) / steps)
    return times


def rows(cfg: Config, times: dict[str, list[float]]) -> list[list[str]]:
    """Table rows: config, loop, what it does, median (min-max) µs/step, ratio to the resident
    loop."""
    med = {name: statistics.median(t) for name, t in times.items()}
    label = f"{cfg.hidden_layers}x{cfg.hidden_size} b{cfg.batch_size}"
    out = []
    for name in LOOPS:
        resident = med[name.split()[0] + " resident"]
        out.append(
            [
                label,
                name,
                WHAT[name].format(b=cfg.batch_size),
                f"{med[name]:.0f} ({min(times[name]):.0f}-{max(times[name]):.0f})",
                f"{med[name] / resident:.2f}",
            ]
        )
    return out


def main(argv: list[str] | None = None) -> int:
    args, runs, data = parse_bench_args("bench_pipeline.py", __doc__, "loop", 3, argv)

    table = []
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
        for name, ds in data.items():
            write_raw_idx(ds, pathlib.Path(tmp) / name)
        for cfg in runs:
            times = bench(
                cfg,
                data[cfg.dataset],
                args.device,
                args.steps,
                args.rounds,
                pathlib.Path(tmp) / cfg.dataset,
            )
            table += rows(cfg, times)
            print(" | ".join(f"{r[1]} {r[3].split()[0]} µs/step" for r in table[-4:]), flush=True)

    print(
        f"\n{args.rounds} interleaved rounds of {args.steps} steps per loop; median (min-max) "
        "µs/step per round; "
        f"x resident: the loop's median over its framework's resident loop\n"
    )
    header = ["config", "loop", "input pipeline", "µs/step", "x resident"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in table:
        print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
