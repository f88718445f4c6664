"""Shaping: each path's upload and download just below its declared rate, realtime first.

A queue forms where a link is slowest: the ISP's modem or shaper.  Bulk TCP fills it, and a
voice datagram waits behind the whole queue.  Shaping each WAN a little below its rate moves
that queue onto the router, where realtime traffic can be sent first:

- upload: the WAN device's egress (root qdisc);
- download: its ingress, redirected (u32 + mirred) to an ifb device of ours, ``bifb<i>`` for
  path i, whose egress is shaped the same way (what SQM does).  Shaping the download on the
  router rather than per client and path on the server: the router knows every link's rate
  (UCI), and it is the one place that sees both the bonded and the natively routed traffic
  (realtime, pinned) arriving on a link; the cost is a link's rate is not quite reached when
  the sender does not slow down by itself (TCP does).

With cake (``cake bandwidth R diffserv4 nat``; the ingress side with ``ingress``) where the
kernel has it: its tins order by DSCP (EF, CS4/CS5, AF4x go first) and its flow isolation keeps
a sparse stream (50 pps of voice) ahead of bulk flows.  Without cake (this lab's kernel: no
cake, no fq_codel): htb with two classes under one at S = shaping_pct % of the rate,

- ``1:10`` realtime, prio 0 (strict priority), guaranteed 30 % of S and up to S: packets with
  the realtime bit in their fwmark (bonding.dataplane.realtime) and ICMP (bondingd's probes,
  so a full link does not look slow); at the ingress, UDP not from a server and ICMP (the
  marks are set later, in nftables' prerouting);
- ``1:20`` bulk, the rest, prio 1, with a short FIFO (about 50 ms of the rate).

The cap on 1:10's priority (it borrows above 30 % only after bulk has its 70 %) is what keeps
a misclassified bulk UDP flow from starving the bond.

The tc commands are planned by pure functions (:func:`plan_link`); :class:`Shaper` runs them
through a :class:`Runner` and keeps status.  Paths without a declared rate are not shaped.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

from bonding.config import Config
from bonding.core.plan import PathView
from bonding.dataplane import command

log = logging.getLogger("bondingd.shaping")

RT_SHARE_PCT: Final = 30  # of the shaped rate, guaranteed to realtime (it may borrow more)
QUEUE_MS: Final = 50  # the bulk FIFO holds about this long at the shaped rate
MTU_BITS: Final = 1514 * 8
TC_TIMEOUT_S: Final = 10.0

Argv = tuple[str, ...]


class ShapingError(Exception):
    """A tc or ip command failed; the message names it and says why."""


@dataclass(frozen=True)
class LinkShape:
    """What one path is shaped to (kbit/s, already shaping_pct of its declared rates)."""

    path: str
    device: str
    ifb: str
    up_kbit: int | None
    down_kbit: int | None


def ifb_name(index: int) -> str:
    return f"bifb{index}"


def _htb(dev: str, kbit: int, realtime: Sequence[Argv]) -> list[Argv]:
    rt = max(1, kbit * RT_SHARE_PCT // 100)
    limit = max(20, kbit * QUEUE_MS // MTU_BITS)
    tc = ("tc",)
    out: list[Argv] = [
        (*tc, "qdisc", "replace", "dev", dev, "root", "handle", "1:", "htb", "default", "20"),
        (*tc, "class", "replace", "dev", dev, "parent", "1:", "classid", "1:1", "htb",
         "rate", f"{kbit}kbit", "ceil", f"{kbit}kbit", "quantum", "1514"),
        (*tc, "class", "replace", "dev", dev, "parent", "1:1", "classid", "1:10", "htb",
         "rate", f"{rt}kbit", "ceil", f"{kbit}kbit", "prio", "0", "quantum", "1514"),
        (*tc, "class", "replace", "dev", dev, "parent", "1:1", "classid", "1:20", "htb",
         "rate", f"{max(1, kbit - rt)}kbit", "ceil", f"{kbit}kbit", "prio", "1",
         "quantum", "1514"),
        (*tc, "qdisc", "replace", "dev", dev, "parent", "1:10", "handle", "10:", "pfifo",
         "limit", "100"),
        (*tc, "qdisc", "replace", "dev", dev, "parent", "1:20", "handle", "20:", "pfifo",
         "limit", str(limit)),
    ]
    for prio, match in enumerate(realtime, start=1):
        out.append((*tc, "filter", "replace", "dev", dev, "parent", "1:", "protocol", "ip",
                    "prio", str(prio), "u32", *match))
    return out


def _cake(dev: str, kbit: int, *extra: str) -> list[Argv]:
    return [("tc", "qdisc", "replace", "dev", dev, "root", "cake", "bandwidth", f"{kbit}kbit",
             "diffserv4", "nat", *extra)]


ICMP: Final = ("match", "ip", "protocol", "1", "0xff", "flowid", "1:10")


def plan_link(link: LinkShape, realtime_mark: int, servers: Sequence[str],
              cake: bool) -> list[Argv]:
    """The commands that shape `link` (after :func:`plan_teardown` of what it had)."""
    out: list[Argv] = []
    if link.up_kbit:
        if cake:
            out += _cake(link.device, link.up_kbit)
        else:
            mark = ("match", "mark", f"{realtime_mark:#x}", f"{realtime_mark:#x}",
                    "flowid", "1:10")
            out += _htb(link.device, link.up_kbit, [mark, ICMP])
    if link.down_kbit:
        out += [("ip", "link", "add", link.ifb, "type", "ifb"),
                ("ip", "link", "set", link.ifb, "up"),
                ("tc", "qdisc", "replace", "dev", link.device, "handle", "ffff:", "ingress"),
                ("tc", "filter", "replace", "dev", link.device, "parent", "ffff:", "protocol",
                 "all", "prio", "1", "u32", "match", "u32", "0", "0", "action", "mirred",
                 "egress", "redirect", "dev", link.ifb)]
        if cake:
            out += _cake(link.ifb, link.down_kbit, "ingress")
        else:
            from_servers = [("match", "ip", "src", f"{s}/32", "flowid", "1:20")
                            for s in servers if ":" not in s]
            udp = ("match", "ip", "protocol", "17", "0xff", "flowid", "1:10")
            out += _htb(link.ifb, link.down_kbit, [ICMP, *from_servers, udp])
    return out


def plan_teardown(device: str, ifb: str) -> list[Argv]:
    """What removes a link's shaping (each may fail: it may not be there)."""
    return [("tc", "qdisc", "del", "dev", device, "root"),
            ("tc", "qdisc", "del", "dev", device, "ingress"),
            ("ip", "link", "del", ifb)]


def wanted(cfg: Config, views: Sequence[PathView]) -> dict[str, LinkShape]:
    """The shaping of each path with a device and a declared rate, by path name."""
    g = cfg.globals
    if not (g.enabled and g.shaping):
        return {}
    rates = {p.name: p for p in cfg.paths if p.enabled}
    out = {}
    for v in views:
        p = rates.get(v.name)
        if p is None or not v.device or not (p.upload_kbit or p.download_kbit):
            continue

        def pct(kbit: int | None) -> int | None:
            return max(1, kbit * g.shaping_pct // 100) if kbit else None

        out[v.name] = LinkShape(v.name, v.device, ifb_name(v.index), pct(p.upload_kbit),
                                pct(p.download_kbit))
    return out


class Runner(Protocol):
    def run(self, argv: Argv) -> None:
        """Run one command; ShapingError (naming it and why) when it fails."""


class Commands:
    """The real runner: tc and ip from $PATH."""

    def run(self, argv: Argv) -> None:
        r = command.run(argv, error=ShapingError, what=" ".join(argv), timeout_s=TC_TIMEOUT_S,
                        install="tc (OpenWrt: the tc-tiny or tc-full package; Debian: iproute2)")
        if r.returncode != 0:
            raise ShapingError(f"{' '.join(argv)}: {' '.join(r.stderr.split())[:300]}")


class Shaper:
    """Keeps each path's qdiscs as the config says; status per path."""

    def __init__(self, runner: Runner | None = None) -> None:
        self.runner = runner or Commands()
        self.applied: dict[str, LinkShape] = {}
        self.errors: dict[str, str] = {}
        self.cake: bool | None = None  # None: not tried yet
        self._removed_once = False

    def _has_cake(self, link: LinkShape) -> bool:
        """Whether the kernel has cake: tried once, on the first link shaped."""
        if self.cake is None:
            kbit = link.up_kbit or link.down_kbit or 1
            try:
                self.runner.run(_cake(link.device, kbit)[0])
                self.cake = True
            except ShapingError as e:
                log.info("shaping: no cake here (%s): htb with a realtime class", e)
                self.cake = False
            self._quiet(("tc", "qdisc", "del", "dev", link.device, "root"))
        return self.cake

    def _quiet(self, argv: Argv) -> None:
        try:
            self.runner.run(argv)
        except ShapingError as e:
            log.debug("shaping: %s", e)

    def apply(self, cfg: Config, views: Sequence[PathView], realtime_mark: int) -> None:
        want = wanted(cfg, views)
        for name in [n for n in self.applied if want.get(n) != self.applied[n]]:
            old = self.applied.pop(name)
            for argv in plan_teardown(old.device, old.ifb):
                self._quiet(argv)
        if not self._removed_once:  # what an earlier bondingd left on these devices
            self._removed_once = True
            for link in want.values():
                for argv in plan_teardown(link.device, link.ifb):
                    self._quiet(argv)
        self.errors = {n: e for n, e in self.errors.items() if n in want}
        servers = cfg.server_addresses()
        for name, link in want.items():
            if name in self.applied:
                continue
            try:
                for argv in plan_link(link, realtime_mark, servers, self._has_cake(link)):
                    self.runner.run(argv)
            except ShapingError as e:
                self.errors[name] = f"shaping {name}: {e}"
                log.error("%s", self.errors[name])
                for argv in plan_teardown(link.device, link.ifb):
                    self._quiet(argv)
                continue
            self.errors.pop(name, None)
            self.applied[name] = link
            log.info("shaping %s (%s): upload %s, download %s kbit/s (%s)", name, link.device,
                     link.up_kbit or "-", link.down_kbit or "-",
                     "cake" if self.cake else "htb")

    def remove(self) -> None:
        for link in self.applied.values():
            for argv in plan_teardown(link.device, link.ifb):
                self._quiet(argv)
        self.applied = {}

    def status(self) -> dict[str, Any]:
        """Per path shaped (or failed): the shaped rates and the qdisc."""
        out: dict[str, Any] = {n: {"upload_kbit": s.up_kbit, "download_kbit": s.down_kbit,
                                   "qdisc": "cake" if self.cake else "htb", "error": ""}
                               for n, s in self.applied.items()}
        for n, e in self.errors.items():
            out[n] = {"upload_kbit": None, "download_kbit": None, "qdisc": None, "error": e}
        return out
