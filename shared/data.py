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
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import json
import os
import pathlib
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass, field

import numpy as np

SPLITS = {  # canonical file stem -> (split, kind)
    "train-images-idx3-ubyte": ("train", "images"),
    "train-labels-idx1-ubyte": ("train", "labels"),
    "t10k-images-idx3-ubyte": ("test", "images"),
    "t10k-labels-idx1-ubyte": ("test", "labels"),
}
N_ITEMS = {"train": 60_000, "test": 10_000}
IMAGE_MAGIC, LABEL_MAGIC = 2051, 2049

# Published md5 of each .gz, and md5 of its decompressed contents (for extracted files).
MD5 = {
    "mnist": {
        "train-images-idx3-ubyte": ("f68b3c2dcbeaaa9fbdd348bbdeb94873", "6bbc9ace898e44ae57da46a324031adb"),
        "train-labels-idx1-ubyte": ("d53e105ee54ea40749a09fcbcd1e9432", "a25bea736e30d166cdddb491f175f624"),
        "t10k-images-idx3-ubyte": ("9fb629c4189551a2d022fa330f9573f3", "2646ac647ad5339dbf082846283269ea"),
        "t10k-labels-idx1-ubyte": ("ec29112dd5afa0611ce80d1b7f02629c", "27ae3e4e09519cfbb04c329615203637"),
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte": ("8d4fb7e6c68d591d4c3dfef9ec88bf0d", "f4a8712d7a061bf5bd6d2ca38dc4d50a"),
        "train-labels-idx1-ubyte": ("25c81989df183df01b3e8a0aad5dffbe", "9018921c3c673c538a1fc5bad174d6f9"),
        "t10k-images-idx3-ubyte": ("bef4ecab320f06d8554ea6380940ec79", "8181f5470baa50b63fa0f6fddb340f0a"),
        "t10k-labels-idx1-ubyte": ("bb300cfdad3c16e7a12a480ee83cd310", "15d484375f8d13e6eb1aabb0c3f46965"),
    },
}
# tfds stores the examples shuffled, so its order never matches the files. To still check
# them, each split's (image bytes + label byte) rows are sorted and hashed: equal to the
# value below iff they are exactly the published examples, in any order.
EXAMPLES_MD5 = {
    "mnist": {"train": "1228972b116b122ead7d85363d692702", "test": "08c0c30fd594a68c64ebde646fcb7c06"},
    "fashion-mnist": {"train": "7d30abdbc06051d96938095dff65d6c2", "test": "18fe85b75a4bd3000e746463ad8a5d8d"},
}
# The mirrors torchvision downloads from, in its order.
MIRRORS = {
    "mnist": [
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ],
    "fashion-mnist": ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"],
}
MAX_DOWNLOAD = 64 << 20  # bytes; the largest real file (Fashion train images) is 26 MB
TORCHVISION_DIR = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}
TFDS_NAME = {"mnist": "mnist", "fashion-mnist": "fashion_mnist"}
ARRAY_NAMES = ("train_images", "train_labels", "test_images", "test_labels")
ARRAY_SPECS = {  # what a cached array must be: (shape, dtype)
    "train_images": ((60_000, 784), np.uint8),
    "train_labels": ((60_000,), np.int64),
    "test_images": ((10_000, 784), np.uint8),
    "test_labels": ((10_000,), np.int64),
}


class DataError(RuntimeError):
    """A dataset problem; `str(err)` is one line saying what is wrong and what was expected.

    `path` is the file at fault, when there is one (so a bad cached file can be dropped).
    """

    def __init__(self, message: str, path: pathlib.Path | None = None):
        super().__init__(message)
        self.path = path


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
    """uint8 pixels -> floats in [0, 1], what torchvision's ToTensor() did in the seed: (N, 784).

    `dtype` is the run's (Config.dtype): float32, or float64 for the whole-run parity checks.
    """
    return np.asarray(images, dtype=dtype) / np.dtype(dtype).type(255.0)


# ------------------------------------------------------------------ the entry


def load_dataset(name: str, data_dir: str | os.PathLike | None = None, *, verbose: bool = True) -> Dataset:
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


def cache_dir(name: str) -> pathlib.Path:
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return pathlib.Path(root) / "mlp-twins" / name


def _layouts(directory: pathlib.Path, name: str) -> list[pathlib.Path]:
    """The folders that may hold the files: flat, <name>/, torchvision's MNIST/raw/ (or both)."""
    tv = TORCHVISION_DIR[name]
    return [directory, directory / name, directory / tv / "raw", directory / name / tv / "raw"]


def _files_in(folder: pathlib.Path) -> dict[str, pathlib.Path]:
    found = {}
    for stem in SPLITS:
        for candidate in (folder / f"{stem}.gz", folder / stem):
            if candidate.is_file():
                found[stem] = candidate
                break
    return found


def find_files(directory: str | os.PathLike, name: str) -> dict[str, pathlib.Path] | None:
    """The four IDX files (stem -> path, `.gz` preferred) in the first layout that has them all."""
    for folder in _layouts(pathlib.Path(directory), name):
        found = _files_in(folder)
        if len(found) == len(SPLITS):
            return found
    return None


def _explicit_files(directory, name: str, origin: str) -> dict[str, pathlib.Path]:
    """find_files, or a DataError saying what is missing where."""
    d = pathlib.Path(directory)
    if not d.is_dir():
        raise DataError(f"{origin} {str(directory)!r}: no such folder; expected a folder holding "
                        f"the four {name} IDX files ({', '.join(SPLITS)}, each .gz or extracted)")
    files = find_files(d, name)
    if files is not None:
        return files
    best = max(_layouts(d, name), key=lambda f: len(_files_in(f)))
    missing = [s for s in SPLITS if s not in _files_in(best)]
    raise DataError(
        f"{origin} {str(directory)!r}: no complete set of {name} IDX files (missing in {best}: "
        f"{', '.join(missing)}); expected all four ({', '.join(SPLITS)}, each .gz or extracted) "
        f"in it, in {name}/, or in {TORCHVISION_DIR[name]}/raw/"
    )


# ----------------------------------------------------------- files -> arrays


def _signature(files: dict[str, pathlib.Path]) -> dict[str, list]:
    out = {}
    for stem, path in files.items():
        try:
            st = path.stat()
        except OSError as e:  # gone since it was found
            raise DataError(f"{path}: cannot read it ({e.strerror}); expected an IDX file", path) from None
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


def read_idx(path: pathlib.Path, name: str, stem: str) -> np.ndarray:
    """Read and check one IDX file: images -> (N, 784) uint8, labels -> (N,) int64."""
    path = pathlib.Path(path)
    gz_md5, raw_md5 = MD5[name][stem]
    split, kind = SPLITS[stem]
    gz = path.suffix == ".gz"
    published = f"the published {name} {stem}{'.gz' if gz else ''}"
    try:
        if not gz:  # an extracted file's size is known exactly: refuse a wrong one before reading it
            expected_size = _idx_size(kind, N_ITEMS[split])
            size = path.stat().st_size
            if size != expected_size:
                raise DataError(f"{path}: {size} bytes, expected {expected_size} ({published}; "
                                f"truncated or not this file)", path)
        raw = path.read_bytes()
    except OSError as e:
        raise DataError(f"{path}: cannot read it ({e.strerror}); expected {published}", path) from None
    got = hashlib.md5(raw).hexdigest()
    if gz:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise DataError(f"{path}: corrupt or truncated gzip data ({e}); expected {published} "
                            f"(md5 {gz_md5})", path) from None
    # Structure first (its message says more than a checksum), then the md5 of the whole file.
    try:
        arr = parse_idx(raw, kind, N_ITEMS[split], str(path))
    except DataError as e:
        raise DataError(str(e), path) from None
    expected = gz_md5 if gz else raw_md5
    if got != expected:
        raise DataError(f"{path}: md5 {got}, expected {expected} ({published})", path)
    return arr


def _idx_layout(kind: str, n: int) -> tuple[int, tuple[int, ...]]:
    """(magic, dims) of an IDX file of `n` images (n, 28, 28) or labels (n,)."""
    return (IMAGE_MAGIC, (n, 28, 28)) if kind == "images" else (LABEL_MAGIC, (n,))


def _idx_header(kind: str, n: int) -> bytes:
    magic, dims = _idx_layout(kind, n)
    return b"".join(int(v).to_bytes(4, "big") for v in (magic, *dims))


def _idx_size(kind: str, n: int) -> int:
    return len(_idx_header(kind, n)) + n * (784 if kind == "images" else 1)


def parse_idx(raw: bytes, kind: str, n: int, what: str = "IDX data") -> np.ndarray:
    """Parse IDX bytes, checking magic, dimensions and length against `kind` and `n`."""
    magic, dims = _idx_layout(kind, n)
    header = 4 + 4 * len(dims)
    if len(raw) < header:
        raise DataError(f"{what}: {len(raw)} bytes is too short for an IDX {kind} header; expected {header}+")
    got_magic = int.from_bytes(raw[:4], "big")
    if got_magic != magic:
        raise DataError(f"{what}: IDX magic {got_magic}, expected {magic} ({kind})")
    got_dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(len(dims)))
    if got_dims != dims:
        raise DataError(f"{what}: IDX dimensions {got_dims}, expected {dims}")
    body = int(np.prod(dims))
    if len(raw) != header + body:
        raise DataError(f"{what}: {len(raw) - header} bytes of data, expected {body} (truncated or padded)")
    arr = np.frombuffer(raw, dtype=np.uint8, offset=header)
    if kind == "images":
        return arr.reshape(n, 784).copy()
    if arr.max() > 9:
        raise DataError(f"{what}: label {arr.max()} found, expected labels 0-9")
    return arr.astype(np.int64)


def _load_arrays(arrays_dir: pathlib.Path, sig: dict):
    """The cached arrays if their meta.json matches `sig`, else None.

    Memory-mapped copy-on-write: ~2 ms, where a plain np.load of the 55 MB takes ~12 ms in a
    new process and ~65 ms right after a first load (benchmarks/README.md). np.asarray drops
    the np.memmap subclass: callers see plain ndarrays.
    """
    try:
        meta = json.loads((arrays_dir / "meta.json").read_text())
        if meta["sources"] != sig:
            return None
        arrays = [np.asarray(np.load(arrays_dir / f"{k}.npy", mmap_mode="c", allow_pickle=False))
                  for k in ARRAY_NAMES]
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
            _atomic_write(arrays_dir / f"{key}.npy", lambda f, a=arr: np.save(f, a, allow_pickle=False))
        meta = json.dumps({"sources": sig, "md5": md5})
        _atomic_write(arrays_dir / "meta.json", lambda f: f.write(meta.encode()))
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


def _atomic_write(path: pathlib.Path, write) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        pathlib.Path(tmp).unlink(missing_ok=True)
        raise


# --------------------------------------------------------------------- tfds


def _from_tfds(name: str) -> tuple[Dataset | None, str]:
    """A dataset tfds already prepared, read without TensorFlow; (None, why not) otherwise."""
    try:
        import tensorflow_datasets as tfds
    except Exception:  # not installed, or broken: either way not usable
        return None, "not installed"
    tname = TFDS_NAME[name]
    try:
        sources = {s: tfds.data_source(tname, split=s, download=False) for s in N_ITEMS}
    except Exception as e:
        return None, f"{tname} not prepared: {type(e).__name__}"
    try:
        arrays = [a for split in N_ITEMS for a in _tfds_split(sources[split], N_ITEMS[split])]
    except Exception as e:  # a prepared dataset we cannot read is no better than none
        return None, f"{tname} unreadable: {_one_line(e)}"

    # Check the examples against the published files: identical IDX bytes (same order), else
    # the same examples in tfds's own order, else not the dataset at all.
    raw_md5 = {stem: hashlib.md5(_idx_header(kind, N_ITEMS[split]) + arr.astype(np.uint8).tobytes()).hexdigest()
               for (stem, (split, kind)), arr in zip(SPLITS.items(), arrays)}
    if all(raw_md5[stem] == MD5[name][stem][1] for stem in SPLITS):
        md5, how = {stem: MD5[name][stem][0] for stem in SPLITS}, "md5 verified"
    elif all(examples_md5(arrays[2 * i], arrays[2 * i + 1]) == EXAMPLES_MD5[name][split]
             for i, split in enumerate(N_ITEMS)):
        md5, how = {stem: f"tfds-order:{h}" for stem, h in raw_md5.items()}, "the published examples, in tfds's order"
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
    """md5 of the sorted (784 pixel bytes + label byte) rows: the same for any order of the examples."""
    rows = np.concatenate([np.asarray(images, np.uint8), np.asarray(labels).astype(np.uint8)[:, None]], axis=1)
    rows = np.ascontiguousarray(rows).view(np.dtype((np.void, rows.shape[1]))).ravel()  # (n,) one item a row
    return hashlib.md5(np.sort(rows).tobytes()).hexdigest()


def _one_line(e: BaseException, limit: int = 200) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ----------------------------------------------------------------- download


def download(name: str, dest: pathlib.Path, *, mirrors: list[str] | None = None, verbose: bool = True,
             timeout: float = 30.0) -> dict[str, pathlib.Path]:
    """Fetch the four .gz files into `dest`, each md5-checked before its atomic rename.

    A file already in `dest` with the right md5 is kept; one with a wrong md5 is deleted.
    On failure nothing unverified is left: no partial file, and no folder this call made.
    """
    mirrors = mirrors if mirrors is not None else MIRRORS[name]
    dest = pathlib.Path(dest)
    made = not dest.exists()
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"cannot create the cache folder {dest}: {e}") from None
    _sweep_stale(dest)
    out = {}
    try:
        for stem in SPLITS:
            final = dest / f"{stem}.gz"
            expected = MD5[name][stem][0]
            if final.is_file():
                if _md5_file(final) == expected:
                    out[stem] = final
                    continue
                if not _unlink(final):
                    raise DataError(f"{final}: md5 is not the published {expected}, and it cannot be deleted")
            errors = []
            for mirror in mirrors:
                url = f"{mirror}{stem}.gz"
                if _fetch(url, final, expected, errors, timeout, verbose):
                    out[stem] = final
                    break
            if stem not in out:
                raise DataError(f"could not download {stem}.gz: {'; '.join(errors)}")
    except BaseException:
        if made:
            try:
                dest.rmdir()  # only succeeds when empty: verified files are kept
            except OSError:
                pass
        raise
    return out


def _fetch(url: str, final: pathlib.Path, expected: str, errors: list[str], timeout: float,
           verbose: bool) -> bool:
    """Download `url` to a temp file beside `final`; rename it there only if its md5 is `expected`."""
    if verbose:
        print(f"[data] downloading {url}", file=sys.stderr)
    fd, tmp = tempfile.mkstemp(dir=final.parent, prefix=f".{final.name}.", suffix=".part")
    try:
        h, size = hashlib.md5(), 0
        with os.fdopen(fd, "wb") as f, urllib.request.urlopen(url, timeout=timeout) as resp:
            while chunk := resp.read(1 << 20):
                size += len(chunk)
                if size > MAX_DOWNLOAD:
                    errors.append(f"{url}: more than {MAX_DOWNLOAD >> 20} MiB, expected the published file")
                    return False
                h.update(chunk)
                f.write(chunk)
        if h.hexdigest() != expected:
            errors.append(f"{url}: md5 {h.hexdigest()}, expected the published {expected}")
            return False
        os.replace(tmp, final)
        return True
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as e:
        errors.append(f"{url}: {_one_line(getattr(e, 'reason', None) or e)}")
        return False
    finally:
        pathlib.Path(tmp).unlink(missing_ok=True)


def _unlink(path: pathlib.Path) -> bool:
    """Delete `path` if it is there; False where that is refused (a read-only cache)."""
    try:
        path.unlink(missing_ok=True)
        return True
    except OSError:
        return False


def _md5_file(path: pathlib.Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()
