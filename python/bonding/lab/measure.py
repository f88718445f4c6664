"""Measuring the lab while it runs: per-link rates from the router's counters, a process's
memory, and waiting on bondingd's snapshot (paths, address families, the proxy)."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from typing import Any

from bonding.lab.model import LabError
from bonding.lab.topology import Lab


class Rates:
    """Per-link rates from the router's WAN counters between two samples: what the router sent
    (`way` "tx", the upload) or received ("rx", the download)."""

    def __init__(self, lab: Lab, way: str = "tx") -> None:
        self.lab = lab
        self.way = way
        self.t = time.monotonic()
        self.c = lab.counters()

    def sample(self) -> dict[str, float]:
        """Bits/s on each link, the `way` of this object, since the last sample."""
        t, c = time.monotonic(), self.lab.counters()
        dt = max(t - self.t, 1e-6)
        out = {k: (c[k][self.way] - self.c[k][self.way]) * 8 / dt for k in c}
        self.t, self.c = t, c
        return out


def rss_kb(pid: int) -> int:
    """Resident memory of process ``pid`` in kB (VmRSS)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise LabError(f"process {pid} has no VmRSS (a kernel thread, or gone)")


def wait_for(pred: Callable[[], bool], timeout: float, step: float = 0.02) -> float | None:
    """Seconds until pred() was true, or None on timeout."""
    start = time.monotonic()
    while True:
        if pred():
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            return None
        time.sleep(step)


def path_state(lab: Lab, name: str) -> str | None:
    path = lab.status().get("paths", {}).get(name)
    return None if path is None else str(path.get("state"))


def _family(lab: Lab, name: str, family: int) -> dict[str, Any] | None:
    fams = (lab.status().get("paths", {}).get(name) or {}).get("families") or {}
    fam: dict[str, Any] | None = fams.get(f"ipv{family}")
    return fam


def family_state(lab: Lab, name: str, family: int) -> str | None:
    """The state of one address family (4 or 6) of a path, as bondingd's snapshot says."""
    fam = _family(lab, name, family)
    return None if fam is None else str(fam.get("state"))


def wait_family_up(lab: Lab, family: int, timeout: float = 20.0) -> bool:
    """Every path's `family` up (not degraded: a fresh IPv6 neighbour cache can make the first
    rounds slow)."""
    st = lab.state or lab.load()
    names = [x.name for x in st.links]
    return wait_for(lambda: all(family_state(lab, n, family) == "up" for n in names),
                    timeout) is not None


def endpoints(lab: Lab) -> list[dict[str, Any]]:
    st = lab.state or lab.load()
    r = subprocess.run(["ip", "-n", st.namespaces["router"], "-j", "mptcp", "endpoint",
                        "show"], capture_output=True, text=True, check=False)
    try:
        data: list[dict[str, Any]] = json.loads(r.stdout or "[]")
    except json.JSONDecodeError:
        return []
    return data


def wait_proxy_running(lab: Lab, timeout: float) -> bool:
    return wait_for(lambda: (lab.status().get("proxy") or {}).get("state") == "running",
                    timeout) is not None


def wait_all_up(lab: Lab, timeout: float = 20.0) -> bool:
    st = lab.state or lab.load()
    names = [x.name for x in st.links]
    return wait_for(lambda: all(path_state(lab, n) == "up" for n in names), timeout) is not None




def link_rates(lab: Lab, after: float, over: float, way: str = "tx") -> dict[str, float]:
    """After `after` seconds, bits/s on each link over the next `over`: sent (`way` "tx", the
    upload) or received ("rx", the download)."""
    time.sleep(after)
    rates = Rates(lab, way)
    time.sleep(over)
    return rates.sample()
