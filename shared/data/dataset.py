"""What a load returns: the four arrays, their provenance, and the pixel scaling both twins use."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Dataset:
    name: str
    train_images: np.ndarray  # (60000, 784) uint8
    train_labels: np.ndarray  # (60000,) int64
    test_images: np.ndarray  # (10000, 784) uint8
    test_labels: np.ndarray  # (10000,) int64
    # source file stem -> md5 of the published .gz (the same for the .gz and its extracted
    # form: both are that file). From tfds in its own order: "tfds-order:<md5 of the IDX bytes>".
    md5: dict[str, str] = field(default_factory=dict)
    source: str = ""  # where it was loaded from, in words


def scale_images(images: np.ndarray, dtype: str = "float32") -> np.ndarray:
    """uint8 pixels -> floats in [0, 1], as torchvision's ToTensor() in the tutorial: (N, 784).

    `dtype` is the run's (Config.dtype): float32, or float64 for the whole-run parity checks.
    """
    return np.asarray(images, dtype=dtype) / np.dtype(dtype).type(255.0)
