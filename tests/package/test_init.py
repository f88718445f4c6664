"""/etc/init.d/bonding sourced under busybox ash with recording stand-ins for rc.common's and
procd's functions: the instance it asks procd for, its triggers and what reload does."""

from __future__ import annotations

import subprocess
from pathlib import Path

from .conftest import PKG

INIT = PKG / "bonding" / "files" / "bonding.init"

# rc.common and procd.sh, reduced to recording what the script asks of them
HARNESS = r"""
rec() {
	printf '%s' "$1" >> "$LOG"; shift
	for a in "$@"; do printf ' [%s]' "$a" >> "$LOG"; done
	echo >> "$LOG"
}
extra_command() { rec extra_command "$@"; }
for f in procd_open_instance procd_close_instance procd_set_param procd_append_param \
	procd_add_reload_trigger procd_add_interface_trigger procd_add_raw_trigger \
	procd_add_reload_interface_trigger procd_send_signal procd_kill procd_open_trigger \
	procd_close_trigger; do
	eval "$f() { rec $f \"\$@\"; }"
done
start() { rec start "$@"; }
. "$INIT"
rec vars "START=$START" "STOP=$STOP" "USE_PROCD=$USE_PROCD"
"$@"
"""


def source(busybox: str, tmp_path: Path, *calls: str) -> list[str]:
    log = tmp_path / "calls"
    log.write_text("")
    r = subprocess.run([busybox, "ash", "-c", HARNESS, "harness", *calls],
                       env={"PATH": "/nonexistent", "LOG": str(log), "INIT": str(INIT)},
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    return log.read_text().splitlines()


def test_variables(busybox: str, tmp_path: Path) -> None:
    calls = source(busybox, tmp_path, "true")
    assert "vars [START=95] [STOP=10] [USE_PROCD=1]" in calls
    assert INIT.read_text().startswith("#!/bin/sh /etc/rc.common\n")


def test_start_service_asks_for_one_respawning_bondingd_logging_to_syslog(
        busybox: str, tmp_path: Path) -> None:
    calls = source(busybox, tmp_path, "start_service")
    body = calls[calls.index("procd_open_instance [bondingd]"):]
    end = body.index("procd_close_instance")
    params = body[1:end]
    # through a shell that ignores SIGHUP before Python starts (procd's reload signal)
    assert ("procd_set_param [command] [/bin/sh] [-c] [trap '' HUP; exec /usr/sbin/bondingd]"
            in params)
    assert "procd_set_param [respawn]" in params
    assert "procd_set_param [stdout] [1]" in params
    assert "procd_set_param [stderr] [1]" in params
    assert sum(p.startswith("procd_set_param [command]") for p in params) == 1
    assert calls.count("procd_open_instance [bondingd]") == 1


def test_a_config_change_is_a_sighup_not_a_restart(busybox: str, tmp_path: Path) -> None:
    """procd keeps the checksums of the instance's `file`s: when `start` (rc.common's reload)
    finds one changed it restarts the instance, or sends reload_signal when there is one."""
    calls = source(busybox, tmp_path, "start_service")
    params = calls[calls.index("procd_open_instance [bondingd]") + 1:
                   calls.index("procd_close_instance")]
    assert "procd_set_param [file] [/etc/config/bonding] [/etc/config/bonding_secrets]" in params
    assert "procd_set_param [reload_signal] [HUP]" in params
    # rc.common's reload is `start` (procd decides); no reload_service of its own
    assert "reload_service()" not in INIT.read_text()


def test_config_changes_reload(busybox: str, tmp_path: Path) -> None:
    calls = source(busybox, tmp_path, "service_triggers")
    assert "procd_add_reload_trigger [bonding] [bonding_secrets]" in calls


def test_check_command(busybox: str, tmp_path: Path) -> None:
    calls = source(busybox, tmp_path, "true")
    assert any(c.startswith("extra_command [check]") for c in calls)
