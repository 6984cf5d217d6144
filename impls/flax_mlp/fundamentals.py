"""Forward and backward, step by step, in JAX/Flax NNX (the twin: impls/torch_mlp/fundamentals.py).

    python -m impls.flax_mlp.fundamentals [--gate or|and] [--seed N]

Both files print the same lines (docs/walkthrough.md); `diff` them to see the frameworks differ.
"""

from __future__ import annotations

import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from shared import walkthrough
from shared.walkthrough import init_logic_params, logic_table

# The one line of output that differs between the two files: where the weight lives and its layout.
LAYOUT = "layer.kernel (in, out)"
BY_HAND = "x @ layer.kernel + layer.bias"


# ------------------------------------------------------------ 1. raw parameters


def train_raw(
    gate: str = "or", seed: int = 0, epochs: int = 1000, lr: float = 0.01
) -> tuple[list[float], np.ndarray]:
    """sigmoid(x @ w1 + b1) fitted by MSE and Adam. Returns the loss of every epoch (taken before
    that epoch's update) and the final predictions (4,)."""
    x, y = (jnp.asarray(a) for a in logic_table(gate))
    w1, b1 = (jnp.asarray(a) for a in init_logic_params(seed))  # (2, 1), (1,)
    params = {"w1": w1, "b1": b1}
    # Adam's moment estimates are a value we hold and pass back in: a pytree shaped like params.
    tx = optax.adam(lr)  # b1 0.9, b2 0.999, eps 1e-8: torch.optim.Adam's defaults too
    opt_state = tx.init(params)

    def loss_fn(params):
        pred = jax.nn.sigmoid(x @ params["w1"] + params["b1"])  # (4, 2) @ (2, 1) + (1,) -> (4, 1)
        return jnp.mean((pred - y) ** 2)  # optax.l2_loss would halve it; this is torch's mse_loss

    @jax.jit  # one compiled program per step; without it every small op is a separate dispatch
    def step(params, opt_state):
        # Gradients are returned, a fresh pytree shaped like params; nothing accumulates anywhere.
        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    losses = []
    for _ in range(epochs):
        params, opt_state, loss = step(params, opt_state)
        losses.append(float(loss))
    pred = jax.nn.sigmoid(x @ params["w1"] + params["b1"])
    return losses, np.asarray(pred).ravel()


# ------------------------------------------------------------ 2. the same as a module


class Neuron(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        self.linear = nnx.Linear(2, 1, rngs=rngs)  # kernel (2, 1) = (in, out), bias (1,)

    def __call__(self, x):  # (n, 2) -> (n, 1)
        return jax.nn.sigmoid(self.linear(x))


def train_module(
    gate: str = "or", seed: int = 0, epochs: int = 1000, lr: float = 0.01
) -> tuple[Neuron, list[float], np.ndarray]:
    """Section 1 again with nnx.Linear inside an nnx.Module, started from the same w1, b1, so the
    losses match section 1's. Returns the trained model, the losses and the predictions (4,)."""
    x, y = (jnp.asarray(a) for a in logic_table(gate))
    model = Neuron(nnx.Rngs(seed))
    w1, b1 = init_logic_params(seed)
    # Replace nnx.Linear's own random init with the shared numbers.
    model.linear.kernel[...] = jnp.asarray(w1)  # stored (in, out), so w1 as it is
    model.linear.bias[...] = jnp.asarray(b1)
    # The optimizer holds the Adam state; wrt=nnx.Param: which of the model's variables it trains.
    optimizer = nnx.Optimizer(model, optax.adam(lr), wrt=nnx.Param)

    @nnx.jit  # not jax.jit: nnx.jit carries the model's and the optimizer's state in and back out
    def step(model, optimizer):
        loss, grads = nnx.value_and_grad(lambda model: jnp.mean((model(x) - y) ** 2))(model)
        optimizer.update(model, grads)  # writes the new Params into model, like opt.step()
        return loss

    losses = []
    for _ in range(epochs):
        loss = step(model, optimizer)
        losses.append(float(loss))
    pred = model(x)
    return model, losses, np.asarray(pred).ravel()


def by_hand(model: Neuron, x: np.ndarray) -> tuple[tuple[int, ...], np.ndarray, np.ndarray]:
    """The module's output computed from its stored parameters by hand, beside the module's own.
    Returns (stored weight shape, hand (n, 1), module (n, 1))."""
    layer = model.linear
    xt = jnp.asarray(x)
    hand = jax.nn.sigmoid(xt @ layer.kernel[...] + layer.bias[...])  # (n, 2) @ (2, 1) + (1,)
    out = model(xt)
    return tuple(layer.kernel.shape), np.asarray(hand), np.asarray(out)


# ------------------------------------------------------------ 3. derivatives


def derivatives() -> tuple[float, float]:
    """dy/dx of x^2 + 5x + 1 at x = 4 (13) and of (2x + 10)^2 at x = 1 (48)."""
    # jax.grad turns a function into its derivative function; the gradient is its return value.
    d1 = float(jax.grad(lambda x: x**2 + 5 * x + 1)(4.0))
    d2 = float(jax.grad(lambda x: (2 * x + 10) ** 2)(1.0))
    return d1, d2


# ------------------------------------------------------------ 4. gradient descent


def descend(x0: float = 1.0, lr: float = 0.15, steps: int = 20) -> list[float]:
    """SGD on (2x + 10)^2 from x0: the iterates x_0 .. x_steps. At lr 0.15 the error x + 5 is
    multiplied by -0.2 each step (docs/walkthrough.md): 20 steps reach exactly -5 in float32."""
    x = jnp.float32(x0)
    tx = optax.sgd(lr)
    opt_state = tx.init(x)
    iterates = [float(x)]
    for _ in range(steps):
        grad = jax.grad(lambda x: (2 * x + 10) ** 2)(x)
        updates, opt_state = tx.update(grad, opt_state)
        x = optax.apply_updates(x, updates)
        iterates.append(float(x))
    return iterates


# ------------------------------------------------------------ printing


def main(argv: list[str] | None = None) -> None:
    # No framework line in the flags and the printing: shared/walkthrough.py runs the sections.
    walkthrough.main(sys.modules[__name__], argv)


if __name__ == "__main__":
    main()
