"""The .ipk files (as scripts/ipkg-build makes them), the Packages index and its signature."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import os
import subprocess
import tarfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from feedlib import usign
from feedlib.common import (
    REPO,
    FeedError,
)
from feedlib.files import Item
from feedlib.makefile import Meta


def _info(name: str, kind: bytes, mode: int, mtime: int, size: int = 0,
          link: str = "") -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type = kind
    ti.mode = mode
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = ""
    ti.mtime = mtime
    ti.size = size
    ti.linkname = link
    return ti


def _tar(members: Sequence[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tf:
        for ti, data in members:
            tf.addfile(ti, io.BytesIO(data) if data is not None else None)
    return raw.getvalue()


def _gz(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=9, mtime=0)


def _sort_key(path: str) -> list[str]:
    return path.strip("/").split("/") if path.strip("/") else []


def data_members(items: Sequence[Item], mtime: int) -> list[tuple[tarfile.TarInfo, bytes | None]]:
    """data.tar's members: every parent directory, then the items, in ipkg-build's order."""
    dirs: dict[str, int] = {"/": 0o755}
    for item in items:
        parts = item.path.strip("/").split("/")
        for k in range(1, len(parts)):
            dirs.setdefault("/" + "/".join(parts[:k]), 0o755)
        if item.kind == "dir":
            dirs[item.path] = item.mode
    entries: list[tuple[str, tarfile.TarInfo, bytes | None]] = []
    for d, mode in dirs.items():
        entries.append((d, _info("." + (d if d != "/" else "/"), tarfile.DIRTYPE, mode, mtime),
                        None))
    for item in items:
        name = "." + item.path
        if item.kind == "link":
            assert item.target is not None
            entries.append((item.path, _info(name, tarfile.SYMTYPE, 0o777, mtime,
                                             link=item.target), None))
        elif item.kind == "file":
            assert item.source is not None
            data = item.source.read_bytes()
            entries.append((item.path, _info(name, tarfile.REGTYPE, item.mode, mtime,
                                             size=len(data)), data))
    entries.sort(key=lambda e: _sort_key(e[0]))
    return [(ti, data) for _, ti, data in entries]


def control_text(meta: Meta, installed_size: int) -> str:
    """The control file, field by field as include/package-pack.mk writes it."""
    depends = ", ".join(("libc", *meta.depends))
    fields = [("Package", meta.name), ("Version", meta.full_version), ("Depends", depends),
              ("Source", meta.makefile.parent.relative_to(REPO).as_posix()
               if meta.makefile.is_relative_to(REPO) else meta.makefile.parent.name),
              ("SourceName", meta.name), ("License", meta.license),
              ("Require-User", meta.userid), ("Section", meta.section),
              ("URL", meta.url), ("Maintainer", meta.maintainer),
              ("Architecture", meta.pkgarch), ("Installed-Size", str(installed_size))]
    text = "".join(f"{k}: {v}\n" for k, v in fields if v)
    lines = (meta.description or meta.title).splitlines() or [meta.name]
    return text + "Description: " + "\n".join(" " + x.lstrip() for x in lines) + "\n"


_POSTINST: Final = """#!/bin/sh
[ "${IPKG_NO_SCRIPT}" = "1" ] && exit 0
[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0
. ${IPKG_INSTROOT}/lib/functions.sh
default_postinst $0 $@
"""
_PRERM: Final = """#!/bin/sh
[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0
. ${IPKG_INSTROOT}/lib/functions.sh
default_prerm $0 $@
"""


def control_members(meta: Meta, items: Sequence[Item], installed_size: int,
                    mtime: int) -> list[tuple[tarfile.TarInfo, bytes | None]]:
    files: dict[str, tuple[bytes, int]] = {
        "control": (control_text(meta, installed_size).encode(), 0o644),
        "postinst": (_POSTINST.encode(), 0o755),
        "prerm": (_PRERM.encode(), 0o755),
    }
    regular = {i.path for i in items if i.kind == "file"}
    conffiles = sorted(c for c in meta.conffiles if c in regular)
    if conffiles:
        files["conffiles"] = ("".join(c + "\n" for c in conffiles).encode(), 0o644)
    for script, body in meta.scripts.items():
        # package-pack.mk: postinst and prerm of the Makefile run from default_postinst/_prerm
        name = script + "-pkg" if script in ("postinst", "prerm") else script
        files[name] = (body.encode(), 0o755)
    out: list[tuple[tarfile.TarInfo, bytes | None]] = [
        (_info("./", tarfile.DIRTYPE, 0o755, mtime), None)]
    for name in sorted(files):
        data, mode = files[name]
        out.append((_info("./" + name, tarfile.REGTYPE, mode, mtime, size=len(data)), data))
    return out


def build_ipk(meta: Meta, items: Sequence[Item], outdir: Path, mtime: int) -> Path:
    data_tar = _tar(data_members(items, mtime))
    control_tar = _tar(control_members(meta, items, len(data_tar), mtime))
    data_gz, control_gz = _gz(data_tar), _gz(control_tar)
    outer = _tar([
        (_info("./debian-binary", tarfile.REGTYPE, 0o644, mtime, size=4), b"2.0\n"),
        (_info("./data.tar.gz", tarfile.REGTYPE, 0o644, mtime, size=len(data_gz)), data_gz),
        (_info("./control.tar.gz", tarfile.REGTYPE, 0o644, mtime, size=len(control_gz)),
         control_gz),
    ])
    path = outdir / f"{meta.name}_{meta.full_version}_{meta.pkgarch}.ipk"
    path.write_bytes(_gz(outer))
    return path


def read_control(ipk: Path) -> str:
    """The control file inside an .ipk (as opkg-make-index reads it)."""
    with tarfile.open(ipk, "r:gz") as outer:
        member = outer.extractfile("./control.tar.gz")
        if member is None:
            raise FeedError(f"{ipk}: no ./control.tar.gz")
        with tarfile.open(fileobj=io.BytesIO(member.read()), mode="r:gz") as ctl:
            f = ctl.extractfile("./control")
            if f is None:
                raise FeedError(f"{ipk}: no ./control in control.tar.gz")
            return f.read().decode()


def index_entry(ipk: Path, feed: Path) -> str:
    """One Packages paragraph: the control file with Filename, Size and SHA256sum before the
    Description, as scripts/ipkg-make-index.sh writes it."""
    data = ipk.read_bytes()
    extra = (f"Filename: {ipk.relative_to(feed).as_posix()}\nSize: {len(data)}\n"
             f"SHA256sum: {hashlib.sha256(data).hexdigest()}\n")
    control = read_control(ipk)
    if "\nDescription:" not in "\n" + control:
        raise FeedError(f"{ipk}: control has no Description")
    head, sep, tail = ("\n" + control).partition("\nDescription:")
    return (head[1:] + "\n" if head[1:] else "") + extra + sep[1:] + tail


def write_index(feed: Path) -> Path:
    ipks = sorted(feed.rglob("*.ipk"))
    text = "".join(index_entry(p, feed).rstrip("\n") + "\n\n" for p in ipks)
    (feed / "Packages").write_text(text)
    (feed / "Packages.gz").write_bytes(_gz(text.encode()))
    return feed / "Packages"


def sign_index(feed: Path, key: usign.SecretKey) -> Path:
    """Packages.sig, as OpenWrt's `make package/index` makes it (usign -S of Packages)."""
    sig = feed / "Packages.sig"
    sig.write_text(usign.sign((feed / "Packages").read_bytes(), key))
    return sig


def source_epoch(root: Path = REPO) -> int:
    """SOURCE_DATE_EPOCH, else the last commit's time, else now: the files' mtime."""
    raw = os.environ.get("SOURCE_DATE_EPOCH", "")
    if raw.isdigit():
        return int(raw)
    with contextlib.suppress(OSError, subprocess.SubprocessError, ValueError):
        r = subprocess.run(["git", "-C", str(root), "log", "-1", "--format=%ct"],
                           capture_output=True, text=True, timeout=10, check=True)
        return int(r.stdout.strip())
    return int(time.time())

