"""The report page of `tinygpt grade` (tinygpt/grade/report.py), on a synthetic grade with hostile
stories: as text (escaped, self-contained, the table's best values, plots only with several runs,
overlapping spans that keep every character once) and in a real headless browser (Debian's
chromium driven by Playwright, as test_serve_playground does): it renders with its highlights, asks
for nothing on the network, logs no error, runs no injected script, filters, and fits a phone.
Screenshots are left in $TINYGPT_TEST_ARTIFACTS (default python_tests/artifacts/)."""

from __future__ import annotations

import copy
import html
import json
import os
import re
import struct
import sys
import tempfile
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tinygpt.grade.report import check_colours, render_report, shown, story_html, write_report

CHROMIUM = "/usr/bin/chromium"  # the same browser and switches as test_serve_playground
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
DESKTOP = {"width": 1100, "height": 800}
PHONE = {"width": 390, "height": 844}
TIMEOUT_MS = 15_000
DOCS_PICTURE = Path(__file__).resolve().parent.parent / "docs" / "images" / "grade-report.png"

HOSTILE = "</script><img src=x onerror=alert(1)>"
BEGINNING = "Once upon a time, there was a girl named Lily. She liked to"
STORY = (BEGINNING + " play with her ball. One day Kiki came to the park " + HOSTILE + " and said <b>hello</b>. "
         "Lily and Kiki played all day and they were happy. Then they went")
KIKI = STORY.index("Kiki")
HOSTILE_NOTE = "'Kiki\" onmouseover=\"alert(2)' is not in the beginning"
CHECKS = {"unknown_words": "share of words the dictionary does not know",
          "unfinished": "1 when the story stops mid-sentence",
          "repeated_ngrams": "share of word 4-grams that repeat an earlier one",
          "new_names": "share of name mentions that the beginning did not set up",
          "novelty_span": "longest span copied from a training story, in tokens",
          "novelty_overlap": "share of the story's n-grams found in training stories"}


# ---- a synthetic grade ------------------------------------------------------------------------------

def completion(b: int, sample: int, story: str, cut: int, checks: dict, spans: list) -> dict:
    return {"beginning_index": b, "sample": sample, "seed": b * 10 + sample, "story": story, "cut": cut,
            "checks": checks, "novelty": {"span": 12, "overlap": 0.3}, "judge": None, "spans": spans}


def plain(b: int, sample: int) -> dict:
    story = f"Tom had a red car number {b}. He drove it to the shop. The end."
    return completion(b, sample, story, len("Tom had a red car"), {k: 0.0 for k in list(CHECKS)[:4]}, [])


def hostile() -> dict:
    """The story with markup in it and three spans: a name inside a copied stretch, and the end."""
    spans = [{"start": KIKI, "end": KIKI + 4, "check": "new_names", "note": HOSTILE_NOTE},
             {"start": KIKI - 10, "end": KIKI + 30, "check": "novelty", "note": "copied: 14 tokens shared"},
             {"start": len(STORY) - 18, "end": len(STORY), "check": "unfinished", "note": "stops mid-sentence"}]
    checks = {"unknown_words": 0.0, "unfinished": 1.0, "repeated_ngrams": 0.0, "new_names": 0.5}
    return completion(0, 0, STORY, len(BEGINNING), checks, spans)


def run(name: str, params, tokens, unknown: float, kind: str = "run", n: int = 3) -> dict:
    scores = {k: {"mean": unknown * (i + 1), "std": 0.02, "n": 10} for i, k in enumerate(CHECKS)}
    comps = [hostile()] + [plain(b, s) for b in range(1, 3) for s in range(2)][: n - 1]
    return {"name": name, "path": f"/abs/{name}" if kind == "run" else None, "kind": kind, "params": params,
            "train_tokens": tokens, "train_seconds": 240.0 if params else None,
            "bpb": 1.2 + 5 * unknown if params else None,
            "scores": scores, "diversity": {"distinct_1": 0.07 + unknown, "distinct_2": 0.4, "distinct_3": 0.8,
                                            "self_bleu": 40.0 + unknown * 100, "child_words": 0.87},
            "judge": None, "completions": comps}


def make_grade(runs: list[dict] | None = None) -> dict:
    if runs is None:
        runs = [run("run-small", 1_200_000, 9_000_000, 0.05), run("run-large", 19_000_000, 60_000_000, 0.01, n=5),
                run("TinyStories", None, None, 0.005, kind="stories")]
    return {"format": "tinygpt-grade", "version": 1, "created": "2026-12-04T19:40:00Z",
            "settings": {"samples": 2, "temperature": 1.0, "top_p": 1.0, "max_new_tokens": 200, "seed": 0,
                         "beginnings": "built-in (56)", "judge": None},
            "checks": dict(CHECKS), "scores_higher_better": ["child_words", "distinct_1", "distinct_2", "distinct_3"],
            "runs": runs}


class Tables(HTMLParser):
    """The scores table as rows: (row label, [(cell text, cell classes)])."""

    def __init__(self):
        super().__init__()
        self.rows, self.cell, self.inside = [], None, False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table" and "scores" in (a.get("class") or ""):
            self.inside = True
        elif self.inside and tag == "tr":
            self.rows.append([])
        elif self.inside and tag in ("td", "th"):
            self.cell = ["", a.get("class") or ""]

    def handle_endtag(self, tag):
        if tag == "table":
            self.inside = False
        elif self.inside and tag in ("td", "th") and self.cell:
            self.rows[-1].append((self.cell[0].strip(), self.cell[1]))
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell[0] += data


class References(HTMLParser):
    """Every attribute that could fetch or link something: (tag, attribute, value)."""

    def __init__(self):
        super().__init__()
        self.found = []

    def handle_starttag(self, tag, attrs):
        self.found += [(tag, k, v or "") for k, v in attrs
                       if k in ("src", "href", "xlink:href", "action", "poster", "data", "srcset", "background")]


def table_rows(page: str) -> dict[str, list[tuple[str, str]]]:
    parser = Tables()
    parser.feed(page)
    return {r[0][0].rstrip(" ↑↓"): r[1:] for r in parser.rows if r}


def story_texts(page: str) -> list[str]:
    """Each story's text as the page shows it: the tags of its pieces taken away."""
    return [html.unescape(re.sub(r"<[^>]*>", "", t)) for t in re.findall(r'<p class="text">(.*?)</p>', page, re.S)]


# ---- the page as text ---------------------------------------------------------------------------------

def test_the_page_is_self_contained():
    page = render_report(make_grade())
    assert page.startswith("<!doctype html>")
    assert "http://" not in page and "https://" not in page
    refs = References()
    refs.feed(page)
    assert refs.found and all(v.startswith("#") for _, _, v in refs.found), refs.found  # links within the page only
    assert "<link" not in page and "@import" not in page and "url(" not in page
    assert page.count("<script") == 1 and page.count("<style") == 1
    assert "default-src 'none'" in page  # the page may not fetch anything even if something slipped through


def test_stories_and_notes_are_escaped():
    page = render_report(make_grade())
    assert HOSTILE not in page and "<img" not in page and "<b>hello" not in page
    assert "&lt;/scr" in page and "&lt;b&gt;hello&lt;/b&gt;" in page  # a span boundary splits the first
    assert HOSTILE in story_texts(page)[0]
    assert 'onmouseover="alert(2)' not in page and html.escape(HOSTILE_NOTE) in page
    grade = make_grade()
    grade["runs"][0]["name"] = "<i>run</i>"
    grade["settings"]["beginnings"] = "<script>x</script>"
    page = render_report(grade)
    assert "<i>run" not in page and "&lt;i&gt;run&lt;/i&gt;" in page and "<script>x" not in page


def test_the_table_holds_every_figure_and_marks_the_best():
    grade = make_grade()
    rows = table_rows(render_report(grade))
    for label in ("parameters", "training tokens", "training time", "bpb", *CHECKS, "distinct_1", "self_bleu",
                  "child_words"):
        assert label in rows, (label, sorted(rows))
        assert len(rows[label]) == 3
    assert [c for c, _ in rows["parameters"]] == ["1.2M", "19M", "—"]
    assert rows["training time"][0][0] == "4.0 min"
    assert rows["unknown_words"][0][0] == "0.050 ± 0.020"
    best = {label: [i for i, (_, cls) in enumerate(cells) if "best" in cls] for label, cells in rows.items()}
    assert best["unknown_words"] == [2]  # lower is better: the reference stories
    assert best["bpb"] == [1]  # the reference has none
    assert best["distinct_1"] == [0]  # higher is better
    assert best["self_bleu"] == [2]
    assert best["distinct_2"] == [] and best["parameters"] == []  # a tie marks nothing; sizes are not better
    page = render_report(grade)
    for description in CHECKS.values():
        assert html.escape(description) in page  # the legend


def test_plots_only_with_several_runs():
    grade = make_grade()
    page = render_report(grade)
    assert page.count('<svg class="plot"') >= 4
    assert "against parameters" in page and "against training tokens" in page
    assert 'class="ref"' in page  # the reference stories as a line
    assert "run-large" in re.search(r'<svg class="plot".*?</svg>', page, re.S).group(0)

    one = render_report(make_grade(grade["runs"][:1]))
    assert "<svg" not in one and "Only one run was graded" in one

    same = copy.deepcopy(grade)
    same["runs"][1]["params"] = same["runs"][0]["params"]  # one size, different training lengths
    page = render_report(same)
    assert "against training tokens" in page and "against parameters" not in page


def test_overlapping_spans_show_every_character_once():
    grade = make_grade()
    page = render_report(grade)
    texts = story_texts(page)
    want = [c["story"] for r in grade["runs"] for c in shown(r["completions"], None)]
    assert texts == want
    piece = story_html(STORY, len(BEGINNING), hostile()["spans"], check_colours(make_grade()))
    kiki = re.search(r'<mark class="([^"]*)" style="([^"]*)" title="([^"]*)">Kiki</mark>', piece)
    assert kiki, piece
    assert set(kiki.group(1).split()) == {"flag", "f-new_names", "f-novelty", "multi"}
    assert "new_names: " in html.unescape(kiki.group(3)) and "novelty: copied" in html.unescape(kiki.group(3))
    colours = check_colours(make_grade())
    assert colours["new_names"] in kiki.group(2) and colours["novelty"] in kiki.group(2)  # both, in bands
    assert '<span class="given">' + BEGINNING + "</span>" in piece
    # spans out of range, reversed, empty or malformed lose their highlight, never the text
    odd = [{"start": -5, "end": 3, "check": "a"}, {"start": 50, "end": 10**6, "check": "b"},
           {"start": 9, "end": 4, "check": "c"}, {"start": 7, "end": 7, "check": "d"}, {"end": 4},
           {"start": "x", "end": 2}]
    for cut in (None, -3, 0, 20, 10**6):
        assert story_texts(f'<p class="text">{story_html(STORY, cut, odd)}</p>') == [STORY]


def test_stories_per_run_are_limited_fairly():
    comps = [plain(b, s) for b in range(4) for s in range(3)]
    picked = shown(comps, 5)
    assert [(c["beginning_index"], c["sample"]) for c in picked] == [(0, 0), (0, 1), (1, 0), (2, 0), (3, 0)]
    assert len(shown(comps, None)) == 12
    grade = make_grade()
    page = render_report(grade, max_completions=2)
    assert "2 of 5 stories" in page and "at most 2 stories" in page


def test_a_judge_shows_its_scores_and_failures():
    grade = make_grade()
    grade["settings"]["judge"] = {"url": "http://localhost:8000/v1", "model": "judge-model"}
    grade["scores_higher_better"].append("judge_grammar")
    for r in grade["runs"]:
        r["scores"]["judge_grammar"] = {"mean": 7.5, "std": 1.0, "n": 9}
        r["judge"] = {"age_groups": {"A": 3, "B": 10}, "failures": 1}
        r["completions"][0]["judge"] = {"grammar": 8, "creativity": 6, "consistency": 7, "plot": 6, "age_group": "C"}
        r["completions"][1]["judge"] = {"error": "<no answer>"}
    page = render_report(grade)
    rows = table_rows(page)
    assert "judge_grammar" in rows and rows["age groups"][0][0] == "A\xa03 B\xa010"
    assert "judge-model at http://localhost:8000/v1" in page
    assert "judge failed: &lt;no answer&gt;" in page and "age group C" in page


def test_write_report_is_atomic_and_a_big_grade_stays_small(tmp_path):
    path = tmp_path / "grade.html"
    assert write_report(make_grade(), path) == path
    first = path.read_text(encoding="utf-8")
    assert first == render_report(make_grade())
    assert write_report(make_grade(), str(path)) == path
    assert [p.name for p in tmp_path.iterdir()] == ["grade.html"]  # no temporary file left beside it

    story = STORY + " They played again." * 40  # ~900 characters, as a 200-token story
    big = make_grade([run(f"run-{i}", 10**6 * (i + 1), 10**7, 0.01 * i) for i in range(10)])
    for r in big["runs"]:
        r["completions"] = [dict(hostile(), story=story, beginning_index=b, sample=s) for b in range(56)
                            for s in range(10)]
    start = time.perf_counter()
    page = render_report(big)
    assert time.perf_counter() - start < 5
    assert len(page.encode()) < 3_000_000, len(page.encode())
    assert page.count('<article class="story"') == 10 * 100


# ---- in a browser -------------------------------------------------------------------------------------

def _skip_reason() -> str | None:
    if not os.access(CHROMIUM, os.X_OK):
        return f"Debian's chromium not installed at {CHROMIUM} (.ci/run installs it with apt)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return ("the playwright Python package is not installed "
                "(pip install playwright; its own browsers are not needed)")
    return None


@pytest.fixture(scope="module")
def browser():
    if _skip_reason():
        pytest.skip(_skip_reason())
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    return write_report(make_grade(), tmp_path_factory.mktemp("report") / "grade.html")


@pytest.fixture(scope="module")
def artifacts() -> Path:
    d = Path(os.environ.get("TINYGPT_TEST_ARTIFACTS") or Path(__file__).parent / "artifacts")
    d.mkdir(parents=True, exist_ok=True)
    return d


class Watch:
    """What a page did: its requests, the failed ones, console errors, uncaught exceptions and
    dialogs (an alert() an injected script would open; dismissed)."""

    def __init__(self, page):
        self.requests, self.failed, self.errors, self.dialogs = [], [], [], []
        page.on("request", lambda r: self.requests.append(r.url))
        page.on("requestfailed", lambda r: self.failed.append(f"{r.method} {r.url}: {r.failure}"))
        page.on("console", lambda m: m.type == "error" and self.errors.append(f"console: {m.text}"))
        page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))

    def clean(self) -> None:
        assert self.failed == [] and self.errors == [] and self.dialogs == [], (self.failed, self.errors, self.dialogs)


def open_report(browser, path: Path, viewport=DESKTOP):
    ctx = browser.new_context(viewport=viewport)
    ctx.set_default_timeout(TIMEOUT_MS)
    page = ctx.new_page()
    watch = Watch(page)
    page.goto(path.resolve().as_uri())
    page.wait_for_load_state("load")
    return page, watch


def no_horizontal_scroll(page) -> None:
    scroll, inner = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert scroll <= inner, f"the page scrolls sideways: {scroll} px wide in a {inner} px window"


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", head[16:24])


def test_renders_cleanly_with_its_highlights(browser, report):
    page, watch = open_report(browser, report)
    try:
        assert page.title() == "tinygpt grade: run-small, run-large, TinyStories"
        assert page.locator("table.scores tbody tr").count() >= 4 + len(CHECKS) + 5
        assert page.locator("td.best").count() >= 5
        assert page.locator("svg.plot").count() >= 4
        kiki = page.locator("details[open] mark.f-new_names").first
        assert kiki.is_visible() and kiki.text_content() == "Kiki"
        assert set(kiki.get_attribute("class").split()) >= {"flag", "f-novelty", "multi"}
        assert "gradient" in kiki.evaluate("e => getComputedStyle(e).backgroundImage")
        colours = {page.locator(f"details[open] mark.{c}").first.evaluate("e => getComputedStyle(e).backgroundColor")
                   for c in ("f-unfinished", "f-novelty")}
        assert len(colours) == 2 and "rgba(0, 0, 0, 0)" not in colours, colours
        assert page.locator("details[open] .given").first.text_content() == BEGINNING
        # the hostile story is shown as text; none of its markup became elements or ran
        assert HOSTILE in page.locator("details[open] article.story").first.text_content()
        assert page.locator("img").count() == 0 and page.locator("article b").count() == 0
        assert page.evaluate("document.scripts.length") == 1
        assert watch.requests == [report.resolve().as_uri()], watch.requests
        watch.clean()
    finally:
        page.context.close()


def test_the_filter_shows_only_the_stories_a_check_flags(browser, report):
    page, watch = open_report(browser, report)
    try:
        assert page.is_visible("#flag-filter")
        visible = "() => document.querySelectorAll('article.story:not([hidden])').length"
        total = page.evaluate(visible)
        assert total == 3 + 5 + 3
        page.select_option("#flag-filter", "f-new_names")
        assert page.evaluate(visible) == 3  # the hostile story of each run
        assert page.text_content("#filter-count") == "3 of 11 stories"
        assert page.locator("details.run .shown").first.text_content() == "· 1 shown"
        page.select_option("#flag-filter", "*")
        assert page.evaluate(visible) == 3
        page.select_option("#flag-filter", "")
        assert page.evaluate(visible) == total
        assert page.locator("#flag-filter option").count() == 2 + 3  # all, any, new_names/unfinished/novelty
        watch.clean()
    finally:
        page.context.close()


def test_fits_a_phone(browser, report):
    page, watch = open_report(browser, report, PHONE)
    try:
        no_horizontal_scroll(page)
        page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
        no_horizontal_scroll(page)
        box = page.locator(".scroll").bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
        for svg in page.locator("svg.plot").all():
            b = svg.bounding_box()
            assert b["x"] >= 0 and b["x"] + b["width"] <= PHONE["width"], b
        watch.clean()
    finally:
        page.context.close()


def test_screenshots(browser, report, artifacts):
    for name, viewport, full_page in (("grade-report.png", DESKTOP, True), ("grade-report-phone.png", PHONE, True)):
        path = artifacts / name
        path.unlink(missing_ok=True)
        page, watch = open_report(browser, report, viewport)
        try:
            page.screenshot(path=str(path), full_page=full_page, animations="disabled")
            watch.clean()
        finally:
            page.context.close()
        width, height = png_size(path)
        assert width == viewport["width"] and height >= viewport["height"], (path, width, height)
        print(f"screenshot: {path}")


# ---- the documentation's picture ----------------------------------------------------------------------

def save_docs_picture(path: str | os.PathLike, out: str | os.PathLike = DOCS_PICTURE) -> Path:
    """Saves a desktop screenshot of a real report to docs/images/grade-report.png: `path` is a
    grade.html, or a grade.json to render first. Run by hand (`python python_tests/test_grade_report.py
    runs/grade.json`), never by the tests: the docs show real stories, not this file's."""
    from playwright.sync_api import sync_playwright

    path, out = Path(path), Path(out)
    with tempfile.TemporaryDirectory() as tmp:
        if path.suffix == ".json":
            path = write_report(json.loads(path.read_text(encoding="utf-8")), Path(tmp) / "grade.html")
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page, watch = open_report(b, path, {"width": 1100, "height": 1400})
                page.screenshot(path=str(out), animations="disabled")
                watch.clean()
            finally:
                b.close()
    return out


if __name__ == "__main__":
    print(save_docs_picture(*sys.argv[1:]))
