"""The framework-free half of the walk-through: the logic table, the starting values both twins
draw, the flags and the printing. The framework half, the four sections themselves, is in
impls/torch_mlp/fundamentals.py and impls/flax_mlp/fundamentals.py; `main(twin)` runs one of them.
"""

from __future__ import annotations

import numpy as np

from shared.cli import ArgumentParser

X = [[1, 1], [1, 0], [0, 1], [0, 0]]
# The source text calls [1, 1, 1, 0] the AND table, but it is OR (1 when either input is 1).
# We keep it as the default so the numbers match the text, and offer the real AND beside it.
GATES = {"or": [1, 1, 1, 0], "and": [1, 0, 0, 0]}


def logic_table(gate: str = "or") -> tuple[np.ndarray, np.ndarray]:
    """Inputs x (4, 2) and targets y (4, 1), float32."""
    x = np.array(X, dtype=np.float32)
    y = np.array(GATES[gate], dtype=np.float32)[:, None]
    return x, y


def init_logic_params(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """w1 (2, 1) then b1 (1,), each from U(-1, 1). Drawn with numpy, not torch.rand or jax.random,
    so both twins start from the very same numbers and the two loss curves can be compared step by
    step."""
    rng = np.random.default_rng(seed)
    w1 = rng.uniform(-1, 1, size=(2, 1)).astype(np.float32)
    b1 = rng.uniform(-1, 1, size=(1,)).astype(np.float32)
    return w1, b1


# ------------------------------------------------------------ printing


def fmt(values) -> str:
    return "[" + ", ".join(f"{float(v):.4f}" for v in np.ravel(values)) + "]"


def build_parser(twin) -> ArgumentParser:
    p = ArgumentParser(
        prog=f"python -m {twin.__spec__.name if twin.__spec__ else twin.__name__}",
        description="Forward and backward, step by step (see docs/walkthrough.md).",
    )
    p.add_argument(
        "--gate",
        default="or",
        choices=tuple(GATES),
        help=(
            "or: targets [1, 1, 1, 0] (the table the source text calls AND); and: [1, 0, 0, 0] "
            "(default: or)"
        ),
    )
    p.add_argument(
        "--seed", default=0, type=int, help="seed of the numpy draw of w1, b1 (default: 0)"
    )
    return p


def main(twin, argv: list[str] | None = None) -> None:
    """Run the four sections of `twin` (a fundamentals module) and print what they computed."""
    p = build_parser(twin)
    args = p.parse_args(argv)
    if args.seed < 0:
        p.error(f"--seed: got {args.seed}; allowed: an integer >= 0")
    x, y = logic_table(args.gate)
    targets = [int(t) for t in y.ravel()]
    w1, b1 = init_logic_params(args.seed)

    print(
        "== 1. one neuron from raw parameters: sigmoid(x @ w1 + b1), MSE, Adam lr 0.01, 1000 epochs"
    )
    note = " (the OR table; the source text calls it AND)" if args.gate == "or" else " (AND)"
    print(f"gate {args.gate}: x {X}, targets {targets}{note}")
    print(f"start (numpy seed {args.seed}): w1 {fmt(w1)}, b1 {fmt(b1)}")
    losses, pred = twin.train_raw(args.gate, args.seed)
    for epoch in [*range(0, len(losses), 100), len(losses) - 1]:
        print(f"epoch {epoch:4d}  loss {losses[epoch]:.4f}")
    print(f"predictions {fmt(pred)} -> rounded {[int(round(p)) for p in pred]}, targets {targets}")

    print("== 2. the same neuron as a module (Linear(2, 1) + sigmoid), same start")
    model, losses, pred = twin.train_module(args.gate, args.seed)
    print(f"epoch    0  loss {losses[0]:.4f}; epoch {len(losses) - 1}  loss {losses[-1]:.4f}")
    print(f"predictions {fmt(pred)} -> rounded {[int(round(p)) for p in pred]}, targets {targets}")
    shape, hand, out = twin.by_hand(model, x)
    print(f"stored {twin.LAYOUT}: {shape}; by hand: sigmoid({twin.BY_HAND})")
    print(f"hand {hand.shape} vs module {out.shape}: max |diff| {np.abs(hand - out).max():.1e}")

    print("== 3. derivatives by autograd")
    d1, d2 = twin.derivatives()
    print(f"y = x^2 + 5x + 1 at x = 4: dy/dx = {d1:.4f}")
    print(f"y = (2x + 10)^2 at x = 1: dy/dx = {d2:.4f}")

    print("== 4. SGD lr 0.15 on (2x + 10)^2 from x = 1: x + 5 shrinks by -0.2 a step")
    iterates = twin.descend()
    for k in [*range(6), len(iterates) - 1]:
        print(f"step {k:2d}  x {iterates[k]:.4f}")
