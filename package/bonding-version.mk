# The one project version, for every package of the feed: bonding.__version__ in
# python/bonding/__init__.py (apk, OpenWrt 25.12, needs it dotted numbers: 0.1.0).  Each package
# Makefile includes this after rules.mk and sets only its own integer PKG_RELEASE.
#
# BONDING_ROOT is the repository (the feed); BONDING_INSTALL <package>,<dir> installs a package's
# files from package/files.list through tools/feed.py, the code `make feed` uses too, so the SDK
# build and the feed folder put the same files in the same places.

BONDING_ROOT:=$(abspath $(dir $(lastword $(MAKEFILE_LIST)))..)
PKG_VERSION:=$(shell sed -n 's/^__version__ = "\([^"]*\)"$$/\1/p' $(BONDING_ROOT)/python/bonding/__init__.py)

ifeq ($(PKG_VERSION),)
  $(error no __version__ = "X.Y.Z" line in $(BONDING_ROOT)/python/bonding/__init__.py)
endif

# $(1): package name, $(2): the install directory; $(PYTHON3_VERSION) when the package has
# Python files (python3-version.mk of the packages feed sets it).
define BondingInstall
	python3 $(BONDING_ROOT)/tools/feed.py install \
		$(if $(PYTHON3_VERSION),--python $(PYTHON3_VERSION)) $(1) $(2)
endef
