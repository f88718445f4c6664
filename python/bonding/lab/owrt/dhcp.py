"""The ISPs' DHCP servers of an OpenWrt router: busybox udhcpd in an ISP's network namespace,
serving its end of one link (100.64.<n>.0/24, the gateway 100.64.<n>.1, from .2 on)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from bonding.lab.commands import nsx

LEASE_S = 60  # udhcpd's lease time (busybox's minimum): udhcpc renews at half of it


def udhcpd_conf(device: str, n: int, lease_file: Path) -> str:
    """busybox udhcpd's configuration for link n on `device` (100.64.<n>.0/24)."""
    return (f"interface {device}\nstart 100.64.{n}.2\nend 100.64.{n}.20\n"
            f"lease_file {lease_file}\npidfile {lease_file}.pid\nmin_lease {LEASE_S}\n"
            f"option subnet 255.255.255.0\noption router 100.64.{n}.1\n"
            f"option lease {LEASE_S}\n")


def start_udhcpd(ns: str, device: str, n: int, workdir: Path, *,
                 detach: bool = False) -> subprocess.Popen[bytes]:
    """udhcpd serving link n on `device` of namespace `ns`; its files (conf, leases, log) in
    `workdir`; with `detach`, in a session of its own (it outlives its starter)."""
    workdir.mkdir(parents=True, exist_ok=True)
    conf = workdir / f"udhcpd{n}.conf"
    conf.write_text(udhcpd_conf(device, n, workdir / f"udhcpd{n}.leases"))
    with open(workdir / f"udhcpd{n}.log", "ab") as log:
        # -a: 50 ms for its ARP check of the address it offers (2 s by default)
        return subprocess.Popen(nsx(ns, "busybox", "udhcpd", "-f", "-a", "50", str(conf)),
                                stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                start_new_session=detach)
