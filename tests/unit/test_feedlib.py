"""tools/feedlib, part by part, on made-up inputs (no SDK, no root): the Makefile scanner, the
per-package metadata, and the .ipk tar helpers."""

from __future__ import annotations

import io
import sys
import tarfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))

from feedlib import ipk, makefile
from feedlib.common import FeedError

MK = """\
include $(TOPDIR)/rules.mk
include ../bonding-version.mk
PKG_NAME:=demo
PKG_RELEASE:=3
PKG_LICENSE:=MIT
X += a
X += b

define Package/demo
  SECTION:=net
  TITLE:=Demo $(PKG_NAME)
  DEPENDS:=+python3-light \\
    +ip-full
  PKGARCH:=all
endef

define Package/demo/conffiles
/etc/config/demo
endef

define Package/demo/postinst
#!/bin/sh
echo $$1
endef

$(eval $(call BuildPackage,demo))
"""


@pytest.mark.parametrize(("lines", "match"), [
    (["define Package/x", "TITLE:=x"], "no endef"),
    (["ifeq ($(A),1)", "endif"], "conditionals"),
])
def test_scan_refuses(lines: list[str], match: str) -> None:
    with pytest.raises(FeedError, match=match):
        makefile._scan(lines, "mk")


def test_scan_collects_assignments_blocks_names_includes() -> None:
    sc = makefile._scan(MK.splitlines(), "mk")
    assert sc.top["X"] == "a b" and sc.top["PKG_RELEASE"] == "3"
    assert sc.names == ["demo"]
    assert sc.includes == ["$(TOPDIR)/rules.mk", "../bonding-version.mk"]
    assert set(sc.blocks) == {"Package/demo", "Package/demo/conffiles", "Package/demo/postinst"}


def test_parse_makefile_reads_one_package(tmp_path: Path) -> None:
    mk = tmp_path / "Makefile"
    mk.write_text(MK)
    (meta,) = makefile.parse_makefile(mk, "1.2.3")
    assert (meta.name, meta.full_version, meta.title) == ("demo", "1.2.3-3", "Demo demo")
    assert meta.depends == ("python3-light", "ip-full")
    assert meta.conffiles == ("/etc/config/demo",)
    assert meta.scripts == {"postinst": "#!/bin/sh\necho $1\n"}
    assert meta.description == "Demo demo" and meta.license == "MIT"


def test_package_meta_needs_its_define() -> None:
    with pytest.raises(FeedError, match="without define Package/y"):
        makefile._package_meta("y", {}, {}, Path("Makefile"), "mk", "1", "1")


def test_tar_helpers_are_reproducible() -> None:
    members = [(ipk._info("./a", tarfile.REGTYPE, 0o644, 7, size=2), b"hi")]
    data = ipk._tar(members)
    assert data == ipk._tar(members)
    assert ipk._gz(data) == ipk._gz(data)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        (info,) = tar.getmembers()
        assert (info.name, info.mode, info.mtime, info.uid) == ("./a", 0o644, 7, 0)
