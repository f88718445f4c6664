"""Commands in the lab's namespaces: running them, nft scripts, and killing what runs there."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from bonding.lab.model import LabError


def run(cmd: Sequence[str], *, check: bool = True, timeout: float = 30,
        capture: bool = True) -> subprocess.CompletedProcess[str]:
    """Run `cmd`; with `check`, a LabError naming it and its stderr when it fails."""
    r = subprocess.run(list(cmd), capture_output=capture, text=True, timeout=timeout,
                       check=False)
    if check and r.returncode != 0:
        raise LabError(f"`{' '.join(cmd)}` failed ({r.returncode}): {(r.stderr or '').strip()}")
    return r


def nsx(ns: str, *cmd: str) -> list[str]:
    """`cmd` as run inside namespace `ns`."""
    return ["ip", "netns", "exec", ns, *cmd]


def nft(ns: str, script: str) -> None:
    """Run an nft script in namespace `ns`."""
    r = subprocess.run(nsx(ns, "nft", "-f", "-"), input=script, capture_output=True,
                       text=True, timeout=10, check=False)
    if r.returncode != 0:
        raise LabError(f"nft in {ns} failed: {r.stderr.strip()}")


def listening(ns: str, port: int) -> bool:
    """Something in namespace `ns` listens on TCP `port`."""
    r = subprocess.run(nsx(ns, "ss", "-Hltn", f"sport = :{port}"), capture_output=True,
                       text=True, check=False)
    return bool(r.stdout.strip())


def netns_pids(ns: str) -> list[str]:
    return run(["ip", "netns", "pids", ns], check=False).stdout.split()


def kill_netns(ns: str, signals: Sequence[signal.Signals], timeout: float) -> bool:
    """Send each signal in turn to every process of `ns`, giving them `timeout` seconds to go
    after each; True once the namespace has no process left, False if some outlived them all.
    The one kill loop of `Lab.down` (SIGTERM, then SIGKILL) and `Lab.stop_server` (SIGKILL)."""
    for sig in signals:
        pids = netns_pids(ns)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), sig)
        deadline = time.monotonic() + timeout
        while pids:
            pids = netns_pids(ns)
            if not pids:
                return True
            if time.monotonic() > deadline:
                break
            time.sleep(0.02)
        if not pids:
            return True
    return False


def kill_wait(pid: int, timeout: float) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                return
        except ChildProcessError:
            if not Path(f"/proc/{pid}").exists():
                return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
