"""The lab's router as an OpenWrt router (`bonding-lab up --openwrt`).

The router namespace the lab built (its WAN and LAN veths, no address on its side) becomes a
scratch OpenWrt root (bonding.lab.owrt.root) whose PID 1 outlives `bonding-lab up`:

- procd, ubusd and syslogd run in it; netifd (from /etc/init.d/network) configures the LAN
  (lan0, 192.0.2.1/24) and the WANs from /etc/config/network: every link but the last gets
  its address by DHCP from busybox udhcpd in its ISP's namespace, the last one is static (one
  link alone: DHCP); fw4 is the firewall (lan and wan zones, masquerade) and loads our
  include;
- our packages are built as `make feed` builds them (tools/feed.py, into the lab's state
  directory) and installed by opkg; bondingd is started by procd, its config has no path
  sections: it bonds the WANs netifd has (interfaces wan1 … wanN, named as the lab's links);
- the proxy's programs (sing-box, or ss-redir) are copied to /usr/bin, where OpenWrt's
  packages put them.

The lab's state points into the root (/proc/<PID 1>/root/…): bondingd's status, config and
syslog; `bonding-lab down` kills PID 1 (the kernel kills the rest of the root, and its mounts
go with its mount namespace), then every process left in the lab's namespaces (udhcpd).
IPv4 only: the WANs have no IPv6 here.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import signal
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from bonding.lab.base import LabBase
from bonding.lab.delay import tool_path
from bonding.lab.model import LAN_DEVICE, LAN_ROUTER, PROXY_TOOLS, LabError, LabState
from bonding.lab.owrt.dhcp import start_udhcpd
from bonding.lab.owrt.feeds import (
    apk_base_package,
    apk_install,
    build_apk_repo,
    build_opkg_feed,
    opkg_install,
)
from bonding.lab.owrt.luci import FULL_ACCESS, LUCI_PARTS, first_boot, start_rpcd, start_uhttpd
from bonding.lab.owrt.netconf import lab_firewall, lab_network
from bonding.lab.owrt.root import UBUS_SOCKET, OwrtRoot
from bonding.lab.owrt.userland import base_packages
from bonding.lab.routerconf import render_config

NET_PARTS = ("netifd", "firewall4")  # and jsonfilter, which every root has
MANAGERS = ("opkg", "apk")  # OpenWrt 24.10's, 25.12's
# LuCI on the LAN: the lab's one login (reachable only from the lab's namespaces)
LUCI_USER, LUCI_PASSWORD = "admin", "bonding-lab"
PLAIN_KIND = "plain"
INIT_PID = "owrt-init"  # the root's PID 1 in LabState.pids


def owrt_prefix(explicit: str | None = None, manager: str = "opkg") -> Path:
    """The OpenWrt userland: `explicit`, else $OWRT_PREFIX, else /opt/owrt; checked (with the
    package manager's program)."""
    if manager not in MANAGERS:
        raise LabError(f"package manager {manager!r}: the OpenWrt router has {', '.join(MANAGERS)}")
    prefix = Path(explicit or os.environ.get("OWRT_PREFIX") or "/opt/owrt")
    program = "bin/opkg-cl" if manager == "opkg" else "bin/apk"
    for rel in ("sbin/procd", program, "openwrt/etc/rc.common", "share/owrt-parts/netifd.list"):
        if not (prefix / rel).exists():
            raise LabError(f"the OpenWrt router needs the userland: {prefix}/{rel} is missing "
                           "(build it with tools/owrt-userland.sh, or set OWRT_PREFIX)")
    for tool in ("busybox", "nsenter", "unshare"):
        if shutil.which(tool) is None:
            raise LabError(f"the OpenWrt router needs {tool} (make deps installs it)")
    return prefix


def wan_plan(st: LabState) -> list[tuple[str, int, bool]]:
    """(interface = device name, link number, DHCP?) of each WAN: the last one static."""
    n = len(st.links)
    return [(x.name, x.index, n == 1 or x.index < n) for x in st.links]


class OwrtRouter(LabBase):
    """The lab's router namespace made an OpenWrt router."""

    def _owrt_router(self, prefix: Path, clients: Sequence[dict[str, Any]] | None,
                     options: Mapping[str, str], path_options: Mapping[str, str]) -> None:
        """The router namespace made an OpenWrt router, bondingd running under procd (our
        packages installed by `st.package_manager`); the options of bondingd's globals are
        `options` and `path_options` (no path sections)."""
        st = self.state
        assert st is not None
        work = Path(st.state_dir) / "owrt"
        apk = prefix / "bin" / "apk"
        if st.package_manager == "apk":
            repo = build_apk_repo(work / "apk-repo", apk)
            base = apk_base_package(apk, repo, work / "apk-base")
            install: Callable[[OwrtRoot], None] = functools.partial(
                apk_install, repo=repo, base=base)
            declared: list[str] = []
        else:
            feed = build_opkg_feed(work / "feed")
            install = functools.partial(opkg_install, feed=feed)
            declared = base_packages(feed)
        for name, n, dhcp in wan_plan(st):
            if dhcp:
                link = self.link(name)
                proc = start_udhcpd(link.isp_ns, link.isp_dev, n, work, detach=True)
                st.pids[f"udhcpd-{name}"] = proc.pid
        parts = (*NET_PARTS, *LUCI_PARTS, *(["apk"] if st.package_manager == "apk" else []))
        root = OwrtRoot(prefix, work / "stage", st.namespaces["router"], parts, stay=True)
        root.start(declared)
        st.pids[INIT_PID] = root.init_pid
        st.config_dir = str(root.path("/etc/config"))
        st.run_dir = str(root.path("/var/run/bonding"))
        st.daemon_log = str(root.path("/tmp/log/messages"))
        st.ubus_socket = str(root.path(UBUS_SOCKET))
        self.save()
        try:
            self._owrt_setup(root, install, clients, {**options, **path_options})
        finally:
            root.detach()

    def _owrt_setup(self, root: OwrtRoot, install: Callable[[OwrtRoot], None],
                    clients: Sequence[dict[str, Any]] | None, options: Mapping[str, str]) -> None:
        st = self.state
        assert st is not None
        for tool in PROXY_TOOLS[st.backend] if clients is not None else ():
            found = shutil.which(tool, path=tool_path())
            if found is None:
                raise LabError(f"{tool} is not installed")
            root.write(f"/usr/bin/{tool}", Path(found).read_bytes(), 0o755)
        wans = wan_plan(st)
        root.write("/etc/config/network", lab_network(LAN_DEVICE, (LAN_ROUTER, "255.255.255.0"),
                                                      wans))
        root.write("/etc/config/firewall", lab_firewall(w for w, _, _ in wans))
        root.sh("/etc/init.d/network enable; /etc/init.d/firewall enable; "
                "/etc/init.d/network start && /etc/init.d/firewall start")
        root.wait(lambda: all(self._iface_up(root, w) for w in ("lan", *(w for w, _, _ in wans))),
                  30, "netifd to bring the LAN and every WAN up")
        self._learn_addresses(root)
        first_boot(root)
        install(root)  # luci-app-bonding, which brings bonding and python3-bonding
        text, secrets = render_config(st, "", clients, options)
        if secrets is not None:
            root.write("/etc/config/bonding_secrets", secrets, 0o600)
        root.write("/etc/config/bonding", text)
        root.sh("/etc/init.d/bonding restart", timeout=30)
        root.wait(lambda: self._owrt_daemon_pid(root) is not None, 15, "bondingd under procd")
        st.daemon_pid = self._owrt_daemon_pid(root)
        self.save()
        start_rpcd(root, {LUCI_USER: (LUCI_PASSWORD, FULL_ACCESS)})
        start_uhttpd(root, f"{LAN_ROUTER}:80")

    def _learn_addresses(self, root: OwrtRoot) -> None:
        """The router's addresses as netifd set them (a DHCP lease's is udhcpd's choice)."""
        st = self.state
        assert st is not None
        for link in st.links:
            out = root.ubus("call", f"network.interface.{link.name}", "status")
            link.router_addr = str(out["ipv4-address"][0]["address"])
            link.router_addr6 = ""
        st.addresses["router"] = [LAN_ROUTER, *(x.router_addr for x in st.links)]
        self.save()

    @staticmethod
    def _iface_up(root: OwrtRoot, name: str) -> bool:
        out = root.ubus("call", f"network.interface.{name}", "status")
        return isinstance(out, dict) and bool(out.get("up"))

    @staticmethod
    def _owrt_daemon_pid(root: OwrtRoot) -> int | None:
        """bondingd's host pid, from procd's instance (running, with a status file)."""
        out = root.ubus("call", "service", "list", '{"name":"bonding"}')
        inst = (out or {}).get("bonding", {}).get("instances", {}).get("bondingd", {}) \
            if isinstance(out, dict) else {}
        if not inst.get("running") or not inst.get("pid"):
            return None
        if not root.path("/var/run/bonding/status.json").exists():
            return None
        return root.host_pid(int(inst["pid"]))

    def owrt_root(self) -> OwrtRoot:
        """The running OpenWrt router, to drive (sh, ubus, path; not spawn)."""
        st = self.state or self.load()
        if not st.openwrt or INIT_PID not in st.pids:
            raise LabError(f"lab '{self.prefix}' has no OpenWrt router (up --openwrt builds it)")
        work = Path(st.state_dir) / "owrt"
        return OwrtRoot.attach(Path("/"), work / "stage", st.namespaces["router"],
                               st.pids[INIT_PID])


def kill_root(st: LabState | None) -> None:
    """SIGKILL the OpenWrt router's PID 1 (if `st` has one): the kernel kills every process
    of the root, and its mounts go with its mount namespace.  Its syslog (bondingd's log) is
    kept first, as owrt/messages in the state directory."""
    pid = st.pids.get(INIT_PID) if st is not None else None
    if pid is None or st is None:
        return
    with contextlib.suppress(OSError):  # gone, or by now a pid of another namespace's
        if os.stat(f"/proc/{pid}/ns/net").st_ino == \
                os.stat(f"/run/netns/{st.namespaces['router']}").st_ino:
            with contextlib.suppress(OSError):
                shutil.copyfile(st.daemon_log, Path(st.state_dir) / "owrt" / "messages")
            os.kill(pid, signal.SIGKILL)


def luci_of(st: LabState) -> dict[str, str] | None:
    """Where the OpenWrt router serves LuCI, and its login (None: the plain router)."""
    return {"url": f"http://{LAN_ROUTER}/cgi-bin/luci", "user": LUCI_USER,
            "password": LUCI_PASSWORD} if st.openwrt else None


def kind(openwrt: bool, manager: str = "opkg") -> str:
    """Which router a lab runs, as `describe` and the demo say it."""
    return f"OpenWrt: procd, netifd, fw4, {manager}" if openwrt else PLAIN_KIND


def router_kind(st: LabState) -> str:
    return kind(st.openwrt, st.package_manager)
