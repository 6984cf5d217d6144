"""The code's shape, read from its source (no import, no framework needed): the house rules that
ruff cannot check (function size and parameter counts are ruff's: pyproject.toml).

* No import cycle among the project's own modules (compare, comparison.*, shared.*, impls.*,
  tools.*), counting the imports inside functions too.
* The layers: shared/ imports neither a framework nor comparison/; impls/ never imports
  comparison/ (the twins do not know they are compared).
* compare.py and comparison/executors.py import the backends with import statements, never from
  strings (importlib.import_module("impls...")), so that a reader (and grep) can follow them.
* No comment hangs off a closing bracket (`)  # why`): the formatter leaves one there when it
  wraps a long line that ended in a comment, where it explains nothing; it goes above the
  statement instead.
"""

from __future__ import annotations

import ast
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]
TOP_MODULES = ("compare.py",)
PACKAGES = ("shared", "impls", "comparison", "tools")
EXECUTORS = ROOT / "comparison" / "executors.py"
FRAMEWORKS = ("torch", "torchvision", "jax", "jaxlib", "flax", "optax")


def module_files() -> dict[str, pathlib.Path]:
    """Dotted module name -> its file, for every module of the project (a package is its
    __init__.py)."""
    files = {p.stem: ROOT / p for p in map(pathlib.Path, TOP_MODULES)}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            files[name] = path
    return files


def parse(path: pathlib.Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def imported(name: str, path: pathlib.Path, known: set[str]) -> set[str]:
    """The project modules `name` imports anywhere in its file (top level, functions, branches).
    `from a.b import c` imports a.b.c where that is a module, else (a name defined in a.b) a.b."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(parse(path)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from . import x, from .y import z
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in known else base)
    return found & known - {name}


def import_graph() -> dict[str, set[str]]:
    files = module_files()
    return {name: imported(name, path, set(files)) for name, path in files.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None (depth-first search, white/grey/black)."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "grey"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "grey":
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = "black"
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


# ------------------------------------------------------------------ the tests


def test_the_graph_sees_imports_inside_functions():
    # The scanner itself: executors imports the backends only inside functions, and it finds them.
    graph = import_graph()
    assert {"impls.torch_mlp.train", "impls.flax_mlp.sweep"} <= graph["comparison.executors"]
    assert "comparison.executors" in graph["compare"]


def test_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def external_imports(path: pathlib.Path) -> set[str]:
    """The top-level names of every module a file imports, anywhere in it (absolute imports)."""
    found = set()
    for node in ast.walk(parse(path)):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            found.add(node.module.split(".")[0])
    return found


def test_shared_imports_no_framework_and_not_the_comparison():
    wrong = {
        f"{path.relative_to(ROOT)}: {sorted(bad)}"
        for path in sorted((ROOT / "shared").rglob("*.py"))
        if (bad := external_imports(path) & {*FRAMEWORKS, "comparison", "compare", "tools"})
    }
    assert not wrong, "shared/ imports no framework and nothing of the comparison:\n" + "\n".join(
        wrong
    )


def test_the_twins_do_not_import_the_comparison():
    wrong = {
        f"{path.relative_to(ROOT)}: {sorted(bad)}"
        for path in sorted((ROOT / "impls").rglob("*.py"))
        if (bad := external_imports(path) & {"comparison", "compare", "tools"})
    }
    assert not wrong, "impls/ imports shared/ and its framework only:\n" + "\n".join(wrong)


def test_the_layer_scanner_sees_what_it_should():
    # The scanner itself: it finds a framework imported inside a function, and comparison/ in
    # compare.py, so the two tests above cannot pass by seeing nothing.
    assert "torch" in external_imports(ROOT / "impls" / "torch_mlp" / "runtime.py")
    assert "comparison" in external_imports(ROOT / "compare.py")


def test_backends_are_imported_by_import_statements():
    for path in (ROOT / "compare.py", EXECUTORS):
        module = path.relative_to(ROOT)
        tree = parse(path)
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                f = node.func
                called = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
                assert called not in ("import_module", "__import__"), (
                    f"{module}:{node.lineno} imports a module from a string ({called}); "
                    "use an import statement (inside a function, for a framework)"
                )
    statements = {n.module for n in ast.walk(parse(EXECUTORS)) if isinstance(n, ast.ImportFrom)}
    assert {"impls.torch_mlp", "impls.flax_mlp"} <= statements, statements


def test_no_comment_hangs_off_a_closing_bracket():
    files = [ROOT / m for m in TOP_MODULES]
    for folder in (*PACKAGES, "tests", "benchmarks"):
        files += sorted((ROOT / folder).rglob("*.py"))
    hanging = re.compile(r"^\s*[\])}]+,?\s+#")
    found = [
        f"{path.relative_to(ROOT)}:{i}: {line.strip()}"
        for path in files
        for i, line in enumerate(path.read_text().splitlines(), 1)
        if hanging.match(line)
    ]
    assert not found, "comments after a closing bracket (put them above the statement):\n" + (
        "\n".join(found)
    )
