"""A scratch OpenWrt root with the real userland running in it, for tests (root only).

:class:`RouterRoot` is bonding.lab.owrt.root's :class:`~bonding.lab.owrt.root.OwrtRoot` (the
root: its PID 1, the userland of OWRT_PREFIX where OpenWrt puts it, syslogd, ubusd and
`procd -S`; see bonding.lab.owrt.userland for what goes in) in network namespaces of the
test's own: a router ("<tag>r": two veth WAN links wan1 and wan2, 100.64.1.2/24 and
100.64.2.2/24) and its upstream ("<tag>u": the gateways 100.64.1.1 and 100.64.2.1, and on lo
203.0.113.10 and 198.51.100.10 to probe and to connect to).  :meth:`close` ends PID 1 (so the
kernel kills everything in the root) and deletes both network namespaces; it runs when setup
fails too.  What the tests read beyond that: the files the root holds beyond the host's
(:meth:`RouterRoot.files`) and the router's kernel state (:meth:`RouterRoot.kernel_state`).
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from bonding.lab.owrt.root import UBUS_SOCKET, OwrtRoot, RootError
from bonding.lab.owrt.userland import OUR_PACKAGES, base_packages, part_files, pyver
from bonding.lab.topology import nsx, run

# what the tests take from here
__all__ = ["CONFIGURE", "OUR_PACKAGES", "REPO", "UBUS_SOCKET", "RootError", "RouterRoot",
           "base_packages", "booted", "part_files", "pyver", "state_diff"]

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]

# /etc/config/bonding for the root's two links, as a user would set it with uci
CONFIGURE = """
uci set bonding.wan.device=wan1
uci set bonding.wan.gateway=100.64.1.1
uci set bonding.wanb=path
uci set bonding.wanb.interface=wanb
uci set bonding.wanb.device=wan2
uci set bonding.wanb.gateway=100.64.2.1
uci delete bonding.globals.probe_target
uci add_list bonding.globals.probe_target=203.0.113.10
uci add_list bonding.globals.probe_target=198.51.100.10
uci commit bonding
"""


class RouterRoot(OwrtRoot):
    def __init__(self, prefix: Path, stage: Path, tag: str, parts: Iterable[str] = ()) -> None:
        super().__init__(prefix, stage, f"{tag}r", parts)
        self.tag = tag
        self.up_ns = f"{tag}u"

    def _network(self) -> None:
        for ns in (self.ns, self.up_ns):
            if ns in run(["ip", "netns", "list"]).stdout.split():
                run(["ip", "netns", "del", ns])
            run(["ip", "netns", "add", ns])
            run(nsx(ns, "ip", "link", "set", "lo", "up"))
        for i in (1, 2):
            run(["ip", "link", "add", f"{self.tag}w{i}", "netns", self.ns, "type", "veth",
                 "peer", "name", f"{self.tag}p{i}", "netns", self.up_ns])
            run(nsx(self.ns, "ip", "link", "set", f"{self.tag}w{i}", "name", f"wan{i}"))
            run(nsx(self.up_ns, "ip", "link", "set", f"{self.tag}p{i}", "name", f"isp{i}"))
            run(nsx(self.ns, "ip", "addr", "add", f"100.64.{i}.2/24", "dev", f"wan{i}"))
            run(nsx(self.up_ns, "ip", "addr", "add", f"100.64.{i}.1/24", "dev", f"isp{i}"))
            run(nsx(self.ns, "ip", "link", "set", f"wan{i}", "up"))
            run(nsx(self.up_ns, "ip", "link", "set", f"isp{i}", "up"))
        for addr in ("203.0.113.10/32", "198.51.100.10/32"):
            run(nsx(self.up_ns, "ip", "addr", "add", addr, "dev", "lo"))

    def close(self) -> None:
        """End PID 1 (the kernel kills the rest of the root) and remove the namespaces."""
        super().close()
        for ns in (self.ns, self.up_ns):
            run(["ip", "netns", "del", ns], check=False)

    def files(self) -> dict[str, str]:
        """Every file and link the root holds beyond the host's own (the overlay's upper layer,
        less whiteouts): path -> 'file' or 'link -> TARGET'.  /tmp, /run, /dev, /proc and /sys
        are mounts of their own and not in it."""
        r = subprocess.run(["nsenter", "-t", str(self.init_pid), "-m", "find",
                            f"{self.stage}/upper", "(", "-type", "f", "-o", "-type", "l", ")",
                            "-printf", "%P\\t%y\\t%l\\n"],
                           capture_output=True, text=True, timeout=60, check=True)
        out = {}
        for line in r.stdout.splitlines():
            rel, kind, target = line.split("\t")
            out["/" + rel] = "file" if kind == "f" else f"link -> {target}"
        return out

    def kernel_state(self) -> dict[str, list[str]]:
        """The router namespace's rules, routes (every table), MPTCP endpoints and nftables."""
        cmds = {"rules": ["ip", "rule"], "rules6": ["ip", "-6", "rule"],
                "routes": ["ip", "route", "show", "table", "all"],
                "routes6": ["ip", "-6", "route", "show", "table", "all"],
                "endpoints": ["ip", "mptcp", "endpoint", "show"],
                "nft": ["nft", "list", "ruleset"]}
        return {k: sorted(run(nsx(self.ns, *c)).stdout.splitlines()) for k, c in cmds.items()}


def state_diff(before: Mapping[str, list[str]],
               after: Mapping[str, list[str]]) -> dict[str, dict[str, list[str]]]:
    """What differs between two kernel_state()s, by kind: {'rules': {'gone': [...], 'new': [...]}}.
    The kernel's own routes (proto kernel: of addresses, link-local IPv6 coming up late) are
    left out: nobody but the kernel makes them."""
    out = {}
    for k in sorted(set(before) | set(after)):
        b = {x for x in before.get(k, []) if "proto kernel" not in x}
        a = {x for x in after.get(k, []) if "proto kernel" not in x}
        if a != b:
            out[k] = {"gone": sorted(b - a), "new": sorted(a - b)}
    return out


@contextlib.contextmanager
def booted(prefix: Path, feed_dir: Path, workdir: Path, tag: str) -> Iterator[RouterRoot]:
    """A started root whose opkg knows our feed and has what it depends on; closed after."""
    root = RouterRoot(prefix, workdir / "stage", tag)
    root.start(base_packages(feed_dir))
    try:
        root.add_feed(feed_dir)
        yield root
    finally:
        root.close()
