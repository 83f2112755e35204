"""Config values that pass validation never crash later: every number is bounded, every URL
is read the way it will be used, every title template rendered once at validation. Each
seen case through the real CLI (a subprocess), and arbitrary YAML values at every key.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from articlefiles import write_article
from hypothesis import given
from hypothesis import strategies as st

from aggregator.cli import main

ROOT = Path(__file__).resolve().parents[1]


def folders(root: Path) -> dict[str, Any]:
    """A config's folders under `root`, with two articles to build (one worker: no fork)."""
    (root / "in").mkdir(exist_ok=True)
    write_article(root / "in", "a.txt", "https://a.example.com/", topics=["AI"])
    write_article(root / "in", "b.txt", "https://b.example.com/", topics=["Cars"])
    return {
        "input": str(root / "in"),
        "output": str(root / "out"),
        "state": str(root / "st"),
        "workers": 1,
    }


# (the YAML of the key, the dotted key the sentence names): each exited 1 with a traceback.
SEEN = [
    ("base_url: 'http://[::1/'", "base_url"),
    ("base_url: 'http://feeds.example.org:99999/'", "base_url"),
    ("base_url: 'https://feeds.example.org/?page=1'", "base_url"),
    ("base_url: 'https://user@/feeds/'", "base_url"),
    ("websub: {hubs: ['http://[::1/']}", "websub.hubs"),
    ("websub: {hubs: ['http://hub.example.org:0x50/']}", "websub.hubs"),
    ("max_items: 100000000000000000000", "max_items"),
    ("max_file_bytes: 100000000000000000000", "max_file_bytes"),
    ("max_excerpt_chars: 100000000000000000000", "max_excerpt_chars"),
    ("workers: 1000000", "workers"),
    ("lock_wait_seconds: .inf", "lock_wait_seconds"),
    ("lock_wait_seconds: .nan", "lock_wait_seconds"),
    ("daemon: {reconcile_seconds: .inf}", "daemon.reconcile_seconds"),
    ("daemon: {debounce_seconds: .nan}", "daemon.debounce_seconds"),
    ("daemon: {poll_seconds: 1.0e+300}", "daemon.poll_seconds"),
    ("serve: {max_age: 100000000000000000000}", "serve.max_age"),
    ("feed_titles: {topic: '{name!r:>99999999}'}", "feed_titles.topic"),
    ("feed_titles: {topic: '{name:>99999999}'}", "feed_titles.topic"),
    ("feed_titles: {provider: '{name.__class__}'}", "feed_titles.provider"),
    ("feed_titles: {site: '{0}'}", "feed_titles.site"),
    ("feed_titles: {all: '{}'}", "feed_titles.all"),
    ("feeds: [{name: x, max_items: 100000000000000000000}]", "feeds[0] (x).max_items"),
    ("feeds: [{name: x, newer_than_days: .nan}]", "feeds[0] (x).newer_than_days"),
    ("feeds: [{name: x, newer_than_days: 1.0e+8}]", "feeds[0] (x).newer_than_days"),
    ("feeds: [{name: x, max_age_days: .inf}]", "feeds[0] (x).max_age_days"),
    ("catalog: 'postgresql://[::1/feeds'", "catalog"),
]


@pytest.mark.parametrize(("line", "key"), SEEN)
def test_a_value_that_would_crash_later_is_refused_with_a_sentence(
    tmp_path: Path, line: str, key: str
) -> None:
    config = tmp_path / "c.yaml"
    base = yaml.safe_dump(folders(tmp_path))
    config.write_text(base + line + "\n", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "aggregator", "build", "--config", str(config)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert f"  - {key}: " in done.stderr, done.stderr
    assert not (tmp_path / "out").exists()  # refused before anything was written


def test_the_limits_themselves_are_accepted(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    values = {
        **folders(tmp_path),
        "max_items": 100_000,
        "lock_wait_seconds": 86_400,
        "base_url": "http://[::1]:8000/feeds/",
        "daemon": {"reconcile_seconds": 86_400},
        "feed_titles": {"topic": "{{{name}}} and {{braces}}"},
        "feeds": [{"name": "x", "newer_than_days": 36_500, "topics_any": ["AI"]}],
    }
    config.write_text(yaml.safe_dump(values), encoding="utf-8")
    assert main(["build", "--config", str(config)]) == 0
    feed = (tmp_path / "out/topics/ai.rss.xml").read_text(encoding="utf-8")
    assert "{AI} and {braces}" in feed
    assert "http://[::1]:8000/feeds/topics/ai.rss.xml" in feed


# Every key of the file but the folders (an arbitrary path could be `/`, and the overlap
# rules are tests/test_private_folders.py's) and workers (a pool of 256 is slow, not wrong).
KEYS = [
    "base_url",
    "max_items",
    "max_file_bytes",
    "max_excerpt_chars",
    "patterns",
    "language",
    "lock_wait_seconds",
    "follow_external_links",
    "catalog",
    "node",
    "embargo",
    "formats",
    "feeds",
    "builtin_feeds",
    "builtin_feeds.all",
    "websub",
    "websub.hubs",
    "logging",
    "logging.level",
    "logging.format",
    "daemon",
    "daemon.poll",
    "daemon.debounce_seconds",
    "daemon.debounce_max_seconds",
    "daemon.reconcile_seconds",
    "daemon.poll_seconds",
    "serve.bind",
    "serve.port",
    "serve.max_age",
    "serve.gzip_sidecars",
    "feed_titles",
    "feed_titles.site",
    "feed_titles.topic",
    "feed_titles.provider_description",
    "feeds[0].name",
    "feeds[0].title",
    "feeds[0].max_items",
    "feeds[0].newer_than_days",
    "feeds[0].topics_any",
    "feeds[0].formats",
]

_TRICKY = st.sampled_from(
    [
        "http://[::1/",
        "http://[::1]:8000/",
        "https://feeds.example.org:65536/",
        "https://feeds.example.org/#x",
        "{name!r:>99999999}",
        "{name:{name}}",
        "{name[0]}",
        "{{name}}",
        "{",
        "}",
        "\x00",
        "a\nb",
        "postgresql://[::1/x",
        "*.txt",
        "rss",
    ]
)
_NUMBERS = st.one_of(
    st.integers(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
)
_SCALARS = st.one_of(st.none(), st.booleans(), _NUMBERS, st.text(max_size=40), _TRICKY)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)


def _place(config: dict[str, Any], key: str, value: Any) -> None:
    if key.startswith("feeds[0]."):
        config["feeds"] = [{"name": "custom", "topics_any": ["AI"], key[9:]: value}]
    elif "." in key:
        section, inner = key.split(".")
        config[section] = {inner: value}
    else:
        config[key] = value


@given(key=st.sampled_from(KEYS), value=_VALUES)
def test_any_value_at_any_key_is_built_or_refused_never_a_traceback(key: str, value: Any) -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        config = folders(root)
        _place(config, key, value)
        path = root / "c.yaml"
        path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
        err = io.StringIO()
        started = time.monotonic()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = main(["build", "--config", str(path)])
        # A generous bound on a hang ({name:>99999999} took minutes), not a speed figure.
        assert time.monotonic() - started < 60, (key, value)
        assert code in (0, 2), (key, value, err.getvalue())
        if code == 2:
            assert "invalid configuration" in err.getvalue(), err.getvalue()
