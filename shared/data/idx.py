"""The IDX files themselves: their names, sizes and published checksums, and a parser that
checks magic, dimensions, item counts and md5 and names what is wrong in one line (`DataError`)."""

from __future__ import annotations

import gzip
import hashlib
import pathlib
import zlib

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
        "train-images-idx3-ubyte": (
            "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "6bbc9ace898e44ae57da46a324031adb",
        ),
        "train-labels-idx1-ubyte": (
            "d53e105ee54ea40749a09fcbcd1e9432",
            "a25bea736e30d166cdddb491f175f624",
        ),
        "t10k-images-idx3-ubyte": (
            "9fb629c4189551a2d022fa330f9573f3",
            "2646ac647ad5339dbf082846283269ea",
        ),
        "t10k-labels-idx1-ubyte": (
            "ec29112dd5afa0611ce80d1b7f02629c",
            "27ae3e4e09519cfbb04c329615203637",
        ),
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte": (
            "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "f4a8712d7a061bf5bd6d2ca38dc4d50a",
        ),
        "train-labels-idx1-ubyte": (
            "25c81989df183df01b3e8a0aad5dffbe",
            "9018921c3c673c538a1fc5bad174d6f9",
        ),
        "t10k-images-idx3-ubyte": (
            "bef4ecab320f06d8554ea6380940ec79",
            "8181f5470baa50b63fa0f6fddb340f0a",
        ),
        "t10k-labels-idx1-ubyte": (
            "bb300cfdad3c16e7a12a480ee83cd310",
            "15d484375f8d13e6eb1aabb0c3f46965",
        ),
    },
}


class DataError(RuntimeError):
    """A dataset problem; `str(err)` is one line saying what is wrong and what was expected.

    `path` is the file at fault, when there is one (so a bad cached file can be dropped).
    """

    def __init__(self, message: str, path: pathlib.Path | None = None):
        super().__init__(message)
        self.path = path


def read_idx(path: pathlib.Path, name: str, stem: str) -> np.ndarray:
    """Read and check one IDX file: images -> (N, 784) uint8, labels -> (N,) int64."""
    path = pathlib.Path(path)
    gz_md5, raw_md5 = MD5[name][stem]
    split, kind = SPLITS[stem]
    gz = path.suffix == ".gz"
    published = f"the published {name} {stem}{'.gz' if gz else ''}"
    try:
        # An extracted file's size is known exactly: refuse a wrong one before reading it.
        if not gz:
            expected_size = _idx_size(kind, N_ITEMS[split])
            size = path.stat().st_size
            if size != expected_size:
                raise DataError(
                    f"{path}: {size} bytes, expected {expected_size} ({published}; "
                    f"truncated or not this file)",
                    path,
                )
        raw = path.read_bytes()
    except OSError as e:
        raise DataError(
            f"{path}: cannot read it ({e.strerror}); expected {published}", path
        ) from None
    got = hashlib.md5(raw).hexdigest()
    if gz:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise DataError(
                f"{path}: corrupt or truncated gzip data ({e}); expected {published} "
                f"(md5 {gz_md5})",
                path,
            ) from None
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
        raise DataError(
            f"{what}: {len(raw)} bytes is too short for an IDX {kind} header; expected {header}+"
        )
    got_magic = int.from_bytes(raw[:4], "big")
    if got_magic != magic:
        raise DataError(f"{what}: IDX magic {got_magic}, expected {magic} ({kind})")
    got_dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(len(dims)))
    if got_dims != dims:
        raise DataError(f"{what}: IDX dimensions {got_dims}, expected {dims}")
    body = int(np.prod(dims))
    if len(raw) != header + body:
        raise DataError(
            f"{what}: {len(raw) - header} bytes of data, expected {body} (truncated or padded)"
        )
    arr = np.frombuffer(raw, dtype=np.uint8, offset=header)
    if kind == "images":
        return arr.reshape(n, 784).copy()
    if arr.max() > 9:
        raise DataError(f"{what}: label {arr.max()} found, expected labels 0-9")
    return arr.astype(np.int64)


def verify_md5(path: pathlib.Path, name: str, stem: str) -> None:
    """A DataError unless `path` (the .gz, or its extracted form) is the published file's bytes.

    Only the checksum: cheaper than read_idx (no gunzip, no parse), for files already found.
    """
    path = pathlib.Path(path)
    gz = path.suffix == ".gz"
    expected = MD5[name][stem][0 if gz else 1]
    try:
        got = _md5_file(path)
    except OSError as e:
        raise DataError(
            f"{path}: cannot read it ({e.strerror}); expected an IDX file", path
        ) from None
    if got != expected:
        published = f"the published {name} {stem}{'.gz' if gz else ''}"
        raise DataError(f"{path}: md5 {got}, expected {expected} ({published})", path)


def _md5_file(path: pathlib.Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()
