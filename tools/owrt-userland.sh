#!/bin/sh
# Build the OpenWrt userland the tests run against (libubox, ubus, uci, ucode, udebug, procd,
# rpcd and uhttpd with ucode, opkg-lede with usign support, libnl-tiny, netifd, jsonfilter,
# firewall4, apk-tools 3, a trimmed LuCI, the base shell library, pyuci and the PyPI `ubus`
# binding) into a prefix outside this repository.  Nothing of it is ever part of the repo: the
# sources come from a directory of upstream tarballs (--src) or are cloned from upstream at
# pinned commits (--git).  Two parts are not upstream's: usign and opkg-key, whose sources are
# not among the tarballs, are this repo's tools/signify-frontend/ (a verify-only usign over
# Debian's signify-openbsd, and an opkg-key written to behave as OpenWrt's; see their headers).
#
#   tools/owrt-userland.sh [--prefix /opt/owrt] [--src DIR | --git BASE_URL] [--jobs N]
#                          [--python PYTHON] [--force] [--check]
#
# The result, the layout tests/owrt/conftest.py expects:
#   PREFIX/bin       uci ubus ubusd procd rpcd uhttpd opkg-cl jshn ucode netifd jsonfilter apk
#                    usign (tools/signify-frontend/usign: needs signify-openbsd to verify)
#   PREFIX/lib       libubox libubus libuci libblobmsg_json libjson_script libucode libudebug
#                    libnl-tiny liblucihttp (+ rpcd plugins in lib/rpcd, ucode modules in
#                    lib/ucode, uhttpd's plugins)
#   PREFIX/share     libubox/jshn.sh
#   PREFIX/openwrt   rc.common, lib/functions.sh, lib/functions/{procd,network,...}.sh,
#                    lib/config/uci.sh: the base shell library, as OpenWrt installs it,
#                    with usr/sbin/opkg-key (tools/signify-frontend/opkg-key);
#                    and the packages netifd, jsonfilter, firewall4, apk, luci-base,
#                    luci-mod-status, luci-mod-system, luci-theme-bootstrap, rpcd-mod-luci
#   PREFIX/share/owrt-parts/PACKAGE.list   the files of each of those in PREFIX/openwrt
#   PREFIX/venv      a Python venv with pyuci (`import uci`) and `ubus`, built against PREFIX
#   PREFIX/.stamp    what was built, from which commits: a second run with the same inputs is a
#                    no-op that takes well under a second
#
# Idempotent: components whose commit is unchanged are not rebuilt.  Needs root only to install
# the Debian build packages it misses (cmake, pkg-config, libjson-c-dev, libcrypt-dev, gcc, make,
# meson, ninja-build, libssl-dev, zlib1g-dev; git for --git) and to write to a prefix root owns.
set -eu

me=$(basename "$0")
here=$(cd "$(dirname "$0")" && pwd)
# usign and opkg-key for the prefix: this repo's front ends (their sources are not upstream's).
FRONTENDS=$here/signify-frontend
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
openwrt-files bondingshouldbefree/openwrt 9d87f090f0365e49ff49533ca47e61ba09918969
libnl-tiny openwrt/libnl-tiny feca1d341d4baa9579ec62762672aa0f20edf564
netifd openwrt/netifd cbb83a1857407a28a63dc09412a1f209195914ef
jsonpath openwrt/jsonpath f4fe702d0e8d9f8704b42f5d5c10950470ada231
firewall4 openwrt/firewall4 b6e5157527d361f99ad52eaa6da273cb0f2dfd59
apk-tools alpinelinux/apk-tools b5a31c0d865342ad80be10d68f1bb3d3ad9b0866
luci openwrt/luci 459941fb2fdb7365b0169ea06e9148afdd0319e0
lucihttp jow-/lucihttp 9b5b683fbb2bb0010aa031d620d0ab8105516757
iwinfo-include openwrt/iwinfo f5dd57a84cc31a403a1383dd14944fa2e2b5824a"
# Bump when the build steps below change what lands in the prefix (the stamp holds it).
RECIPE=5
# The PyPI bindings built against the prefix.
PY_PACKAGES="pyuci==0.10.3 ubus==0.1.3"
DEBS="cmake pkg-config libjson-c-dev libcrypt-dev libbsd-dev gcc make meson ninja-build libssl-dev zlib1g-dev"

usage() {
	sed -n '2,34s/^# \{0,1\}//p' "$0"
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
		cat "$FRONTENDS/usign" "$FRONTENDS/opkg-key"
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

# built STAMP RECIPE: true when STAMP records RECIPE (and --force was not given).
built() {
	[ "$FORCE" = 0 ] && [ -f "$1" ] && [ "$(cat "$1")" = "$2" ]
}

# cmake_build NAME [cmake -D options]: configure, build and install into PREFIX (once per commit).
# SUB=DIR builds the CMakeLists.txt in that folder of the source tree; IN_SOURCE=1 builds in the
# source folder itself (for generators called by relative paths); EXTRA_CFLAGS and EXTRA_LIBS
# add to the compiler's flags and the libraries linked.
cmake_build() {
	name=$1
	shift
	dir="$WORK/$name${SUB:+/$SUB}"
	bdir="$dir/_build"
	[ "${IN_SOURCE-0}" = 1 ] && bdir=$dir
	# What it is built with: a change of options rebuilds it.
	recipe="$* cflags=${EXTRA_CFLAGS-} libs=${EXTRA_LIBS-}${IN_SOURCE:+ in-source}"
	built "$dir/.installed" "$recipe" && return 0
	echo "$me: building $name${SUB:+ ($SUB)}"
	rm -rf "$dir/_build" "$dir/CMakeCache.txt" "$dir/CMakeFiles"
	# Newer compilers warn where these were written for OpenWrt's: warnings stay warnings.
	sed -i 's/ -Werror\([ )]\)/\1/g' "$dir/CMakeLists.txt"
	log="$WORK/$name${SUB:+-$(basename "$SUB")}.log"
	if ! {
		cmake -S "$dir" -B "$bdir" -DCMAKE_INSTALL_PREFIX="$PREFIX" \
			-DCMAKE_PREFIX_PATH="$PREFIX" -DCMAKE_BUILD_TYPE=Release \
			-DCMAKE_INSTALL_RPATH="$PREFIX/lib" -DCMAKE_BUILD_WITH_INSTALL_RPATH=ON \
			-DCMAKE_C_FLAGS="-I$PREFIX/include -Wno-error ${EXTRA_CFLAGS-}" \
			-DCMAKE_EXE_LINKER_FLAGS="-L$PREFIX/lib" -DCMAKE_SHARED_LINKER_FLAGS="-L$PREFIX/lib" \
			-DCMAKE_MODULE_LINKER_FLAGS="-L$PREFIX/lib" \
			-DCMAKE_C_STANDARD_LIBRARIES="${EXTRA_LIBS-}" "$@" &&
			cmake --build "$bdir" -j "$JOBS" &&
			cmake --install "$bdir"
	} > "$log" 2>&1; then
		tail -n 30 "$log" >&2
		die "building $name failed (whole log: $log)"
	fi
	echo "$recipe" > "$dir/.installed"
}

# meson_build NAME [meson -D options]: configure, build and install into PREFIX (once per recipe).
meson_build() {
	name=$1
	shift
	dir="$WORK/$name"
	recipe="$*"
	built "$dir/.installed" "$recipe" && return 0
	echo "$me: building $name"
	rm -rf "$dir/_build"
	log="$WORK/$name.log"
	if ! {
		meson setup "$dir/_build" "$dir" --prefix="$PREFIX" --libdir=lib --buildtype=release \
			-Db_lto=false "$@" &&
			ninja -C "$dir/_build" -j "$JOBS" &&
			meson install -C "$dir/_build" --no-rebuild
	} > "$log" 2>&1; then
		tail -n 30 "$log" >&2
		die "building $name failed (whole log: $log)"
	fi
	echo "$recipe" > "$dir/.installed"
}

# luci_compile: what LuCI's packages compile with plain make or cc (as their Makefiles do):
# luci-base's `luci.core` module and version.uc, the `html` module, luci-mod-status's luci-bwc.
# shellcheck disable=SC2086 # $cflags: several flags
luci_compile() {
	luci="$WORK/luci"
	cflags="-O2 -fPIC -D_GNU_SOURCE -I$PREFIX/include"
	recipe="cflags=$cflags"
	built "$luci/.compiled" "$recipe" && return 0
	echo "$me: building luci-base's core.so, ucode-mod-html, luci-bwc"
	log="$WORK/luci-compile.log"
	if ! {
		make -C "$luci/modules/luci-base/src" clean &&
			make -C "$luci/modules/luci-base/src" core.so version.uc CFLAGS="$cflags" FPIC= \
				LDFLAGS="-L$PREFIX/lib" LUCI_VERSION="git-$(cut -c1-8 "$luci/.commit")" \
				LUCI_GITBRANCH=master &&
			cc $cflags -Wall -ffunction-sections -Wl,--gc-sections -shared \
				-o "$luci/contrib/package/ucode-mod-html/src/html.so" \
				"$luci/contrib/package/ucode-mod-html/src/html.c" &&
			make -C "$luci/modules/luci-mod-status/src" clean luci-bwc FPIC= \
				CFLAGS="$cflags -I$WORK/iwinfo-include/include"
	} > "$log" 2>&1; then
		tail -n 30 "$log" >&2
		die "building LuCI's C parts failed (whole log: $log)"
	fi
	echo "$recipe" > "$luci/.compiled"
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
# With ucode: rpcd's ucode plugin serves LuCI's `luci` object, uhttpd's ucode handler runs
# LuCI's dispatcher.  Everything that includes ucode's headers wants _GNU_SOURCE (vasprintf).
EXTRA_CFLAGS="-D_GNU_SOURCE" cmake_build rpcd -DIWINFO_SUPPORT=OFF -DUCODE_SUPPORT=ON
EXTRA_CFLAGS="-D_GNU_SOURCE -include bsd/string.h" EXTRA_LIBS="-lbsd" cmake_build uhttpd \
	-DTLS_SUPPORT=OFF -DLUA_SUPPORT=OFF -DUCODE_SUPPORT=ON
# With usign support: `option check_signature` makes opkg run /usr/sbin/opkg-key verify.
cmake_build opkg-lede -DBUILD_TESTS=OFF -DENABLE_USIGN=ON
cmake_build libnl-tiny -DCMAKE_INSTALL_LIBDIR=lib
# netifd and jsonpath call their generators by relative paths: built in their source trees.
IN_SOURCE=1 EXTRA_CFLAGS="-D_GNU_SOURCE= -I$PREFIX/include/libnl-tiny" cmake_build netifd \
	-DLIBNL_LIBS=-lnl-tiny
IN_SOURCE=1 cmake_build jsonpath
# LuCI's HTTP library and its ucode module (upstream's CMakeLists asks for cmake 2.6).
sed -i 's/cmake_minimum_required(VERSION 2.6)/cmake_minimum_required(VERSION 3.10)/' \
	"$WORK/lucihttp/CMakeLists.txt"
EXTRA_CFLAGS="-D_GNU_SOURCE" cmake_build lucihttp -DBUILD_LUA=OFF -DBUILD_UCODE=ON -DBUILD_TESTS=OFF
# rpcd-mod-luci (asks for cmake 3.31; 3.25 builds it), installed into a stage of its own.
sed -i 's/cmake_minimum_required(VERSION 3.31)/cmake_minimum_required(VERSION 3.10)/' \
	"$WORK/luci/libs/rpcd-mod-luci/src/CMakeLists.txt"
SUB=libs/rpcd-mod-luci/src EXTRA_CFLAGS="-I$PREFIX/include/libnl-tiny -I$WORK/rpcd/include -I$WORK/iwinfo-include/include" \
	cmake_build luci -DLIBNL_LIBS=-lnl-tiny -DCMAKE_INSTALL_PREFIX="$WORK/rpcd-mod-luci"
meson_build apk-tools -Dcrypto_backend=openssl -Durl_backend=wget -Dzstd=disabled -Ddocs=disabled \
	-Dlua=disabled -Dpython=disabled -Dtests=disabled -Dhelp=disabled -Ddefault_library=static
luci_compile

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
# opkg's package installs opkg-key; usign is a package of its own (here one program in bin/).
mkdir -p "$ow/usr/sbin"
install -m 0755 "$FRONTENDS/opkg-key" "$ow/usr/sbin/opkg-key"
install -m 0755 "$FRONTENDS/usign" "$PREFIX/bin/usign"
for f in etc/rc.common lib/functions.sh lib/functions/procd.sh lib/config/uci.sh; do
	[ -f "$ow/$f" ] || die "the base shell library has no $f (openwrt-files tarball incomplete?)"
done

# The OpenWrt packages beyond the base, each staged as its package installs it, then copied into
# the openwrt root; PREFIX/share/owrt-parts/<package>.list names its files (paths in the root),
# as opkg's and apk's package lists do, so a scratch root takes only the packages it asks for.
PARTS="$WORK/parts"
rm -rf "$PARTS" "$PREFIX/share/owrt-parts"
mkdir -p "$PARTS" "$PREFIX/share/owrt-parts"
# part NAME: $d is a new, empty stage for package NAME.
part() {
	d="$PARTS/$1"
	mkdir -p "$d"
}
# luci_part NAME DIR: a LuCI package as luci.mk installs it (ucode/, htdocs/, root/).
luci_part() {
	part "$1"
	src="$WORK/luci/$2"
	if [ -d "$src/ucode" ]; then
		mkdir -p "$d/usr/share/ucode/luci"
		cp -pR "$src/ucode"/. "$d/usr/share/ucode/luci"/
	fi
	if [ -d "$src/htdocs" ]; then
		mkdir -p "$d/www"
		cp -pR "$src/htdocs"/. "$d/www"/
	fi
	[ -d "$src/root" ] && cp -pR "$src/root"/. "$d"/
	return 0
}
part netifd
mkdir -p "$d/sbin" "$d/lib/netifd"
cp "$PREFIX/sbin/netifd" "$d/sbin/netifd"
cp "$WORK/netifd/scripts/utils.sh" "$WORK/netifd/scripts/netifd-proto.sh" "$d/lib/netifd/"
part jsonfilter
mkdir -p "$d/usr/bin"
cp "$PREFIX/bin/jsonpath" "$d/usr/bin/jsonfilter"
ln -sf jsonpath "$PREFIX/bin/jsonfilter"
part firewall4
cp -pR "$WORK/firewall4/root"/. "$d"/
part apk
mkdir -p "$d/usr/bin" "$d/etc/apk/keys" "$d/lib/apk/db"
cp "$PREFIX/bin/apk" "$d/usr/bin/apk"
luci_part luci-base modules/luci-base
mkdir -p "$d/usr/lib/ucode/luci"
cp "$WORK/luci/modules/luci-base/src/core.so" "$d/usr/lib/ucode/luci/core.so"
cp "$WORK/luci/modules/luci-base/src/version.uc" "$d/usr/share/ucode/luci/version.uc"
luci_part luci-mod-status modules/luci-mod-status
mkdir -p "$d/usr/bin"
cp "$WORK/luci/modules/luci-mod-status/src/luci-bwc" "$d/usr/bin/luci-bwc"
luci_part luci-mod-system modules/luci-mod-system
luci_part luci-theme-bootstrap themes/luci-theme-bootstrap
part rpcd-mod-luci
mkdir -p "$d/usr/lib/rpcd"
cp "$WORK/rpcd-mod-luci/lib/luci.so" "$d/usr/lib/rpcd/luci.so"
# ucode-mod-html and liblucihttp-ucode are ucode modules like ucode's own: in PREFIX/lib/ucode.
cp "$WORK/luci/contrib/package/ucode-mod-html/src/html.so" "$PREFIX/lib/ucode/html.so"
for d in "$PARTS"/*; do
	(cd "$d" && find . -type f -o -type l) | sed 's/^\.//' | LC_ALL=C sort \
		> "$PREFIX/share/owrt-parts/$(basename "$d").list"
	cp -pR "$d"/. "$ow"/
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

for prog in uci ubus ubusd procd rpcd uhttpd opkg-cl jshn ucode netifd jsonfilter apk usign; do
	[ -x "$PREFIX/bin/$prog" ] || die "$prog was not built into $PREFIX/bin"
done
for f in lib/rpcd/ucode.so lib/uhttpd_ucode.so lib/libnl-tiny.so lib/ucode/lucihttp.so \
	lib/ucode/html.so openwrt/usr/bin/apk openwrt/sbin/fw4 openwrt/usr/lib/rpcd/luci.so \
	openwrt/usr/share/ucode/luci/uhttpd.uc openwrt/usr/lib/ucode/luci/core.so; do
	[ -e "$PREFIX/$f" ] || die "$f was not built into $PREFIX"
done

inputs_hash > "$PREFIX/.stamp"
echo "$me: $PREFIX complete in $(($(date +%s) - start)) s"
