"""The ubus object's methods (bonding.api checks their arguments, then calls these).

They act on the daemon through `Core`, the few things a method may ask of it, so they are
tested with a fake core.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from bonding import config
from bonding.bondingd.runtime import PathRuntime
from bonding.config import secretsfile
from bonding.ubus import UbusError, UbusStatus

log = logging.getLogger("bondingd")


class Core(Protocol):
    """What the methods need of bondingd."""

    @property
    def paths(self) -> Mapping[str, PathRuntime]: ...
    @property
    def problems(self) -> list[Any]: ...
    @property
    def config_dir(self) -> Path: ...

    def status(self, detail: bool = False) -> dict[str, Any]: ...
    def path_status(self, rt: PathRuntime, detail: bool = False) -> dict[str, Any]: ...
    def apply_enabled(self, rt: PathRuntime) -> None: ...
    def changed(self) -> None: ...
    def on_link(self, rt: PathRuntime, ok: bool, why: str) -> None: ...
    def resolve(self) -> None: ...
    def refresh_netifd(self) -> None: ...
    def reload(self) -> bool: ...
    async def probe_now(self, rt: PathRuntime) -> None: ...


class Handlers:
    """bonding.api.Backend over a Core."""

    def __init__(self, core: Core) -> None:
        self.core = core

    def api_status(self) -> dict[str, Any]:
        return self.core.status()

    def api_path(self, name: str) -> dict[str, Any] | None:
        rt = self.core.paths.get(name)
        return None if rt is None else {"name": name, **self.core.path_status(rt, detail=True)}

    def api_set_path(self, name: str, enabled: bool | None,
                     backup: bool | None) -> dict[str, Any] | None:
        """A runtime override until the next reload; one equal to the config clears it."""
        rt = self.core.paths.get(name)
        if rt is None:
            return None
        if backup is not None:
            rt.backup_override = None if backup == rt.cfg.backup else backup
        if enabled is not None:
            rt.enabled_override = None if enabled == rt.cfg.enabled else enabled
            self.core.apply_enabled(rt)
        log.info("path %s set over ubus: enabled=%s backup=%s", name, rt.enabled,
                 rt.forced_backup)
        self.core.changed()
        return {"name": name, "enabled": rt.enabled, "backup": rt.forced_backup}

    async def api_probe(self, name: str) -> dict[str, Any] | None:
        rt = self.core.paths.get(name)
        if rt is None:
            return None
        await self.core.probe_now(rt)
        return self.api_path(name)

    def api_reload(self) -> dict[str, Any]:
        ok = self.core.reload()
        return {"ok": ok, "problems": [str(p) for p in self.core.problems]}

    def api_iface(self, interface: str, action: str, device: str | None) -> dict[str, Any]:
        """A netifd hotplug event (ifup/ifdown/ifupdate) told by /etc/hotplug.d/iface."""
        paths = self.core.paths
        names = [n for n, rt in paths.items()
                 if rt.cfg.interface == interface or (device and rt.cfg.device == device)]
        log.info("netifd %s of %s (device %s): %s", action, interface, device or "?",
                 ", ".join(names) or "not a path")
        if action == "ifdown":
            for n in names:
                rt = paths[n]
                if rt.cfg.interface == interface and any(f.health.link_ok
                                                         for f in rt.families):
                    self.core.on_link(rt, False,
                                      f"netifd interface '{interface}' went down")
            self.core.changed()
        elif names:
            # ifup/ifupdate: the links again, for a path that netifd's ifdown took down (one
            # with a device of its own; refresh_netifd does it for the others)
            self.core.resolve()
        self.core.refresh_netifd()
        return {"handled": bool(names), "path": names[0] if names else None}

    def api_set_key(self, server: str, key: str, cipher: str | None) -> dict[str, Any]:
        """Store a server's key in bonding_secrets (LuCI's key field), then reload so that the
        data plane uses it.  The reply and the log name the server only."""
        try:
            secretsfile.set_key(self.core.config_dir, server, key, cipher)
        except (OSError, secretsfile.SecretsFileError) as e:
            raise self._unwritten(server, e) from None
        log.info("key of server %s stored over ubus", server)
        return {"server": server, "stored": True, "reloaded": self.core.reload()}

    def _unwritten(self, server: str, e: Exception) -> UbusError:
        why = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        path = self.core.config_dir / config.SECRETS_PACKAGE
        return UbusError(UbusStatus.UNKNOWN_ERROR, f"cannot store the key of server "
                                                    f"{server!r} in {path}: {why}")
