"""The code's shape, read from its source (no import, no framework needed): the house rules of the
developers' guide that a reviewer would otherwise check by eye.

* No import cycle among the project's own modules (compare, executors, shared.*, impls.*),
  counting the imports inside functions too: no module imports one that imports it back.
* Every function in compare.py, executors.py, shared/ and impls/ is at most 60 lines long and
  takes at most 6 positional parameters (`self` and `cls` not counted); past that, bundle the
  parameters into a small frozen dataclass or split the function.
* compare.py and executors.py import the backends with import statements, never from strings
  (importlib.import_module("impls...")), so that a reader (and grep) can follow them.
* No comment hangs off a closing bracket (`)  # why`): the formatter leaves one there when it
  wraps a long line that ended in a comment, where it explains nothing; it goes above the
  statement instead.
"""

from __future__ import annotations

import ast
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]
TOP_MODULES = ("compare.py", "executors.py")
PACKAGES = ("shared", "impls")
MAX_LINES = 60
MAX_POSITIONAL = 6


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


def functions(path: pathlib.Path):
    """(qualified name, def node) of every function and method in the file, nested ones too."""

    def walk(node, prefix: str):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield f"{prefix}{child.name}", child, isinstance(node, ast.ClassDef)
                yield from walk(child, f"{prefix}{child.name}.")
            elif isinstance(child, ast.ClassDef):
                yield from walk(child, f"{prefix}{child.name}.")
            else:
                yield from walk(child, prefix)

    yield from walk(parse(path), "")


def positional(fn: ast.FunctionDef, is_method: bool) -> int:
    names = [a.arg for a in fn.args.posonlyargs + fn.args.args]
    if is_method and names and names[0] in ("self", "cls"):
        names = names[1:]
    return len(names)


# ------------------------------------------------------------------ the tests


def test_the_graph_sees_imports_inside_functions():
    # The scanner itself: executors imports the backends only inside functions, and it finds them.
    graph = import_graph()
    assert {"impls.torch_mlp.train", "impls.flax_mlp.sweep"} <= graph["executors"]
    assert "executors" in graph["compare"]


def test_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_functions_are_short_and_take_few_positional_parameters():
    files = [ROOT / m for m in TOP_MODULES]
    files += [p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))]
    too_long, too_many = [], []
    for path in files:
        where = path.relative_to(ROOT)
        for qualname, fn, is_method in functions(path):
            lines = fn.end_lineno - fn.lineno + 1
            if lines > MAX_LINES:
                too_long.append(f"{where}:{fn.lineno} {qualname}: {lines} lines")
            n = positional(fn, is_method)
            if n > MAX_POSITIONAL:
                too_many.append(f"{where}:{fn.lineno} {qualname}: {n} positional parameters")
    problems = too_long + too_many
    assert not problems, (
        f"{len(too_long)} functions over {MAX_LINES} lines, {len(too_many)} over "
        f"{MAX_POSITIONAL} positional parameters:\n" + "\n".join(problems)
    )


def test_backends_are_imported_by_import_statements():
    for module in TOP_MODULES:
        tree = parse(ROOT / module)
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                f = node.func
                called = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
                assert called not in ("import_module", "__import__"), (
                    f"{module}:{node.lineno} imports a module from a string ({called}); "
                    "use an import statement (inside a function, for a framework)"
                )
    statements = {
        n.module for n in ast.walk(parse(ROOT / "executors.py")) if isinstance(n, ast.ImportFrom)
    }
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
