"""Forward and backward, step by step, in PyTorch (mirrored line for line by impls/flax_mlp/fundamentals.py).

    python -m impls.torch_mlp.fundamentals [--gate or|and] [--seed N]

1. one sigmoid neuron on a logic table, from raw parameters, trained with Adam
2. the same neuron as a module, and the weight layout the module stores
3. derivatives by autograd
4. gradient descent to a minimum

Both files print the same lines; `diff` them to see only what differs between the frameworks.
See docs/walkthrough.md.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from shared.cli import ArgumentParser

X = [[1, 1], [1, 0], [0, 1], [0, 0]]
# The source text calls [1, 1, 1, 0] the AND table, but it is OR (1 when either input is 1).
# We keep it as the default so the numbers match the text, and offer the real AND beside it.
GATES = {"or": [1, 1, 1, 0], "and": [1, 0, 0, 0]}

# The one line of output that differs between the two files: where the weight lives and its layout.
LAYOUT = "layer.weight (out, in)"
BY_HAND = "x @ layer.weight.T + layer.bias"


def logic_table(gate: str = "or") -> tuple[np.ndarray, np.ndarray]:
    """Inputs x (4, 2) and targets y (4, 1), float32."""
    x = np.array(X, dtype=np.float32)
    y = np.array(GATES[gate], dtype=np.float32)[:, None]
    return x, y


def init_logic_params(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """w1 (2, 1) then b1 (1,), each from U(-1, 1). Drawn with numpy, not torch.rand, so the JAX
    twin starts from the very same numbers and the two loss curves can be compared step by step."""
    rng = np.random.default_rng(seed)
    w1 = rng.uniform(-1, 1, size=(2, 1)).astype(np.float32)
    b1 = rng.uniform(-1, 1, size=(1,)).astype(np.float32)
    return w1, b1


# ------------------------------------------------------------ 1. raw parameters


def train_raw(gate: str = "or", seed: int = 0, epochs: int = 1000, lr: float = 0.01) -> tuple[list[float], np.ndarray]:
    """sigmoid(x @ w1 + b1) fitted by MSE and Adam. Returns the loss of every epoch (taken before
    that epoch's update) and the final predictions (4,)."""
    x, y = (torch.from_numpy(a) for a in logic_table(gate))
    w1, b1 = (nn.Parameter(torch.from_numpy(a)) for a in init_logic_params(seed))  # (2, 1), (1,)
    # Adam keeps its moment estimates inside the optimizer object, keyed by the tensors it was given.
    opt = torch.optim.Adam([w1, b1], lr=lr)  # betas (0.9, 0.999), eps 1e-8: optax.adam's defaults too
    losses = []
    for _ in range(epochs):
        pred = torch.sigmoid(x @ w1 + b1)  # (4, 2) @ (2, 1) + (1,) -> (4, 1)
        loss = F.mse_loss(pred, y)
        # backward() *adds* into w1.grad and b1.grad, so last epoch's gradients must be cleared first.
        opt.zero_grad()
        loss.backward()
        opt.step()  # reads w1.grad, b1.grad and updates w1, b1 in place
        losses.append(loss.item())
    with torch.no_grad():
        pred = torch.sigmoid(x @ w1 + b1)
    return losses, pred.numpy().ravel()


# ------------------------------------------------------------ 2. the same as a module


class Neuron(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 1)  # weight (1, 2) = (out, in), bias (1,)

    def forward(self, x):  # (n, 2) -> (n, 1)
        return torch.sigmoid(self.linear(x))


def train_module(gate: str = "or", seed: int = 0, epochs: int = 1000, lr: float = 0.01) -> tuple[Neuron, list[float], np.ndarray]:
    """Section 1 again with nn.Linear inside an nn.Module, started from the same w1, b1, so the
    losses match section 1's. Returns the trained model, the losses and the predictions (4,)."""
    x, y = (torch.from_numpy(a) for a in logic_table(gate))
    model = Neuron()
    w1, b1 = init_logic_params(seed)
    # Replace nn.Linear's own random init with the shared numbers; no_grad because an in-place
    # write to a leaf that requires grad is not something autograd should record.
    with torch.no_grad():
        model.linear.weight.copy_(torch.from_numpy(w1.T))  # stored (out, in), so w1 transposed
        model.linear.bias.copy_(torch.from_numpy(b1))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(epochs):
        loss = F.mse_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    with torch.no_grad():
        pred = model(x)
    return model, losses, pred.numpy().ravel()


def by_hand(model: Neuron, x: np.ndarray) -> tuple[tuple[int, ...], np.ndarray, np.ndarray]:
    """The module's output computed from its stored parameters by hand, beside the module's own.
    Returns (stored weight shape, hand (n, 1), module (n, 1))."""
    layer = model.linear
    with torch.no_grad():
        xt = torch.from_numpy(x)
        hand = torch.sigmoid(xt @ layer.weight.T + layer.bias)  # (n, 2) @ (2, 1) + (1,)
        out = model(xt)
    return tuple(layer.weight.shape), hand.numpy(), out.numpy()


# ------------------------------------------------------------ 3. derivatives


def derivatives() -> tuple[float, float]:
    """dy/dx of x^2 + 5x + 1 at x = 4 (13) and of (2x + 10)^2 at x = 1 (48)."""
    x = torch.tensor(4.0, requires_grad=True)
    y = x**2 + 5 * x + 1
    y.backward()  # the gradient lands on the input tensor, in x.grad
    d1 = x.grad.item()
    # A fresh leaf: reusing x would add the new gradient to the old one in x.grad.
    x = torch.tensor(1.0, requires_grad=True)
    y = (2 * x + 10) ** 2
    y.backward()
    d2 = x.grad.item()
    return d1, d2


# ------------------------------------------------------------ 4. gradient descent


def descend(x0: float = 1.0, lr: float = 0.15, steps: int = 20) -> list[float]:
    """SGD on (2x + 10)^2 from x0. Returns the iterates x_0 .. x_steps.

    d/dx = 8(x + 5), so x_{k+1} + 5 = (1 - 8 lr)(x_k + 5) = -0.2 (x_k + 5) at lr 0.15: the error
    flips sign every step (the iterates hop from one side of -5 to the other) and shrinks 5x.
    From x0 = 1 the error is 6 * 0.2^k, under float32's spacing near 5 (4.8e-7) by k = 10;
    20 steps leave it at exactly -5 in float32."""
    x = torch.tensor(x0, requires_grad=True)
    opt = torch.optim.SGD([x], lr=lr)
    iterates = [x.item()]
    for _ in range(steps):
        loss = (2 * x + 10) ** 2
        opt.zero_grad()
        loss.backward()
        opt.step()
        iterates.append(x.item())
    return iterates


# ------------------------------------------------------------ printing


def fmt(values) -> str:
    return "[" + ", ".join(f"{float(v):.4f}" for v in np.ravel(values)) + "]"


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog=f"python -m {__spec__.name if __spec__ else __name__}",
                       description="Forward and backward, step by step (see docs/walkthrough.md).")
    p.add_argument("--gate", default="or", choices=tuple(GATES),
                   help="or: targets [1, 1, 1, 0] (the table the source text calls AND); and: [1, 0, 0, 0] (default: or)")
    p.add_argument("--seed", default=0, type=int, help="seed of the numpy draw of w1, b1 (default: 0)")
    return p


def main(argv: list[str] | None = None) -> None:
    p = build_parser()
    args = p.parse_args(argv)
    if args.seed < 0:
        p.error(f"--seed: got {args.seed}; allowed: an integer >= 0")
    x, y = logic_table(args.gate)
    targets = [int(t) for t in y.ravel()]
    w1, b1 = init_logic_params(args.seed)

    print("== 1. one neuron from raw parameters: sigmoid(x @ w1 + b1), MSE, Adam lr 0.01, 1000 epochs")
    note = " (the OR table; the source text calls it AND)" if args.gate == "or" else " (AND)"
    print(f"gate {args.gate}: x {X}, targets {targets}{note}")
    print(f"start (numpy seed {args.seed}): w1 {fmt(w1)}, b1 {fmt(b1)}")
    losses, pred = train_raw(args.gate, args.seed)
    for epoch in [*range(0, len(losses), 100), len(losses) - 1]:
        print(f"epoch {epoch:4d}  loss {losses[epoch]:.4f}")
    print(f"predictions {fmt(pred)} -> rounded {[int(round(p)) for p in pred]}, targets {targets}")

    print("== 2. the same neuron as a module (Linear(2, 1) + sigmoid), same start")
    model, losses, pred = train_module(args.gate, args.seed)
    print(f"epoch    0  loss {losses[0]:.4f}; epoch {len(losses) - 1}  loss {losses[-1]:.4f}")
    print(f"predictions {fmt(pred)} -> rounded {[int(round(p)) for p in pred]}, targets {targets}")
    shape, hand, out = by_hand(model, x)
    print(f"stored {LAYOUT}: {shape}; by hand: sigmoid({BY_HAND})")
    print(f"hand {hand.shape} vs module {out.shape}: max |diff| {np.abs(hand - out).max():.1e}")

    print("== 3. derivatives by autograd")
    d1, d2 = derivatives()
    print(f"y = x^2 + 5x + 1 at x = 4: dy/dx = {d1:.4f}")
    print(f"y = (2x + 10)^2 at x = 1: dy/dx = {d2:.4f}")

    print("== 4. SGD lr 0.15 on (2x + 10)^2 from x = 1: x + 5 shrinks by -0.2 a step")
    iterates = descend()
    for k in [*range(6), len(iterates) - 1]:
        print(f"step {k:2d}  x {iterates[k]:.4f}")


if __name__ == "__main__":
    main()
