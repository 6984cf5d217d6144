"""A dataset tensorflow-datasets already prepared, read without TensorFlow and checked against the
published files (same bytes, or the same examples in tfds's shuffled order)."""

from __future__ import annotations

import contextlib
import hashlib
import logging

import numpy as np

from shared.data.dataset import Dataset
from shared.data.idx import MD5, N_ITEMS, SPLITS, DataError, _idx_header

TFDS_NAME = {"mnist": "mnist", "fashion-mnist": "fashion_mnist"}

# tfds stores the examples shuffled, so its order never matches the files. To still check
# them, each split's (image bytes + label byte) rows are sorted and hashed: equal to the
# value below iff they are exactly the published examples, in any order.
EXAMPLES_MD5 = {
    "mnist": {
        "train": "1228972b116b122ead7d85363d692702",
        "test": "08c0c30fd594a68c64ebde646fcb7c06",
    },
    "fashion-mnist": {
        "train": "7d30abdbc06051d96938095dff65d6c2",
        "test": "18fe85b75a4bd3000e746463ad8a5d8d",
    },
}


def from_tfds(name: str) -> tuple[Dataset | None, str]:
    """A dataset tfds already prepared, read without TensorFlow; (None, why not) otherwise."""
    try:
        import tensorflow_datasets as tfds
    except Exception:  # not installed, or broken: either way not usable
        return None, "not installed"
    tname = TFDS_NAME[name]
    try:
        with _quiet_absl():
            sources = {s: tfds.data_source(tname, split=s, download=False) for s in N_ITEMS}
    except Exception as e:
        return None, f"{tname} not prepared: {type(e).__name__}"
    try:
        arrays = [a for split in N_ITEMS for a in _tfds_split(sources[split], N_ITEMS[split])]
    except Exception as e:  # a prepared dataset we cannot read is no better than none
        return None, f"{tname} unreadable: {_one_line(e)}"

    # Check the examples against the published files: identical IDX bytes (same order), else
    # the same examples in tfds's own order, else not the dataset at all.
    raw_md5 = {
        stem: hashlib.md5(
            _idx_header(kind, N_ITEMS[split]) + arr.astype(np.uint8).tobytes()
        ).hexdigest()
        for (stem, (split, kind)), arr in zip(SPLITS.items(), arrays)
    }
    if all(raw_md5[stem] == MD5[name][stem][1] for stem in SPLITS):
        md5, how = {stem: MD5[name][stem][0] for stem in SPLITS}, "md5 verified"
    elif all(
        examples_md5(arrays[2 * i], arrays[2 * i + 1]) == EXAMPLES_MD5[name][split]
        for i, split in enumerate(N_ITEMS)
    ):
        md5, how = (
            {stem: f"tfds-order:{h}" for stem, h in raw_md5.items()},
            "the published examples, in tfds's order",
        )
    else:
        return None, f"{tname} holds other examples than the published {name} files"
    return Dataset(name, *arrays, md5=md5, source=f"tensorflow-datasets {tname} ({how})"), ""


def _tfds_split(src, n: int) -> tuple[np.ndarray, np.ndarray]:
    """One split of a tfds data source -> (images (n, 784) uint8, labels (n,) int64)."""
    if len(src) != n:
        raise DataError(f"{len(src)} examples, expected {n}")
    try:
        records = list(src.__getitems__(list(range(n))))  # one batched read
    except Exception:  # no batched read (tfds 4.9.10's mock_data breaks it): one at a time
        records = [src[i] for i in range(n)]
    images = np.stack([np.asarray(r["image"], dtype=np.uint8).reshape(784) for r in records])
    labels = np.asarray([int(r["label"]) for r in records], dtype=np.int64)
    if labels.min() < 0 or labels.max() > 9:
        raise DataError(f"labels {labels.min()}..{labels.max()}, expected 0-9")
    return images, labels


def examples_md5(images: np.ndarray, labels: np.ndarray) -> str:
    """md5 of the sorted (784 pixel bytes + label byte) rows: the same for any order of the
    examples."""
    rows = np.concatenate(
        [np.asarray(images, np.uint8), np.asarray(labels).astype(np.uint8)[:, None]], axis=1
    )
    # (n,) one item a row
    rows = np.ascontiguousarray(rows).view(np.dtype((np.void, rows.shape[1]))).ravel()
    return hashlib.md5(np.sort(rows).tobytes()).hexdigest()


def _one_line(e: BaseException, limit: int = 200) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


@contextlib.contextmanager
def _quiet_absl():
    """tfds logs a WARNING line for a half-prepared folder; the reason reaches the user in our own
    one-line error instead (a second stderr line would bury it)."""
    logger = logging.getLogger("absl")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)
