"""Threads inside a network namespace: setns() for the lab tests' worker threads (the test
process itself never leaves the host namespace)."""

from __future__ import annotations

import concurrent.futures
import contextlib
import ctypes
import os
import subprocess
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

T = TypeVar("T")

CLONE_NEWNET = 0x40000000


def enter_netns(path: str) -> None:
    """setns() the calling thread into the namespace at `path` (os.setns is Python 3.12+)."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({path}): {os.strerror(err)}")
    finally:
        os.close(fd)


class Space:
    """A throwaway network namespace, and worker threads inside it."""

    def __init__(self, role: str) -> None:
        self.name = f"bsp{role}-{os.getpid()}-{uuid.uuid4().hex[:4]}"
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        self.pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=2, initializer=enter_netns, initargs=(f"/run/netns/{self.name}",))

    def ip(self, *args: str) -> str:
        return subprocess.run(["ip", "-n", self.name, *args], check=True, capture_output=True,
                              text=True, timeout=10).stdout

    def sh(self, *args: str, stdin: str | None = None) -> str:
        return subprocess.run(["ip", "netns", "exec", self.name, *args], check=True, input=stdin,
                              capture_output=True, text=True, timeout=10).stdout

    def run(self, fn: Callable[..., T], *args: Any, timeout: float = 30) -> T:
        return self.pool.submit(fn, *args).result(timeout=timeout)

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        subprocess.run(["ip", "netns", "del", self.name], check=False)


@contextlib.contextmanager
def client_and_far_end(addresses: Sequence[str], links: int) -> Iterator[tuple[Space, Space]]:
    """Two throwaway namespaces: a client with `links` links wan1… (100.64.i.2/24, a routing
    table per link chosen by source address, as bondingd sets up) to a far end isp1… (100.64.i.1)
    holding `addresses` on its loopback, with an empty nftables input chain `inet t in` for
    faults (drop()).  Both are removed at the end, whatever happens."""
    client, far = Space("c"), Space("f")
    try:
        for s in (client, far):
            s.ip("link", "set", "lo", "up")
        for a in addresses:
            far.ip("addr", "add", f"{a}/32", "dev", "lo")
        for i in range(1, links + 1):
            client.ip("link", "add", f"wan{i}", "type", "veth", "peer", "name", f"isp{i}",
                      "netns", far.name)
            client.ip("addr", "add", f"100.64.{i}.2/24", "dev", f"wan{i}")
            far.ip("addr", "add", f"100.64.{i}.1/24", "dev", f"isp{i}")
            client.ip("link", "set", f"wan{i}", "up")
            far.ip("link", "set", f"isp{i}", "up")
            client.ip("route", "add", "default", "via", f"100.64.{i}.1", "table", str(100 + i))
            client.ip("rule", "add", "from", f"100.64.{i}.2", "lookup", str(100 + i))
        far.sh("nft", "-f", "-", stdin="add table inet t\n"
               "add chain inet t in { type filter hook input priority 0; }\n")
        yield client, far
    finally:
        client.close()
        far.close()


def drop(far: Space, rule: str | None) -> None:
    """Only `rule` (nft syntax, e.g. 'iifname isp2 drop') in the far end's input chain."""
    far.sh("nft", "flush", "chain", "inet", "t", "in")
    if rule:
        far.sh("nft", "add", "rule", "inet", "t", "in", *rule.split())
