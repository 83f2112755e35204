"""One file is the unit of failure: whatever is wrong with one article file, that file is
rejected with its name and a plain reason, and every other file is published.

Run as a user runs them: `aggregator build` in a subprocess on real files (serially and in
worker processes), and the daemon with its real observer. Also here: a takedown saved
together with a mistake still takes the article down (README, "How a rejected file's state
is decided").
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import feedparser
import pytest
from articlefiles import article_text, bump_mtime, write_article
from building import BASE, build, folder_settings
from test_daemon import running, wait_for
from test_daemon import settings as settings  # noqa: PLC0414 - the daemon tests' fixture

from aggregator.config import Settings
from aggregator.events import ArticleRejected, ArticleUnpublished
from aggregator.pipeline import PARALLEL_FILES, BuildReport

HEX = "0x" + "f" * 5000

# (file name, front matter lines after title/webUrl/published): each was seen to abort a
# whole build or fail every daemon batch, or is a sibling of one that was.
BAD = {
    "tag-bool.txt": "extra: !!bool x\n",
    "tag-int-empty.txt": "extra: !!int\n",
    "tag-float.txt": "extra: !!float x\n",
    "tag-timestamp.txt": "publishedDateTime: !!timestamp x\n",
    "long-key.txt": "k" * 1100 + ": v\n",
    "year-one.txt": "publishedDateTime: 0001-01-01T00:00:00Z\n",
    "year-five-digits.txt": "publishedDateTime: 0001-01-01T00:30:00+01:00\n",
    "title-list.txt": "title: !!str [a]\n",
}
# Fields holding numbers too long to be numbers: kept as text, so the file is published.
_DATED = "publishedDateTime: 2021-12-22T13:00:00Z\n"
ODD_BUT_GOOD = {
    "hex-provider.txt": f"{_DATED}provider: {{name: {HEX}}}\n",
    "hex-width.txt": f"{_DATED}images: [{{url: 'https://e.com/i.jpg', width: {HEX}}}]\n",
    "hex-related.txt": f"{_DATED}related: [{{title: {HEX}, webUrl: 'https://e.com/r'}}]\n",
    "hex-topic.txt": f"{_DATED}topics: [{HEX}]\n",
    "sexagesimal.txt": _DATED + "x: 1" + ":0" * 20_000 + "\n",
}


def bad_file(name: str, lines: str) -> str:
    url = f"https://bad.example.com/{name}"
    return f"---\ntitle: Bad {name}\nwebUrl: {url}\npublished: true\n{lines}---\n"


def run_build(folder: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    config = folder / "aggregator.yaml"
    config.write_text("max_items: 1000\n", encoding="utf-8")
    return subprocess.run(
        [sys.executable, "-m", "aggregator", "build", "--config", str(config),
         "--input", str(folder / "in"),
         "--output", str(folder / "out"), "--state", str(folder / "state"),
         "--base-url", BASE, *flags],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )  # fmt: skip


def listed(folder: Path, feed: str = "all") -> set[str]:
    parsed = feedparser.parse((folder / "out" / f"{feed}.rss.xml").read_bytes())
    assert not parsed.bozo, parsed.get("bozo_exception")
    return {entry.link for entry in parsed.entries}


def write_cases(source: Path, cases: dict[str, str]) -> None:
    for name, lines in cases.items():
        (source / name).write_text(bad_file(name, lines), encoding="utf-8")


@pytest.mark.parametrize("name", sorted(BAD))
def test_build_rejects_the_bad_file_and_publishes_the_rest(tmp_path: Path, name: str) -> None:
    source = tmp_path / "in"
    write_article(source, "good.txt", "https://good.example.com/1")
    write_cases(source, {name: BAD[name]})
    done = run_build(tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert f"rejected {name}: " in done.stderr
    assert "2 article files read, 1 published, 1 rejected" in done.stdout
    assert listed(tmp_path) == {"https://good.example.com/1"}
    strict = run_build(tmp_path, "--strict")
    assert strict.returncode == 1
    assert "Traceback" not in strict.stderr


def test_build_in_worker_processes_rejects_each_bad_file_alone(tmp_path: Path) -> None:
    # Enough files for the worker pool: its chunks must carry rejections, not exceptions.
    source = tmp_path / "in"
    good = {f"https://good.example.com/{i}" for i in range(PARALLEL_FILES)}
    for i, url in enumerate(sorted(good)):
        write_article(source, f"good{i:04d}.txt", url)
    write_cases(source, BAD | ODD_BUT_GOOD)
    with open(os.fsencode(source) + b"/not-utf8-\xff.txt", "w", encoding="utf-8") as handle:
        handle.write(article_text("https://good.example.com/named-badly"))
    done = run_build(tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    for name in BAD:
        assert f"rejected {name}: " in done.stderr
    assert "rejected not-utf8-\\udcff.txt: the file name is not valid UTF-8" in done.stderr
    odd = {f"https://bad.example.com/{name}" for name in ODD_BUT_GOOD}
    assert listed(tmp_path) == good | odd
    again = run_build(tmp_path)  # the bad files are recorded: nothing to read again...
    assert again.returncode == 0, again.stderr
    # ...but a name that cannot be recorded is rejected at every build until renamed.
    assert "1 article files read" in again.stdout


def test_daemon_publishes_a_good_file_dropped_after_a_bad_one(settings: Settings) -> None:
    with running(settings) as (_, recorder):
        for name, lines in BAD.items():
            (settings.input / name).write_text(bad_file(name, lines), encoding="utf-8")
            wait_for(
                lambda name=name: any(e.source == name for e in recorder.of(ArticleRejected)),
                f"the rejection of {name}",
            )
            url = f"https://good.example.com/after-{name}"
            write_article(settings.input, f"after-{name}", url)
            wait_for(lambda url=url: url in listed(settings.output.parent), f"{url} listed")


# --- a takedown always wins -------------------------------------------------------------


@pytest.fixture
def folders(tmp_path: Path) -> Settings:
    return folder_settings(tmp_path)


URL = "https://take.example.com/down"


def published_then_saved_as(settings: Settings, text: str) -> BuildReport:
    write_article(settings.input, "a.txt", URL, title="Was published")
    build(settings)
    assert URL in listed(settings.output.parent)
    path = settings.input / "a.txt"
    path.write_text(text, encoding="utf-8")
    bump_mtime(path)
    return build(settings)


GOOD = article_text(URL, "Was published")

WITHDRAWN = {
    "unpublished-with-bad-date": GOOD.replace("published: true", "published: false").replace(
        "2021-12-22T13:00:00Z", "yesterday"
    ),
    "unpublished-with-broken-yaml": GOOD.replace("published: true", "published: false").replace(
        "type: article", "type: [unclosed"
    ),
    "unpublished-with-comment-and-broken-yaml": GOOD.replace(
        "published: true", "published: no   # taken down"
    ).replace("type: article", "type: {"),
    "published-removed-and-title-missing": GOOD.replace("published: true\n", "").replace(
        "title: Was published\n", ""
    ),
    "published-quoted-and-broken-yaml": GOOD.replace("published: true", "published: 'true'")
    .replace("type: article", "type: ["),
    "unpublished-with-binary-junk-after": GOOD.replace("published: true", "published: false")
    .replace("type: article", "type: \x00"),
}  # fmt: skip

KEPT = {
    "cut-short-mid-copy": GOOD[: GOOD.index("published:")],
    "cut-short-inside-the-published-line": GOOD[: GOOD.index("published: true") + 12],
    "still-published-with-broken-yaml": GOOD.replace("type: article", "type: [unclosed"),
    "still-published-yes-with-broken-yaml": GOOD.replace("published: true", "published: yes")
    .replace("type: article", "type: ["),
    "still-published-with-bad-date": GOOD.replace("2021-12-22T13:00:00Z", "yesterday"),
    "unpublished-only-in-the-body": GOOD.replace("type: article", "type: [")
    + "published: false\n",
    "empty": "",
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(WITHDRAWN))
def test_a_takedown_saved_with_a_mistake_takes_the_article_down(
    folders: Settings, case: str
) -> None:
    report = published_then_saved_as(folders, WITHDRAWN[case])
    (rejected,) = [e for e in report.events if isinstance(e, ArticleRejected)]
    assert (rejected.source, rejected.kept_previous) == ("a.txt", False)
    (gone,) = [e for e in report.events if isinstance(e, ArticleUnpublished)]
    assert (gone.source, gone.url) == ("a.txt", URL)
    assert URL not in listed(folders.output.parent)
    # Fixed and published again, it comes back under the GUID it had.
    write_article(folders.input, "a.txt", URL, title="Back")
    build(folders)
    assert URL in listed(folders.output.parent)


@pytest.mark.parametrize("case", sorted(KEPT))
def test_a_rejected_file_that_says_nothing_else_keeps_its_last_good_version(
    folders: Settings, case: str
) -> None:
    report = published_then_saved_as(folders, KEPT[case])
    (rejected,) = [e for e in report.events if isinstance(e, ArticleRejected)]
    assert (rejected.source, rejected.kept_previous) == ("a.txt", True)
    assert not [e for e in report.events if isinstance(e, ArticleUnpublished)]
    assert URL in listed(folders.output.parent)


# --- output hygiene: what one item may add to a feed ---------------------------------------


def test_a_huge_excerpt_is_cut_at_a_word_boundary_and_feeds_stay_small(folders: Settings) -> None:
    words = " ".join(f"word{i}" for i in range(100_000))  # about 690 kB
    related = [
        {"title": f"Related {i}", "webUrl": f"https://r.example.com/{i}"} for i in range(50)
    ]
    for i in range(6):
        write_article(
            folders.input,
            f"big{i}.txt",
            f"https://big.example.com/{i}",
            excerpt=words,
            topics=["AI", "Robotics"],
            related=related,
        )
    build(folders)
    sizes = [p.stat().st_size for p in folders.output.rglob("*.xml")]
    # Six items of at most 4,000 characters (twice in each: summary and content).
    assert max(sizes) < 6 * 2 * 4000 * 2 + 50_000
    parsed = feedparser.parse((folders.output / "all.atom.xml").read_bytes())
    summary = parsed.entries[0].summary
    assert summary.endswith("…")
    assert len(summary) <= 4000
    assert words.startswith(summary[:-1])
    assert words[len(summary) - 1] == " "  # cut where a word ends
    content = parsed.entries[0].content[0].value
    assert "https://r.example.com/19" in content
    assert "https://r.example.com/20" not in content


def test_max_excerpt_chars_is_a_setting_and_changing_it_re_renders(folders: Settings) -> None:
    from dataclasses import replace

    write_article(folders.input, "a.txt", URL, excerpt="one two three four " * 100)
    build(folders)
    report = build(replace(folders, max_excerpt_chars=120))
    assert report.written >= 1
    parsed = feedparser.parse((folders.output / "all.atom.xml").read_bytes())
    # 120 characters end inside "two": the cut is after the "one" before it.
    assert parsed.entries[0].summary == "one two three four " * 6 + "one…"


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("short", 10, "short"),
        ("exactly ten", 11, "exactly ten"),
        ("two words", 8, "two wor…"),  # no boundary in the second half: cut in the word
        ("averyveryverylongword and", 10, "averyvery…"),
        ("line one\nline two", 12, "line one…"),
        ("trailing   spaces   here", 16, "trailing…"),
        ("two words", 9, "two words"),
        ("one two three four", 15, "one two three…"),
    ],
)
def test_cut_keeps_at_most_the_limit_and_ends_on_a_word(
    text: str, limit: int, expected: str
) -> None:
    from aggregator.output import cut

    assert cut(text, limit) == expected
    assert len(cut(text, limit)) <= limit
