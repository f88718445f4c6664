#!/bin/sh
# Install what `make test` and `make demo` need on a fresh Debian machine: the Debian packages
# (when root and any is missing) and a Python venv with the dev tools.
set -eu

VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
DEBS="iperf3 nftables mptcpize shadowsocks-libev busybox shellcheck shfmt ethtool iproute2 kmod nodejs gettext"

missing=""
for p in $DEBS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if ! "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null; then
	missing="$missing python3-venv"
fi
if [ -n "$missing" ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "missing Debian packages:$missing — run as root or: apt-get install$missing" >&2
		exit 1
	fi
	echo "installing Debian packages:$missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	# shellcheck disable=SC2086
	apt-get install -y -qq --no-install-recommends $missing >/dev/null
	# Debian starts the shadowsocks-libev service on install; the lab runs its own instances.
	if command -v systemctl >/dev/null 2>&1; then
		systemctl disable --now shadowsocks-libev.service >/dev/null 2>&1 || true
	fi
fi

if [ ! -x "$VENV/bin/python" ]; then
	"$PYTHON" -m venv "$VENV"
fi
if [ ! -f "$VENV/.installed" ] || [ -n "$(find pyproject.toml -newer "$VENV/.installed")" ]; then
	"$VENV/bin/python" -m pip install -q --upgrade pip
	"$VENV/bin/python" -m pip install -q -e '.[dev]'
	touch "$VENV/.installed"
fi
