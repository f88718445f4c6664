"""The kernel side of bondingd: rtnetlink, the MPTCP path manager and the reconciler that
makes the kernel hold the plan (bonding.core.plan), with what the last plan said (which paths
carry traffic, whether it had to fail open) and the errors it met."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from bonding.actions import Reconciler
from bonding.config import Config
from bonding.core.plan import PathView, PinMarks, TproxyWant, plan
from bonding.dataplane.nft import NftError
from bonding.dataplane.pinning import TABLE, Pinning
from bonding.dataplane.realtime import Realtime, realtime_bit
from bonding.dataplane.shaping import Shaper
from bonding.netlink.core import NetlinkError
from bonding.netlink.mptcp import MptcpPM
from bonding.netlink.rtnl import Rtnl

log = logging.getLogger("bondingd")

MAX_ERRORS = 10  # the last action errors kept for status


class Kernel:
    def __init__(self, rtnl: Rtnl, pm: MptcpPM | None, reconciler: Reconciler,
                 errors: Sequence[str] = (), pinning: Pinning | None = None,
                 realtime: Realtime | None = None, shaper: Shaper | None = None) -> None:
        self.rtnl = rtnl
        self.pinning = pinning or Pinning()  # the rule sections' nftables table
        self.realtime = realtime or Realtime()  # realtime UDP on the lowest-RTT path
        self.shaper = shaper or Shaper()  # each path's qdiscs (option shaping)
        self.pm = pm
        self.reconciler = reconciler
        self.open_errors = list(errors)  # what is missing for good (no MPTCP path manager)
        self.limit_errors: list[str] = []
        self.action_errors: list[str] = []
        self.fail_open = False
        self.fail_open6 = False
        self.carriers: dict[int, tuple[str, ...]] = {4: (), 6: ()}  # paths with endpoints

    @classmethod
    def open(cls, run_dir: Path) -> Kernel:
        """rtnetlink (OSError when it cannot be opened) and, where the kernel has it, the
        MPTCP path manager."""
        rtnl = Rtnl()
        errors = []
        pm = None
        try:
            pm = MptcpPM()
        except (NetlinkError, OSError) as e:
            msg = (f"MPTCP path manager unavailable ({e}): the kernel needs CONFIG_MPTCP "
                   "and net.mptcp.enabled=1; probing and routing go on without endpoints")
            log.error("%s", msg)
            errors.append(msg)
        return cls(rtnl, pm, Reconciler(rtnl, pm, run_dir / "owned.json"), errors,
                   Pinning.for_run_dir(run_dir))

    @property
    def errors(self) -> list[str]:
        pins = [e for e in (self.pinning.error, self.realtime.error) if e]
        return (self.open_errors + self.limit_errors + self.action_errors + pins
                + list(self.shaper.errors.values()))

    def set_limits(self, cfg: Config) -> None:
        g = cfg.globals
        err = self.reconciler.set_limits(g.mptcp_subflows, g.mptcp_add_addr_accepted)
        self.limit_errors = [err] if err else []
        if err:
            log.error("%s: subflows over other links will not be created", err)

    def apply(self, cfg: Config, views: list[PathView], tables: set[int], *,
              tproxy: TproxyWant | None, congctl: str | None, adopt: Sequence[str]) -> None:
        """Make the kernel hold the plan for these paths (nothing of ours when bonding is
        disabled)."""
        g = cfg.globals
        if not g.enabled:
            out = self.reconciler.cleanup(g.rule_priority, tables)
            self.carriers = {4: (), 6: ()}
            self.pinning.apply(cfg, views)  # none while disabled
            self.realtime.apply(cfg, views)
        else:
            servers = cfg.server_addresses()
            if g.ipv6:
                servers += cfg.server_addresses6()
            p = plan(views, servers, route_table=g.route_table,
                     path_table_base=g.path_table_base, rule_priority=g.rule_priority,
                     default_route=g.manage_default_route, tproxy=tproxy, congctl=congctl,
                     pins=self.pinning.marks(cfg))
            if p.fail_open != self.fail_open:
                self.fail_open = p.fail_open
                if p.fail_open:
                    log.warning("no path is up: using every path that has a link anyway")
            self.carriers = {4: p.carriers, 6: p.carriers6}
            if p.fail_open6 != self.fail_open6:
                self.fail_open6 = p.fail_open6
                if p.fail_open6:
                    log.warning("no path's IPv6 is up: using every path that has an IPv6 "
                                "address anyway")
            out = self.reconciler.apply(p, rule_priority=g.rule_priority, tables=tables,
                                        adopt=adopt)
            self.pinning.apply(cfg, views)  # after the policy rules it needs
            self.realtime.apply(cfg, views)  # its masquerade is the pinning table's
        self.shaper.apply(cfg, views, realtime_bit(PinMarks.above(g.tproxy_mask)))
        for c in out.changes:
            log.info("kernel: %s", c)
        self.action_errors = out.errors[-MAX_ERRORS:]

    def detach(self) -> None:
        """bondingd ends for a restart: everything of ours stays in the kernel for the next
        bondingd, which takes it over (the reconciler reads the kernel and owned.json and
        changes only the difference); only the sockets are closed."""
        self.rtnl.close()
        if self.pm is not None:
            self.pm.close()

    def close(self, rule_priority: int, tables: set[int]) -> None:
        """Remove everything of ours from the kernel, then close the sockets."""
        try:
            self.pinning.remove()
        except (OSError, NftError) as e:
            log.error("nftables: removing table inet %s: %s", TABLE, e)
        try:
            self.pinning.forget_include()
        except OSError as e:
            log.error("nftables: removing the fw4 include of table inet %s: %s", TABLE, e)
        try:
            self.realtime.remove()
        except (OSError, NftError) as e:
            log.error("nftables: removing the realtime table: %s", e)
        self.shaper.remove()
        self.reconciler.cleanup(rule_priority, tables)
        self.detach()
