"""A scratch OpenWrt root with the real userland running in it, for tests (root only).

:class:`RouterRoot` builds, in network namespaces of its own, a router ("<tag>r": two veth WAN
links wan1 and wan2, 100.64.1.2/24 and 100.64.2.2/24) and its upstream ("<tag>u": the gateways
100.64.1.1 and 100.64.2.1, and on lo 203.0.113.10 and 198.51.100.10 to probe and to connect
to), and in the router's namespace a new mount and PID namespace whose PID 1 is
tests/owrt/root_init.py: an overlay of the host's / with a tmpfs upper (nothing written inside
reaches the host), chrooted.  Into it goes the OpenWrt userland of OWRT_PREFIX where OpenWrt
puts it:

- /bin/sh and every applet of Debian's busybox (but `ip`: bonding depends on ip-full);
- OpenWrt's base shell library and files (/etc/rc.common, /lib/functions.sh,
  /lib/functions/procd.sh, /lib/config/uci.sh, /sbin/service, /sbin/reload_config,
  /sbin/hotplug-call, /etc/hotplug*.json, /etc/init.d/sysctl ...), %PATH% filled in as
  base-files' build does;
- /sbin/procd, /sbin/ubusd, /bin/ubus, /sbin/uci, /sbin/rpcd, /usr/sbin/uhttpd, /bin/opkg,
  /usr/bin/jshn, /usr/share/libubox/jshn.sh, /usr/bin/ucode (and utpl), the libraries in
  /usr/lib (= /lib on Debian) and rpcd's plugins; OWRT_PREFIX itself is masked (rpcd's
  compiled-in ACL and plugin directories under it are links to /usr/share/rpcd and
  /usr/lib/rpcd);
- python3 (the host's) finds /usr/lib/python3.X/site-packages, where OpenWrt's python3
  packages install, through a .pth file; python3-uci's module (pyuci) is there;
- opkg's configuration and status, with the given base packages declared installed;
- of the further OpenWrt packages the prefix holds in PREFIX/openwrt (netifd, jsonfilter,
  firewall4, apk, luci-base, luci-mod-status, luci-mod-system, luci-theme-bootstrap,
  rpcd-mod-luci: PREFIX/share/owrt-parts/<package>.list), only those given as `parts`.

Then busybox syslogd (/dev/log for `logger`), ubusd and `procd -S` run.  Commands run inside
with :meth:`RouterRoot.sh` (nsenter into the namespaces and the chroot); files are read and
written from outside through /proc/<init>/root (:meth:`RouterRoot.path`).  :meth:`close` ends
PID 1 (so the kernel kills everything in the root) and deletes both network namespaces; it runs
when setup fails too.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import select
import shlex
import shutil
import subprocess
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from bonding.lab.topology import nsx, run

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
INIT = HERE / "root_init.py"
PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
UBUS_SOCKET = "/var/run/ubus/ubus.sock"
HOST_PYTHON = "/usr/bin/python3"  # the host's, which runs bondingd in the root (Debian's)

# the host's files a router's identity needs are kept; OpenWrt's first-boot and preinit files
# have nothing to do here
BASE_SKIP = {"etc/passwd", "etc/group", "etc/shadow", "etc/hosts", "etc/services",
             "etc/protocols", "etc/profile", "etc/shells", "etc/inittab", "etc/preinit",
             "etc/fstab", "etc/uci-defaults", "lib/preinit", "rom"}
# programs of the prefix and where OpenWrt installs them
PROGRAMS = {"sbin/procd": "/sbin/procd", "sbin/ubusd": "/sbin/ubusd", "bin/ubus": "/bin/ubus",
            "bin/uci": "/sbin/uci", "sbin/rpcd": "/sbin/rpcd", "bin/uhttpd": "/usr/sbin/uhttpd",
            "bin/opkg-cl": "/bin/opkg", "bin/jshn": "/usr/bin/jshn", "bin/ucode": "/usr/bin/ucode",
            "share/libubox/jshn.sh": "/usr/share/libubox/jshn.sh"}
EXECUTABLE_DIRS = ("sbin/", "bin/", "usr/sbin/", "usr/bin/", "etc/init.d/", "usr/libexec/")
BUSYBOX_KEEP = {"ip"}  # a real program on OpenWrt too (ip-full)
MASKS = ("/work", "/opt", "/root", "/home")

# /etc/config/bonding for the root's two links, as a user would set it with uci
CONFIGURE = """
uci set bonding.wan.device=wan1
uci set bonding.wan.gateway=100.64.1.1
uci set bonding.wanb=path
uci set bonding.wanb.interface=wanb
uci set bonding.wanb.device=wan2
uci set bonding.wanb.gateway=100.64.2.1
uci delete bonding.globals.probe_target
uci add_list bonding.globals.probe_target=203.0.113.10
uci add_list bonding.globals.probe_target=198.51.100.10
uci commit bonding
"""


@functools.cache
def pyver() -> str:
    """The major.minor of the host's python3: /usr/lib/python<it>/site-packages in the root."""
    return subprocess.run([HOST_PYTHON, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                          capture_output=True, text=True, check=True).stdout.strip()


class RootError(Exception):
    """The scratch root could not be built or a command in it failed."""


def _children(pid: int) -> list[int]:
    out: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            out += [int(x) for x in (task / "children").read_text().split()]
    return out


def _ns_init(pid: int) -> int | None:
    """The host pid of the PID-namespace init below process `pid`."""
    todo = [pid]
    while todo:
        p = todo.pop()
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("NSpid:") and line.split()[-1] == "1" and len(line.split()) > 2:
                    return p
        todo += _children(p)
    return None


def part_files(prefix: Path, parts: Iterable[str]) -> tuple[set[str], set[str]]:
    """(the files of the packages asked for, those of the others) of PREFIX/openwrt, relative
    paths, as PREFIX/share/owrt-parts/<package>.list name them.  A package the prefix does not
    have is an error naming the rebuild."""
    lists = {f.stem: f for f in sorted((prefix / "share" / "owrt-parts").glob("*.list"))}
    unknown = sorted(set(parts) - set(lists))
    if unknown:
        raise RootError(f"{prefix} has no package {', '.join(unknown)} (known: "
                        f"{', '.join(lists) or 'none'}): rebuild it with tools/owrt-userland.sh")
    keep: set[str] = set()
    other: set[str] = set()
    for name, f in lists.items():
        rels = {x.strip().lstrip("/") for x in f.read_text().splitlines() if x.strip()}
        (keep if name in parts else other).update(rels)
    return keep, other - keep


class RouterRoot:
    def __init__(self, prefix: Path, stage: Path, tag: str, parts: Iterable[str] = ()) -> None:
        self.prefix = prefix
        self.parts = tuple(parts)
        self.stage = stage
        self.tag = tag
        self.ns = f"{tag}r"
        self.up_ns = f"{tag}u"
        self.proc: subprocess.Popen[bytes] | None = None
        self.init_pid = 0
        self._stdout: IO[bytes] | None = None
        self.log_dir = "/tmp/log"
        self.pids: dict[str, int] = {}

    # --- setup and teardown ------------------------------------------------------------------
    def start(self, base_packages: Iterable[str] = ()) -> None:
        try:
            self._network()
            self._enter()
            self._populate(base_packages)
            self.spawn("syslogd", ["/sbin/syslogd", "-n", "-O", "/tmp/log/messages"])
            self.spawn("ubusd", ["/sbin/ubusd", "-s", UBUS_SOCKET])
            self.wait(lambda: self.path(UBUS_SOCKET).exists(), 5, "ubusd's socket")
            self.spawn("procd", ["/sbin/procd", "-S", "-s", UBUS_SOCKET])
            self.wait(lambda: self.sh("ubus -t 1 list service", check=False).returncode == 0,
                      5, "procd's 'service' object on ubus")
        except BaseException:
            self.close()
            raise

    def _network(self) -> None:
        for ns in (self.ns, self.up_ns):
            if ns in run(["ip", "netns", "list"]).stdout.split():
                run(["ip", "netns", "del", ns])
            run(["ip", "netns", "add", ns])
            run(nsx(ns, "ip", "link", "set", "lo", "up"))
        for i in (1, 2):
            run(["ip", "link", "add", f"{self.tag}w{i}", "netns", self.ns, "type", "veth",
                 "peer", "name", f"{self.tag}p{i}", "netns", self.up_ns])
            run(nsx(self.ns, "ip", "link", "set", f"{self.tag}w{i}", "name", f"wan{i}"))
            run(nsx(self.up_ns, "ip", "link", "set", f"{self.tag}p{i}", "name", f"isp{i}"))
            run(nsx(self.ns, "ip", "addr", "add", f"100.64.{i}.2/24", "dev", f"wan{i}"))
            run(nsx(self.up_ns, "ip", "addr", "add", f"100.64.{i}.1/24", "dev", f"isp{i}"))
            run(nsx(self.ns, "ip", "link", "set", f"wan{i}", "up"))
            run(nsx(self.up_ns, "ip", "link", "set", f"isp{i}", "up"))
        for addr in ("203.0.113.10/32", "198.51.100.10/32"):
            run(nsx(self.up_ns, "ip", "addr", "add", addr, "dev", "lo"))

    def _enter(self) -> None:
        self.stage.mkdir(parents=True, exist_ok=True)
        errlog = open(self.stage.parent / f"{self.tag}-init.err", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", self.ns, "unshare", "--mount", "--pid", "--fork",
             "--kill-child", "--propagation", "private", HOST_PYTHON, "-S", "-I", str(INIT),
             str(self.stage), *MASKS],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errlog)
        errlog.close()
        assert self.proc.stdout is not None
        self._stdout = self.proc.stdout
        line = self._readline(15)
        if line != "ready":
            err = (self.stage.parent / f"{self.tag}-init.err").read_text()
            raise RootError(f"the root's init did not start: {line!r} {err}")
        pid = _ns_init(self.proc.pid)
        if pid is None:
            raise RootError("cannot find the root's PID 1")
        self.init_pid = pid

    def _readline(self, timeout: float) -> str:
        assert self._stdout is not None
        ready, _, _ = select.select([self._stdout], [], [], timeout)
        if not ready:
            raise RootError(f"no answer from the root's init in {timeout} s")
        return self._stdout.readline().decode().strip()

    def close(self) -> None:
        """End PID 1 (the kernel kills the rest of the root) and remove the namespaces."""
        if self.proc is not None:
            if self.proc.stdin is not None:
                with contextlib.suppress(OSError):
                    self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
            if self._stdout is not None:
                self._stdout.close()
            self.proc = None
        for ns in (self.ns, self.up_ns):
            run(["ip", "netns", "del", ns], check=False)

    # --- files ---------------------------------------------------------------------------------
    def path(self, p: str) -> Path:
        """A path inside the root, seen from outside (/proc/<init>/root/...).

        The kernel resolves an absolute symbolic link met on the way (Debian's /var/run ->
        /run) against the caller's root, not the root's: the directories are resolved here,
        inside the root; the last component is left as it is (it may be a link to replace)."""
        base = Path(f"/proc/{self.init_pid}/root")
        todo = [x for x in p.split("/") if x and x != "."]
        done: list[str] = []
        hops = 0
        while len(todo) > 1:
            part = todo.pop(0)
            if part == "..":
                done = done[:-1]
                continue
            cand = base.joinpath(*done, part)
            if cand.is_symlink():
                hops += 1
                if hops > 40:
                    raise RootError(f"too many symbolic links in {p}")
                target = os.readlink(cand)
                if target.startswith("/"):
                    done = []
                todo = [x for x in target.split("/") if x and x != "."] + todo
                continue
            done.append(part)
        return base.joinpath(*done, *todo)

    def write(self, p: str, text: str | bytes, mode: int = 0o644) -> None:
        dst = self.path(p)
        dst.parent.mkdir(parents=True, exist_ok=True)
        if dst.is_symlink():
            dst.unlink()
        if isinstance(text, bytes):
            dst.write_bytes(text)
        else:
            dst.write_text(text)
        dst.chmod(mode)

    def copy(self, src: Path, p: str) -> None:
        dst = self.path(p)
        dst.parent.mkdir(parents=True, exist_ok=True)
        if dst.is_symlink() or dst.exists():
            dst.unlink()
        shutil.copy2(src, dst)

    def link(self, target: str, p: str) -> None:
        dst = self.path(p)
        dst.parent.mkdir(parents=True, exist_ok=True)
        if dst.is_symlink() or dst.is_file():
            dst.unlink()
        dst.symlink_to(target)

    def _populate(self, base_packages: Iterable[str]) -> None:
        # busybox: /bin/sh and every applet, as on OpenWrt
        out = run(["busybox", "--list-full"]).stdout.split()
        for rel in out:
            if Path(rel).name not in BUSYBOX_KEEP:
                self.link("/usr/bin/busybox", "/" + rel)
        self.link("busybox", "/usr/bin/sh")
        # OpenWrt's base files; init.d and sysctl.d hold OpenWrt's only
        for d in ("/etc/init.d", "/etc/sysctl.d"):
            shutil.rmtree(self.path(d), ignore_errors=True)
            self.path(d).mkdir()
        self.path("/etc/sysctl.conf").unlink(missing_ok=True)
        base = self.prefix / "openwrt"
        asked, others = part_files(self.prefix, self.parts)
        for src in sorted(base.rglob("*")):
            rel = src.relative_to(base).as_posix()
            if src.is_dir() or rel in others:
                continue
            if rel not in asked and any(rel == s or rel.startswith(s + "/") for s in BASE_SKIP):
                continue
            if src.is_symlink():
                self.link(os.readlink(src), "/" + rel)
                continue
            data = src.read_bytes().replace(b"%PATH%", PATH.encode())
            mode = src.stat().st_mode & 0o7777
            if rel.startswith(EXECUTABLE_DIRS):
                mode |= 0o755  # INSTALL_BIN in OpenWrt's Makefiles (the prefix lost some modes)
            self.write("/" + rel, data, mode)
        for rel, dest in PROGRAMS.items():
            self.copy(self.prefix / rel, dest)
        self.link("ucode", "/usr/bin/utpl")  # as OpenWrt's ucode package (fw4 runs utpl)
        for lib in sorted((self.prefix / "lib").iterdir()):
            if lib.is_symlink():
                self.link(os.readlink(lib), f"/usr/lib/{lib.name}")
            elif lib.is_file() and ".so" in lib.name:
                self.copy(lib, f"/usr/lib/{lib.name}")
            elif lib.is_dir() and lib.name in ("rpcd", "ucode"):
                for so in lib.glob("*.so"):
                    self.copy(so, f"/usr/lib/{lib.name}/{so.name}")
        # what rpcd and libucode were compiled to look for under the (masked) prefix
        for rel, dest in (("share/rpcd", "/usr/share/rpcd"), ("lib/rpcd", "/usr/lib/rpcd"),
                          ("libexec/rpcd", "/usr/libexec/rpcd"), ("lib/ucode", "/usr/lib/ucode"),
                          ("share/ucode", "/usr/share/ucode")):
            self.path(dest).mkdir(parents=True, exist_ok=True)
            self.link(dest, f"{self.prefix}/{rel}")
        # rpcd's package installs its ACL for the anonymous session (session login, access)
        unauth = self.prefix / "share/rpcd/acl.d/unauthenticated.json"
        if not unauth.is_file():
            raise RootError(f"no {unauth}: rebuild the prefix (tools/owrt-userland.sh)")
        self.copy(unauth, "/usr/share/rpcd/acl.d/unauthenticated.json")
        # python3: OpenWrt's site-packages, with python3-uci's module in it
        site = f"/usr/lib/python{pyver()}/site-packages"
        self.path(site).mkdir(parents=True, exist_ok=True)
        self.write("/usr/lib/python3/dist-packages/openwrt-site-packages.pth", site + "\n")
        pyuci = sorted((self.prefix / "venv").glob(f"lib/python{pyver()}/site-packages/uci.*.so"))
        if not pyuci:
            raise RootError(f"no pyuci for python {pyver()} in {self.prefix}/venv")
        self.copy(pyuci[0], f"{site}/{pyuci[0].name}")
        for d in ("/etc/config", "/etc/rc.d", "/var/lock", "/usr/lib/opkg/info"):
            self.path(d).mkdir(parents=True, exist_ok=True)
        self._opkg(base_packages, {"python3-uci": [f"{site}/{pyuci[0].name}"],
                                   "libubus": ["/usr/lib/libubus.so"],
                                   "libubox": ["/usr/lib/libubox.so"],
                                   "libuci": ["/usr/lib/libuci.so"]})

    def _opkg(self, packages: Iterable[str], files: Mapping[str, Sequence[str]]) -> None:
        self.write("/etc/opkg.conf", "dest root /\ndest ram /tmp\nlists_dir ext /var/opkg-lists\n"
                   "option overlay_root /overlay\narch all 1\narch noarch 1\narch x86_64 10\n")
        status = []
        for name in sorted(set(packages)):
            status.append(f"Package: {name}\nVersion: 1\nDepends: libc\n"
                          "Status: install user installed\nArchitecture: x86_64\n"
                          "Installed-Time: 1\n")
            self.write(f"/usr/lib/opkg/info/{name}.list",
                       "".join(f + "\n" for f in files.get(name, ())))
        self.write("/usr/lib/opkg/status", "\n".join(status) + "\n")

    def add_feed(self, feed_dir: Path, name: str = "bonding") -> None:
        """Copy a feed folder into the root (/tmp/<name>-feed) and list it in opkg's feeds."""
        for f in feed_dir.iterdir():
            self.copy(f, f"/tmp/{name}-feed/{f.name}")
        self.write("/etc/opkg/customfeeds.conf", f"src/gz {name} file:///tmp/{name}-feed\n")

    def files(self) -> dict[str, str]:
        """Every file and link the root holds beyond the host's own (the overlay's upper layer,
        less whiteouts): path -> 'file' or 'link -> TARGET'.  /tmp, /run, /dev, /proc and /sys
        are mounts of their own and not in it."""
        r = subprocess.run(["nsenter", "-t", str(self.init_pid), "-m", "find",
                            f"{self.stage}/upper", "(", "-type", "f", "-o", "-type", "l", ")",
                            "-printf", "%P\\t%y\\t%l\\n"],
                           capture_output=True, text=True, timeout=60, check=True)
        out = {}
        for line in r.stdout.splitlines():
            rel, kind, target = line.split("\t")
            out["/" + rel] = "file" if kind == "f" else f"link -> {target}"
        return out

    def kernel_state(self) -> dict[str, list[str]]:
        """The router namespace's rules, routes (every table), MPTCP endpoints and nftables."""
        cmds = {"rules": ["ip", "rule"], "rules6": ["ip", "-6", "rule"],
                "routes": ["ip", "route", "show", "table", "all"],
                "routes6": ["ip", "-6", "route", "show", "table", "all"],
                "endpoints": ["ip", "mptcp", "endpoint", "show"],
                "nft": ["nft", "list", "ruleset"]}
        return {k: sorted(run(nsx(self.ns, *c)).stdout.splitlines()) for k, c in cmds.items()}


    # --- processes -----------------------------------------------------------------------------
    def spawn(self, name: str, argv: Sequence[str], env: Mapping[str, str] | None = None) -> int:
        """Start a long-running program as a child of the root's PID 1; its pid inside."""
        assert self.proc is not None and self.proc.stdin is not None
        full = {"PATH": PATH, "HOME": "/tmp"}
        full.update(env or {})
        req = {"op": "spawn", "argv": list(argv), "env": full, "log": f"{self.log_dir}/{name}.log"}
        self.proc.stdin.write((json.dumps(req) + "\n").encode())
        self.proc.stdin.flush()
        reply = json.loads(self._readline(10))
        if "pid" not in reply:
            raise RootError(f"cannot start {name}: {reply.get('error')}")
        self.pids[name] = int(reply["pid"])
        return self.pids[name]

    def sh(self, script: str, *, env: Mapping[str, str] | None = None, check: bool = True,
           timeout: float = 60, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run `script` with /bin/sh (busybox ash) inside the root, as root, OpenWrt's PATH."""
        full = {"PATH": PATH, "HOME": "/tmp", "TERM": "dumb"}
        full.update(env or {})
        r = subprocess.run(["nsenter", "-t", str(self.init_pid), "-m", "-p", "-n", "-r", "-w",
                            "/bin/sh", "-c", script], env=full, capture_output=True, text=True,
                           timeout=timeout, input=stdin, check=False)
        if check and r.returncode != 0:
            raise RootError(f"`{script}` exited {r.returncode}:\n{r.stdout}{r.stderr}")
        return r

    def ubus(self, *args: str, check: bool = True) -> Any:
        """`ubus call ...` inside the root; the answer parsed (None when empty)."""
        r = self.sh(" ".join(_quote(a) for a in ("ubus", "-t", "5", *args)), check=check)
        if r.returncode != 0:
            return r
        return json.loads(r.stdout) if r.stdout.strip() else None

    def log(self, name: str) -> str:
        p = self.path(f"{self.log_dir}/{name}.log")
        return p.read_text(errors="replace") if p.exists() else ""

    def host_pid(self, inner: int) -> int | None:
        """The host's pid of process `inner` of the root's PID namespace."""
        mine = os.readlink(f"/proc/{self.init_pid}/ns/pid")
        for p in Path("/proc").iterdir():
            if not p.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                if os.readlink(p / "ns" / "pid") != mine:
                    continue
                for line in (p / "status").read_text().splitlines():
                    if line.startswith("NSpid:") and line.split()[-1] == str(inner):
                        return int(p.name)
        return None

    def wait(self, pred: Any, timeout: float, what: str, step: float = 0.05) -> float:
        """Seconds until pred() is true (errors count as false); RootError after `timeout`,
        with the end of bondingd's log."""
        t0 = time.monotonic()
        while True:
            with contextlib.suppress(Exception):
                if pred():
                    return time.monotonic() - t0
            if time.monotonic() - t0 > timeout:
                tail = ""
                with contextlib.suppress(Exception):
                    tail = "\n".join(self.path("/tmp/log/messages").read_text().splitlines()[-15:])
                raise RootError(f"timed out after {timeout} s waiting for {what}; syslog:\n{tail}")
            time.sleep(step)


def _quote(s: str) -> str:
    return shlex.quote(s)


def state_diff(before: Mapping[str, list[str]],
               after: Mapping[str, list[str]]) -> dict[str, dict[str, list[str]]]:
    """What differs between two kernel_state()s, by kind: {'rules': {'gone': [...], 'new': [...]}}.
    The kernel's own routes (proto kernel: of addresses, link-local IPv6 coming up late) are
    left out: nobody but the kernel makes them."""
    out = {}
    for k in sorted(set(before) | set(after)):
        b = {x for x in before.get(k, []) if "proto kernel" not in x}
        a = {x for x in after.get(k, []) if "proto kernel" not in x}
        if a != b:
            out[k] = {"gone": sorted(b - a), "new": sorted(a - b)}
    return out


OUR_PACKAGES = ("python3-bonding", "bonding", "bonding-usb", "bonding-server", "luci-app-bonding")


def base_packages(feed_dir: Path) -> list[str]:
    """What our packages depend on that is not ours (libc, python3-light, libubus, ...): the
    scratch root's opkg status declares them installed, so opkg resolves the rest for real."""
    deps: set[str] = set()
    for para in (feed_dir / "Packages").read_text().split("\n\n"):
        for line in para.splitlines():
            if line.startswith("Depends: "):
                deps |= {d.strip().split(" ")[0] for d in line[9:].split(",")}
    return sorted(deps - set(OUR_PACKAGES))


@contextlib.contextmanager
def booted(prefix: Path, feed_dir: Path, workdir: Path, tag: str) -> Iterator[RouterRoot]:
    """A started root whose opkg knows our feed and has what it depends on; closed after."""
    root = RouterRoot(prefix, workdir / "stage", tag)
    root.start(base_packages(feed_dir))
    try:
        root.add_feed(feed_dir)
        yield root
    finally:
        root.close()
