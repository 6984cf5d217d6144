"""The docs hold together: every relative link resolves, and nothing cites what a clone lacks.

A reader follows links from the README into docs/ and back. A link to a moved page or to a renamed
heading is a dead end, so every relative link in every Markdown file of the repository must
resolve: to a file or folder of the repository, and its #anchor (when it points into a Markdown
file) to one of that file's headings, slugged as GitHub does.

A user's clone holds the repository and nothing beside it. So no Markdown, Python, shell or TOML
file may cite a path outside it: neither a relative path that climbs out (a parent-directory step
at the start of a path) nor the developers' notes folder, which never ships. One exception,
`ALLOWED_OUTSIDE`: this repository's CI keeps the real datasets beside the checkout.

Every failure names the file, the line and the link or path.
"""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import unicodedata
import urllib.parse

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

# Files whose text may cite a path: Markdown, Python, shell, TOML, and extensionless scripts.
CITING_SUFFIXES = {".md", ".py", ".sh", ".toml"}
# What the walk leaves out when there is no git to list the repository's files (an unpacked
# archive): .gitignore's run outputs, build folders and datasets at the top, caches anywhere.
SKIP_TOP = {"runs", "build", "dist", "data"}
SKIP_ANYWHERE = {"__pycache__", "node_modules"}

# .ci/run is this repository's CI script: its runner keeps the real MNIST and Fashion-MNIST beside
# the checkout, in `DATASETS_BESIDE`, and the script and the test fixtures name that place (the
# product itself never looks there); tests/test_data.py checks how the fixtures name it. Exactly
# these files, exactly that folder.
UP = "." + "./"  # spelled so that this file cites no path itself
DATASETS_BESIDE = UP + "shared/datasets"
ALLOWED_OUTSIDE = {
    ".ci/run": DATASETS_BESIDE,
    "tests/conftest.py": DATASETS_BESIDE,
    "tests/test_data.py": DATASETS_BESIDE,
}

NOTES = re.compile(r"shared[/\\]" + "notes")
# A path that starts by climbing out of the folder it is read from: one or more `UP` steps first.
CLIMBING = re.compile(r"(?<![\w./\\-])(?:\.\.[/\\])+[^\s'\"`)\]>,;]*")
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*(<[^>]*>|[^)\s]+)(?:\s+[\"'(][^)]*)?\)")
REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)")
HTML_LINK = re.compile(r"<(?:a|img)\b[^>]*?\b(?:href|src)\s*=\s*[\"']([^\"']+)[\"']", re.I)
HTML_ANCHOR = re.compile(r"\b(?:id|name)\s*=\s*[\"']([^\"']+)[\"']", re.I)
CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+\1")
FENCE = re.compile(r"^\s{0,3}(`{3,}|~{3,})")
ATX = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def repo_files(root: pathlib.Path) -> list[pathlib.Path]:
    """The repository's files: tracked and untracked-but-not-ignored (git), else a walk."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=root,
            capture_output=True,
            check=True,
        ).stdout.decode()
    except (OSError, subprocess.CalledProcessError):
        out = None
    if out:
        return sorted(p for p in {root / name for name in out.split("\0") if name} if p.is_file())
    found = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = [
            d
            for d in dirs
            if d not in SKIP_ANYWHERE
            and not (d in SKIP_TOP and pathlib.Path(folder) == root)
            and not d.endswith(".egg-info")
            and (not d.startswith(".") or d == ".ci")
        ]
        found += [pathlib.Path(folder, name) for name in names if name != ".git"]
    return sorted(found)


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation gone, spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link counts by its text
    text = re.sub(r"<[^>]+>", "", text).strip().lower()
    kept = (c for c in text if c.isalnum() or c in "-_ " or unicodedata.category(c)[0] == "M")
    return "".join(kept).replace(" ", "-")


def markdown_lines(text: str):
    """(line number, line, inside a fenced code block) for every line of a Markdown text."""
    fence = None
    for number, line in enumerate(text.splitlines(), 1):
        match = FENCE.match(line)
        if match and (fence is None or match.group(1)[0] == fence[0]):
            opening = fence is None
            if opening or len(match.group(1)) >= len(fence):
                fence = match.group(1) if opening else None
                yield number, line, True
                continue
        yield number, line, fence is not None


def anchors(path: pathlib.Path) -> set[str]:
    """Every #anchor a Markdown file offers: its headings' slugs (repeats get -1, -2, ...) and
    explicit HTML ids; for an HTML file, its ids."""
    text = path.read_text(encoding="utf-8")
    if path.suffix != ".md":
        return set(HTML_ANCHOR.findall(text))
    seen: dict[str, int] = {}
    found = set()
    previous = ""
    for _, line, in_code in markdown_lines(text):
        if in_code:
            previous = ""
            continue
        found.update(HTML_ANCHOR.findall(line))
        atx = ATX.match(line)
        setext = re.match(r"^\s{0,3}(=+|-+)\s*$", line) and previous.strip()
        heading = atx.group(2) if atx else previous if setext else None
        if heading is not None:
            slug = github_slug(heading)
            count = seen.get(slug, 0)
            seen[slug] = count + 1
            found.add(slug if count == 0 else f"{slug}-{count}")
        previous = "" if (atx or setext) else line
    return found


def link_targets(line: str) -> list[str]:
    """The targets of the links and images on one Markdown line (code spans left out)."""
    line = CODE_SPAN.sub("", line)
    targets = LINK.findall(line) + REFERENCE.findall(line) + HTML_LINK.findall(line)
    return [t[1:-1] if t.startswith("<") else t for t in targets]


def check_link(root: pathlib.Path, source: pathlib.Path, target: str, cache: dict) -> str | None:
    """Why `target`, linked from `source`, does not resolve; None when it does."""
    if SCHEME.match(target) or target.startswith("//"):
        return None  # a web address, not this checker's business
    path_part, _, anchor = target.partition("#")
    path_part = urllib.parse.unquote(path_part)
    if path_part.startswith("/"):
        return "an absolute link: write it relative to the file"
    dest = (source.parent / path_part).resolve() if path_part else source
    if dest != root and root not in dest.parents:
        return "climbs out of the repository"
    if not dest.exists():
        return f"no such file or folder: {dest.relative_to(root).as_posix()}"
    if anchor and dest.is_file() and dest.suffix in (".md", ".html"):
        if dest not in cache:
            cache[dest] = anchors(dest)
        if urllib.parse.unquote(anchor) not in cache[dest]:
            return f"no heading with the anchor #{anchor} in {dest.relative_to(root).as_posix()}"
    return None


def broken_links(root: pathlib.Path) -> list[str]:
    """'file:line: link: why' for every relative link of every Markdown file that does not
    resolve."""
    failures, cache = [], {}
    for path in repo_files(root):
        if path.suffix != ".md":
            continue
        rel = path.relative_to(root).as_posix()
        for number, line, in_code in markdown_lines(path.read_text(encoding="utf-8")):
            for target in [] if in_code else link_targets(line):
                why = check_link(root, path, target, cache)
                if why:
                    failures.append(f"{rel}:{number}: link ({target}): {why}")
    return failures


def cites(path: pathlib.Path) -> bool:
    if path.suffix in CITING_SUFFIXES:
        return True
    if path.suffix or not path.is_file():
        return False
    with path.open("rb") as f:
        return f.read(2) == b"#!"  # an extensionless script, such as .ci/run


def outside_citations(root: pathlib.Path) -> list[str]:
    """'file:line: path: why' for every citation of a path a clone does not have."""
    failures = []
    for path in filter(cites, repo_files(root)):
        rel = path.relative_to(root).as_posix()
        allowed = ALLOWED_OUTSIDE.get(rel)
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if path.suffix == ".md":
                # A link's target is resolved (and held inside the repository) by broken_links.
                line = LINK.sub("", line)
            for match in NOTES.finditer(line):
                failures.append(f"{rel}:{number}: {match.group(0)}: the notes are not shipped")
            for match in CLIMBING.finditer(line):
                cited = match.group(0)
                if allowed and re.match(re.escape(allowed) + r"(?![\w-])", cited):
                    continue
                failures.append(f"{rel}:{number}: {cited}: a path outside the repository")
    return failures


def test_every_relative_link_resolves():
    failures = broken_links(ROOT)
    assert not failures, f"{len(failures)} broken links:\n" + "\n".join(failures)


def test_no_file_cites_a_path_outside_the_repository():
    failures = outside_citations(ROOT)
    assert not failures, f"{len(failures)} citations:\n" + "\n".join(failures)


@pytest.mark.parametrize(
    "heading, slug",
    [
        ("Results in brief", "results-in-brief"),
        ("`compare.py`: the entry point", "comparepy-the-entry-point"),
        ("Timing, and the GEMM floor (CPU)", "timing-and-the-gemm-floor-cpu"),
        ("What `--engine sweep` does", "what---engine-sweep-does"),
        (
            "Baseline on the H100 (seed network, 5 epochs)",
            "baseline-on-the-h100-seed-network-5-epochs",
        ),
        ("torch × JAX: µs/step", "torch--jax-µsstep"),
        ("A [linked](x.md) heading", "a-linked-heading"),
    ],
)
def test_github_slug(heading, slug):
    assert github_slug(heading) == slug


def test_the_checks_catch_what_they_should(tmp_path):
    # A miniature repository with one instance of each kind of fault, and the allowed exception.
    (tmp_path / "docs").mkdir()
    (tmp_path / ".ci").mkdir()
    (tmp_path / "tests").mkdir()
    (tmp_path / "README.md").write_text(
        "# Top\n\n## Quick start\n\n## Quick start\n\n"
        "[ok](docs/a.md#part-two) [ok](#quick-start-1) [ok](docs/) ![ok](docs/a.md)\n"
        "[gone](docs/missing.md)\n"
        f"[bad anchor](docs/a.md#part-three) [web](https://example.org/{UP}x)\n"
        "```\n[inside a fence](nowhere.md)\n```\n"
        f"`[in a code span](nowhere.md)` [out]({UP}elsewhere.md)\n",
        encoding="utf-8",
    )
    (tmp_path / "docs" / "a.md").write_text(
        f"Part two\n--------\n\nsee {UP}shared/datasets/mnist and [up]({UP}README.md#top)\n",
        encoding="utf-8",
    )
    (tmp_path / "tool.py").write_text(
        '"""Measured in shared/' + f'notes/x.md."""\nDATA = "{UP}data"\nOK = "a/{UP}b"\n',
        encoding="utf-8",
    )
    (tmp_path / ".ci" / "run").write_text(f"#!/bin/sh\nls {UP}shared/datasets/mnist\n")
    (tmp_path / "tests" / "conftest.py").write_text(f'D = "{UP}shared/datasets-other"\n')

    assert broken_links(tmp_path) == [
        "README.md:8: link (docs/missing.md): no such file or folder: docs/missing.md",
        "README.md:9: link (docs/a.md#part-three): no heading with the anchor #part-three in "
        "docs/a.md",
        f"README.md:13: link ({UP}elsewhere.md): climbs out of the repository",
    ]
    assert outside_citations(tmp_path) == [
        f"docs/a.md:4: {UP}shared/datasets/mnist: a path outside the repository",
        f"tests/conftest.py:1: {UP}shared/datasets-other: a path outside the repository",
        "tool.py:1: shared/" + "notes: the notes are not shipped",
        f"tool.py:2: {UP}data: a path outside the repository",
    ]
