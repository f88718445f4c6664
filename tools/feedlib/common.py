"""What every part of feed.py shares: the paths it reads, the names it checks, its error."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Final, Literal

REPO: Final = Path(__file__).resolve().parent.parent.parent
FILE_LIST: Final = Path("package/files.list")
VERSION_FILE: Final = Path("python/bonding/__init__.py")
DEFAULT_PYTHON: Final = "3.11"  # OpenWrt 24.10, the last release with opkg (25.12 has 3.13, apk)

Kind = Literal["file", "dir", "link"]

# apk's version grammar (OpenWrt 25.12 refuses anything else): 1.2.3, 1.2.3a, 1.2.3_rc1 ...
_APK_VERSION: Final = re.compile(
    r"^[0-9]+(\.[0-9]+)*[a-z]?(_(alpha|beta|pre|rc|cvs|svn|git|hg|p)[0-9]*)*$")
_PKG_NAME: Final = re.compile(r"^[a-z0-9][a-z0-9.+-]*$")
_PYTHON: Final = re.compile(r"^3\.[0-9]+$")
_MODE: Final = re.compile(r"^0[0-7]{3}$")


class FeedError(Exception):
    """Something in the list, a Makefile or the tree that stops packaging, said plainly."""

