"""Our packages into an OpenWrt root, as a user installs them: the opkg feed of `make feed`
(OpenWrt 24.10) or the signed apk repository of `make feed-apk` (25.12), each built by
tools/feed.py of this checkout for the host's Python (which runs bondingd in the root).

With apk, what our packages depend on beyond ours (libc, python3-light, ip-full, ...) is the
root's own userland: one package made with the real `apk mkpkg`, installed first, provides
those names (as the opkg flavour declares them installed in opkg's status); the repository is
listed in /etc/apk/repositories.d/ and its public key put in /etc/apk/keys/, as the README tells
a 25.12 user."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bonding import __version__
from bonding.lab.model import LabError
from bonding.lab.owrt.root import OwrtRoot
from bonding.lab.owrt.userland import OUR_PACKAGES, pyver

REPO = Path(__file__).resolve().parents[4]  # the checkout (tools/feed.py)
APK_SERVED = "/tmp/bonding-apk"  # where the root reads the apk repository (file://)
APK_LIST = "/etc/apk/repositories.d/customfeeds.list"
APK_KEY = "/etc/apk/keys/bonding-feed.pem"
APK_PUBLIC = "public-key.pem"  # in the key directory feed.py signs with (feedlib/apk.py)


def _feed_py(*args: str) -> None:
    feed = REPO / "tools" / "feed.py"
    if not feed.is_file():
        raise LabError(f"the OpenWrt router installs our feed: {feed} is missing (run the lab "
                       "from a checkout)")
    r = subprocess.run([sys.executable, str(feed), *args], capture_output=True, text=True,
                       timeout=300, check=False)
    if r.returncode != 0:
        raise LabError(f"tools/feed.py {args[0]} failed: {r.stderr.strip()}")


def build_opkg_feed(out: Path) -> Path:
    """The opkg feed as `make feed` builds it (signed with a key of the lab's, beside it)."""
    _feed_py("build", "--output", str(out), "--python", pyver(), "--key-dir",
             str(out.parent / "feed-key"))
    return out


def build_apk_repo(out: Path, apk: Path) -> Path:
    """The apk repository as `make feed-apk` builds it, signed with an ECDSA P-256 key of the
    lab's (feed-key-apk/, beside it)."""
    _feed_py("apk", "--output", str(out), "--python", pyver(), "--apk", str(apk), "--key-dir",
             str(out.parent / "feed-key-apk"))
    return out


def apk_base_package(apk: Path, repo: Path, out: Path) -> Path:
    """A package providing every name our packages depend on that is not ours."""
    deps: set[str] = set()
    for name in OUR_PACKAGES:
        r = subprocess.run([str(apk), "adbdump", str(repo / f"{name}-{__version__}-r1.apk")],
                           capture_output=True, text=True, check=True, timeout=60)
        lines = r.stdout.splitlines()
        start = next(i for i, x in enumerate(lines) if x.startswith("  depends:"))
        for x in lines[start + 1:]:
            if not x.startswith("    - "):
                break
            deps.add(x[6:].strip())
    empty = out / "empty"
    empty.mkdir(parents=True, exist_ok=True)
    base = out / "scratch-root-base.apk"
    provides = " ".join(f"{d}=1" for d in sorted(deps - set(OUR_PACKAGES)))
    subprocess.run([str(apk), "mkpkg", "--info", "name:scratch-root-base", "--info", "version:1",
                    "--info", "arch:noarch", "--info", f"provides:{provides}", "--files",
                    str(empty), "--output", str(base)], check=True, timeout=60)
    return base


def apk_install(root: OwrtRoot, repo: Path, base: Path,
                names: tuple[str, ...] = ("luci-app-bonding",)) -> None:
    """`names` from the repository by the root's apk, trusting the repository's key."""
    root.copy(base, "/tmp/scratch-root-base.apk")
    root.sh("apk add --initdb --allow-untrusted /tmp/scratch-root-base.apk && "
            "rm /tmp/scratch-root-base.apk")
    root.write(APK_LIST, f"file://{APK_SERVED}/packages.adb\n")
    root.write(APK_KEY, (repo.parent / "feed-key-apk" / APK_PUBLIC).read_text())
    for f in repo.iterdir():
        root.copy(f, f"{APK_SERVED}/{f.name}")
    root.sh("apk update && apk add " + " ".join(names), timeout=180)


def opkg_install(root: OwrtRoot, feed: Path,
                 names: tuple[str, ...] = ("luci-app-bonding",)) -> None:
    """`names` from the opkg feed by the root's opkg."""
    root.add_feed(feed)
    root.sh("opkg update && opkg install " + " ".join(names), timeout=180)
