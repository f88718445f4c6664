"""What the lab shows: bondingd's snapshot, each link's byte counters, the delay stages'
statistics, and the whole lab described (`bonding-lab describe`).  `link_counters` and
`describe_state` are the pure parts."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bonding import config
from bonding.lab.base import LabBase
from bonding.lab.commands import run
from bonding.lab.delay import parse_stats
from bonding.lab.model import (
    CLIENT_NAME,
    LAN_DEVICE,
    SERVER2_ADDR,
    SERVER_ADDR,
    SERVER_ADDR6,
    TARGET_ADDR,
    TARGET_ADDR6,
    LabError,
    LabState,
    Link,
)
from bonding.lab.owrt.lab import luci_of, router_kind


def link_counters(ip_links: Sequence[dict[str, Any]],
                  links: Sequence[Link]) -> dict[str, dict[str, int]]:
    """Bytes received and sent per link, from `ip -s -j link show` in the router."""
    by_name = {x["ifname"]: x["stats64"] for x in ip_links}
    return {link.name: {"rx": by_name[link.router_dev]["rx"]["bytes"],
                        "tx": by_name[link.router_dev]["tx"]["bytes"]}
            for link in links}


def describe_state(st: LabState, server_roles: Sequence[str]) -> dict[str, Any]:
    """The lab as `bonding-lab describe` prints it: namespaces, links, servers, processes."""
    return {
        "prefix": st.prefix,
        "router": router_kind(st),
        "luci": luci_of(st),
        "namespaces": [{"role": r, "name": n, "addresses": st.addresses.get(r, [])}
                       for r, n in st.namespaces.items()],
        "links": [{"name": x.name, "rate_mbit": x.rate_mbit, "delay_ms": x.delay_ms,
                   "rtt_added_ms": 2 * x.delay_ms, "isp_namespace": x.isp_ns,
                   "router_device": x.router_dev, "router_address": x.router_addr,
                   "router_address6": x.router_addr6, "isp_device": x.isp_dev,
                   "gateway": x.isp_addr, "gateway6": x.isp_addr6,
                   "isp_uplink_device": x.isp_up_dev} for x in st.links],
        "server": {"namespace": st.namespaces["server"], "address": SERVER_ADDR,
                   "address6": SERVER_ADDR6, "tunnel6": st.tunnel6,
                   "bonding_server": None if not st.proxy else {
                       "state_dir": st.server_state_dir, "client": CLIENT_NAME,
                       "port": st.client_port, "pid": st.pids.get("bonding-server"),
                       "log": str(Path(st.state_dir) / "bonding-server.log")}},
        "servers": [{"role": r, "namespace": st.namespaces[r],
                     "address": SERVER_ADDR if r == "server" else SERVER2_ADDR,
                     "section": CLIENT_NAME + ("" if r == "server" else "2"),
                     "port": st.client_ports.get(r),
                     "pid": st.pids.get(f"bonding-{r}")} for r in server_roles],
        "proxy": None if not st.proxy else {
            "backend": st.backend, "lan_device": LAN_DEVICE,
            "secrets": str(Path(st.config_dir) / config.SECRETS_PACKAGE)},
        "target": {"namespace": st.namespaces["target"], "address": TARGET_ADDR,
                   "address6": TARGET_ADDR6},
        "bondingd": {"namespace": st.namespaces["router"], "pid": st.daemon_pid,
                     "config_dir": st.config_dir, "run_dir": st.run_dir,
                     "status": str(Path(st.run_dir) / "status.json"),
                     "log": st.daemon_log},
        "ubus": {"socket": st.ubus_socket, "pid": st.pids.get("ubusd")},
    }


class Observe(LabBase):
    """Reading the lab's state while it runs."""

    def status(self) -> dict[str, Any]:
        """bondingd's snapshot (status.json), or {} when there is none yet."""
        st = self.state or self.load()
        try:
            data: dict[str, Any] = json.loads((Path(st.run_dir) / "status.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}
        return data

    def counters(self) -> dict[str, dict[str, int]]:
        """Bytes through each link as the router's WAN device counts them."""
        st = self.state or self.load()
        out = json.loads(run(["ip", "-n", st.namespaces["router"], "-s", "-j", "link",
                              "show"]).stdout)
        return link_counters(out, st.links)

    def stage_stats(self, timeout: float = 2.0) -> dict[str, dict[str, float]]:
        """Each link's delay stage since the lab came up (both directions): packets received,
        forwarded, dropped, and how late releases were (late_max_ms, late_over_1ms)."""
        st = self.state or self.load()
        logs = {x.name: Path(st.state_dir) / f"delay-{x.name}.log" for x in st.links}
        before = {name: log.stat().st_size for name, log in logs.items()}
        for name in logs:  # all asked at once, then each one's line awaited
            os.kill(st.pids[f"delay-{name}"], signal.SIGUSR1)
        deadline = time.monotonic() + timeout
        out: dict[str, dict[str, float]] = {}
        for name, log in logs.items():
            while True:
                with log.open("rb") as f:
                    f.seek(before[name])
                    lines = [x for x in f.read().decode().splitlines() if x.startswith("stats ")]
                if lines:
                    out[name] = parse_stats(lines[-1])
                    break
                if time.monotonic() > deadline:
                    raise LabError(f"the delay stage of {name} did not report its stats "
                                   f"within {timeout:g} s: see {log}")
                time.sleep(0.02)
        return out

    def describe(self) -> dict[str, Any]:
        return describe_state(self.state or self.load(), self.server_roles())
