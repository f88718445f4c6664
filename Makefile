# bonding: top-level targets.  `make demo` runs the lab (root), `make test` the whole suite.
VENV ?= .venv
PY := $(VENV)/bin/python
# The OpenWrt userland (ubusd, libubus, uci, pyuci, procd, rpcd, uhttpd, opkg) the tests run
# against, built outside this repo by tools/owrt-userland.sh from upstream sources (OWRT_SRC, or
# ../shared/owrt-src when it is there): `make deps` builds it when it is missing or out of date.
OWRT_PREFIX ?= /opt/owrt
export OWRT_PREFIX

.PHONY: all deps demo test lint unit lab bench clean feed feed-apk

# Shell that runs on the router (busybox ash): shellcheck'd and shfmt'd by `make lint`.
PKG_SH := package/bonding/files/bonding.init package/bonding/files/bonding.iface \
	package/bonding/files/bonding.defaults package/bonding/files/hook.example \
	package/bonding-usb/files/bonding-usb.net package/bonding-usb/files/bonding-usb.usb

all: test

deps:
	VENV=$(VENV) sh tools/install-deps.sh
	sh tools/owrt-userland.sh --prefix "$(OWRT_PREFIX)"

demo: deps
	$(VENV)/bin/bonding-lab demo $(if $(LINKS),--links $(LINKS)) $(if $(PROXY),--proxy $(PROXY)) $(if $(OPENWRT),--openwrt $(filter apk,$(OPENWRT)))

lint: deps
	$(VENV)/bin/ruff check python tests bench tools
	$(VENV)/bin/mypy
	$(VENV)/bin/mypy --strict tools/feed.py
	shellcheck -s sh tools/*.sh tools/signify-frontend/* sdk-build.sh $(PKG_SH)
	shfmt -sr -s -d sdk-build.sh tools/owrt-userland.sh tools/debian-packages.sh tools/signify-frontend/* $(PKG_SH)
	$(PY) tools/luci-pot.py --check

unit: deps
	$(VENV)/bin/pytest -q tests/unit

test: lint
	$(VENV)/bin/pytest -q -rs tests

# An installable opkg feed (OpenWrt 24.10) of the arch-all packages, without the SDK.
# Signed by default: FEED_KEY=secret key, else key-build in FEED_KEY_DIR (~/.config/bonding-feed).
feed:
	@test -n "$(FEED_DIR)" || { echo "usage: make feed FEED_DIR=DIR [FEED_KEY=usign-secret-key | FEED_KEY_DIR=DIR] [FEED_PYTHON=3.11]" >&2; exit 2; }
	python3 tools/feed.py build --output "$(FEED_DIR)" $(if $(FEED_PYTHON),--python $(FEED_PYTHON)) $(if $(FEED_KEY),--key "$(FEED_KEY)") $(if $(FEED_KEY_DIR),--key-dir "$(FEED_KEY_DIR)")

# The same packages as an apk repository (OpenWrt 25.12): .apk files and packages.adb, made by
# apk-tools 3 (APK, else $(OWRT_PREFIX)/bin/apk: `make deps` builds it).  Signed by default:
# FEED_APK_KEY=ECDSA P-256 secret key (PEM), else private-key.pem in FEED_KEY_DIR (made there).
feed-apk:
	@test -n "$(FEED_DIR)" || { echo "usage: make feed-apk FEED_DIR=DIR [FEED_APK_KEY=p256-secret.pem | FEED_KEY_DIR=DIR] [FEED_PYTHON=3.13] [APK=apk-tools-3]" >&2; exit 2; }
	python3 tools/feed.py apk --output "$(FEED_DIR)" $(if $(FEED_PYTHON),--python $(FEED_PYTHON)) $(if $(APK),--apk "$(APK)") $(if $(FEED_APK_KEY),--key "$(FEED_APK_KEY)") $(if $(FEED_KEY_DIR),--key-dir "$(FEED_KEY_DIR)")

bench: deps
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
