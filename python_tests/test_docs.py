"""The manual's examples run, and its links lead somewhere.

Every ```` ```python runnable ```` block of README.md and docs/*.md runs: the blocks of one page in
order, in one fresh namespace, inside a temporary directory (so a later block may use an earlier
one's names and files). Plain ```` ```python ```` blocks are examples that need what a test does
not have (real TinyStories files, a GPU, llama2.c, a long run) and are not run.

Every relative link of README.md, docs/*.md and bench/README.md must name an existing file, and
a `#fragment` must name a heading of that file."""

from __future__ import annotations

import linecache
import os
import re
import traceback
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINKED_PAGES = [*PAGES, ROOT / "bench" / "README.md"]

# A fenced block: the opening fence (``` or longer, or ~~~), its info string, the body, and a
# closing fence of the same character at least as long.
_FENCE = re.compile(r"^(?P<fence>`{3,}|~{3,})(?P<info>[^\n]*)\n(?P<body>.*?)^(?P=fence)[`~]*[ \t]*$",
                    re.MULTILINE | re.DOTALL)


def page_id(page: Path) -> str:
    return page.relative_to(ROOT).as_posix()


def code_blocks(text: str) -> list[tuple[str, str, int]]:
    """(info string, body, line of the opening fence) of each fenced block, in order."""
    return [(m["info"].strip(), m["body"], text.count("\n", 0, m.start()) + 1) for m in _FENCE.finditer(text)]


def runnable_blocks(page: Path) -> list[tuple[str, int]]:
    return [(body, line) for info, body, line in code_blocks(page.read_text(encoding="utf-8"))
            if info.split() == ["python", "runnable"]]


def prose(text: str) -> str:
    """The text outside fenced blocks and inline code spans, where links are links."""
    text = _FENCE.sub("", text)
    return re.sub(r"(`+)(?:(?!\1).)+?\1", "", text, flags=re.DOTALL)


def test_code_blocks_parse():
    """The fence pattern finds every block: no page has an odd number of fences left over."""
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        leftover = [line for line in _FENCE.sub("", text).splitlines() if line.lstrip().startswith(("```", "~~~"))]
        assert not leftover, f"{page_id(page)}: unmatched code fence(s): {leftover}"


@pytest.mark.parametrize("page", [p for p in PAGES if runnable_blocks(p)], ids=page_id)
def test_runnable_examples(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": f"docs_{page.stem}"}
    blocks = runnable_blocks(page)
    for number, (body, line) in enumerate(blocks, 1):
        filename = f"{page_id(page)}:block{number}"
        linecache.cache[filename] = (len(body), None, body.splitlines(True), filename)  # source lines in tracebacks
        failure = None
        try:
            with warnings.catch_warnings():
                # the manual shows the current module paths, not the deprecated aliases
                warnings.filterwarnings("error", message=r"tinygpt\.\S+ moved to", category=DeprecationWarning)
                exec(compile(body, filename, "exec"), namespace)
        except Exception:  # noqa: BLE001 - reported with the page, block and traceback
            failure = traceback.format_exc()
        finally:
            linecache.cache.pop(filename, None)
        if failure is not None:
            pytest.fail(f"{page_id(page)}, runnable block {number} of {len(blocks)} (the fence on line {line}) "
                        f"failed:\n{failure}", pytrace=False)


# ---- links ----------------------------------------------------------------------------------

_LINK = re.compile(r"(?<!!)\[(?P<label>[^\]]*)\]\((?P<target>[^)\s]+)(?:\s+\"[^\"]*\")?\)")
_IMAGE = re.compile(r"!\[[^\]]*\]\((?P<target>[^)\s]+)")
_REF = re.compile(r"^\s*\[[^\]]+\]:\s*(?P<target>\S+)", re.MULTILINE)


def links(page: Path) -> list[str]:
    text = prose(page.read_text(encoding="utf-8"))
    return [m["target"] for pattern in (_LINK, _IMAGE, _REF) for m in pattern.finditer(text)]


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, markup and punctuation dropped (hyphens and
    underscores kept), spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its label
    text = re.sub(r"[`*]", "", text).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for line in _FENCE.sub("", page.read_text(encoding="utf-8")).splitlines():
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        slug = github_slug(m[1])
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


@pytest.mark.parametrize("page", LINKED_PAGES, ids=page_id)
def test_relative_links_resolve(page):
    bad = []
    for target in links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE) or target.startswith("//"):
            continue  # https:, mailto: ...: not a file of this repository
        path, _, fragment = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            bad.append(f"{target}: no file {os.path.relpath(dest, ROOT)}")
        elif fragment and dest.suffix == ".md" and fragment not in anchors(dest):
            bad.append(f"{target}: no heading #{fragment} in {os.path.relpath(dest, ROOT)}")
    assert not bad, f"{page_id(page)} has broken links:\n" + "\n".join(bad)


def test_every_docs_page_is_in_the_index():
    index = ROOT / "docs" / "README.md"
    listed = {(index.parent / t.partition("#")[0]).resolve() for t in links(index) if t.partition("#")[0]}
    missing = [page_id(p) for p in (ROOT / "docs").glob("*.md") if p != index and p.resolve() not in listed]
    assert not missing, f"docs/README.md does not link to: {missing}"
