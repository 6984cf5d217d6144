"""The batch order both backends use: one seeded permutation of the training set per epoch.

Both twins index the same numpy arrays with the same index arrays, so from identical weights they
take identical steps (tests/test_parity.py). A last partial batch is dropped: every step keeps one
shape (no recompilation in JAX) and its loss a mean over the same number of images."""

from __future__ import annotations

import numpy as np


def epoch_permutation(seed: int, epoch: int, n: int) -> np.ndarray:
    """The order of the `n` training indices in `epoch` (0-based): (n,) int64.

    Each (seed, epoch) pair gets its own independent stream, so epoch 3's order
    does not depend on how many draws epochs 0-2 made.
    """
    rng = np.random.default_rng([seed, epoch])
    return rng.permutation(n)


def epoch_index_matrix(seed: int, epoch: int, n: int, batch_size: int) -> np.ndarray:
    """All of one epoch's batches at once: (n // batch_size, batch_size) int64.

    Row i is batch i: the i-th `batch_size` indices of `epoch_permutation`; the partial
    tail is dropped. Loops move a whole epoch to the device in one transfer (or scan over it).
    """
    _check_batch_size(batch_size, n)
    steps = n // batch_size
    return epoch_permutation(seed, epoch, n)[: steps * batch_size].reshape(steps, batch_size)


def _check_batch_size(batch_size: int, n: int) -> None:
    # 0 would loop forever or divide by zero, and more than n would make an epoch of no steps.
    if not 1 <= batch_size <= n:
        raise ValueError(
            f"batch_size: got {batch_size}; allowed: 1 to {n} (the number of training images)"
        )
