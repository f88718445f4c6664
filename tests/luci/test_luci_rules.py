"""The rules page (luci-app-bonding view/bonding/rules.js) held against bondingd's own rule
validation (python/bonding/config/rules.py): the page offers every option of a `config rule`
section, and its validators (bonding/rulevalidators.js, run in node by rulecheck.js) accept
exactly what bondingd accepts, on hand-picked and on random values."""

from __future__ import annotations

import json
import random
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_luci import _accepts

from bonding.config import rules

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
VIEW = REPO / "luci-app-bonding/htdocs/luci-static/resources/view/bonding/rules.js"
NODE = shutil.which("node")

PARSERS: dict[str, Callable[[str], Any]] = {
    "mac": rules.mac, "ipv4": rules._ipv4_only, "domain": rules.domain,
    "port": rules.port_range, "name": rules.path_name, "action": rules.action,
}

PICKED: dict[str, list[str]] = {
    "mac": ["aa:bb:cc:dd:ee:ff", "AA-BB-CC-DD-EE-FF", "aa-bb:cc-dd:ee-ff", " 02:00:00:00:00:01 ",
            "01:00:5e:00:00:01", "aa:bb:cc:dd:ee", "aabbccddeeff", "aa:bb:cc:dd:ee:fg",
            "aa:bb:cc:dd:ee:ff:00", "ff:ff:ff:ff:ff:ff"],
    "ipv4": ["192.0.2.7", "10.0.0.0/8", "10.1.2.3/8", "0.0.0.0/0", "255.255.255.255",
             "10.0.0.0/08", "10.0.0.0/255.0.0.0", "10.0.0.0/0.255.255.255", "10.0.0.0/255.0.255.0",
             "010.0.0.1", "256.0.0.1", "10.0.0.0/33", "fd00::/8", "::ffff:10.0.0.1", "lan",
             "1.2.3", "1.2.3.4/", "1.2.3.4/-1", " 192.0.2.7 ", "192.0.2.0/24 "],
    "domain": ["example.com", "Example.COM.", "a-b.example", "xn--bcher-kva.example", "localhost",
               "192.0.2.1", "-a.example", "a-.example", "a b.example", "example.123",
               "a." * 127 + "a", "x" * 63 + ".example", "x" * 64 + ".example", "a..example",
               "a_b.example", ".example"],
    "port": ["443", "1", "65535", "8000-8100", "0", "65536", "100-10", "80,443", "http",
             "00443", "1-65535", "443-443", " 443 ", "-5", "123456"],
    "name": ["wan2", "tv_box", "WAN_2", "tv-box", "x" * 32, "x" * 33, "wan 2", " wan2 ", "ü"],
    "action": ["bond", "bypass", "path:wan2", "path:", "path:wan-2", "path:" + "x" * 33,
               "wan2", "Bond", " bond ", "path: wan2", "path:wan_2"],
}


def _random(rng: random.Random, alphabet: str, n: int) -> list[str]:
    return ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 20))) for _ in range(n)]


def _corpus() -> dict[str, list[str]]:
    rng = random.Random(17)
    out = {k: list(v) for k, v in PICKED.items()}
    out["mac"] += _random(rng, "0123456789abcdefABCDEF:-", 400)
    out["ipv4"] += _random(rng, "0123456789./:", 600)
    out["domain"] += _random(rng, "abcz019-.", 600)
    out["port"] += _random(rng, "0123456789-", 400)
    out["name"] += _random(rng, "aZ09_- ", 300)
    out["action"] += ["path:" + x for x in _random(rng, "aZ09_-:", 200)]
    return {k: [v for v in vs if v.strip()] for k, vs in out.items()}


@pytest.mark.skipif(NODE is None, reason="node not found: the LuCI tests need Node.js "
                    "(Debian package nodejs)")
def test_the_pages_validators_accept_what_bondingd_accepts() -> None:
    corpus = _corpus()
    r = subprocess.run([NODE or "node", str(HERE / "rulecheck.js")], input=json.dumps(corpus),
                       cwd=REPO, capture_output=True, text=True, timeout=60, check=True)
    verdicts: dict[str, list[Any]] = json.loads(r.stdout)
    wrong = []
    for name, values in corpus.items():
        for raw, js in zip(values, verdicts[name], strict=True):
            py = _accepts(PARSERS[name], raw)
            if py != (js is True):
                wrong.append((name, raw, "bondingd accepts" if py else "bondingd refuses", js))
            if js is not True:
                assert isinstance(js, str) and len(js) > 15, (name, raw, js)
    assert wrong == []
    accepted = sum(v is True for vs in verdicts.values() for v in vs)
    assert 100 < accepted < sum(len(v) for v in corpus.values()) - 100  # both kinds are tried


def test_the_page_offers_every_option_of_a_rule() -> None:
    src = VIEW.read_text()
    offered = set(re.findall(r"s\.option\(form\.\w+, '([a-z_]+)'", src))
    if "options.gridSection(m, 'rule'" in src:  # its grid makes the Enabled flag
        offered.add("enabled")
    assert offered - {"_now"} == set(rules.SPEC)


def test_the_pages_choices_are_bondingds() -> None:
    src = VIEW.read_text()

    def choices(option: str) -> list[str]:
        block = src.split(f"form.ListValue, '{option}'", 1)[1].split("o.default", 1)[0]
        return re.findall(r"o\.value\('([a-z]+)'", block)

    assert choices("proto") == list(rules.PROTOS)
    assert choices("fallback") == list(rules.FALLBACKS)
