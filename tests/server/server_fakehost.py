"""An in-memory host for the bonding-server unit tests (the twin of bonding.server.system.Host).

It keeps what the real host would: sysctl values, MPTCP limits, the nft table as applied, tc
lines per device, users, files, systemd units.  Every change is logged in ``changes`` so a test
can tell a second `init` touched nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bonding.server import congestion, plan
from bonding.server.model import ServerError
from bonding.server.system import normalize


class FakeHost:
    def __init__(self, *, systemd: bool = False) -> None:
        self.sysctls = {"net.mptcp.enabled": "1", "net.mptcp.allow_join_initial_addr_port": "1",
                        "net.ipv4.tcp_rmem": "4096 131072 6291456",
                        "net.ipv4.tcp_wmem": "4096 16384 4194304",
                        "net.ipv4.tcp_slow_start_after_idle": "1"}
        self.limits = {"subflows": 2, "add_addr_accepted": 0}
        self.table: str | None = None
        self.counters: dict[str, tuple[int, int]] = {}
        self.tc: dict[str, list[str]] = {}
        self.links = {"eth0", "lo"}
        self.busy_ports: set[int] = set()
        self.users = {"nobody": 65534}
        self.files: dict[str, bytes] = {}
        self.systemd = systemd
        self.units_enabled: set[str] = set()
        self.units_active: set[str] = set()
        self.missing: set[str] = set()
        self.not_runnable: dict[str, str] = {}  # program → why the proxies' user cannot run it
        self.changes: list[str] = []
        self.fail_tc = False
        self.scripts: list[str] = []
        self.unknown_cc: set[str] = set()
        # routes as `ip -j route show table main` gives them (taken from a real one), and what
        # `ip -batch` made of table congestion.TABLE and the rules
        self.main: dict[int, list[dict[str, Any]]] = {
            4: [{"dst": "default", "gateway": "203.0.113.1", "dev": "eth0", "flags": []},
                {"dst": "203.0.113.0/24", "dev": "eth0", "protocol": "kernel", "scope": "link",
                 "prefsrc": "203.0.113.10", "flags": []}],
            6: [{"dst": "2001:db8:5::/64", "dev": "eth0", "protocol": "kernel", "metric": 256,
                 "flags": [], "pref": "medium"},
                {"dst": "default", "gateway": "2001:db8:5::1", "dev": "eth0", "metric": 1024,
                 "flags": [], "pref": "medium"}]}
        self.cc_table: dict[int, list[dict[str, Any]]] = {4: [], 6: []}
        self.rules: dict[int, list[dict[str, Any]]] = {4: [], 6: []}

    def which(self, prog: str) -> str | None:
        return None if prog in self.missing else f"/usr/bin/{prog}"

    def sysctl_get(self, key: str) -> str | None:
        return self.sysctls.get(key)

    def sysctl_set(self, key: str, value: str) -> None:
        self.sysctls[key] = value
        self.changes.append(f"sysctl {key}")

    def mptcp_limits(self) -> dict[str, int]:
        return dict(self.limits)

    def set_mptcp_limits(self, limits: dict[str, int]) -> None:
        self.limits = dict(limits)
        self.changes.append("mptcp limits")

    def nft_listing(self) -> str | None:
        return None if self.table is None else normalize(self.table)

    def nft_counters(self) -> dict[str, tuple[int, int]]:
        return dict(self.counters)

    def nft_apply(self, script: str) -> None:
        head = f"add table inet {plan.NFT_TABLE}\ndelete table inet {plan.NFT_TABLE}\n"
        assert script.startswith(head), script[:200]
        self.table = script[len(head):]
        self.scripts.append(script)
        self.changes.append("nft")

    def ip_json(self, family: int, *args: str) -> list[dict[str, Any]]:
        if args[:2] == ("rule", "show"):
            return [{"priority": 0, "src": "all", "table": "local"}, *self.rules[family],
                    {"priority": 32766, "src": "all", "table": "main"}]
        assert args[:3] == ("route", "show", "table"), args
        return list(self.main[family] if args[3] == "main" else
                    self.cc_table[family] if args[3] == str(congestion.TABLE) else [])

    def ip_batch(self, family: int, script: str) -> None:
        """What the kernel does with the lines bonding.server.congestion writes."""
        for line in script.splitlines():
            w = line.split()
            if w[:2] == ["route", "flush"]:
                self.cc_table[family] = []
            elif w[:2] == ["rule", "del"]:
                self.rules[family].pop()
            elif w[:2] == ["route", "append"]:
                if w[-1] in self.unknown_cc:
                    raise ServerError("`ip -4 -batch -` failed (exit 2): Error: Unknown tcp "
                                      "congestion algorithm.; Command failed -:2")
                route = next(r for r in self.main[family] if r["dst"] == w[2])
                self.cc_table[family].append({**route, "metrics": [{"congestion": w[-1]}]})
            elif w[:2] == ["rule", "add"]:
                a, _, b = w[w.index("sport") + 1].partition("-")
                self.rules[family].append(
                    {"priority": int(w[3]), "src": "all", "ipproto": "tcp", "table": w[-1],
                     **({"sport_start": int(a), "sport_end": int(b)} if b else
                        {"sport": int(a)})})
            else:
                raise AssertionError(line)
        self.changes.append(f"ip -{family} batch")

    def tc_listing(self, dev: str) -> str:
        return "\n".join(self.tc.get(dev, []))

    def tc_ours(self, dev: str) -> bool:
        return dev in self.tc

    def tc_teardown(self, dev: str) -> None:
        if self.tc.pop(dev, None) is not None:
            self.changes.append(f"tc teardown {dev}")

    def tc_build(self, dev: str, lines: Sequence[str]) -> None:
        if self.fail_tc:
            raise ServerError("`tc -batch -` failed (exit 1): RTNETLINK answers: No such device")
        self.tc[dev] = list(lines)
        self.changes.append(f"tc build {dev}")

    def link_exists(self, dev: str) -> bool:
        return dev in self.links

    def default_interface(self) -> str | None:
        return "eth0"

    def connected_networks(self) -> list[str]:
        return ["203.0.113.0/24", "10.77.0.0/24", "2001:db8:5::/64"]

    def nameservers(self) -> list[str]:
        return ["127.0.0.53"]

    def ipv6(self) -> bool:
        return True

    def public_address(self) -> str | None:
        return "203.0.113.10"

    def port_free(self, port: int) -> bool:
        return port not in self.busy_ports

    def uid(self, user: str) -> int | None:
        return self.users.get(user)

    def exec_problem(self, program: str, user: str) -> str | None:
        return self.not_runnable.get(program)

    def create_user(self, user: str) -> None:
        self.users[user] = 999 - len(self.users)  # as useradd --system: downwards from 999
        self.changes.append(f"useradd {user}")

    def read_file(self, path: str) -> bytes | None:
        return self.files.get(path)

    def write_file(self, path: str, data: bytes, mode: int) -> None:
        self.files[path] = data
        self.changes.append(f"write {path}")

    def remove_file(self, path: str) -> None:
        if self.files.pop(path, None) is not None:
            self.changes.append(f"remove {path}")

    def systemd_running(self) -> bool:
        return self.systemd

    def systemctl(self, *args: str, check: bool = True) -> str:
        verb, units = args[0], [a for a in args[1:] if not a.startswith("--")]
        if verb == "is-enabled":
            return "enabled\n" if units[0] in self.units_enabled else "disabled\n"
        if verb == "is-active":
            return "active\n" if units[0] in self.units_active else "inactive\n"
        if verb == "show":
            active = units[-1] in self.units_active
            return (f"ActiveState={'active' if active else 'inactive'}\n"
                    f"MainPID={4242 if active else 0}\nNRestarts=0\n")
        self.changes.append("systemctl " + " ".join(args))
        if verb == "enable":
            self.units_enabled.update(units)
            if "--now" in args:
                self.units_active.update(units)
        elif verb == "disable":
            self.units_enabled.difference_update(units)
            if "--now" in args:
                self.units_active.difference_update(units)
        elif verb == "start":
            self.units_active.update(units)
        elif verb == "stop":
            self.units_active.difference_update(units)
        return ""
