"""The side-by-side pages (docs/side-by-side/) are current and tell the truth about the twins.

Read back from the committed HTML: every line of both files once, in order, on its own side; each
public name of the twin API in one aligned section; the marked lines exactly difflib's; a broken
mirror refused with one line; and, where Chromium is installed, no horizontal scroll at 1366 px.
"""

from __future__ import annotations

import ast
import difflib
import functools
import json
import pathlib
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser

import pytest
from test_twins_api import public_api

from tools import side_by_side as sbs

ROOT = pathlib.Path(__file__).resolve().parents[1]
PAGES = ROOT / sbs.OUT
STEMS = sbs.stems(ROOT)
REGENERATE = f"regenerate with `{sbs.PROG}` (docs/side-by-side.md)"

pytest.importorskip("pygments", reason="the pages are highlighted with Pygments (the docs extra)")


class _Rows(HTMLParser):
    """The page's table rows: (class, id, [(cell class, cell text), ...])."""

    def __init__(self):
        super().__init__()
        self.rows: list[tuple[str, str, list[list[str]]]] = []
        self.cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "tr":
            self.rows.append((a.get("class") or "", a.get("id") or "", []))
        elif tag in ("td", "th") and self.rows:
            self.cell = [a.get("class") or "", ""]
            self.rows[-1][2].append(self.cell)

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell[1] += data


def page_rows(stem: str) -> list[tuple[str, str, list[list[str]]]]:
    parser = _Rows()
    parser.feed((PAGES / sbs.page_filename(stem)).read_text(encoding="utf-8"))
    # A row's kind is its first class: h (a heading; "h eq" when the twins' blocks are identical),
    # same, diff (framework lines) or prose (two lines), fold (a marker shown with framework lines
    # only).
    rows = [(row[0].split()[0] if row[0] else "", *row[1:]) for row in parser.rows]
    return [row for row in rows if row[0] in ("h", "same", "diff", "prose")]


def sides(row) -> tuple[tuple[int | None, str, str], ...]:
    """A line row's (line number or None, mark, code) on the left, then on the right."""
    cells = row[2]
    assert len(cells) == 6, row
    return tuple((int(n[1]) if n[1] else None, m[1], c[1]) for n, m, c in (cells[0:3], cells[3:6]))


def twin_lines(stem: str) -> tuple[list[str], list[str]]:
    return tuple(
        (ROOT / folder / f"{stem}.py").read_text(encoding="utf-8").splitlines()
        for folder, _ in sbs.SIDES
    )


@functools.cache
def sections(stem: str, kinds: bool = False) -> list[tuple[str, list[tuple]]]:
    """The page cut at its heading rows: (heading id, its line rows as `sides`, or with `kinds` as
    (same | diff | prose, `sides`))."""
    out = []
    for row in page_rows(stem):
        if row[0] == "h":
            out.append((row[1], []))
        else:
            out[-1][1].append((row[0], sides(row)) if kinds else sides(row))
    return out


def test_pages_are_current():
    pages = sbs.build(ROOT)
    committed = {p.name for p in PAGES.glob("*.html")}
    for name in sorted(set(pages) | committed):
        where = PAGES.relative_to(ROOT) / name
        assert name in committed, f"{where} is missing: {REGENERATE}"
        assert name in pages, f"{where} is no page of the twins any more: {REGENERATE}"
        assert (PAGES / name).read_text(encoding="utf-8") == pages[name], (
            f"{where} is stale: {REGENERATE}"
        )


def test_build_is_deterministic():
    first = sbs.build(ROOT)
    assert sbs.build(ROOT) == first
    assert {"index.html", "train.html", "model.html", "sweep.html"} <= set(first)


def test_header_names_each_file_by_its_git_blob():
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("no git checkout here to ask for the blob ids")
    page = (PAGES / "train.html").read_text(encoding="utf-8")
    for folder, _ in sbs.SIDES:
        path = f"{folder}/train.py"
        blob = subprocess.run(
            ["git", "hash-object", path], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        assert f"<code>{path}</code>, " in page and f"git blob <code>{blob[:10]}</code>" in page


class _Loads(HTMLParser):
    """What a page would fetch: <link> tags, src= attributes, CSS url()/@import, outside hrefs."""

    def __init__(self):
        super().__init__()
        self.found: list[str] = []
        self.in_style = False

    def handle_starttag(self, tag, attrs):
        self.in_style = tag == "style"
        for name, value in attrs:
            if tag == "link" or name == "src" or (name == "href" and "//" in (value or "")):
                self.found.append(f"<{tag} {name}={value}>")

    def handle_data(self, data):
        if self.in_style and ("url(" in data or "@import" in data):
            self.found.append("url()/@import in <style>")


def test_pages_are_self_contained_and_linked_from_the_index():
    index = (PAGES / "index.html").read_text(encoding="utf-8")
    for page in sorted(PAGES.glob("*.html")):
        parser = _Loads()
        parser.feed(page.read_text(encoding="utf-8"))
        assert parser.found == [], f"{page.name} loads from outside: {parser.found}"
        assert page.name == "index.html" or f'href="{page.name}"' in index, page.name


@pytest.mark.parametrize("stem", STEMS)
def test_every_line_appears_once_in_order(stem):
    lines = twin_lines(stem)
    for side in (0, 1):
        shown = [s[side] for _, rows in sections(stem) for s in rows]
        numbered = [(n, code) for n, _, code in shown if n is not None]
        assert [n for n, _ in numbered] == list(range(1, len(lines[side]) + 1)), stem
        assert [code for _, code in numbered] == lines[side], stem
        assert all(code == "" for n, _, code in shown if n is None)  # padding is empty


@pytest.mark.parametrize("stem", STEMS)
def test_marked_lines_are_the_ones_difflib_reports(stem):
    # Every line difflib reports is either marked (< / >: code that differs) or shaded as prose
    # (the same code, other comments or docstrings); no other line is.
    a, b = twin_lines(stem)
    for anchor, rows in sections(stem, kinds=True):
        left = [s[0][0] - 1 for _, s in rows if s[0][0] is not None]
        right = [s[1][0] - 1 for _, s in rows if s[1][0] is not None]
        matcher = difflib.SequenceMatcher(None, [a[i] for i in left], [b[j] for j in right], False)
        differ = set(), set()
        for tag, i1, i2, j1, j2 in matcher.get_opcodes():
            if tag != "equal":
                differ[0].update(left[i1:i2])
                differ[1].update(right[j1:j2])
        shown = [
            {s[k][0] - 1 for kind, s in rows if s[k][0] is not None and kind != "same"}
            for k in (0, 1)
        ]
        assert tuple(shown) == differ, f"{stem}.html#{anchor}"
        for kind, ((_, ma, ca), (_, mb, cb)) in rows:
            assert (kind == "diff") == bool(ma or mb), f"{stem}.html#{anchor}: {ca!r}"
            assert kind != "same" or ca == cb, f"{stem}.html#{anchor}: {ca!r} vs {cb!r}"


def _twins(root: pathlib.Path, torch_text: str, flax_text: str):
    for (folder, _), text in zip(sbs.SIDES, (torch_text, flax_text)):
        (root / folder).mkdir(parents=True, exist_ok=True)
        (root / folder / "step.py").write_text(text)
    return sbs.load_page(root, "step")


def test_prose_is_shaded_and_not_counted_as_framework_lines(tmp_path):
    torch_text = 'def step(x):\n    """Double x."""\n    y = x * 2  # why\n    return y\n'
    flax_text = (
        torch_text.replace("Double x.", "Twice x, as JAX does.")
        .replace("# why", "# because")
        .replace("    return", "    # a comment of the JAX twin alone\n    return")
    )
    page = _twins(tmp_path, torch_text, flax_text)
    kinds = [r.kind for r in page.rows if isinstance(r, sbs.Row)]
    assert kinds.count("prose") == 3 and "diff" not in kinds, kinds
    assert page.differing() == (0, 0)
    html_text = sbs.render_page(page, [page])
    assert html_text.count('<tr class="prose">') == 3 and '<tr class="diff">' not in html_text
    # A line of code that differs is a framework line, whatever its comment.
    page = _twins(tmp_path, torch_text, flax_text.replace("x * 2  # because", "jnp.dot(x, 2)"))
    assert page.differing() == (1, 1)


def _definition_lines(path: pathlib.Path) -> dict[str, int]:
    """Public name -> the 1-based line of its def/class/assignment statement."""
    found = {}
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        targets = getattr(node, "targets", None) or [getattr(node, "target", None)]
        names = [getattr(node, "name", None)] + [getattr(t, "id", None) for t in targets]
        found.update({name: node.lineno for name in names if name and name not in found})
    return found


@pytest.mark.parametrize("stem", STEMS)
def test_every_public_name_has_an_aligned_row_pair(stem):
    paths = [ROOT / folder / f"{stem}.py" for folder, _ in sbs.SIDES]
    alone = sbs.ONE_SIDED.get(f"{sbs.SIDES[0][0]}/{stem}.py", set())  # torch's only
    api = [e for e in public_api(paths[0]) if e[1] not in alone]
    assert api == public_api(paths[1]), "tests/test_twins_api.py reports this"
    where = [_definition_lines(p) for p in paths]
    for name in alone:  # a section of its own, on its side
        found = [a for a, rows in sections(stem) if any(s[0][0] == where[0][name] for s in rows)]
        assert found == [name], f"{stem}.html: {name} sits under {found}"
    for entry in api:
        name = entry[1]
        found = [
            anchor
            for anchor, rows in sections(stem)
            if any(s[0][0] == where[0][name] for s in rows)
            and any(s[1][0] == where[1][name] for s in rows)
        ]
        assert len(found) == 1, f"{stem}.html: {name} is not in one section on both sides"
        assert found[0] == name.split(",")[0], f"{stem}.html: {name} sits under #{found[0]}"


def _copy_twins(tmp_path: pathlib.Path, stem: str) -> list[pathlib.Path]:
    copies = []
    for folder, _ in sbs.SIDES:
        (tmp_path / folder).mkdir(parents=True)
        copies.append(shutil.copy(ROOT / folder / f"{stem}.py", tmp_path / folder))
    return [pathlib.Path(p) for p in copies]


def _generate(tmp_path: pathlib.Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *extra, "--root", str(tmp_path), "--out", str(tmp_path / "out")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_refuses_a_public_definition_in_one_twin_only(tmp_path):
    _, flax = _copy_twins(tmp_path, "train")
    flax.write_text(flax.read_text() + "\n\ndef extra_step(model):\n    return model\n")
    proc = _generate(tmp_path, "-m", "tools.side_by_side")
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.splitlines()) == 1, proc.stderr
    assert "no longer line up" in proc.stderr and "def extra_step" in proc.stderr
    assert "impls/flax_mlp/train.py only" in proc.stderr
    assert not (tmp_path / "out").exists()  # nothing written


def test_refuses_public_definitions_out_of_order(tmp_path):
    torch_copy, _ = _copy_twins(tmp_path, "runtime")
    lines = torch_copy.read_text().split("\n\n\n")  # top-level blocks, ruff-formatted
    lines[-1], lines[-2] = lines[-2], lines[-1]
    torch_copy.write_text("\n\n\n".join(lines))
    proc = _generate(tmp_path, "-m", "tools.side_by_side")
    assert proc.returncode == 2 and "no longer line up" in proc.stderr, proc.stderr


def test_a_private_helper_in_one_twin_faces_a_blank(tmp_path):
    torch_copy, _ = _copy_twins(tmp_path, "train")
    torch_copy.write_text(torch_copy.read_text() + "\n\ndef _helper():\n    return 1\n")
    proc = _generate(tmp_path, "-m", "tools.side_by_side")
    assert proc.returncode == 0, proc.stderr
    page = (tmp_path / "out" / "train.html").read_text()
    assert re.search(r'<tr class="h" id="_helper">.*no twin: PyTorch only</td></tr>', page)


def test_pygments_missing_is_one_line(tmp_path):
    _copy_twins(tmp_path, "model")
    block = "import sys; sys.modules['pygments'] = None; import tools.side_by_side as s; s.main()"
    proc = _generate(tmp_path, "-c", block)
    assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1, proc.stderr
    assert "needs Pygments: pip install" in proc.stderr


# --------------------------------------------------------------- in a real browser

PROBE = """<script>{
const probe = document.createElement("span");
probe.textContent = "x".repeat(100);
document.querySelector("td.code:empty").appendChild(probe);
const shown = (sel) => [...document.querySelectorAll(sel)].filter((e) => e.getClientRects().length);
const seen = {
  width: innerWidth,
  scroll: document.documentElement.scrollWidth,
  lines100: probe.getClientRects().length,
  same: shown("tr.same").length,
  diff: shown("tr.diff").length,
  prose: shown("tr.prose").length,
};
// Flip the switch with a heading just under the column titles: the heading must stay put.
const heading = document.querySelectorAll("tr.h:not(.eq)")[3];
const titles = document.querySelector("thead th").getBoundingClientRect().height;
scrollTo(0, heading.getBoundingClientRect().top + scrollY - titles - 1);
const before = heading.getBoundingClientRect().top;
document.querySelector("label.toggle").click();
seen.moved = heading.getBoundingClientRect().top - before;
document.querySelector("label.toggle").click();
document.body.dataset.probe = JSON.stringify(seen);
}</script>"""


def _probe(chromium: str, page: pathlib.Path, size: str, query: str = "") -> dict:
    proc = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", f"--window-size={size}"]
        + ["--dump-dom", page.as_uri() + query],
        capture_output=True,
        text=True,
        timeout=120,
    )
    found = re.search(r'data-probe="([^"]*)"', proc.stdout)
    assert found, "the probe did not run (a script error?)"
    return json.loads(found.group(1).replace("&quot;", '"'))


def test_train_page_in_chromium(tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("no chromium on PATH (apt-get install chromium); CI installs no browser")
    page = tmp_path / "train.html"
    page.write_text((PAGES / "train.html").read_text().replace("</body>", PROBE + "</body>"))
    rows = page_rows("train")
    same, diff, prose = (sum(r[0] == kind for r in rows) for kind in ("same", "diff", "prose"))
    assert diff and prose  # train.py's twins differ in code and in prose
    for size in ("1366,768", "1920,1080"):
        seen = _probe(chromium, page, size)
        assert seen["scroll"] <= seen["width"], f"horizontal scroll at {size}: {seen}"
        assert seen["lines100"] == 1, f"a 100-column line wraps at {size}"
        assert abs(seen["moved"]) < 2, f"the switch moved the row in view at {size}: {seen}"
        assert (seen["same"], seen["diff"], seen["prose"]) == (same, diff, prose), seen
    framework = _probe(chromium, page, "1366,768", "?framework")
    assert (framework["same"], framework["diff"], framework["prose"]) == (0, diff, 0), framework
