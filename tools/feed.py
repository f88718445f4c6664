#!/usr/bin/env python3
"""The bonding packages, from the one file list, for every packaging path.

    feed.py build --output DIR [--python X.Y] [--key SECRET | --key-dir KEYDIR | --unsigned]
                  [PACKAGE ...]
        an opkg feed folder without the SDK: one .ipk per arch-all package, Packages,
        Packages.gz and Packages.sig (what `make feed FEED_DIR=DIR` runs).  The index is signed
        with usign's format, by default with KEYDIR/key-build (made there, with key-build.pub,
        when missing; KEYDIR is $BONDING_FEED_KEY_DIR, else ~/.config/bonding-feed), never a
        key inside this repository; the public key and the router's `opkg-key add` step are
        printed.
    feed.py apk --output DIR [--python X.Y] [--apk APK] [--key PEM | --key-dir KEYDIR |
                --unsigned] [PACKAGE ...]
        an apk repository folder for OpenWrt 25.12 (what `make feed-apk FEED_DIR=DIR` runs): one
        APKv3 .apk per arch-all package, made by the real `apk mkpkg` with OpenWrt's
        /lib/apk/packages/<pkg>.{list,conffiles,...} and install scripts (feedlib/apk.py), and
        packages.adb by `apk mkndx`, signed by default with the ECDSA P-256 key
        KEYDIR/private-key.pem (made there, with public-key.pem, when missing); the router's
        key and repositories.d steps are printed.  Python defaults to 3.13 (25.12's).
    feed.py install [--python X.Y] PACKAGE DESTDIR
        put PACKAGE's files into DESTDIR (what the package Makefiles' install sections run in the
        OpenWrt SDK or buildroot)
    feed.py list [--python X.Y] [PACKAGE ...]
        every file with its mode, destination and source
    feed.py version
        the project version (python/bonding/__init__.py)

Where files go is package/files.list; what a package is called, depends on and keeps as
conffiles is in its Makefile (package/NAME/Makefile, or NAME/Makefile for the LuCI app), which
this reads.  The .ipk files are built as OpenWrt's scripts/ipkg-build builds them: a gzipped tar
of ./debian-binary, ./data.tar.gz and ./control.tar.gz (opkg-lede reads no other outer format),
with the postinst/prerm that include/package-pack.mk writes (default_postinst runs the
uci-defaults, restarts sysctl and enables and starts the init scripts).  Standard library only.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from feedlib.apk import (
    DEFAULT_APK_PYTHON,
    INDEX,
    PUBLIC_NAME,
    SECRET_NAME,
    apk_version,
    build_apk,
    find_apk,
    generate_key,
    meta_files,
    public_of,
    scripts,
)
from feedlib.apk import write_index as write_apk_index
from feedlib.common import DEFAULT_PYTHON, FILE_LIST, REPO, VERSION_FILE, FeedError, Kind
from feedlib.files import (
    Item,
    Rule,
    install,
    load_items,
    project_version,
    pysite,
    read_rules,
    resolve,
)
from feedlib.ipk import (
    build_ipk,
    control_members,
    control_text,
    data_members,
    index_entry,
    read_control,
    sign_index,
    source_epoch,
    write_index,
)
from feedlib.makefile import Meta, load_metas, makefile_for, parse_makefile
from feedlib.usign import SecretKey, generate, load_secret, public_text

__all__ = [
    "DEFAULT_APK_PYTHON",
    "DEFAULT_PYTHON",
    "FILE_LIST",
    "REPO",
    "VERSION_FILE",
    "FeedError",
    "Item",
    "Kind",
    "Meta",
    "Rule",
    "apk_version",
    "build_apk",
    "build_apk_feed",
    "build_feed",
    "build_ipk",
    "control_members",
    "control_text",
    "data_members",
    "index_entry",
    "install",
    "load_items",
    "load_metas",
    "main",
    "makefile_for",
    "meta_files",
    "parse_makefile",
    "project_version",
    "pysite",
    "read_control",
    "read_rules",
    "resolve",
    "scripts",
    "sign_index",
    "source_epoch",
    "write_index",
]


def _checked(root: Path, only: Sequence[str], python: str
             ) -> tuple[dict[str, list[Item]], list[str], dict[str, Meta]]:
    """The items of every package, the packages to build (in order) and their metadata, checked
    against each other; a package without a Makefile is skipped (an error when asked for)."""
    items = load_items(root, python)
    wanted = list(only) or list(items)
    unknown = [p for p in wanted if p not in items]
    if unknown:
        raise FeedError(f"not in {FILE_LIST}: {', '.join(unknown)}")
    metas, missing = load_metas(wanted, root)
    for pkg in missing:
        if only:
            raise FeedError(f"{pkg}: no package/{pkg}/Makefile or {pkg}/Makefile")
        print(f"feed: skipping {pkg}: no package/{pkg}/Makefile or {pkg}/Makefile",
              file=sys.stderr)
    problems = []
    for name, meta in metas.items():
        if name not in items:
            problems.append(f"{meta.makefile.relative_to(root)} builds {name}, which "
                            f"{FILE_LIST} does not list")
        if meta.pkgarch != "all":
            problems.append(f"{name}: PKGARCH is {meta.pkgarch or 'unset'}: only arch-all "
                            "packages go into this feed (build the others with sdk-build.sh)")
        files = {i.path for i in items.get(name, ()) if i.kind == "file"}
        for c in meta.conffiles:
            if c not in files:
                problems.append(f"{name}: conffile {c} is not a file of the package")
    if problems:
        raise FeedError("; ".join(problems))
    return items, [n for n in wanted if n in metas], metas


def _build_each(outdir: Path, only: Sequence[str], python: str, root: Path, mtime: int | None,
                old_glob: str, build: Callable[[Meta, list[Item], int], Path],
                ) -> list[tuple[Meta, Path, int]]:
    """Each wanted package built by `build` into `outdir`, its older files (`old_glob`, with
    {name}) removed first; returns (meta, package file, file count)."""
    items, wanted, metas = _checked(root, only, python)
    outdir.mkdir(parents=True, exist_ok=True)
    epoch = source_epoch(root) if mtime is None else mtime
    built = []
    for name in wanted:
        for old in outdir.glob(old_glob.format(name=name)):
            old.unlink()
        built.append((metas[name], build(metas[name], items[name], epoch), len(items[name])))
    return built


def build_feed(outdir: Path, only: Sequence[str] = (), python: str = DEFAULT_PYTHON,
               root: Path = REPO, mtime: int | None = None) -> list[tuple[Meta, Path, int]]:
    """Build the .ipk files and the index into `outdir`; returns (meta, ipk, file count)."""
    built = _build_each(outdir, only, python, root, mtime, "{name}_*.ipk",
                        lambda meta, files, epoch: build_ipk(meta, files, outdir, epoch))
    write_index(outdir)
    return built


def build_apk_feed(outdir: Path, apk: Path, key: Path | None, only: Sequence[str] = (),
                   python: str = DEFAULT_APK_PYTHON, root: Path = REPO,
                   mtime: int | None = None) -> list[tuple[Meta, Path, int]]:
    """Build the .apk files (apk mkpkg) and packages.adb (apk mkndx, signed with `key` unless
    None) into `outdir`; returns (meta, apk file, file count)."""
    built = _build_each(outdir, only, python, root, mtime, "{name}-[0-9]*.apk",
                        lambda meta, files, epoch: build_apk(meta, files, outdir, epoch, apk))
    write_apk_index(outdir, apk, key)
    return built


# --- command line ----------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="feed.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"%(prog)s {project_version()}")
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="an installable opkg feed folder of the arch-all packages")
    b.add_argument("--output", "-o", type=Path, required=True, help="the feed folder")
    b.add_argument("--python", default=DEFAULT_PYTHON,
                   help="the router's Python major.minor (default %(default)s: OpenWrt 24.10)")
    how = b.add_mutually_exclusive_group()
    how.add_argument("--key", "--sign", metavar="SECRET", type=Path, default=None,
                     help="sign Packages with this usign secret key (usign -G makes one)")
    how.add_argument("--key-dir", metavar="DIR", type=Path, default=None,
                     help="sign with DIR/key-build, made there when missing (default: "
                          "$BONDING_FEED_KEY_DIR, else ~/.config/bonding-feed)")
    how.add_argument("--unsigned", action="store_true",
                     help="no Packages.sig: opkg then refuses the feed (for copying .ipk files "
                          "to the router only; never switch check_signature off)")
    b.add_argument("packages", nargs="*", help="only these (default: all in the list)")
    a = sub.add_parser("apk", help="an apk repository folder (OpenWrt 25.12) of the arch-all "
                                   "packages: .apk files and a signed packages.adb")
    a.add_argument("--output", "-o", type=Path, required=True, help="the repository folder")
    a.add_argument("--python", default=DEFAULT_APK_PYTHON,
                   help="the router's Python major.minor (default %(default)s: OpenWrt 25.12)")
    a.add_argument("--apk", type=Path, default=None,
                   help="the apk-tools 3 program (default: $APK, else $OWRT_PREFIX/bin/apk, "
                        "else apk on PATH)")
    how = a.add_mutually_exclusive_group()
    how.add_argument("--key", "--sign", metavar="PEM", type=Path, default=None,
                     help="sign packages.adb with this ECDSA P-256 secret key")
    how.add_argument("--key-dir", metavar="DIR", type=Path, default=None,
                     help=f"sign with DIR/{SECRET_NAME}, made there (with {PUBLIC_NAME}) when "
                          "missing (default: $BONDING_FEED_KEY_DIR, else ~/.config/bonding-feed)")
    how.add_argument("--unsigned", action="store_true",
                     help="an unsigned packages.adb: apk refuses it (for tests of that only)")
    a.add_argument("packages", nargs="*", help="only these (default: all in the list)")
    i = sub.add_parser("install", help="put a package's files into a directory (Makefiles)")
    i.add_argument("--python", default=None, help="the router's Python major.minor")
    i.add_argument("package")
    i.add_argument("destdir", type=Path)
    ls = sub.add_parser("list", help="every packaged file: mode, destination, source")
    ls.add_argument("--python", default=DEFAULT_PYTHON)
    ls.add_argument("packages", nargs="*")
    sub.add_parser("version", help="print the project version")
    return p


def _show(item: Item) -> str:
    if item.kind == "dir":
        return f"{item.mode:04o}  {item.path}/"
    if item.kind == "link":
        return f"link  {item.path} -> {item.target}"
    assert item.source is not None
    src = item.source.relative_to(REPO) if item.source.is_relative_to(REPO) else item.source
    return f"{item.mode:04o}  {item.path}  ({src})"


def _version(args: argparse.Namespace) -> None:
    print(project_version())


def _install(args: argparse.Namespace) -> None:
    rules = [r for r in read_rules((REPO / FILE_LIST).read_text()) if r.package == args.package]
    if not rules:
        raise FeedError(f"{args.package}: not in {FILE_LIST}")
    install(resolve(rules, REPO, args.python).get(args.package, []), args.destdir)


def _list(args: argparse.Namespace) -> None:
    items = load_items(REPO, args.python)
    for pkg in args.packages or list(items):
        if pkg not in items:
            raise FeedError(f"{pkg}: not in {FILE_LIST}")
        print(f"{pkg}:")
        for item in items[pkg]:
            print("  " + _show(item))


def default_key_dir() -> Path:
    env = os.environ.get("BONDING_FEED_KEY_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "bonding-feed"


def signing_key(key: Path | None, key_dir: Path | None) -> tuple[SecretKey, Path, bool]:
    """The secret key to sign with, its file, and whether it was made just now."""
    path = key if key is not None else (key_dir or default_key_dir()) / "key-build"
    _outside_repo(path)
    if key is not None or path.exists():
        if not path.is_file():
            raise FeedError(f"{path}: no such usign secret key (usign -G -s {path} -p "
                            f"{path}.pub makes one)")
        return load_secret(path), path, False
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    return generate(path, path.with_name(path.name + ".pub")), path, True


def _outside_repo(path: Path) -> None:
    if path.resolve().is_relative_to(REPO):
        raise FeedError(f"{path}: a signing key inside the repository could be committed; "
                        "keep it outside (--key-dir DIR)")


def apk_signing_key(key: Path | None, key_dir: Path | None) -> tuple[Path, str, bool]:
    """The P-256 secret key to sign packages.adb with, its public PEM, and whether it was made
    just now (in the usign key's folder, under OpenWrt's names)."""
    path = key if key is not None else (key_dir or default_key_dir()) / SECRET_NAME
    _outside_repo(path)
    if key is not None or path.exists():
        if not path.is_file():
            raise FeedError(f"{path}: no such key (openssl ecparam -name prime256v1 -genkey "
                            f"-noout -out {path} makes one)")
        return path, public_of(path), False
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path, generate_key(path).read_text(), True


def _apk_router_steps(path: Path, pub: str, made: bool, outdir: Path) -> str:
    return (("A new signing key: " if made else "Signed with ") + f"{path}.\n"
            "On the router (OpenWrt 25.12), trust its public key and add the repository:\n"
            f"  cat > /etc/apk/keys/bonding-feed.pem <<'EOF'\n{pub}EOF\n"
            f"  echo 'file://{outdir.resolve()}/{INDEX}' >> "
            "/etc/apk/repositories.d/customfeeds.list   (or the URL you serve it at)\n"
            "  apk update && apk add bonding\n"
            "apk then refuses an index this key did not sign and a package whose hash the index "
            "does not hold; never use --allow-untrusted.")


def _build_apk(args: argparse.Namespace) -> None:
    signer = None if args.unsigned else apk_signing_key(args.key, args.key_dir)
    apk = find_apk(args.apk)
    built = build_apk_feed(args.output, apk, signer[0] if signer else None, args.packages,
                           args.python)
    for meta, pkg, n in built:
        print(f"{pkg.name}: {pkg.stat().st_size} bytes, {n} entries, depends on "
              f"{', '.join(meta.depends) or 'nothing'}")
    print(f"{args.output / INDEX}: {len(built)} packages (built by {apk}).")
    if signer is not None:
        print(_apk_router_steps(*signer, args.output))
    else:
        print("Unsigned (--unsigned): apk refuses this index; build it signed to serve it.",
              file=sys.stderr)


def _router_steps(key: SecretKey, path: Path, made: bool) -> str:
    pub = public_text(key)
    return (("A new signing key: " if made else "Signed with ") + f"{path} (key {key.hex}).\n"
            "Once on the router, trust it as opkg-key add does (it becomes "
            f"/etc/opkg/keys/{key.hex}):\n"
            f"  cat > /tmp/bonding-feed.pub <<'EOF'\n{pub}EOF\n"
            "  opkg-key add /tmp/bonding-feed.pub\n"
            "and keep `option check_signature` in /etc/opkg.conf: opkg then refuses an index "
            "this key did not sign, on every feed.")


def _build(args: argparse.Namespace) -> None:
    signer = None if args.unsigned else signing_key(args.key, args.key_dir)
    built = build_feed(args.output, args.packages, args.python)
    if signer is not None:
        sign_index(args.output, signer[0])
    else:
        (args.output / "Packages.sig").unlink(missing_ok=True)
    for meta, ipk, n in built:
        print(f"{ipk.name}: {ipk.stat().st_size} bytes, {n} entries, "
              f"depends on {', '.join(meta.depends) or 'nothing'}")
    print(f"{args.output / 'Packages'}: {len(built)} packages.  On the router: "
          f"src/gz bonding file://{args.output.resolve()} (or the URL you serve it at) in "
          "/etc/opkg/customfeeds.conf, or opkg install the .ipk files directly.")
    if signer is not None:
        print(_router_steps(*signer))
    else:
        print("Unsigned (--unsigned): opkg update refuses this feed while check_signature is "
              "on, which it must stay; build it signed to serve it.", file=sys.stderr)


_COMMANDS: dict[str, Callable[[argparse.Namespace], None]] = {
    "version": _version, "install": _install, "list": _list, "build": _build,
    "apk": _build_apk}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        _COMMANDS[args.cmd](args)
    except FeedError as e:
        print(f"feed.py: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
