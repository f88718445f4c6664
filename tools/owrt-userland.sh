#!/bin/sh
# Build the OpenWrt userland the tests run against (libubox, ubus, uci, ucode, udebug, procd,
# rpcd, uhttpd, opkg-lede, the base shell library, pyuci and the PyPI `ubus` binding) into a
# prefix outside this repository.  Nothing of it is ever part of the repo: the sources come from
# a directory of upstream tarballs (--src) or are cloned from upstream at pinned commits (--git).
#
#   tools/owrt-userland.sh [--prefix /opt/owrt] [--src DIR | --git BASE_URL] [--jobs N]
#                          [--python PYTHON] [--force] [--check]
#
# The result, the layout tests/owrt/conftest.py expects:
#   PREFIX/bin       uci ubus ubusd procd rpcd uhttpd opkg-cl jshn ucode
#   PREFIX/lib       libubox libubus libuci libblobmsg_json libjson_script libucode libudebug
#                    (+ rpcd plugins in lib/rpcd, ucode modules in lib/ucode)
#   PREFIX/share     libubox/jshn.sh
#   PREFIX/openwrt   rc.common, lib/functions.sh, lib/functions/{procd,network,...}.sh,
#                    lib/config/uci.sh: the base shell library, as OpenWrt installs it
#   PREFIX/venv      a Python venv with pyuci (`import uci`) and `ubus`, built against PREFIX
#   PREFIX/.stamp    what was built, from which commits: a second run with the same inputs is a
#                    no-op that takes well under a second
#
# Idempotent: components whose commit is unchanged are not rebuilt.  Needs root only to install
# the Debian build packages it misses (cmake, pkg-config, libjson-c-dev, libcrypt-dev, gcc, make,
# git for --git) and to write to a prefix root owns.
set -eu

me=$(basename "$0")
here=$(cd "$(dirname "$0")" && pwd)
PREFIX=/opt/owrt
SRC=""
GIT_BASE=""
JOBS=$(nproc 2> /dev/null || echo 2)
PYTHON=${PYTHON:-python3}
FORCE=0
CHECK=0

# Upstream commits (as in shared/owrt-src/MANIFEST.md): name repo commit.
COMPONENTS="libubox openwrt/libubox 1aa36ee774c8db4d7a396903e0d2e1fb79ee8bf1
ubus openwrt/ubus 3cc98db1a422dcf560f2d6347fd410f17565a89d
uci openwrt/uci 66127cd76c5d0bd46d5a90302cc6110f53a4e2f8
ucode jow-/ucode 81205a25437a83e3b9e1eb55ac169be84453d53b
udebug openwrt/udebug 875e1a7af6ca9d86524d18169c3a79f4a1920053
procd openwrt/procd 2c1834abae171261f2d9161e5a28c36cbcc394a4
rpcd openwrt/rpcd 4476687403d8c6e988eaa1ecc892e998838e6da9
uhttpd openwrt/uhttpd f682ccabee9ed5f39dd3b0aaf96228975eeb478d
opkg-lede openwrt/opkg-lede 38eccbb1fd694d4798ac1baf88f9ba83d1eac616
openwrt-files bondingshouldbefree/openwrt 9d87f090f0365e49ff49533ca47e61ba09918969"
# Bump when the build steps below change what lands in the prefix (the stamp holds it).
RECIPE=3
# The PyPI bindings built against the prefix.
PY_PACKAGES="pyuci==0.10.3 ubus==0.1.3"
DEBS="cmake pkg-config libjson-c-dev libcrypt-dev libbsd-dev gcc make"

usage() {
	sed -n '2,23s/^# \{0,1\}//p' "$0"
	exit "${1:-0}"
}

die() {
	echo "$me: $*" >&2
	exit 1
}

while [ $# -gt 0 ]; do
	case "$1" in
	--prefix)
		PREFIX=${2:?--prefix needs a directory}
		shift 2
		;;
	--src)
		SRC=${2:?--src needs a directory}
		shift 2
		;;
	--git)
		GIT_BASE=${2:?--git needs a base URL, e.g. https://github.com}
		shift 2
		;;
	--jobs)
		JOBS=${2:?--jobs needs a number}
		shift 2
		;;
	--python)
		PYTHON=${2:?--python needs an interpreter}
		shift 2
		;;
	--force)
		FORCE=1
		shift
		;;
	--check)
		CHECK=1
		shift
		;;
	-h | --help) usage 0 ;;
	*)
		echo "$me: unknown argument '$1'" >&2
		usage 2 >&2
		;;
	esac
done

case "$PREFIX" in
/*) ;;
*) PREFIX=$(pwd)/$PREFIX ;;
esac

# The inputs of this build: the recipe version, the commits, the bindings and the Python.
inputs_hash() {
	{
		echo "recipe $RECIPE"
		echo "$COMPONENTS" | cut -d' ' -f1,3
		echo "$PY_PACKAGES"
		"$PYTHON" -c 'import sys; print(sys.version)'
	} |
		sha256sum | cut -d' ' -f1
}

prefix_complete() {
	[ -f "$PREFIX/.stamp" ] && [ "$(cat "$PREFIX/.stamp")" = "$(inputs_hash)" ]
}

if [ "$CHECK" = 1 ]; then
	if prefix_complete; then
		echo "$PREFIX: complete"
		exit 0
	fi
	echo "$PREFIX: missing or out of date (run $me --prefix $PREFIX)"
	exit 1
fi
if [ "$FORCE" = 0 ] && prefix_complete; then
	echo "$me: $PREFIX is complete (nothing to do; --force rebuilds)"
	exit 0
fi

# Where the sources come from.
if [ -z "$SRC" ] && [ -z "$GIT_BASE" ]; then
	for cand in "${OWRT_SRC-}" "$here/../../shared/owrt-src" /work/shared/owrt-src; do
		if [ -n "$cand" ] && [ -f "$cand/libubox.tar.gz" ]; then
			SRC=$(cd "$cand" && pwd)
			break
		fi
	done
fi
if [ -z "$SRC" ] && [ -z "$GIT_BASE" ]; then
	die "no sources: give --src DIR (a directory of the upstream tarballs: libubox.tar.gz, ubus.tar.gz, ...; or set OWRT_SRC) or, with network, --git https://github.com to clone the upstream repositories at the pinned commits"
fi
if [ -n "$SRC" ] && [ ! -d "$SRC" ]; then
	die "--src $SRC is not a directory"
fi

# Debian build packages.
need_debs=$DEBS
[ -n "$GIT_BASE" ] && need_debs="$need_debs git"
# shellcheck source=tools/debian-packages.sh
. "$here/debian-packages.sh"
# shellcheck disable=SC2086
ensure_debs "Debian build packages" $need_debs || exit 1

mkdir -p "$PREFIX" || die "cannot create $PREFIX (run as root or pick --prefix)"
[ -w "$PREFIX" ] || die "$PREFIX is not writable (run as root or pick --prefix)"
WORK="$PREFIX/.build"
mkdir -p "$WORK" "$PREFIX/bin" "$PREFIX/lib" "$PREFIX/include" "$PREFIX/share"
start=$(date +%s)

# unpack NAME REPO COMMIT: the source tree in $WORK/NAME (recreated when its commit changed).
unpack() {
	name=$1 repo=$2 commit=$3
	dir="$WORK/$name"
	if [ -f "$dir/.commit" ] && [ "$(cat "$dir/.commit")" = "$commit" ]; then
		return 0
	fi
	rm -rf "$dir"
	mkdir -p "$dir"
	if [ -n "$SRC" ]; then
		tarball="$SRC/$name.tar.gz"
		[ -f "$tarball" ] || die "$tarball is missing: --src must hold one tarball per component ($name from $repo at $commit)"
		# git archive tarballs hold one top directory: strip it.
		tar -xzf "$tarball" -C "$dir" --strip-components=1 || die "cannot unpack $tarball"
	else
		git init -q "$dir" || die "git init $dir failed"
		git -C "$dir" fetch -q --depth 1 "$GIT_BASE/$repo" "$commit" ||
			die "cannot fetch $GIT_BASE/$repo at $commit (no network? use --src DIR)"
		git -C "$dir" checkout -q FETCH_HEAD
	fi
	echo "$commit" > "$dir/.commit"
}

# cmake_build NAME [cmake -D options]: configure, build and install into PREFIX (once per commit).
cmake_build() {
	name=$1
	shift
	dir="$WORK/$name"
	# What it is built with: a change of options rebuilds it.
	recipe="$* cflags=${EXTRA_CFLAGS-} libs=${EXTRA_LIBS-}"
	if [ "$FORCE" = 0 ] && [ -f "$dir/.installed" ] && [ "$(cat "$dir/.installed")" = "$recipe" ]; then
		return 0
	fi
	echo "$me: building $name"
	rm -rf "$dir/_build"
	# Newer compilers warn where these were written for OpenWrt's: warnings stay warnings.
	sed -i 's/ -Werror\([ )]\)/\1/g' "$dir/CMakeLists.txt"
	log="$WORK/$name.log"
	if ! {
		cmake -S "$dir" -B "$dir/_build" -DCMAKE_INSTALL_PREFIX="$PREFIX" \
			-DCMAKE_PREFIX_PATH="$PREFIX" -DCMAKE_BUILD_TYPE=Release \
			-DCMAKE_INSTALL_RPATH="$PREFIX/lib" -DCMAKE_BUILD_WITH_INSTALL_RPATH=ON \
			-DCMAKE_C_FLAGS="-I$PREFIX/include -Wno-error ${EXTRA_CFLAGS-}" \
			-DCMAKE_EXE_LINKER_FLAGS="-L$PREFIX/lib" -DCMAKE_SHARED_LINKER_FLAGS="-L$PREFIX/lib" \
			-DCMAKE_MODULE_LINKER_FLAGS="-L$PREFIX/lib" \
			-DCMAKE_C_STANDARD_LIBRARIES="${EXTRA_LIBS-}" "$@" &&
			cmake --build "$dir/_build" -j "$JOBS" &&
			cmake --install "$dir/_build"
	} > "$log" 2>&1; then
		tail -n 30 "$log" >&2
		die "building $name failed (whole log: $log)"
	fi
	echo "$recipe" > "$dir/.installed"
}

echo "$COMPONENTS" | while read -r name repo commit; do
	unpack "$name" "$repo" "$commit"
	# A changed commit means a new tree without .installed: it is built again below.
done

cmake_build libubox -DBUILD_LUA=OFF -DBUILD_EXAMPLES=OFF
cmake_build ubus -DBUILD_LUA=OFF -DBUILD_EXAMPLES=OFF
cmake_build uci -DBUILD_LUA=OFF
cmake_build ucode -DNL80211_SUPPORT=OFF -DRTNL_SUPPORT=OFF \
	-DDIGEST_SUPPORT=OFF -DSOCKET_SUPPORT=ON
cmake_build udebug
# glibc before 2.38 has no strlcpy: libbsd's.
EXTRA_CFLAGS="-include bsd/string.h" EXTRA_LIBS="-lbsd" cmake_build procd -DJAIL_SUPPORT=OFF -DSECCOMP_SUPPORT=OFF -DUTRACE_SUPPORT=OFF \
	-DSELINUX=OFF -DEARLY_PATH=/usr/sbin:/usr/bin:/sbin:/bin
cmake_build rpcd -DIWINFO_SUPPORT=OFF -DUCODE_SUPPORT=OFF
EXTRA_CFLAGS="-include bsd/string.h" EXTRA_LIBS="-lbsd" cmake_build uhttpd -DTLS_SUPPORT=OFF -DLUA_SUPPORT=OFF -DUCODE_SUPPORT=OFF
cmake_build opkg-lede -DBUILD_TESTS=OFF -DENABLE_USIGN=OFF

# Programs installed to sbin by some components: one bin/ for all.
for f in "$PREFIX"/sbin/*; do
	[ -e "$f" ] || continue
	ln -sf "../sbin/$(basename "$f")" "$PREFIX/bin/$(basename "$f")"
done

# The base shell library, laid out as OpenWrt installs it (rc.common, functions.sh, procd.sh...).
files="$WORK/openwrt-files"
ow="$PREFIX/openwrt"
rm -rf "$ow"
mkdir -p "$ow"
# base-files, uci and netifd keep their files/ as a root; procd's package installs its own.
for pkgdir in base-files system/uci network/config/netifd; do
	cp -a "$files/package/$pkgdir/files"/. "$ow"/
done
pf="$files/package/system/procd/files"
mkdir -p "$ow/lib/functions" "$ow/sbin" "$ow/etc/init.d"
cp "$pf/procd.sh" "$ow/lib/functions/procd.sh"
cp "$pf/reload_config" "$pf/service" "$ow/sbin/"
chmod 0755 "$ow/sbin/reload_config" "$ow/sbin/service"
# rpcd's package installs its ACL for the anonymous session (what session login needs).
mkdir -p "$PREFIX/share/rpcd/acl.d"
cp "$WORK/rpcd/unauthenticated.json" "$PREFIX/share/rpcd/acl.d/"
cp "$pf"/hotplug*.json "$ow/etc/"
for f in etc/rc.common lib/functions.sh lib/functions/procd.sh lib/config/uci.sh; do
	[ -f "$ow/$f" ] || die "the base shell library has no $f (openwrt-files tarball incomplete?)"
done

# pyuci and the ubus binding, built against the prefix.
if [ ! -x "$PREFIX/venv/bin/python" ]; then
	"$PYTHON" -m venv "$PREFIX/venv" || die "cannot create a venv with $PYTHON"
fi
echo "$me: building the Python bindings ($PY_PACKAGES)"
# shellcheck disable=SC2086
if ! C_INCLUDE_PATH="$PREFIX/include" LIBRARY_PATH="$PREFIX/lib" LDFLAGS="-Wl,-rpath,$PREFIX/lib" \
	"$PREFIX/venv/bin/python" -m pip install -q --no-cache-dir --force-reinstall --no-binary :all: \
	$PY_PACKAGES > "$WORK/python.log" 2>&1; then
	tail -n 30 "$WORK/python.log" >&2
	die "building the Python bindings failed (whole log: $WORK/python.log)"
fi
LD_LIBRARY_PATH="$PREFIX/lib" "$PREFIX/venv/bin/python" -c 'import uci, ubus' ||
	die "the Python bindings do not import"

for prog in uci ubus ubusd procd rpcd uhttpd opkg-cl jshn ucode; do
	[ -x "$PREFIX/bin/$prog" ] || die "$prog was not built into $PREFIX/bin"
done

inputs_hash > "$PREFIX/.stamp"
echo "$me: $PREFIX complete in $(($(date +%s) - start)) s"
