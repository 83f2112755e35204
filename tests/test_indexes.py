"""index.html as a subscriber sees it: valid HTML5, the right facts, and in a real browser
(headless Chromium driven over the DevTools protocol) not blank, filterable, usable on a
phone, in dark mode and with scripts off."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import struct
import subprocess
import time
import urllib.parse
import xml.etree.ElementTree as ET
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import feedparser
import html5lib
import pytest
from articlefiles import write_article
from services import service_missing

from aggregator.config import Settings
from aggregator.model import FeedKey, FeedKind, FeedSummary
from aggregator.output import render_indexes
from aggregator.pipeline import Builder

BASE = "https://feeds.example.org/"
TOPICS = ["AI", "Energy", "Cloud Computing", "Robots & <Machines>", "Vision"]
PROVIDERS = ["Forbes", "GCN", "Wired"]
ARTICLES = 30
MAX_ITEMS = 4


def corpus(folder: Path) -> None:
    """30 articles, one a day, over 5 topics and 3 providers: every big feed is capped."""
    for n in range(ARTICLES):
        provider = PROVIDERS[n % len(PROVIDERS)]
        write_article(
            folder,
            f"a{n:02d}.md",
            f"https://news.example.com/{n}",
            title=f"Headline number {n}",
            date=f"2024-03-{n + 1:02d}T08:30:00Z",
            topics=[TOPICS[n % len(TOPICS)], TOPICS[(n * 2) % len(TOPICS)]],
            provider={"name": provider, "domain": f"{provider.lower()}.com"},
        )


def build_site(root: Path) -> Path:
    """Build the corpus into root/out; returns the output folder."""
    corpus(root / "in")
    settings = Settings(
        input=root / "in",
        output=root / "out",
        state=root / "state",
        base_url=BASE,
        max_items=MAX_ITEMS,
        workers=1,
    )
    with Builder(settings) as builder:
        builder.build()
    return settings.output


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_site(tmp_path_factory.mktemp("site"))


@pytest.fixture(scope="module")
def page(site: Path) -> str:
    return (site / "index.html").read_text(encoding="utf-8")


def parse(text: str) -> Any:
    """Parse as HTML5; strict: any parse error raises."""
    parser = html5lib.HTMLParser(strict=True, namespaceHTMLElements=False)
    return parser.parse(text)


# --- the page's content -------------------------------------------------------------------


def test_the_page_is_valid_html5(page: str) -> None:
    parse(page)  # raises on the first parse error


def test_the_parser_in_this_test_does_find_errors() -> None:
    """The check above can fail: a page with a stray end tag is refused."""
    with pytest.raises(html5lib.html5parser.ParseError):
        parse("<!DOCTYPE html><html lang=en><head><title>x</title></head><body></p></body>")


def test_the_newest_headlines_of_the_all_feed_come_first(page: str) -> None:
    document = parse(page)
    headlines = document.findall(".//ol[@class='headlines']/li")
    # The all feed lists MAX_ITEMS items; the page shows no more than it lists.
    assert len(headlines) == MAX_ITEMS
    titles = [li.find("a").text for li in headlines]
    assert titles == [
        f"Headline number {n}" for n in range(ARTICLES - 1, ARTICLES - 1 - MAX_ITEMS, -1)
    ]
    first = headlines[0]
    assert first.find("a").get("href") == f"https://news.example.com/{ARTICLES - 1}"
    assert first.find(".//time").get("datetime") == f"2024-03-{ARTICLES:02d}T08:30:00Z"


def feed_rows(page: str) -> dict[str, Any]:
    document = parse(page)
    return {
        li.find(".//div[@class='name']").text: li
        for li in document.iter("li")
        if li.get("class") == "feed"
    }


def test_each_feed_says_how_many_items_it_lists_of_how_many_articles(page: str) -> None:
    rows = feed_rows(page)
    meta = {name: "".join(li.find(".//div[@class='meta']").itertext()) for name, li in rows.items()}
    assert meta["All articles"].startswith(f"newest {MAX_ITEMS} of {ARTICLES} articles")
    per_provider = ARTICLES // len(PROVIDERS)
    assert meta["Provider: GCN"].startswith(f"newest {MAX_ITEMS} of {per_provider} articles")
    # Not the same number for every capped feed: the totals come from the catalog.
    totals = {m.split(" of ")[1].split(" ")[0] for m in meta.values() if " of " in m}
    assert len(totals) > 1


def test_each_feed_shows_its_newest_item_date_not_the_clock(page: str) -> None:
    rows = feed_rows(page)
    updated = rows["Provider: Forbes"].find(".//time").get("datetime")
    # Forbes has articles 0, 3, …, 27: the newest is on day 28.
    assert updated == "2024-03-28T08:30:00Z"
    assert rows["All articles"].find(".//time").get("datetime") == "2024-03-30T08:30:00Z"


def test_every_format_has_a_link_and_a_copy_button(page: str) -> None:
    for name, li in feed_rows(page).items():
        links = [(a.text, a.get("href")) for a in li.iter("a")]
        assert [label for label, _ in links] == ["RSS", "Atom", "JSON"], name
        # Each format: its link, then the button that copies it.
        pairs = [[child.tag for child in span] for span in li.iter("span")]
        assert pairs == [["a", "button"]] * len(links), name
        for button in li.iter("button"):
            assert button.get("hidden") is not None  # scripts off: the plain link only


def test_autodiscovery_is_for_the_all_feed_only(page: str) -> None:
    head = parse(page).find("head")
    alternates = [
        (link.get("type"), link.get("href"))
        for link in head.iter("link")
        if link.get("rel") == "alternate"
    ]
    assert alternates == [
        ("application/rss+xml", BASE + "all.rss.xml"),
        ("application/atom+xml", BASE + "all.atom.xml"),
        ("application/feed+json", BASE + "all.json"),
    ]


def test_no_external_asset(page: str) -> None:
    document = parse(page)
    for element in document.iter():
        assert element.get("src") is None, element.tag
        if element.tag == "link":
            assert element.get("rel") == "alternate"
    assert "url(" not in page
    assert "@import" not in page


def test_the_page_is_byte_stable(site: Path, tmp_path: Path) -> None:
    """Built again elsewhere, later: the same bytes (nothing depends on the clock or order)."""
    again = build_site(tmp_path)
    assert (again / "index.html").read_bytes() == (site / "index.html").read_bytes()


def summary(key: FeedKey, title: str, **fields: Any) -> FeedSummary:
    return FeedSummary(key, title, BASE + key.rss_path, BASE + key.atom_path, 3, **fields)


def test_a_json_feed_url_adds_a_link_a_copy_button_and_autodiscovery() -> None:
    everything = summary(
        FeedKey.everything(), "All articles", json_url=BASE + "all.json", articles=3
    )
    topic = summary(FeedKey(FeedKind.TOPIC, "ai"), "AI", json_url=BASE + "topics/ai.json")
    _, html = render_indexes(
        [everything, topic], title="T", home_url=BASE + "index.html", opml_url=BASE + "index.opml"
    )
    text = html.data.decode()
    document = parse(text)
    alternates = [link.get("type") for link in document.find("head").iter("link")]
    assert alternates == ["application/rss+xml", "application/atom+xml", "application/feed+json"]
    rows = feed_rows(text)
    assert [a.text for a in rows["AI"].iter("a")] == ["RSS", "Atom", "JSON"]
    assert len(list(rows["AI"].iter("button"))) == 3


def test_titles_are_text_never_markup() -> None:
    feed = summary(FeedKey(FeedKind.TOPIC, "x"), 'Robots & <script>alert("x")</script>')
    _, html = render_indexes(
        [summary(FeedKey.everything(), "All"), feed],
        title="<b>News</b>",
        home_url=BASE,
        opml_url=BASE + "index.opml",
    )
    document = parse(html.data.decode())
    assert len(list(document.iter("script"))) == 1  # the page's own
    assert document.find(".//h1").text == "<b>News</b>"


# --- in a real browser ----------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevTools]:
    if CHROMIUM is None:
        service_missing("chromium is not installed (apt-get install chromium; .ci/run does)")
    browser = DevTools(CHROMIUM, tmp_path_factory.mktemp("chromium-profile"))
    try:
        yield browser
    finally:
        browser.close()


class DevTools:
    """Headless Chromium driven over the DevTools protocol on a pipe (no port, no network)."""

    def __init__(self, binary: str, profile: Path) -> None:
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()
        # --remote-debugging-pipe: Chromium reads commands on fd 3 and writes on fd 4; bash
        # puts the pipes there (our fd numbers are whatever was free).
        self.process = subprocess.Popen(
            [
                "bash",
                "-c",
                f'exec "$@" 3<&{to_chrome_r} 4>&{from_chrome_w}',
                "bash",
                binary,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                "--remote-debugging-pipe",
                f"--user-data-dir={profile}",
                "about:blank",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=(to_chrome_r, from_chrome_w),
        )
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []
        targets = self.call("Target.getTargets")["targetInfos"]
        page = next(t for t in targets if t["type"] == "page")
        self.session = self.call("Target.attachToTarget", targetId=page["targetId"], flatten=True)[
            "sessionId"
        ]
        self.call("Page.enable", session=True)
        self.call("Runtime.enable", session=True)

    def call(self, method: str, *, session: bool = False, **params: Any) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = self.session
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            reply = self._read()
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                result: dict[str, Any] = reply["result"]
                return result
            self.events.append(reply)
        raise TimeoutError(f"no reply to {method}")

    def _read(self) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            chunk = os.read(self._from_chrome, 1 << 16)
            if not chunk:
                raise RuntimeError("chromium closed the DevTools pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        reply: dict[str, Any] = json.loads(message)
        return reply

    def evaluate(self, expression: str) -> Any:
        result = self.call(
            "Runtime.evaluate", session=True, expression=expression, returnByValue=True
        )
        return result["result"].get("value")

    def open(self, url: str) -> None:
        """Navigate and wait until the new page has loaded and its script has run."""
        # A mark on the old page: until it is gone, readyState may still be the old one's.
        self.evaluate("window.previousPage = true")
        self.call("Page.navigate", session=True, url=url)
        self.wait_for(
            lambda: self.evaluate("!window.previousPage && document.readyState === 'complete'"),
            "page load",
        )

    def wait_for(self, condition: Callable[[], object], what: str, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            time.sleep(0.02)
        raise AssertionError(f"timed out waiting for {what}")

    def type_text(self, text: str) -> None:
        """Real key presses into the focused element."""
        for char in text:
            self.call("Input.dispatchKeyEvent", session=True, type="keyDown", text=char, key=char)
            self.call("Input.dispatchKeyEvent", session=True, type="keyUp", key=char)

    def screenshot(self, path: Path) -> tuple[int, int, set[tuple[int, ...]]]:
        data = base64.b64decode(
            self.call("Page.captureScreenshot", session=True, format="png")["data"]
        )
        path.write_bytes(data)
        return decode_png(data)

    def close(self) -> None:
        with contextlib.suppress(RuntimeError, TimeoutError, OSError):
            self.call("Browser.close")
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._to_chrome)
        os.close(self._from_chrome)


def decode_png(data: bytes) -> tuple[int, int, set[tuple[int, ...]]]:
    """(width, height, distinct colours) of an 8-bit RGB/RGBA PNG: enough to tell a blank
    screenshot from a page."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    position, idat, header = 8, b"", b""
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        body = data[position + 8 : position + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat += body
        position += 12 + length
    width, height, depth, colour = struct.unpack(">IIBB", header[:10])
    assert depth == 8, depth
    assert colour in (2, 6), colour
    channels = 4 if colour == 6 else 3
    raw = zlib.decompress(idat)
    stride = width * channels
    previous = bytearray(stride)
    colours: set[tuple[int, ...]] = set()
    for row in range(height):
        start = row * (stride + 1)
        kind = raw[start]
        line = bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up = previous[i]
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + ((left + up) >> 1)) & 0xFF
            elif kind == 4:
                corner = previous[i - channels] if i >= channels else 0
                estimate = left + up - corner
                pa, pb, pc = abs(estimate - left), abs(estimate - up), abs(estimate - corner)
                best = left if pa <= pb and pa <= pc else up if pb <= pc else corner
                line[i] = (line[i] + best) & 0xFF
        for i in range(0, stride, channels * 4):  # every 4th pixel: plenty to count colours
            colours.add(tuple(line[i : i + 3]))
        previous = line
    return width, height, colours


def visible_feeds(browser: DevTools) -> int:
    count: int = browser.evaluate(
        "Array.from(document.querySelectorAll('li.feed')).filter(li => li.offsetParent).length"
    )
    return count


def test_the_page_renders_and_is_not_blank(chromium: DevTools, site: Path) -> None:
    chromium.call(
        "Emulation.setDeviceMetricsOverride",
        session=True,
        width=800,
        height=600,
        deviceScaleFactor=1,
        mobile=False,
    )
    chromium.open((site / "index.html").as_uri())
    width, height, colours = chromium.screenshot(site.parent / "index-light.png")
    assert (width, height) == (800, 600)
    # A blank page is one colour; text, links and cards give many (anti-aliasing included).
    assert len(colours) > 20, len(colours)
    assert chromium.evaluate("document.title") == "Aggregator"
    assert chromium.evaluate("document.getElementById('filter').hidden") is False


def test_typing_in_the_filter_narrows_the_list(chromium: DevTools, site: Path) -> None:
    chromium.open((site / "index.html").as_uri())
    total = visible_feeds(chromium)
    assert total == 1 + len(TOPICS) + len(PROVIDERS)
    chromium.evaluate("document.getElementById('q').focus()")
    chromium.type_text("robo")
    chromium.wait_for(lambda: visible_feeds(chromium) == 1, "the filter to leave one feed")
    names = chromium.evaluate(
        "Array.from(document.querySelectorAll('li.feed')).filter(li => li.offsetParent)"
        ".map(li => li.querySelector('.name').textContent)"
    )
    assert names == ["Topic: Robots & <Machines>"]
    # Groups with nothing left are hidden, and the count says what is shown.
    assert chromium.evaluate("document.getElementById('group-providers').offsetParent") is None
    assert chromium.evaluate("document.getElementById('shown').textContent") == (
        f"1 of {total} feeds"
    )
    chromium.call(
        "Input.dispatchKeyEvent",
        session=True,
        type="keyDown",
        key="Backspace",
        code="Backspace",
        windowsVirtualKeyCode=8,
    )
    chromium.call("Input.dispatchKeyEvent", session=True, type="keyUp", key="Backspace")
    chromium.evaluate("document.getElementById('q').select()")
    chromium.type_text("gcn")
    chromium.wait_for(lambda: visible_feeds(chromium) == 1, "the filter to show GCN only")


def test_a_filter_in_the_url_is_applied(chromium: DevTools, site: Path) -> None:
    chromium.open((site / "index.html").as_uri() + "?q=provider")
    assert visible_feeds(chromium) == len(PROVIDERS)


def test_with_scripts_off_every_feed_and_link_is_there(chromium: DevTools, site: Path) -> None:
    chromium.call("Emulation.setScriptExecutionDisabled", session=True, value=True)
    try:
        chromium.open((site / "index.html").as_uri() + "?q=provider")
        assert visible_feeds(chromium) == 1 + len(TOPICS) + len(PROVIDERS)
        # The filter and the copy buttons would do nothing: they stay hidden.
        assert chromium.evaluate("document.getElementById('filter').offsetParent") is None
        assert chromium.evaluate(
            "Array.from(document.querySelectorAll('button.copy')).every(b => !b.offsetParent)"
        )
        links = chromium.evaluate("document.querySelectorAll('li.feed a').length")
        assert links == 3 * (1 + len(TOPICS) + len(PROVIDERS))  # RSS, Atom, JSON Feed
    finally:
        chromium.call("Emulation.setScriptExecutionDisabled", session=True, value=False)


def test_on_a_phone_nothing_scrolls_sideways(chromium: DevTools, site: Path) -> None:
    chromium.call(
        "Emulation.setDeviceMetricsOverride",
        session=True,
        width=360,
        height=740,
        deviceScaleFactor=1,
        mobile=True,
    )
    try:
        chromium.open((site / "index.html").as_uri())
        assert chromium.evaluate("document.documentElement.scrollWidth") <= 360
        _, _, colours = chromium.screenshot(site.parent / "index-phone.png")
        assert len(colours) > 20
    finally:
        chromium.call("Emulation.clearDeviceMetricsOverride", session=True)


def test_dark_mode_has_a_dark_background(chromium: DevTools, site: Path) -> None:
    chromium.call(
        "Emulation.setEmulatedMedia",
        session=True,
        features=[{"name": "prefers-color-scheme", "value": "dark"}],
    )
    try:
        chromium.open((site / "index.html").as_uri())
        background = chromium.evaluate("getComputedStyle(document.body).backgroundColor")
        chromium.screenshot(site.parent / "index-dark.png")
    finally:
        chromium.call("Emulation.setEmulatedMedia", session=True, features=[])
    red, green, blue = (int(v) for v in background.strip("rgb()").split(","))
    assert red + green + blue < 150, background
    chromium.open((site / "index.html").as_uri())
    light = chromium.evaluate("getComputedStyle(document.body).backgroundColor")
    assert light == "rgb(255, 255, 255)"


def test_the_copy_button_puts_the_url_on_the_clipboard(chromium: DevTools, site: Path) -> None:
    chromium.call(
        "Browser.grantPermissions", permissions=["clipboardReadWrite", "clipboardSanitizedWrite"]
    )
    chromium.open((site / "index.html").as_uri())
    x, y, url = chromium.evaluate(
        "(() => { const b = document.querySelectorAll('li.feed button.copy')[1];"
        " b.scrollIntoView(); const r = b.getBoundingClientRect();"
        " return [r.x + r.width / 2, r.y + r.height / 2, b.previousElementSibling.href]; })()"
    )
    assert url == BASE + "all.atom.xml"
    for kind in ("mousePressed", "mouseReleased"):  # a real click, a user gesture
        chromium.call(
            "Input.dispatchMouseEvent",
            session=True,
            type=kind,
            x=x,
            y=y,
            button="left",
            clickCount=1,
        )
    button = "document.querySelectorAll('li.feed button.copy')[1].textContent"
    chromium.wait_for(lambda: chromium.evaluate(button) == "copied", "the button to say so")
    pasted = chromium.call(
        "Runtime.evaluate",
        session=True,
        expression="navigator.clipboard.readText()",
        awaitPromise=True,
        returnByValue=True,
    )
    assert pasted["result"]["value"] == url


def test_a_new_page_version_is_published_without_waiting_for_a_feed_change(
    tmp_path: Path,
) -> None:
    out = build_site(tmp_path)
    settings = Settings(
        input=tmp_path / "in", output=out, state=tmp_path / "state", base_url=BASE, max_items=4
    )
    page = out / "index.html"
    fresh = page.read_bytes()
    page.write_bytes(b"<!DOCTYPE html><title>made by an older version</title>")
    with Builder(settings) as builder:
        builder.build()  # nothing changed, same renderer: the page is left alone
    assert page.read_bytes().startswith(b"<!DOCTYPE html><title>made by an older")
    with Builder(settings) as builder:
        builder.catalog.set_meta("index_renderer", "an older version")
        builder.build()
    assert page.read_bytes() == fresh


def click(browser: DevTools, selector: str) -> None:
    """A real mouse click (a user gesture) on the element `selector` finds."""
    x, y = browser.evaluate(
        f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
        " e.scrollIntoView({block: 'center'}); const r = e.getBoundingClientRect();"
        " return [r.x + r.width / 2, r.y + r.height / 2]; })()"
    )
    for kind in ("mousePressed", "mouseReleased"):
        browser.call(
            "Input.dispatchMouseEvent",
            session=True,
            type=kind,
            x=x,
            y=y,
            button="left",
            clickCount=1,
        )


def shown_names(browser: DevTools) -> list[str]:
    names: list[str] = browser.evaluate(
        "Array.from(document.querySelectorAll('li.feed')).filter(li => li.offsetParent)"
        ".map(li => li.querySelector('.name').textContent)"
    )
    return names


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("ai", ["Topic: AI"]),  # a word, not the "ai" inside other words
        ("ision", []),  # inside "Vision": not the start of a word
        ("vis", ["Topic: Vision"]),
        ("comp", ["Topic: Cloud Computing"]),
        ("Cloud   COMPUTING", ["Topic: Cloud Computing"]),
        ("machines robots", ["Topic: Robots & <Machines>"]),  # every word, any order
        ("cloud-computing", ["Topic: Cloud Computing"]),  # its slug
        ("gcn", ["Provider: GCN"]),
    ],
)
def test_the_filter_matches_words_and_their_starts(
    chromium: DevTools, site: Path, typed: str, expected: list[str]
) -> None:
    chromium.open((site / "index.html").as_uri() + "?q=" + urllib.parse.quote(typed))
    assert shown_names(chromium) == expected


def opml_outlines(data: bytes) -> list[dict[str, str]]:
    root = ET.fromstring(data)
    assert root.tag == "opml"
    assert root.get("version") == "2.0"
    return [dict(o.attrib) for o in root.iter("outline") if o.get("xmlUrl")]


def test_chosen_feeds_come_as_one_opml_made_in_the_page(
    chromium: DevTools, site: Path, tmp_path: Path
) -> None:
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    chromium.call("Browser.setDownloadBehavior", behavior="allow", downloadPath=str(downloads))
    chromium.open((site / "index.html").as_uri())
    button = "document.getElementById('opml-chosen')"
    assert chromium.evaluate(f"{button}.disabled") is True
    click(chromium, "#group-topics ~ ul li.feed:nth-child(2) input.pick")
    click(chromium, "#group-all ~ ul li.feed input.pick")
    # "choose all" takes the group's feeds that the filter shows.
    chromium.evaluate("document.getElementById('q').focus()")
    chromium.type_text("forbes")
    chromium.wait_for(lambda: len(shown_names(chromium)) == 1, "the filter to show Forbes")
    chromium.evaluate("document.getElementById('q').value = ''")
    click(chromium, "#group-providers button.group-pick")
    chromium.evaluate("document.getElementById('q').dispatchEvent(new Event('input'))")
    chromium.wait_for(
        lambda: chromium.evaluate(f"{button}.textContent") == "OPML of 3 chosen feeds",
        "three feeds chosen",
    )
    click(chromium, "#opml-chosen")
    made = downloads / "feeds.opml"
    chromium.wait_for(made.is_file, "the OPML download")
    chosen = opml_outlines(made.read_bytes())
    # Exactly the chosen feeds, each as index.opml lists it, in its order.
    everything = opml_outlines((site / "index.opml").read_bytes())
    titles = [o["title"] for o in chosen]
    assert titles == ["All articles", "Topic: Cloud Computing", "Provider: Forbes"]
    assert chosen == [o for o in everything if o["title"] in titles]
    folders = [o.get("text") for o in ET.fromstring(made.read_bytes()).find("body") or []]
    assert folders == ["All", "Topics", "Providers"]


def test_with_scripts_off_no_checkbox_shows_and_the_opml_link_is_there(
    chromium: DevTools, site: Path
) -> None:
    chromium.call("Emulation.setScriptExecutionDisabled", session=True, value=True)
    try:
        chromium.open((site / "index.html").as_uri())
        assert chromium.evaluate(
            "Array.from(document.querySelectorAll('input.pick, button.group-pick'))"
            ".every(e => !e.offsetParent)"
        )
        assert chromium.evaluate("document.getElementById('picker').offsetParent") is None
        assert chromium.evaluate("document.querySelector('a[type=\"text/x-opml\"]').href") == (
            BASE + "index.opml"
        )
    finally:
        chromium.call("Emulation.setScriptExecutionDisabled", session=True, value=False)


def test_providers_sharing_a_name_are_told_apart_everywhere(tmp_path: Path) -> None:
    # Two providers called "Data Brief" (databrief.com, databrief.co), one "Forbes".
    for n, domain in enumerate(["databrief.com", "databrief.co", "forbes.com"]):
        name = "Forbes" if domain == "forbes.com" else "Data Brief"
        write_article(
            tmp_path / "in",
            f"a{n}.md",
            f"https://news.example.com/{n}",
            provider={"name": name, "domain": domain},
        )
    settings = Settings(
        input=tmp_path / "in", output=tmp_path / "out", state=tmp_path / "state", base_url=BASE
    )
    with Builder(settings) as builder:
        builder.build()
    out = settings.output

    def titles() -> dict[str, str]:
        feeds = {
            str(p.relative_to(out)).removesuffix(".rss.xml"): feedparser.parse(p.read_bytes())
            for p in (out / "providers").glob("*.rss.xml")
        }
        return {stem: parsed.feed.title for stem, parsed in feeds.items()}

    assert titles() == {
        "providers/databrief-com": "Provider: Data Brief (databrief-com)",
        "providers/databrief-co": "Provider: Data Brief (databrief-co)",
        "providers/forbes-com": "Provider: Forbes",
    }
    listed = {o["title"] for o in opml_outlines((out / "index.opml").read_bytes())}
    assert set(titles().values()) <= listed
    page = (out / "index.html").read_text(encoding="utf-8")
    assert all(f">{title}</div>" in page for title in titles().values())
    # One of them goes: the other's name is its own again, in its feed too.
    (tmp_path / "in" / "a1.md").unlink()
    with Builder(settings) as builder:
        builder.build()
    assert titles()["providers/databrief-com"] == "Provider: Data Brief"
    assert "Provider: Data Brief (databrief-com)" not in (out / "index.html").read_text("utf-8")


def test_each_group_has_an_opml_of_its_own_linked_from_its_heading(site: Path, page: str) -> None:
    everything = opml_outlines((site / "index.opml").read_bytes())
    for path, prefix in (("index-topics.opml", "Topic: "), ("index-providers.opml", "Provider: ")):
        group = opml_outlines((site / path).read_bytes())
        assert group == [o for o in everything if o["title"].startswith(prefix)]
        assert f'href="{BASE}{path}"' in page  # a plain link: no script needed
    assert len(opml_outlines((site / "index-topics.opml").read_bytes())) == len(TOPICS)
    # No feed of the config here: no file for the group, and no link to one.
    assert not (site / "index-selections.opml").exists()
    assert "index-selections.opml" not in page
