"""One-framework installs: shared/ and comparison/ need neither framework, and each backend
runs without the other.

A missing package is simulated by putting None in sys.modules, which makes `import jax` raise
ImportError exactly as it does where jax is not installed.
"""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
FRAMEWORKS = ("torch", "torchvision", "jax", "jaxlib", "flax", "optax")


def run_without(blocked: tuple[str, ...], code: str) -> subprocess.CompletedProcess:
    prelude = (
        f"import sys; sys.modules.update(dict.fromkeys({list(blocked)!r})); "
        f"sys.path.insert(0, {str(ROOT)!r}); "
    )
    return subprocess.run(
        [sys.executable, "-c", prelude + code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_shared_and_the_comparison_import_without_any_framework():
    # Every module of both packages, those of report/ and data/ included: the comparison reads
    # results.jsonl (and the report draws it) where neither framework is installed.
    modules = sorted(
        ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for package in ("shared", "comparison")
        for p in (ROOT / package).rglob("*.py")
    )
    r = run_without(
        FRAMEWORKS,
        "import importlib; "
        + "; ".join(f"importlib.import_module('{m}')" for m in modules)
        + "; print('ok')",
    )
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr
    assert {
        "shared.config",
        "shared.data",
        "shared.batches",
        "shared.init",
        "shared.record",
        "shared.cli",
        "shared.timing",
        "shared.data.idx",
        "comparison.results",
        "comparison.report",
        "comparison.report.speed",
        "comparison.executors",
    } <= set(modules)


@pytest.mark.parametrize(
    "backend, blocked",
    [("torch", ("jax", "jaxlib", "flax", "optax")), ("jax", ("torch", "torchvision"))],
)
def test_one_backend_runs_without_the_other(backend, blocked, tmp_path, mnist_dir):
    pytest.importorskip("torch" if backend == "torch" else "flax")
    argv = [
        "compare.py",
        "--config",
        "smoke",
        "--set",
        "epochs=1",
        "--set",
        "output=logits",
        "--backend",
        backend,
        "--data-dir",
        str(mnist_dir),
        "--out",
        str(tmp_path),
        "--quiet",
    ]
    r = run_without(
        blocked,
        f"sys.argv = {argv!r}; import runpy; runpy.run_path('compare.py', run_name='__main__')",
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert f"{backend} " in r.stdout and "µs/step" in r.stdout
    assert (tmp_path / "results.jsonl").read_text().count("\n") == 1


def test_missing_backend_is_one_clear_line(tmp_path):
    argv = ["compare.py", "--config", "smoke", "--backend", "both", "--out", str(tmp_path)]
    r = run_without(
        ("jax", "jaxlib", "flax", "optax"),
        f"sys.argv = {argv!r}; import runpy; runpy.run_path('compare.py', run_name='__main__')",
    )
    assert r.returncode == 2
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and "backend jax is not installed" in err[0] and "mlp-twins[jax]" in err[0]
    assert "Traceback" not in r.stderr
