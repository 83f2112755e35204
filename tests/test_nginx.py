"""deploy/nginx.conf, run by Debian's nginx (nginx-light) on 127.0.0.1 against a built folder.

Only `listen` and `root` are substituted; everything else is the shipped file. Skipped where
nginx is not installed, failing under CI=true (.ci/run installs it).
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from building import folder_settings
from httpcheck import CONTENT_TYPES, Client, a_then_b, build
from services import service_missing
from waiting import TIMEOUT, wait_for

from aggregator.config import Settings

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "deploy/nginx.conf"
NGINX = shutil.which("nginx") or next(
    (p for p in ("/usr/sbin/nginx", "/sbin/nginx") if os.access(p, os.X_OK)), None
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def site_config(root: Path, port: int) -> str:
    text = SITE.read_text(encoding="utf-8")
    text, listens = re.subn(r"(?m)^\s*listen\s+80;\n", f"    listen 127.0.0.1:{port};\n", text)
    text, ipv6 = re.subn(r"(?m)^\s*listen\s+\[::\]:80;\n", "", text)
    text, roots = re.subn(r"(?m)^(\s*root\s+)/srv/aggregator/feeds;", rf"\g<1>{root};", text)
    assert (listens, ipv6, roots) == (1, 1, 1), "deploy/nginx.conf: listen/root lines moved"
    return text


class Nginx:
    """nginx in the foreground with a main config of its own around the shipped site file."""

    def __init__(self, work: Path, root: Path) -> None:
        assert NGINX is not None
        work.mkdir()
        self.port = free_port()
        (work / "site.conf").write_text(site_config(root, self.port), encoding="utf-8")
        # As root nginx would run its workers as nobody, who cannot enter pytest's 0700 folders.
        user = "user root;\n" if os.geteuid() == 0 else ""
        temps = "".join(
            f"    {kind}_temp_path {work}/{kind};\n"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        (work / "nginx.conf").write_text(
            f"{user}worker_processes 1;\npid {work}/nginx.pid;\nerror_log {work}/error.log;\n"
            f"events {{}}\nhttp {{\n    access_log off;\n{temps}"
            f"    include {work}/site.conf;\n}}\n",
            encoding="utf-8",
        )
        self.error_log = work / "error.log"
        command = [NGINX, "-p", str(work), "-c", str(work / "nginx.conf"), "-g", "daemon off;"]
        check = subprocess.run(
            [*command, "-t"], capture_output=True, text=True, check=False, timeout=60
        )
        assert check.returncode == 0, check.stderr
        self.proc = subprocess.Popen(command, stderr=subprocess.PIPE)

        def listening() -> bool:
            assert self.proc.poll() is None, self.proc.communicate()[1]
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            except OSError:
                return False
            return True

        wait_for(listening, "nginx to listen")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=TIMEOUT)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            assert self.proc.stderr is not None
            self.proc.stderr.close()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    if NGINX is None:
        service_missing("nginx is not installed (apt-get install -y nginx-light; .ci/run does)")
    return folder_settings(tmp_path, seeds=True, base_url="http://localhost:8000/")


@pytest.fixture
def nginx(settings: Settings, tmp_path: Path) -> Iterator[Nginx]:
    settings.output.mkdir()
    server = Nginx(tmp_path / "nginx", settings.output)
    yield server
    server.stop()


def test_types_cache_control_and_index(settings: Settings, nginx: Nginx) -> None:
    build(settings)
    (settings.output / "all.json").write_bytes(b'{"version": "https://jsonfeed.org/version/1.1"}')
    client = Client(nginx.port)
    for path, kind in CONTENT_TYPES.items():
        status, headers, _ = client.get(path)
        assert status == 200, path
        assert headers["content-type"] == kind, path
        assert headers["cache-control"] == "public, max-age=60"
    assert client.get("/")[2] == (settings.output / "index.html").read_bytes()
    client.close()


def test_conditional_gets_get_304(settings: Settings, nginx: Nginx) -> None:
    build(settings)
    client = Client(nginx.port)
    _, headers, body = client.get("/all.rss.xml")
    assert body == (settings.output / "all.rss.xml").read_bytes()
    status, _, empty = client.get("/all.rss.xml", If_None_Match=headers["etag"])
    assert (status, empty) == (304, b"")
    assert client.get("/all.rss.xml", If_Modified_Since=headers["last-modified"])[0] == 304
    assert client.get("/all.rss.xml", If_None_Match='"other"')[0] == 200
    client.close()


def test_gzip_comes_from_the_sidecar(settings: Settings, nginx: Nginx) -> None:
    build(settings)
    client = Client(nginx.port)
    _, plain, body = client.get("/all.atom.xml")
    status, zipped, data = client.get("/all.atom.xml", Accept_Encoding="gzip")
    assert status == 200
    assert zipped["content-encoding"] == "gzip"
    assert zipped["content-type"] == "application/atom+xml"
    assert "Accept-Encoding" in zipped["vary"]
    assert data == (settings.output / "all.atom.xml.gz").read_bytes()
    assert gzip.decompress(data) == body
    assert zipped["etag"] != plain["etag"]
    client.close()


def test_hidden_files_folders_and_links_are_not_served(
    settings: Settings, nginx: Nginx, tmp_path: Path
) -> None:
    build(settings)
    out = settings.output
    (tmp_path / "secret.txt").write_text("secret")
    (out / "leak.xml").symlink_to(tmp_path / "secret.txt")
    (out / ".all.rss.xml.x1y2.tmp").write_text("half a feed")
    client = Client(nginx.port)
    refused = {
        "/leak.xml": 404,  # disable_symlinks: try_files finds no file
        "/.all.rss.xml.x1y2.tmp": 404,
        "/topics/": 404,
        "/topics": 404,
        "/../secret.txt": 400,
    }
    for path, expected in refused.items():
        status, _, body = client.get(path)
        assert status == expected, path
        assert b"secret" not in body
        assert b"half" not in body
        if status == 400:  # nginx closes the connection after a bad request
            client.close()
            client = Client(nginx.port)
    client.close()


def test_a_then_b_reaches_an_if_modified_since_poller_through_nginx(
    settings: Settings, nginx: Nginx
) -> None:
    a_then_b(settings, nginx.port)
