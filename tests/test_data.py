"""The MNIST loader on the real files: layouts, sources, checks, cache hygiene, download, tfds;
the fetch command; and how the tests themselves find the real data (tests/conftest.py).

Every test gets its own empty cache (XDG_CACHE_HOME in tmp_path) and, unless it is about
tfds, a loader whose tfds step is switched off, so no real prepared dataset can answer.
Downloads only ever go to a server on 127.0.0.1 started here.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import http.server
import os
import pathlib
import re
import shutil
import socket
import subprocess
import sys
import threading
import time

import conftest
import numpy as np
import pytest

from shared import data
from shared.data import DataError, load_dataset, tfds_source
from shared.data.__main__ import main as data_main
from shared.data.download import MIRRORS
from shared.data.idx import N_ITEMS
from shared.data.tfds_source import _tfds_split

# The published md5 of each original .gz (the dataset README lists the same).
MNIST_MD5 = {
    "train-images-idx3-ubyte": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte": "ec29112dd5afa0611ce80d1b7f02629c",
}
FASHION_MD5 = {
    "train-images-idx3-ubyte": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte": "bb300cfdad3c16e7a12a480ee83cd310",
}
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
STEMS = list(MNIST_MD5)


@pytest.fixture
def isolated(tmp_path, monkeypatch) -> pathlib.Path:
    """An empty cache root of this test's own, no env dir, no proxy for 127.0.0.1."""
    root = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(root))
    monkeypatch.delenv("MLP_TWINS_DATA", raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    return root


@pytest.fixture
def cache(isolated, monkeypatch) -> pathlib.Path:
    """`isolated`, and the tfds step switched off so no real prepared dataset can answer."""
    monkeypatch.setattr(tfds_source, "from_tfds", lambda name: (None, "switched off in this test"))
    return isolated


def cached_files(root: pathlib.Path) -> list[str]:
    """Every file under the cache root (temp files included), relative to it."""
    return (
        sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
        if root.exists()
        else []
    )


@pytest.fixture(scope="module")
def extracted(mnist_dir, tmp_path_factory) -> pathlib.Path:
    """The four MNIST files gunzipped, once per module."""
    d = tmp_path_factory.mktemp("extracted")
    for stem in STEMS:
        (d / stem).write_bytes(gzip.decompress((mnist_dir / f"{stem}.gz").read_bytes()))
    return d


def link_files(src: pathlib.Path, dst: pathlib.Path, gz: bool = True) -> pathlib.Path:
    dst.mkdir(parents=True, exist_ok=True)
    for stem in STEMS:
        name = f"{stem}.gz" if gz else stem
        (dst / name).symlink_to(src / name)
    return dst


def closed_url() -> str:
    """A 127.0.0.1 URL nothing listens on (the port was bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/"


@contextlib.contextmanager
def serve(directory: pathlib.Path):
    """An HTTP server on 127.0.0.1 (ephemeral port) serving `directory`; yields (url, requested
    paths)."""
    hits: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(directory), **kwargs)

        def do_GET(self):
            hits.append(self.path)
            super().do_GET()

        def log_message(self, *args):  # keep the test output clean
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", hits
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def assert_same(ds, ref) -> None:
    for key in data.ARRAY_NAMES:
        np.testing.assert_array_equal(getattr(ds, key), getattr(ref, key))


# ------------------------------------------------------------- the real data


def test_real_mnist_shapes_dtypes_counts_md5(mnist):
    assert mnist.name == "mnist"
    assert (mnist.train_images.shape, mnist.train_images.dtype) == ((60000, 784), np.uint8)
    assert (mnist.test_images.shape, mnist.test_images.dtype) == ((10000, 784), np.uint8)
    assert mnist.train_labels.shape == (60000,) and mnist.test_labels.shape == (10000,)
    assert np.issubdtype(mnist.train_labels.dtype, np.integer)
    assert np.bincount(mnist.train_labels).tolist() == MNIST_TRAIN_COUNTS
    assert np.bincount(mnist.test_labels).tolist() == MNIST_TEST_COUNTS
    assert mnist.md5 == MNIST_MD5
    assert mnist.train_images.max() == 255 and mnist.train_images.min() == 0


def test_scale_images_is_float32_unit_range(mnist):
    x = data.scale_images(mnist.test_images[:100])
    assert x.dtype == np.float32 and x.shape == (100, 784)
    assert x.min() == 0.0 and x.max() == 1.0
    np.testing.assert_array_equal(x * 255, mnist.test_images[:100].astype(np.float32))


def test_fashion_mnist_loads(fashion_dir, cache):
    ds = load_dataset("fashion-mnist", fashion_dir, verbose=False)
    assert ds.train_images.shape == (60000, 784) and ds.test_images.shape == (10000, 784)
    assert np.bincount(ds.train_labels).tolist() == [6000] * 10
    assert np.bincount(ds.test_labels).tolist() == [1000] * 10
    assert ds.md5 == FASHION_MD5


@pytest.mark.parametrize(
    "layout, gz",
    [(".", True), (".", False), ("MNIST/raw", True), ("MNIST/raw", False), ("mnist", True)],
    ids=[
        "flat-gz",
        "flat-extracted",
        "torchvision-gz",
        "torchvision-extracted",
        "named-subfolder-gz",
    ],
)
def test_layouts(layout, gz, mnist, mnist_dir, extracted, tmp_path, cache, capsys):
    root = tmp_path / "data"
    link_files(mnist_dir if gz else extracted, root / layout, gz)
    ds = load_dataset("mnist", root)
    assert_same(ds, mnist)
    assert ds.md5 == MNIST_MD5  # the identity of the data, whichever form it came in
    said = capsys.readouterr().err
    assert f"--data-dir {root}" in said and "md5 verified" in said


def test_env_var_is_used_and_named(mnist, mnist_dir, cache, monkeypatch, capsys):
    monkeypatch.setenv("MLP_TWINS_DATA", str(mnist_dir))
    ds = load_dataset("mnist")
    assert_same(ds, mnist)
    assert f"[data] mnist: MLP_TWINS_DATA {mnist_dir}" in capsys.readouterr().err


def test_second_load_served_from_array_cache(mnist, mnist_dir, cache, capsys):
    first = load_dataset("mnist", mnist_dir)
    second = load_dataset("mnist", mnist_dir)
    err = capsys.readouterr().err.splitlines()
    assert "md5 verified" in err[0] and "arrays cached in" in err[1]
    assert_same(second, mnist)
    assert second.md5 == first.md5 == MNIST_MD5
    assert sorted(cached_files(cache)) == sorted(
        [f"mlp-twins/mnist/arrays/{k}.npy" for k in data.ARRAY_NAMES]
        + ["mlp-twins/mnist/arrays/meta.json"]
    )
    # Plain, writable arrays; writing to them never reaches the cache file.
    assert type(second.train_images) is np.ndarray and second.train_images.flags.writeable
    second.train_images[0, :] = 7
    np.testing.assert_array_equal(
        load_dataset("mnist", mnist_dir, verbose=False).train_images[0], mnist.train_images[0]
    )


def test_damaged_array_cache_is_rebuilt(mnist, mnist_dir, cache, capsys):
    load_dataset("mnist", mnist_dir, verbose=False)
    npy = cache / "mlp-twins/mnist/arrays/train_images.npy"
    npy.write_bytes(npy.read_bytes()[:1000])  # cut short, as by a full disk
    ds = load_dataset("mnist", mnist_dir)
    assert "md5 verified" in capsys.readouterr().err  # parsed again, not trusted
    assert_same(ds, mnist)
    assert npy.stat().st_size > 47_000_000


def test_changed_source_is_checked_again(mnist_dir, extracted, tmp_path, cache):
    root = link_files(extracted, tmp_path / "data", gz=False)
    load_dataset("mnist", root, verbose=False)
    # Same size, new content: the cached arrays must not hide it.
    labels = root / "train-labels-idx1-ubyte"
    raw = bytearray(labels.read_bytes())
    raw[-1] ^= 1
    labels.unlink()
    labels.write_bytes(bytes(raw))
    with pytest.raises(DataError, match="md5 .*expected a25bea736e30d166cdddb491f175f624"):
        load_dataset("mnist", root, verbose=False)


# ------------------------------------------------------------------ bad files


def _truncated_gz(raw_gz: bytes, raw: bytes) -> bytes:
    return raw_gz[: len(raw_gz) // 2]


def _flipped_gz(raw_gz: bytes, raw: bytes) -> bytes:
    b = bytearray(raw_gz)
    b[len(b) // 2] ^= 0xFF
    return bytes(b)


def _recompressed_with_one_label_changed(raw_gz: bytes, raw: bytes) -> bytes:
    b = bytearray(raw)
    b[100] = (b[100] + 1) % 10  # still a valid label: only the checksum can tell
    return gzip.compress(bytes(b))


def _truncated_raw(raw_gz: bytes, raw: bytes) -> bytes:
    return raw[:-100]


def _flipped_raw(raw_gz: bytes, raw: bytes) -> bytes:
    b = bytearray(raw)
    b[5000] ^= 1  # a label 0-9 stays one
    return bytes(b)


def _wrong_magic_raw(raw_gz: bytes, raw: bytes) -> bytes:
    return (2051).to_bytes(4, "big") + raw[4:]  # the images magic on a labels file


BAD = {  # name -> (gzipped?, how to spoil train-labels, what the error must say)
    "truncated-gz": (True, _truncated_gz, "corrupt or truncated gzip data"),
    "flipped-byte-gz": (
        True,
        _flipped_gz,
        "expected the published mnist train-labels-idx1-ubyte.gz",
    ),
    "wrong-checksum-gz": (
        True,
        _recompressed_with_one_label_changed,
        "expected d53e105ee54ea40749a09fcbcd1e9432",
    ),
    "truncated-extracted": (False, _truncated_raw, "59908 bytes, expected 60008"),
    "flipped-byte-extracted": (False, _flipped_raw, "expected a25bea736e30d166cdddb491f175f624"),
    "wrong-magic-extracted": (False, _wrong_magic_raw, "IDX magic 2051, expected 2049"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_file_rejected_and_nothing_cached(case, mnist_dir, extracted, tmp_path, cache):
    gz, spoil, expected = BAD[case]
    root = tmp_path / "data"
    root.mkdir()
    for stem in STEMS:
        name = f"{stem}.gz" if gz else stem
        if stem == "train-labels-idx1-ubyte":
            raw_gz = (mnist_dir / f"{stem}.gz").read_bytes()
            (root / name).write_bytes(spoil(raw_gz, gzip.decompress(raw_gz)))
        else:
            (root / name).symlink_to((mnist_dir if gz else extracted) / name)
    bad = root / ("train-labels-idx1-ubyte.gz" if gz else "train-labels-idx1-ubyte")
    with pytest.raises(DataError) as err:
        load_dataset("mnist", root, verbose=False)
    msg = str(err.value)
    assert str(bad) in msg and "expected" in msg and expected in msg, msg
    assert "\n" not in msg
    assert cached_files(cache) == []


def test_missing_file_named(mnist_dir, tmp_path, cache):
    root = link_files(mnist_dir, tmp_path / "data")
    (root / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(
        DataError, match=r"missing in .*: t10k-labels-idx1-ubyte\); expected all four"
    ):
        load_dataset("mnist", root, verbose=False)
    with pytest.raises(DataError, match="no such folder"):
        load_dataset("mnist", tmp_path / "nowhere", verbose=False)
    with pytest.raises(DataError, match=re.escape("got 'cifar10'; allowed: mnist | fashion-mnist")):
        load_dataset("cifar10", root, verbose=False)


def test_bad_cached_file_is_deleted(mnist_dir, cache, monkeypatch):
    dest = cache / "mlp-twins" / "mnist"
    dest.mkdir(parents=True)
    for stem in STEMS:
        shutil.copyfile(mnist_dir / f"{stem}.gz", dest / f"{stem}.gz")
    bad = dest / "t10k-labels-idx1-ubyte.gz"
    bad.write_bytes(_flipped_gz(bad.read_bytes(), b""))
    monkeypatch.setitem(MIRRORS, "mnist", [closed_url()])
    with pytest.raises(DataError) as err:
        load_dataset("mnist", verbose=False)
    assert f"deleted a bad file: {bad}" in str(err.value)
    assert cached_files(cache) == [
        f"mlp-twins/mnist/{s}.gz" for s in sorted(STEMS) if s != "t10k-labels-idx1-ubyte"
    ]


# ------------------------------------------------------------------- download


def test_download_from_local_mirror(mnist, mnist_dir, cache, monkeypatch, capsys):
    dest = cache / "mlp-twins" / "mnist"
    dest.mkdir(parents=True)
    (dest / "t10k-labels-idx1-ubyte.gz").write_bytes(b"half a download")  # bad: replaced
    old = dest / ".t10k-images-idx3-ubyte.gz.abc.part"  # left by a download killed long ago
    old.write_bytes(b"x")
    os.utime(old, (time.time() - 7200,) * 2)
    young = dest / ".t10k-images-idx3-ubyte.gz.def.part"  # maybe another process's, right now
    young.write_bytes(b"x")
    with serve(mnist_dir) as (url, hits):
        dead = closed_url()
        monkeypatch.setitem(MIRRORS, "mnist", [dead, url])  # the first mirror is down
        ds = load_dataset("mnist")
        assert sorted(hits) == sorted(f"/{s}.gz" for s in STEMS)
        err = capsys.readouterr().err
        assert f"download into {cache / 'mlp-twins' / 'mnist'} (md5 verified)" in err
        assert_same(ds, mnist)
        assert ds.md5 == MNIST_MD5
        for stem in STEMS:
            assert hashlib.md5((dest / f"{stem}.gz").read_bytes()).hexdigest() == MNIST_MD5[stem]
        assert [f for f in cached_files(cache) if f.endswith((".part", ".tmp"))] == [
            str(young.relative_to(cache))
        ]

        again = load_dataset("mnist")
        assert len(hits) == 4  # no new request
        assert f"cache {dest} (arrays cached in" in capsys.readouterr().err
        assert_same(again, mnist)


def test_corrupt_download_rejected(mnist_dir, tmp_path, cache, monkeypatch):
    served = link_files(mnist_dir, tmp_path / "served")
    bad = served / "train-images-idx3-ubyte.gz"
    raw = bad.read_bytes()
    bad.unlink()
    bad.write_bytes(_flipped_gz(raw, b""))
    with serve(served) as (url, hits):
        monkeypatch.setitem(MIRRORS, "mnist", [url])
        with pytest.raises(DataError) as err:
            load_dataset("mnist", verbose=False)
    msg = str(err.value)
    assert f"{url}train-images-idx3-ubyte.gz: md5 " in msg
    assert "expected the published f68b3c2dcbeaaa9fbdd348bbdeb94873" in msg
    assert hits == ["/train-images-idx3-ubyte.gz"]
    assert cached_files(cache) == []


def test_offline_message_lists_where_it_looked(cache, monkeypatch):
    dead = closed_url()
    monkeypatch.setitem(MIRRORS, "mnist", [dead])
    with pytest.raises(DataError) as err:
        load_dataset("mnist", verbose=False)
    msg = str(err.value)
    assert "\n" not in msg
    for part in (
        "mnist not found; looked at:",
        "--data-dir / MLP_TWINS_DATA (not set)",
        f"cache {cache / 'mlp-twins' / 'mnist'} (no files)",
        "tensorflow-datasets (switched off",
        f"download (could not download train-images-idx3-ubyte.gz: {dead}",
        "--data-dir DIR or MLP_TWINS_DATA=DIR",
    ):
        assert part in msg, (part, msg)
    assert cached_files(cache) == []
    assert not (cache / "mlp-twins" / "mnist").exists()


# ----------------------------------------------------------------------- tfds


class FakeSource:
    """What tfds.data_source returns, over given arrays: len, [i], and a batched read."""

    def __init__(self, images, labels):
        self.images, self.labels = images, labels

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return {"image": self.images[i].reshape(28, 28, 1), "label": self.labels[i]}

    def __getitems__(self, keys):
        return [self[i] for i in keys]


def _as_data_source(arrays_by_split):
    """An `as_data_source_fn` for tfds.testing.mock_data: split name -> FakeSource."""

    def fn(self, split, decoders=None, deserialize_method=None, **kwargs):
        return FakeSource(*arrays_by_split[split])

    return fn


@pytest.fixture
def tfds_on(isolated, monkeypatch):
    """The loader's real tfds step (under mock_data in each test); downloads go nowhere."""
    try:  # like the loader: a missing or broken tfds is no tfds (the GPU machine has none)
        import tensorflow_datasets as tfds
    except Exception as e:
        pytest.skip(f"tensorflow-datasets not importable: {type(e).__name__}: {e}")
    monkeypatch.setitem(MIRRORS, "mnist", [closed_url()])
    return tfds


def test_tfds_mock_data_source_is_read_and_checked(tfds_on, isolated):
    # mock_data's default source: the same num_examples in every split, and (in tfds 4.9.10)
    # a __getitems__ that raises TypeError, so the loader must fall back to one-at-a-time reads.
    with tfds_on.testing.mock_data(num_examples=5):
        src = tfds_on.data_source("mnist", split="train", download=False)
        images, labels = _tfds_split(src, 5)
        assert images.shape == (5, 784) and images.dtype == np.uint8 and labels.shape == (5,)
        with pytest.raises(DataError) as err:
            load_dataset("mnist", verbose=False)
    assert "tensorflow-datasets (mnist unreadable: 5 examples, expected 60000)" in str(err.value)


def test_tfds_published_order_reports_published_md5(tfds_on, isolated, mnist, capsys):
    splits = {
        "train": (mnist.train_images, mnist.train_labels),
        "test": (mnist.test_images, mnist.test_labels),
    }
    with tfds_on.testing.mock_data(as_data_source_fn=_as_data_source(splits)):
        ds = load_dataset("mnist")
    assert "[data] mnist: tensorflow-datasets mnist (md5 verified)" in capsys.readouterr().err
    assert_same(ds, mnist)
    assert ds.md5 == MNIST_MD5
    assert cached_files(isolated) == []  # nothing downloaded, nothing written


def test_tfds_shuffled_order_reports_its_own_md5(tfds_on, isolated, mnist, capsys):
    # A real prepared tfds MNIST holds the published examples shuffled: accepted (the
    # order-free check), but its md5s name that order, not the published files.
    p = np.random.default_rng(0).permutation(60000)
    q = np.random.default_rng(1).permutation(10000)
    splits = {
        "train": (mnist.train_images[p], mnist.train_labels[p]),
        "test": (mnist.test_images[q], mnist.test_labels[q]),
    }
    with tfds_on.testing.mock_data(as_data_source_fn=_as_data_source(splits)):
        ds = load_dataset("mnist")
    assert (
        "tensorflow-datasets mnist (the published examples, in tfds's order)"
        in capsys.readouterr().err
    )
    np.testing.assert_array_equal(ds.train_images, mnist.train_images[p])
    np.testing.assert_array_equal(ds.test_labels, mnist.test_labels[q])
    header = (2049).to_bytes(4, "big") + (60000).to_bytes(4, "big")
    want = hashlib.md5(header + mnist.train_labels[p].astype(np.uint8).tobytes()).hexdigest()
    assert ds.md5["train-labels-idx1-ubyte"] == f"tfds-order:{want}"
    assert all(v.startswith("tfds-order:") for v in ds.md5.values())


def test_tfds_other_examples_are_rejected(tfds_on, isolated, mnist):
    rng = np.random.default_rng(0)
    splits = {
        s: (rng.integers(0, 256, (n, 784), dtype=np.uint8), rng.integers(0, 10, n))
        for s, n in N_ITEMS.items()
    }
    with tfds_on.testing.mock_data(as_data_source_fn=_as_data_source(splits)):
        with pytest.raises(DataError) as err:
            load_dataset("mnist", verbose=False)
    assert "tensorflow-datasets (mnist holds other examples than the published mnist files)" in str(
        err.value
    )
    assert cached_files(isolated) == []


# ------------------------------------------------------------- the fetch command


def test_fetch_downloads_only_what_is_missing_then_is_a_no_op(mnist_dir, cache, capsys):
    dest = cache / "mlp-twins" / "mnist"
    dest.mkdir(parents=True)
    shutil.copyfile(mnist_dir / "t10k-labels-idx1-ubyte.gz", dest / "t10k-labels-idx1-ubyte.gz")
    with serve(mnist_dir) as (url, hits), pytest.MonkeyPatch.context() as mp:
        mp.setitem(MIRRORS, "mnist", [url])
        assert data_main(["fetch", "mnist"]) == 0
        assert sorted(hits) == sorted(f"/{s}.gz" for s in STEMS if s != "t10k-labels-idx1-ubyte")
        out = capsys.readouterr().out
        assert out == f"mnist: {dest} (downloaded into the cache, md5 verified)\n"
        assert data_main(["fetch", "mnist", "mnist"]) == 0
        assert len(hits) == 3  # nothing asked again
        assert capsys.readouterr().out == f"mnist: {dest} (already in the cache, md5 verified)\n"
    assert {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in dest.iterdir()} == {
        f"{stem}.gz": md5 for stem, md5 in MNIST_MD5.items()
    }


def test_fetch_given_a_folder_only_checks_it(mnist_dir, fashion_dir, cache, monkeypatch, capsys):
    monkeypatch.setitem(MIRRORS, "mnist", [closed_url()])  # a request would fail the test
    monkeypatch.setitem(MIRRORS, "fashion-mnist", [closed_url()])
    root = cache.parent / "datasets"
    link_files(mnist_dir, root / "mnist")
    link_files(fashion_dir, root / "fashion-mnist")
    monkeypatch.setenv("MLP_TWINS_DATA", str(root))
    assert data_main(["fetch", "mnist", "fashion-mnist"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"mnist: {root / 'mnist'} (MLP_TWINS_DATA {root}, md5 verified)",
        f"fashion-mnist: {root / 'fashion-mnist'} (MLP_TWINS_DATA {root}, md5 verified)",
    ]
    with pytest.raises(SystemExit) as exit_:  # an MNIST folder is no Fashion-MNIST folder
        data_main(["fetch", "fashion-mnist", "--data-dir", str(root / "mnist")])
    assert exit_.value.code == 1
    assert "expected 8d4fb7e6c68d591d4c3dfef9ec88bf0d" in capsys.readouterr().err
    assert cached_files(cache) == []


def test_fetch_offline_without_data_is_one_line(cache, monkeypatch, capsys):
    dead = closed_url()
    monkeypatch.setitem(MIRRORS, "mnist", [dead])
    with pytest.raises(SystemExit) as exit_:
        data_main(["fetch", "mnist", "fashion-mnist"])
    assert exit_.value.code == 1
    captured = capsys.readouterr()
    err = captured.err.splitlines()
    assert captured.out == "" and len(err) == 1, err
    for part in (
        "python -m shared.data fetch: error: mnist: could not download",
        dead,
        *STEMS,
        "--data-dir DIR or MLP_TWINS_DATA=DIR",
        f"copy them into {cache / 'mlp-twins' / 'mnist'}",
    ):
        assert part in err[0], (part, err[0])
    assert cached_files(cache) == []


def test_fetch_bad_name_is_one_line_and_exit_2(isolated):
    r = subprocess.run(
        [sys.executable, "-m", "shared.data", "fetch", "mnist", "cifar10"],
        cwd=conftest.ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2 and r.stdout == ""
    err = r.stderr.splitlines()
    assert len(err) == 1 and "'cifar10'" in err[0] and "'mnist', 'fashion-mnist'" in err[0], err
    assert cached_files(isolated) == []


# ----------------------------------------------- where the tests find the real data


def test_tests_find_the_data_in_the_product_cache_alone(mnist_dir, cache, tmp_path, capsys):
    # The cache as the product's own download leaves it (from a local mirror), and nothing else:
    # no variable, no datasets folder beside the checkout.
    with serve(mnist_dir) as (url, hits), pytest.MonkeyPatch.context() as mp:
        mp.setitem(MIRRORS, "mnist", [url])
        assert data_main(["fetch", "mnist"]) == 0
    before = {p: p.read_bytes() for p in (cache / "mlp-twins" / "mnist").iterdir()}
    places = conftest.data_places("mnist", {}, tmp_path / "clone", data.cache_dir("mnist"))
    folder, where = conftest.find_real_data("mnist", places, tmp_path / "copy")
    assert (folder, where) == (tmp_path / "copy", f"cache {cache / 'mlp-twins' / 'mnist'}")
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == {
        p.name: b for p, b in before.items()
    }
    assert {p: p.read_bytes() for p in (cache / "mlp-twins" / "mnist").iterdir()} == before


def test_tests_name_every_place_they_looked(mnist_dir, cache, tmp_path):
    env = {"MLP_TWINS_DATASETS": str(tmp_path / "none"), "MLP_TWINS_DATA": str(mnist_dir)}
    places = conftest.data_places("fashion-mnist", env, tmp_path / "clone", tmp_path / "c")
    folder, where = conftest.find_real_data("fashion-mnist", places, tmp_path / "copy")
    assert folder is None and "\n" not in where
    for part in (
        f"MLP_TWINS_DATASETS {tmp_path / 'none'} (no such folder)",
        f"{mnist_dir / 'train-images-idx3-ubyte.gz'}: md5 f68b3c2dcbeaaa9fbdd348bbdeb94873, "
        "expected 8d4fb7e6c68d591d4c3dfef9ec88bf0d",  # MNIST is not Fashion-MNIST
        f"../shared/datasets {tmp_path / 'shared' / 'datasets'} (no such folder)",
        f"cache {tmp_path / 'c'} (no such folder)",
    ):
        assert part in where, (part, where)
    assert not (tmp_path / "copy").exists()


def test_a_reader_never_sees_a_half_copied_file(mnist_dir, tmp_path):
    """pytest-xdist's workers copy the data into one session cache at once: while one copies, what
    another finds there is whole and is the data's files only, no temp file (tests copy the folder
    whole); conftest.find_real_data writes a temp file beside it, then renames."""
    dest, sizes = tmp_path / "copy", {p.name: p.stat().st_size for p in mnist_dir.iterdir()}
    seen, done = set(), threading.Event()

    def read():
        while not done.is_set():
            for name, size in sizes.items():
                with contextlib.suppress(FileNotFoundError):
                    seen.add((name, (dest / name).stat().st_size == size))
            with contextlib.suppress(FileNotFoundError):  # only the data's own files, ever
                seen.update((p.name, p.name in sizes) for p in dest.iterdir())

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for _ in range(3):  # each copy over the last, as a second worker's would be
            places = [("MLP_TWINS_DATASETS", mnist_dir)]
            assert conftest.find_real_data("mnist", places, dest)[0] == dest
    finally:
        done.set()
        reader.join()
    assert {whole for _, whole in seen} == {True}, sorted(seen)
    assert sorted(p.name for p in dest.iterdir()) == sorted(sizes)  # no temp file left


NEEDS_DATA = """
def test_mnist(mnist_dir):
    pass

def test_fashion(fashion_dir):
    pass

def test_no_data():
    pass
"""


@pytest.mark.parametrize(
    "ci, workers", [("", "0"), ("true", "0"), ("true", "2")], ids=["local", "ci", "ci-2-workers"]
)
def test_data_skips_are_counted_loudly_and_fail_ci(ci, workers, tmp_path):
    # A checkout with nothing beside it, an empty cache and no variable: pytest in a process of
    # its own, with this conftest; in one process, or with pytest-xdist's workers as the suite
    # runs (pyproject.toml), where the skips happen in the workers and the verdict is the main's.
    clone = tmp_path / "clone"
    (clone / "tests").mkdir(parents=True)
    shutil.copyfile(conftest.ROOT / "tests" / "conftest.py", clone / "tests" / "conftest.py")
    (clone / "tests" / "test_needs_data.py").write_text(NEEDS_DATA)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLP_TWINS_") and k != "CI"}
    env.update(PYTHONPATH=str(conftest.ROOT), XDG_CACHE_HOME=str(tmp_path / "empty"), CI=ci)
    env.pop("MLP_TWINS_TEST_CACHE", None)  # the session makes its own, under TMPDIR
    env["TMPDIR"] = str(tmp_path / "tmp")
    (tmp_path / "tmp").mkdir()
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", workers, "tests"],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = [line for line in r.stdout.splitlines() if "for lack of real data" in line]
    assert len(lines) == 1, r.stdout
    assert lines[0].startswith("2 tests skipped for lack of real data (MNIST, Fashion-MNIST): ")
    assert "python -m shared.data fetch mnist fashion-mnist" in lines[0]
    assert "MLP_TWINS_DATASETS" in lines[0]
    assert "1 passed, 2 skipped" in r.stdout
    assert r.returncode == (1 if ci else 0), r.stdout
    assert ("CI=true, so this run fails" in lines[0]) == bool(ci)
    # The session's cache was removed when it ended, workers or not.
    assert not list((tmp_path / "tmp").glob("mlp-twins-test-cache-*"))
