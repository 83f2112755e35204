"""`aggregator run` as the service deploy/aggregator.service runs: the sd_notify messages on
a real datagram socket, the unit checked by `systemd-analyze verify`, every feature under
the unit's `RestrictAddressFamilies=` (a real seccomp filter, tests/sandbox.py), SIGHUP
reloading the config, and SIGTERM / SIGINT stopping cleanly at any moment of a big build.

Every daemon here is a real `python -m aggregator run` subprocess with a config file.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from corpus import write_corpus
from hubs import recording_hub
from pgserver import PostgresServer
from sandbox import supported as sandbox_supported
from services import service_missing
from waiting import TIMEOUT, wait_for

REPO = Path(__file__).resolve().parents[1]
UNIT = REPO / "deploy" / "aggregator.service"
BASE = "http://127.0.0.1:8000/"


def write_config(root: Path, *, title: str = "First title", **extra: str) -> Path:
    lines = [
        f"input: {extra.pop('input', str(root / 'in'))}",
        f"output: {root / 'out'}",
        f"state: {root / 'state'}",
        f"base_url: {BASE}",
        "workers: 2",
        "feed_titles:",
        f"  all: {title}",
        "daemon:",
        "  debounce_seconds: 0.05",
        "  debounce_max_seconds: 0.5",
        "  reconcile_seconds: 3600",
        *(f"{key}: {value}" for key, value in extra.items()),
    ]
    config = root / "aggregator.yaml"
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return config


class Running:
    """A daemon subprocess; its stderr goes to a file the test reads as it grows."""

    def __init__(
        self,
        root: Path,
        *args: str,
        env: dict[str, str] | None = None,
        prefix: tuple[str, ...] = (),
        new_group: bool = False,
    ) -> None:
        self.log = root / f"stderr-{time.monotonic_ns()}.log"
        self._stderr = self.log.open("w")
        self.process = subprocess.Popen(
            [*prefix, sys.executable, "-m", "aggregator", "run",
             "--config", str(root / "aggregator.yaml"), "--log-format", "json", *args],
            cwd=root, stdout=subprocess.DEVNULL, stderr=self._stderr,
            env={**os.environ, **(env or {})}, start_new_session=new_group,
        )  # fmt: skip

    def text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def records(self) -> list[dict[str, object]]:
        """Every stderr line as JSON (fails on a line that is not)."""
        lines = [line for line in self.text().splitlines() if line.strip()]
        out = []
        for line in lines:
            try:
                out.append(json.loads(line))
            except ValueError:
                pytest.fail(f"a stderr line is not JSON: {line!r}\n{self.text()}")
        return out

    def logged(self, needle: str) -> bool:
        return needle in self.text()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = TIMEOUT) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        finally:
            self.close()

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._stderr.close()


@contextmanager
def running(root: Path, *args: str, **options: object) -> Iterator[Running]:
    daemon = Running(root, *args, **options)  # type: ignore[arg-type]
    try:
        yield daemon
    finally:
        daemon.close()


@pytest.fixture
def site(tmp_path: Path) -> Path:
    write_corpus(tmp_path / "in", 40)
    write_config(tmp_path)
    return tmp_path


def feed_title(root: Path) -> str:
    path = root / "out" / "all.rss.xml"
    if not path.exists():
        return ""
    found = re.search(r"<title>([^<]*)</title>", path.read_text(encoding="utf-8"))
    return found.group(1) if found else ""


# --- sd_notify --------------------------------------------------------------------------


class NotifySocket:
    """The datagram socket systemd would listen on; `messages` so far, each a dict."""

    def __init__(self, address: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.sock.setblocking(False)
        self.received: list[dict[str, str]] = []

    def messages(self) -> list[dict[str, str]]:
        while True:
            try:
                data = self.sock.recv(4096)
            except BlockingIOError:
                return self.received
            fields = dict(line.split("=", 1) for line in data.decode().splitlines())
            self.received.append(fields)

    def count(self, key: str) -> int:
        return sum(key in m for m in self.messages())


@pytest.mark.parametrize("abstract", [False, True], ids=["path", "abstract"])
def test_notify_ready_after_the_first_build_watchdog_reload_and_stopping(
    site: Path, abstract: bool
) -> None:
    name = f"aggregator-test-{os.getpid()}-{time.monotonic_ns()}"
    address = "\0" + name if abstract else str(site / "notify.sock")
    notify = NotifySocket(address)
    try:
        _notify_run(site, notify, abstract, name, address)
    finally:
        notify.sock.close()


def _notify_run(site: Path, notify: NotifySocket, abstract: bool, name: str, address: str) -> None:
    env = {
        "NOTIFY_SOCKET": "@" + name if abstract else address,
        "WATCHDOG_USEC": "400000",  # a beat every 0.2 s
    }
    with running(site, env=env) as daemon:
        wait_for(lambda: notify.count("READY") == 1, "READY=1")
        # Ready means built: the feeds are on disk when READY=1 arrives.
        assert (site / "out" / "all.rss.xml").exists()
        assert feed_title(site) == "First title"
        beats = notify.count("WATCHDOG")
        wait_for(lambda: notify.count("WATCHDOG") >= beats + 3, "three watchdog beats")
        assert all(m.get("WATCHDOG") == "1" for m in notify.messages() if "WATCHDOG" in m)
        daemon.process.send_signal(signal.SIGHUP)
        wait_for(lambda: notify.count("READY") == 2, "READY=1 after the reload")
        reloading = [m for m in notify.messages() if m.get("RELOADING") == "1"]
        assert len(reloading) == 1
        # systemd ≥ 253 wants the reload's CLOCK_MONOTONIC time with it.
        sent = int(reloading[0]["MONOTONIC_USEC"])
        assert 0 < sent <= time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        order = [k for m in notify.messages() for k in m if k in ("READY", "RELOADING")]
        assert order == ["READY", "RELOADING", "READY"]
        assert daemon.stop() == 0
        assert notify.count("STOPPING") == 1
        daemon.records()  # every line JSON


def test_outside_systemd_nothing_is_sent_and_the_daemon_runs(site: Path) -> None:
    with running(site, env={"NOTIFY_SOCKET": ""}) as daemon:
        wait_for((site / "out" / "all.rss.xml").exists, "the first build")
        assert daemon.stop() == 0


# --- the unit -----------------------------------------------------------------------------


def unit_values(key: str) -> list[str]:
    return [
        line.split("=", 1)[1].strip()
        for line in UNIT.read_text(encoding="utf-8").splitlines()
        if line.startswith(f"{key}=")
    ]


def test_the_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        service_missing("systemd-analyze not installed: apt-get install systemd")
    # The unit as installed, its ExecStart pointing at this checkout's aggregator.
    executable = Path(sys.executable).parent / "aggregator"
    text = UNIT.read_text(encoding="utf-8").replace(
        "/opt/aggregator/.venv/bin/aggregator", str(executable)
    )
    copy = tmp_path / "aggregator.service"
    copy.write_text(text, encoding="utf-8")
    result = subprocess.run(
        [analyze, "verify", str(copy)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout + result.stderr == ""  # a warning is a problem too
    assert unit_values("Type") == ["notify"]
    assert unit_values("KillMode") == ["mixed"]
    assert unit_values("ExecReload") == ["/bin/kill -HUP $MAINPID"]
    assert unit_values("WatchdogSec")


def unit_families() -> str:
    (families,) = unit_values("RestrictAddressFamilies")
    return ",".join(families.split())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def sandboxed(families: str) -> tuple[str, ...]:
    if not sandbox_supported():
        pytest.skip("the seccomp sandbox is written for Linux on x86-64 and aarch64")
    return (sys.executable, str(REPO / "tests" / "sandbox.py"), families, "--")


def get(url: str) -> int:
    with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
        return int(response.status)


@pytest.mark.parametrize("over", ["tcp", "unix-socket"])
def test_every_feature_works_under_the_units_address_families(
    site: Path, postgres_server: PostgresServer, over: str
) -> None:
    """Serving (IPv4 and IPv6), WebSub pings and a PostgreSQL catalog, with socket(2)
    restricted to exactly the families the unit lists."""
    url = postgres_server.create_database()
    if over == "unix-socket":
        name = url.rsplit("/", 1)[1]
        url = f"postgresql://aggregator@/{name}?host={postgres_server.folder}&port={postgres_server.port}"
    bind = "127.0.0.1" if over == "tcp" else "::1"
    port = free_port()
    with recording_hub() as hub:
        write_config(site, catalog=f'"{url}"', websub=f"{{hubs: [{hub.url}]}}")
        prefix = sandboxed(unit_families())
        with running(site, "--serve", "--bind", bind, "--port", str(port), prefix=prefix) as daemon:
            host = f"[{bind}]" if ":" in bind else bind
            wait_for(
                lambda: daemon.logged("serving") or daemon.process.poll() is not None,
                "the server to listen",
            )
            assert daemon.process.poll() is None, daemon.text()
            wait_for(lambda: hub.pings, "a WebSub ping")
            assert get(f"http://{host}:{port}/all.rss.xml") == 200
            assert daemon.stop() == 0
    assert "Traceback" not in daemon.text()
    assert "not supported" not in daemon.text(), daemon.text()


def test_under_the_old_unix_only_sandbox_serve_fails_loudly(site: Path) -> None:
    """The filter is real, and a server that cannot listen says so and exits 1, never
    logging that it serves."""
    with running(site, "--serve", "--port", str(free_port()), prefix=sandboxed("AF_UNIX")) as d:
        assert d.process.wait(TIMEOUT) == 1
        text = d.text()
    assert "cannot serve on 127.0.0.1" in text, text
    assert "Address family not supported" in text, text
    assert "RestrictAddressFamilies" in text
    assert "serving" not in text
    assert "Traceback" not in text


# --- SIGHUP -------------------------------------------------------------------------------


def test_sighup_reloads_the_config_and_rerenders_what_it_changes(site: Path) -> None:
    with running(site) as daemon:
        wait_for(lambda: feed_title(site) == "First title", "the first build")
        write_config(site, title="Second title")
        daemon.process.send_signal(signal.SIGHUP)
        wait_for(lambda: feed_title(site) == "Second title", "the new title in the feed")
        assert daemon.logged('"event": "reloaded"')
        assert daemon.stop() == 0
    assert "restart" not in daemon.text()


def test_a_bad_config_on_sighup_is_logged_and_the_old_one_kept(site: Path) -> None:
    with running(site) as daemon:
        wait_for(lambda: feed_title(site) == "First title", "the first build")
        write_config(site, title="Bad", max_items="-3", formats="[rss, gopher]")
        daemon.process.send_signal(signal.SIGHUP)
        wait_for(lambda: daemon.logged("reload-failed"), "the reload to fail")
        (failed,) = [r for r in daemon.records() if r.get("event") == "reload-failed"]
        problems = failed["problems"]
        assert isinstance(problems, list), problems
        assert len(problems) >= 2, problems  # every problem, not the first
        assert any("max_items" in p for p in problems)
        assert any("gopher" in p for p in problems)
        assert "keeping the config in use" in str(failed["message"])
        # Still running, on the old config: new articles are published under the old title.
        before = _items(site)
        write_corpus(site / "in", 10, start=40)
        wait_for(lambda: daemon.process.poll() is not None or _items(site) > before, "new files")
        assert daemon.process.poll() is None
        assert feed_title(site) == "First title"
        assert daemon.stop() == 0


def _items(root: Path) -> int:
    data = json.loads((root / "out" / "all.json").read_text(encoding="utf-8"))
    return len(data["items"])


def test_a_folder_change_on_sighup_is_named_and_waits_for_a_restart(site: Path) -> None:
    (site / "other").mkdir()
    with running(site) as daemon:
        wait_for(lambda: feed_title(site) == "First title", "the first build")
        before = _items(site)
        write_config(site, title="Second title", input=str(site / "other"))
        daemon.process.send_signal(signal.SIGHUP)
        wait_for(lambda: daemon.logged("restart-needed"), "the restart warning")
        (warning,) = [r for r in daemon.records() if r.get("event") == "restart-needed"]
        assert warning["settings"] == ["input"]
        assert warning["level"] == "warning"
        # The rest of the new config applies; the input stays the running one.
        wait_for(lambda: feed_title(site) == "Second title", "the new title")
        assert (site / "out" / "all.rss.xml").exists()
        assert _items(site) == before
        assert daemon.stop() == 0


# --- stopping at any moment ---------------------------------------------------------------


@pytest.fixture(scope="module")
def big_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("big")
    write_corpus(folder / "in", 3000)
    return folder


@pytest.mark.faults
def test_sigterm_or_sigint_at_any_moment_of_a_big_first_build_stops_cleanly(
    big_site: Path, tmp_path: Path
) -> None:
    shuffle = random.Random(16)
    runs = 14
    for run in range(runs):
        root = tmp_path / f"run{run}"
        root.mkdir()
        os.symlink(big_site / "in", root / "in")
        write_config(root)
        sig = (signal.SIGTERM, signal.SIGINT)[run % 2]
        to_group = run % 4 >= 2
        with running(root, new_group=True) as daemon:
            wait_for(lambda: daemon.logged('"event": "watching"'), "the daemon to start")
            time.sleep(shuffle.uniform(0.0, 3.0))  # a random moment of the first build
            sent = time.monotonic()
            if to_group:
                os.killpg(daemon.process.pid, sig)
            else:
                daemon.process.send_signal(sig)
            code = daemon.process.wait(TIMEOUT)
            took = time.monotonic() - sent
            label = f"run {run}: {sig.name} to the {'group' if to_group else 'pid'}"
            assert code == 0, (label, daemon.text())
            assert took < 5.0, (label, took)  # a generous bound on a hang, not a timing
            text = daemon.text()
            assert "Traceback" not in text, (label, text)
            assert "BrokenProcessPool" not in text, (label, text)
            assert '"level": "error"' not in text, (label, text)
            daemon.records()  # every line JSON, workers' included
        # Whatever was written is whole, and the next build converges.
        again = subprocess.run(
            [sys.executable, "-m", "aggregator", "build", "--config",
             str(root / "aggregator.yaml")],
            cwd=root, capture_output=True, text=True, check=False, timeout=300,
        )  # fmt: skip
        assert again.returncode == 0, again.stderr
        assert (
            [p.name for p in (root / "out").rglob(".*")] == [] if (root / "out").exists() else True
        )
        assert _items(root) == 50  # max_items: the feed is whole


def _below(pid: int) -> tuple[list[int], list[int]]:
    """The helpers of daemon `pid`: (the pool's workers, the forkserver's children; the
    resource trackers)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                stat = (entry / "stat").read_text()
                parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    servers, trackers = [], []
    for child in (p for p, parent in parents.items() if parent == pid):
        with contextlib.suppress(OSError):
            command = Path(f"/proc/{child}/cmdline").read_bytes()
            if b"resource_tracker" in command:
                trackers.append(child)
            elif b"forkserver" in command:
                servers.append(child)
    return [p for p, parent in parents.items() if parent in servers], trackers


@pytest.mark.faults
def test_a_stop_that_abandons_a_stuck_build_still_writes_only_json(
    big_site: Path, tmp_path: Path
) -> None:
    # The build in flight cannot finish (its workers are stopped): the stop abandons it
    # after its 4 s and leaves with os._exit, which skips multiprocessing's exit handler;
    # the resource tracker then warned of the pool's leaked semaphores in a bare line.
    os.symlink(big_site / "in", tmp_path / "in")
    write_config(tmp_path)
    found: list[tuple[list[int], list[int]]] = []
    with running(tmp_path) as daemon:
        wait_for(lambda: daemon.logged('"event": "watching"'), "the daemon to start")

        def pool_started() -> bool:
            workers, trackers = _below(daemon.process.pid)
            found[:] = [(workers, trackers)]
            return bool(workers and trackers)

        wait_for(pool_started, "the first build's workers")
        workers, trackers = found[0]
        try:
            for worker in workers:
                os.kill(worker, signal.SIGSTOP)
            daemon.process.send_signal(signal.SIGTERM)
            assert daemon.process.wait(TIMEOUT) == 0, daemon.text()
        finally:
            for worker in workers:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker, signal.SIGKILL)
        # The tracker speaks, if at all, when the last holder of its pipe is gone; then it
        # ends.
        wait_for(lambda: not any(Path(f"/proc/{p}").exists() for p in trackers), "the tracker")
        assert daemon.logged("abandoning it"), daemon.text()
        daemon.records()  # every line JSON
