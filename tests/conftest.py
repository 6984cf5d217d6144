"""Shared fixtures. Real data comes from ../shared/datasets (or $MLP_TWINS_DATASETS) and is
never copied into the repo; tests that need it skip with a reason where it is absent."""

from __future__ import annotations

import os
import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # `import shared`, `import impls` without an install

DATASETS = pathlib.Path(os.environ.get("MLP_TWINS_DATASETS", ROOT.parent / "shared" / "datasets"))
# An MNIST folder given the product's way (MLP_TWINS_DATA) also serves the tests; read it before
# pytest_configure removes it from the environment.
EXPLICIT_MNIST = os.environ.get("MLP_TWINS_DATA")


def pytest_configure(config):
    # Keep the suite off the user's ~/.cache: one cache per test session, so a dataset parsed
    # once is reused by every later test. Tests of the cache itself use their own tmp folder.
    if "MLP_TWINS_TEST_CACHE" not in os.environ:
        import tempfile

        os.environ["MLP_TWINS_TEST_CACHE"] = tempfile.mkdtemp(prefix="mlp-twins-test-cache-")
    os.environ["XDG_CACHE_HOME"] = os.environ["MLP_TWINS_TEST_CACHE"]
    # An explicit dir in the caller's environment must not leak into tests that pass none.
    os.environ.pop("MLP_TWINS_DATA", None)
    # torch's OpenMP settings as compare.py makes them in its own process, before torch loads (the user's
    # own settings win): the tests that run compare.main, train or the benchmarks in this process then run
    # torch as a compare.py process would, and on a shared CPU its threads sleep instead of spinning while
    # they wait for one another (shared/machine.py), which slowed such tests several-fold.
    from shared.machine import configure_threads

    configure_threads()


def _dataset_dir(name: str) -> pathlib.Path:
    d = DATASETS / name
    if name == "mnist" and EXPLICIT_MNIST and not (d / "train-images-idx3-ubyte.gz").is_file():
        d = pathlib.Path(EXPLICIT_MNIST)
    if not (d / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(
            f"real {name} files not found in {d} (set MLP_TWINS_DATASETS to the folder holding {name}/)"
        )
    return d


@pytest.fixture(scope="session")
def mnist_dir() -> pathlib.Path:
    """The folder with the four original MNIST .gz files."""
    return _dataset_dir("mnist")


@pytest.fixture(scope="session")
def fashion_dir() -> pathlib.Path:
    return _dataset_dir("fashion-mnist")


@pytest.fixture(scope="session")
def mnist(mnist_dir):
    """Real MNIST as a shared.data.Dataset (parsed once per session)."""
    from shared.data import load_dataset

    return load_dataset("mnist", mnist_dir, verbose=False)


@pytest.fixture
def compare_here(capsys):
    """`python compare.py ARGS` run by compare.main in this process, for tests about what compare.py does
    rather than about a real process: it spares a start-up of Python, torch and JAX (seconds each). Returns
    a CompletedProcess (exit code, stdout, stderr) as subprocess.run would; SIGTERM's handler, which main
    installs, is put back."""
    import signal
    import subprocess

    def run(*args: str) -> subprocess.CompletedProcess:
        import compare

        term = signal.getsignal(signal.SIGTERM)
        capsys.readouterr()
        try:
            code = compare.main(list(args))
        except SystemExit as e:
            code = e.code
        finally:
            signal.signal(signal.SIGTERM, term)
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(["compare.py", *args], code, out, err)

    return run
