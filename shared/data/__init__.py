"""MNIST and Fashion-MNIST as numpy arrays, found, verified and cached (numpy only).

`load_dataset(name, data_dir=None)` looks, in this order, and says which it used:

1. an explicit directory: the `data_dir` argument (`--data-dir` on every CLI) or
   the env var `MLP_TWINS_DATA`, holding the four IDX files, gzipped or not,
   flat, in a `<name>/` subfolder, or in torchvision's `MNIST/raw/` layout;
2. the project cache, `$XDG_CACHE_HOME/mlp-twins/<name>/` (else `~/.cache/...`);
3. a dataset already prepared by tensorflow-datasets (`tfds.data_source(...,
   download=False)`, which needs no TensorFlow), when tfds is installed;
4. a download of the four original files from the mirrors torchvision uses,
   each checked against its published md5 before it is renamed into the cache.

Every file is checked (IDX magic, dimensions, item counts, md5), and a bad one
is named in a `DataError` of one line that says what was expected. Only
verified data is ever written to the cache, always via a temp file and an atomic
rename; a cached file that later fails its check is deleted, not reused, and temp files
that a killed process left behind are swept once they are an hour old.

Parsed arrays are kept in the cache as `.npy` files (no pickle) next to a
`meta.json` that records which source files they came from (path, size, mtime),
so a second load skips the gunzip and parse. The meta file is written last, so
a half-written cache is never used. A second load memory-maps the `.npy` files
copy-on-write: it costs about a millisecond, the pages are read from the OS
page cache on first touch, and the arrays stay writable without touching the
file (torch.from_numpy warns on read-only arrays).

The pieces, by what they do: idx.py (the files, their checksums, the parser), folders.py (where
the files may sit), cache.py (the cache and its arrays), tfds_source.py, download.py.
"""

from __future__ import annotations

import os
import pathlib
import sys

# Re-exported: callers (and tests that patch MIRRORS or _from_tfds) use `shared.data.<name>`.
from shared.data.cache import (
    ARRAY_NAMES,
    ARRAY_SPECS,
    STALE_S,
    _load_arrays,
    _save_arrays,
    _unlink,
    cache_dir,
)  # noqa: F401
from shared.data.dataset import Dataset, scale_images  # noqa: F401
from shared.data.download import MAX_DOWNLOAD, MIRRORS, download  # noqa: F401
from shared.data.folders import TORCHVISION_DIR, _explicit_files, find_files  # noqa: F401
from shared.data.idx import (
    IMAGE_MAGIC,
    LABEL_MAGIC,
    MD5,
    N_ITEMS,
    SPLITS,
    DataError,
    _md5_file,  # noqa: F401
    parse_idx,
    read_idx,
)
from shared.data.tfds_source import EXAMPLES_MD5, TFDS_NAME, _from_tfds, _tfds_split, examples_md5  # noqa: F401

# ------------------------------------------------------------------ the entry


def load_dataset(
    name: str, data_dir: str | os.PathLike | None = None, *, verbose: bool = True
) -> Dataset:
    """Find, verify and return `name` ("mnist" | "fashion-mnist"); see the module docstring."""
    if name not in MD5:
        raise DataError(f"dataset: got {name!r}; allowed: {' | '.join(MD5)}")
    looked: list[str] = []

    explicit = data_dir if data_dir is not None else os.environ.get("MLP_TWINS_DATA") or None
    if explicit is not None:
        origin = "--data-dir" if data_dir is not None else "MLP_TWINS_DATA"
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

    ds, why = _from_tfds(name)
    if ds is not None:
        return _report(ds, verbose)
    looked.append(f"tensorflow-datasets ({why})")

    try:
        files = download(name, cache, verbose=verbose)
    except DataError as e:
        looked.append(f"download ({e})")
        raise DataError(
            f"{name} not found; looked at: {'; '.join(looked)}. Supply the four IDX files "
            f"({', '.join(SPLITS)}, .gz or extracted) with --data-dir DIR or MLP_TWINS_DATA=DIR, "
            f"or copy them into {cache}"
        ) from None
    return _report(_from_files(name, files, f"download into {cache}"), verbose)


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
