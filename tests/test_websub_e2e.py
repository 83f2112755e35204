"""End to end with a real WebSub hub: a file dropped into the input folder reaches a
subscriber as the new feed bytes, signed when the subscription has a secret.

    subscriber (tests/subscriber.py) --subscribe--> flask-websub hub (tests/websub_hub.py)
    file drop --> `aggregator run --serve` (a real process): build, rename, ping the hub
    hub --GET topic--> aggregator's server (it needs the Link: rel=hub / rel=self headers)
    hub --POST the bytes, X-Hub-Signature--> subscriber

The hub and aggregator are subprocesses; everything listens on 127.0.0.1. Without
flask-websub (the dev extra) the test is skipped locally and fails when CI=true.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import feedparser
import pytest
from articlefiles import write_article
from jsonfeedcheck import check_json_feed
from services import service_missing
from subscriber import Subscriber, running_subscriber, signature_ok, subscribe
from waiting import wait_for

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
SECRET = "a subscriber's secret"
NEW_URL = "https://news.example.com/pushed-within-the-second"


def _missing() -> str | None:
    for module in ("flask_websub", "flask", "celery"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed (pip install -e '.[dev]')"
    return None


@pytest.fixture(autouse=True)
def _needs_the_hub() -> None:
    missing = _missing()
    if missing is not None:
        service_missing(f"the WebSub end-to-end test cannot run: {missing}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_hub(state: Path) -> tuple[subprocess.Popen[str], str]:
    """flask-websub's hub in a process of its own; (process, hub URL)."""
    process = subprocess.Popen(
        [sys.executable, str(TESTS / "websub_hub.py"), str(state)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()  # the hub prints its URL once it listens
    if not line.startswith("listening "):
        process.kill()
        raise AssertionError(f"the hub did not start: {line}{process.stdout.read()}")
    return process, line.split()[1]


def served(url: str) -> tuple[int, dict[str, str], bytes] | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            headers = {k.lower(): v for k, v in response.headers.items()}
            return int(response.status), headers, response.read()
    except OSError:
        return None


@pytest.fixture
def pushed(tmp_path: Path) -> Iterator[tuple[Path, str, str, Subscriber]]:
    """A hub, `aggregator run --serve` configured with it, and a subscriber:
    (output folder, base URL, hub URL, subscriber). Stopped, and checked, on exit."""
    shutil.copytree(REPO / "seeds", tmp_path / "in")
    hub_process, hub = start_hub(tmp_path)
    port = free_port()
    base = f"http://127.0.0.1:{port}/"
    config = tmp_path / "aggregator.yaml"
    config.write_text(
        f"input: {tmp_path / 'in'}\noutput: {tmp_path / 'out'}\nstate: {tmp_path / 'state'}\n"
        f"base_url: {base}\nworkers: 1\nwebsub:\n  hubs: [{hub}]\n"
        "daemon: {debounce_seconds: 0.05, debounce_max_seconds: 0.5}\n",
        encoding="utf-8",
    )
    log = (tmp_path / "aggregator.log").open("w")
    daemon = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "aggregator",
            "run",
            "--serve",
            "--config",
            str(config),
            "--port",
            str(port),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
    )
    try:
        wait_for(
            lambda: daemon.poll() is not None or served(base + "all.atom.xml") is not None,
            "aggregator's first build",
        )
        assert daemon.poll() is None, "aggregator run --serve exited (its log is below)"
        with running_subscriber() as subscriber:
            yield tmp_path / "out", base, hub, subscriber
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=10) == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
        hub_process.kill()
        hub_process.wait()
        log.close()
        if hub_process.stdout is not None:
            hub_process.stdout.close()
        print((tmp_path / "aggregator.log").read_text(encoding="utf-8")[-4000:])


def test_a_dropped_file_reaches_subscribers_as_the_new_signed_bytes(
    pushed: tuple[Path, str, str, Subscriber],
) -> None:
    output, base, hub, subscriber = pushed
    atom_topic, rss_topic, json_topic = (
        base + "all.atom.xml",
        base + "topics/ai.rss.xml",
        base + "topics/ai.json",
    )
    # What the hub insists on: the server names the hub and the topic in Link headers.
    answer = served(atom_topic)
    assert answer is not None
    link = answer[1]["link"]
    assert f'<{hub}>; rel="hub"' in link
    assert f'<{atom_topic}>; rel="self"' in link

    assert subscribe(hub, atom_topic, subscriber.callback("atom"), secret=SECRET) == 202
    assert subscribe(hub, rss_topic, subscriber.callback("rss")) == 202
    assert subscribe(hub, json_topic, subscriber.callback("json")) == 202
    assert sorted(subscriber.verified()) == [
        ("/callback/atom", "subscribe", atom_topic),
        ("/callback/json", "subscribe", json_topic),
        ("/callback/rss", "subscribe", rss_topic),
    ]

    write_article(
        output.parent / "in", "pushed.txt", NEW_URL, title="Pushed", topics=["AI"],
        date="2025-01-01T00:00:00Z",  # newest, and past: a future date waits (embargo)
    )  # fmt: skip

    def delivered(name: str) -> bool:
        return any(NEW_URL.encode() in d.body for d in subscriber.deliveries(name))

    for name in ("atom", "rss", "json"):
        wait_for(lambda n=name: delivered(n), f"the {name} delivery")  # type: ignore[misc]

    (atom,) = [d for d in subscriber.deliveries("atom") if NEW_URL.encode() in d.body]
    # The very bytes published. (flask-websub forwards every header of its fetch, even the
    # Content-Encoding: gzip our server used for it, with the decoded body: a subscriber
    # must take the body as it comes.)
    assert atom.body == (output / "all.atom.xml").read_bytes()
    assert atom.headers["content-type"].startswith("application/atom+xml")
    assert signature_ok(SECRET, atom)
    assert not signature_ok("another secret", atom)
    assert atom.headers["x-hub-signature"].startswith("sha512=")
    entries = feedparser.parse(atom.body).entries
    assert entries[0].link == NEW_URL

    (rss,) = [d for d in subscriber.deliveries("rss") if NEW_URL.encode() in d.body]
    assert rss.body == (output / "topics/ai.rss.xml").read_bytes()
    assert "x-hub-signature" not in rss.headers  # no secret, no signature
    assert feedparser.parse(rss.body).entries[0].link == NEW_URL

    (js,) = [d for d in subscriber.deliveries("json") if NEW_URL.encode() in d.body]
    assert js.headers["content-type"].startswith("application/feed+json")
    feed = check_json_feed(js.body, url=json_topic)
    assert feed["items"][0]["url"] == NEW_URL
    assert feed["hubs"] == [{"type": "WebSub", "url": hub}]
    assert json.loads((output / "topics/ai.json").read_bytes()) == feed
