"""Faults the lab makes: a link blackholed (all of it, or one IP version), made lossy, or its
carrier lost, and an aggregation server blackholed; each undone the same way.

A link's faults are nftables rules in its ISP's `fault` chain (bonding.lab.build puts the
chain in the forward path); the rule texts are built by the pure functions here."""

from __future__ import annotations

from bonding.lab.base import LabBase
from bonding.lab.commands import nft, run
from bonding.lab.model import LabError


def blackhole_rule(family: int | None = None) -> str:
    """The fault rule that drops everything (or only IPv`family`: 4 or 6)."""
    if family not in (None, 4, 6):
        raise LabError(f"family {family}: use 4 or 6")
    return "drop" if family is None else f"meta nfproto ipv{family} drop"


def loss_rule(pct: int) -> str:
    """The fault rule that drops `pct` % of the packets at random."""
    if not 0 < pct < 100:
        raise LabError(f"loss {pct}%: use 1–99")
    return f"numgen random mod 100 < {pct} drop"


STRIP_MPTCP_RULE = "tcp option mptcp exists reset tcp option mptcp"  # every MPTCP option gone
DROP_MP_JOIN_RULE = "tcp flags syn tcp option mptcp subtype 1 drop"  # MP_JOIN is subtype 1


def fault_script(rule: str | None) -> str:
    """The nft script that makes `rule` the link's one fault (None: no fault)."""
    script = "flush chain inet lab fault\n"
    if rule:
        script += f"add rule inet lab fault {rule}\n"
    return script


def server_blackhole_script(on: bool) -> str:
    """The nft script that drops all a server namespace receives (`on`) or stops doing so."""
    script = "table inet labfault {}\ndelete table inet labfault\n"
    if on:
        script += ("table inet labfault {\n\tchain in {\n\t\ttype filter hook input "
                   "priority 0; policy drop;\n\t}\n}\n")
    return script


class Faults(LabBase):
    """Faults on the links and the servers."""

    def blackhole(self, name: str, family: int | None = None) -> None:
        """Drop everything the ISP forwards on this link, silently (no carrier change); with
        `family` (4 or 6), only that IP version (an ISP whose IPv6 alone broke)."""
        self._fault(name, blackhole_rule(family))

    def loss(self, name: str, pct: int) -> None:
        self._fault(name, loss_rule(pct))

    def strip_mptcp(self, name: str) -> None:
        """The ISP removes the MPTCP options from every packet it forwards on this link:
        connections opened through it fall back to plain TCP."""
        self._fault(name, STRIP_MPTCP_RULE)

    def drop_mp_join(self, name: str) -> None:
        """The ISP drops the SYNs that carry MP_JOIN: no subflow joins over this link."""
        self._fault(name, DROP_MP_JOIN_RULE)

    def clear(self, name: str) -> None:
        self._fault(name, None)

    def _fault(self, name: str, rule: str | None) -> None:
        nft(self.link(name).isp_ns, fault_script(rule))

    def carrier(self, name: str, on: bool) -> None:
        """Carrier loss as the router sees it: the ISP's end of the cable goes down."""
        link = self.link(name)
        run(["ip", "-n", link.isp_ns, "link", "set", link.isp_dev, "up" if on else "down"])

    def server_blackhole(self, role: str = "server", on: bool = True) -> None:
        """Drop everything that reaches a server namespace, silently (or stop doing so)."""
        st = self.state or self.load()
        nft(st.namespaces[role], server_blackhole_script(on))
