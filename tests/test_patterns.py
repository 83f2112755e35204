"""The custom feeds' patterns run on RE2 (membership/patterns.py): Python's meaning where the
two share a spelling, the patterns RE2 refuses refused when the config loads (exit 2, naming the
feed and the pattern), and a pattern that backtracks for ever under Python's `re` does not
freeze the real daemon (it publishes, answers HTTP and stops on SIGTERM)."""

from __future__ import annotations

import pickle
import re
import signal
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from articlefiles import write_article
from httpcheck import Client, titles
from processes import Aggregator
from waiting import wait_for

from aggregator.cli import main
from aggregator.membership import Pattern, PatternError, parse_feed_definitions

# A content team's 17-word title ending in `!`: under `re`, `^(\w+\s?)*$` tries every way of
# cutting its 80-odd letters into words before failing (minutes, holding the GIL).
CATASTROPHIC = r"^(\w+\s?)*$"
TITLE = (
    "Seventeen words about robots and the people who build them in small garages "
    "across the wide world!"
)

TEXTS = [
    "Robots in Paris",
    "ROBOTS",
    "Москва строит роботов 2025",
    "Été à Montréal: l'IA",
    "tabs\tand\u00a0no-break\u3000ideographic spaces",
    "digits ١٢٣ and 123",
    "under_score and-dash",
    "ends with a newline\n",
    "",
]
PATTERNS = [
    r"(?i)robot",
    r"^\w+$",
    r"\w+\s\w+",
    r"\d{3}",
    r"\D+",
    r"\S+\s+\S+",
    r"[\w-]+",
    r"[^\d\s]+",
    r"(?i)été|ete",
    r"^(\w+\s?)*$",
    r"Paris\Z",
    r"(?i:montréal)",
    r"[]a]",
    r"a|b|c",
    r"\W",
    r"(?P<word>robots)",
    r"\\w",
    r"x*",
]


@pytest.mark.parametrize("pattern", PATTERNS)
def test_a_pattern_matches_what_pythons_re_matches(pattern: str) -> None:
    compiled = Pattern(pattern)
    expected = re.compile(pattern)
    for text in TEXTS:
        if pattern == CATASTROPHIC and text and not text.rstrip("\n").replace(" ", "").isalnum():
            continue  # Python's re may take minutes on these: the reason for RE2
        assert compiled.search(text) == bool(expected.search(text)), (pattern, text)


def test_the_catastrophic_pattern_is_linear_and_pickles() -> None:
    compiled = Pattern(CATASTROPHIC)
    assert not compiled.search(TITLE)
    assert compiled.search(TITLE.rstrip("!"))
    # One megabyte of text: linear time is well under a second; backtracking never ends.
    started = time.monotonic()
    assert not compiled.search("word " * 200_000 + "!")
    assert time.monotonic() - started < 30  # a bound on a hang, not a speed figure
    copy = pickle.loads(pickle.dumps(compiled))
    assert copy == compiled
    assert not copy.search(TITLE)


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        (r"(\w+) \1", "backreference"),
        (r"(?P<w>\w+) (?P=w)", "backreference"),
        (r"robot(?=s)", "lookahead"),
        (r"robot(?!s)", "negative lookahead"),
        (r"(?<=big )robot", "lookbehind"),
        (r"(?<!small )robot", "negative lookbehind"),
        (r"(?>robot)s", "atomic group"),
        (r"robots++", "possessive"),
        (r"(?x) robot s", "verbose"),
        (r"[\W\d]", r"\W inside [...]"),
        (r"robot(", "not a valid regular expression"),
    ],
)
def test_what_re2_cannot_do_is_refused_with_a_reason(pattern: str, reason: str) -> None:
    with pytest.raises(PatternError, match=re.escape(reason)):
        Pattern(pattern)
    _, problems = parse_feed_definitions([{"name": "robots", "title_matches": pattern}])
    (problem,) = problems
    assert problem.startswith("feeds[0] (robots).title_matches: ")
    assert repr(pattern) in problem
    # Python's `\` doubling in the message's repr is the only thing added to the pattern.
    assert "Traceback" not in problem


def config(tmp_path: Path, feeds: list[dict[str, Any]], **extra: Any) -> Path:
    path = tmp_path / "aggregator.yaml"
    data = {
        "input": str(tmp_path / "in"),
        "output": str(tmp_path / "out"),
        "state": str(tmp_path / "state"),
        "base_url": "http://localhost:8000/",
        "feeds": feeds,
        **extra,
    }
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    (tmp_path / "in").mkdir(exist_ok=True)
    return path


def test_a_refused_pattern_exits_2_naming_the_feed_and_the_pattern(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    feeds = [{"name": "echoes", "excerpt_matches": r"(\w+) \1"}]
    path = config(tmp_path, feeds)
    write_article(tmp_path / "in", "a.txt", "https://x.test/a")
    assert main(["build", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "feeds[0] (echoes).excerpt_matches" in err
    assert r"'(\\w+) \\1'" in err
    assert "RE2" in err
    assert "E0000" not in err  # RE2's own log line is kept off stderr
    assert not (tmp_path / "out").exists()


def test_the_real_daemon_survives_a_catastrophic_pattern(tmp_path: Path) -> None:
    """The daemon with the server: the title that froze it under `re` is read, the feeds are
    published, HTTP answers throughout, and SIGTERM stops it at once."""
    feeds = [{"name": "plain", "title": "Plain titles", "title_matches": CATASTROPHIC}]
    path = config(tmp_path, feeds, debounce_seconds=0.05, debounce_max_seconds=0.5)
    inp = tmp_path / "in"
    write_article(inp, "plain.txt", "https://x.test/plain", title="Robots in small garages")
    server = Aggregator(["run", "--serve", "--port", "0", "--config", str(path)], cwd=tmp_path)
    proc = server.proc
    try:
        port = server.port_in(r"serving .*http://127\.0\.0\.1:(\d+)/")
        assert len([x for x in server.lines if "serving" in x]) == 1
        client = Client(port)
        wait_for(
            lambda: "Robots in small garages" in titles(client.get("/custom/plain.atom.xml")[2]),
            "the plain title in the custom feed",
        )
        write_article(inp, "shout.txt", "https://x.test/shout", title=TITLE)
        wait_for(lambda: TITLE in titles(client.get("/all.atom.xml")[2]), "the 17-word title")
        # Listed in the all feed, not in the custom one (it ends with `!`), and the server
        # still answers.
        assert TITLE not in titles(client.get("/custom/plain.atom.xml")[2])
        assert client.get("/index.opml")[0] == 200
        client.close()
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=10)
        assert time.monotonic() - started < 5  # the promise of the unit: gone within 5 s
    finally:
        server.stop()  # reaps, or kills what is left, and joins the reader
    log = "\n".join(server.lines)
    assert code == 0, log
    assert "Traceback" not in log
