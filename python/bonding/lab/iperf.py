"""iperf3 in the lab: a transfer between two of its hosts (over MPTCP under mptcpize, or plain
TCP through the router's proxy), and what its JSON report says."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from dataclasses import dataclass
from typing import Any

from bonding.lab.commands import listening, nsx
from bonding.lab.model import IPERF_PORT, SERVER_ADDR, TARGET_ADDR, TARGET_ADDR6, LabError
from bonding.lab.topology import Lab

HEADER_RATIO = 1448 / 1514  # TCP payload per 1514-byte frame (timestamps on)
# The same over IPv6: its header is 40 bytes, not 20, so a 1500-byte packet carries
# 1500 - 40 - 20 - 12 (timestamps) = 1428 bytes of TCP payload.
HEADER_RATIO6 = 1428 / 1514


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
    # iperf3 -C: OpenWrt's default; the host's (BBR) cannot be changed per netns.  None: the
    # route's or the system's.  (On MPTCP, -C reaches the first subflow only: the others take
    # the congestion control of the route they leave by when bondingd sets one.)
    congestion: str | None = "cubic"
    src_role: str = "router"
    dst: str = SERVER_ADDR
    dst_role: str = "server"
    mptcp: bool = True
    reverse: bool = False  # the server side sends (iperf3 -R)
    omit: float = 0  # seconds left out of the report at the start (iperf3 -O)
    server_output: bool = True  # the receiver's own intervals in the report
    interval: float = 1.0  # seconds per interval of the report (iperf3 -i, ≥ 0.1)
    parallel: int = 1  # TCP connections at once (iperf3 -P)
    port: int = IPERF_PORT  # the server's (its control connection is TCP to it also with UDP)
    udp_bps: float | None = None  # a UDP flow at this rate (iperf3 -u -b, 1200-byte datagrams)

    def start(self) -> None:
        st = self.lab.state or self.lab.load()
        need("iperf3", "iperf3")
        wrap = [need("mptcpize", "mptcpize"), "run"] if self.mptcp else []
        self.server = subprocess.Popen(
            nsx(st.namespaces[self.dst_role], *wrap, "iperf3", "-s", "-1", "-J", "-p",
                str(self.port)),
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 5
        while not listening(st.namespaces[self.dst_role], self.port):
            if time.monotonic() > deadline or self.server.poll() is not None:
                self.stop()
                raise LabError("iperf3 server did not start")
            time.sleep(0.05)
        extra = (["-R"] if self.reverse else []) + (
            ["-O", f"{self.omit:g}"] if self.omit else []) + (
            ["--get-server-output"] if self.server_output else []) + (
            ["-i", f"{self.interval:g}"] if self.interval != 1.0 else []) + (
            ["-P", str(self.parallel)] if self.parallel != 1 else []) + (
            ["-u", "-b", f"{self.udp_bps:.0f}", "-l", "1200"] if self.udp_bps else [])
        self.client = subprocess.Popen(
            nsx(st.namespaces[self.src_role], *wrap, "iperf3", "-c", self.dst, "-p",
                str(self.port), "-t", f"{self.seconds:g}", "-J", *extra,
                *(["-C", self.congestion] if self.congestion else [])),
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


def received_bps(report: dict[str, Any]) -> float:
    return float(report["end"]["sum_received"]["bits_per_second"])


def receiver_intervals(report: dict[str, Any]) -> list[tuple[float, float, float]]:
    """(start, end, bits/s) per interval as the receiving side counted them."""
    side = report
    if not report.get("start", {}).get("test_start", {}).get("reverse"):
        side = report.get("server_output_json") or {}
    out = []
    for iv in side.get("intervals", []):
        s = iv["sum"]
        if not s.get("omitted"):
            out.append((float(s["start"]), float(s["end"]), float(s["bits_per_second"])))
    return out


def goodput_between(report: dict[str, Any], t0: float, t1: float) -> float | None:
    """Mean receiver goodput (bit/s) over the intervals inside [t0, t1] of the transfer."""
    ivs = [(a, b, r) for a, b, r in receiver_intervals(report) if a >= t0 - 1e-6
           and b <= t1 + 1e-6]
    span = sum(b - a for a, b, _ in ivs)
    return sum((b - a) * r for a, b, r in ivs) / span if span > 0 else None


def lan_transfer(lab: Lab, seconds: float, *, reverse: bool = False,
                 congestion: str = "cubic", ipv6: bool = False) -> Transfer:
    """An iperf3 TCP upload from the LAN host to the target (plain TCP: the router bonds it).

    `reverse`: the target sends (a download); `ipv6`: to the target's IPv6 address."""
    return Transfer(lab, seconds, congestion=congestion, src_role="lan",
                    dst=TARGET_ADDR6 if ipv6 else TARGET_ADDR, dst_role="target", mptcp=False,
                    reverse=reverse)


