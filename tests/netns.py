"""A network namespace joined to this host by a veth pair, for a real, silent partition.

`namespace()` makes one (root only; without `ip netns`, `service_missing`: skipped locally,
failed under CI), and always removes it, its veth and its firewall rules (they live in the
namespace) afterwards. A process run with `Namespace.run` as its prefix reaches this host at
`Namespace.host` only; `partition()` drops every packet between the two (nothing refused,
nothing answered: as a pulled cable or a lost route), `heal()` lets them through again.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

from services import service_missing


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


@dataclass(frozen=True)
class Namespace:
    """A namespace `name`, at `inside`; this host is `host` on its /30 `network`."""

    name: str
    host: str
    inside: str
    network: str

    @property
    def run(self) -> list[str]:
        """The prefix that runs a command inside."""
        return ["ip", "netns", "exec", self.name]

    def _iptables(self, *args: str) -> None:
        subprocess.run([*self.run, "iptables", *args], check=True, capture_output=True)

    def partition(self) -> None:
        """Drop every packet to and from the host, silently."""
        self._iptables("-I", "INPUT", "-s", self.host, "-j", "DROP")
        self._iptables("-I", "OUTPUT", "-d", self.host, "-j", "DROP")

    def heal(self) -> None:
        """Let the packets through again."""
        self._iptables("-F", "INPUT")
        self._iptables("-F", "OUTPUT")


def _addresses() -> tuple[str, str, str]:
    """A /30 of 10.0.0.0/8 of this process's own (tests of other processes run beside it)."""
    pid = os.getpid()
    base = f"10.{200 + (pid >> 14) % 50}.{(pid >> 6) & 255}.{(pid & 63) * 4}"
    prefix, last = base.rsplit(".", 1)
    return f"{prefix}.{int(last) + 1}", f"{prefix}.{int(last) + 2}", f"{base}/30"


@contextlib.contextmanager
def namespace() -> Iterator[Namespace]:
    """A fresh namespace, removed afterwards (see the module)."""
    if os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("iptables") is None:
        service_missing("a network namespace needs root, `ip` (iproute2) and iptables")
    pid = os.getpid()
    name, outer, inner = f"aggtest{pid}", f"va{pid}", f"vb{pid}"
    host, inside, network = _addresses()
    try:
        _ip("netns", "add", name)
    except subprocess.CalledProcessError as exc:
        service_missing(f"`ip netns add` is not allowed here: {exc.stderr.strip()}")
    try:
        _ip("link", "add", outer, "type", "veth", "peer", "name", inner)
        _ip("link", "set", inner, "netns", name)
        _ip("addr", "add", f"{host}/30", "dev", outer)
        _ip("link", "set", outer, "up")
        _ip("-n", name, "addr", "add", f"{inside}/30", "dev", inner)
        _ip("-n", name, "link", "set", inner, "up")
        _ip("-n", name, "link", "set", "lo", "up")
        yield Namespace(name, host, inside, network)
    finally:
        # The namespace's rules go with it; its veth end too, and with it the pair.
        with contextlib.suppress(subprocess.CalledProcessError):
            _ip("link", "del", outer)
        with contextlib.suppress(subprocess.CalledProcessError):
            _ip("netns", "del", name)
