"""What netifd knows of a logical interface (OpenWrt): its device, address and gateway.

Read with `ubus call network.interface.<name> status` (the ubus CLI is on every OpenWrt box).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from typing import Any

UBUS_TIMEOUT_S = 3


@dataclass(frozen=True)
class Info:
    device: str | None = None
    address: str | None = None
    gateway: str | None = None
    up: bool = True


def parse_status(name: str, data: dict[str, Any]) -> Info | str:
    """netifd's interface status → Info, or why it cannot be used."""
    if not data.get("up", False):
        return f"netifd interface '{name}' is down"
    device = data.get("l3_device") or data.get("device")
    if not device:
        return f"netifd interface '{name}' has no device"
    addrs = data.get("ipv4-address") or []
    address = addrs[0].get("address") if addrs else None
    gateway = None
    for r in data.get("route") or []:
        if r.get("target") == "0.0.0.0" and r.get("mask") == 0 and r.get("nexthop"):
            gateway = r["nexthop"] if r["nexthop"] != "0.0.0.0" else None
            break
    return Info(device=device, address=address, gateway=gateway)


def interface_status(name: str, ubus_socket: str | None = None) -> Info | str:
    ubus = shutil.which("ubus")
    if ubus is None:
        return (f"path uses netifd interface '{name}' but there is no ubus here: "
                "set 'option device' instead")
    cmd = [ubus] + (["-s", ubus_socket] if ubus_socket else [])
    cmd += ["call", f"network.interface.{name}", "status"]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=UBUS_TIMEOUT_S,
                           check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"asking netifd about '{name}' failed: {e}"
    if r.returncode != 0:
        return f"netifd has no interface '{name}' (ubus: {r.stderr.strip() or r.returncode})"
    try:
        return parse_status(name, json.loads(r.stdout))
    except (ValueError, AttributeError) as e:
        return f"netifd's status of '{name}' is unreadable: {e}"
