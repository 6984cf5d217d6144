"""The shared batch order and the shared initial weights: deterministic, complete, as documented."""

from __future__ import annotations

import numpy as np
import pytest

from shared.batches import epoch_index_matrix, epoch_permutation
from shared.init import shared_init

N = 60_000


def test_same_seed_same_order_other_seed_or_epoch_differs():
    a = epoch_permutation(0, 0, N)
    np.testing.assert_array_equal(a, epoch_permutation(0, 0, N))
    assert a.shape == (N,) and a.dtype == np.int64
    assert not np.array_equal(a, epoch_permutation(1, 0, N))
    assert not np.array_equal(a, epoch_permutation(0, 1, N))
    # Epoch k's order does not depend on having drawn epochs 0..k-1 first.
    np.testing.assert_array_equal(epoch_permutation(7, 3, N), epoch_permutation(7, 3, N))
    assert not np.array_equal(epoch_permutation(0, 1, N), epoch_permutation(1, 0, N))


@pytest.mark.parametrize("seed, epoch", [(0, 0), (0, 7), (12345, 2)])
def test_each_epoch_covers_every_index_once(seed, epoch):
    order = epoch_permutation(seed, epoch, N)
    np.testing.assert_array_equal(np.sort(order), np.arange(N))
    assert not np.array_equal(order, np.arange(N))  # and it is shuffled


@pytest.mark.parametrize("batch_size", [100, 300, 600])
def test_grid_batch_sizes_use_every_image(batch_size):
    batches = list(epoch_index_matrix(3, 1, N, batch_size))
    assert len(batches) == N // batch_size and all(b.shape == (batch_size,) for b in batches)
    np.testing.assert_array_equal(np.sort(np.concatenate(batches)), np.arange(N))


def test_partial_tail_is_dropped():
    batches = list(epoch_index_matrix(0, 0, 1000, 300))
    assert [len(b) for b in batches] == [300, 300, 300]
    used = np.concatenate(batches)
    assert len(np.unique(used)) == 900
    order = epoch_permutation(0, 0, 1000)
    np.testing.assert_array_equal(used, order[:900])  # the last 100 of the order are left out
    # Which images are left out changes with the epoch.
    left_out = {e: set(epoch_permutation(0, e, 1000)[900:]) for e in range(2)}
    assert left_out[0] != left_out[1]


@pytest.mark.parametrize("n, batch_size", [(N, 100), (N, 600), (1000, 300), (7, 7)])
def test_index_matrix_rows_are_the_batches_in_order(n, batch_size):
    m = epoch_index_matrix(5, 2, n, batch_size)
    assert m.shape == (n // batch_size, batch_size) and m.dtype == np.int64
    order = epoch_permutation(5, 2, n)
    for i, row in enumerate(m):
        np.testing.assert_array_equal(row, order[i * batch_size : (i + 1) * batch_size])


@pytest.mark.parametrize("batch_size", [0, -1, 1001])
def test_bad_batch_size_is_refused(batch_size):
    with pytest.raises(ValueError, match="batch_size: got"):
        epoch_index_matrix(0, 0, 1000, batch_size)


def test_shared_init_shapes_dtype_bounds():
    sizes = [784, 500, 500, 10]
    weights = shared_init(sizes, 0)
    assert [(w.shape, b.shape) for w, b in weights] == [
        ((784, 500), (500,)),
        ((500, 500), (500,)),
        ((500, 10), (10,)),
    ]
    for (w, b), fan_in in zip(weights, sizes[:-1]):
        assert w.dtype == np.float32 and b.dtype == np.float32
        # torch's nn.Linear default: U(-1/sqrt(in), 1/sqrt(in))
        bound = np.float32(1 / np.sqrt(fan_in))
        for x in (w, b):
            assert np.abs(x).max() <= bound
        # Uniform over the whole range: the extremes come close to the bound, the mean near 0.
        assert w.max() > 0.99 * bound and w.min() < -0.99 * bound
        assert abs(float(w.mean())) < 0.01 * bound
        # The std of U(-a, a) is a/sqrt(3)
        assert abs(float(w.std()) - bound / np.sqrt(3)) < 0.01 * bound


def test_shared_init_deterministic_in_seed():
    a, b, c = (
        shared_init([784, 64, 10], 0),
        shared_init([784, 64, 10], 0),
        shared_init([784, 64, 10], 1),
    )
    for (wa, ba), (wb, bb) in zip(a, b):
        np.testing.assert_array_equal(wa, wb)
        np.testing.assert_array_equal(ba, bb)
    for (wa, _), (wc, _) in zip(a, c):
        assert not np.array_equal(wa, wc)


def test_no_hidden_layer():
    ((w, b),) = shared_init([784, 10], 3)
    assert w.shape == (784, 10) and b.shape == (10,)
