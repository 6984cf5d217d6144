"""The project cache: where it is, and the parsed arrays kept there as `.npy` files beside a
`meta.json` naming their source files; every write goes through a temp file and an atomic rename."""

from __future__ import annotations

import json
import os
import pathlib
import sys
import time

import numpy as np

from shared.files import atomic_file

ARRAY_NAMES = ("train_images", "train_labels", "test_images", "test_labels")

ARRAY_SPECS = {  # what a cached array must be: (shape, dtype)
    "train_images": ((60_000, 784), np.uint8),
    "train_labels": ((60_000,), np.int64),
    "test_images": ((10_000, 784), np.uint8),
    "test_labels": ((10_000,), np.int64),
}


def cache_dir(name: str) -> pathlib.Path:
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return pathlib.Path(root) / "mlp-twins" / name


def _load_arrays(arrays_dir: pathlib.Path, sig: dict):
    """The cached arrays if their meta.json matches `sig`, else None.

    Memory-mapped copy-on-write, faster than a plain np.load (benchmarks/README.md). np.asarray
    drops the np.memmap subclass: callers see plain ndarrays.
    """
    try:
        meta = json.loads((arrays_dir / "meta.json").read_text())
        if meta["sources"] != sig:
            return None
        arrays = [
            np.asarray(np.load(arrays_dir / f"{k}.npy", mmap_mode="c", allow_pickle=False))
            for k in ARRAY_NAMES
        ]
        md5 = dict(meta["md5"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if any((a.shape, a.dtype) != ARRAY_SPECS[k] for k, a in zip(ARRAY_NAMES, arrays)):
        return None
    return arrays, md5


def _save_arrays(arrays_dir: pathlib.Path, arrays, sig: dict, md5: dict) -> None:
    """Write the arrays, then meta.json last; each file via temp + atomic rename. Best effort."""
    try:
        arrays_dir.mkdir(parents=True, exist_ok=True)
        _sweep_stale(arrays_dir)
        (arrays_dir / "meta.json").unlink(missing_ok=True)  # invalidate before touching the arrays
        for key, arr in zip(ARRAY_NAMES, arrays):
            with atomic_file(arrays_dir / f"{key}.npy") as tmp, open(tmp, "wb") as f:
                np.save(f, arr, allow_pickle=False)
        with atomic_file(arrays_dir / "meta.json") as tmp:
            tmp.write_text(json.dumps({"sources": sig, "md5": md5}))
    except OSError as e:  # a read-only cache only costs speed
        print(f"[data] warning: could not cache arrays in {arrays_dir}: {e}", file=sys.stderr)


STALE_S = 3600  # a temp file this old belongs to no live writer: one killed mid-write left it


def _sweep_stale(folder: pathlib.Path) -> None:
    """Delete our temp files (.name.*.part / .tmp) that a killed process left behind.

    Young ones are kept: another process may be writing them right now.
    """
    now = time.time()
    for tmp in [*folder.glob(".*.part"), *folder.glob(".*.tmp")]:
        try:
            if now - tmp.stat().st_mtime > STALE_S:
                tmp.unlink()
        except OSError:
            pass


def _unlink(path: pathlib.Path) -> bool:
    """Delete `path` if it is there; False where that is refused (a read-only cache)."""
    try:
        path.unlink(missing_ok=True)
        return True
    except OSError:
        return False
