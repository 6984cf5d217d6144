"""The twins side by side: one static HTML page per mirrored file pair, built from the source.

    python -m tools.side_by_side            # rewrite docs/side-by-side/*.html
    python -m tools.side_by_side --check    # exit 1 naming the stale pages, write nothing

Each definition starts on the same row as its twin; code that differs is marked, prose (comments,
docstrings) shaded. How and why: docs/side-by-side.md. Reads source text only, no framework."""

from __future__ import annotations

import ast
import difflib
import hashlib
import html
import io
import itertools
import pathlib
import re
import sys
import tokenize
from dataclasses import dataclass

from shared.cli import ArgumentParser, fail

ROOT = pathlib.Path(__file__).resolve().parents[1]
OUT = pathlib.Path("docs") / "side-by-side"
PROG = "python -m tools.side_by_side"
SIDES = (("impls/torch_mlp", "PyTorch"), ("impls/flax_mlp", "JAX/Flax"))
# Reading order: the model, the loop, its plumbing, the sweep engine, the walk-through, the CLI.
ORDER = ("model", "train", "runtime", "sweep", "fundamentals", "__main__")
SKIP = ("__init__",)  # a one-line docstring each: nothing to set side by side
# Public definitions one twin has and the other needs not, with why (tests/test_twins_api.py holds
# the twins to the rest): CompiledStep, torch.compile's plumbing (a dynamo reset, its counters, CUDA
# graphs' outputs), which the loop's and the sweep's compiled steps share; jax.jit needs none.
ONE_SIDED = {"impls/torch_mlp/fast.py": {"CompiledStep"}}


class MirrorError(ValueError):
    """The two files of a pair no longer line up definition by definition."""


@dataclass(frozen=True)
class Block:
    """Lines [start, stop) of a file (0-based): its preamble ("") or one top-level definition."""

    name: str
    kind: str  # module | def | class | const | main
    start: int
    stop: int


@dataclass(frozen=True)
class Row:
    """One row of the page: a line index on each side (None: padding), whether they differ, and
    whether they differ in prose only (comments, docstrings, blank lines: the same code)."""

    left: int | None
    right: int | None
    differs: bool
    prose: bool = False

    @property
    def kind(self) -> str:
        """The row's class on the page: same, prose, or diff (framework lines)."""
        return "prose" if self.prose else "diff" if self.differs else "same"


@dataclass(frozen=True)
class Heading:
    """The row that starts a pair of blocks: the anchor, with either block None if one-sided."""

    left: Block | None
    right: Block | None

    @property
    def block(self) -> Block:
        return self.left or self.right  # type: ignore[return-value]


@dataclass(frozen=True)
class Source:
    """One side of a pair: its path (relative to the root), framework label, text and lines."""

    path: str
    label: str
    text: str
    lines: tuple[str, ...]
    blob: str  # git's object id of the file (what `git hash-object FILE` prints)
    code: tuple[str, ...]  # each line's code: no comment, "" for docstring and blank lines


def source_lines(text: str) -> tuple[str, ...]:
    """The file's lines as ast and editors count them (a final newline ends the last line)."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return tuple(line.removesuffix("\r") for line in lines)


def code_lines(text: str, lines: tuple[str, ...], path: str) -> tuple[str, ...]:
    """Each line without its comment, and "" for the lines of a docstring (any string standing
    alone as a statement) and blank ones: two lines whose code is equal differ in prose only."""
    try:
        tree = ast.parse(text, filename=path)
        tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (SyntaxError, tokenize.TokenError) as e:
        raise MirrorError(f"{path}: not valid Python ({e})") from None
    code = list(lines)
    for tok in tokens:
        if tok.type == tokenize.COMMENT and tok.start[0] <= len(code):
            row, col = tok.start[0] - 1, tok.start[1]
            code[row] = code[row][:col]
    for node in ast.walk(tree):
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            if isinstance(node.value.value, str):
                for row in range(node.lineno - 1, node.end_lineno or node.lineno):
                    code[row] = ""
    return tuple(line.rstrip() for line in code)


def blob_id(data: bytes) -> str:
    """git's object id of a file with these bytes (what `git hash-object FILE` prints)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


# ------------------------------------------------------------------------ blocks and rows


def _anchor(node: ast.stmt) -> tuple[str, str] | None:
    """(name, kind) when a top-level statement starts a block of its own, else None."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return node.name, "def"
    if isinstance(node, ast.ClassDef):
        return node.name, "class"
    if isinstance(node, (ast.Assign, ast.AnnAssign)):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        names = [n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)]
        return (", ".join(names), "const") if names else None
    if isinstance(node, ast.If) and "__name__" in ast.unparse(node.test):
        return "__main__", "main"
    return None


def blocks(lines: tuple[str, ...], path: str) -> list[Block]:
    """The preamble, then one block per anchored top-level statement, in file order."""
    try:
        tree = ast.parse("\n".join(lines) + "\n", filename=path)
    except SyntaxError as e:
        raise MirrorError(f"{path}:{e.lineno}: not valid Python ({e.msg})") from None
    found, floor = [], 0  # floor: a block's comments cannot reach above the previous statement
    for node in tree.body:
        anchor = _anchor(node)
        if anchor is not None:
            first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])]) - 1
            while first > floor and lines[first - 1].startswith("#"):
                first -= 1  # the comment lines right above belong to the definition
            found.append((first, *anchor))
        floor = node.end_lineno or node.lineno
    starts = [first for first, *_ in found] + [len(lines)]
    preamble = Block("", "module", 0, starts[0])
    return [preamble] + [
        Block(name, kind, first, stop) for (first, name, kind), stop in zip(found, starts[1:])
    ]


def is_public(block: Block) -> bool:
    """The names tests/test_twins_api.py holds the twins to: functions, classes, UPPER constants."""
    if block.kind in ("def", "class"):
        return not block.name.startswith("_")
    names = block.name.split(", ")
    return block.kind == "const" and any(n.isupper() and not n.startswith("_") for n in names)


def pair_blocks(a: list[Block], b: list[Block], paths: tuple[str, str]) -> list[Heading]:
    """The blocks of the two files paired by name, in order; refuses a one-sided public block
    that ONE_SIDED does not name."""
    matcher = difflib.SequenceMatcher(None, [k.name for k in a], [k.name for k in b], False)
    pairs = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            pairs += [Heading(x, y) for x, y in zip(a[i1:i2], b[j1:j2])]
            continue
        pairs += [Heading(x, None) for x in a[i1:i2]] + [Heading(None, y) for y in b[j1:j2]]
    for pair in pairs:
        here, there = paths if pair.left else paths[::-1]
        one_sided = pair.left is None or pair.right is None
        if one_sided and is_public(pair.block) and pair.block.name not in ONE_SIDED.get(here, ()):
            raise MirrorError(
                f"{paths[0]} and {paths[1]} no longer line up: {pair.block.kind} "
                f"{pair.block.name} is in {here} only, or out of order (a public definition "
                f"needs its twin at the same place in {there}; only _private helpers and ONE_SIDED "
                "may be one-sided)"
            )
    return pairs


PAIR_CUTOFF = 0.75  # the ratio above which two lines read as one line changed (as ndiff)


def pair_hunk(a: tuple[str, ...], b: tuple[str, ...], ra: range, rb: range) -> list[tuple]:
    """The lines of a non-equal hunk as row pairs: its most alike two lines share a row (then the
    same above and below them, as difflib's ndiff pairs them); the rest top-aligned, padded."""
    if not ra or not rb or len(ra) * len(rb) > 2500:  # the search below is len(ra) * len(rb)
        return list(itertools.zip_longest(ra, rb))
    best, at = PAIR_CUTOFF, None
    matcher = difflib.SequenceMatcher(autojunk=False)
    for j in rb:
        matcher.set_seq2(b[j])
        for i in ra:
            matcher.set_seq1(a[i])
            if matcher.real_quick_ratio() > best and matcher.quick_ratio() > best:
                if (ratio := matcher.ratio()) > best:
                    best, at = ratio, (i, j)
    if at is None:
        return list(itertools.zip_longest(ra, rb))
    i, j = at[0] - ra.start, at[1] - rb.start
    above = pair_hunk(a, b, ra[:i], rb[:j])
    return above + [at] + pair_hunk(a, b, ra[i + 1 :], rb[j + 1 :])


def block_rows(a: tuple[str, ...], b: tuple[str, ...], pair: Heading) -> list[Row]:
    """A pair's rows: difflib's equal lines side by side, then each other hunk by pair_hunk."""
    ra = range(pair.left.start, pair.left.stop) if pair.left else range(0)
    rb = range(pair.right.start, pair.right.stop) if pair.right else range(0)
    matcher = difflib.SequenceMatcher(None, [a[i] for i in ra], [b[j] for j in rb], False)
    rows = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            rows += [Row(i, j, False) for i, j in zip(ra[i1:i2], rb[j1:j2])]
        else:
            rows += [Row(i, j, True) for i, j in pair_hunk(a, b, ra[i1:i2], rb[j1:j2])]
    return rows


def align(a: Source, b: Source) -> list[Heading | Row]:
    """The page's rows, top to bottom: each pair of blocks opens with its Heading."""
    pairs = pair_blocks(blocks(a.lines, a.path), blocks(b.lines, b.path), (a.path, b.path))
    rows: list[Heading | Row] = []
    for pair in pairs:
        rows.append(pair)
        rows += [_prose(row, a.code, b.code) for row in block_rows(a.lines, b.lines, pair)]
    return rows


def _prose(row: Row, left: tuple[str, ...], right: tuple[str, ...]) -> Row:
    """The row, marked prose where its two lines differ but their code does not."""
    if not row.differs:
        return row
    code = ("" if i is None else side[i] for i, side in ((row.left, left), (row.right, right)))
    return Row(row.left, row.right, True, prose=next(code) == next(code))


# ------------------------------------------------------------------------ highlighting

# Pygments token types -> a few classes of our own: coarse, so that the pages do not change with
# Pygments' finer token splits from one version to the next (adjacent same-class runs merge).
TOKEN_CLASSES = (
    ("Literal.String.Doc", "sd"),
    ("Literal.String", "s"),
    ("Literal.Number", "m"),
    ("Comment", "co"),
    ("Keyword", "k"),
    ("Operator.Word", "k"),
    ("Name.Builtin", "b"),
    ("Name.Function", "f"),
    ("Name.Class", "t"),
    ("Name.Decorator", "d"),
)


def _token_class(ttype) -> str:
    name = ".".join(("Token", *ttype))
    for prefix, cls in TOKEN_CLASSES:
        if name == f"Token.{prefix}" or name.startswith(f"Token.{prefix}."):
            return cls
    return ""


Runs = list[tuple[str, str]]  # a line as (token class, text) runs


def highlight(text: str, count: int) -> list[Runs]:
    """The file as `count` lines of (token class, text) runs, Python tokens by Pygments."""
    try:
        from pygments import lex
        from pygments.lexers import PythonLexer
    except ImportError:
        raise MirrorError("highlighting needs Pygments: pip install -e '.[docs]'") from None
    lines: list[Runs] = [[]]
    for ttype, value in lex(text, PythonLexer(stripnl=False, ensurenl=True)):
        for k, piece in enumerate(value.split("\n")):
            if k:
                lines.append([])
            if piece:
                lines[-1].append((_token_class(ttype), piece))
    return [
        [(cls, "".join(t for _, t in group)) for cls, group in itertools.groupby(runs, _first)]
        for runs in lines[:count]
    ]


def _first(run: tuple[str, str]) -> str:
    return run[0]


WORD = re.compile(r"\w+|\s+|[^\w\s]")  # every character falls in exactly one word


def changed_words(a: str, b: str) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """The character ranges, in a and in b, of the words difflib does not match between the two
    lines; none when they share too little for a word diff to help (the row's tint says it)."""
    wa, wb = WORD.findall(a), WORD.findall(b)
    matcher = difflib.SequenceMatcher(None, wa, wb, False)
    if matcher.ratio() < 0.5:
        return [], []
    at_a = list(itertools.accumulate(map(len, wa), initial=0))
    at_b = list(itertools.accumulate(map(len, wb), initial=0))
    ranges: tuple[list, list] = ([], [])
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag != "equal":
            ranges[0].extend([(at_a[i1], at_a[i2])] if i2 > i1 else [])
            ranges[1].extend([(at_b[j1], at_b[j2])] if j2 > j1 else [])
    return _joined(ranges[0], a), _joined(ranges[1], b)


def _joined(ranges: list[tuple[int, int]], line: str) -> list[tuple[int, int]]:
    """Ranges that only spaces or dots keep apart, as one (`torch.optim.Adam`, not three), and
    without the spaces at their ends (a changed indentation is no word)."""
    out: list[tuple[int, int]] = []
    for start, stop in ranges:
        if out and not line[out[-1][1] : start].strip(" ."):
            start = out.pop()[0]
        out.append((start, stop))
    trimmed = [
        (start + len(piece) - len(piece.lstrip()), stop - len(piece) + len(piece.rstrip()))
        for start, stop in out
        for piece in [line[start:stop]]
    ]
    return [(start, stop) for start, stop in trimmed if start < stop]


def line_html(runs: Runs, changed: list[tuple[int, int]]) -> str:
    """A line's HTML: a <span class=...> per token run, split where a changed word starts or ends
    (those pieces get the class ch)."""
    cuts = sorted({p for r in changed for p in r})
    out, pos = [], 0
    for cls, text in runs:
        edges = [0] + [c - pos for c in cuts if pos < c < pos + len(text)] + [len(text)]
        for start, stop in itertools.pairwise(edges):
            inside = any(s <= pos + start < e for s, e in changed)
            classes = " ".join(filter(None, (cls, "ch" if inside else "")))
            piece = html.escape(text[start:stop], quote=False)
            out.append(f'<span class="{classes}">{piece}</span>' if classes else piece)
        pos += len(text)
    return "".join(out)


# ------------------------------------------------------------------------ pages

CSS = """\
:root{--fs:clamp(10px,calc((100vw - 40px)/129),15px);--l:#d9411e;--r:#2f62c9;--line:#d0d7de}
*{box-sizing:border-box}
body{margin:0;color:#1f2328;background:#fff;
font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
header{padding:10px 16px 8px}
header p,header nav{margin:3px 0;font-size:13px;color:#59636e}
h1{font-size:20px;margin:2px 0}
a{color:#0969da;text-decoration:none}a:hover{text-decoration:underline}
code{font:12px ui-monospace,SFMono-Regular,Menlo,Consolas,"DejaVu Sans Mono",monospace}
nav.pages b{color:#1f2328}
nav.toc span{display:inline-block;margin-right:1.2ch;white-space:nowrap}
nav.toc small{color:#59636e}
.l{--c:var(--l)}.r{--c:var(--r)}
span.side{color:var(--c);font-weight:600}
#only{position:fixed;top:0;left:0;opacity:0;pointer-events:none}
label.toggle{display:inline-block;padding:1px 10px;border:1px solid var(--line);border-radius:6px;
cursor:pointer;user-select:none;color:#1f2328;background:#f6f8fa}
label.toggle::before{content:"\\2610  "}
#only:checked~header label.toggle{background:#1f2328;color:#fff}
#only:checked~header label.toggle::before{content:"\\2611  "}
#only:focus-visible~header label.toggle{outline:2px solid #0969da}
#only:checked~main tr.same,#only:checked~main tr.prose,#only:checked~main tr.h.eq{display:none}
#only:checked~main tr.h.eq:target{display:table-row}
tr.fold{display:none}
#only:checked~main tr.fold{display:table-row}
table.sbs{width:100%;table-layout:fixed;border-collapse:collapse;font-size:var(--fs);
line-height:1.45;tab-size:4;font-family:ui-monospace,SFMono-Regular,"SF Mono",Menlo,Consolas,
"DejaVu Sans Mono","Liberation Mono",monospace}
col.num{width:4.5ch}col.mk{width:1.5ch}
main.index{padding:0 16px 16px}
table.index{border-collapse:collapse;font-size:14px}
table.index th,table.index td{padding:5px 16px 5px 0;border-bottom:1px solid var(--line);
text-align:left;vertical-align:top}
table.sbs thead th{position:sticky;top:0;z-index:1;background:#fff;
border-bottom:1px solid var(--line);
padding:4px 8px;text-align:left;font:600 13px/1.4 system-ui,sans-serif;color:var(--c)}
td{padding:0;vertical-align:top;height:1.45em}
td.num{text-align:right;padding-right:.5ch;color:#8c959f;user-select:none}
td.mk{text-align:center;color:var(--c);font-weight:700;user-select:none}
td.code{white-space:pre-wrap;overflow-wrap:anywhere;--i:0;
padding:0 1ch 0 calc(var(--i)*1ch + 2.5ch);
text-indent:calc(var(--i)*-1ch - 2ch)}
td.num.r,tr.h td.r{border-left:1px solid var(--line)}
td.x{background:color-mix(in srgb,var(--c) 9%,#fff)}
td.num.x,td.mk.x{background:color-mix(in srgb,var(--c) 18%,#fff);color:#1f2328}
td.p{background:#f6f8fa}td.num.p,td.mk.p{background:#eaeef2}
td.pad{background:repeating-linear-gradient(-45deg,#fff 0 4px,#f3f4f6 4px 8px)}
tr.h td{height:auto;padding:10px 8px 2px;border-bottom:1px solid var(--line);
font:13px/1.4 system-ui,sans-serif;color:#59636e;scroll-margin-top:2.2em}
tr.h td b{font:600 var(--fs) ui-monospace,Menlo,Consolas,"DejaVu Sans Mono",monospace}
tr.h td b a{color:#1f2328}
tr.h td.none{font-style:italic}
tr.h:target td{background:#fff8c5}
tr.fold td{height:5px;padding:0;font-size:0;background:#f6f8fa;border-top:1px dashed var(--line)}
span.ch{background:color-mix(in srgb,var(--c) 24%,transparent);border-radius:2px}
.k{color:#cf222e}.s{color:#0a3069}.sd{color:#3b6d3a}.co{color:#6e7781;font-style:italic}
.m,.b{color:#0550ae}.f{color:#6639ba;font-weight:600}.t{color:#953800;font-weight:600}.d{color:#8250df}
footer{padding:12px 16px;font-size:12px;color:#59636e}
"""

# The switch is CSS (the checkbox #only hides tr.same); the script only lets a link open a page
# with it on (train.html?framework#train_step) and keeps the row under the column titles in place
# when the reader flips it.
JS = """<script>
const only = document.getElementById("only");
let keep = null;
document.querySelector("label.toggle").addEventListener("click", () => {
  const y = document.querySelector("thead th").getBoundingClientRect().bottom + 2;
  const row = document.elementFromPoint(innerWidth / 2, y)?.closest("tbody tr");
  keep = row ? [row, row.getBoundingClientRect().top] : null;
});
only.addEventListener("change", () => {
  if (!keep) return;
  let [row, top] = keep;
  while (!row.getClientRects().length && row.previousElementSibling) {
    row = row.previousElementSibling;
  }
  scrollBy(0, row.getBoundingClientRect().top - top);
  keep = null;
});
if (/[?&]framework\\b/.test(location.search)) {
  only.checked = true;
  const id = decodeURIComponent(location.hash.slice(1));
  const target = id && document.getElementById(id);
  if (target) target.scrollIntoView();
}
</script>"""

KIND_WORDS = {"module": "", "def": "def", "class": "class", "const": "", "main": "if"}


def page_filename(stem: str) -> str:
    """X.py's page: X.html (main.html for __main__.py: site builders skip a leading _)."""
    return ("main" if stem == "__main__" else stem) + ".html"


@dataclass(frozen=True)
class Page:
    """What a page is built from: its file stem, the two sources, and the aligned rows."""

    stem: str
    a: Source
    b: Source
    rows: tuple[Heading | Row, ...]

    @property
    def filename(self) -> str:
        return page_filename(self.stem)

    def differing(self) -> tuple[int, int]:
        """How many lines of code of each side differ from their twin (framework lines); prose
        (comments, docstrings) and blank lines are not counted."""
        rows = [r for r in self.rows if isinstance(r, Row) and r.kind == "diff"]
        return (
            sum(r.left is not None and self.a.code[r.left] != "" for r in rows),
            sum(r.right is not None and self.b.code[r.right] != "" for r in rows),
        )


def heading_ids(rows: tuple[Heading | Row, ...]) -> dict[int, str]:
    """A unique HTML id for each heading (by its position in rows): the block's first name."""
    ids: dict[int, str] = {}
    seen: dict[str, int] = {}
    for k, row in enumerate(rows):
        if isinstance(row, Heading):
            base = row.block.name.split(", ")[0] or "module"
            seen[base] = seen.get(base, 0) + 1
            ids[k] = base if seen[base] == 1 else f"{base}-{seen[base]}"
    return ids


def _heading_cell(block: Block | None, side: str, other: str) -> str:
    if block is None:
        return f'<td colspan="3" class="{side} none">no twin: {other} only</td>'
    span = f"{block.start + 1}&ndash;{block.stop}" if block.stop > block.start else "empty"
    name = html.escape(block.name or "module")  # the preamble: docstring, imports
    word = KIND_WORDS[block.kind]
    return f'<td colspan="3" class="{side}">{word} <b>{name}</b> &middot; {span}</td>'


def heading_html(row: Heading, anchor: str, labels: tuple[str, str], plain: bool) -> str:
    """A heading row; `plain` (the twins' blocks are identical) hides it with the identical rows."""
    cells = _heading_cell(row.left, "l", labels[1]) + _heading_cell(row.right, "r", labels[0])
    cells = cells.replace("<b>", f'<b><a href="#{anchor}">').replace("</b>", "</a></b>")
    return f'<tr class="h{" eq" if plain else ""}" id="{anchor}">{cells}</tr>'


def _line_cells(index: int | None, lines: tuple[str, str], side: str, kind: str) -> str:
    """A side's three cells: line number, mark, code; `lines` is the line as text and as HTML.
    Framework lines are tinted (x) and marked; prose is shaded (p), unmarked."""
    code_line, html_line = lines
    if index is None:
        return (
            f'<td class="num {side}"></td><td class="mk {side}"></td>'
            f'<td class="code {side} pad"></td>'
        )
    x = {"diff": " x", "prose": " p"}.get(kind, "")
    mark = ("&lt;" if side == "l" else "&gt;") if kind == "diff" else ""
    return (
        f'<td class="num {side}{x}">{index + 1}</td><td class="mk {side}{x}">{mark}</td>'
        f'<td class="code {side}{x}"{_indent(code_line)}>{html_line}</td>'
    )


def _indent(line: str) -> str:
    """An indented line's indentation as --i, so that a long line wraps under its own start."""
    depth = len(line) - len(line.lstrip(" "))
    return f' style="--i:{depth}"' if depth else ""


def row_html(row: Row, page: Page, code: tuple[list[Runs], list[Runs]]) -> str:
    """A row of two lines; a changed pair of code lines has its differing words picked out (class
    ch); prose is shaded only."""
    changed: tuple[list, list] = ([], [])
    if row.kind == "diff" and row.left is not None and row.right is not None:
        changed = changed_words(page.a.lines[row.left], page.b.lines[row.right])
    left, right = (
        None if index is None else line_html(runs[index], ranges)
        for index, runs, ranges in zip((row.left, row.right), code, changed)
    )
    texts = (
        "" if index is None else src.lines[index]
        for index, src in ((row.left, page.a), (row.right, page.b))
    )
    cells = _line_cells(row.left, (next(texts), left or ""), "l", row.kind)
    cells += _line_cells(row.right, (next(texts), right or ""), "r", row.kind)
    return f'<tr class="{row.kind}">{cells}</tr>'


def table_html(page: Page, code: tuple[list[Runs], list[Runs]]) -> str:
    """The <table>: headings, line rows, and a fold row before each run of rows that the switch
    hides (identical lines, and prose)."""
    a, b = page.a, page.b
    out = [
        '<table class="sbs"><colgroup><col class="num"><col class="mk"><col class="code">'
        '<col class="num"><col class="mk"><col class="code"></colgroup>',
        f'<thead><tr><th colspan="3" class="l">{a.label} &middot; {a.path}</th>'
        f'<th colspan="3" class="r">{b.label} &middot; {b.path}</th></tr></thead><tbody>',
    ]
    ids = heading_ids(page.rows)
    heads = list(ids)  # the headings' positions in page.rows, in order
    differing = {
        start
        for start, stop in zip(heads, heads[1:] + [len(page.rows)])
        if any(row.kind == "diff" for row in page.rows[start + 1 : stop])  # type: ignore[union-attr]
    }
    for k, group in itertools.groupby(
        enumerate(page.rows),
        key=lambda kr: "h" if isinstance(kr[1], Heading) else kr[1].kind == "diff",
    ):
        group = list(group)
        if group[0][0] in ids:
            out += [
                heading_html(row, ids[j], (a.label, b.label), j not in differing)
                for j, row in group
            ]
            continue
        if not k:
            fold = _fold([row for _, row in group])
            out.append(f'<tr class="fold"><td colspan="6" title="{fold}">{fold}</td></tr>')
        out += [row_html(row, page, code) for _, row in group]
    return "\n".join(out + ["</tbody></table>"])


def _fold(rows: list[Row]) -> str:
    """What a fold row stands for: "3 identical lines", "2 identical lines, 1 of prose"."""
    same, prose = sum(not r.differs for r in rows), sum(r.prose for r in rows)
    parts = [f"{same} identical line{'s' if same != 1 else ''}"] if same else []
    parts += [f"{prose} line{'s' if prose != 1 else ''} of prose"] if prose else []
    return ", ".join(parts)


def _document(title: str, body: str) -> str:
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n<style>\n{CSS}</style></head>\n<body>\n{body}\n"
        "</body></html>\n"
    )


def _nav(pages: list[Page], current: str) -> str:
    links = [
        f"<b>{p.stem}</b>" if p.filename == current else f'<a href="{p.filename}">{p.stem}</a>'
        for p in pages
    ]
    index = '<a href="index.html">the twins side by side</a>'
    return f'<nav class="pages">{index}: {" · ".join(links)}</nav>'


def _toc(page: Page) -> str:
    links = []
    for k, anchor in heading_ids(page.rows).items():
        row = page.rows[k]
        assert isinstance(row, Heading)
        if row.block.kind not in ("def", "class", "main"):
            continue
        only = ""
        if row.left is None or row.right is None:
            only = f" <small>({page.a.label if row.left else page.b.label} only)</small>"
        links.append(f'<span><a href="#{anchor}">{html.escape(row.block.name)}</a>{only}</span>')
    return f'<nav class="toc">Definitions: {" ".join(links)}</nav>'


def _side(src: Source, side: str) -> str:
    return (
        f'<span class="{side}"><span class="side">{src.label}</span> <code>{src.path}</code>, '
        f"{len(src.lines)} lines, git blob <code>{src.blob[:10]}</code></span>"
    )


def render_page(page: Page, pages: list[Page]) -> str:
    """One pair's whole HTML document."""
    code = (highlight(page.a.text, len(page.a.lines)), highlight(page.b.text, len(page.b.lines)))
    da, db = page.differing()
    name = f"{page.stem}.py"
    header = (
        f"<header>\n{_nav(pages, page.filename)}\n"
        f"<h1>{name}: {page.a.label} | {page.b.label}</h1>\n"
        f'<p class="files">{_side(page.a, "l")} &nbsp;|&nbsp; {_side(page.b, "r")}</p>\n'
        f"<p>Framework lines, code that difflib does not pair with an identical twin, are tinted "
        f"and marked <b>&lt;</b> / <b>&gt;</b>: {da} on the left, {db} on the right. Lines that "
        "differ only in comments or docstrings are prose: shaded grey, not counted. "
        f'<label for="only" class="toggle">framework lines only</label> '
        f"(or open <code>{page.filename}?framework</code>)</p>\n{_toc(page)}\n</header>"
    )
    footer = (
        f"<footer>Generated by <code>{PROG}</code> from the two files' text (git blobs above: "
        f"<code>git log --find-object=BLOB</code> names the commits holding that version). "
        "Each definition starts on the same row as its twin.</footer>"
    )
    body = f'<input type="checkbox" id="only">\n{header}\n<main>\n{table_html(page, code)}\n</main>'
    return _document(f"{name}: {page.a.label} | {page.b.label}", f"{body}\n{footer}\n{JS}")


def _summary(src: Source) -> str:
    """The first line of a file's docstring (what the index says the page is about)."""
    doc = ast.get_docstring(ast.parse(src.text)) or ""
    return html.escape(doc.split("\n")[0])


def render_index(pages: list[Page]) -> str:
    """The index: one row per pair, with its size and how many lines differ."""
    rows = []
    for p in pages:
        da, db = p.differing()
        defs = sum(isinstance(r, Heading) and r.block.kind in ("def", "class") for r in p.rows)
        rows.append(
            f'<tr><td><a href="{p.filename}">{p.stem}.py</a></td><td>{_summary(p.a)}</td>'
            f"<td>{defs}</td><td>{len(p.a.lines)} / {len(p.b.lines)}</td><td>{da} / {db}</td></tr>"
        )
    (left, a), (right, b) = SIDES
    body = (
        "<header>\n<h1>The twins side by side</h1>\n"
        f"<p>Each page sets a file of <code>{left}/</code> ({a}, on the left) beside its twin in "
        f"<code>{right}/</code> ({b}, on the right). Each top-level definition starts on the same "
        "row as its twin; within it, the lines difflib pairs share a row and are plain; lines of "
        "code that differ, the framework lines, are tinted and marked <b>&lt;</b> / <b>&gt;</b>; "
        "lines that differ only in comments or docstrings (prose) are shaded grey and not "
        "counted. The switch <i>framework lines only</i> hides the identical lines and the prose. "
        "Line numbers are the files' own.</p>"
        f"<p>Built from the source by <code>{PROG}</code> (see docs/side-by-side.md); a test "
        'fails when a page is stale.</p>\n</header>\n<main class="index">\n'
        '<table class="index"><thead><tr><th>file</th><th>what it is (from its docstring)</th>'
        f"<th>definitions</th><th>lines ({a} / {b})</th><th>framework lines (code that "
        "differs)</th></tr></thead>"
        "<tbody>\n" + "\n".join(rows) + "\n</tbody></table></main>"
    )
    return _document("The twins side by side", body)


# ------------------------------------------------------------------------ building


def stems(root: pathlib.Path) -> list[str]:
    """The mirrored files of the two twins, in reading order (ORDER first, then by name)."""
    found = [
        sorted(p.stem for p in (root / folder).glob("*.py") if p.stem not in SKIP)
        for folder, _ in SIDES
    ]
    both = set(found[0]) & set(found[1])
    return [s for s in ORDER if s in both] + sorted(both - set(ORDER))


def read_source(root: pathlib.Path, folder: str, stem: str, label: str) -> Source:
    """One twin file, read as bytes so that its lines and blob id are exactly the committed ones."""
    data = (root / folder / f"{stem}.py").read_bytes()
    text = data.decode("utf-8")
    path, lines = f"{folder}/{stem}.py", source_lines(text)
    return Source(path, label, text, lines, blob_id(data), code_lines(text, lines, path))


def load_page(root: pathlib.Path, stem: str) -> Page:
    """Read one pair and align it (raises MirrorError when it no longer lines up)."""
    a, b = (read_source(root, folder, stem, label) for folder, label in SIDES)
    return Page(stem, a, b, tuple(align(a, b)))


def build(root: pathlib.Path = ROOT) -> dict[str, str]:
    """Every page's filename and HTML text: index.html and one page per mirrored pair."""
    found = stems(root)
    if not found:
        raise MirrorError(f"no twin files to set side by side in {root}/{SIDES[0][0]}")
    pages = [load_page(root, stem) for stem in found]
    out = {p.filename: render_page(p, pages) for p in pages}
    out["index.html"] = render_index(pages)
    return out


def stale(pages: dict[str, str], out: pathlib.Path) -> list[str]:
    """The pages under `out` that differ from `pages` (or are missing, or no longer built)."""
    there = {p.name for p in out.glob("*.html")} if out.is_dir() else set()
    changed = [
        name
        for name, text in pages.items()
        if name not in there or (out / name).read_text(encoding="utf-8") != text
    ]
    return sorted(changed + sorted(there - set(pages)))


def main(argv: list[str] | None = None) -> None:
    p = ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--root", type=pathlib.Path, default=ROOT, help="the checkout (default: this one)"
    )
    p.add_argument("--out", type=pathlib.Path, default=None, help=f"default: ROOT/{OUT}")
    p.add_argument("--check", action="store_true", help="exit 1 naming stale pages; write nothing")
    args = p.parse_args(argv)
    out = args.out or args.root / OUT
    try:
        pages = build(args.root)
    except (MirrorError, OSError, UnicodeDecodeError) as e:
        fail(str(e), prog=PROG)
    changed = stale(pages, out)
    if args.check:
        for name in changed:
            print(f"{out / name} is stale: regenerate it with `{PROG}`", file=sys.stderr)
        raise SystemExit(1 if changed else 0)
    out.mkdir(parents=True, exist_ok=True)
    for name in changed:
        if name in pages:
            (out / name).write_text(pages[name], encoding="utf-8")
        else:
            (out / name).unlink()
    print(f"{out}: {len(pages)} pages, {len(changed)} rewritten")


if __name__ == "__main__":
    main()
