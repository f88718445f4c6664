"""Threads inside a network namespace: setns() for the lab tests' worker threads (the test
process itself never leaves the host namespace)."""

from __future__ import annotations

import concurrent.futures
import ctypes
import os
import subprocess
import uuid
from collections.abc import Callable
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
