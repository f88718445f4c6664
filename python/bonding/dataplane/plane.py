"""The data plane bondingd runs: the proxy, its nftables table, and what routing needs of it.

    dp = DataPlane(run_dir, on_change=...)
    problems = dp.configure(cfg, config_dir, server=NAME)   # at start and on every reload
    dp.set_server(NAME)                        # server failover: the proxy follows
    plan(..., tproxy=dp.tproxy(), congctl=dp.congctl())
    status["proxy"] = dp.status()
    await dp.close()                           # on stop
    await dp.detach()                          # on a restart: all stays for the next bondingd

The nftables table is loaded while the proxy runs or is being restarted, and removed while it is
failed or disabled: LAN traffic then takes the router's ordinary routes (fail open, not bonded)
instead of being handed to a proxy that is not there.  A reload that changes nothing about the
proxy keeps the process and its connections.  While the proxy is sing-box, the route of
bonding.dataplane.anchor keeps its network monitor from closing every connection when a WAN's
default route changes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bonding import teardown
from bonding.config import Config, Problem, Secrets, Server, load_secrets
from bonding.core.plan import PinMarks, TproxyWant
from bonding.dataplane import backends, nft
from bonding.dataplane.anchor import Anchor
from bonding.dataplane.backends import BackendError
from bonding.dataplane.supervisor import State, Supervisor

log = logging.getLogger("bondingd.dataplane")

CC_AVAILABLE = Path("/proc/sys/net/ipv4/tcp_available_congestion_control")


def available_congestion_control() -> tuple[str, ...]:
    try:
        return tuple(CC_AVAILABLE.read_text().split())
    except OSError:
        return ()


class DataPlane:
    def __init__(self, run_dir: Path, *, on_change: Callable[[], None] | None = None,
                 path: str | None = None, nft_cmd: str = "nft", fw4: bool | None = None,
                 cc_available: Callable[[], tuple[str, ...]] = available_congestion_control,
                 anchor: Anchor | None = None) -> None:
        self.run_dir = run_dir
        self.on_change = on_change
        self.path = path
        use_fw4 = nft.has_fw4() if fw4 is None else fw4
        self.nft = nft.Nft(nft=nft_cmd, include=run_dir / nft.FW4_INCLUDE.name if use_fw4
                           else None)
        self.supervisor = Supervisor(run_dir, on_change=self._changed)
        self.cc_available = cc_available
        self.ruleset: nft.Ruleset | None = None
        self._tproxy: TproxyWant | None = None
        self._congctl: str | None = None
        self._path_congctl: dict[str, str | None] = {}
        self.nft_error = ""
        self.cc_error = ""
        self.anchor = anchor or Anchor()
        self.anchor_error = ""
        self.ipv6_native = "no proxy"  # why LAN IPv6 is routed natively ("" when proxied)
        self._removed_once = False  # a table left by an earlier bondingd is removed once
        self._cfg: Config | None = None
        self._secrets: Secrets | None = None
        self.server: str | None = None  # the server section the proxy connects to
        self.backend = "none"  # what option proxy names ('auto' resolved)

    # --- config ---------------------------------------------------------------------------------
    def configure(self, cfg: Config, config_dir: Path, *,
                  server: str | None = None) -> list[Problem]:
        """Take a (validated) config: start, restart, keep or stop the proxy to match it.

        `server`: the server section the proxy connects to (None: the preferred enabled one).
        Returns the problems of /etc/config/bonding_secrets (they never hold a key).
        """
        g = cfg.globals
        self._congestion(g.congestion_control, {p.name: p.congestion_control
                                                for p in cfg.paths})
        self._cfg = cfg
        self.server = server
        was, self.backend = self.backend, backends.resolve(g.proxy, self.path)
        if g.enabled and self.backend in backends.UNTESTED and self.backend != was:
            log.warning("option proxy '%s': %s", self.backend, backends.UNTESTED[self.backend])
        self._anchor(g.enabled and self.backend == "sing-box")
        if g.proxy == "none" or not g.enabled:
            self.ruleset = None
            self._tproxy = None
            self._secrets = None
            self.ipv6_native = "no proxy"
            self.supervisor.set(None)
            self._sync_nft()
            return []
        self._secrets, problems = load_secrets(config_dir)
        self._rules()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._launch()
        self._sync_nft()
        return problems

    def set_server(self, server: str | None) -> None:
        """Point the proxy at another server (restarted only when that changes its launch; the
        nftables table only when the new server changes whether LAN IPv6 is proxied)."""
        self.server = server
        if self._secrets is not None:
            ipv6 = self._tproxy is not None and self._tproxy.ipv6
            self._rules()
            assert self._tproxy is not None
            if self._tproxy.ipv6 != ipv6:
                self._changed()  # the table, and routing (the IPv6 tproxy rule and route)
            self._launch()

    def _server_in_use(self) -> Server | None:
        """The server the proxy connects to: the one asked for, else the preferred enabled one
        (backends.pick_server's choice)."""
        cfg = self._cfg
        assert cfg is not None
        if self.server is not None:
            return cfg.server(self.server)
        ordered = cfg.ordered_servers()
        return ordered[0] if ordered else None

    def _rules(self) -> None:
        """The nftables table and tproxy routing for the config and the server in use (whose
        IPv6 decides whether LAN IPv6 is proxied)."""
        cfg = self._cfg
        assert cfg is not None
        g = cfg.globals
        self.ipv6_native = nft.lan_ipv6(g, self._server_in_use())
        ipv6 = not self.ipv6_native
        steered = g.realtime or any(r.enabled for r in cfg.rules)  # pin-marked: left alone
        pins = PinMarks.above(g.tproxy_mask).mask if steered else 0
        self.ruleset = nft.build(g, cfg.server_addresses(), cfg.server_addresses6(), ipv6=ipv6,
                                 pin_mask=pins)
        self._tproxy = TproxyWant(g.tproxy_mark, g.tproxy_mask, g.tproxy_table, ipv6=ipv6)

    def _launch(self) -> None:
        cfg, secrets, server = self._cfg, self._secrets, self.server
        assert cfg is not None and secrets is not None

        def make() -> backends.Launch:
            chosen = None
            if server is not None:
                chosen = cfg.server(server)
                if chosen is None or not chosen.enabled:
                    raise BackendError(f"server '{server}' is not an enabled server section")
            # 'auto' looks again at every try: a proxy installed after bonding is taken up
            backend = backends.resolve(cfg.globals.proxy, self.path)
            if backend == "none":
                raise BackendError(backends.auto_missing())
            if backend == "sing-box" and self.backend != "sing-box":
                self._anchor(True)  # in place before sing-box's monitor starts
            self.backend = backend
            return backends.launch(cfg, secrets, self.run_dir, self.path, server=chosen,
                                   backend=backend)

        try:
            launch = make()
        except BackendError as e:
            self.supervisor.fail(self.backend if self.backend != "none" else cfg.globals.proxy,
                                 str(e), retry=make)
        else:
            self.supervisor.set(launch)

    def _congestion(self, wanted: str, per_path: dict[str, str | None]) -> None:
        have = self.cc_available()
        errors = []

        def check(value: str, where: str, fallback: str) -> bool:
            if value in have:
                return True
            errors.append(f"congestion control '{value}' ({where}) is not available in this "
                          f"kernel (it has: {' '.join(have) or 'unknown'}): {fallback}; "
                          f"install kmod-tcp-{value} or change the option")
            return False

        self._congctl = wanted if wanted and check(
            wanted, "globals", "the bonded connections use the system's default") else None
        self._path_congctl = {}
        for name, value in per_path.items():
            if value and check(value, f"path {name}", "its subflows use the global one"):
                self._path_congctl[name] = value
        self.cc_error = "; ".join(errors)
        for e in errors:
            log.warning("%s", e)

    def _anchor(self, want: bool) -> None:
        try:
            self.anchor.set(want)
            self.anchor_error = ""
        except OSError as e:
            self.anchor_error = (f"route 'default dev lo tos {0x1c:#x}' (keeps sing-box's "
                                 f"connections when a WAN's default route changes): {e}")
            log.error("%s", self.anchor_error)

    # --- what routing needs ---------------------------------------------------------------------
    def tproxy(self) -> TproxyWant | None:
        """The fwmark rule and local route tproxy needs (None: no data plane)."""
        return self._tproxy

    def congctl(self) -> str | None:
        """The global congestion control for plan() (None: the system's)."""
        return self._congctl

    def path_congctl(self, name: str) -> str | None:
        """A path's own congestion control (None: the global one)."""
        return self._path_congctl.get(name)

    # --- nftables -------------------------------------------------------------------------------
    def _changed(self) -> None:
        self._sync_nft()
        if self.on_change is not None:
            self.on_change()

    def _sync_nft(self) -> None:
        want = (self.ruleset is not None
                and self.supervisor.state in (State.RUNNING, State.STOPPED))
        try:
            if want:
                assert self.ruleset is not None
                if self.nft.apply(self.ruleset):
                    log.info("nftables: table inet %s loaded (LAN devices %s → 127.0.0.1:%d)",
                             nft.TABLE, ", ".join(self.ruleset.lan_devices), self.ruleset.port)
            elif self.nft.applied is not None or not self._removed_once:
                self.nft.remove()
                self._removed_once = True
            self.nft_error = ""
        except (nft.NftError, OSError) as e:
            self.nft_error = str(e)
            log.error("nftables: %s", e)

    # --- status and stop ------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """The `proxy` object of the status: backend, server, state, pid, restarts, since,
        error."""
        st = self.supervisor.status()
        launch = self.supervisor.launch
        st["server"] = launch.server if launch is not None else self.server
        if st["backend"] is None and st["state"] == str(State.DISABLED):
            st["backend"] = "none"
        st["configured"] = self._cfg.globals.proxy if self._cfg is not None else "none"
        errors = [e for e in (st["error"], self.nft_error and f"nftables: {self.nft_error}")
                  if e]
        st["error"] = "; ".join(errors)
        proxied = self.ruleset is not None and self.ruleset.ipv6
        st["ipv6"] = {"lan": "proxied" if proxied else "routed natively",
                      "reason": "" if proxied else self.ipv6_native}
        return st

    @property
    def running(self) -> bool:
        """The proxy runs and LAN traffic is handed to it (the nftables table is loaded)."""
        return self.nft.applied is not None and self.supervisor.state is State.RUNNING

    def errors(self) -> list[str]:
        """Problems for the status' `errors` list (the proxy's own are in `proxy.error`)."""
        return [e for e in (self.cc_error, self.nft_error and f"nftables: {self.nft_error}",
                            self.anchor_error) if e]

    async def close(self) -> None:
        """Stop the proxy, remove the nftables table and the fw4 include (each step also when
        one before it failed)."""
        await teardown.run_all([("the proxy", self.supervisor.close),
                                ("the nftables table", self._remove_nft),
                                ("the fw4 include", self.nft.forget_include),
                                ("the local route", lambda: self._anchor(False))])

    async def detach(self) -> None:
        """bondingd ends for a restart (bonding.bondingd.handover): the proxy goes on, for the
        next bondingd to adopt, and the nftables table, the fw4 include and the local route stay
        for it, so that the LAN's connections through the proxy go on."""
        await self.supervisor.detach()

    def _remove_nft(self) -> None:
        had = self.nft.applied is not None or self._tproxy is not None
        self.ruleset = None
        self._tproxy = None
        try:
            if had:
                self.nft.remove()
        except (nft.NftError, OSError) as e:
            log.error("nftables: %s", e)

