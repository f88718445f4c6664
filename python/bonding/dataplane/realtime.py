"""Realtime UDP (bonding.config.realtime) natively through the live path with the lowest RTT.

Realtime datagrams never ride inside the bonded TCP connection (where they wait behind bulk
data and lost segments on every link, the slow ones too): each one is routed natively through
one WAN, the live, non-backup path whose probes see the lowest RTT, and masqueraded to its
address (by the masquerade of bonding.dataplane.pinning's table, which covers every pin mark).
The target sees that WAN's address.

One table of its own, ``table inet bonding_realtime``:

- chain ``prerouting`` (filter, priority mangle - 2: before the pinning table, whose rules
  therefore win, and before the tproxy of ``inet bonding``, which leaves pin-marked packets
  alone) sends IPv4 UDP arriving on a LAN device to chain ``lan``;
- chain ``lan`` skips answers, what is addressed to the router and the bypassed networks, and
  sends to chain ``steer`` what is realtime: its DSCP, a port of either end, its device;
- chain ``steer`` puts the pin mark of the chosen path on the packet (``policy rule fwmark →
  that path's table``) and the realtime bit on the packet (bonding.dataplane.shaping's
  realtime class) and on its connection.

Every datagram is marked anew, so a flow follows the chosen path.  When the choice changes
(bondingd re-renders on every change of the paths' state) the conntrack entries with the
realtime bit are deleted (bonding.netlink.conntrack): the next datagram of each flow gets a new
entry, masqueraded to the new path's address.  (The kernel would kill a masqueraded entry whose
output device changed by itself, nf_nat_oif_changed, but drops the datagram that finds it: the
lab saw the same gap without the flush; the flush saves that datagram per flow and covers an
SNAT rule a user's firewall puts there instead.)  With no live path nothing is marked: realtime
traffic is bonded like the rest.  IPv6 is not steered (it is not NATed): it stays bonded.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

from bonding.config import Config
from bonding.config.realtime import is_mac
from bonding.core.plan import PathView, PinMarks
from bonding.dataplane import nft
from bonding.netlink.core import NetlinkError

log = logging.getLogger("bondingd.realtime")

TABLE: Final = "bonding_realtime"
PREROUTING: Final = "type filter hook prerouting priority mangle - 2; policy accept;"
REMOVE: Final = (f"# bondingd has realtime off: no table of its own.\n"
                 f"table {nft.FAMILY} {TABLE} {{}}\ndelete table {nft.FAMILY} {TABLE}\n")


def realtime_bit(marks: PinMarks) -> int:
    """The ct mark bit of realtime flows: just above the pin field."""
    return 1 << (marks.shift + PinMarks.BITS)


@dataclass(frozen=True)
class Choice:
    """The path realtime traffic takes now (None: none is live, it is bonded) and why."""

    path: PathView | None
    why: str

    @property
    def name(self) -> str | None:
        return self.path.name if self.path is not None else None


def choose(views: Sequence[PathView]) -> Choice:
    """The live, non-backup IPv4 path with the lowest RTT (backup paths when no other is live;
    a path not yet measured comes after the measured ones; ties: file order)."""
    live = [v for v in views
            if v.state.live and v.link_ok and v.address is not None and v.ifindex]
    if not live:
        return Choice(None, "no live path: realtime is bonded")
    pool = [v for v in live if not v.backup] or live

    def key(v: PathView) -> tuple[bool, float, int]:
        r = v.rtt_ms
        return (r is None, r if r is not None else 0.0, v.index)

    best = min(pool, key=key)
    r = best.rtt_ms
    rtt = f"RTT {r:.0f} ms" if r is not None else "RTT not measured yet"
    rest = "" if len(pool) == 1 else f", the lowest of {len(pool)} live paths"
    return Choice(best, f"{best.name}: {rtt}{rest}")


def _set(values: Sequence[str]) -> str:
    return "{ " + ", ".join(values) + " }"


@dataclass(frozen=True)
class RealtimeRuleset:
    """The table as data; :meth:`render` makes the nft text."""

    lan_devices: tuple[str, ...]
    bypass: tuple[str, ...]
    dscp: tuple[str, ...]
    ports: tuple[str, ...]
    devices: tuple[str, ...]
    marks: PinMarks
    path_index: int | None  # the chosen path's; None: nothing is marked

    def _matches(self) -> list[str]:
        out = []
        if self.dscp:
            out.append(f"ip dscp {_set(self.dscp)}")
        if self.ports:
            out += [f"udp dport {_set(self.ports)}", f"udp sport {_set(self.ports)}"]
        macs = [d for d in self.devices if is_mac(d)]
        ips = [d for d in self.devices if not is_mac(d)]
        if macs:
            out.append(f"ether saddr {_set(macs)}")
        if ips:
            out.append(f"ip saddr {_set(ips)}")
        return out

    def _steer(self) -> list[str]:
        if self.path_index is None:
            return ["\t\t# no live path: realtime is bonded"]
        keep = f"{~self.marks.mask & 0xFFFFFFFF:#010x}"
        bit = realtime_bit(self.marks)
        mark = self.marks.path(self.path_index) | bit  # the bit: the shaper's realtime class
        return [f"\t\tmeta mark set meta mark & {keep} | {mark:#010x} "
                f"ct mark set ct mark | {bit:#010x} accept"]

    def render(self) -> str:
        lines = [
            "# Generated by bondingd from the realtime options of /etc/config/bonding: do not "
            "edit.",
            f"table {nft.FAMILY} {TABLE} {{", f"\tchain prerouting {{ {PREROUTING} }}",
            "\tchain lan {}", "\tchain steer {}", "}",
            *(f"flush chain {nft.FAMILY} {TABLE} {c}" for c in ("prerouting", "lan", "steer")),
            f"table {nft.FAMILY} {TABLE} {{", "\tchain prerouting {"]
        if self.lan_devices:
            devices = ", ".join(nft.quote(d) for d in self.lan_devices)
            lines.append(f"\t\tiifname {{ {devices} }} meta nfproto ipv4 meta l4proto udp "
                         "jump lan")
        lines += ["\t}", "", "\tchain lan {", "\t\tct direction reply return",
                  "\t\tfib daddr type { local, broadcast, anycast, multicast } return"]
        if self.bypass:
            lines.append(f"\t\tip daddr {_set(self.bypass)} return")
        lines += [f"\t\t{m} goto steer" for m in self._matches()]
        lines += ["\t}", "", "\tchain steer {", *self._steer(), "\t}", "}", ""]
        return "\n".join(lines)


def build(cfg: Config, choice: Choice) -> RealtimeRuleset:
    g = cfg.globals
    return RealtimeRuleset(
        tuple(g.lan_devices), tuple(nft.collapse(g.bypass, 4)), tuple(g.realtime_dscp),
        tuple(g.realtime_ports), tuple(g.realtime_devices), PinMarks.above(g.tproxy_mask),
        choice.path.index if choice.path is not None else None)


class Flusher(Protocol):
    def flush_mark(self, mark: int, mask: int) -> None: ...


class Realtime:
    """Keeps ``inet bonding_realtime`` on the best path; forgets realtime flows' NAT when the
    path changes; says in status which path realtime traffic takes and why."""

    def __init__(self, table: nft.Nft | None = None, conntrack: Flusher | None = None) -> None:
        self.nft = table or nft.Nft(remove_text=REMOVE)
        self.conntrack = conntrack
        self.choice: Choice | None = None
        self.error = ""
        self._removed_once = False

    def _flush(self, marks: PinMarks) -> None:
        if self.conntrack is None:
            from bonding.netlink.conntrack import Conntrack  # needs CAP_NET_ADMIN: opened late
            self.conntrack = Conntrack()
        bit = realtime_bit(marks)
        self.conntrack.flush_mark(bit, bit)

    def apply(self, cfg: Config, views: Sequence[PathView]) -> None:
        g = cfg.globals
        if not (g.enabled and g.realtime):
            self._off()
            return
        try:
            choice = choose(views)
            moved = self.choice is not None and self.choice.name != choice.name
            if self.nft.apply(build(cfg, choice)):
                log.info("realtime: %s", choice.why)
            self.choice = choice
            if moved:
                self._flush(PinMarks.above(g.tproxy_mask))
            self.error = ""
        except (nft.NftError, NetlinkError, OSError) as e:
            self.error = f"realtime: {e}"
            log.error("%s", self.error)

    def _off(self) -> None:
        """Realtime is off: remove our table if we loaded one, or (once, quietly: a router
        without nft is fine without realtime) one an earlier bondingd left."""
        self.choice = None
        self.error = ""
        if self.nft.applied is None and self._removed_once:
            return
        self._removed_once = True
        nft.remove_quietly(self.nft, log, f"table inet {TABLE}")

    def remove(self) -> None:
        self._removed_once = True
        self.choice = None
        self.nft.remove()

    def status(self) -> dict[str, Any] | None:
        if self.choice is None:
            return None
        return {"path": self.choice.name, "why": self.choice.why}
