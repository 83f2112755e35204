"""No configuration publishes private data: the input, output and state folders may not overlap
in a way that one hands out another (refused by the real CLI, exit 2, naming both paths), and
the server, given such settings anyway, never answers for the state, the input or their files.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from articlefiles import SECRET, write_article
from building import folder_settings
from httpcheck import Client, build

from aggregator.config import Settings
from aggregator.serve import FeedServer

ROOT = Path(__file__).resolve().parents[1]


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aggregator", *args],
        cwd=cwd,
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def config(tmp_path: Path, input: str, output: str, state: str) -> Path:
    (tmp_path / "in").mkdir(exist_ok=True)
    write_article(tmp_path / "in", "a.txt", "https://a.example.com/")
    write_article(tmp_path / "in", "draft.txt", "https://draft.example.com/", published=False)
    path = tmp_path / "aggregator.yaml"
    path.write_text(f"input: {input}\noutput: {output}\nstate: {state}\n", encoding="utf-8")
    return path


def in_state(tmp_path: Path) -> None:
    (tmp_path / "st").mkdir()
    (tmp_path / "st/in").symlink_to(tmp_path / "in")


def output_link_to_state(tmp_path: Path) -> None:
    (tmp_path / "st").mkdir()
    (tmp_path / "feeds").symlink_to(tmp_path / "st")


def input_link_in_output(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out/articles").symlink_to(tmp_path / "in")


# (input, output, state, what to make first, the two keys the refusal names)
Case = tuple[str, str, str, Callable[[Path], None] | None, tuple[str, str]]
REFUSED: list[Case] = [
    ("in", "out", "out", None, ("state", "output")),
    ("in", "out", "out/state", None, ("state", "output")),
    ("in", "out", "out/.aggregator", None, ("state", "output")),
    ("out/articles", "out", "st", None, ("input", "output")),
    ("in", "in", "st", None, ("input", "output")),
    ("in", "out", "in", None, ("state", "input")),
    ("in", "feeds", "st", output_link_to_state, ("state", "output")),
    ("out/articles", "out", "st", input_link_in_output, ("input", "output")),
    ("in", "out/../out", "./out/x/..", None, ("state", "output")),
]


@pytest.mark.parametrize("case", REFUSED)
def test_an_overlap_that_could_publish_private_files_is_refused(tmp_path: Path, case: Case) -> None:
    input, output, state, setup, keys = case
    (tmp_path / "in").mkdir()
    if setup is not None:
        setup(tmp_path)
    if input.startswith("out/") and not (tmp_path / input).exists():
        (tmp_path / input).mkdir(parents=True)
        write_article(tmp_path / input, "draft.txt", "https://d.example.com/", published=False)
    path = config(tmp_path, input, output, state)
    for command in (["build"], ["serve", "--port", "0"], ["run", "--serve", "--port", "0"]):
        done = cli(*command, "--config", str(path), cwd=tmp_path)
        assert done.returncode == 2, (command, done.stderr)
        assert "Traceback" not in done.stderr
        first, second = keys
        assert f"{first}: " in done.stderr, done.stderr
        assert f" the {second} folder " in done.stderr, done.stderr
        # Both paths, absolute (the config's are relative to its folder, here tmp_path).
        named = (input if first == "input" else state, output if second == "output" else input)
        for given in named:
            assert os.path.abspath(tmp_path / given) in done.stderr, done.stderr
    # Nothing was written: no catalog beside the articles or among the feeds.
    assert not list(tmp_path.rglob("catalog.sqlite3"))


@pytest.mark.parametrize(
    ("input", "output", "state", "setup"),
    [
        ("in", "in/feeds", "in/.state", None),  # the scan and the watcher skip both
        ("in", "st/feeds", "st", None),  # nothing serves the state
        ("st/in", "out", "st", in_state),  # the input inside the state: neither is served
    ],
)
def test_overlaps_that_expose_nothing_are_accepted(
    tmp_path: Path, input: str, output: str, state: str, setup: Callable[[Path], None] | None
) -> None:
    if setup is not None:
        setup(tmp_path)
    path = config(tmp_path, input, output, state)
    done = cli("build", "--config", str(path), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    feed = (tmp_path / output / "all.rss.xml").read_text(encoding="utf-8")
    assert "https://a.example.com/" in feed
    assert "draft.example.com" not in feed
    assert SECRET not in feed


def test_the_server_never_enters_the_input_whatever_the_settings(tmp_path: Path) -> None:
    settings = folder_settings(tmp_path, port=0)
    write_article(settings.input, "a.txt", "https://a.example.com/")
    build(settings)
    # The input moved inside the output, under a name that nothing else hides.
    articles = settings.output / "articles"
    settings.input.rename(articles)
    write_article(articles, "draft.txt", "https://draft.example.com/", published=False)
    with FeedServer(replace(settings, input=articles)) as server:
        client = Client(server.port)
        assert client.get("/all.rss.xml")[0] == 200
        for path in ("/articles/a.txt", "/articles/draft.txt", "/articles/"):
            status, _, body = client.get(path)
            assert status == 404, path
            assert SECRET.encode() not in body
        client.close()


def test_the_server_never_enters_the_state_even_moved_in_after_the_start(
    tmp_path: Path,
) -> None:
    settings = folder_settings(tmp_path, port=0)
    write_article(settings.input, "a.txt", "https://a.example.com/")
    build(settings)
    (settings.state / "notes.txt").write_text(SECRET)
    with FeedServer(settings) as server:
        client = Client(server.port)
        # After the start: the state moves into the output, its old path a link to it.
        settings.state.rename(settings.output / "st")
        settings.state.symlink_to(settings.output / "st")
        assert client.get("/all.rss.xml")[0] == 200
        for path in ("/st/notes.txt", "/st/catalog.sqlite3", "/st/lock", "/st/"):
            status, _, body = client.get(path)
            assert status == 404, path
            assert SECRET.encode() not in body
        client.close()


def test_the_server_never_serves_the_state_files_by_name(tmp_path: Path) -> None:
    settings = folder_settings(tmp_path, port=0)
    write_article(settings.input, "a.txt", "https://a.example.com/")
    build(settings)
    # The state equal to the output, as an old config had it: its files are in the output.
    for name in ("catalog.sqlite3", "catalog.sqlite3-wal", "lock"):
        (settings.output / name).write_bytes((settings.state / "catalog.sqlite3").read_bytes())
    same: Settings = replace(settings, state=settings.output)
    with FeedServer(same) as server:
        client = Client(server.port)
        for path in ("/catalog.sqlite3", "/catalog.sqlite3-wal", "/lock", "/all.rss.xml"):
            assert client.get(path)[0] == 404, path
        client.close()
    # A state elsewhere: the feeds are served, the state's file names still never.
    with FeedServer(settings) as server:
        client = Client(server.port)
        assert client.get("/all.rss.xml")[0] == 200
        for path in ("/catalog.sqlite3", "/catalog.sqlite3-wal", "/lock"):
            assert client.get(path)[0] == 404, path
        client.close()
