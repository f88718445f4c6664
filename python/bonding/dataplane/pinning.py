"""Pinning in the data plane: `config rule` sections → what each does now, and its nftables.

One table of its own, ``table inet bonding_rules``, loaded like bondingd's ``inet bonding``
(one transaction that deletes and re-adds it), whether the proxy runs or not, so a pinned
device stays on its WAN also while the proxy is failed or disabled:

- chain ``lan`` (hook prerouting, priority mangle - 1: before the tproxy of ``inet bonding``)
  looks at what arrives on a LAN device, not answers (``ct direction reply``) nor addressed to
  the router or broadcast.  The rules judge a connection's first packet (``ct state new``);
  the mark they give goes on the connection too (ct mark), and chain ``decided`` gives its
  later packets the same (so a rule or a path that changes moves new connections only, and an
  established bonded one never leaks out natively with a LAN source address).  The first rule
  that matches decides:
  - ``block_quic``: UDP to port 443 of the rule's match is rejected (ICMP port unreachable, so
    a browser falls back to TCP at once, and TCP bonds);
  - bond: ``return`` (unmarked: ``inet bonding`` hands it to the proxy; later rules skipped);
  - path i: the pin mark of path i (bonding.core.plan.PinMarks), ``accept``: ``inet bonding``
    leaves marked packets alone (``meta mark & mask != 0 return``) and the policy rule
    ``fwmark <path i>/<mask> lookup <path table i>`` sends them out of that WAN only;
  - any (``bypass``, ``fallback 'any'``): the mark ANY, which has no rule of its own: the
    router's default route (bondingd keeps it on a live path: option manage_default_route);
  - drop: ``drop``.
- chain ``postrouting`` (nat, priority srcnat - 1): marked IPv4 leaving by a path's device is
  masqueraded, so the target sees that WAN's address (what fw4's wan zone does on OpenWrt; the
  rule makes it so also where there is no fw4, or the zone does not masquerade).

A `path:` rule whose path is down (or unknown) does what its fallback says; bondingd re-renders
the table on every change of the paths' state (the table is replaced only when its text
changes).  IPv6: see bonding.config.rules.

On OpenWrt the same text goes to :data:`FW4_INCLUDE` in the run directory, which the package
links from ``/usr/share/nftables.d/ruleset-post/31-bonding-rules.nft``, as ``inet bonding``'s:
``fw4 reload`` and ``fw4 restart`` touch only fw4's own table, but ``fw4 flush`` (the firewall
service's stop) deletes every table, and the next ``fw4 start`` loads the includes, so the
table comes back with the firewall (its domain sets empty until dnsmasq resolves the names
again).  bondingd need not watch the firewall.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

from bonding.config import Config
from bonding.config.rules import Rule
from bonding.core.plan import PathView, PinMarks
from bonding.dataplane import domains, nft

log = logging.getLogger("bondingd.pinning")

TABLE: Final = "bonding_rules"
FW4_INCLUDE: Final = "fw4-rules.nft"  # in the run directory, linked from fw4's ruleset-post
QUIC_PORT: Final = 443
PREROUTING: Final = "type filter hook prerouting priority mangle - 1; policy accept;"
POSTROUTING: Final = "type nat hook postrouting priority srcnat - 1; policy accept;"
REMOVE: Final = (f"# bondingd has no rule sections: no table of its own.\n"
                 f"table {nft.FAMILY} {TABLE} {{}}\ndelete table {nft.FAMILY} {TABLE}\n")


class Verdict(StrEnum):
    """What a rule does with what it matches, now."""

    BOND = "bond"
    PATH = "path"
    ANY = "any"
    DROP = "drop"


@dataclass(frozen=True)
class PathNow:
    """What a rule needs to know of a path: where its table is, whether it is live, why not."""

    name: str
    index: int
    device: str | None
    live: bool
    reason: str = ""


@dataclass(frozen=True)
class Decision:
    """What a rule does now (`verdict`, and for PATH the path) and why."""

    rule: Rule
    verdict: Verdict
    why: str
    path: PathNow | None = None

    @property
    def effective(self) -> str:
        if self.verdict is Verdict.PATH and self.path is not None:
            return f"path:{self.path.name}"
        return str(self.verdict)

    def as_status(self, proxy_running: bool) -> dict[str, Any]:
        why = self.why
        if self.verdict == Verdict.BOND and not proxy_running:
            why += ("; the proxy is not running: it is routed natively by the default route "
                    "until it is")
        r = self.rule
        return {"name": r.name, "match": r.match_text(), "action": r.action,
                "fallback": r.fallback if r.path else None, "block_quic": r.block_quic,
                "effective": self.effective, "why": why}


def paths_now(views: Sequence[PathView]) -> dict[str, PathNow]:
    """The paths as rules see them: live when their IPv4 is up (or degraded) and has a link."""
    out = {}
    for v in views:
        live = v.state.live and v.link_ok and v.address is not None and bool(v.ifindex)
        if live:
            reason = ""
        elif v.address is None:
            reason = "no IPv4 address"
        elif not v.link_ok:
            reason = "no link"
        else:
            reason = str(v.state)
        out[v.name] = PathNow(v.name, v.index, v.device, live, reason)
    return out


def decide(rule: Rule, paths: Mapping[str, PathNow]) -> Decision:
    """What `rule` does with the paths as they are now, and why (for status)."""
    if rule.action == "bond":
        return Decision(rule, Verdict.BOND, "action bond")
    if rule.action == "bypass":
        return Decision(rule, Verdict.ANY, "action bypass: native, by the default route")
    name = rule.path
    assert name is not None
    p = paths.get(name)
    if p is not None and p.live:
        return Decision(rule, Verdict.PATH, f"{name} up", p)
    down = f"no path '{name}'" if p is None else f"{name} down ({p.reason})"
    verdict = {"bond": Verdict.BOND, "any": Verdict.ANY, "drop": Verdict.DROP}[rule.fallback]
    return Decision(rule, verdict, f"{down}: fallback {rule.fallback}")


def _set(values: Sequence[str]) -> str:
    return "{ " + ", ".join(values) + " }"


def _where(rule: Rule) -> list[tuple[str | None, list[str]]]:
    """The rule's source and destination match as nft expressions, per family it applies to
    (None: both at once)."""
    out = []
    if rule.src_mac:
        out.append(f"ether saddr {_set(rule.src_mac)}")
    if rule.src_ip:
        out.append(f"ip saddr {_set(rule.src_ip)}")
    if rule.dest_ip:
        out.append(f"ip daddr {_set(rule.dest_ip)}")
    if rule.ipv4_only:
        return [("ipv4", out)]
    if rule.dest_domain:
        s4, s6 = domains.set_names(rule)
        return [("ipv4", [*out, f"ip daddr @{s4}"]), ("ipv6", [*out, f"ip6 daddr @{s6}"])]
    return [(None, out)]


def _what(rule: Rule) -> list[str]:
    """The rule's protocol and port match."""
    ports = f" dport {_set(rule.dest_port)}" if rule.dest_port else ""
    if rule.proto in ("tcp", "udp"):
        return [f"{rule.proto}{ports}" if ports else f"meta l4proto {rule.proto}"]
    return [f"meta l4proto {{ tcp, udp }} th{ports}"] if ports else []


@dataclass(frozen=True)
class PinRuleset:
    """The table as data; :meth:`render` makes the nft text."""

    lan_devices: tuple[str, ...]
    decisions: tuple[Decision, ...]
    marks: PinMarks
    wan_devices: tuple[str, ...]  # the paths' devices: marked traffic leaving there is NATed
    path_indexes: tuple[int, ...] = ()  # every path's: a connection keeps the mark it got

    def _keep(self) -> str:
        return f"{~self.marks.mask & 0xFFFFFFFF:#010x}"

    def _mark(self, value: int) -> str:
        """Mark the packet and its connection (later packets get it back in chain decided)."""
        return (f"ct mark set ct mark & {self._keep()} | {value:#010x} "
                f"meta mark set meta mark & {self._keep()} | {value:#010x} accept")

    def _decided(self) -> list[str]:
        """Chain decided: a connection's later packets get the mark its first one got, so a
        change of the rules or of a path's state moves new connections only (an established
        one cannot change its way out: its address is that WAN's, or the server's)."""
        mask = f"{self.marks.mask:#010x}"
        values = [self.marks.path(i) for i in self.path_indexes] + [self.marks.any]
        return ["", "\tchain decided {", *(
            f"\t\tct mark & {mask} == {v:#010x} meta mark set meta mark & {self._keep()} | "
            f"{v:#010x} accept" for v in values), "\t}"]

    def _lines(self, d: Decision) -> list[str]:
        r = d.rule
        out = []
        for family, where in _where(r):
            fam = [f"meta nfproto {family}"] if family else []
            if r.block_quic:
                out.append(" ".join([*fam, *where, f"udp dport {QUIC_PORT} reject"]))
            match = [*fam, *where, *_what(r)]
            if d.verdict is Verdict.PATH:
                assert d.path is not None
                if family in (None, "ipv4"):
                    out.append(" ".join(["meta nfproto ipv4", *where, *_what(r),
                                         self._mark(self.marks.path(d.path.index))]))
                if family in (None, "ipv6"):  # IPv6 is not NATed: native by its prefix's route
                    out.append(" ".join(["meta nfproto ipv6", *where, *_what(r),
                                         self._mark(self.marks.any)]))
            elif d.verdict is Verdict.ANY:
                out.append(" ".join([*match, self._mark(self.marks.any)]))
            else:
                out.append(" ".join([*match, "drop" if d.verdict is Verdict.DROP else "return"]))
        return [f"\t\t{line}" for line in out]

    def _declare(self) -> list[str]:
        """The table, its sets and its chains, created if missing (a set keeps what dnsmasq
        put in it); their rules are flushed and written again after this."""
        sets = []
        for d in self.decisions:
            if d.rule.dest_domain:
                for name, kind in zip(domains.set_names(d.rule), ("ipv4_addr", "ipv6_addr"),
                                      strict=True):
                    sets.append(f"\tset {name} {{ type {kind}; flags timeout; "
                                f"timeout {domains.SET_TIMEOUT}; }}")
        return [
            f"table {nft.FAMILY} {TABLE} {{", *sets,
            f"\tchain prerouting {{ {PREROUTING} }}", "\tchain lan {}", "\tchain decided {}",
            f"\tchain postrouting {{ {POSTROUTING} }}", "}",
            *(f"flush chain {nft.FAMILY} {TABLE} {c}"
              for c in ("prerouting", "lan", "decided", "postrouting")),
        ]

    def render(self) -> str:
        devices = ", ".join(nft.quote(d) for d in self.lan_devices)
        lines = [
            "# Generated by bondingd from the rule sections of /etc/config/bonding: do not edit.",
            *self._declare(),
            f"table {nft.FAMILY} {TABLE} {{",
            "\tchain prerouting {",
        ]
        if self.lan_devices:
            lines.append(f"\t\tiifname {{ {devices} }} jump lan")
        lines += ["\t}", "", "\tchain lan {", "\t\tct direction reply return",
                  "\t\tfib daddr type { local, broadcast, anycast, multicast } return",
                  "\t\tct state != new goto decided"]
        for d in self.decisions:
            lines.append(f"\t\t# rule {d.rule.name}: {d.effective} ({d.why})")
            lines += self._lines(d)
        lines += ["\t}", *self._decided(), "", "\tchain postrouting {"]
        if self.wan_devices:
            wans = ", ".join(nft.quote(d) for d in self.wan_devices)
            lines.append(f"\t\tmeta nfproto ipv4 meta mark & {self.marks.mask:#010x} != 0 "
                         f"oifname {{ {wans} }} masquerade")
        lines += ["\t}", "}", ""]
        return "\n".join(lines)


def build(cfg: Config, views: Sequence[PathView]) -> tuple[PinRuleset, tuple[Decision, ...]]:
    """The table for the enabled rules and the paths as they are now."""
    now = paths_now(views)
    decisions = tuple(decide(r, now) for r in cfg.rules if r.enabled)
    wans = tuple(sorted({v.device for v in views if v.device}))
    marks = PinMarks.above(cfg.globals.tproxy_mask)
    indexes = tuple(sorted({v.index for v in views}))
    return PinRuleset(tuple(cfg.globals.lan_devices), decisions, marks, wans,
                      indexes), decisions


class Pinning:
    """Keeps ``inet bonding_rules`` in step with the rules and the paths; status of each rule."""

    def __init__(self, table: nft.Nft | None = None,
                 dnsmasq: domains.DnsmasqConf | None = None) -> None:
        self.nft = table or nft.Nft(remove_text=REMOVE)
        self.dnsmasq = dnsmasq or domains.DnsmasqConf()
        self.decisions: tuple[Decision, ...] = ()
        self.error = ""
        self._removed_once = False  # a table left by an earlier bondingd is removed once

    @classmethod
    def for_run_dir(cls, run_dir: Path, fw4: bool | None = None) -> Pinning:
        """With the fw4 include in `run_dir` where fw4 is installed (`fw4`: whether it is)."""
        use_fw4 = nft.has_fw4() if fw4 is None else fw4
        return cls(nft.Nft(remove_text=REMOVE,
                           include=run_dir / FW4_INCLUDE if use_fw4 else None))

    def marks(self, cfg: Config) -> PinMarks | None:
        """The marks for plan() (None: no enabled rule, no policy rule)."""
        g = cfg.globals
        if not g.enabled or not (g.realtime or any(r.enabled for r in cfg.rules)):
            return None  # (realtime traffic takes the pin marks and the masquerade too)
        return PinMarks.above(cfg.globals.tproxy_mask)

    def apply(self, cfg: Config, views: Sequence[PathView]) -> None:
        """Load the table the rules call for now (or remove it when there are none)."""
        try:
            if self.marks(cfg) is None:
                self.decisions = ()
                if self.nft.applied is not None or self.dnsmasq.written is not None:
                    self.remove()
                elif not self._removed_once:
                    self._leftover()
                self.error = ""
                return
            ruleset, decisions = build(cfg, views)
            if self.nft.apply(ruleset):
                log.info("nftables: table inet %s loaded: %s", TABLE,
                         "; ".join(f"{d.rule.name} → {d.effective} ({d.why})"
                                   for d in decisions))
            self.decisions = decisions
            self.error = ""
        except (nft.NftError, OSError) as e:
            self.error = f"rules: {e}"
            log.error("nftables: %s", self.error)
            return
        self._dnsmasq(cfg.globals.dnsmasq_nftset,
                      domains.nftset_lines(cfg.rules, nft.FAMILY, TABLE))

    def _dnsmasq(self, path: str, text: str) -> None:
        """dnsmasq's nftset file (after the table: its sets exist when dnsmasq starts)."""
        try:
            self.dnsmasq.sync(path, text)
        except OSError as e:
            self.error = (f"rules: dnsmasq's nftset file {path}: {e}: the dest_domain rules "
                          "match nothing; set option dnsmasq_nftset to a file in dnsmasq's "
                          "conf-dir")
            log.error("%s", self.error)

    def _leftover(self) -> None:
        """Remove a table an earlier bondingd left (once; quietly: without rules, a router
        without nft is fine)."""
        self._removed_once = True
        nft.remove_quietly(self.nft, log, f"a leftover table inet {TABLE}")

    def remove(self) -> None:
        self._removed_once = True
        self._dnsmasq("", "")
        self.nft.remove()

    def forget_include(self) -> None:
        """Remove the fw4 include (bondingd stops: fw4 then skips the dangling link)."""
        self.nft.forget_include()

    def status(self, proxy_running: bool) -> list[dict[str, Any]]:
        return [d.as_status(proxy_running) for d in self.decisions]
