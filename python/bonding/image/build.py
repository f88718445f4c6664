"""The build artefacts: ASU request, imagebuilder command line and script, the output folder.

ASU (the attended sysupgrade server, openwrt/asu) takes ``POST /api/v1/build`` with a JSON body
whose fields are defined by ``asu/build_request.py`` (`BuildRequest`): ``version`` (a point
release such as 24.10.6), ``target`` (``target/subtarget``), ``profile`` (the imagebuilder
PROFILE), ``packages`` (additional packages when ``diff_packages`` is false; ``-name`` removes),
``defaults`` (a first-boot script installed as /etc/uci-defaults/99-asu-defaults, at most 20480
bytes, and only where the server enables ``allow_defaults``), ``repositories`` {name: url} with
``repositories_mode`` ``append`` (else the official feeds are replaced) and ``repository_keys``
(usign public keys for opkg, PEM keys for apk), and ``client`` (name/version of the requester).
The bonding packages are not in OpenWrt's own feeds, so an ASU server can only build this image
when it allows our feed (``repository_allow_list``).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from bonding import __version__, safefile
from bonding.image.packages import PACKAGE_MANAGER, RELEASES
from bonding.image.setup_script import ASU_MAX_DEFAULTS, SCRIPT_NAME, sq

# A bare branch becomes this point release in asu-request.json (ASU wants an exact version);
# the newest releases known when this version of bonding-image was made.  --release 24.10.N
# picks another.
POINT_RELEASES: Final = {"24.10": "24.10.6", "25.12": "25.12.2"}

_RELEASE_RE: Final = re.compile(r"(\d+\.\d+)(?:\.(\d+)(-rc\d+)?)?")
# asu/build_request.py
_ASU_STRING: Final = re.compile(r"[\w.,-]+")
_ASU_TARGET: Final = re.compile(r"\w+/\w+")
_ASU_REPO_URL: Final = re.compile(r"https?://\S+")


class BuildError(ValueError):
    """A build parameter that cannot work; the message says which and why."""


@dataclass(frozen=True)
class Release:
    branch: str  # "24.10"
    version: str  # "24.10.6"
    defaulted: bool  # version picked from POINT_RELEASES

    @property
    def package_manager(self) -> str:
        return PACKAGE_MANAGER[self.branch]


def parse_release(raw: str) -> Release:
    m = _RELEASE_RE.fullmatch(raw.strip())
    if m is None or m.group(1) not in RELEASES:
        raise BuildError(f"--release {raw!r}: use {' or '.join(RELEASES)}, or a point release "
                         f"of them such as {POINT_RELEASES['24.10']}")
    branch = m.group(1)
    if m.group(2) is None:
        return Release(branch, POINT_RELEASES[branch], True)
    return Release(branch, raw.strip(), False)


def check_target(target: str, profile: str) -> None:
    if not _ASU_TARGET.fullmatch(target):
        raise BuildError(f"--target {target!r}: write target/subtarget, e.g. ramips/mt7621 or "
                         "x86/64 (letters, digits and '_' on each side)")
    if not _ASU_STRING.fullmatch(profile):
        raise BuildError(f"--profile {profile!r}: the imagebuilder profile, e.g. "
                         "glinet_gl-mt6000 (letters, digits, '_', '.', ',', '-')")


@dataclass(frozen=True)
class Feed:
    url: str
    key: str | None  # as ASU wants it: a usign key line (opkg) or a PEM block (apk)


def make_feed(release: Release, url: str, key_text: str | None, key_name: str) -> Feed:
    if not _ASU_REPO_URL.fullmatch(url):
        raise BuildError(f"--feed-url {url!r}: an http(s) URL without spaces")
    apk = release.package_manager == "apk"
    if apk and not url.endswith("/packages.adb"):
        raise BuildError(f"--feed-url {url!r}: on {release.branch} (apk) the URL of the feed's "
                         "packages.adb index")
    if not apk and url.endswith(".adb"):
        raise BuildError(f"--feed-url {url!r}: on {release.branch} (opkg) the folder that "
                         "holds the feed's Packages.gz, not an apk index")
    if key_text is None:
        return Feed(url, None)
    text = key_text.strip()
    if text.startswith("-----BEGIN"):
        if not apk:
            raise BuildError(f"--feed-key {key_name}: a PEM key is for apk (25.12); "
                             f"{release.branch} feeds are signed with usign (a key.pub with "
                             "an 'untrusted comment' line)")
        return Feed(url, text + "\n")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    body = [ln for ln in lines if not ln.startswith("untrusted comment:")]
    if apk:
        raise BuildError(f"--feed-key {key_name}: {release.branch} (apk) feeds need a PEM public "
                         "key (-----BEGIN PUBLIC KEY-----)")
    if len(body) != 1 or not re.fullmatch(r"[A-Za-z0-9+/]{40,}={0,2}", body[0]):
        raise BuildError(f"--feed-key {key_name}: not a usign public key (key.pub: an "
                         "'untrusted comment:' line and one base64 line)")
    return Feed(url, body[0])


def asu_request(*, release: Release, target: str, profile: str, packages: Sequence[str],
                defaults: str, feed: Feed | None) -> dict[str, Any]:
    """The body of ASU's POST /api/v1/build."""
    size = len(defaults.encode())
    if size > ASU_MAX_DEFAULTS:
        raise BuildError(f"the first-boot script is {size} bytes; ASU takes at most "
                         f"{ASU_MAX_DEFAULTS} (fewer servers or --wan ports)")
    for p in packages:
        if not _ASU_STRING.fullmatch(p):
            raise BuildError(f"package name {p!r} does not fit ASU's pattern")
    body: dict[str, Any] = {
        "version": release.version,
        "target": target,
        "profile": profile,
        "packages": list(packages),
        "diff_packages": False,
        "defaults": defaults,
        "client": f"bonding-image/{__version__}",
    }
    if feed is not None:
        body["repositories"] = {"bonding": feed.url}
        body["repositories_mode"] = "append"
        body["repository_keys"] = [feed.key] if feed.key else []
    return body


def make_command(profile: str, packages: Sequence[str], files_dir: str) -> str:
    """The imagebuilder command line (run in the imagebuilder's folder)."""
    return (f"make image PROFILE={sq(profile)} PACKAGES={sq(' '.join(packages))} "
            f"FILES={sq(files_dir)}")


def imagebuilder_script(*, release: Release, target: str, profile: str,
                        packages: Sequence[str]) -> str:
    """A POSIX sh script that builds the image with a local imagebuilder and local packages."""
    ext = "apk" if release.package_manager == "apk" else "ipk"
    repo_file = "repositories" if ext == "apk" else "repositories.conf"
    board, sub = target.split("/", 1)
    make = make_command(profile, packages, "$here/files").replace("'$here/files'",
                                                                  '"$here/files"')
    return f"""#!/bin/sh
# Build the firmware with an OpenWrt imagebuilder; generated by bonding-image {__version__}.
#
# Usage: sh imagebuilder.sh IMAGEBUILDER_DIR BONDING_PACKAGES_DIR
#   IMAGEBUILDER_DIR      an unpacked imagebuilder:
#                         openwrt-imagebuilder-{release.version}-{board}-{sub}.Linux-x86_64
#   BONDING_PACKAGES_DIR  the bonding feed's built packages (*.{ext}: bonding, python3-bonding,
#                         bonding-usb, luci-app-bonding; sdk-build.sh makes them); they are copied
#                         into the imagebuilder's own local repository (packages/)
# Release {release.branch} ({release.package_manager}), target {target}, profile {profile}.
# The bonding packages come from that folder; the imagebuilder takes OpenWrt's own packages
# from its repositories as usual.  The first-boot setup is files/etc/uci-defaults/{SCRIPT_NAME}:
# the image holds the server key, keep it private.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
usage="usage: sh imagebuilder.sh IMAGEBUILDER_DIR BONDING_PACKAGES_DIR"
ib=${{1:?$usage}}
pkgs=${{2:?$usage}}
if [ ! -f "$ib/Makefile" ] || [ ! -d "$ib/packages" ]; then
	echo "imagebuilder.sh: $ib is not an OpenWrt imagebuilder (no Makefile or packages/)" >&2
	exit 2
fi
if [ ! -f "$ib/{repo_file}" ]; then
	echo "imagebuilder.sh: $ib has no {repo_file}: it is not for {release.branch}" >&2
	exit 2
fi
if [ -f "$ib/.config" ] && ! grep -q '^CONFIG_TARGET_BOARD="{board}"$' "$ib/.config"; then
	echo "imagebuilder.sh: $ib is not for target {target}" >&2
	exit 2
fi
found=0
for f in "$pkgs"/*.{ext}; do
	[ -f "$f" ] || continue
	cp "$f" "$ib/packages/"
	found=$((found + 1))
done
if [ "$found" -eq 0 ]; then
	echo "imagebuilder.sh: no *.{ext} in $pkgs: build the feed for {release.branch}" >&2
	exit 2
fi
cd "$ib"
{make}
"""


def write_outputs(out: Path, *, script: str, packages: Sequence[str],
                  asu: dict[str, Any], ib_script: str) -> dict[str, Path]:
    """Write the artefacts; files that hold the key are mode 0600.

    Through bonding.safefile: an output directory that someone else can write to is refused
    (they could swap the first-boot script after it is written), and no planted file or
    symlink in it is ever opened."""
    files_parts = ("files", "etc", "uci-defaults")
    written = {
        "setup": out / SCRIPT_NAME,
        "files": out.joinpath(*files_parts, SCRIPT_NAME),
        "packages": out / "packages.txt",
        "asu": out / "asu-request.json",
        "imagebuilder": out / "imagebuilder.sh",
    }
    fds = [safefile.open_dir(out, create=True)]
    try:
        for part in files_parts:
            fds.append(safefile.subdir(fds[-1], part, str(out.joinpath(*files_parts[:len(fds)]))))
        top, files = fds[0], fds[-1]
        for fd, key, text, mode in (
                (top, "setup", script, 0o600), (files, "files", script, 0o600),
                (top, "packages", " ".join(packages) + "\n", 0o644),
                (top, "asu", json.dumps(asu, indent=2) + "\n", 0o600),
                (top, "imagebuilder", ib_script, 0o755)):
            safefile.write_at(fd, written[key].name, text.encode(), mode)
    finally:
        for fd in fds:
            os.close(fd)
    return written
