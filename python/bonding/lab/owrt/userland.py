"""The OpenWrt userland of a prefix (tools/owrt-userland.sh builds it), put into a scratch root
where OpenWrt puts it:

- /bin/sh and every applet of Debian's busybox (but `ip`: bonding depends on ip-full);
- OpenWrt's base shell library and files (/etc/rc.common, /lib/functions.sh,
  /lib/functions/procd.sh, /lib/config/uci.sh, /sbin/service, /sbin/reload_config,
  /sbin/hotplug-call, /etc/hotplug*.json, /etc/init.d/sysctl ...), %PATH% filled in as
  base-files' build does;
- /sbin/procd, /sbin/ubusd, /bin/ubus, /sbin/uci, /sbin/rpcd, /usr/sbin/uhttpd, /bin/opkg,
  /usr/bin/jshn, /usr/share/libubox/jshn.sh, /usr/bin/ucode (and utpl), the libraries in
  /usr/lib (= /lib on Debian) and rpcd's plugins; the prefix itself is masked (rpcd's
  compiled-in ACL and plugin directories under it are links to /usr/share/rpcd and
  /usr/lib/rpcd);
- python3 (the host's) finds /usr/lib/python3.X/site-packages, where OpenWrt's python3
  packages install, through a .pth file; python3-uci's module (pyuci) is there;
- opkg's configuration and status, with the given base packages declared installed;
- of the further OpenWrt packages the prefix holds in PREFIX/openwrt (netifd, jsonfilter,
  firewall4, apk, luci-base, luci-mod-status, luci-mod-system, luci-theme-bootstrap,
  rpcd-mod-luci: PREFIX/share/owrt-parts/<package>.list), only the root's `parts`.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from bonding.lab.commands import run
from bonding.lab.owrt.root import HOST_PYTHON, PATH, OwrtRoot, RootError

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
OUR_PACKAGES = ("python3-bonding", "bonding", "bonding-usb", "bonding-server", "luci-app-bonding")


@functools.cache
def pyver() -> str:
    """The major.minor of the host's python3: /usr/lib/python<it>/site-packages in the root."""
    return subprocess.run([HOST_PYTHON, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                          capture_output=True, text=True, check=True).stdout.strip()


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


def base_packages(feed_dir: Path) -> list[str]:
    """What our packages depend on that is not ours (libc, python3-light, libubus, ...): the
    scratch root's opkg status declares them installed, so opkg resolves the rest for real."""
    deps: set[str] = set()
    for para in (feed_dir / "Packages").read_text().split("\n\n"):
        for line in para.splitlines():
            if line.startswith("Depends: "):
                deps |= {d.strip().split(" ")[0] for d in line[9:].split(",")}
    return sorted(deps - set(OUR_PACKAGES))


def populate(root: OwrtRoot, base_packages: Iterable[str]) -> None:
    """The userland into a root whose PID 1 runs (bonding.lab.owrt.root)."""
    _busybox(root)
    _base_files(root)
    prefix = root.prefix
    for rel, dest in PROGRAMS.items():
        root.copy(prefix / rel, dest)
    root.link("ucode", "/usr/bin/utpl")  # as OpenWrt's ucode package (fw4 runs utpl)
    for lib in sorted((prefix / "lib").iterdir()):
        if lib.is_symlink():
            root.link(os.readlink(lib), f"/usr/lib/{lib.name}")
        elif lib.is_file() and ".so" in lib.name:
            root.copy(lib, f"/usr/lib/{lib.name}")
        elif lib.is_dir() and lib.name in ("rpcd", "ucode"):
            for so in lib.glob("*.so"):
                root.copy(so, f"/usr/lib/{lib.name}/{so.name}")
    # what rpcd and libucode were compiled to look for under the (masked) prefix
    for rel, dest in (("share/rpcd", "/usr/share/rpcd"), ("lib/rpcd", "/usr/lib/rpcd"),
                      ("libexec/rpcd", "/usr/libexec/rpcd"), ("lib/ucode", "/usr/lib/ucode"),
                      ("share/ucode", "/usr/share/ucode")):
        root.path(dest).mkdir(parents=True, exist_ok=True)
        root.link(dest, f"{prefix}/{rel}")
    # rpcd's package installs its ACL for the anonymous session (session login, access)
    unauth = prefix / "share/rpcd/acl.d/unauthenticated.json"
    if not unauth.is_file():
        raise RootError(f"no {unauth}: rebuild the prefix (tools/owrt-userland.sh)")
    root.copy(unauth, "/usr/share/rpcd/acl.d/unauthenticated.json")
    pyuci = _python(root)
    for d in ("/etc/config", "/etc/rc.d", "/var/lock", "/usr/lib/opkg/info"):
        root.path(d).mkdir(parents=True, exist_ok=True)
    opkg_status(root, base_packages, {"python3-uci": [pyuci],
                                      "libubus": ["/usr/lib/libubus.so"],
                                      "libubox": ["/usr/lib/libubox.so"],
                                      "libuci": ["/usr/lib/libuci.so"]})


def _busybox(root: OwrtRoot) -> None:
    """/bin/sh and every applet, as on OpenWrt."""
    for rel in run(["busybox", "--list-full"]).stdout.split():
        if Path(rel).name not in BUSYBOX_KEEP:
            root.link("/usr/bin/busybox", "/" + rel)
    root.link("busybox", "/usr/bin/sh")


def _base_files(root: OwrtRoot) -> None:
    """OpenWrt's base files and the root's parts; init.d and sysctl.d hold OpenWrt's only."""
    for d in ("/etc/init.d", "/etc/sysctl.d"):
        shutil.rmtree(root.path(d), ignore_errors=True)
        root.path(d).mkdir()
    root.path("/etc/sysctl.conf").unlink(missing_ok=True)
    base = root.prefix / "openwrt"
    asked, others = part_files(root.prefix, root.parts)
    for src in sorted(base.rglob("*")):
        rel = src.relative_to(base).as_posix()
        if src.is_dir() or rel in others:
            continue
        if rel not in asked and any(rel == s or rel.startswith(s + "/") for s in BASE_SKIP):
            continue
        if src.is_symlink():
            root.link(os.readlink(src), "/" + rel)
            continue
        data = src.read_bytes().replace(b"%PATH%", PATH.encode())
        mode = src.stat().st_mode & 0o7777
        if rel.startswith(EXECUTABLE_DIRS):
            mode |= 0o755  # INSTALL_BIN in OpenWrt's Makefiles (the prefix lost some modes)
        root.write("/" + rel, data, mode)


def _python(root: OwrtRoot) -> str:
    """OpenWrt's site-packages for the host's python3, with python3-uci's module (pyuci) in it;
    that module's path."""
    site = f"/usr/lib/python{pyver()}/site-packages"
    root.path(site).mkdir(parents=True, exist_ok=True)
    root.write("/usr/lib/python3/dist-packages/openwrt-site-packages.pth", site + "\n")
    pyuci = sorted((root.prefix / "venv").glob(f"lib/python{pyver()}/site-packages/uci.*.so"))
    if not pyuci:
        raise RootError(f"no pyuci for python {pyver()} in {root.prefix}/venv")
    root.copy(pyuci[0], f"{site}/{pyuci[0].name}")
    return f"{site}/{pyuci[0].name}"


def opkg_status(root: OwrtRoot, packages: Iterable[str],
                files: Mapping[str, Sequence[str]]) -> None:
    """opkg's configuration, and its status with `packages` installed (owning `files`)."""
    root.write("/etc/opkg.conf", "dest root /\ndest ram /tmp\nlists_dir ext /var/opkg-lists\n"
               "option overlay_root /overlay\narch all 1\narch noarch 1\narch x86_64 10\n")
    status = []
    for name in sorted(set(packages)):
        status.append(f"Package: {name}\nVersion: 1\nDepends: libc\n"
                      "Status: install user installed\nArchitecture: x86_64\n"
                      "Installed-Time: 1\n")
        root.write(f"/usr/lib/opkg/info/{name}.list",
                   "".join(f + "\n" for f in files.get(name, ())))
    root.write("/usr/lib/opkg/status", "\n".join(status) + "\n")
