"""LuCI on an OpenWrt root: rpcd with the logins asked for and uhttpd with OpenWrt's LuCI
options (the ucode dispatcher, /ubus), both children of the root's PID 1 (the prefix has no
init scripts for them), after the first boot's uci-defaults (the bootstrap theme becomes
LuCI's media).  LuCI's packages are the root's `LUCI_PARTS` (PREFIX/share/owrt-parts, ACL files
included); luci-app-bonding comes from our feed."""

from __future__ import annotations

import shlex
from collections.abc import Mapping

from bonding.lab.owrt.root import UBUS_SOCKET, OwrtRoot

LUCI_PARTS = ("luci-base", "luci-mod-status", "luci-mod-system", "luci-theme-bootstrap",
              "rpcd-mod-luci")
FULL_ACCESS = "list read '*'\n\tlist write '*'"


def first_boot(root: OwrtRoot) -> None:
    """Run and remove /etc/uci-defaults/*, as OpenWrt's first boot does."""
    root.sh('for f in /etc/uci-defaults/*; do [ -e "$f" ] || continue; ( . "$f" ) && rm -f "$f"; '
            "done")


def start_rpcd(root: OwrtRoot, logins: Mapping[str, tuple[str, str]]) -> dict[str, str]:
    """rpcd on the root's ubus with `logins` (user -> (password, ACL lines of its `config
    login`), the password stored as `uhttpd -m` makes it); returns the stored hashes."""
    hashes = {u: root.sh(f"uhttpd -m {shlex.quote(pw)}").stdout.strip()
              for u, (pw, _) in logins.items()}
    sections = "".join(f"""
config login
	option username '{u}'
	option password '{hashes[u]}'
	{acl}
""" for u, (_, acl) in logins.items())
    root.write("/etc/config/rpcd", f"""
config rpcd
	option socket {UBUS_SOCKET}
	option timeout 30
{sections}""")
    root.spawn("rpcd", ["/sbin/rpcd", "-s", UBUS_SOCKET, "-t", "30"])
    return hashes


def start_uhttpd(root: OwrtRoot, listen: str, *, luci: bool = True) -> None:
    """uhttpd on `listen` (ADDRESS:PORT) serving /www and /ubus; with `luci`, LuCI's
    dispatcher at /cgi-bin/luci (once rpcd's luci-rpc object is there)."""
    if luci:
        root.wait(lambda: root.sh("ubus -t 1 list luci-rpc", check=False).returncode == 0, 10,
                  "rpcd's luci-rpc object")
    # -n 1 (LuCI's requests one at a time): LuCI's ucode dispatcher connects to ubus when it is
    # imported, which is in uhttpd's own process (it runs the handler once at start), so every
    # request's forked child talks over that one inherited socket; two at once can read each
    # other's replies, and the one left waiting is killed by uhttpd after -t: "502 Bad Gateway,
    # the process did not produce any response".  Seen: 5 requests at once, 20 of 24 failed or
    # hung; one at a time, 0 of 200.  A real router (max_requests 3) has the same race.
    lucis = ["-x", "/cgi-bin", "-o", "/cgi-bin/luci", "-O",
             "/usr/share/ucode/luci/uhttpd.uc", "-n", "1"] if luci else []
    root.spawn("uhttpd", ["/usr/sbin/uhttpd", "-f", "-h", "/www", "-p", listen, *lucis,
                          "-u", "/ubus", "-U", UBUS_SOCKET, "-t", "30"])
