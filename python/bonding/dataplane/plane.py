"""The data plane bondingd runs: the proxy, its nftables table, and what routing needs of it.

    dp = DataPlane(run_dir, on_change=...)
    problems = dp.configure(cfg, config_dir)   # at start and on every reload
    plan(..., tproxy=dp.tproxy(), congctl=dp.congctl())
    status["proxy"] = dp.status()
    await dp.close()                           # on stop

The nftables table is loaded while the proxy runs or is being restarted, and removed while it is
failed or disabled: LAN traffic then takes the router's ordinary routes (fail open, not bonded)
instead of being handed to a proxy that is not there.  A reload that changes nothing about the
proxy keeps the process and its connections.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bonding.config import Config, Problem, load_secrets
from bonding.core.plan import TproxyWant
from bonding.dataplane import backends, nft
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
                 ) -> None:
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
        self.ipv6_native = "no proxy"  # why LAN IPv6 is routed natively ("" when proxied)
        self._removed_once = False  # a table left by an earlier bondingd is removed once

    # --- config ---------------------------------------------------------------------------------
    def configure(self, cfg: Config, config_dir: Path) -> list[Problem]:
        """Take a (validated) config: start, restart, keep or stop the proxy to match it.

        Returns the problems of /etc/config/bonding_secrets (they never hold a key).
        """
        g = cfg.globals
        self._congestion(g.congestion_control, {p.name: p.congestion_control
                                                for p in cfg.paths})
        if g.proxy == "none" or not g.enabled:
            self.ruleset = None
            self._tproxy = None
            self.ipv6_native = "no proxy"
            self.supervisor.set(None)
            self._sync_nft()
            return []
        secrets, problems = load_secrets(config_dir)
        # the server the proxy uses (backends.pick_server): its IPv6 decides LAN IPv6
        server = next((sv for sv in cfg.servers if sv.enabled), None)
        self.ipv6_native = nft.lan_ipv6(g, server)
        ipv6 = not self.ipv6_native
        self.ruleset = nft.build(g, cfg.server_addresses(), cfg.server_addresses6(), ipv6=ipv6)
        self._tproxy = TproxyWant(g.tproxy_mark, g.tproxy_mask, g.tproxy_table, ipv6=ipv6)
        self.run_dir.mkdir(parents=True, exist_ok=True)

        def make() -> backends.Launch:
            return backends.launch(cfg, secrets, self.run_dir, self.path)

        try:
            launch = make()
        except BackendError as e:
            self.supervisor.fail(g.proxy, str(e), retry=make)
        else:
            self.supervisor.set(launch)
        self._sync_nft()
        return problems

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
        """The `proxy` object of the status: backend, state, pid, restarts, since, error."""
        st = self.supervisor.status()
        if st["backend"] is None and st["state"] == str(State.DISABLED):
            st["backend"] = "none"
        errors = [e for e in (st["error"], self.nft_error and f"nftables: {self.nft_error}")
                  if e]
        st["error"] = "; ".join(errors)
        proxied = self.ruleset is not None and self.ruleset.ipv6
        st["ipv6"] = {"lan": "proxied" if proxied else "routed natively",
                      "reason": "" if proxied else self.ipv6_native}
        return st

    def errors(self) -> list[str]:
        """Problems for the status' `errors` list (the proxy's own are in `proxy.error`)."""
        return [e for e in (self.cc_error, self.nft_error and f"nftables: {self.nft_error}")
                if e]

    async def close(self) -> None:
        """Stop the proxy, remove the nftables table and the fw4 include."""
        await self.supervisor.close()
        self.ruleset = None
        try:
            if self.nft.applied is not None or self._tproxy is not None:
                self.nft.remove()
        except (nft.NftError, OSError) as e:
            log.error("nftables: %s", e)
        self.nft.forget_include()
        self._tproxy = None

