"""bondingd's UCI config in the lab: written at `up()`, changed (and reloaded) by
`set_options()`.  `render_config` and `edit_options` are the pure parts."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bonding import config, uci
from bonding.lab.base import LabBase
from bonding.lab.model import (
    CLIENT_NAME,
    LAB_BYPASS,
    LAB_BYPASS6,
    LAN_DEVICE,
    SERVER_ADDR,
    SERVER_ADDR6,
    TARGET_ADDR,
    TARGET_ADDR6,
    LabState,
)


def render_config(st: LabState, extra: str = "",
                  clients: Sequence[dict[str, Any]] | None = None,
                  options: Mapping[str, str] | None = None,
                  path_options: Mapping[str, str] | None = None) -> tuple[str, str | None]:
    """The router's /etc/config/bonding (with `extra` appended) and, for the full path
    (`clients`: what each server's add-client printed), its bonding_secrets.  On the OpenWrt
    router (`st.openwrt`): no path sections (bondingd bonds the WANs netifd has; `path_options`
    go into globals) and IPv4 only."""
    v6 = not st.openwrt
    g: dict[str, str | tuple[str, ...]] = {
        "log_level": "info",
        "probe_target": (SERVER_ADDR, TARGET_ADDR, *((SERVER_ADDR6, TARGET_ADDR6) if v6 else ())),
        "proxy": "none",  # bondingd alone (the full path sets its proxy below)
    }
    # one section per server: 'lab', 'lab2' (in order: the first is preferred); the first
    # has an IPv6 address too (LAN IPv6 is proxied while it is the one in use), which its
    # add-client prints
    server_opts: list[dict[str, str | tuple[str, ...]]] = [
        {"address": SERVER_ADDR, **({"address6": SERVER_ADDR6} if v6 else {}), "port": "65101"}]
    if clients is not None:
        g.update({"proxy": st.backend, "lan_device": LAN_DEVICE,
                  "proxy_user": "nobody",  # the package's user 'bonding' is not here
                  "bypass": LAB_BYPASS, "bypass6": LAB_BYPASS6})
        server_opts = [{
            "address": str(c["address"]), "port": str(c["port"]),
            "protocol": str(c["protocol"]), "cipher": str(c["cipher"]),
            "udp_over_tcp": "1" if c.get("udp_over_tcp") else "0",
            **({"address6": str(c["address6"])} if c.get("address6") and v6 else {}),
        } for c in clients]
    names = [CLIENT_NAME + ("" if i == 0 else str(i + 1)) for i in range(len(server_opts))]
    if st.tunnel6:
        server_opts[0]["address"] = SERVER_ADDR6
    servers = [uci.Section("server", n, o) for n, o in zip(names, server_opts, strict=True)]
    secrets = None
    if clients is not None:
        secrets = uci.dumps(uci.Package(config.SECRETS_PACKAGE, tuple(
            uci.Section("server", n, {"key": str(c["key"])})
            for n, c in zip(names, clients, strict=True))))
    g.update(options or {})
    if st.openwrt:
        g.update(path_options or {})
    sections = [uci.Section("globals", "globals", g), *servers]
    for link in [] if st.openwrt else st.links:
        sections.append(uci.Section("path", link.name, {
            "device": link.router_dev,
            "gateway": link.isp_addr,
            "upload_kbit": str(int(link.rate_mbit * 1000)),
            "download_kbit": str(int(link.rate_mbit * 1000)),
            **(path_options or {}),
        }))
    return uci.dumps(uci.Package("bonding", tuple(sections))) + extra, secrets


def edit_options(text: str, changes: Mapping[str, Mapping[str, str | None]]) -> str:
    """The bonding package `text` with `changes` made: options by section name ('globals',
    'wan1', …), None removing the option."""
    pkg = uci.loads(text, "bonding")
    sections = []
    for sec in pkg.sections:
        change = changes.get(sec.name or "")
        if change:
            opts = {**sec.options, **{k: v for k, v in change.items() if v is not None}}
            for k, v in change.items():
                if v is None:
                    opts.pop(k, None)
            sec = uci.Section(sec.type, sec.name, opts)
        sections.append(sec)
    return uci.dumps(uci.Package("bonding", tuple(sections)))


class RouterConfig(LabBase):
    """Writing bondingd's config and changing it while it runs."""

    def _write_config(self, extra: str, clients: Sequence[dict[str, Any]] | None = None,
                      options: Mapping[str, str] | None = None,
                      path_options: Mapping[str, str] | None = None) -> None:
        assert self.state is not None
        cfg = Path(self.state.config_dir)
        cfg.mkdir(parents=True, exist_ok=True)
        Path(self.state.run_dir).mkdir(parents=True, exist_ok=True)
        text, secrets = render_config(self.state, extra, clients, options, path_options)
        if secrets is not None:
            path = cfg / config.SECRETS_PACKAGE
            path.touch(mode=0o600)
            path.chmod(0o600)
            path.write_text(secrets)
        (cfg / "bonding").write_text(text)

    def set_options(self, changes: Mapping[str, Mapping[str, str | None]]) -> None:
        """Change options of bondingd's config, by section name ('globals', 'wan1', …; None
        removes the option), and reload it (SIGHUP)."""
        st = self.state or self.load()
        path = Path(st.config_dir) / "bonding"
        path.write_text(edit_options(path.read_text(), changes))
        if st.daemon_pid is not None:
            # bondingd writes its status once its signal handlers are in place: a SIGHUP
            # before that would end it.
            status = Path(st.run_dir) / "status.json"
            deadline = time.monotonic() + 10
            while not status.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            os.kill(st.daemon_pid, signal.SIGHUP)
