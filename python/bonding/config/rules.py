"""Section `config rule`: pinning what a LAN device or a destination sends, and how.

    config rule 'tvbox'
        option src_mac 'aa:bb:cc:dd:ee:ff'      # list too; or src_ip (address or prefix)
        list dest_ip '198.51.100.0/24'          # IPv4 address or prefix; or dest_domain
        list dest_domain 'example.com'          # and its subdomains, as dnsmasq resolves them
        option proto 'tcp'                      # tcp | udp | any (the default)
        list dest_port '443'                    # port or range 8000-8100 (needs tcp, udp, any)
        option action 'path:wan2'               # bond (default) | bypass | path:<name>
        option path 'wan2'                      # the same as action 'path:wan2'
        option fallback 'bond'                  # while wan2 is down: bond | any | drop
        option block_quic '1'                   # refuse UDP 443 from the match (browsers
                                                # then use TCP, which bonds)

The first rule that matches a packet decides (file order).  Actions: `bond` hands the traffic
to the proxy as if no rule matched (a rule that bonds stops later rules from matching);
`bypass` sends it natively (not through the proxy) by the router's default route, which
bondingd keeps on a live WAN; `path:<name>` natively through that WAN only, masqueraded to its
address (the target sees that WAN's address, not the server's).  `fallback` is what a
`path:` rule does while its WAN is down.  Rules match IPv4 addresses; a rule without an
address match (MAC, protocol or port only) acts on the device's IPv6 too: `path` and `bypass`
route it natively by its prefix's route (IPv6 is not NATed), `drop` drops it.  A
`dest_domain` rule matches the IPv4 and IPv6 addresses dnsmasq resolved its names to
(bonding.dataplane.domains).

Parsed here into frozen `Rule`s; the data plane (bonding.dataplane.pinning) turns them into
nftables rules and fwmarks.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from bonding.config.problems import Problem, Severity
from bonding.config.values import boolean, choice, ipv4_net, port_or_range

ACTIONS: Final = ("bond", "bypass")  # and path:<name>
FALLBACKS: Final = ("bond", "any", "drop")
PROTOS: Final = ("any", "tcp", "udp")
MAX_RULES: Final = 64
PATH_PREFIX: Final = "path:"
_MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
_NAME_RE = re.compile(r"^[A-Za-z0-9_]{1,32}$")


def mac(raw: str) -> str:
    v = raw.strip().lower().replace("-", ":")
    if not _MAC_RE.fullmatch(v):
        raise ValueError("not a MAC address: write six hex pairs like aa:bb:cc:dd:ee:ff")
    if int(v[:2], 16) & 1:
        raise ValueError("a multicast MAC address: a device's own address has bit 0 of the "
                         "first byte clear")
    return v


def _ipv4_only(raw: str) -> str:
    if ":" in raw:
        raise ValueError("an IPv6 address: rules match IPv4 (IPv6 is not NATed, it cannot be "
                         "pinned to one WAN); match the device by src_mac to act on its IPv6")
    return ipv4_net(raw)


port_range = port_or_range("a port", "443 or 8000-8100")


def action(raw: str) -> str:
    v = raw.strip()
    if v in ACTIONS:
        return v
    if v.startswith(PATH_PREFIX):
        name = v[len(PATH_PREFIX):]
        if _NAME_RE.fullmatch(name):
            return v
        raise ValueError(f"'{name}' is not a path name (letters, digits, '_'): "
                         "write path:wan2")
    raise ValueError("not one of: bond, bypass, path:<name> (like path:wan2)")


def path_name(raw: str) -> str:
    v = raw.strip()
    if not _NAME_RE.fullmatch(v):
        raise ValueError("not a path name (letters, digits, '_'): name a path section, "
                         "like wan2")
    return v


_LABEL_RE = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def domain(raw: str) -> str:
    v = raw.strip().lower().rstrip(".")
    labels = v.split(".")
    if (len(v) > 253 or len(labels) < 2 or labels[-1].isdigit()
            or not all(_LABEL_RE.fullmatch(x) for x in labels)):
        raise ValueError("not a domain name: write one like example.com (it matches its "
                         "subdomains too); an address goes in list dest_ip")
    return v


def conf_path(raw: str) -> str:
    """An absolute file path of plain characters (where bondingd writes dnsmasq's nftset
    lines); "" for none."""
    v = raw.strip()
    if (v and not re.fullmatch(r"/[A-Za-z0-9_./-]+", v)) or "/../" in f"{v}/":
        raise ValueError("not an absolute file path of letters, digits and _ . / -: like "
                         "/tmp/dnsmasq.d/bonding-rules.conf (or '' for none)")
    return v


# option name in UCI → (field name, parser, is_list); the same shape as bonding.config.loading's
SPEC: Final[dict[str, tuple[str, Callable[[str], Any], bool]]] = {
    "name": ("name", path_name, False),
    "enabled": ("enabled", boolean, False),
    "src_mac": ("src_mac", mac, True),
    "src_ip": ("src_ip", _ipv4_only, True),
    "dest_ip": ("dest_ip", _ipv4_only, True),
    "dest_domain": ("dest_domain", domain, True),
    "proto": ("proto", choice(*PROTOS), False),
    "dest_port": ("dest_port", port_range, True),
    "action": ("action", action, False),
    "path": ("path", path_name, False),
    "fallback": ("fallback", choice(*FALLBACKS), False),
    "block_quic": ("block_quic", boolean, False),
}


@dataclass(frozen=True)
class Rule:
    """One `config rule` section, validated."""

    name: str
    src_mac: tuple[str, ...] = ()
    src_ip: tuple[str, ...] = ()
    dest_ip: tuple[str, ...] = ()
    dest_domain: tuple[str, ...] = ()  # the addresses dnsmasq resolves them to (nftset)
    proto: str = "any"
    dest_port: tuple[str, ...] = ()
    action: str = "bond"  # bond | bypass | path:<name>
    fallback: str = "bond"  # what a path: rule does while its path is down
    block_quic: bool = False
    enabled: bool = True

    @property
    def path(self) -> str | None:
        """The path a `path:` rule pins to (None for bond and bypass)."""
        return self.action[len(PATH_PREFIX):] if self.action.startswith(PATH_PREFIX) else None

    @property
    def ipv4_only(self) -> bool:
        """It matches IPv4 addresses, so it never applies to IPv6 packets."""
        return bool(self.src_ip or self.dest_ip)

    def match_text(self) -> str:
        """The match in words, for status ("all LAN traffic" when it matches everything)."""
        parts = []
        for label, values in (("src_mac", self.src_mac), ("src_ip", self.src_ip),
                              ("dest_ip", self.dest_ip), ("dest_domain", self.dest_domain)):
            if values:
                parts.append(f"{label} {','.join(values)}")
        if self.proto != "any":
            parts.append(f"proto {self.proto}")
        if self.dest_port:
            parts.append(f"dest_port {','.join(self.dest_port)}")
        return " ".join(parts) or "all LAN traffic"


def make_rule(label: str, section_name: str | None, values: dict[str, Any],
              problems: list[Problem]) -> Rule | None:
    """A `Rule` from a section's parsed options (bonding.config.loading read them with SPEC);
    None when it cannot be made (the problems say why)."""
    def err(option: str | None, value: str | None, msg: str) -> None:
        problems.append(Problem(Severity.ERROR, label, option, value, msg))

    if any(p.section == label and p.severity is Severity.ERROR for p in problems):
        return None
    name = values.pop("name", None) or section_name or label
    path = values.pop("path", None)
    act = values.get("action")
    if path is not None:
        if act is not None and act != PATH_PREFIX + path:
            err("path", path, f"contradicts option action '{act}': keep one of them (option "
                "path 'wan2' is the same as option action 'path:wan2')")
            return None
        values["action"] = PATH_PREFIX + path
    if values.get("dest_ip") and values.get("dest_domain"):
        err("dest_domain", " ".join(values["dest_domain"]),
            "a rule matches dest_ip or dest_domain, not both: make two rules")
        return None
    return Rule(name=name, **values)


def check_rules(rules: Sequence[Rule], labels: Sequence[str], path_names: Sequence[str],
                tproxy_mask: int, problems: list[Problem]) -> None:
    """Checks across sections: the named paths exist (when path sections are given; with none,
    paths come from netifd and are checked at run time), names are unique, the marks fit."""
    def err(label: str, option: str | None, value: str | None, msg: str) -> None:
        problems.append(Problem(Severity.ERROR, label, option, value, msg))

    seen: dict[str, str] = {}
    for rule, label in zip(rules, labels, strict=True):
        if rule.name in seen:
            err(label, None, None, f"a second rule named '{rule.name}' (the first is "
                f"{seen[rule.name]}): give each rule its own name")
        seen.setdefault(rule.name, label)
        if rule.path is not None and path_names and rule.path not in path_names:
            err(label, "action", rule.action,
                f"no path section '{rule.path}': use one of {', '.join(path_names)}")
    if len(rules) > MAX_RULES:
        err("(rules)", None, None, f"{len(rules)} rule sections: at most {MAX_RULES}")
    if rules and tproxy_mask.bit_length() + 1 + MARK_BITS > 32:
        err("globals", "tproxy_mark", f"{tproxy_mask:#x}",
            f"rules need {MARK_BITS} mark bits above the tproxy mask and the proxy's bit: "
            "use a lower tproxy_mark/mask")


MARK_BITS: Final = 6  # path i → mark value i + 1 (paths ≤ 32), 63: native by the default route
