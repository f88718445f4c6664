"""The congestion control of the clients' connections on the server (pure planning).

A bonded download is sent by the server, so the server's congestion control decides how well
it fills each link.  An MPTCP join subflow accepted by the server takes the congestion control
of its connection, which took the listener's: the host's default (``sysctl
net.ipv4.tcp_congestion_control``).  Setting that default would change every other TCP
connection of the host, and a network namespace other than the host's own may only choose one
of ``tcp_allowed_congestion_control``.  So bonding-server puts its choice on routes instead, as
bondingd does on the router: table TABLE holds a copy of the main table's unicast routes, each
with ``congctl lock NAME`` (``lock``: the connection's own choice cannot override it later, as
the MPTCP socket's does for its subflows), and a rule at preference RULE_PREF sends the TCP the
clients' proxies send from their ports (``ipproto tcp sport PORT[-PORT]``) to it.  What the
table does not cover falls through to the main table.  The supervisor re-copies the main table
when it changes (every REFRESH_S); under systemd, `bonding-server apply` does.

Measured in the lab (links 50/30/20 Mbit/s, host default bbr): bonded download goodput 95.3%
of the links' capacity with bbr, 97.9% with cubic on the clients' routes (bench/goodput.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

TABLE: Final = 2470  # the clients' routes (ip route show table 2470)
RULE_PREF: Final = 9470  # before main (32766)
DEFAULT: Final = "cubic"
REFRESH_S: Final = 5.0
FAMILIES: Final = (4, 6)
# route attributes copied as they are: `ip -j route` key → `ip route` keyword
_COPIED: Final = (("protocol", "proto"), ("prefsrc", "src"), ("metric", "metric"))


def port_ranges(ports: Iterable[int]) -> list[tuple[int, int]]:
    """The ports as few inclusive ranges as they allow (sorted)."""
    out: list[tuple[int, int]] = []
    for p in sorted(set(ports)):
        if out and out[-1][1] == p - 1:
            out[-1] = (out[-1][0], p)
        else:
            out.append((p, p))
    return out


def _hop(hop: Mapping[str, Any]) -> list[str]:
    words = []
    if hop.get("gateway"):
        words += ["via", str(hop["gateway"])]
    if hop.get("dev"):
        words += ["dev", str(hop["dev"])]
    if "onlink" in hop.get("flags", ()):
        words.append("onlink")
    return words


def route_line(route: Mapping[str, Any], cc: str) -> str | None:
    """`ip route` words for a copy of one main-table route (from `ip -j route show`) in TABLE
    with the congestion control locked; None for what is not a plain unicast route."""
    if route.get("type", "unicast") != "unicast" or not route.get("dst"):
        return None
    # append: IPv6 refuses a second route to the same prefix at the same metric with add
    words = ["route", "append", str(route["dst"]), "table", str(TABLE)]
    nexthops = route.get("nexthops")
    if nexthops:
        for hop in nexthops:
            words += ["nexthop", *_hop(hop), *(["weight", str(hop["weight"])]
                                               if hop.get("weight") else [])]
    else:
        if not route.get("dev"):
            return None
        words += _hop(route)
    scope = route.get("scope")
    if scope and scope not in ("global", "universe"):
        words += ["scope", str(scope)]
    for key, keyword in _COPIED:
        if route.get(key) not in (None, ""):
            words += [keyword, str(route[key])]
    return " ".join([*words, "congctl", "lock", cc])


def rule_lines(ports: Sequence[int]) -> list[str]:
    return [f"rule add pref {RULE_PREF} ipproto tcp sport {a}" + (f"-{b}" if b != a else "")
            + f" lookup {TABLE}" for a, b in port_ranges(ports)]


def batch(main: Sequence[Mapping[str, Any]], cc: str, ports: Sequence[int],
          have_rules: int) -> str:
    """One `ip -batch` script that makes TABLE a copy of `main` with `cc` and the rules match
    `ports` (`have_rules`: how many rules are at RULE_PREF now).  No client, or no `cc`: none
    of either."""
    lines = [f"route flush table {TABLE}"]
    lines += [f"rule del pref {RULE_PREF}"] * have_rules
    if cc and ports:
        lines += [x for x in (route_line(r, cc) for r in main) if x is not None]
        lines += rule_lines(ports)
    return "\n".join(lines) + "\n"


def wanted(main: Sequence[Mapping[str, Any]], cc: str, ports: Sequence[int]) -> str:
    """What TABLE and the rules should say, as text to compare with :func:`have`."""
    if not cc or not ports:
        return ""
    routes = sorted(x for x in (route_line(r, cc) for r in main) if x is not None)
    return "\n".join([*routes, *rule_lines(ports)])


def have(table: Sequence[Mapping[str, Any]], rules: Sequence[Mapping[str, Any]]) -> str:
    """The same text for what the kernel holds (TABLE's routes from `ip -j route show table
    TABLE`, the rules at RULE_PREF from `ip -j rule show`).  `ip -j` gives the congestion
    control's name (metrics [{"congestion": NAME}]) but not its lock: the table is ours, and
    every route bonding-server writes there is locked."""
    out = []
    for r in table:
        cc = next((m["congestion"] for m in r.get("metrics") or ()
                   if isinstance(m, Mapping) and m.get("congestion")), None)
        line = route_line(r, str(cc)) if cc else None
        out.append(line if line is not None else f"# route {r.get('dst')} not ours")
    ports: list[int] = []
    for rule in rules:
        if rule.get("priority") == RULE_PREF:
            if "sport" in rule:
                ports.append(int(rule["sport"]))
            elif "sport_start" in rule:
                ports += range(int(rule["sport_start"]), int(rule["sport_end"]) + 1)
            else:
                out.append(f"# rule {rule} not ours")
    return "\n".join([*sorted(out), *rule_lines(ports)])
