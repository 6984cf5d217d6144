"""MNIST and Fashion-MNIST as numpy arrays, found, verified and cached (numpy only).

`load_dataset(name, data_dir=None)` takes an explicit folder, else the cache, else a copy that
tensorflow-datasets prepared, else downloads, and says which it used; `fetch` puts the published
files on disk. Why: both twins must train on the very same bytes, so every file is checked (IDX
magic, sizes, md5) before it is used or cached. The details: docs/running.md#data."""

from __future__ import annotations

import os
import pathlib
import sys

from shared.data import tfds_source
from shared.data.cache import ARRAY_NAMES, _load_arrays, _save_arrays, _unlink, cache_dir
from shared.data.dataset import Dataset, scale_images
from shared.data.download import download
from shared.data.folders import _explicit_files, find_files, verified_files
from shared.data.idx import MD5, SPLITS, DataError, read_idx

# What callers outside this package use; everything else is imported from its own module.
__all__ = [
    "ARRAY_NAMES",
    "SPLITS",
    "DataError",
    "Dataset",
    "cache_dir",
    "fetch",
    "find_files",
    "load_dataset",
    "read_idx",
    "scale_images",
    "verified_files",
]

# ------------------------------------------------------------------ the entry


def load_dataset(
    name: str, data_dir: str | os.PathLike | None = None, *, verbose: bool = True
) -> Dataset:
    """Find, verify and return `name` ("mnist" | "fashion-mnist"); see the module docstring."""
    _check_name(name)
    looked: list[str] = []

    explicit, origin = _explicit(data_dir)
    if explicit is not None:
        files = _explicit_files(explicit, name, origin)
        return _report(_from_files(name, files, f"{origin} {explicit}"), verbose)
    looked.append("--data-dir / MLP_TWINS_DATA (not set)")

    cache = cache_dir(name)
    files = find_files(cache, name)
    if files is None:
        looked.append(f"cache {cache} (no files)")
    else:
        try:
            return _report(_from_files(name, files, f"cache {cache}"), verbose)
        except DataError as e:
            # Only verified files are renamed into the cache, so this one was damaged (or
            # copied in) later: drop it, so the download below can replace it.
            deleted = "deleted" if e.path is not None and _unlink(e.path) else "could not delete"
            looked.append(f"cache {cache} ({deleted} a bad file: {e})")
            if verbose:
                print(f"[data] warning: {deleted} a bad cached file: {e}", file=sys.stderr)

    ds, why = tfds_source.from_tfds(name)
    if ds is not None:
        return _report(ds, verbose)
    looked.append(f"tensorflow-datasets ({why})")

    try:
        files = download(name, cache, verbose=verbose)
    except DataError as e:
        looked.append(f"download ({e})")
        raise DataError(
            f"{name} not found; looked at: {'; '.join(looked)}. {_ways_to_provide(cache)}"
        ) from None
    return _report(_from_files(name, files, f"download into {cache}"), verbose)


def fetch(
    name: str, data_dir: str | os.PathLike | None = None, *, verbose: bool = True
) -> tuple[pathlib.Path, str]:
    """The folder holding `name`'s four verified files, and how they got there, in words.

    An explicit folder (`data_dir`, else MLP_TWINS_DATA) is only checked; otherwise the cache
    gets what it misses from the mirrors (nothing, when it holds all four). One-line DataError
    naming the files and the ways to provide them when that is not possible.
    """
    _check_name(name)
    explicit, origin = _explicit(data_dir)
    if explicit is not None:
        files = verified_files(explicit, name, origin)
        return files[next(iter(SPLITS))].parent, f"{origin} {explicit}, md5 verified"
    cache = cache_dir(name)
    try:
        verified_files(cache, name, "cache")
        return cache, "already in the cache, md5 verified"
    except DataError:
        pass  # missing or damaged files: download() keeps the good ones, replaces the rest
    try:
        download(name, cache, verbose=verbose)
    except DataError as e:
        raise DataError(f"{name}: {e}. {_ways_to_provide(cache)}, or retry online") from None
    return cache, "downloaded into the cache, md5 verified"


def _check_name(name: str) -> None:
    if name not in MD5:
        raise DataError(f"dataset: got {name!r}; allowed: {' | '.join(MD5)}")


def _explicit(data_dir) -> tuple[str | os.PathLike | None, str]:
    """The explicit folder, if any, and what named it: --data-dir first, then MLP_TWINS_DATA."""
    if data_dir is not None:
        return data_dir, "--data-dir"
    return os.environ.get("MLP_TWINS_DATA") or None, "MLP_TWINS_DATA"


def _ways_to_provide(cache: pathlib.Path) -> str:
    return (
        f"Supply the four IDX files ({', '.join(SPLITS)}, .gz or extracted) with --data-dir DIR "
        f"or MLP_TWINS_DATA=DIR, or copy them into {cache}"
    )


def _report(ds: Dataset, verbose: bool) -> Dataset:
    if verbose:
        print(f"[data] {ds.name}: {ds.source}", file=sys.stderr)
    return ds


def _signature(files: dict[str, pathlib.Path]) -> dict[str, list]:
    out = {}
    for stem, path in files.items():
        try:
            st = path.stat()
        except OSError as e:  # gone since it was found
            raise DataError(
                f"{path}: cannot read it ({e.strerror}); expected an IDX file", path
            ) from None
        out[stem] = [str(path.resolve()), st.st_size, st.st_mtime_ns]
    return out


def _from_files(name: str, files: dict[str, pathlib.Path], where: str) -> Dataset:
    sig = _signature(files)
    arrays_dir = cache_dir(name) / "arrays"
    cached = _load_arrays(arrays_dir, sig)
    if cached is not None:
        arrays, md5 = cached
        return Dataset(name, *arrays, md5=md5, source=f"{where} (arrays cached in {arrays_dir})")
    parsed, md5 = {}, {}
    for stem, path in files.items():
        split, kind = SPLITS[stem]
        parsed[f"{split}_{kind}"] = read_idx(path, name, stem)
        md5[stem] = MD5[name][stem][0]
    arrays = [parsed[k] for k in ARRAY_NAMES]
    _save_arrays(arrays_dir, arrays, sig, md5)  # only now: all four files passed every check
    return Dataset(name, *arrays, md5=md5, source=f"{where} (md5 verified)")
