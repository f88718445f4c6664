"""bonding.dataplane.twin: two programs run as one process (ss-redir for IPv4 and for IPv6)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bonding.dataplane import twin
from bonding.lab.delay import python_env

TWIN = [sys.executable, "-m", "bonding.dataplane.twin"]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in Path(
        f"/proc/{pid}/status").read_text().lower()


def start(*argv: str) -> subprocess.Popen[str]:
    return subprocess.Popen([*TWIN, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=python_env(), start_new_session=True)


def pids_of(tmp: Path, *names: str) -> list[int]:
    for _ in range(500):
        if all((tmp / n).exists() and (tmp / n).read_text().strip() for n in names):
            return [int((tmp / n).read_text()) for n in names]
        time.sleep(0.01)
    raise AssertionError(f"the programs did not start: {names}")


def sleeper(tmp: Path, name: str, code: int | None = None, after: float = 30) -> list[str]:
    """sh that writes its pid to tmp/name, sleeps, then exits with code (or sleeps on)."""
    tail = f"sleep {after}; exit {code}" if code is not None else "exec sleep 30"
    return ["sh", "-c", f"echo $$ > {tmp / name}; {tail}"]


@pytest.mark.parametrize(("argv", "message"), [
    ([], "no '--'"),
    (["true"], "no '--'"),
    (["--", "true"], "each side of '--' needs a program"),
    (["true", "--"], "each side of '--' needs a program"),
])
def test_usage_errors(argv: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        twin.split(argv)
    r = subprocess.run([*TWIN, *argv], capture_output=True, text=True, env=python_env(),
                       check=False)
    assert r.returncode == 2 and message in r.stderr and "usage:" in r.stderr


def test_split_at_the_first_separator() -> None:
    assert twin.split(["a", "-x", "--", "b", "--", "c"]) == (["a", "-x"], ["b", "--", "c"])


def test_when_one_ends_the_other_is_stopped_and_its_status_is_the_twin_s(tmp_path: Path) -> None:
    p = start(*sleeper(tmp_path, "a", code=3, after=0.5), "--", *sleeper(tmp_path, "b"))
    a, b = pids_of(tmp_path, "a", "b")
    assert alive(a) and alive(b)
    _, err = p.communicate(timeout=10)
    assert p.returncode == 3
    assert "sh (pid" in err and "ended with status 3: stopping the other" in err
    assert not alive(b)


def test_a_child_killed_by_a_signal_ends_it_with_128_plus_the_signal(tmp_path: Path) -> None:
    p = start(*sleeper(tmp_path, "a"), "--", *sleeper(tmp_path, "b"))
    a, b = pids_of(tmp_path, "a", "b")
    os.kill(b, signal.SIGKILL)
    p.communicate(timeout=10)
    assert p.returncode == 128 + signal.SIGKILL
    assert not alive(a)


def test_sigterm_reaches_both(tmp_path: Path) -> None:
    p = start(*sleeper(tmp_path, "a"), "--", *sleeper(tmp_path, "b"))
    a, b = pids_of(tmp_path, "a", "b")
    p.send_signal(signal.SIGTERM)
    p.communicate(timeout=10)
    assert p.returncode == 128 + signal.SIGTERM
    assert not alive(a) and not alive(b)


def test_a_program_that_cannot_start_is_named(tmp_path: Path) -> None:
    p = start(*sleeper(tmp_path, "a"), "--", str(tmp_path / "no-such-program"))
    _, err = p.communicate(timeout=10)
    assert p.returncode == 127
    assert f"cannot start {tmp_path / 'no-such-program'}" in err
    if (tmp_path / "a").exists() and (tmp_path / "a").read_text().strip():
        assert not alive(int((tmp_path / "a").read_text()))  # the one that started is stopped


def test_their_output_is_its_output(tmp_path: Path) -> None:
    p = start("sh", "-c", "echo one; sleep 0.5; exit 0", "--", "sh", "-c",
              "echo two >&2; exec sleep 30")
    out, err = p.communicate(timeout=10)
    assert "one" in out and "two" in err
