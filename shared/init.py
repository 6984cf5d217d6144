"""Initial weights both backends can start from, in a framework-neutral layout.

Part of the lesson: step 3 of the reading order (impls/torch_mlp/__init__.py), with
shared/batches.py. Both twins start from the same weights (Config.init = "shared") because both
load these very numbers into their model (model.set_weights); from there, and with the same
batches, the two frameworks take the same steps (tests/test_parity.py).

`shared_init` draws every Linear layer the way PyTorch's default `nn.Linear`
does: W and b ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)). (PyTorch gets there through
kaiming_uniform_ with a=sqrt(5), which reduces to that bound.) The weights come
as a list of (W, b) with W shaped (in_features, out_features): the layout of
`x @ W + b`, which is Flax's kernel layout and the transpose of torch's
`weight`. Each framework's `set_weights` converts from this layout.
"""

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
