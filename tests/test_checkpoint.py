"""Checkpoints, each framework's own way, and evaluated by either twin (impls/*/checkpoint.py,
`python -m impls.<twin> evaluate PATH`).

On real MNIST, with models trained for one short epoch (10 steps of 6000 images): a model trained
by torch and evaluated by JAX, and the reverse, gives the same logits within float32 rounding and
the same count of correct test images within a few of 10,000 in float32, exactly in float64; for
both engines (the sweep saves each member as the loop saves its model), 1 to 3 hidden layers, both
activations and both outputs. A bad checkpoint (missing, truncated, foreign, of other shapes) is one
line and exit 2; a save cut short leaves the previous checkpoint whole.
"""

from __future__ import annotations

import dataclasses
import importlib
import itertools
import json
import pathlib
import shutil
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from shared.checkpoint import CheckpointError, model_path, run_name
from shared.config import Config
from shared.data import scale_images

pytest.importorskip("torch")
pytest.importorskip("flax")

ROOT = pathlib.Path(__file__).resolve().parents[1]
TWIN = {"torch": "torch_mlp", "jax": "flax_mlp"}
BACKENDS = tuple(TWIN)

# 10 steps of 600 images, on the first 6000 training images: the models leave their initial
# weights well behind in seconds; they are evaluated on all 10,000 test images.
BASE = Config(hidden_size=32, batch_size=600, epochs=1, learning_rate=1e-2)
SUBSET = 6000
# The loop: one model per depth that the sweep does not cover, and a float64 one.
F64 = dataclasses.replace(
    BASE, hidden_layers=2, activation="leaky_relu", output="softmax", dtype="float64"
)
LOOPED = [dataclasses.replace(BASE, hidden_layers=1), F64]
# The sweep: a group of 3 hidden layers, every activation x output, and the float64 one alone.
GROUPS = [
    [
        dataclasses.replace(BASE, hidden_layers=3, activation=a, output=o)
        for a, o in itertools.product(("relu", "leaky_relu"), ("logits", "softmax"))
    ],
    [F64],
]
LOOPED.append(GROUPS[0][-1])  # 3 layers, LeakyReLU, softmax: in both engines, in float32
# Correct test images, torch's count minus JAX's, float32: measured at most 1 here.
COUNT_TOL = 3


def module(backend: str, name: str):
    return importlib.import_module(f"impls.{TWIN[backend]}.{name}")


pytestmark = pytest.mark.usefixtures("torch_one_thread")  # conftest.py: one torch thread


@pytest.fixture(scope="module")
def saved(tmp_path_factory, mnist):
    """(engine, backend, cfg, path, record) of every model trained and saved here."""
    data = dataclasses.replace(
        mnist, train_images=mnist.train_images[:SUBSET], train_labels=mnist.train_labels[:SUBSET]
    )
    out = []
    for backend in BACKENDS:
        folder = tmp_path_factory.mktemp(f"loop-{backend}")
        for cfg in LOOPED:
            path = model_path(folder, cfg, backend)
            rec = module(backend, "train").train(cfg, data, "cpu", log=None, save=path)
            out.append(("loop", backend, cfg, path, rec))
        folder = tmp_path_factory.mktemp(f"sweep-{backend}")
        for cfgs in GROUPS:
            paths = {c.key(): model_path(folder, c, backend) for c in cfgs}
            recs = module(backend, "sweep").train_group(cfgs, data, "cpu", log=None, save=paths)
            out += [("sweep", backend, c, paths[c.key()], r) for c, r in zip(cfgs, recs)]
    return out


def read_weights(path, cfg):
    """Either twin's checkpoint as shared/init.py's weights, as `evaluate` reads it."""
    return module("torch", "__main__").read_weights(str(path), cfg)


def logits(backend: str, cfg: Config, weights, images: np.ndarray) -> np.ndarray:
    """The twin's MLP of `cfg` with `weights`, on `images` (N, 784) uint8: (N, 10) as numpy."""
    runtime, model_py = module(backend, "runtime"), module(backend, "model")
    with runtime.dtype_scope(cfg.dtype):
        model = model_py.build_model(cfg)
        model_py.set_weights(model, weights)
        x = scale_images(images, cfg.dtype)
        if backend == "torch":
            import torch

            with torch.no_grad():
                return model(torch.from_numpy(x)).numpy()
        import jax.numpy as jnp

        return np.asarray(model(jnp.asarray(x)))


def test_both_engines_saved_every_model(saved):
    assert len(saved) == 2 * (len(LOOPED) + sum(map(len, GROUPS)))
    for engine, backend, cfg, path, rec in saved:
        assert rec["status"] == "ok", (engine, backend, cfg)
        assert path.name == {"torch": "torch.pt", "jax": "jax.orbax"}[backend]
        assert path.exists() and path.parent.name == run_name(cfg)
        assert json.loads((path.parent / "config.json").read_text()) == cfg.to_dict()


def test_torch_checkpoint_is_a_plain_state_dict(saved):
    """What the tutorial saves, and loads back with weights_only=True into nn.Module."""
    import torch

    engine, backend, cfg, path, _ = next(s for s in saved if s[1] == "torch")
    state = torch.load(path, weights_only=True)
    model = module("torch", "model").build_model(cfg)
    assert model.load_state_dict(state) is not None
    assert sorted(state) == sorted(model.state_dict())


def test_flax_checkpoint_restores_with_orbax(saved):
    """The NNX way: an abstract model, its state restored by Orbax, merged."""
    import orbax.checkpoint as ocp
    from flax import nnx

    _, _, cfg, path, _ = next(s for s in saved if s[1] == "jax")
    abstract = nnx.eval_shape(lambda: module("jax", "model").build_model(cfg))
    graphdef, abstract_state = nnx.split(abstract)
    state = ocp.StandardCheckpointer().restore(path.resolve(), abstract_state)
    model = nnx.merge(graphdef, state)
    assert model.layers[0].kernel.shape == (784, cfg.hidden_size)


@pytest.mark.parametrize("engine", ["loop", "sweep"])
@pytest.mark.parametrize("trained_by", BACKENDS)
def test_evaluated_by_the_other_twin_gives_the_same_predictions(saved, mnist, engine, trained_by):
    other = "jax" if trained_by == "torch" else "torch"
    images, labels = mnist.test_images, mnist.test_labels
    cases = [s for s in saved if s[0] == engine and s[1] == trained_by]
    for _, _, cfg, path, rec in cases:
        weights = read_weights(path, cfg)
        mine, theirs = logits(trained_by, cfg, weights, images), logits(other, cfg, weights, images)
        scale = np.abs(mine).max()
        # float32 rounding of a sum of 784 products: a few ulps of the largest logit
        tol = 1e-12 if cfg.dtype == "float64" else 2e-6
        assert np.abs(mine - theirs).max() <= tol * max(scale, 1.0), (cfg.describe(), path)
        counts = {
            trained_by: int((mine.argmax(1) == labels).sum()),
            other: int((theirs.argmax(1) == labels).sum()),
        }
        if cfg.dtype == "float64":
            assert counts["torch"] == counts["jax"], cfg.describe()
        else:
            assert abs(counts["torch"] - counts["jax"]) <= COUNT_TOL, (cfg.describe(), counts)
        recorded = round(rec["epochs"][-1]["test_accuracy"] * len(labels))
        # `evaluate`'s own function, in the twin that trained it
        _, correct = module(trained_by, "__main__").evaluate_weights(cfg, weights, mnist, "cpu")
        if engine == "loop":  # the very evaluation train() ran: the same count
            assert correct == recorded, cfg.describe()
        else:  # the sweep evaluates all members at once: its own rounding
            assert abs(correct - recorded) <= COUNT_TOL, cfg.describe()


def test_every_depth_activation_output_and_dtype_is_covered(saved):
    for engine, backend in itertools.product(("loop", "sweep"), BACKENDS):
        cfgs = [c for e, b, c, _, _ in saved if (e, b) == (engine, backend)]
        assert {c.dtype for c in cfgs} == {"float32", "float64"}
        assert {c.activation for c in cfgs} == {"relu", "leaky_relu"}
        assert {c.output for c in cfgs} == {"logits", "softmax"}
    assert {c.hidden_layers for _, _, c, _, _ in saved} == {1, 2, 3}


@pytest.mark.parametrize("backend", BACKENDS)
def test_sweep_saves_each_member_as_the_loop_saves_it(saved, backend):
    """The same files from both engines: the same layout and dtype, and in float64 the same
    weights to rounding (the sweep's steps agree with the loop's to ~1e-16 each). In float32 Adam
    can turn a rounding-level gradient into a whole step, so the weights are compared through
    their predictions."""
    loop = {c.key(): p for e, b, c, p, _ in saved if e == "loop" and b == backend}
    sweep = {c.key(): p for e, b, c, p, _ in saved if e == "sweep" and b == backend}
    both = [c for c in LOOPED if c.key() in sweep]
    assert {c.dtype for c in both} == {"float32", "float64"}
    for cfg in both:
        assert sorted(p.name for p in loop[cfg.key()].parent.iterdir()) == sorted(
            p.name for p in sweep[cfg.key()].parent.iterdir()
        )
        a, b = read_weights(loop[cfg.key()], cfg), read_weights(sweep[cfg.key()], cfg)
        for (wa, ba), (wb, bb) in zip(a, b):
            assert wa.dtype == wb.dtype == np.dtype(cfg.dtype) and wa.shape == wb.shape
            if cfg.dtype == "float64":
                assert np.abs(wa - wb).max() <= 1e-12 and np.abs(ba - bb).max() <= 1e-12


@pytest.mark.parametrize("trained_by", BACKENDS)
def test_evaluate_command_reads_the_other_twins_checkpoint(saved, mnist_dir, trained_by, capsys):
    """`python -m impls.<other> evaluate PATH`: the config from config.json, the tutorial's line;
    torch's model evaluated by JAX in a real process, JAX's by torch in this one."""
    other = "jax" if trained_by == "torch" else "torch"
    _, _, cfg, path, rec = next(
        s for s in saved if s[:2] == ("loop", trained_by) and s[2].dtype == "float64"
    )
    argv = ["evaluate", str(path), "--device", "cpu", "--data-dir", str(mnist_dir)]
    if trained_by == "torch":
        proc = subprocess.run(
            [sys.executable, "-m", f"impls.{TWIN[other]}", *argv],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr
        out = proc.stdout
    else:
        assert module(other, "__main__").main(argv) == 0
        out = capsys.readouterr().out
    accuracy = 100 * rec["epochs"][-1]["test_accuracy"]
    assert f"Accuracy of the network on the 10000 test images: {accuracy:.2f} %" in out
    assert cfg.describe() in out


# ------------------------------------------------------------------ bad checkpoints


@pytest.fixture(scope="module")
def bad(saved, tmp_path_factory):
    """name -> (path, extra flags, words its one line must hold)."""
    folder = tmp_path_factory.mktemp("bad")
    torch_pt = next(p for e, b, c, p, _ in saved if b == "torch" and c == LOOPED[0])
    orbax = next(p for e, b, c, p, _ in saved if b == "jax" and c == LOOPED[0])
    shutil.copy(torch_pt.parent / "config.json", folder)  # the damaged ones' configuration
    data = torch_pt.read_bytes()
    (folder / "truncated.pt").write_bytes(data[: len(data) // 2])
    cut = shutil.copytree(orbax, folder / "truncated.orbax")
    for f in (cut / "ocdbt.process_0" / "d").iterdir():  # the arrays' data, cut in half
        f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    (folder / "notes.txt").write_text("not a model\n")
    with zipfile.ZipFile(folder / "other.zip", "w") as z:
        z.writestr("readme.txt", "a zip, but not torch.save's")
    import torch

    torch.save({"encoder.weight": torch.zeros(3, 3)}, folder / "foreign.pt")
    (folder / "empty-folder").mkdir()
    small = ["--set", "hidden_size=16"]
    return {
        "missing": (folder / "nope.pt", [], ["no such file", "expected"]),
        "truncated torch.pt": (folder / "truncated.pt", [], ["truncated", "torch.save"]),
        "truncated orbax": (cut, [], ["truncated", "Orbax"]),
        "foreign text file": (folder / "notes.txt", [], ["expected", "neither"]),
        "foreign zip": (folder / "other.zip", [], ["expected", "torch cannot read"]),
        "foreign state_dict": (folder / "foreign.pt", [], ["expected", "found encoder.weight"]),
        "folder without orbax": (folder / "empty-folder", [], ["expected", "Orbax"]),
        "torch.pt of other shapes": (torch_pt, small, ["784x32", "expected 784x16", "fit"]),
        "orbax of other shapes": (orbax, small, ["784x32", "expected 784x16", "fit"]),
    }


CASES = [
    "missing",
    "truncated torch.pt",
    "truncated orbax",
    "foreign text file",
    "foreign zip",
    "foreign state_dict",
    "folder without orbax",
    "torch.pt of other shapes",
    "orbax of other shapes",
]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("backend", BACKENDS)
def test_bad_checkpoint_is_one_line_and_exit_2(bad, backend, case, capsys):
    path, flags, words = bad[case]
    with pytest.raises(SystemExit) as e:
        module(backend, "__main__").main(["evaluate", str(path), "--device", "cpu", *flags])
    assert e.value.code == 2
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "evaluate: error:" in lines[0], err
    assert str(path) in lines[0] or path.name in lines[0]
    for word in words:
        assert word in lines[0], lines[0]
    assert out == ""


def test_load_raises_checkpoint_error_not_a_framework_error(bad):
    path, _, _ = bad["foreign state_dict"]
    with pytest.raises(CheckpointError):
        module("torch", "checkpoint").load(path, LOOPED[0])


# ------------------------------------------------------------------ atomic writes


class Killed(BaseException):
    """A kill in the middle of a save (a BaseException, as KeyboardInterrupt is)."""


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_save_cut_short_leaves_the_previous_checkpoint(saved, backend, tmp_path, monkeypatch):
    _, _, cfg, path, _ = next(s for s in saved if s[1] == backend)
    target = shutil.copytree(path.parent, tmp_path / "model") / path.name
    before = read_weights(target, cfg)
    ckpt = module(backend, "checkpoint")
    model = module(backend, "model").build_model(cfg)  # other weights: the initial ones

    def half_written(*args, **kwargs):
        where = pathlib.Path(args[0] if backend == "jax" else args[1])
        if backend == "jax":
            where.mkdir(parents=True)
            (where / "manifest.ocdbt").write_bytes(b"\0" * 10)
        else:
            where.write_bytes(b"PK\x03\x04 half")
        raise Killed

    if backend == "torch":
        import torch

        monkeypatch.setattr(torch, "save", half_written)
    else:
        import orbax.checkpoint as ocp

        monkeypatch.setattr(
            ocp.StandardCheckpointer, "save", lambda self, *a, **k: half_written(*a)
        )
    with runtime_scope(backend, cfg), pytest.raises(Killed):
        ckpt.save(model, target, cfg)
    after = read_weights(target, cfg)
    assert all(np.array_equal(a, b) for la, lb in zip(before, after) for a, b in zip(la, lb))
    assert sorted(p.name for p in target.parent.iterdir()) == sorted(["config.json", path.name])


def runtime_scope(backend: str, cfg: Config):
    return module(backend, "runtime").dtype_scope(cfg.dtype)
