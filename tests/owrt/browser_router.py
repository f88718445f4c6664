"""A scratch OpenWrt router that serves luci-app-bonding through real LuCI, for browser tests.

On top of :class:`~tests.owrt.router_root.RouterRoot` with LuCI's packages (luci-base,
luci-mod-status, luci-mod-system, luci-theme-bootstrap, rpcd-mod-luci, as
tools/owrt-userland.sh builds them): our feed installed by the real opkg (luci-app-bonding brings
bonding and python3-bonding; its postinst starts bondingd under procd), LuCI's ACL files, rpcd
with the logins of tests/owrt/test_router_rpcd.py (`viewer`, the README's read-only login, and
`admin`), and uhttpd with OpenWrt's LuCI options (the ucode dispatcher, /ubus) on
127.0.0.1:8080 inside the router's network namespace, where the browser runs too.

bondingd bonds the root's two veth links (wan1 and wan2 to the upstream namespace) and probes
203.0.113.10 and 198.51.100.10 through each; one aggregation server, vps1, is configured with
no priority (bondingd's default, 10, applies).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bonding.lab.commands import nft, nsx, run
from bonding.lab.owrt.luci import LUCI_PARTS, first_boot, start_uhttpd

from .router_root import CONFIGURE, RouterRoot, base_packages
from .test_router_rpcd import start_rpcd

HTTP = "127.0.0.1:8080"
URL = f"http://{HTTP}/cgi-bin/luci"
SERVER = """
uci set bonding.vps1=server
uci set bonding.vps1.address=203.0.113.10
uci set bonding.vps1.port=65101
uci set bonding.vps1.protocol=shadowsocks
uci set bonding.vps1.cipher=chacha20-ietf-poly1305
uci set bonding.globals.proxy=none
uci delete bonding.wanb.interface
uci commit bonding
uci set bonding_secrets.vps1=server
uci set bonding_secrets.vps1.key=c2VjcmV0LWtleS1vZi10aGUtc2VydmVyLXZwczE=
uci commit bonding_secrets
"""
BLACKHOLE_TABLE = "browser_blackhole"


class LuciRouter:
    """The started router: `root` (a RouterRoot) and what the tests ask of it."""

    def __init__(self, root: RouterRoot) -> None:
        self.root = root

    def status(self) -> dict[str, Any]:
        out = self.root.ubus("call", "bonding", "status")
        assert isinstance(out, dict), out
        return out

    def states(self) -> dict[str, str]:
        try:
            return {n: p["state"] for n, p in self.status()["paths"].items()}
        except Exception:
            return {}

    def service(self) -> dict[str, Any]:
        out = self.root.ubus("call", "service", "list", '{"name":"bonding"}')
        assert isinstance(out, dict)
        return out.get("bonding", {}).get("instances", {}).get("bondingd", {})  # type: ignore[no-any-return]

    def reloads(self) -> int:
        """How many times bondingd logged a reload of its config."""
        return self.root.path("/tmp/log/messages").read_text().count("reloading /etc/config")

    def blackhole(self, isp: str) -> None:
        """The upstream drops everything that comes in on `isp` (isp1: wan1's link)."""
        rules = (f"table inet {BLACKHOLE_TABLE} {{\n chain pre {{\n  type filter hook prerouting "
                 f"priority -300;\n  iifname \"{isp}\" drop\n }}\n}}\n")
        nft(self.root.up_ns, rules)

    def diagnosis(self) -> str:
        """What the router's daemons said and how fast they answer now: printed when a browser
        test fails (a LuCI page that comes back 502 is a CGI uhttpd killed after its -t)."""
        out = []
        for what, script in (("ps", "ps w"),
                             ("system board (procd)", "ubus -t 5 call system board"),
                             ("session access (rpcd)", "ubus -t 5 call session access "
                              "'{\"ubus_rpc_session\":\"00000000000000000000000000000000\"}'"),
                             ("bonding status", "ubus -t 5 call bonding status >/dev/null")):
            t0 = time.monotonic()
            r = self.root.sh(script, check=False, timeout=20)
            out.append(f"--- {what}: exit {r.returncode} in {time.monotonic() - t0:.2f} s\n"
                       f"{r.stdout[-3000:]}{r.stderr[-1000:]}")
        for name in ("uhttpd", "rpcd"):
            out.append(f"--- {name}.log (tail)\n{self.root.log(name)[-3000:]}")
        messages = self.root.path("/tmp/log/messages")
        if messages.exists():
            text = messages.read_text(errors="replace")
            out.append(f"--- /tmp/log/messages (tail)\n{text[-4000:]}")
        return "\n".join(out)

    def unblackhole(self) -> None:
        run(nsx(self.root.up_ns, "nft", "delete", "table", "inet", BLACKHOLE_TABLE),
            check=False)


def _install(root: RouterRoot) -> None:
    first_boot(root)  # the bootstrap theme becomes LuCI's media
    root.sh("opkg update && opkg install luci-app-bonding", timeout=180)
    root.sh(CONFIGURE + SERVER)
    root.sh("/etc/init.d/bonding restart")
    start_rpcd(root, ("viewer", "admin"))
    start_uhttpd(root, HTTP)


@contextlib.contextmanager
def luci_router(prefix: Path, feed_dir: Path, workdir: Path, tag: str) -> Iterator[LuciRouter]:
    """The router, started, with both links up in bondingd; closed (namespaces gone) after."""
    root = RouterRoot(prefix, workdir / "stage", tag, LUCI_PARTS)
    root.start(base_packages(feed_dir))
    try:
        root.add_feed(feed_dir)
        _install(root)
        router = LuciRouter(root)
        root.wait(lambda: router.states() == {"wan": "up", "wanb": "up"}, 30,
                  "bondingd with both links up")
        yield router
    finally:
        with contextlib.suppress(Exception):
            LuciRouter(root).unblackhole()
        root.close()


def dump(x: Any) -> str:
    return json.dumps(x, indent=1, sort_keys=True)
