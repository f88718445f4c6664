# shellcheck shell=sh
# Sourced by tools/install-deps.sh and tools/owrt-userland.sh.
#
# ensure_debs WHAT PACKAGE...: install the Debian packages of the list that are missing, and
# python3-venv when $PYTHON cannot make a venv.  As root only: anyone else gets an error naming
# them and the apt-get line to run, and a non-zero return.  Sets debs_missing to what it
# installed (empty when nothing was missing).
ensure_debs() {
	debs_what=$1
	shift
	debs_missing=""
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2> /dev/null | grep -q "ok installed" ||
			debs_missing="$debs_missing $p"
	done
	if ! "${PYTHON:-python3}" -c 'import ensurepip, venv' 2> /dev/null; then
		debs_missing="$debs_missing python3-venv"
	fi
	[ -n "$debs_missing" ] || return 0
	if [ "$(id -u)" -ne 0 ]; then
		echo "missing $debs_what:$debs_missing — run as root or: apt-get install$debs_missing" >&2
		return 1
	fi
	echo "installing $debs_what:$debs_missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	# shellcheck disable=SC2086
	apt-get install -y -qq --no-install-recommends $debs_missing > /dev/null
}
