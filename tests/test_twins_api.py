"""The twins mirror each other: same module files, same public names in the same order, same
parameters; and both command lines turn bad input into one line on stderr and exit 2."""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

import pytest

from tools.side_by_side import ONE_SIDED

ROOT = pathlib.Path(__file__).resolve().parents[1]
TWINS = {"torch_mlp": ("torch",), "flax_mlp": ("jax", "flax", "optax")}
# The walk-through (fundamentals.py) is another engineer's and mirrors on its own terms.
MODULES = (
    "__init__.py",
    "__main__.py",
    "checkpoint.py",
    "fast.py",
    "model.py",
    "runtime.py",
    "sweep.py",
    "train.py",
)
# What one twin has and the other needs not, each with why there: in torch_mlp/fast.py only.
ONLY_IN = {"torch_mlp": {"fast.py": ONE_SIDED["impls/torch_mlp/fast.py"]}}


def public_api(path: pathlib.Path) -> list[tuple]:
    """Top-level public names in file order: functions and their parameters, classes, CONSTANTS."""
    api = []
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
            a = node.args
            params = [p.arg for p in a.posonlyargs + a.args + a.kwonlyargs]
            params += [f"*{a.vararg.arg}"] if a.vararg else []
            params += [f"**{a.kwarg.arg}"] if a.kwarg else []
            api.append(("def", node.name, tuple(params)))
        elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            api.append(("class", node.name))  # methods differ by framework (forward vs __call__)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            api += [
                ("const", t.id)
                for t in targets
                if isinstance(t, ast.Name) and t.id.isupper() and not t.id.startswith("_")
            ]
    return api


def test_same_module_files():
    files = {
        name: sorted(
            p.name for p in (ROOT / "impls" / name).glob("*.py") if p.name != "fundamentals.py"
        )
        for name in TWINS
    }
    assert files["torch_mlp"] == files["flax_mlp"] == sorted(MODULES)


@pytest.mark.parametrize("module", MODULES)
def test_same_public_api(module):
    api = {
        twin: [e for e in public_api(ROOT / "impls" / twin / module) if e[1] not in only]
        for twin in TWINS
        for only in [ONLY_IN.get(twin, {}).get(module, set())]
    }
    assert api["torch_mlp"] == api["flax_mlp"]


def test_train_modules_offer_what_compare_py_calls():
    names = [entry[1] for entry in public_api(ROOT / "impls" / "torch_mlp" / "train.py")]
    for needed in ("loss_fn", "train_step", "evaluate", "train"):
        assert needed in names
    runtime = [entry[1] for entry in public_api(ROOT / "impls" / "torch_mlp" / "runtime.py")]
    assert {"resolve_device", "describe_device", "versions"} <= set(runtime)
    train_def = next(
        e for e in public_api(ROOT / "impls" / "torch_mlp" / "train.py") if e[1] == "train"
    )
    assert train_def[2] == ("cfg", "data", "device", "log", "save")
    sweep_def = next(
        e for e in public_api(ROOT / "impls" / "torch_mlp" / "sweep.py") if e[1] == "train_group"
    )
    assert sweep_def[2] == ("cfgs", "data", "device", "log", "progress", "save")


BAD_INPUT = {
    "unknown field": ["--set", "bogus=1"],
    "unknown device": ["--device", "tpu"],
    "bad value": ["--set", "activation=tanh"],
    # Data that is not there: on a GPU-less machine `--device gpu` fails first; either way one line,
    # exit 2.
    "missing data / gpu": ["--device", "gpu", "--data-dir", str(ROOT / "no-such-folder")],
}


@pytest.mark.parametrize("case", BAD_INPUT)
@pytest.mark.parametrize("twin", TWINS)
def test_cli_bad_input_is_one_line_and_exit_2(twin, case):
    for module in TWINS[twin]:
        pytest.importorskip(module)
    proc = subprocess.run(
        [sys.executable, "-m", f"impls.{twin}", *BAD_INPUT[case]],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if not line.startswith("[data]")]
    assert len(lines) == 1 and "error:" in lines[0], proc.stderr
    assert proc.stdout.count("\n") <= 1  # at most the "== run" header before a data error
