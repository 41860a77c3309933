"""The story playground page that `tinygpt serve` shows at `/`, in a real headless browser
(Debian's chromium driven by Playwright) against a real server process on a tiny trained run:
it loads cleanly from the server alone, streams a story token by token that equals the API's own
answer for the same seed, stops when asked, asks for an API key on a 401, and fits a phone.
Screenshots are left in $TINYGPT_TEST_ARTIFACTS (default python_tests/artifacts/)."""

from __future__ import annotations

import os
import re
import struct
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _skip_reason() -> str | None:
    if not os.access(CHROMIUM, os.X_OK):
        return f"Debian's chromium not installed at {CHROMIUM} (.ci/run installs it with apt)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright Python package is not installed (pip install playwright; its own browsers are not needed)"
    return None


if _skip_reason():  # before the run is trained: nothing here can run without the browser
    pytest.skip(_skip_reason(), allow_module_level=True)

from playwright.sync_api import sync_playwright  # noqa: E402

from serve_helpers import served  # noqa: E402

PROMPT = "Once upon a time"
TEMPERATURE, TOP_P = 0.8, 0.95  # the page's defaults
DESKTOP = {"width": 1100, "height": 800}
PHONE = {"width": 375, "height": 740}
TIMEOUT_MS = 15_000
DONE = re.compile(r"^done: (\d+) tokens in [\d.]+ s, [\d.]+ tokens/s \(finish: (stop|length)\)$")
WRITING = re.compile(r"^writing… \d+ tokens(, [\d.]+ tokens/s)?$")


# ---- fixtures -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def url(serve_run):
    with served(serve_run) as u:
        yield u


@pytest.fixture(scope="module")
def card(url) -> dict:
    """The served model's entry in /v1/models (its name and context)."""
    return httpx.get(url + "/v1/models", timeout=10).json()["data"][0]


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def new_page(browser):
    """Opens pages, each in a fresh context (its own localStorage); closes them after the test."""
    contexts = []

    def open_page(viewport=DESKTOP):
        ctx = browser.new_context(viewport=viewport)
        ctx.set_default_timeout(TIMEOUT_MS)
        contexts.append(ctx)
        page = ctx.new_page()
        return page, Watch(page)

    yield open_page
    for ctx in contexts:
        ctx.close()


@pytest.fixture(scope="module")
def artifacts() -> Path:
    d = Path(os.environ.get("TINYGPT_TEST_ARTIFACTS") or Path(__file__).parent / "artifacts")
    d.mkdir(parents=True, exist_ok=True)
    return d


# ---- helpers ------------------------------------------------------------------------------------

class Watch:
    """What a page did on the network and its console: every request, the failed ones, answers
    of 400 and over, console errors and uncaught exceptions."""

    def __init__(self, page):
        self.requests, self.failed, self.bad, self.errors = [], [], [], []
        page.on("request", lambda r: self.requests.append(r))
        page.on("requestfailed", lambda r: self.failed.append(f"{r.method} {r.url}: {r.failure}"))
        page.on("response", lambda r: r.status >= 400 and self.bad.append(f"{r.status} {r.request.method} {r.url}"))
        page.on("console", lambda m: m.type == "error" and self.errors.append(f"console: {m.text}"))
        page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))

    def completions(self) -> list:
        return [r for r in self.requests if urlsplit(r.url).path == "/v1/completions"]


def open_playground(page, url: str, card: dict) -> None:
    page.goto(url + "/")
    page.wait_for_function("name => document.getElementById('model-name').textContent === name", arg=card["id"])


def text(page, selector: str) -> str:
    return page.eval_on_selector(selector, "e => e.textContent")


def status(page) -> str:
    return text(page, "#status").strip()


def wait_status(page, prefix: str) -> str:
    page.wait_for_function("p => document.getElementById('status').textContent.startsWith(p)", arg=prefix)
    return status(page)


def slow_network(page, bytes_per_s: int) -> None:
    """Throttles the page's downloads, so that a stream the tiny model writes in a fraction of a
    second arrives over seconds: long enough to watch it grow and to stop it midway."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.emulateNetworkConditions", {"offline": False, "latency": 0,
                                                  "downloadThroughput": bytes_per_s, "uploadThroughput": -1})


def set_story(page, prompt: str, max_tokens: int, seed: int | None) -> None:
    page.fill("#prompt", prompt)
    page.fill("#max-tokens", str(max_tokens))
    page.fill("#seed", "" if seed is None else str(seed))


def direct(url: str, card: dict, max_tokens: int, seed: int, prompt: str = PROMPT) -> dict:
    """The same story asked of the API directly, not streamed."""
    r = httpx.post(url + "/v1/completions", timeout=60, json={
        "model": card["id"], "prompt": prompt, "max_tokens": max_tokens, "temperature": TEMPERATURE,
        "top_p": TOP_P, "seed": seed})
    assert r.status_code == 200, r.text
    return r.json()


def long_story(url: str, card: dict, max_tokens: int) -> tuple[int, dict]:
    """A seed whose story runs long (the tiny model often ends a story after a few words), and the
    API's answer for it: a stream with something to watch, or to stop midway."""
    seed, answer = max(((s, direct(url, card, max_tokens, s)) for s in range(1, 9)),
                       key=lambda sa: sa[1]["usage"]["completion_tokens"])
    assert answer["usage"]["completion_tokens"] >= 25, "the tiny model writes only very short stories"
    return seed, answer


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", head[16:24])


def no_horizontal_scroll(page) -> None:
    scroll, inner = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert scroll <= inner, f"the page scrolls sideways: {scroll} px wide in a {inner} px window"


# ---- tests --------------------------------------------------------------------------------------

def test_page_loads_cleanly_from_the_server_alone(url, card, new_page):
    page, watch = new_page()
    open_playground(page, url, card)
    page.wait_for_load_state("networkidle")
    assert watch.failed == [] and watch.bad == [] and watch.errors == [], (watch.failed, watch.bad, watch.errors)

    assert page.title().startswith("tinygpt playground")
    assert page.inner_text("h1") == "tinygpt playground"
    assert card["id"] in page.inner_text("body")
    paths = {urlsplit(r.url).path: r for r in watch.requests}
    for asset in ("/", "/static/style.css", "/static/app.js", "/v1/models"):
        assert asset in paths, f"the page did not load {asset}: {sorted(paths)}"
        assert paths[asset].response().status == 200
    origin = urlsplit(url)
    outside = [r.url for r in watch.requests if urlsplit(r.url).scheme != "data"
               and (urlsplit(r.url).scheme, urlsplit(r.url).netloc) != (origin.scheme, origin.netloc)]
    assert outside == [], f"requests left the server: {outside}"

    # the controls as the page starts: the defaults, labelled, Stop off, no key asked for
    assert page.input_value("#temperature") == "0.8" and text(page, "#temperature-value") == "0.80"
    assert page.input_value("#top-p") == "0.95" and text(page, "#top-p-value") == "0.95"
    assert page.input_value("#max-tokens") == str(min(200, card.get("max_model_len") or 200))
    assert page.input_value("#seed") == ""
    for control in ("prompt", "temperature", "top-p", "max-tokens", "seed", "api-key"):
        assert page.locator(f"label[for='{control}']").count() == 1, f"#{control} has no label"
    assert page.is_enabled("#write") and page.is_disabled("#stop")
    assert page.is_hidden("#api-key")
    assert page.eval_on_selector("#story", "e => getComputedStyle(e).whiteSpace") == "pre-wrap"

    # a story beginning button fills the prompt; a slider shows its value
    starter = page.locator(".starter", has_text="Lily and Ben")
    starter.click()
    assert page.input_value("#prompt") == "Lily and Ben went to the park. They"
    assert page.locator(".starter").count() >= 4
    page.fill("#temperature", "1.25")
    assert text(page, "#temperature-value") == "1.25"


def test_a_story_streams_in_and_equals_the_api_answer_for_its_seed(url, card, new_page):
    page, watch = new_page()
    open_playground(page, url, card)
    max_tokens = 60
    seed, want = long_story(url, card, max_tokens)
    set_story(page, PROMPT, max_tokens, seed)
    slow_network(page, 6_000)
    page.click("#write")
    assert page.is_disabled("#write") and page.is_enabled("#stop")

    seen = []  # the story's text, sampled while the status says it is being written
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while time.monotonic() < deadline:
        generated, now = page.evaluate(
            "[document.getElementById('generated').textContent, document.getElementById('status').textContent]")
        if now.startswith("done"):
            break
        assert WRITING.match(now), now
        if generated and (not seen or seen[-1] != generated):
            seen.append(generated)
        time.sleep(0.03)
    final = wait_status(page, "done")
    story = text(page, "#generated")

    assert len(seen) >= 3, f"the story did not grow piece by piece while written: {seen}"
    assert all(story.startswith(s) for s in seen), "text shown while writing was later changed"
    assert len(seen[0]) < len(story), "the story appeared only once it was finished"

    assert story == want["choices"][0]["text"], "the streamed story differs from the API's for the same seed"
    m = DONE.match(final)
    assert m, final
    assert int(m.group(1)) == want["usage"]["completion_tokens"]
    assert m.group(2) == want["choices"][0]["finish_reason"]
    assert text(page, "#story-prompt") == PROMPT
    assert text(page, "#story").startswith(PROMPT + story[:1])
    settings = text(page, "#settings")
    for part in (f"temperature {TEMPERATURE}", f"top_p {TOP_P}", f"max_tokens {max_tokens}", f"seed {seed}"):
        assert part in settings, (part, settings)
    assert page.is_enabled("#write") and page.is_disabled("#stop")

    (request,) = watch.completions()
    assert request.method == "POST" and request.headers["content-type"] == "application/json"
    assert request.post_data_json == {"model": card["id"], "prompt": PROMPT, "max_tokens": max_tokens,
                                      "temperature": TEMPERATURE, "top_p": TOP_P, "seed": seed, "stream": True,
                                      "stream_options": {"include_usage": True}}
    assert watch.failed == [] and watch.bad == [] and watch.errors == [], (watch.failed, watch.bad, watch.errors)

    # no seed: a random story, and the request says no seed
    page.fill("#seed", "")
    page.fill("#max-tokens", "5")
    page.click("#write")
    wait_status(page, "done")
    assert "seed" not in watch.completions()[-1].post_data_json
    assert "seed random" in text(page, "#settings")


def test_stop_ends_the_story_midway(url, card, new_page):
    limit = min(1000, card.get("max_model_len") or 1000)
    seed, whole = long_story(url, card, limit)
    full = whole["choices"][0]["text"]

    page, watch = new_page()
    open_playground(page, url, card)
    set_story(page, PROMPT, 1000, seed)  # the page holds it to the model's context
    slow_network(page, 2_000)
    page.click("#write")
    assert page.input_value("#max-tokens") == str(limit)
    page.wait_for_function("document.getElementById('generated').textContent.length > 0")
    page.click("#stop")
    final = wait_status(page, "stopped")

    m = re.fullmatch(r"stopped after (\d+) tokens", final)
    assert m, final
    assert 1 <= int(m.group(1)) < whole["usage"]["completion_tokens"]
    assert page.is_enabled("#write") and page.is_disabled("#stop")
    story = text(page, "#generated")
    assert story and full.startswith(story) and len(story) < len(full), (story, full)
    time.sleep(1.0)
    assert text(page, "#generated") == story, "the story kept growing after Stop"
    assert status(page) == final
    assert watch.bad == [] and watch.errors == [], (watch.bad, watch.errors)
    assert watch.completions()[0].post_data_json["max_tokens"] == limit

    # and Write works again after a stop
    page.fill("#max-tokens", "8")
    page.click("#write")
    assert DONE.match(wait_status(page, "done"))


def test_a_401_asks_for_the_key_and_the_page_then_sends_it(url, card, new_page):
    """The server's key check stood in by the browser: requests without the key get the server's
    401 answer; with it they go through to the real server."""
    key = "playground-test-key"
    page, watch = new_page()
    page.context.route(re.compile(r".*/v1/.*"), lambda route: (
        route.continue_() if route.request.headers.get("authorization") == f"Bearer {key}" else route.fulfill(
            status=401, content_type="application/json", headers={"WWW-Authenticate": "Bearer"},
            body='{"error": {"message": "a valid API key is needed: send \'Authorization: Bearer KEY\'", '
                 '"type": "authentication_error", "param": null, "code": "invalid_api_key"}}')))
    page.goto(url + "/")
    page.wait_for_selector("#api-key", state="visible")
    assert "API key" in text(page, "#key-message")
    assert page.is_visible("label[for='api-key']")

    page.fill("#api-key", key)
    page.press("#api-key", "Enter")
    page.wait_for_function("name => document.getElementById('model-name').textContent === name", arg=card["id"])
    assert page.is_hidden("#api-key")
    assert page.evaluate("localStorage.getItem('tinygpt-api-key')") == key

    set_story(page, PROMPT, 10, 3)
    page.click("#write")
    wait_status(page, "done")
    assert watch.completions()[-1].headers.get("authorization") == f"Bearer {key}"
    assert text(page, "#generated") == direct(url, card, 10, 3)["choices"][0]["text"]

    # kept across visits: the page sends the stored key from the start
    page.reload()
    open_playground(page, url, card)
    assert page.is_hidden("#api-key")

    # a stored key the server refuses: asked for again, saying so
    page.evaluate("localStorage.setItem('tinygpt-api-key', 'wrong')")
    page.reload()
    page.wait_for_selector("#api-key", state="visible")
    assert "refused" in text(page, "#key-message")


def test_errors_are_shown_readably(url, card, new_page):
    page, _ = new_page()
    open_playground(page, url, card)
    page.fill("#seed", "1.5")
    page.click("#write")
    assert "seed must be a whole number" in status(page)
    # a prompt longer than the model's context: the server refuses it with a 400 and its message
    page.fill("#seed", "1")
    page.fill("#prompt", "Once upon a time " * 200)
    page.fill("#max-tokens", "5")
    page.click("#write")
    shown = wait_status(page, "Error:")
    assert "context" in shown and "{" not in shown, shown
    assert page.eval_on_selector("#status", "e => e.classList.contains('error')")
    assert page.is_enabled("#write") and page.is_disabled("#stop")


def test_fits_a_phone(url, card, new_page):
    page, watch = new_page(PHONE)
    open_playground(page, url, card)
    no_horizontal_scroll(page)
    assert page.is_visible("#write")
    box = page.locator("#write").bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
    # the controls stack
    boxes = [page.locator(f"#{c}").bounding_box() for c in ("temperature", "top-p", "max-tokens", "seed")]
    assert all(a["y"] + a["height"] <= b["y"] for a, b in zip(boxes, boxes[1:])), boxes
    set_story(page, PROMPT, 60, 11)
    page.click("#write")
    wait_status(page, "done")
    no_horizontal_scroll(page)
    assert watch.failed == [] and watch.bad == [] and watch.errors == [], (watch.failed, watch.bad, watch.errors)


def test_screenshots(url, card, new_page, artifacts):
    desktop, phone = artifacts / "playground.png", artifacts / "playground-phone.png"
    for path, viewport, full_page in ((desktop, DESKTOP, False), (phone, PHONE, True)):
        page, _ = new_page(viewport)
        open_playground(page, url, card)
        set_story(page, "Once upon a time, there was a little dog named", 80, 5)
        page.click("#write")
        wait_status(page, "done")
        path.unlink(missing_ok=True)
        page.screenshot(path=str(path), full_page=full_page, animations="disabled")
        width, height = png_size(path)
        assert width == viewport["width"], (path, width)
        assert height >= viewport["height"] if full_page else height == viewport["height"], (path, height)
        print(f"screenshot: {path}")
