"""A recording stand-in for OpenWrt's `uci` command, for running uci-defaults scripts in tests.

It does what the real CLI does for the commands such scripts use -- get, set, add, add_list,
del_list, delete, show (with -X), commit -- on the files of the config directory given with -c
(default /etc/config, which tests never use), and records every call as a JSON line in
$FAKE_UCI_LOG.  Like libuci it keeps changes apart until `commit` (in $FAKE_UCI_SAVEDIR), so a
script that forgets to commit leaves the files unchanged; `commit` writes the file anew with mode
0644 (as a fresh file would have), so a script that must keep a file private has to chmod it.
Files are read and written with bonding.uci, the libuci-exact parser.  When OWRT_PREFIX points
at a real uci the tests run the same scripts with it and compare.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Any

from bonding import uci

# a section: {"type", "name" (None: anonymous), "sid", "options": {opt: str | [str]}}
Sec = dict[str, Any]


class UciFail(Exception):
    pass


def _savefile(save: Path, pkg: str) -> Path:
    return save / f"{pkg}.json"


def _load(conf: Path, save: Path, pkg: str) -> list[Sec]:
    if not uci.valid_package_name(pkg):
        raise UciFail("Invalid argument")
    sf = _savefile(save, pkg)
    if sf.is_file():
        data: list[Sec] = json.loads(sf.read_text())
        return data
    path = conf / pkg
    if not path.is_file():
        raise UciFail("Entry not found")
    try:
        p = uci.loads(path.read_bytes(), pkg, str(path))
    except uci.UciParseError as e:
        raise UciFail(f"Parse error ({e})") from None
    return [{"type": s.type, "name": s.name, "sid": s.sid,
             "options": {k: (v if isinstance(v, str) else list(v)) for k, v in s.options.items()}}
            for s in p.sections]


def _store(save: Path, pkg: str, secs: list[Sec]) -> None:
    save.mkdir(parents=True, exist_ok=True)
    _savefile(save, pkg).write_text(json.dumps(secs))


def _find(secs: list[Sec], ref: str) -> Sec | None:
    m = re.fullmatch(r"@([^\[\]]+)\[(-?\d+)\]", ref)
    if m is None:
        return next((s for s in secs if s["sid"] == ref), None)
    cands = [s for s in secs if s["type"] == m.group(1)]
    i = int(m.group(2))
    if i < 0:
        i += len(cands)
    return cands[i] if 0 <= i < len(cands) else None


def _split(arg: str) -> tuple[str, str | None, str | None, str | None]:
    """'pkg.sec.opt=value' → parts (value None when there is no '=')."""
    path, eq, value = arg.partition("=")
    parts = path.split(".")
    if len(parts) > 3 or not parts[0]:
        raise UciFail("Invalid argument")
    pkg = parts[0]
    sec = parts[1] if len(parts) > 1 else None
    opt = parts[2] if len(parts) > 2 else None
    return pkg, sec, opt, (value if eq else None)


def _anon_sid(secs: list[Sec], stype: str) -> str:
    n = len(secs) + 1
    while True:
        sid = uci.anonymous_sid(stype, n)
        if all(s["sid"] != sid for s in secs):
            return sid
        n += 1


def _quote(v: str) -> str:
    return "'" + v.replace("'", "'\\''") + "'"


def run(argv: list[str], out: list[str]) -> int:
    conf = Path("/etc/config")
    save = Path(os.environ["FAKE_UCI_SAVEDIR"])
    quiet = False
    extended = True
    args = list(argv)
    while args and args[0].startswith("-"):
        a = args.pop(0)
        if a == "-q":
            quiet = True
        elif a == "-X":
            extended = False
        elif a in ("-c", "-C", "-t", "-p", "-P"):
            if not args:
                raise UciFail(f"{a} needs an argument")
            d = args.pop(0)
            if a == "-c":
                conf = Path(d)
        else:
            raise UciFail(f"fake uci: option {a} is not implemented")
    if not args:
        raise UciFail("no command")
    cmd, rest = args[0], args[1:]
    try:
        return _command(cmd, rest, conf, save, extended, out)
    except UciFail as e:
        if not quiet:
            print(f"uci: {e}", file=sys.stderr)
        return 1


def _command(cmd: str, rest: list[str], conf: Path, save: Path, extended: bool,
             out: list[str]) -> int:
    if cmd == "commit":
        pkgs = rest or sorted(p.name[:-5] for p in save.glob("*.json"))
        for pkg in pkgs:
            sf = _savefile(save, pkg)
            if not sf.is_file():
                continue
            secs = json.loads(sf.read_text())
            text = uci.dumps(uci.Package(pkg, tuple(
                uci.Section(s["type"], s["name"], s["options"],
                            sid="" if s["name"] is None else s["sid"]) for s in secs)))
            target = conf / pkg
            tmp = conf / f".{pkg}.fake-uci"
            tmp.write_text(text)
            os.chmod(tmp, 0o644)
            os.replace(tmp, target)
            sf.unlink()
        return 0
    if cmd == "add":
        if len(rest) != 2 or not uci.valid_type(rest[1]):
            raise UciFail("Invalid argument")
        pkg, stype = rest
        secs = _load(conf, save, pkg)
        sid = _anon_sid(secs, stype)
        secs.append({"type": stype, "name": None, "sid": sid, "options": {}})
        _store(save, pkg, secs)
        out.append(sid)
        return 0
    if cmd == "show":
        if len(rest) > 1:
            raise UciFail("Invalid argument")
        pkg, sec_ref, opt, _ = _split(rest[0]) if rest else ("", None, None, None)
        if not pkg:
            raise UciFail("fake uci: show needs a package")
        secs = _load(conf, save, pkg)
        counts: dict[str, int] = {}
        for s in secs:
            idx = counts.get(s["type"], 0)
            counts[s["type"]] = idx + 1
            name = s["sid"] if (s["name"] is not None or not extended) else \
                f"@{s['type']}[{idx}]"
            if sec_ref is not None and _find(secs, sec_ref) is not s:
                continue
            if opt is None:
                out.append(f"{pkg}.{name}={s['type']}")
            for k, v in s["options"].items():
                if opt is not None and k != opt:
                    continue
                vals = [v] if isinstance(v, str) else v
                out.append(f"{pkg}.{name}.{k}=" + " ".join(_quote(x) for x in vals))
        return 0
    if len(rest) != 1:
        raise UciFail("Invalid argument")
    pkg, sec_ref, opt, value = _split(rest[0])
    secs = _load(conf, save, pkg)
    if sec_ref is None:
        raise UciFail("Invalid argument")
    sec = _find(secs, sec_ref)
    if cmd == "get":
        if value is not None or sec is None:
            raise UciFail("Entry not found")
        if opt is None:
            out.append(sec["type"])
            return 0
        if opt not in sec["options"]:
            raise UciFail("Entry not found")
        v = sec["options"][opt]
        out.append(v if isinstance(v, str) else " ".join(v))
        return 0
    if cmd == "set":
        if value is None:
            raise UciFail("Invalid argument")
        if opt is None:
            if not uci.valid_type(value):
                raise UciFail("Invalid argument")
            if sec is None:
                if sec_ref.startswith("@") or not uci.valid_name(sec_ref):
                    raise UciFail("Invalid argument")
                secs.append({"type": value, "name": sec_ref, "sid": sec_ref, "options": {}})
            else:
                sec["type"] = value
        else:
            if sec is None:
                raise UciFail("Invalid argument")
            if not uci.valid_name(opt):
                raise UciFail("Invalid argument")
            if value == "":
                sec["options"].pop(opt, None)
            else:
                sec["options"][opt] = value
        _store(save, pkg, secs)
        return 0
    if cmd in ("add_list", "del_list"):
        if value is None or opt is None or sec is None or not uci.valid_name(opt):
            raise UciFail("Invalid argument")
        cur = sec["options"].get(opt)
        vals = [] if cur is None else ([cur] if isinstance(cur, str) else list(cur))
        if cmd == "add_list":
            vals.append(value)
        else:
            vals = [x for x in vals if x != value]
        if vals:
            sec["options"][opt] = vals
        else:
            sec["options"].pop(opt, None)
        _store(save, pkg, secs)
        return 0
    if cmd == "delete":
        if sec is None or value is not None:
            raise UciFail("Entry not found")
        if opt is None:
            secs.remove(sec)
        elif opt in sec["options"]:
            del sec["options"][opt]
        else:
            raise UciFail("Entry not found")
        _store(save, pkg, secs)
        return 0
    raise UciFail(f"fake uci: command {cmd} is not implemented")


def main() -> int:
    argv = sys.argv[1:]
    log = os.environ.get("FAKE_UCI_LOG")
    out: list[str] = []
    try:
        rc = run(argv, out)
    except UciFail as e:
        print(f"uci: {e}", file=sys.stderr)
        rc = 1
    if log:
        with open(log, "a", encoding="utf-8") as f:
            f.write(json.dumps({"argv": argv, "rc": rc}) + "\n")
    for line in out:
        print(line)
    return rc


if __name__ == "__main__":
    sys.exit(main())
