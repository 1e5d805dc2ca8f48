"""Worker "hosts" in Linux network namespaces of their own, for the many-hosts tests.

``HostNetwork`` builds, for one test run, a bridge in the root namespace (the database's
side, ``10.231.<n>.1/24``) and one network namespace per host, joined to the bridge by a
veth pair (the host's end is ``eth0``, ``10.231.<n>.<10+i>``). A process started with
``host.command(argv)`` runs inside the host's namespace, under the host's own name
(``unshare --uts`` then ``hostname``), so worker ids and ``host`` fields tell the hosts
apart as they would on separate machines. ``cut()`` takes the host's ``eth0`` down from
inside its namespace: the host's packets go nowhere and nothing reaches it, without a
word to either side (a cable pulled), until ``restore()``.

Names and the subnet are unique per run (a random tag, a /24 no interface of the machine
uses); ``close()`` removes the namespaces, the veths and the bridge, whatever happened.
``network_unavailable()`` says why none can be built here (not root, no ``ip``, EPERM).
"""

from __future__ import annotations

import ipaddress
import os
import random
import shutil
import subprocess
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

IP = "ip"
#: The first three octets of the test subnets: 10.231.<n>.0/24.
PREFIX = "10.231"


def _ip(*args: str, netns: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    command = [IP, "netns", "exec", netns, IP, *args] if netns else [IP, *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)}: {done.stderr.strip() or done.returncode}")
    return done


def network_unavailable() -> str | None:
    """Why network namespaces cannot be built here, or None when they can."""
    if os.geteuid() != 0:
        return "network namespaces need root (ip netns add)"
    for tool in (IP, "unshare"):
        if shutil.which(tool) is None:
            return f"no `{tool}` command (iproute2 / util-linux)"
    probe = f"stem-probe-{uuid.uuid4().hex[:8]}"
    done = _ip("netns", "add", probe, check=False)
    if done.returncode != 0:
        return f"cannot create a network namespace: {done.stderr.strip()}"
    _ip("netns", "delete", probe, check=False)
    return None


def _free_subnet() -> str:
    """``10.231.<n>`` for an ``n`` no address of the machine (root namespace) is in."""
    taken = _ip("-o", "addr", "show").stdout
    used = {int(p.split(".")[2]) for p in taken.split() if p.startswith(f"{PREFIX}.") and p.count(".") == 3}
    free = [n for n in range(1, 255) if n not in used]
    if not free:
        raise RuntimeError(f"no free {PREFIX}.<n>.0/24 subnet")
    return f"{PREFIX}.{random.choice(free)}"


@dataclass
class Host:
    """One host: its network namespace, its name, its address, its veth's ends."""

    name: str
    netns: str
    address: str
    outer: str  # the veth end on the bridge, in the root namespace

    def command(self, argv: Sequence[str]) -> list[str]:
        """``argv`` run inside this host's namespace, with ``name`` as its host name."""
        rename = 'hostname "$0" && exec "$@"'
        return [IP, "netns", "exec", self.netns, "unshare", "--uts", "sh", "-c", rename, self.name, *argv]

    def cut(self) -> None:
        """Take the host off the network (its ``eth0`` down); connections stay open, silent."""
        _ip("link", "set", "eth0", "down", netns=self.netns)

    def restore(self) -> None:
        _ip("link", "set", "eth0", "up", netns=self.netns)


class HostNetwork:
    """A bridge (the database's side) and ``names`` hosts on it; ``close()`` removes it all."""

    def __init__(self, names: Sequence[str]) -> None:
        tag = uuid.uuid4().hex[:6]
        self.bridge = f"smh{tag}"  # interface names: at most 15 characters
        self.subnet = _free_subnet()
        self.address = f"{self.subnet}.1"  # the database listens here
        self.hosts: dict[str, Host] = {}
        self._made_bridge = False
        try:
            _ip("link", "add", "name", self.bridge, "type", "bridge")
            self._made_bridge = True
            _ip("addr", "add", f"{self.address}/24", "dev", self.bridge)
            _ip("link", "set", self.bridge, "up")
            for i, name in enumerate(names):
                self._add_host(tag, i, name)
        except BaseException:
            self.close()
            raise

    @property
    def network(self) -> str:
        return str(ipaddress.ip_network(f"{self.subnet}.0/24"))

    def _add_host(self, tag: str, i: int, name: str) -> None:
        host = Host(name, f"stem-{tag}-{name}", f"{self.subnet}.{10 + i}", f"smh{tag}{i}o")
        inner = f"smh{tag}{i}i"
        _ip("netns", "add", host.netns)
        self.hosts[name] = host
        _ip("link", "add", host.outer, "type", "veth", "peer", "name", inner)
        _ip("link", "set", inner, "netns", host.netns)
        _ip("link", "set", host.outer, "master", self.bridge)
        _ip("link", "set", host.outer, "up")
        _ip("link", "set", "lo", "up", netns=host.netns)
        _ip("link", "set", inner, "name", "eth0", netns=host.netns)
        _ip("addr", "add", f"{host.address}/24", "dev", "eth0", netns=host.netns)
        _ip("link", "set", "eth0", "up", netns=host.netns)

    def close(self) -> None:
        """Remove every namespace (its veth end goes with it), veth and the bridge; errors
        of one step do not stop the next."""
        for host in self.hosts.values():
            _ip("link", "delete", host.outer, check=False)
            _ip("netns", "delete", host.netns, check=False)
        self.hosts.clear()
        if self._made_bridge:
            _ip("link", "delete", self.bridge, check=False)
            self._made_bridge = False
