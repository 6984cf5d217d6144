"""Forward and backward, step by step, in JAX/Flax NNX (mirrored line for line by impls/torch_mlp/fundamentals.py).

    python -m impls.flax_mlp.fundamentals [--gate or|and] [--seed N]

1. one sigmoid neuron on a logic table, from raw parameters, trained with Adam
2. the same neuron as a module, and the weight layout the module stores
3. derivatives by autograd
4. gradient descent to a minimum

Both files print the same lines; `diff` them to see only what differs between the frameworks.
See docs/walkthrough.md.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from shared.cli import ArgumentParser

X = [[1, 1], [1, 0], [0, 1], [0, 0]]
# The source text calls [1, 1, 1, 0] the AND table, but it is OR (1 when either input is 1).
# We keep it as the default so the numbers match the text, and offer the real AND beside it.
GATES = {"or": [1, 1, 1, 0], "and": [1, 0, 0, 0]}

# The one line of output that differs between the two files: where the weight lives and its layout.
LAYOUT = "layer.kernel (in, out)"
BY_HAND = "x @ layer.kernel + layer.bias"


def logic_table(gate: str = "or") -> tuple[np.ndarray, np.ndarray]:
    """Inputs x (4, 2) and targets y (4, 1), float32."""
    x = np.array(X, dtype=np.float32)
    y = np.array(GATES[gate], dtype=np.float32)[:, None]
    return x, y


def init_logic_params(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """w1 (2, 1) then b1 (1,), each from U(-1, 1). Drawn with numpy, not jax.random, so the torch
    twin starts from the very same numbers and the two loss curves can be compared step by step."""
    rng = np.random.default_rng(seed)
    w1 = rng.uniform(-1, 1, size=(2, 1)).astype(np.float32)
    b1 = rng.uniform(-1, 1, size=(1,)).astype(np.float32)
    return w1, b1


# ------------------------------------------------------------ 1. raw parameters


def train_raw(gate: str = "or", seed: int = 0, epochs: int = 1000, lr: float = 0.01) -> tuple[list[float], np.ndarray]:
    """sigmoid(x @ w1 + b1) fitted by MSE and Adam. Returns the loss of every epoch (taken before
    that epoch's update) and the final predictions (4,)."""
    x, y = (jnp.asarray(a) for a in logic_table(gate))
    params = dict(zip(("w1", "b1"), (jnp.asarray(a) for a in init_logic_params(seed))))  # (2, 1), (1,)
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


def train_module(gate: str = "or", seed: int = 0, epochs: int = 1000, lr: float = 0.01) -> tuple[Neuron, list[float], np.ndarray]:
    """Section 1 again with nnx.Linear inside an nnx.Module, started from the same w1, b1, so the
    losses match section 1's. Returns the trained model, the losses and the predictions (4,)."""
    x, y = (jnp.asarray(a) for a in logic_table(gate))
    model = Neuron(nnx.Rngs(seed))
    w1, b1 = init_logic_params(seed)
    # Replace nnx.Linear's own random init with the shared numbers.
    model.linear.kernel[...] = jnp.asarray(w1)  # stored (in, out), so w1 as it is
    model.linear.bias[...] = jnp.asarray(b1)
    # The optimizer holds the Adam state; wrt=nnx.Param says which of the model's variables it trains.
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
    """SGD on (2x + 10)^2 from x0. Returns the iterates x_0 .. x_steps.

    d/dx = 8(x + 5), so x_{k+1} + 5 = (1 - 8 lr)(x_k + 5) = -0.2 (x_k + 5) at lr 0.15: the error
    flips sign every step (the iterates hop from one side of -5 to the other) and shrinks 5x.
    From x0 = 1 the error is 6 * 0.2^k, under float32's spacing near 5 (4.8e-7) by k = 10;
    20 steps leave it at exactly -5 in float32."""
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
