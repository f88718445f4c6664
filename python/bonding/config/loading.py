"""/etc/config/bonding → a `Config`: the spec of every option, and the checks across them.

Every problem names the section, the option and the value, and says what to do.  Errors make the
whole file unusable (the daemon then keeps its last good config); warnings (an unknown option, a
device that does not exist yet) are reported and the rest is used.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Final

from bonding import uci
from bonding.config import realtime, rules
from bonding.config.model import (
    FAILBACK,
    LOG_LEVELS,
    MAX_PATHS,
    PROXIES,
    Config,
    Globals,
    PathConfig,
    Server,
    Usb,
)
from bonding.config.problems import PACKAGE, ConfigError, Problem, Severity
from bonding.config.values import (
    apn,
    boolean,
    choice,
    cipher_choice,
    congestion,
    fwmark,
    gateway,
    gateway6,
    host,
    ifname,
    ipv4_net,
    ipv6_net,
    is_ipv6,
    netifd_name,
    number,
    probe_target,
    role,
    server_address6,
    username,
    whole,
)

# option name in UCI → (field name, parser, is_list)
_Spec = dict[str, tuple[str, Callable[[str], Any], bool]]

_GLOBALS: _Spec = {
    "enabled": ("enabled", boolean, False),
    "log_level": ("log_level", choice(*LOG_LEVELS), False),
    "proxy": ("proxy", choice(*PROXIES), False),
    "proxy_user": ("proxy_user", username, False),
    "probe_interval_ms": ("probe_interval_ms", whole(20, 60000, " ms"), False),
    "standby_probe_interval_ms": ("standby_probe_interval_ms",
                                  whole(1000, 3_600_000, " ms"), False),
    "probe_timeout_min_ms": ("probe_timeout_min_ms", whole(10, 60000, " ms"), False),
    "probe_timeout_ms": ("probe_timeout_ms", whole(10, 60000, " ms"), False),
    "down_count": ("down_count", whole(1, 100), False),
    "down_window": ("down_window", whole(1, 100), False),
    "up_count": ("up_count", whole(1, 100), False),
    "degraded_loss_pct": ("degraded_loss_pct", whole(1, 100, " %"), False),
    "degraded_rtt_factor": ("degraded_rtt_factor", number(1.0, 100.0), False),
    "degraded_rtt_ms": ("degraded_rtt_ms", whole(0, 60000, " ms"), False),
    "loss_window": ("loss_window", whole(2, 1000, " rounds"), False),
    "probe_target": ("probe_targets", probe_target, True),
    "mptcp_subflows": ("mptcp_subflows", whole(0, 8), False),
    "mptcp_add_addr_accepted": ("mptcp_add_addr_accepted", whole(0, 8), False),
    "route_table": ("route_table", whole(1, 0x7FFFFFFF), False),
    "path_table_base": ("path_table_base", whole(1, 0x7FFFFFFF), False),
    "rule_priority": ("rule_priority", whole(1, 32000), False),
    "manage_default_route": ("manage_default_route", boolean, False),
    "lan_device": ("lan_devices", ifname, True),
    "tproxy_port": ("tproxy_port", whole(1, 65535), False),
    "tproxy_mark": ("tproxy_mark", fwmark, False),
    "tproxy_table": ("tproxy_table", whole(1, 0x7FFFFFFF), False),
    "bypass": ("bypass", ipv4_net, True),
    "bypass6": ("bypass6", ipv6_net, True),
    "proxy_udp": ("proxy_udp", boolean, False),
    "ipv6": ("ipv6", boolean, False),
    "congestion_control": ("congestion_control", congestion, False),
    "server_probe_interval_ms": ("server_probe_interval_ms", whole(100, 60000, " ms"), False),
    "server_down_count": ("server_down_count", whole(1, 100), False),
    "server_up_count": ("server_up_count", whole(1, 100), False),
    "server_failback": ("server_failback", choice(*FAILBACK), False),
    "server_hold_s": ("server_hold_s", whole(0, 86400, " s"), False),
    "dnsmasq_nftset": ("dnsmasq_nftset", rules.conf_path, False),
    "realtime": ("realtime", boolean, False),
    "realtime_dscp": ("realtime_dscp", realtime.dscp, True),
    "realtime_port": ("realtime_ports", realtime.port, True),
    "realtime_device": ("realtime_devices", realtime.device, True),
    "shaping": ("shaping", boolean, False),
    "shaping_pct": ("shaping_pct", whole(50, 100, " %"), False),
    "mptcp_check_interval_s": ("mptcp_check_interval_s", whole(0, 86400, " s"), False),
    "mptcp_join_timeout_s": ("mptcp_join_timeout_s", whole(0, 86400, " s"), False),
    "mptcp_retest_s": ("mptcp_retest_s", whole(10, 604800, " s"), False),
    "mptcp_blocked_native": ("mptcp_blocked_native", boolean, False),
}

_SERVER: _Spec = {
    "address": ("address", host, False),
    "port": ("port", whole(1, 65535), False),
    "protocol": ("protocol", choice("shadowsocks", "vless"), False),
    "cipher": ("cipher", cipher_choice, False),
    "enabled": ("enabled", boolean, False),
    "priority": ("priority", whole(0, 1000), False),
    "udp_over_tcp": ("udp_over_tcp", boolean, False),
    "address6": ("address6", server_address6, False),
}

_PATH: _Spec = {
    "interface": ("interface", netifd_name, False),
    "device": ("device", ifname, False),
    "gateway": ("gateway", gateway, False),
    "gateway6": ("gateway6", gateway6, False),
    "enabled": ("enabled", boolean, False),
    "backup": ("backup", boolean, False),
    "role": ("role", role, False),
    "download_kbit": ("download_kbit", whole(1, 100_000_000, " kbit/s"), False),
    "upload_kbit": ("upload_kbit", whole(1, 100_000_000, " kbit/s"), False),
    "probe_target": ("probe_targets", probe_target, True),
    "congestion_control": ("congestion_control", congestion, False),
}



_USB: _Spec = {
    "auto_dhcp": ("auto_dhcp", boolean, False),
    "modem_mbim": ("modem_mbim", boolean, False),
    "metric_base": ("metric_base", whole(1, 1000), False),
    "apn": ("apn", apn, False),
}



_SECTIONS: Final = {"globals": _GLOBALS, "server": _SERVER, "path": _PATH, "usb": _USB,
                    "rule": rules.SPEC}
_NAME_RE = re.compile(r"^[A-Za-z0-9_]{1,32}$")


def _section_label(s: uci.Section) -> str:
    return s.name if s.name is not None else f"@{s.type}[{s.type_index}]"


def _read_options(s: uci.Section, spec: _Spec, problems: list[Problem]) -> dict[str, Any]:
    label = _section_label(s)
    out: dict[str, Any] = {}
    for opt, raw in s.options.items():
        if opt not in spec:
            if s.type == "rule":  # ignored, a misspelt match would widen the rule
                problems.append(Problem(
                    Severity.ERROR, label, opt, _shown(raw),
                    "unknown option of a 'rule' section (ignoring it could make the rule "
                    f"match more than meant): fix or remove it; known: {', '.join(sorted(spec))}"))
                continue
            problems.append(Problem(
                Severity.WARNING, label, opt, _shown(raw),
                f"unknown option of a '{s.type}' section, ignored; "
                f"known: {', '.join(sorted(spec))}"))
            continue
        fname, parse, is_list = spec[opt]
        values = [raw] if isinstance(raw, str) else list(raw)
        if not is_list and not isinstance(raw, str):
            problems.append(Problem(Severity.ERROR, label, opt, _shown(raw),
                                    f"'{opt}' takes one value: write 'option {opt}', not 'list'"))
            continue
        parsed = []
        for v in values:
            try:
                parsed.append(parse(v))
            except ValueError as e:
                problems.append(Problem(Severity.ERROR, label, opt, v, str(e)))
        out[fname] = tuple(parsed) if is_list else (parsed[0] if parsed else None)
    return {k: v for k, v in out.items() if v is not None}


def _shown(raw: str | Sequence[str]) -> str:
    return raw if isinstance(raw, str) else " ".join(raw)


@dataclass
class _Builder:
    """What from_sections() has collected so far, section by section."""

    problems: list[Problem] = field(default_factory=list)
    globals_: Globals | None = None
    usb: Usb | None = None
    servers: list[Server] = field(default_factory=list)
    paths: list[PathConfig] = field(default_factory=list)
    seen: dict[str, set[str]] = field(default_factory=lambda: {"server": set(), "path": set()})
    path_devices: dict[str, str] = field(default_factory=dict)
    rules: list[rules.Rule] = field(default_factory=list)
    rule_labels: list[str] = field(default_factory=list)

    def error(self, label: str, msg: str, option: str | None = None,
              value: str | None = None) -> None:
        self.problems.append(Problem(Severity.ERROR, label, option, value, msg))

    def reported(self, label: str, *options: str) -> bool:
        """Whether a problem already names one of `options` of section `label`."""
        return any(p.section == label and p.option in options for p in self.problems)

    def add(self, s: uci.Section) -> None:
        label = _section_label(s)
        spec = _SECTIONS.get(s.type)
        if spec is None:
            self.problems.append(Problem(Severity.WARNING, label, None, None,
                                         f"unknown section type '{s.type}', ignored; known: "
                                         + ", ".join(_SECTIONS)))
            return
        values = _read_options(s, spec, self.problems)
        if s.type == "globals":
            if self.globals_ is not None:
                self.error(label, "a second 'globals' section: merge it into the first")
                return
            if "tproxy_mark" in values:
                values["tproxy_mark"], values["tproxy_mask"] = values["tproxy_mark"]
            self.globals_ = Globals(**values)
        elif s.type == "usb":
            self.usb = Usb(**values)
        elif s.type == "rule":
            rule = rules.make_rule(label, s.name, values, self.problems)
            if rule is not None:
                self.rules.append(rule)
                self.rule_labels.append(label)
        else:
            self.add_named(s, label, values)

    def add_named(self, s: uci.Section, label: str, values: dict[str, Any]) -> None:
        name = s.name
        if name is None or not _NAME_RE.fullmatch(name):
            self.error(label, f"a '{s.type}' section needs a name of letters, digits and '_' "
                       f"(config {s.type} 'wan1')")
            return
        if name in self.seen[s.type]:
            self.error(label, f"duplicate {s.type} '{name}': each name once")
            return
        self.seen[s.type].add(name)
        if s.type == "server":
            if "address" not in values:
                if not self.reported(label, "address"):
                    self.error(label, "missing: the server's IP address or host name", "address")
                return
            self.servers.append(Server(name=name, **values))
        else:
            self.add_path(label, PathConfig(name=name, **values))

    def add_path(self, label: str, path: PathConfig) -> None:
        if path.interface is None and path.device is None:
            if not self.reported(label, "interface", "device"):
                self.error(label, "needs 'option interface' (netifd name) or 'option device'")
            return
        key = path.device or f"netifd:{path.interface}"
        if key in self.path_devices:
            self.error(label, f"already used by path '{self.path_devices[key]}': one path per link",
                       "device" if path.device else "interface", path.device or path.interface)
            return
        if len(self.paths) == MAX_PATHS:
            self.error(label, f"more than {MAX_PATHS} paths")
            return
        self.path_devices[key] = path.name
        self.paths.append(path)


def from_sections(sections: Sequence[uci.Section]) -> tuple[Config, list[Problem]]:
    """Validate parsed UCI sections; the Config is meaningful only when no problem is an error."""
    b = _Builder()
    for s in sections:
        b.add(s)
    g = b.globals_ or Globals()
    _check_globals(g, b.problems)
    if not g.ipv6:
        _check_ipv6_off(g, b.servers, b.paths, b.problems)
    rules.check_rules(b.rules, b.rule_labels, [p.name for p in b.paths], g.tproxy_mask,
                      b.problems)
    return Config(globals=g, servers=tuple(b.servers), paths=tuple(b.paths),
                  usb=b.usb or Usb(), rules=tuple(b.rules)), b.problems


def _check_globals(g: Globals, problems: list[Problem]) -> None:
    def err(option: str, value: object, msg: str) -> None:
        problems.append(Problem(Severity.ERROR, "globals", option, str(value), msg))

    if g.down_count > g.down_window:
        err("down_count", g.down_count,
            f"larger than down_window ({g.down_window}): a path could never go down")
    if g.probe_timeout_min_ms > g.probe_timeout_ms:
        err("probe_timeout_min_ms", g.probe_timeout_min_ms,
            f"larger than probe_timeout_ms ({g.probe_timeout_ms})")
    last = g.path_table_base + MAX_PATHS - 1
    if g.path_table_base <= g.route_table <= last:
        err("route_table", g.route_table,
            f"inside the path tables {g.path_table_base}–{last}: move one")
    reserved = (253, 254, 255)
    if g.route_table in reserved:
        err("route_table", g.route_table, "253–255 are the kernel's default, main and local tables")
    if any(g.path_table_base <= t <= last for t in reserved):
        err("path_table_base", g.path_table_base,
            f"the path tables ({g.path_table_base}–{last}) must not include 253–255, "
            "the kernel's own tables")
    if g.tproxy_table in reserved:
        err("tproxy_table", g.tproxy_table,
            "253–255 are the kernel's default, main and local tables")
    elif g.tproxy_table == g.route_table or g.path_table_base <= g.tproxy_table <= last:
        err("tproxy_table", g.tproxy_table,
            f"already used: route_table is {g.route_table}, the path tables "
            f"{g.path_table_base}–{last}")
    if len(set(g.lan_devices)) != len(g.lan_devices):
        err("lan_device", " ".join(g.lan_devices), "a device is listed twice")
    if g.tproxy_mask.bit_length() >= 31:
        err("tproxy_mark", f"{g.tproxy_mark:#x}/{g.tproxy_mask:#x}",
            "the mask must leave bit 31 free (the proxy's own connections are marked with the "
            "bit above the mask)")


def _check_ipv6_off(g: Globals, servers: Sequence[Server], paths: Sequence[PathConfig],
                    problems: list[Problem]) -> None:
    """With option ipv6 '0', the IPv6 options do nothing: say so where one is set."""
    def warn(section: str, option: str, value: str, msg: str) -> None:
        problems.append(Problem(Severity.WARNING, section, option, value, msg))

    off = "option ipv6 is 0 in globals"
    for s in servers:
        if s.enabled and is_ipv6(s.address):
            warn(s.name, "address", s.address,
                 f"the proxy reaches this server over IPv6, but {off}: its connection is not "
                 "bonded (one link, the main table's route); set ipv6 '1'")
    for section, targets in (("globals", g.probe_targets),
                             *((p.name, p.probe_targets) for p in paths)):
        for t in targets:
            if is_ipv6(t):
                warn(section, "probe_target", t, f"an IPv6 target, unused: {off}")
    for p in paths:
        if p.gateway6:
            warn(p.name, "gateway6", p.gateway6, f"unused: {off}")


def load(config_dir: Path) -> tuple[Config, list[Problem]]:
    """Read and validate `<config_dir>/bonding`.  A missing file means the defaults."""
    try:
        package = uci.load(config_dir, PACKAGE)
    except FileNotFoundError:
        return Config(), [Problem(Severity.WARNING, "(file)", None, None,
                                  f"{config_dir / PACKAGE} does not exist: using the defaults")]
    except uci.UciParseError as e:
        return Config(), [Problem(Severity.ERROR, "(file)", None, None, str(e))]
    return from_sections(package.sections)



def load_strict(config_dir: Path) -> tuple[Config, list[Problem]]:
    """Like load(), but raise ConfigError when any problem is an error."""
    cfg, problems = load(config_dir)
    if any(p.severity is Severity.ERROR for p in problems):
        raise ConfigError(problems)
    return cfg, problems


def as_dict(cfg: Config) -> Mapping[str, Any]:
    """The config as plain data (for status and logs); holds no secret by construction."""

    def dc(obj: Any) -> dict[str, Any]:
        return {f.name: getattr(obj, f.name) for f in fields(obj)}

    return {
        "globals": dc(cfg.globals),
        "servers": [dc(s) for s in cfg.servers],
        "paths": [dc(p) for p in cfg.paths],
        "usb": dc(cfg.usb),
        "rules": [dc(r) for r in cfg.rules],
    }

