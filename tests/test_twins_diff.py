"""`diff impls/torch_mlp/X.py impls/flax_mlp/X.py` shows only lines that differ because the
frameworks differ.

A hunk passes when one of its lines names a framework (torch, nn, F., nnx, jax, jnp, optax, ...) or
is one of the few framework idioms that name none (listed below, each with why). A hunk of prose or
incidental asymmetry fails with the hunk shown; so does a file whose hunk count grows past the
documented one, so that a change that adds framework hunks says so here.
"""

from __future__ import annotations

import difflib
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
FRAMEWORK = re.compile(
    r"torch|\bnn\b|\bF\.|nnx|jax|jnp|optax|flax|PyTorch|Flax|JAX|cuda|CUDA|XLA|jit|autograd|"
    r"no_grad|device_put|\blax\b|vmap|compile|\.item\(\)|float\(loss\)"
)
IDIOMS = {
    "model.py": (
        "def forward",  # torch's nn.Module method vs Flax's def __call__
        "def __call__",
        "layer.kernel",  # torch's (out, in) weight vs Flax's (in, out) kernel
    ),
    "train.py": (
        # torch builds its step with functools.partial, Flax with nnx.cached_partial
        "import functools",
        "argmax(dim=1)",  # torch says dim=, numpy and JAX say axis=
    ),
    "runtime.py": (
        "@contextlib.contextmanager",  # torch sets and restores its precision knobs by hand
    ),
    "__main__.py": (),
    "fast.py": (),
    "checkpoint.py": (
        "from shared.files import",  # torch.save writes one file (atomic_file), Orbax a folder
    ),
    "sweep.py": (
        "import functools",  # JAX's epoch is functools.partial(jax.jit, donate_argnums=...)
        "argmax(dim=-1)",  # torch says dim=, JAX says axis=
        ".cpu().numpy()",  # a torch tensor to numpy; JAX arrays go through np.asarray
    ),
}
# Measured; lower is better. Counted as difflib (and `diff`) counts them: a framework line that
# differs between two equal lines is a hunk of its own.
MAX_HUNKS = {
    "model.py": 16,
    "train.py": 29,  # 28 before fast.py: build_optimizer's docstring now equal, splitting a hunk
    "runtime.py": 16,
    "__main__.py": 9,
    "sweep.py": 47,  # 46 before compile_epoch (its types) and the torch-only section at the end
    "fast.py": 7,
    "checkpoint.py": 13,  # 12 before shared/files.py: its import line, a hunk of its own
}


def hunks(name: str) -> list[tuple[list[str], list[str]]]:
    a = (ROOT / "impls" / "torch_mlp" / name).read_text().splitlines()
    b = (ROOT / "impls" / "flax_mlp" / name).read_text().splitlines()
    ops = difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes()
    return [(a[i1:i2], b[j1:j2]) for tag, i1, i2, j1, j2 in ops if tag != "equal"]


@pytest.mark.parametrize("name", IDIOMS)
def test_diff_shows_framework_lines_only(name):
    found = hunks(name)
    for torch_lines, flax_lines in found:
        lines = torch_lines + flax_lines
        assert any(
            FRAMEWORK.search(line) or any(idiom in line for idiom in IDIOMS[name]) for line in lines
        ), (
            f"{name}: a hunk that names no framework:\n< "
            + "\n< ".join(torch_lines)
            + "\n---\n> "
            + "\n> ".join(flax_lines)
        )
    assert len(found) <= MAX_HUNKS[name], (
        f"{name}: {len(found)} hunks, documented {MAX_HUNKS[name]}"
    )
