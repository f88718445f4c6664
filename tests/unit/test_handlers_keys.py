"""bondingd's set_key method (bonding.bondingd.handlers) over a fake core: it writes
bonding_secrets, reloads, and never hands a key back."""

from __future__ import annotations

import json
import logging
import stat
from pathlib import Path
from typing import Any

import pytest

from bonding import api, config
from bonding.bondingd.handlers import Handlers
from bonding.ubus import UbusError, UbusStatus

KEY = "c2VjcmV0LWtleS1vZi10aGUtc2VydmVyLXZwczE="


class FakeCore:
    def __init__(self, config_dir: Path) -> None:
        self.config_dir = config_dir
        self.reloads = 0
        self.paths: dict[str, Any] = {}
        self.problems: list[Any] = []

    def reload(self) -> bool:
        self.reloads += 1
        return True


def call(h: Handlers, method: str, args: dict[str, Any]) -> Any:
    m = {m.name: m for m in api.methods(h)}[method]
    return m.handler(method, args)


def test_set_key_stores_reloads_and_answers_without_the_key(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    core = FakeCore(tmp_path)
    h = Handlers(core)  # type: ignore[arg-type]
    with caplog.at_level(logging.DEBUG):
        out = call(h, "set_key", {"server": "vps1", "key": KEY, "ubus_rpc_session": "s"})
    assert out == {"server": "vps1", "stored": True, "reloaded": True}
    assert core.reloads == 1
    assert config.load_secrets(tmp_path)[0].key("vps1") == KEY
    assert stat.S_IMODE((tmp_path / "bonding_secrets").stat().st_mode) == 0o600
    assert KEY not in json.dumps(out) and KEY not in caplog.text


def test_an_unwritable_file_is_an_error_naming_the_file_not_the_key(tmp_path: Path) -> None:
    (tmp_path / "bonding_secrets").write_text(f"config server 'vps1'\n\tkey {KEY}\n")
    core = FakeCore(tmp_path)
    h = Handlers(core)  # type: ignore[arg-type]
    with pytest.raises(UbusError) as e:
        call(h, "set_key", {"server": "vps2", "key": "another-long-key-here"})
    assert e.value.status == UbusStatus.UNKNOWN_ERROR
    assert "bonding_secrets" in str(e.value) and "not a valid UCI file" in str(e.value)
    assert KEY not in str(e.value)
    core2 = FakeCore(tmp_path / "no-such-dir")
    with pytest.raises(UbusError) as e:
        call(Handlers(core2), "set_key", {"server": "vps2", "key": KEY})  # type: ignore[arg-type]
    assert e.value.status == UbusStatus.UNKNOWN_ERROR and "No such file" in str(e.value)
    assert core.reloads == core2.reloads == 0
