"""The first-boot script: an OpenWrt uci-defaults file that sets up bonding with `uci`.

OpenWrt runs every file in /etc/uci-defaults once at first boot (sourced by busybox ash in a
subshell) and deletes it when it exits 0.  This one is also idempotent, so it can be run again by
hand (``sh 99-bonding-setup && reload_config``) and changes nothing the second time.

What it writes, and the rules it follows (also printed at the top of the script):

- /etc/config/bonding: ``globals`` (enabled, proxy), exactly the servers of the client entries
  (other ``server`` sections and their keys are removed), a ``path`` per WAN interface, ``usb``.
- /etc/config/bonding_secrets, mode 0600: one ``server`` section with the key per server.
- WAN ports: OpenWrt's own ``wan`` interface (when the board has one) is kept as it is and
  becomes a path.  Each ``--wan PORT`` becomes one more WAN: the port leaves the LAN bridge and
  becomes DHCP interface ``wanN`` (N = 2, 3, ... in flag order, metric N) in the firewall's wan
  zone.  A port that is the ``wan`` interface's device already adds nothing.  Every other port
  stays where it is.  A port is never taken from the LAN when it is the LAN's own device or the
  last port of its bridge: that is logged (``logread -e bonding-setup``) and skipped.
- The LAN address is only changed when ``--lan-ip`` asks for it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from bonding import __version__
from bonding.image.client import ServerEntry

SCRIPT_NAME: Final = "99-bonding-setup"
MAX_WANS: Final = 16
ASU_MAX_DEFAULTS: Final = 20480  # ASU's max_defaults_length (asu/config.py)


def sq(value: str) -> str:
    """Quote for POSIX sh: one single-quoted word, whatever the value holds."""
    return "'" + value.replace("'", "'\\''") + "'"


@dataclass(frozen=True)
class Plan:
    """Everything the script sets, decided on the host."""

    servers: tuple[ServerEntry, ...]
    proxy: str
    wan_ports: tuple[str, ...] = ()
    usb_auto_dhcp: bool = False
    modem_mbim: bool = False
    lan_ip: ipaddress.IPv4Interface | None = None
    release: str = ""
    summary: Sequence[str] = field(default_factory=tuple)

    def wan_interfaces(self) -> list[tuple[str, str, int]]:
        """(port, netifd interface, metric) for each --wan port."""
        return [(p, f"wan{i}", i) for i, p in enumerate(self.wan_ports, start=2)]

    def path_names(self) -> list[str]:
        """Every path section the script may write (the board's 'wan' included)."""
        return ["wan"] + [iface for _, iface, _ in self.wan_interfaces()]


_HELPERS: Final = r"""
CONF="${IPKG_INSTROOT:-}/etc/config"
rc=0

log() {
	logger -t bonding-setup "$*" 2>/dev/null
	echo "bonding-setup: $*" >&2
}

u() {
	uci -q -c "$CONF" "$@"
}

# has WORD LIST: is WORD one of the words of LIST?
has() {
	case " $2 " in *" $1 "*) return 0 ;; esac
	return 1
}

# add_once CONFIG.SECTION.OPTION VALUE: add to a list unless the value is in it already
add_once() {
	has "$2" "$(u get "$1")" || u add_list "$1=$2"
}

# first TYPE CONFIG: the UCI reference of the first section of that type, made when missing
first() {
	u get "$2.@$1[0]" >/dev/null || u set "$2.$1=$1"
	echo "@$1[0]"
}
"""

_NETWORK: Final = r"""
# --- network: WAN ports ---------------------------------------------------------------------
wan_ifaces=""
if [ -f "$CONF/network" ]; then
	lan_dev="$(u get network.lan.device)"
	wan_dev="$(u get network.wan.device)"
	u get network.wan >/dev/null && wan_ifaces="wan"
	# the bridge section of the LAN (config device, option name 'br-lan')
	br=""
	i=0
	while [ "$i" -lt 64 ] && u get "network.@device[$i]" >/dev/null; do
		if [ -n "$lan_dev" ] && [ "$(u get "network.@device[$i].name")" = "$lan_dev" ]; then
			br="@device[$i]"
			break
		fi
		i=$((i + 1))
	done
else
	log "no $CONF/network: WAN ports not set up"
fi

# setup_wan PORT INTERFACE METRIC: make PORT a DHCP WAN, taking it out of the LAN bridge
setup_wan() {
	[ -f "$CONF/network" ] || return 0
	if [ -n "$wan_dev" ] && [ "$1" = "$wan_dev" ]; then
		return 0  # the board's own wan port: interface 'wan' already
	fi
	if [ "$1" = "$lan_dev" ]; then
		log "$1 not made a WAN: it is the LAN's own device (network.lan.device);" \
			"the LAN is left as it is"
		return 0
	fi
	if [ -n "$br" ]; then
		ports="$(u get "network.$br.ports")"
		if has "$1" "$ports"; then
			if [ "$ports" = "$1" ]; then
				log "$1 not made a WAN: it is the last port of $lan_dev; the LAN is left as it is"
				return 0
			fi
			u del_list "network.$br.ports=$1"
		fi
	fi
	u set "network.$2=interface"
	u set "network.$2.device=$1"
	u set "network.$2.proto=dhcp"
	u set "network.$2.metric=$3"
	wan_ifaces="$wan_ifaces $2"
}
"""

_FIREWALL: Final = r"""
# --- firewall: WAN interfaces in the wan zone ------------------------------------------------
if [ -n "$wan_ifaces" ] && [ -f "$CONF/firewall" ]; then
	z=""
	i=0
	while [ "$i" -lt 64 ] && u get "firewall.@zone[$i]" >/dev/null; do
		if [ "$(u get "firewall.@zone[$i].name")" = wan ]; then
			z="@zone[$i]"
			break
		fi
		i=$((i + 1))
	done
	if [ -z "$z" ]; then
		u add firewall zone >/dev/null
		z="@zone[-1]"
		u set "firewall.$z.name=wan"
		u set "firewall.$z.input=REJECT"
		u set "firewall.$z.output=ACCEPT"
		u set "firewall.$z.forward=REJECT"
		u set "firewall.$z.masq=1"
		u set "firewall.$z.mtu_fix=1"
		log "there was no firewall zone 'wan': made one (input and forward REJECT, masquerading)"
	fi
	for n in $wan_ifaces; do
		add_once "firewall.$z.network" "$n"
	done
elif [ -n "$wan_ifaces" ]; then
	log "no $CONF/firewall: WAN interfaces not put in a firewall zone"
fi
"""

_COMMIT: Final = r"""
# --- commit ----------------------------------------------------------------------------------
for p in network firewall bonding bonding_secrets; do
	[ -f "$CONF/$p" ] || continue
	u commit "$p" || { log "uci commit $p failed"; rc=1; }
done
chmod 600 "$CONF/bonding_secrets"
exit "$rc"
"""


def _header(plan: Plan) -> list[str]:
    """The comment that says what the script does, and the shell helpers."""
    out: list[str] = [
        "#!/bin/sh",
        f"# {SCRIPT_NAME}: first-boot setup of bonding; generated by bonding-image {__version__}.",
    ]
    out += [f"# {line}" for line in plan.summary]
    out += [
        "#",
        "# OpenWrt runs this once at first boot (uci-defaults) and deletes it when it exits 0.",
        "# Idempotent: running it again changes nothing.  By hand on a running router:",
        f"#   sh {SCRIPT_NAME} && reload_config",
        "# It sets: /etc/config/bonding (globals, exactly the servers below, one path per WAN",
        "# interface, usb), /etc/config/bonding_secrets (the keys, mode 0600), the WAN interfaces",
        "# in /etc/config/network and their firewall zone.  OpenWrt's own 'wan' interface stays",
        "# and is a path; each --wan port leaves the LAN bridge and becomes DHCP interface wanN.",
        "# A port that is the LAN's own device or the last port of its bridge is not moved",
        "# (logged: logread -e bonding-setup).  The LAN address changes only with --lan-ip.",
        "# Nothing is downloaded: everything comes from the packages in the image.",
    ]
    out.append(_HELPERS.rstrip("\n"))

    return out


def _bonding_section(plan: Plan) -> list[str]:
    """/etc/config/bonding and bonding_secrets: the globals, exactly these servers, usb."""
    names = [s.name for s in plan.servers]
    out = [
        "",
        "# --- /etc/config/bonding and /etc/config/bonding_secrets (0600) -----------------------",
        '[ -f "$CONF/bonding" ] || : >"$CONF/bonding"',
        '[ -f "$CONF/bonding_secrets" ] || (umask 077 && : >"$CONF/bonding_secrets")',
        'chmod 600 "$CONF/bonding_secrets"',
        "g=$(first globals bonding)",
        'u set "bonding.$g.enabled=1"',
        f'u set "bonding.$g.proxy="{sq(plan.proxy)}',
        "",
        f"servers={sq(' '.join(names))}",
        "for p in bonding bonding_secrets; do",
        "\tfor s in $(u -X show \"$p\" |",
        "\t\tsed -n \"s/^$p\\.\\([A-Za-z0-9_]*\\)=server\\$/\\1/p\"); do",
        '\t\thas "$s" "$servers" && continue',
        '\t\tu delete "$p.$s"',
        '\t\tlog "removed server \'$s\' from $p: this router is set up for $servers"',
        "\tdone",
        "done",
    ]
    for s in plan.servers:
        b = f"bonding.{s.name}"
        out += [
            f"u set {b}=server",
            f"u set {b}.address={sq(s.address)}",
            (f"u set {b}.address6={sq(s.address6)}" if s.address6
             else f"u get {b}.address6 >/dev/null && u delete {b}.address6"),
            f"u set {b}.port={sq(str(s.port))}",
            f"u set {b}.protocol={sq(s.protocol)}",
            f"u set {b}.cipher={sq(s.cipher)}",
            f"u set {b}.udp_over_tcp='{int(s.udp_over_tcp)}'",
            f"u set {b}.enabled='1'",
            f"u set bonding_secrets.{s.name}=server",
            f"u set bonding_secrets.{s.name}.key={sq(s.key)}",
        ]
    out += [
        "",
        "usb=$(first usb bonding)",
        f"u set \"bonding.$usb.auto_dhcp={int(plan.usb_auto_dhcp)}\"",
        f"u set \"bonding.$usb.modem_mbim={int(plan.modem_mbim)}\"",
    ]

    return out


def _network_section(plan: Plan) -> list[str]:
    """The WAN interfaces, the LAN address (--lan-ip) and one bonding path per WAN."""
    out = [_NETWORK.rstrip("\n")]
    for port, iface, metric in plan.wan_interfaces():
        out.append(f"setup_wan {sq(port)} {iface} {metric}")
    if plan.lan_ip is not None:
        out += [
            "",
            "# --lan-ip: the LAN address asked for",
            'if [ -f "$CONF/network" ]; then',
            f"\tu set network.lan.ipaddr={sq(str(plan.lan_ip.ip))}",
            f"\tu set network.lan.netmask={sq(str(plan.lan_ip.netmask))}",
            "fi",
        ]
    out += [
        "",
        "# one bonding path per WAN interface (netifd name = path name)",
        "for n in $wan_ifaces; do",
        '\tu set "bonding.$n=path"',
        '\tu set "bonding.$n.interface=$n"',
        '\tu get "bonding.$n.device" >/dev/null && u delete "bonding.$n.device"',
        "done",
    ]
    return out


def render(plan: Plan) -> str:
    """The script's text."""
    if not plan.servers:
        raise ValueError("no server")
    if len(plan.wan_ports) > MAX_WANS:
        raise ValueError(f"at most {MAX_WANS} --wan ports")
    out = _header(plan) + _bonding_section(plan) + _network_section(plan)
    out.append(_FIREWALL.rstrip("\n"))
    out.append(_COMMIT.rstrip("\n"))
    return "\n".join(out) + "\n"
