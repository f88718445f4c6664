"""The paths bondingd runs: the config's path sections or, with none, a path per WAN interface
netifd has (discovery).  Rebuilding keeps each path's runtime by name and stops the probers
of the paths that are gone.  netifd is read through a callable, so it is tested with a fake."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from bonding import config
from bonding.bondingd.probing import stop
from bonding.bondingd.runtime import PathRuntime, rebuild
from bonding.config import Config, PathConfig

log = logging.getLogger("bondingd")


def discovered(wan_interfaces: Sequence[str]) -> tuple[PathConfig, ...]:
    """With no path sections: a path per netifd interface that has a default route."""
    return tuple(PathConfig(name=n, interface=n) for n in wan_interfaces[:config.MAX_PATHS])


class PathSet:
    """The paths by name; `wan_interfaces` asks netifd, `on_change` marks the status dirty."""

    def __init__(self, wan_interfaces: Callable[[], Sequence[str]],
                 on_change: Callable[[], None],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.paths: dict[str, PathRuntime] = {}
        self.wan_interfaces = wan_interfaces
        self.on_change = on_change
        self.clock = clock

    def configure(self, cfg: Config) -> None:
        """A (re)loaded config: its path sections, or those discovered; overrides reset."""
        self.set(cfg.paths or discovered(self.wan_interfaces()), enabled=cfg.globals.enabled,
                 reset_overrides=True)

    def set(self, pcs: Sequence[PathConfig], *, enabled: bool, reset_overrides: bool) -> None:
        self.paths, gone = rebuild(self.paths, pcs, reset_overrides=reset_overrides,
                                   enabled=enabled, now=self.clock())
        for rt in gone:  # removed from the config: stop probing
            for f in rt.families:
                stop(f)
        self.on_change()

    def from_netifd(self, cfg: Config) -> bool:
        """Some paths are netifd's: discovered, or an interface without a device."""
        return not cfg.paths or any(rt.cfg.interface and not rt.cfg.device
                                    for rt in self.paths.values())

    def sync_discovered(self, cfg: Config) -> None:
        """With no path sections: follow netifd's WAN interfaces as they come and go."""
        if cfg.paths:
            return
        found = discovered(self.wan_interfaces())
        if tuple(rt.cfg for rt in self.paths.values()) != found:
            log.info("no path sections: bonding the WAN interfaces netifd has: %s",
                     ", ".join(p.name for p in found) or "none")
            self.set(found, enabled=cfg.globals.enabled, reset_overrides=False)

    def stop_probers(self) -> None:
        for rt in self.paths.values():
            for f in rt.families:
                stop(f)
