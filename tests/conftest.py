"""Shared fixtures, and where the real data comes from.

The tests find MNIST and Fashion-MNIST the way the product does, in its order:
1. an explicit folder: $MLP_TWINS_DATASETS (holding mnist/ and fashion-mnist/), $MLP_TWINS_DATA
   (the product's own variable), then ../shared/datasets beside the checkout (this repository's
   CI);
2. the product's cache, $XDG_CACHE_HOME/mlp-twins/<name>/ (else ~/.cache/...), where the
   README's first command and `python -m shared.data fetch` put the files;
3. for the `mnist` dataset fixture, a tensorflow-datasets copy, if it holds the published order.
The four files found (md5-checked, by shared.data) are copied into this session's own temporary
cache, so no test writes where the user keeps data; no test touches the network. A test without
data skips, and the run ends with one line saying how many did and how to get the data; with
CI=true such a skip fails the run (CI always has the data beside it).
"""

from __future__ import annotations

import functools
import os
import pathlib
import shutil

import pytest

from shared.data import DataError, cache_dir, verified_files

# The checkout itself is first on sys.path (pyproject.toml: pythonpath), so that `import shared`
# and `import impls` find this checkout's code, installed or not.
ROOT = pathlib.Path(__file__).resolve().parents[1]

DATASETS = ("mnist", "fashion-mnist")
# Read now: pytest_configure points XDG_CACHE_HOME at this session's cache and drops
# MLP_TWINS_DATA, so that no test writes into the user's cache or inherits their folder.
USER_ENV = {k: v for k, v in os.environ.items() if k.startswith("MLP_TWINS_")}
USER_CACHE = {name: cache_dir(name) for name in DATASETS}

MISSING = "real data missing"  # starts every skip for lack of data: the summary counts them
HOW = (
    "to get the data, run `python -m shared.data fetch mnist fashion-mnist` (online, once), "
    "or set MLP_TWINS_DATASETS to a folder holding mnist/ and fashion-mnist/"
)
_data_skips: set[str] = set()  # node ids of the tests skipped for lack of data
_own_cache: list[str] = []  # the session cache this process made, removed when it ends


def pytest_configure(config):
    # Keep the suite off the user's ~/.cache: one cache per test session (pytest-xdist's workers
    # inherit it), so a dataset parsed once is reused by every later test. Tests of the cache
    # itself use their own tmp folder.
    if "MLP_TWINS_TEST_CACHE" not in os.environ:
        import tempfile

        _own_cache.append(tempfile.mkdtemp(prefix="mlp-twins-test-cache-"))
        os.environ["MLP_TWINS_TEST_CACHE"] = _own_cache[0]
    os.environ["XDG_CACHE_HOME"] = os.environ["MLP_TWINS_TEST_CACHE"]
    # An explicit dir in the caller's environment must not leak into tests that pass none.
    os.environ.pop("MLP_TWINS_DATA", None)
    # torch's OpenMP settings as compare.py makes them in its own process, before torch loads
    # (the user's own settings win): the tests that run compare.main, train or the benchmarks in
    # this process then run torch as a compare.py process would, and on a shared CPU its threads
    # sleep instead of spinning while they wait for one another (shared/timing.py), which
    # slowed such tests several-fold.
    from shared.timing import configure_threads

    configure_threads()


@pytest.fixture(scope="module")
def torch_one_thread():
    """One torch thread for a module (`pytestmark = pytest.mark.usefixtures("torch_one_thread")`):
    on a small CPU shared with other processes, torch's OpenMP threads wait on each other whenever
    one is descheduled (a 100x784 @ 784x500 matmul measured 1 ms on one thread and 8-15 ms on two
    while another process held a core). Results agree within the tests' tolerances either way.
    Without torch, the tests that use it skip."""
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def assert_loss_curves_close(got: dict, want: dict, tol: float, what: str = "loss curves") -> None:
    """Two records' loss curves agree: non-finite at the same steps (a record keeps a non-finite
    loss as None), and within `tol` (max |difference|) at the others."""
    import numpy as np

    a, b = (np.array([np.nan if x is None else x for x in r["loss_curve"]]) for r in (got, want))
    assert np.isfinite(a).tolist() == np.isfinite(b).tolist()
    finite = np.isfinite(b)
    diff = np.abs(a[finite] - b[finite]).max()
    assert diff <= tol, f"{what}: {diff:.3g}"


# ------------------------------------------------------------------ real data


def data_places(name: str, env: dict, root: pathlib.Path, cache: pathlib.Path) -> list:
    """(origin, folder) where the tests look for `name`, in order: the explicit folders that
    `env` names, ../shared/datasets beside `root`, then the product's cache folder `cache`."""
    places = [
        (v, pathlib.Path(env[v])) for v in ("MLP_TWINS_DATASETS", "MLP_TWINS_DATA") if env.get(v)
    ]
    return [*places, ("../shared/datasets", root.parent / "shared" / "datasets"), ("cache", cache)]


def find_real_data(name: str, places: list, dest: pathlib.Path) -> tuple[pathlib.Path | None, str]:
    """(`dest` holding a copy of the four published .gz files, where they came from) from the
    first place that has them all, md5-checked; else (None, what each place lacked)."""
    looked = []
    for origin, folder in places:
        if not folder.is_dir():
            looked.append(f"{origin} {folder} (no such folder)")
            continue
        try:
            files = verified_files(folder, name, origin)
        except DataError as e:
            looked.append(str(e))
            continue
        if any(path.suffix != ".gz" for path in files.values()):
            looked.append(f"{origin} {folder} (extracted files: the tests need the .gz files)")
            continue
        dest.mkdir(parents=True, exist_ok=True)
        for path in files.values():
            # Via a temp file beside `dest` and an atomic rename: pytest-xdist's workers copy into
            # one session cache at once, and a worker must never read another's half-written copy,
            # nor find a temp file in the folder its tests list or copy whole.
            part = dest.parent / f".{dest.name}.{path.name}.{os.getpid()}.part"
            shutil.copyfile(path, part)
            os.replace(part, dest / path.name)
        return dest, f"{origin} {folder}"
    return None, "; ".join(looked)


@functools.cache
def _real_data(name: str) -> tuple[pathlib.Path | None, str]:
    # Beside this session's cache, not in it: the loader's cache step never sees the copy.
    dest = pathlib.Path(os.environ["MLP_TWINS_TEST_CACHE"]) / "real-data" / name
    return find_real_data(name, data_places(name, USER_ENV, ROOT, USER_CACHE[name]), dest)


def _real_dir(name: str) -> pathlib.Path:
    folder, where = _real_data(name)
    if folder is None:
        pytest.skip(f"{MISSING}: {name} not found; looked at: {where}")
    return folder


@pytest.fixture(scope="session")
def mnist_dir() -> pathlib.Path:
    """A folder holding the four original MNIST .gz files (this session's copy)."""
    return _real_dir("mnist")


@pytest.fixture(scope="session")
def fashion_dir() -> pathlib.Path:
    return _real_dir("fashion-mnist")


@pytest.fixture(scope="session")
def mnist():
    """Real MNIST as a shared.data.Dataset (parsed once per session)."""
    from shared.data import load_dataset, tfds_source
    from shared.data.idx import MD5

    folder, where = _real_data("mnist")
    if folder is not None:
        return load_dataset("mnist", folder, verbose=False)
    ds, why = tfds_source.from_tfds("mnist")
    if ds is not None and ds.md5 == {stem: md5 for stem, (md5, _) in MD5["mnist"].items()}:
        return ds
    why = why or "the examples in tfds's own order, not the published one"
    pytest.skip(f"{MISSING}: mnist not found; looked at: {where}; tensorflow-datasets ({why})")


def pytest_runtest_logreport(report):
    if report.skipped and MISSING in str(report.longrepr):
        _data_skips.add(report.nodeid)


def _ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def pytest_unconfigure(config):
    # ~160 MB of copied and parsed datasets: gone with the session that made them.
    for folder in _own_cache:
        shutil.rmtree(folder, ignore_errors=True)


def pytest_sessionfinish(session, exitstatus):
    if _data_skips and _ci() and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


# Outermost, and after the others: the line comes last, just above the final counts.
@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_terminal_summary(terminalreporter, exitstatus, config):
    yield
    if not _data_skips:
        return
    n = len(_data_skips)
    line = f"{n} test{'s' * (n != 1)} skipped for lack of real data (MNIST, Fashion-MNIST): {HOW}"
    if _ci():
        line += "; CI=true, so this run fails"
    terminalreporter.write_line(line, yellow=True, bold=True)


@pytest.fixture
def compare_here(capsys):
    """`python compare.py ARGS` run by compare.main in this process, for tests about what
    compare.py does rather than about a real process: it spares a start-up of Python, torch and
    JAX (seconds each). Returns a CompletedProcess (exit code, stdout, stderr) as subprocess.run
    would; SIGTERM's handler, which main installs, is put back."""
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
