"""Config, presets, grid expansion, --set and TOML parsing, and the CLI's one-line errors."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap

import pytest

from shared.config import (
    ACTIVATIONS,
    FIELD_NAMES,
    PRESETS,
    Config,
    ConfigError,
    load_toml,
    parse_set,
    resolve,
)
from tests.conftest import ROOT


def test_grid_is_432_runs_with_the_literal_learning_rates():
    runs = resolve("grid").runs()
    assert len(runs) == 432 == 3 * 3 * 3 * 4 * 2 * 2
    # The lab report wrote the learning rates 10e-1, 10e-3, 10e-5, 10e-7: kept as written.
    literal = [10e-1, 10e-3, 10e-5, 10e-7]
    assert literal == [1.0, 1e-2, 1e-4, 1e-6]
    assert sorted({r.learning_rate for r in runs}, reverse=True) == literal
    assert {r.hidden_size for r in runs} == {400, 500, 600}
    assert {r.hidden_layers for r in runs} == {1, 2, 3}
    assert {r.batch_size for r in runs} == {100, 300, 600}
    assert {(r.activation, r.output) for r in runs} == {
        (a, o) for a in ACTIVATIONS for o in ("logits", "softmax")
    }
    assert {r.epochs for r in runs} == {8}
    assert len({r.key() for r in runs}) == 432  # every run has its own resume key
    # Fixed order: axes in field order, the last one (learning_rate) varying fastest.
    assert [r.learning_rate for r in runs[:4]] == literal
    assert runs[0].hidden_size == runs[143].hidden_size == 400 and runs[144].hidden_size == 500
    assert runs == resolve("grid").runs()


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_is_valid(name):
    runs = resolve(name).runs()
    assert runs and all(isinstance(r, Config) for r in runs)
    for r in runs:
        assert r.layer_sizes[0] == 784 and r.layer_sizes[-1] == 10
        assert len(r.layer_sizes) == r.hidden_layers + 2
        assert r.steps_per_epoch == 60000 // r.batch_size


def test_baseline_is_the_tutorial():
    (c,) = resolve("baseline").runs()
    assert (c.hidden_size, c.hidden_layers, c.batch_size, c.learning_rate, c.epochs) == (
        500,
        1,
        100,
        1e-3,
        5,
    )
    assert (c.activation, c.output, c.init, c.tf32) == ("relu", "logits", "shared", False)


def test_describe_renders_a_run_on_one_line():
    assert (
        Config().describe()
        == "mnist 784-500-10 relu logits batch=100 lr=0.001 epochs=5 seed=0 init=shared"
    )
    assert (
        Config(hidden_layers=2, tf32=True, dtype="float64", compile=True)
        .describe()
        .endswith("init=shared tf32 float64 compile")
    )
    assert (
        Config(learning_rate=10e-1, output="softmax").describe(brief=True)
        == "1x500 relu softmax b100 lr1"
    )


def test_set_single_value_comma_axis_bools_floats():
    assert parse_set(["hidden_size=400"]) == {"hidden_size": (400,)}
    assert parse_set(["hidden_size=400, 600"]) == {"hidden_size": (400, 600)}
    assert parse_set(["learning_rate=10e-3"]) == {"learning_rate": (0.01,)}
    assert parse_set(["learning_rate=1e-3,10e-1"]) == {"learning_rate": (1e-3, 1.0)}
    assert parse_set(["tf32=true"]) == {"tf32": (True,)}
    assert parse_set(["tf32=False,yes"]) == {"tf32": (False, True)}
    assert parse_set(["activation=leaky_relu"]) == {"activation": ("leaky_relu",)}

    sweep = resolve("baseline", ["hidden_size=400,600", "learning_rate=10e-3", "tf32=on"])
    runs = sweep.runs()
    assert [r.hidden_size for r in runs] == [400, 600]
    assert all(r.learning_rate == 0.01 and r.tf32 is True for r in runs)
    # A single value replaces a preset's axis; the other axes stay.
    grid = resolve("grid", ["learning_rate=1e-3"]).runs()
    assert len(grid) == 108 and {r.learning_rate for r in grid} == {1e-3}


def test_toml_with_preset_and_list_axes(tmp_path):
    f = tmp_path / "small.toml"
    f.write_text(
        textwrap.dedent("""
        preset = "grid"
        hidden_size = [400, 600]
        hidden_layers = 2
        learning_rate = [1, 10e-3]   # TOML 1 is an int: taken as the float 1.0
        tf32 = true
    """)
    )
    sweep = resolve(str(f))
    runs = sweep.runs()
    assert sweep.name == "small"
    assert len(runs) == 2 * 3 * 2 * 2 * 2  # hidden_size x batch_size x lr x activation x output
    assert {r.hidden_size for r in runs} == {400, 600} and {r.hidden_layers for r in runs} == {2}
    assert {r.learning_rate for r in runs} == {1.0, 0.01}
    assert all(isinstance(r.learning_rate, float) and r.tf32 and r.epochs == 8 for r in runs)
    # --set goes on top of the file.
    assert len(resolve(str(f), ["hidden_size=500"]).runs()) == 24
    # No preset line: the baseline.
    g = tmp_path / "plain.toml"
    g.write_text("epochs = 2\n")
    assert load_toml(g).runs() == [Config(epochs=2)]


@pytest.mark.parametrize(
    "sets, field",
    [
        (["activation=tanh"], "activation"),
        (["batch_size=-100"], "batch_size"),
        (["batch_size=0"], "batch_size"),
        (["batch_size=60001"], "batch_size"),
        (["learning_rate=0"], "learning_rate"),
        (["learning_rate=-1e-3"], "learning_rate"),
        (["learning_rate=nan"], "learning_rate"),
        (["learning_rate=inf"], "learning_rate"),
        (["learning_rate=fast"], "learning_rate"),
        (["hidden_size=1.5"], "hidden_size"),
        (["hidden_size=400,-1"], "hidden_size"),
        (["hidden_size=400,400"], "hidden_size"),
        (["learning_rate=10e-1,1.0"], "learning_rate"),
        (["tf32=maybe"], "tf32"),
        (["dtype=float16"], "dtype"),
        (["dtype=double"], "dtype"),
        (["dataset=cifar10"], "dataset"),
        (["lr=1e-3"], "lr"),
        (["hidden_size="], "hidden_size"),
        (["hidden_size=400,"], "hidden_size"),
        (["hidden_size"], "hidden_size"),
    ],
)
def test_bad_set_values_name_the_field(sets, field):
    with pytest.raises(ConfigError) as err:
        resolve("baseline", sets)
    msg = str(err.value)
    assert field in msg and "\n" not in msg, msg
    assert "allowed" in msg or "expected" in msg or "empty value" in msg, msg


def test_config_rejects_bad_values_directly():
    for kwargs, field in [
        ({"hidden_size": True}, "hidden_size"),
        ({"learning_rate": math.nan}, "learning_rate"),
        ({"output": "probs"}, "output"),
        ({"init": "xavier"}, "init"),
        ({"tf32": 1}, "tf32"),
        ({"seed": -1}, "seed"),
        ({"epochs": 0}, "epochs"),
    ]:
        with pytest.raises(ConfigError, match=f"^{field}: got"):
            Config(**kwargs)
    assert Config(learning_rate=1).learning_rate == 1.0 and isinstance(
        Config(learning_rate=1).learning_rate, float
    )


@pytest.mark.parametrize(
    "text, needle",
    [
        ("hidden_size = -5\n", "hidden_size: got -5"),
        ("learning_rate = 0.0\n", "learning_rate: got 0.0"),
        ("activation = 'sigmoid'\n", "activation: got 'sigmoid'"),
        ("colour = 'red'\n", "unknown config field 'colour'"),
        ("hidden_size = []\n", "hidden_size: empty list"),
        ("preset = 'huge'\n", "preset: got 'huge'"),
        ("preset = ['grid']\n", "preset: got ['grid']"),
        ("learning_rate = '1e-3'\n", "learning_rate: got '1e-3'"),
        ("hidden_size = [400, 400]\n", "hidden_size: value 400 given twice"),
        ("hidden_size = = 3\n", "cannot read TOML"),
        ("[section\n", "cannot read TOML"),
    ],
)
def test_bad_toml_names_the_problem(tmp_path, text, needle):
    f = tmp_path / "bad.toml"
    f.write_text(text)
    with pytest.raises(ConfigError) as err:
        resolve(str(f))
    assert needle in str(err.value) and "\n" not in str(err.value), str(err.value)


def test_missing_or_unknown_config(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        resolve(str(tmp_path / "absent.toml"))
    with pytest.raises(ConfigError, match="allowed: baseline | grid | smoke"):
        resolve("gird")
    with pytest.raises(ConfigError, match="or a path to a .toml file"):
        resolve(str(tmp_path))
    d = tmp_path / "dir.toml"
    d.mkdir()
    with pytest.raises(
        ConfigError, match="cannot read TOML"
    ):  # a folder is no file: said, no traceback
        resolve(str(d))


def test_every_field_can_be_set():
    values = {
        "dataset": "fashion-mnist",
        "hidden_size": "7",
        "hidden_layers": "0",
        "activation": "leaky_relu",
        "output": "softmax",
        "batch_size": "60000",
        "learning_rate": "0.5",
        "epochs": "1",
        "seed": "4294967295",
        "init": "native",
        "tf32": "1",
        "dtype": "float64",
        "compile": "true",
    }
    assert set(values) == set(FIELD_NAMES)
    (c,) = resolve("baseline", [f"{k}={v}" for k, v in values.items()]).runs()
    assert (
        c.layer_sizes == [784, 10]
        and c.seed == 2**32 - 1
        and c.tf32 is True
        and c.dtype == "float64"
    )


CLI = """
import sys
from shared.cli import ArgumentParser, add_run_args, grid_from_args
p = ArgumentParser(prog="prog")
add_run_args(p)
print(len(grid_from_args(p.parse_args(sys.argv[1:])).runs()))
"""


def _cli(*args):
    return subprocess.run(
        [sys.executable, "-c", CLI, *args], cwd=ROOT, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--set", "batch_size=-1"], "batch_size: got -1"),
        (["--set", "activation=tanh"], "activation: got 'tanh'"),
        (["--set", "dtype=float16"], "dtype: got 'float16'; allowed: float32 | float64"),
        (["--set", "nope=1"], "unknown config field 'nope'"),
        (["--config", "gird"], "--config: got 'gird'"),
        (["--device", "tpu"], "argument --device: invalid choice"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(args, needle):
    r = _cli(*args)
    assert r.returncode == 2, r
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and ": error: " in lines[0] and needle in lines[0], r.stderr
    assert "Traceback" not in r.stderr and r.stdout == ""


def test_cli_good_input():
    r = _cli("--config", "grid", "--set", "hidden_size=500")
    assert (r.returncode, r.stdout.strip(), r.stderr) == (0, "144", "")
