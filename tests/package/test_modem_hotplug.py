"""/etc/hotplug.d/usb/30-bonding-modem under busybox ash: a Quectel modem on a fake sysfs, its
serial ports pseudo-terminals answered by a fake modem.  The AT port is found by asking, the
switch to MBIM is sent there, then the modem (not the router) is reset, and only once."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import PKG, SHIPPED_CONFIG, Sandbox

SCRIPT = PKG / "bonding-usb" / "files" / "bonding-usb.usb"
DEVPATH = "/devices/platform/soc/1e1c0000.xhci/usb1/1-1/1-1.2"


class FakeModem:
    """The device side of a pseudo-terminal: answers AT commands, remembers them."""

    def __init__(self, answers: bool, replies: dict[str, str] | None = None) -> None:
        self.master, self.slave = os.openpty()
        self.path = os.ttyname(self.slave)
        self.answers = answers
        self.replies = replies or {}
        self.commands: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        import select
        buf = b""
        while not self._stop.is_set():
            ready, _, _ = select.select([self.master], [], [], 0.05)
            if not ready:
                continue
            try:
                chunk = os.read(self.master, 1024)
            except OSError:
                continue
            buf += chunk
            while b"\r" in buf:
                line, buf = buf.split(b"\r", 1)
                cmd = line.decode(errors="replace").strip()
                if not cmd:
                    continue
                self.commands.append(cmd)
                if self.answers:
                    reply = self.replies.get(cmd, "OK")
                    os.write(self.master, f"\r\n{reply}\r\n".encode())

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):
                os.close(fd)


def modem_sysfs(sb: Sandbox, ttys: dict[int, str], mbim: bool = False) -> None:
    """Interfaces 0..4 of a Quectel modem on port 1-1.2; `ttys` maps interface numbers to the
    ttyUSB names the option driver gave them."""
    dev = sb.root / "sys" / DEVPATH.lstrip("/")
    dev.mkdir(parents=True)
    (dev / "idVendor").write_text("2c7c\n")
    (dev / "idProduct").write_text("0125\n")
    for n in range(5):
        intf = dev / f"1-1.2:1.{n}"
        intf.mkdir()
        (intf / "bInterfaceNumber").write_text(f"{n:02x}\n")
        cls, sub = ("02", "0e") if mbim and n == 4 else ("ff", "ff")
        (intf / "bInterfaceClass").write_text(cls + "\n")
        (intf / "bInterfaceSubClass").write_text(sub + "\n")
        if n in ttys:
            (intf / ttys[n]).mkdir()


@pytest.fixture
def sb(sandbox: Sandbox) -> Sandbox:
    sandbox.write_config("bonding", SHIPPED_CONFIG.read_text())
    return sandbox


@pytest.fixture
def modems() -> Iterator[list[FakeModem]]:
    made: list[FakeModem] = []
    yield made
    for m in made:
        m.close()


def attach(sb: Sandbox, modems: list[FakeModem], tty: str, answers: bool,
           replies: dict[str, str] | None = None) -> FakeModem:
    m = FakeModem(answers, replies)
    modems.append(m)
    (sb.root / "dev" / tty).symlink_to(m.path)
    return m


def plug(sb: Sandbox, product: str = "2c7c/125/318", devtype: str = "usb_device") -> None:
    r = sb.run(SCRIPT, {"ACTION": "add", "DEVTYPE": devtype, "PRODUCT": product,
                        "DEVPATH": DEVPATH, "SUBSYSTEM": "usb"})
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""


def state_file(sb: Sandbox) -> Path:
    return sb.root / "var" / "run" / "bonding" / "modem" / "1-1.2"


def final_state(sb: Sandbox, timeout: float = 25) -> str:
    """The state once the background job is done (bounded wait)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        p = state_file(sb)
        if p.exists():
            s = p.read_text().strip()
            if s not in ("", "switching", "checking"):
                time.sleep(0.3)  # let it finish its last command and log line
                return s
        time.sleep(0.05)
    raise AssertionError(f"the modem job did not finish in {timeout}s")


QUECTEL_TTYS = {0: "ttyUSB4", 1: "ttyUSB5", 2: "ttyUSB6", 3: "ttyUSB7"}


def test_a_quectel_not_in_mbim_is_switched_on_its_at_port_and_reset(
        sb: Sandbox, modems: list[FakeModem]) -> None:
    modem_sysfs(sb, QUECTEL_TTYS)
    ports = {tty: attach(sb, modems, tty, answers=(tty == "ttyUSB6")) for tty in
             QUECTEL_TTYS.values()}
    plug(sb)
    assert final_state(sb) == "switched"
    assert ports["ttyUSB6"].commands == ["AT", 'AT+QCFG="usbnet",2', "AT+CFUN=1,1"]
    assert all(not m.commands for t, m in ports.items() if t != "ttyUSB6")
    assert any("switched to MBIM on ttyUSB6, resetting the modem (AT+CFUN=1,1)" in x
               for x in sb.logs()), sb.logs()


def test_the_at_port_is_found_by_asking_not_assumed(sb: Sandbox,
                                                    modems: list[FakeModem]) -> None:
    # interface 2 stays silent (a firmware with AT elsewhere): interface 3 answers
    modem_sysfs(sb, QUECTEL_TTYS)
    ports = {tty: attach(sb, modems, tty, answers=(tty == "ttyUSB7")) for tty in
             QUECTEL_TTYS.values()}
    plug(sb)
    assert final_state(sb) == "switched"
    assert ports["ttyUSB6"].commands == ["AT"]  # asked first, no answer
    assert ports["ttyUSB7"].commands == ["AT", 'AT+QCFG="usbnet",2', "AT+CFUN=1,1"]
    assert not ports["ttyUSB4"].commands and not ports["ttyUSB5"].commands


def test_a_modem_in_mbim_mode_is_left_alone(sb: Sandbox, modems: list[FakeModem]) -> None:
    modem_sysfs(sb, QUECTEL_TTYS, mbim=True)
    ports = [attach(sb, modems, tty, answers=True) for tty in QUECTEL_TTYS.values()]
    plug(sb)
    assert final_state(sb) == "mbim"
    assert all(not m.commands for m in ports)


def test_a_refused_switch_does_not_reset_the_modem(sb: Sandbox, modems: list[FakeModem]) -> None:
    modem_sysfs(sb, QUECTEL_TTYS)
    at = attach(sb, modems, "ttyUSB6", answers=True,
                replies={'AT+QCFG="usbnet",2': "ERROR"})
    plug(sb)
    assert final_state(sb) == "failed"
    assert at.commands == ["AT", 'AT+QCFG="usbnet",2']
    assert any(x.startswith("daemon.err") and "failed on ttyUSB6" in x for x in sb.logs())


def test_no_answering_port_is_reported(sb: Sandbox, modems: list[FakeModem]) -> None:
    modem_sysfs(sb, {2: "ttyUSB2"})
    silent = attach(sb, modems, "ttyUSB2", answers=False)
    plug(sb)
    assert final_state(sb) == "failed"
    assert silent.commands == ["AT"]
    assert any("no serial port answers AT" in x for x in sb.logs())


def test_it_is_switched_only_once_per_boot(sb: Sandbox, modems: list[FakeModem]) -> None:
    modem_sysfs(sb, QUECTEL_TTYS)
    at = attach(sb, modems, "ttyUSB6", answers=True)
    plug(sb)
    assert final_state(sb) == "switched"
    # it comes back from the reset still not in MBIM mode: no second switch, no reset loop
    state_file(sb).write_text("switched\n")
    at.commands.clear()
    sb.reset_logs()
    plug(sb)
    assert final_state(sb) == "failed"
    assert at.commands == []
    assert any("still not in MBIM mode" in x for x in sb.logs())
    sb.reset_logs()
    plug(sb)
    time.sleep(1)
    assert at.commands == []


def test_back_in_mbim_after_the_switch(sb: Sandbox, modems: list[FakeModem]) -> None:
    modem_sysfs(sb, QUECTEL_TTYS, mbim=True)
    state_file(sb).parent.mkdir(parents=True)
    state_file(sb).write_text("switched\n")
    plug(sb)
    assert final_state(sb) == "mbim"


@pytest.mark.parametrize("value", ["0", "off"])
def test_modem_mbim_off_turns_it_off(sb: Sandbox, modems: list[FakeModem], value: str) -> None:
    sb.write_config("bonding", sb.config("bonding").replace(
        "option modem_mbim '1'", f"option modem_mbim '{value}'"))
    modem_sysfs(sb, QUECTEL_TTYS)
    at = attach(sb, modems, "ttyUSB6", answers=True)
    plug(sb)
    time.sleep(0.5)
    assert not state_file(sb).exists()
    assert at.commands == []


@pytest.mark.parametrize("product,devtype", [("1199/9091/6", "usb_device"),
                                             ("2c7c/125/318", "usb_interface")])
def test_other_devices_and_interface_events_are_ignored(
        sb: Sandbox, modems: list[FakeModem], product: str, devtype: str) -> None:
    modem_sysfs(sb, QUECTEL_TTYS)
    at = attach(sb, modems, "ttyUSB6", answers=True)
    plug(sb, product, devtype)
    time.sleep(0.5)
    assert not state_file(sb).exists()
    assert at.commands == []
    assert sb.uci_calls() == []
