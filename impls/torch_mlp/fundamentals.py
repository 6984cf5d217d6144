"""Forward and backward, step by step, in PyTorch (the twin: impls/flax_mlp/fundamentals.py).

    python -m impls.torch_mlp.fundamentals [--gate or|and] [--seed N]

Both files print the same lines (docs/walkthrough.md); `diff` them to see the frameworks differ.
"""

from __future__ import annotations

import sys

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from shared import walkthrough
from shared.walkthrough import init_logic_params, logic_table

# The one line of output that differs between the two files: where the weight lives and its layout.
LAYOUT = "layer.weight (out, in)"
BY_HAND = "x @ layer.weight.T + layer.bias"


# ------------------------------------------------------------ 1. raw parameters


def train_raw(
    gate: str = "or", seed: int = 0, epochs: int = 1000, lr: float = 0.01
) -> tuple[list[float], np.ndarray]:
    """sigmoid(x @ w1 + b1) fitted by MSE and Adam. Returns the loss of every epoch (taken before
    that epoch's update) and the final predictions (4,)."""
    x, y = (torch.from_numpy(a) for a in logic_table(gate))
    w1, b1 = (nn.Parameter(torch.from_numpy(a)) for a in init_logic_params(seed))  # (2, 1), (1,)
    # Adam keeps its moment estimates inside the optimizer, keyed by the tensors it was given.
    opt = torch.optim.Adam([w1, b1], lr=lr)  # betas 0.9, 0.999, eps 1e-8: optax.adam's defaults
    losses = []
    for _ in range(epochs):
        pred = torch.sigmoid(x @ w1 + b1)  # (4, 2) @ (2, 1) + (1,) -> (4, 1)
        loss = F.mse_loss(pred, y)
        # backward() *adds* into w1.grad and b1.grad: last epoch's gradients are cleared first.
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


def train_module(
    gate: str = "or", seed: int = 0, epochs: int = 1000, lr: float = 0.01
) -> tuple[Neuron, list[float], np.ndarray]:
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
    """SGD on (2x + 10)^2 from x0: the iterates x_0 .. x_steps. At lr 0.15 the error x + 5 is
    multiplied by -0.2 each step (docs/walkthrough.md): 20 steps reach exactly -5 in float32."""
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


def main(argv: list[str] | None = None) -> None:
    # No framework line in the flags and the printing: shared/walkthrough.py runs the sections.
    walkthrough.main(sys.modules[__name__], argv)


if __name__ == "__main__":
    main()
