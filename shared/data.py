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
is named in a `DataError` of one line. Parsed arrays are kept in the cache as
`.npy` files (no pickle) next to a `meta.json` that records which source files
they came from (path, size, mtime), so a second load skips the gunzip and
parse. The meta file is written last, so a half-written cache is never used.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import pathlib
import sys
import tempfile
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
# The mirrors torchvision downloads from, in its order.
MIRRORS = {
    "mnist": [
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ],
    "fashion-mnist": ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"],
}
TORCHVISION_DIR = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}
TFDS_NAME = {"mnist": "mnist", "fashion-mnist": "fashion_mnist"}
ARRAY_NAMES = ("train_images", "train_labels", "test_images", "test_labels")


class DataError(RuntimeError):
    """A dataset problem; `str(err)` is one line saying what is wrong and what was expected."""


@dataclass(frozen=True)
class Dataset:
    name: str
    train_images: np.ndarray  # (60000, 784) uint8
    train_labels: np.ndarray  # (60000,) int64
    test_images: np.ndarray  # (10000, 784) uint8
    test_labels: np.ndarray  # (10000,) int64
    md5: dict[str, str] = field(default_factory=dict)  # source file -> md5 of the published .gz
    source: str = ""  # where it was loaded from, in words


def scale_images(images: np.ndarray) -> np.ndarray:
    """uint8 pixels -> float32 in [0, 1], what torchvision's ToTensor() did in the seed: (N, 784)."""
    return np.asarray(images, dtype=np.float32) / np.float32(255.0)


# ------------------------------------------------------------------ the entry


def load_dataset(name: str, data_dir: str | os.PathLike | None = None, *, verbose: bool = True) -> Dataset:
    """Find, verify and return `name` ("mnist" | "fashion-mnist"); see the module docstring."""
    if name not in MD5:
        raise DataError(f"dataset: got {name!r}; allowed: {' | '.join(MD5)}")
    looked: list[str] = []

    explicit = data_dir if data_dir is not None else os.environ.get("MLP_TWINS_DATA") or None
    if explicit is not None:
        origin = "--data-dir" if data_dir is not None else "MLP_TWINS_DATA"
        files = find_files(explicit, name)
        if files is None:
            raise DataError(
                f"{origin} {str(explicit)!r}: no {name} IDX files there; expected the four files "
                f"({', '.join(SPLITS)}, each .gz or extracted) in it, in {name}/, or in "
                f"{TORCHVISION_DIR[name]}/raw/"
            )
        return _report(_from_files(name, files, f"{origin} {explicit}"), verbose)
    looked.append("--data-dir / MLP_TWINS_DATA (not set)")

    cache = cache_dir(name)
    files = find_files(cache, name)
    if files is not None:
        return _report(_from_files(name, files, f"cache {cache}"), verbose)
    looked.append(f"cache {cache} (no files)")

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
            f"with --data-dir DIR or MLP_TWINS_DATA=DIR, or copy them into {cache}"
        ) from None
    return _report(_from_files(name, files, f"download into {cache}"), verbose)


def _report(ds: Dataset, verbose: bool) -> Dataset:
    if verbose:
        print(f"[data] {ds.name}: {ds.source}", file=sys.stderr)
    return ds


def cache_dir(name: str) -> pathlib.Path:
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return pathlib.Path(root) / "mlp-twins" / name


def find_files(directory: str | os.PathLike, name: str) -> dict[str, pathlib.Path] | None:
    """The four IDX files (stem -> path, `.gz` preferred) in the first layout that has them all."""
    d = pathlib.Path(directory)
    tv = TORCHVISION_DIR[name]
    for folder in (d, d / name, d / tv / "raw", d / name / tv / "raw"):
        found = {}
        for stem in SPLITS:
            for candidate in (folder / f"{stem}.gz", folder / stem):
                if candidate.is_file():
                    found[stem] = candidate
                    break
        if len(found) == len(SPLITS):
            return found
    return None


# ----------------------------------------------------------- files -> arrays


def _signature(files: dict[str, pathlib.Path]) -> dict[str, list]:
    out = {}
    for stem, path in files.items():
        st = path.stat()
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
    _save_arrays(arrays_dir, arrays, sig, md5)
    return Dataset(name, *arrays, md5=md5, source=f"{where} (md5 verified)")


def read_idx(path: pathlib.Path, name: str, stem: str) -> np.ndarray:
    """Read and check one IDX file: images -> (N, 784) uint8, labels -> (N,) int64."""
    raw = path.read_bytes()
    gz_md5, raw_md5 = MD5[name][stem]
    if path.suffix == ".gz":
        got = hashlib.md5(raw).hexdigest()
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise DataError(f"{path}: not a complete gzip file ({e}); expected the published {stem}.gz") from None
        expected = gz_md5
    else:
        got, expected = hashlib.md5(raw).hexdigest(), raw_md5
    split, kind = SPLITS[stem]
    arr = parse_idx(raw, kind, N_ITEMS[split], str(path))
    if got != expected:
        raise DataError(f"{path}: md5 {got} does not match the published {name} {stem} ({expected})")
    return arr


def parse_idx(raw: bytes, kind: str, n: int, what: str = "IDX data") -> np.ndarray:
    """Parse IDX bytes, checking magic, dimensions and length against `kind` and `n`."""
    magic, dims = (IMAGE_MAGIC, (n, 28, 28)) if kind == "images" else (LABEL_MAGIC, (n,))
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


def _load_arrays(arrays_dir: pathlib.Path, sig: dict | None):
    """The cached arrays if their meta.json matches `sig` (None: any verified source), else None."""
    try:
        meta = json.loads((arrays_dir / "meta.json").read_text())
        if sig is not None and meta["sources"] != sig:
            return None
        arrays = [np.load(arrays_dir / f"{k}.npy", allow_pickle=False) for k in ARRAY_NAMES]
    except (OSError, ValueError, KeyError):
        return None
    shapes = [(60_000, 784), (60_000,), (10_000, 784), (10_000,)]
    if [a.shape for a in arrays] != shapes:
        return None
    return arrays, meta["md5"]


def _save_arrays(arrays_dir: pathlib.Path, arrays, sig: dict, md5: dict) -> None:
    """Write the arrays, then meta.json last; each file via temp + atomic rename. Best effort."""
    try:
        arrays_dir.mkdir(parents=True, exist_ok=True)
        (arrays_dir / "meta.json").unlink(missing_ok=True)  # invalidate before touching the arrays
        for key, arr in zip(ARRAY_NAMES, arrays):
            _atomic_write(arrays_dir / f"{key}.npy", lambda f, a=arr: np.save(f, a, allow_pickle=False))
        meta = json.dumps({"sources": sig, "md5": md5})
        _atomic_write(arrays_dir / "meta.json", lambda f: f.write(meta.encode()))
    except OSError as e:  # a read-only cache only costs speed
        print(f"[data] warning: could not cache arrays in {arrays_dir}: {e}", file=sys.stderr)


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
    try:
        splits = {s: tfds.data_source(TFDS_NAME[name], split=s, download=False) for s in ("train", "test")}
    except Exception as e:
        return None, f"not prepared: {type(e).__name__}"
    arrays = []
    for split in ("train", "test"):
        src = splits[split]
        n = len(src)
        if n != N_ITEMS[split]:
            return None, f"{split} split has {n} items, expected {N_ITEMS[split]}"
        records = src.__getitems__(range(n)) if hasattr(src, "__getitems__") else [src[i] for i in range(n)]
        images = np.stack([np.asarray(r["image"], dtype=np.uint8).reshape(784) for r in records])
        labels = np.asarray([int(r["label"]) for r in records], dtype=np.int64)
        arrays += [images, labels]
    # Same pixels and order as the published files? Then they have the published md5s.
    md5 = {}
    for (stem, (split, kind)), arr in zip(SPLITS.items(), (arrays[0], arrays[1], arrays[2], arrays[3])):
        n = N_ITEMS[split]
        header = (IMAGE_MAGIC if kind == "images" else LABEL_MAGIC).to_bytes(4, "big") + n.to_bytes(4, "big")
        if kind == "images":
            header += (28).to_bytes(4, "big") * 2
        body = arr.astype(np.uint8).tobytes()
        got = hashlib.md5(header + body).hexdigest()
        md5[stem] = MD5[name][stem][0] if got == MD5[name][stem][1] else f"tfds-content:{got}"
    ds = Dataset(name, arrays[0], arrays[1], arrays[2], arrays[3], md5=md5, source=f"tensorflow-datasets {TFDS_NAME[name]}")
    return ds, ""


# ----------------------------------------------------------------- download


def download(name: str, dest: pathlib.Path, *, mirrors: list[str] | None = None, verbose: bool = True,
             timeout: float = 30.0) -> dict[str, pathlib.Path]:
    """Fetch the four .gz files into `dest`, each md5-checked before its atomic rename."""
    mirrors = mirrors if mirrors is not None else MIRRORS[name]
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"cannot create the cache folder {dest}: {e}") from None
    out = {}
    for stem in SPLITS:
        final = dest / f"{stem}.gz"
        expected = MD5[name][stem][0]
        if final.is_file() and _md5_file(final) == expected:
            out[stem] = final
            continue
        errors = []
        for mirror in mirrors:
            url = f"{mirror}{stem}.gz"
            if verbose:
                print(f"[data] downloading {url}", file=sys.stderr)
            fd, tmp = tempfile.mkstemp(dir=dest, prefix=f".{stem}.", suffix=".part")
            try:
                h = hashlib.md5()
                with os.fdopen(fd, "wb") as f, urllib.request.urlopen(url, timeout=timeout) as resp:
                    while chunk := resp.read(1 << 20):
                        h.update(chunk)
                        f.write(chunk)
                if h.hexdigest() != expected:
                    errors.append(f"{url}: md5 {h.hexdigest()} != published {expected}")
                    continue
                os.replace(tmp, final)
                out[stem] = final
                break
            except (urllib.error.URLError, OSError, ValueError) as e:
                errors.append(f"{url}: {getattr(e, 'reason', e)}")
            finally:
                pathlib.Path(tmp).unlink(missing_ok=True)
        if stem not in out:
            raise DataError(f"could not download {stem}.gz: {'; '.join(errors)}")
    return out


def _md5_file(path: pathlib.Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()
