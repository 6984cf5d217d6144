"""torch's float32 GEMM on this CPU beside numpy's and XLA's: which matmul path reaches what rate.

    python benchmarks/bench_gemm.py              # (100x784)·(784x8000) and the grid's shapes
    python benchmarks/bench_gemm.py --rounds 9 --threads 1

Per shape (m, k, n), interleaved in rounds so that a busy spell of the machine hits every path:
torch's default (`a @ b`: MKL's sgemm in the x86 wheels), the transposed weight layout of nn.Linear
(`a @ w.t()` with w (n, k) contiguous), oneDNN (torch.nn.functional.linear on mkldnn tensors,
which runs oneDNN's inner product where this torch has it), inductor's C++ GEMM
template (torch.compile mode="max-autotune" with max_autotune_gemm_backends="CPP"), numpy (its
BLAS, OpenBLAS in the wheels) and jitted JAX (XLA:CPU's). Printed: GFLOP/s of the median round and
the largest |difference| from numpy's product in float64 (parity: a path that changes the numbers
beyond float32 rounding is no use). A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import statistics
import subprocess
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
# The import below needs the sys.path line above: the benchmarks run as scripts from any folder,
# so the checkout goes first on the path; hence `noqa: E402`.
from shared.timing import configure_threads  # noqa: E402

SHAPES = [
    (100, 784, 8000),  # a 16-member sweep's first layer at batch 100 (784-500-10)
    (600, 784, 8000),  # the same at batch 600
    (100, 784, 500),  # the loop's first layer at batch 100
    (784, 100, 500),  # its weight gradient, X^T @ dY
    (600, 784, 500),  # the loop's first layer at batch 600
]


def paths(m: int, k: int, n: int):
    """{name: fn() -> the product}, all on the same random operands; and numpy's float64 product."""
    import jax
    import numpy as np
    import torch

    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((m, k), np.float32), rng.standard_normal((k, n), np.float32)
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    tw = tb.t().contiguous()  # (n, k): nn.Linear's weight layout
    ja, jb = jax.device_put(a), jax.device_put(b)
    jmm = jax.jit(lambda x, y: x @ y)
    out = {
        "torch a @ b (MKL)": lambda: ta @ tb,
        "torch a @ w.t() (Linear layout)": lambda: ta @ tw.t(),
        "numpy a @ b": lambda: a @ b,
        "JAX jit a @ b": lambda: jmm(ja, jb).block_until_ready(),
    }
    if torch.backends.mkldnn.is_available():
        ma, mw = ta.to_mkldnn(), tw.to_mkldnn()
        out["torch oneDNN linear"] = lambda: torch.nn.functional.linear(ma, mw)
    try:
        import torch._inductor.config as inductor

        inductor.max_autotune_gemm_backends = "CPP"
        compiled = torch.compile(lambda x, y: x @ y, mode="max-autotune")
        compiled(ta, tb)
        out["torch inductor CPP GEMM"] = lambda: compiled(ta, tb)
    except Exception as e:  # no C++ compiler, or a torch without the template
        print(f"inductor CPP GEMM: not available ({type(e).__name__}: {str(e)[:80]})")
    return out, a.astype(np.float64) @ b.astype(np.float64)


def rate(fn, flops: float, repeat: int) -> float:
    t0 = time.perf_counter()
    for _ in range(repeat):
        fn()
    return flops * repeat / (time.perf_counter() - t0) / 1e9


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench_gemm.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: its default)")
    args = parser.parse_args()
    configure_threads()  # as compare.py does, before torch loads (shared/timing.py)
    import numpy as np
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"uptime: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    env = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {env}\n")
    print("| m x k x n | path | GFLOP/s (median round) | max abs diff from float64 |")
    print("|---|---|---|---|")
    for m, k, n in SHAPES:
        fns, exact = paths(m, k, n)
        flops, repeat = 2.0 * m * k * n, max(3, int(2e9 / (2.0 * m * k * n)))
        rounds = {name: [] for name in fns}
        for _ in range(args.rounds):
            for name, fn in fns.items():
                rounds[name].append(rate(fn, flops, repeat))
        for name, fn in fns.items():
            got = fn()
            got = got.to_dense() if hasattr(got, "to_dense") and got.is_mkldnn else got
            diff = np.abs(np.asarray(got, dtype=np.float64) - exact).max()
            gflops = statistics.median(rounds[name])
            print(f"| {m}x{k}x{n} | {name} | {gflops:.1f} | {diff:.2g} |", flush=True)
    print(f"\nuptime: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
