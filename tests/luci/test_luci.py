"""luci-app-bonding under pytest: the node tests, and the app held against bondingd's own code.

* ``node --test tests/luci/*.test.js`` (views in node:vm with LuCI's globals stubbed); skipped with
  the reason when node is absent.
* The ACL against the ubus methods of :mod:`bonding.api`; the configuration form against the
  validation of :mod:`bonding.config` (ranges, defaults, choices, every option present).
* ``tools/luci-pot.py``: its scanner on tricky JavaScript, and its output against the
  xgettext + msguniq pipeline of LuCI's build/i18n-scan.pl when gettext is installed.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from bonding import api, config

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
APP = REPO / "luci-app-bonding"
ACL = APP / "root/usr/share/rpcd/acl.d/luci-app-bonding.json"
POT = APP / "po/templates/bonding.pot"
NODE = shutil.which("node")

needs_node = pytest.mark.skipif(NODE is None, reason="node not found: the LuCI view tests need "
                                "Node.js (Debian package nodejs)")

# Options of the data plane (issue 4) that LuCI offers before python/bonding/config/ knows them.
DATAPLANE = {"lan_device", "tproxy_port", "tproxy_mark", "tproxy_table", "bypass", "proxy_udp",
             "congestion_control"}
SPECS: dict[str, dict[str, tuple[str, Callable[[str], Any], bool]]] = {
    "globals": config._GLOBALS, "server": config._SERVER, "path": config._PATH,
    "usb": config._USB,
}
DATACLASSES: dict[str, type] = {
    "globals": config.Globals, "server": config.Server, "path": config.PathConfig,
    "usb": config.Usb,
}


def _pot_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("luci_pot", REPO / "tools" / "luci-pot.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["luci_pot"] = mod
    spec.loader.exec_module(mod)
    return mod


luci_pot = _pot_module()


@needs_node
def test_node_view_tests() -> None:
    files = sorted(str(p.relative_to(REPO)) for p in HERE.glob("*.test.js"))
    assert files, "no tests/luci/*.test.js"
    r = subprocess.run([NODE or "node", "--test", "--test-reporter=tap", *files], cwd=REPO,
                       capture_output=True, text=True, timeout=300)
    out = r.stdout + r.stderr
    passed = re.search(r"^# pass (\d+)$", out, re.M)
    failed = re.search(r"^# fail (\d+)$", out, re.M)
    if r.returncode != 0 or not passed or not failed or failed.group(1) != "0":
        pytest.fail(f"node --test failed (exit {r.returncode}):\n{out}", pytrace=False)
    print(f"node --test: {passed.group(1)} passed")
    assert int(passed.group(1)) >= 30


def test_acl_grants_readers_the_read_methods_and_writers_the_rest() -> None:
    acl = json.loads(ACL.read_text())["luci-app-bonding"]
    assert sorted(acl["read"]["ubus"]["bonding"]) == sorted(api.READ_METHODS)
    # iface is for netifd's hotplug script, which calls ubus as root, not for LuCI.
    mutating = set(api.METHODS) - set(api.READ_METHODS) - {"iface"}
    assert set(acl["write"]["ubus"]["bonding"]) == mutating
    assert acl["read"]["uci"] == ["bonding"]
    # keys go to bondingd's set_key, never through rpcd's uci (which nobody may read them from)
    assert acl["write"]["uci"] == ["bonding"]
    assert "set_key" in acl["write"]["ubus"]["bonding"]


@pytest.fixture(scope="module")
def form() -> list[dict[str, Any]]:
    if NODE is None:
        pytest.skip("node not found: cannot read the form the configuration view builds")
    r = subprocess.run([NODE, str(HERE / "formspec.js")], cwd=REPO, capture_output=True,
                       text=True, timeout=60, check=True)
    spec: list[dict[str, Any]] = json.loads(r.stdout)
    return spec


def _parser(section: str, option: str) -> tuple[str, Callable[[str], Any], bool]:
    return SPECS[section][option]


def _accepts(parse: Callable[[str], Any], raw: str) -> bool:
    try:
        parse(raw)
    except ValueError:
        return False
    return True


def test_form_offers_every_option_bondingd_knows(form: list[dict[str, Any]]) -> None:
    offered = {(o["section"], o["option"]) for o in form if o["config"] == "bonding"}
    known = {(s, opt) for s, spec in SPECS.items() for opt in spec}
    assert known - offered == set(), "options of bonding.config missing from the LuCI form"
    unknown = {(s, opt) for s, opt in offered - known if opt not in DATAPLANE}
    assert unknown == set(), "LuCI options bondingd does not know"
    # the key is no uci option: the server dialog hands it to bondingd's set_key
    assert not [o for o in form if o["config"] == "bonding_secrets"]
    keys = [o for o in form if o["config"] == "bondingd"]
    assert [(o["section"], o["option"]) for o in keys] == [("server", "key")]
    assert {a.name for a in api.METHODS["set_key"]} == {"server", "key", "cipher"}


def test_form_ranges_are_bondingd_ranges(form: list[dict[str, Any]]) -> None:
    checked = 0
    for o in form:
        m = re.search(r"range\((-?[\d.]+),(-?[\d.]+)\)", o["datatype"] or "")
        if not m or o["option"] not in SPECS.get(o["section"], {}):
            continue
        _, parse, _ = _parser(o["section"], o["option"])
        lo, hi = float(m.group(1)), float(m.group(2))
        integer = "uinteger" in o["datatype"] or "port" in o["datatype"]
        step = 1.0 if integer else 0.01

        def fmt(v: float, integer: bool = integer) -> str:
            return str(int(v)) if integer else f"{v:g}"

        where = f"{o['section']}.{o['option']} {o['datatype']}"
        assert _accepts(parse, fmt(lo)), f"{where}: bondingd refuses the lowest LuCI value"
        assert _accepts(parse, fmt(hi)), f"{where}: bondingd refuses the highest LuCI value"
        assert not _accepts(parse, fmt(lo - step)), f"{where}: bondingd allows below LuCI's range"
        assert not _accepts(parse, fmt(hi + step)), f"{where}: bondingd allows above LuCI's range"
        checked += 1
    assert checked >= 18


def test_form_defaults_and_choices_are_bondingd_defaults(form: list[dict[str, Any]]) -> None:
    for o in form:
        section, option = o["section"], o["option"]
        if option not in SPECS.get(section, {}):
            continue
        field_name, parse, is_list = _parser(section, option)
        where = f"{section}.{option}"
        fields = {f.name: f for f in dataclasses.fields(DATACLASSES[section])}
        f = fields[field_name]
        has_default = f.default is not dataclasses.MISSING and f.default is not None
        shown = o["default"] if o["widget"] in ("Flag", "ListValue") else o["placeholder"]
        if is_list or not has_default:
            continue
        assert shown is not None, f"{where}: LuCI shows no default"
        parsed = parse(shown)
        if isinstance(parsed, tuple):  # tproxy_mark: (mark, mask), the mark is the field
            parsed = parsed[0]
        assert parsed == f.default, f"{where}: LuCI's default {shown!r} is not {f.default!r}"
        for choice in o["choices"]:
            assert _accepts(parse, choice), f"{where}: bondingd refuses the choice {choice!r}"
    choices = {(o["section"], o["option"]): set(o["choices"]) for o in form}
    assert choices[("globals", "log_level")] == set(config.LOG_LEVELS)
    assert choices[("globals", "proxy")] == set(config.PROXIES)
    assert choices[("server", "cipher")] == set(config.CIPHERS)


# --- tools/luci-pot.py -------------------------------------------------------------------------

def test_pot_scanner_reads_strings_as_xgettext_does() -> None:
    src = (
        "'use strict';\n"
        "var a = x / 2, r = /_('not me')/.test(s) ? _('yes') : 1;\n"
        "// _('comment')\n"
        "/* _('block\n comment') */\n"
        "var b = _('one ' +\n  'two'), c = o._('method'), d = _('ctx', 'the context');\n"
        "var e = N_(n, '%d link', '%d links'), f = _(\"dq \\\"x\\\" \\u2026\\n\");\n"
        "var g = _(name), h = _('');\n"
    )
    found = list(luci_pot.extract_js(src))
    assert found == [
        ("yes", None, None, 2),
        ("one two", None, None, 6),
        ("ctx", "the context", None, 7),
        ("%d link", None, "%d links", 8),
        ('dq "x" …\n', None, None, 8),
        ("", None, None, 9),
    ]


def test_pot_output_format(tmp_path: Path) -> None:
    app = tmp_path / "luci-app-bonding"
    view = app / "htdocs/luci-static/resources/view/x.js"
    view.parent.mkdir(parents=True)
    long = "word " * 20
    view.write_text(f"_('B'); _('A');\n_('{long}'); _('B');\n_('tab\\there  and\\nthere ');\n")
    menu = app / "root/usr/share/luci/menu.d/m.json"
    menu.parent.mkdir(parents=True)
    menu.write_text('{\n "a": {\n  "title": "A"\n }\n}\n')
    text = luci_pot.render(luci_pot.scan(tmp_path))
    assert text == (
        'msgid ""\nmsgstr "Content-Type: text/plain; charset=UTF-8"\n'
        "\n#: luci-app-bonding/htdocs/luci-static/resources/view/x.js:1\n"
        "#: luci-app-bonding/root/usr/share/luci/menu.d/m.json:3\n"
        'msgid "A"\nmsgstr ""\n'
        "\n#: luci-app-bonding/htdocs/luci-static/resources/view/x.js:1\n"
        "#: luci-app-bonding/htdocs/luci-static/resources/view/x.js:2\n"
        'msgid "B"\nmsgstr ""\n'
        "\n#: luci-app-bonding/htdocs/luci-static/resources/view/x.js:3\n"
        'msgid "tab here and there"\nmsgstr ""\n'
        "\n#: luci-app-bonding/htdocs/luci-static/resources/view/x.js:2\n"
        'msgid ""\n'
        '"word word word word word word word word word word word word word word word "\n'
        '"word word word word word"\nmsgstr ""\n'
    )


def _i18n_scan(root: Path) -> str:
    """LuCI's build/i18n-scan.pl, step by step, with the real xgettext and msguniq."""
    keywords = {".js": ["_:1", "_:1,2c", "N_:2,3", "N_:2,3,4c"], ".json": ["_:1", "_:1,2c"]}

    def collapse(s: str) -> str:
        s = re.sub(r"\\(.)", lambda m: " " if m.group(1) in "nt" else m.group(0), s)
        s = re.sub(" {2,}", " ", s)
        return re.sub(" $", "", re.sub("^ ", "", s))

    def postprocess(path: str, pot: str) -> str:
        pot = re.sub(r"^#: (.+?)\n", lambda m: "\n".join(
            f"#: {path}:{n}" for n in re.findall(r":(\d+)", m.group(1))) + "\n", pot, flags=re.M)
        lines = pot.split("\n")
        while lines and not lines[0].startswith("#: "):
            lines.pop(0)
        res: list[str] = []
        while lines:
            line = lines.pop(0)
            m = re.match(r'^(msg\w+) "(.*)"$', line)
            if m:
                kw, value = m.group(1), m.group(2)
                while lines and re.match(r'^"(.*)"$', lines[0]):
                    value += " " + lines.pop(0)[1:-1]
                value = collapse(value)
                if kw != "msgstr" and value == "":
                    while res and res[-1] != "":
                        res.pop()
                    while lines and re.match(r'^(?:msg\w+ )?"(.*)"$', lines[0]):
                        lines.pop(0)
                    continue
                res.append(f'{kw} "{value}"')
            elif not line.startswith("#, "):
                res.append(line)
        return "\n" + "\n".join(res) + "\n" if res else ""

    app = root / "luci-app-bonding"
    files = [*app.glob("htdocs/**/*.js"), *app.glob("root/usr/share/luci/menu.d/*.json"),
             *app.glob("root/usr/share/rpcd/acl.d/*.json")]
    buf = 'msgid ""\nmsgstr "Content-Type: text/plain; charset=UTF-8"\n'
    for f in files:
        src = f.read_text(encoding="utf-8")
        if f.suffix == ".json":
            src = re.sub(r'("(?:title|description)")\s*:\s*("(?:[^"\\]|\\.)*")', r"\1: _(\2)",
                         src, flags=re.S)
        cmd = ["xgettext", "--from-code=UTF-8", "--no-wrap", "--language=JavaScript",
               *(f"--keyword={k}" for k in keywords[f.suffix]), "-o", "-", "-"]
        pot = subprocess.run(cmd, input=src, capture_output=True, text=True, check=True).stdout
        buf += postprocess(f.relative_to(root).as_posix(), pot)
    out = subprocess.run(["msguniq", "-s"], input=buf, capture_output=True, text=True,
                         check=True).stdout.split("\n")
    res: list[str] = []
    i = 0
    while i < len(out):
        if out[i].startswith("#: "):
            refs = []
            while i < len(out) and out[i].startswith("#: "):
                refs.append(out[i])
                i += 1

            def key(ref: str) -> tuple[str, int]:
                file, line = ref.rsplit(":", 1)
                return file, int(line)

            res += sorted(refs, key=key)
            continue
        res.append(out[i])
        i += 1
    return "\n".join(res)


@pytest.mark.skipif(shutil.which("xgettext") is None or shutil.which("msguniq") is None,
                    reason="xgettext/msguniq not found (Debian package gettext): cannot compare "
                    "with LuCI's own .pot pipeline")
def test_pot_is_what_luci_i18n_scan_makes() -> None:
    assert POT.read_text(encoding="utf-8") == _i18n_scan(REPO)


def test_pot_check_mode() -> None:
    r = subprocess.run([sys.executable, str(REPO / "tools/luci-pot.py"), "--check"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
