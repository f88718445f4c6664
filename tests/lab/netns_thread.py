"""Threads inside a network namespace: setns() for the lab tests' worker threads (the test
process itself never leaves the host namespace)."""

from __future__ import annotations

import ctypes
import os

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
