"""Initial weights both backends start from (Config.init = "shared"), in a framework-neutral layout.

Each Linear layer is drawn as PyTorch's default `nn.Linear` draws it, U(-1/sqrt(fan_in),
1/sqrt(fan_in)), as a list of (W, b) with W shaped (in_features, out_features): Flax's kernel
layout, the transpose of torch's `weight`. Each twin's `set_weights` loads these very numbers, which
is why their curves match (tests/test_parity.py)."""

from __future__ import annotations

import numpy as np

Weights = list[tuple[np.ndarray, np.ndarray]]  # [(W (in, out), b (out,)), ...], float32 or float64


def shared_init(layer_sizes: list[int], seed: int, dtype: str = "float32") -> Weights:
    """[(W, b), ...] for Linear layers layer_sizes[i] -> layer_sizes[i+1], deterministic in `seed`.

    Drawn in float64 and cast once to `dtype` (Config.dtype), so a float32 run starts from the
    float32 rounding of the very numbers a float64 run starts from.
    """
    rng = np.random.default_rng([seed, 0x1217])  # a stream of its own, apart from the batch order
    weights = []
    for fan_in, fan_out in zip(layer_sizes[:-1], layer_sizes[1:]):
        bound = 1.0 / np.sqrt(fan_in)
        w = rng.uniform(-bound, bound, size=(fan_in, fan_out)).astype(dtype)
        b = rng.uniform(-bound, bound, size=(fan_out,)).astype(dtype)
        weights.append((w, b))
    return weights
