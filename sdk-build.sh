#!/bin/sh
# Build the bonding feed's packages in the official OpenWrt SDK container (docker image
# openwrt/sdk:<target>-<subtarget>-<release>) for a chosen release and target.  This checkout is
# mounted read-only as the feed (src-link); the packages and their signed index land in --output.
set -eu

usage() {
	cat << 'EOF'
Usage: sdk-build.sh [--release REL] [--target TARGET/SUBTARGET] [--output DIR]
                    [--packages "PKG ..."] [--image IMAGE] [--dry-run]

Builds the bonding packages in the OpenWrt SDK docker container.

  --release REL     24.10 or 25.12 (the newest build of that branch), a release such as
                    24.10.4, or snapshot                            (default: 24.10)
  --target T/S      the router's target, as on downloads.openwrt.org  (default: x86/64)
                    e.g. ath79/generic, ramips/mt7621, mediatek/filogic
  --output DIR      where the packages go   (default: ./bin/sdk-<release>-<target>)
  --packages LIST   which packages          (default: python3-bonding bonding bonding-usb
                    bonding-server luci-app-bonding)
  --image IMAGE     another SDK image       (default: openwrt/sdk:<target>-<subtarget>-<tag>)
  --dry-run         print the docker command and the build script, run nothing
  -h, --help        this text

24.10 gives .ipk files and Packages (opkg); 25.12 gives .apk files and packages.adb (apk).
The SDK fetches the packages and luci feeds, so the container needs the network.  The arch-all
packages of 24.10 are also built without docker by `make feed FEED_DIR=DIR`.
EOF
}

die() {
	echo "sdk-build.sh: $*" >&2
	exit 2
}

release=24.10
target=x86/64
output=
image=
packages="python3-bonding bonding bonding-usb bonding-server luci-app-bonding"
dry_run=

while [ $# -gt 0 ]; do
	case "$1" in
	-h | --help)
		usage
		exit 0
		;;
	--release | --target | --output | --packages | --image)
		[ $# -ge 2 ] || die "$1 needs a value (see --help)"
		case "$1" in
		--release) release=$2 ;;
		--target) target=$2 ;;
		--output) output=$2 ;;
		--packages) packages=$2 ;;
		--image) image=$2 ;;
		esac
		shift 2
		;;
	--dry-run)
		dry_run=1
		shift
		;;
	*) die "unknown argument '$1' (see --help)" ;;
	esac
done

case "$release" in
snapshot | SNAPSHOT) tag=SNAPSHOT ;;
[0-9][0-9].[0-9][0-9]) tag=openwrt-$release ;;
[0-9][0-9].[0-9][0-9].[0-9]*) tag=$release ;;
*) die "--release '$release': give 24.10, 25.12, a release like 24.10.4, or snapshot" ;;
esac
case "$target" in
*/*/* | /* | */ | *[!a-z0-9_/-]*) die "--target '$target': give TARGET/SUBTARGET, like ath79/generic" ;;
*/*) ;;
*) die "--target '$target': give TARGET/SUBTARGET, like ath79/generic" ;;
esac
for p in $packages; do
	case "$p" in
	*[!a-z0-9.+-]*) die "--packages: '$p' is not a package name" ;;
	esac
done
[ -n "$image" ] || image="openwrt/sdk:$(echo "$target" | tr / -)-$tag"
[ -n "$output" ] || output="bin/sdk-$release-$(echo "$target" | tr / -)"

feed=$(cd "$(dirname "$0")" && pwd)

# Runs inside the container, in /builder, as its unprivileged user.
# shellcheck disable=SC2016  # expanded in the container
build_script='set -e
[ -x ./scripts/feeds ] || { [ -f ./setup.sh ] && bash ./setup.sh; }
[ -f feeds.conf ] || cp feeds.conf.default feeds.conf
sed -i "/^src-[a-z]* bonding /d" feeds.conf
echo "src-link bonding /feed" >> feeds.conf
./scripts/feeds update -a
./scripts/feeds install -a -p bonding
make defconfig
for p in $BONDING_PACKAGES; do
	make "package/$p/compile" V=s -j"$(nproc)"
done
make package/index V=s
for d in bin/packages/*/bonding; do
	cp -R "$d"/. /out/
done
echo "built: $(ls /out | tr "\n" " ")"'

if [ -n "$dry_run" ]; then
	echo "docker run --rm -v $feed:/feed:ro -v <staging dir>:/out -e BONDING_PACKAGES=\"$packages\" $image sh -c '<build script>'"
	echo "build script:"
	echo "$build_script"
	echo "then: the staging dir's files into $output"
	exit 0
fi

if ! command -v docker > /dev/null 2>&1; then
	die "docker is not installed: install Docker Engine (https://docs.docker.com/engine/install/), or build the arch-all packages without it: make feed FEED_DIR=DIR"
fi
if ! docker info > /dev/null 2>&1; then
	die "docker is installed but its daemon does not answer (is it running, and may this user use it?): try 'docker info'"
fi

mkdir -p "$output"
output=$(cd "$output" && pwd)
# The SDK runs as its own user: let it write into a staging dir, then take the files over.
stage=$(mktemp -d "${TMPDIR:-/tmp}/bonding-sdk.XXXXXX")
trap 'rm -rf "$stage"' EXIT INT TERM
chmod 0777 "$stage"

echo "sdk-build.sh: $image, packages: $packages"
docker run --rm -v "$feed:/feed:ro" -v "$stage:/out" -e BONDING_PACKAGES="$packages" \
	"$image" sh -c "$build_script"
cp -R "$stage"/. "$output"/
echo "sdk-build.sh: packages in $output"
