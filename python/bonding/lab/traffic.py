"""Traffic in the lab: iperf3 over MPTCP (mptcpize), per-link counters, waiting on bondingd."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bonding.lab.topology import IPERF_PORT, SERVER_ADDR, Lab, LabError, nsx

HEADER_RATIO = 1448 / 1514  # TCP payload per 1514-byte frame (timestamps on)


def need(tool: str, package: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise LabError(f"{tool} is missing: apt-get install {package}")
    return path


@dataclass
class Transfer:
    """An iperf3 MPTCP upload from the router to the server (both under mptcpize)."""

    lab: Lab
    seconds: float
    server: subprocess.Popen[str] | None = None
    client: subprocess.Popen[str] | None = None
    congestion: str = "cubic"  # OpenWrt's default; the host's (BBR) cannot be changed per netns
    src_role: str = "router"
    dst: str = SERVER_ADDR
    dst_role: str = "server"
    mptcp: bool = True

    def start(self) -> None:
        st = self.lab.state or self.lab.load()
        need("iperf3", "iperf3")
        wrap = [need("mptcpize", "mptcpize"), "run"] if self.mptcp else []
        self.server = subprocess.Popen(
            nsx(st.namespaces[self.dst_role], *wrap, "iperf3", "-s", "-1", "-p",
                str(IPERF_PORT)),
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 5
        while not _listening(st.namespaces[self.dst_role], IPERF_PORT):
            if time.monotonic() > deadline or self.server.poll() is not None:
                self.stop()
                raise LabError("iperf3 server did not start")
            time.sleep(0.05)
        self.client = subprocess.Popen(
            nsx(st.namespaces[self.src_role], *wrap, "iperf3", "-c", self.dst, "-p",
                str(IPERF_PORT), "-t", f"{self.seconds:g}", "-C", self.congestion, "-J"),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def running(self) -> bool:
        return self.client is not None and self.client.poll() is None

    def result(self, timeout: float) -> dict[str, Any]:
        """Wait for the client; its JSON report (raises LabError if the transfer failed)."""
        assert self.client is not None
        try:
            out, err = self.client.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise LabError(f"iperf3 still running after {timeout:g} s") from None
        finally:
            self._stop_server()
        try:
            data: dict[str, Any] = json.loads(out)
        except json.JSONDecodeError:
            raise LabError(f"iperf3 failed ({self.client.returncode}): {err.strip()}") from None
        if "error" in data:
            raise LabError(f"iperf3: {data['error']}")
        return data

    def _stop_server(self) -> None:
        if self.server is not None and self.server.poll() is None:
            self.server.terminate()
            try:
                self.server.wait(3)
            except subprocess.TimeoutExpired:
                self.server.kill()
                self.server.wait()

    def stop(self) -> None:
        for p in (self.client,):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
        self._stop_server()


def _listening(ns: str, port: int) -> bool:
    r = subprocess.run(nsx(ns, "ss", "-Hltn", f"sport = :{port}"), capture_output=True,
                       text=True, check=False)
    return bool(r.stdout.strip())


def received_bps(report: dict[str, Any]) -> float:
    return float(report["end"]["sum_received"]["bits_per_second"])


class Rates:
    """Per-link rates from the router's WAN counters between two samples."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.t = time.monotonic()
        self.c = lab.counters()

    def sample(self) -> dict[str, float]:
        """Bits/s sent on each link (upload) since the last sample."""
        t, c = time.monotonic(), self.lab.counters()
        dt = max(t - self.t, 1e-6)
        out = {k: (c[k]["tx"] - self.c[k]["tx"]) * 8 / dt for k in c}
        self.t, self.c = t, c
        return out


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


def endpoints(lab: Lab) -> list[dict[str, Any]]:
    st = lab.state or lab.load()
    r = subprocess.run(["ip", "-n", st.namespaces["router"], "-j", "mptcp", "endpoint",
                        "show"], capture_output=True, text=True, check=False)
    try:
        data: list[dict[str, Any]] = json.loads(r.stdout or "[]")
    except json.JSONDecodeError:
        return []
    return data


def wait_all_up(lab: Lab, timeout: float = 20.0) -> bool:
    st = lab.state or lab.load()
    names = [x.name for x in st.links]
    return wait_for(lambda: all(path_state(lab, n) == "up" for n in names), timeout) is not None
