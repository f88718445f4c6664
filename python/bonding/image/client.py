"""Client entries: what `bonding-server add-client` prints, read back and checked.

Two forms are accepted (interfaces.md):

- the text form: the ``config server 'NAME'`` section for /etc/config/bonding, the same-named
  section of /etc/config/bonding_secrets with ``option key``, and optionally the ``uci batch``
  heredoc that says the same again.  When both the sections and the batch are there they must
  agree.
- the ``--json`` form: ``{"name", "address", "address6", "port", "protocol", "cipher", "key",
  "rate_mbit", "udp_over_tcp"}`` (a list of such objects is taken too; ``address6`` may be null
  or absent).

Every value is checked with bondingd's own validators (`bonding.config`), so what is accepted here
is what the router's daemon accepts, and each problem names the entry, the field and the value.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from bonding import config, uci

DEFAULT_CIPHER: Final = "chacha20-ietf-poly1305"  # what add-client hands out (interfaces.md)
DEFAULT_PROTOCOL: Final = "shadowsocks"

_NAME_RE: Final = re.compile(r"[A-Za-z0-9_]{1,32}")
_FIELDS: Final = ("address", "address6", "port", "protocol", "cipher", "udp_over_tcp")


class ClientError(ValueError):
    """A client entry that cannot be used; the message says where and what."""


@dataclass(frozen=True)
class ServerEntry:
    """One aggregation server as the router will use it."""

    name: str
    address: str
    port: int
    protocol: str
    cipher: str
    key: str
    udp_over_tcp: bool = False  # the server takes UDP inside the bonded connection
    address6: str | None = None  # its IPv6 address: the router proxies its LAN's IPv6 too


def _check_key(where: str, name: str, key: str, cipher: str) -> None:
    """The key as bondingd's secrets loader takes it, and as the cipher needs it.  Messages
    never quote the key."""
    if not key:
        raise ClientError(f"{where}: key is empty")
    _, problems = config.secrets_from_sections([uci.Section("server", name, {"key": key})])
    errors = [p.message for p in problems if p.severity is config.Severity.ERROR]
    if errors:
        raise ClientError(f"{where}: key: " + "; ".join(errors))
    bad = config.key_problem(cipher, key)
    if bad is not None:
        raise ClientError(f"{where}: {bad}")


def make_entry(where: str, name: str, options: Mapping[str, str], key: str | None) -> ServerEntry:
    """Validate one server the way bondingd will, and the key the way the proxy will."""
    if not _NAME_RE.fullmatch(name):
        raise ClientError(f"{where}: name {name!r} is not a UCI section name "
                          "(1–32 letters, digits and '_')")
    missing = [f for f in ("address", "port") if not options.get(f)]
    if missing:
        raise ClientError(f"{where}: server '{name}' has no {' and no '.join(missing)}")
    if key is None:
        raise ClientError(f"{where}: server '{name}' has no key (the bonding_secrets section "
                          "with 'option key' is missing from the entry)")
    opts: dict[str, uci.OptionValue] = {k: v for k, v in options.items() if k in _FIELDS}
    opts.setdefault("protocol", DEFAULT_PROTOCOL)
    opts.setdefault("cipher", DEFAULT_CIPHER)
    unknown = sorted(set(options) - set(_FIELDS) - {"enabled"})
    if unknown:
        raise ClientError(f"{where}: server '{name}' has unknown option(s) {', '.join(unknown)}")
    cfg, problems = config.from_sections([uci.Section("server", name, opts)])
    errors = [p for p in problems if p.severity is config.Severity.ERROR]
    if errors:
        raise ClientError(f"{where}: " + "; ".join(
            f"{p.option or 'section'} {p.value!r}: {p.message}" if p.value is not None
            else f"{p.option or 'section'}: {p.message}" for p in errors))
    (srv,) = cfg.servers
    _check_key(where, srv.name, key, srv.cipher)
    return ServerEntry(srv.name, srv.address, srv.port, srv.protocol, srv.cipher, key,
                       srv.udp_over_tcp, srv.address6)


# --- the text form ------------------------------------------------------------------------------

_UCI_WORDS: Final = frozenset({"config", "option", "list", "package", "c", "o", "l", "p"})
_BATCH_START: Final = re.compile(r"^\s*uci\s+batch\s*<<-?\s*(['\"]?)(\w+)\1\s*$")
_BATCH_SET: Final = re.compile(r"^(bonding|bonding_secrets)\.([^.=]+)(?:\.([^.=]+))?=(.*)$", re.S)


def _split_text(text: str, where: str) -> tuple[str, list[tuple[int, str]]]:
    """(UCI file part, batch lines with their line numbers)."""
    uci_lines: list[str] = []
    batch: list[tuple[int, str]] = []
    lines = text.splitlines()
    # After the sections, add-client prints the same as shell commands ("# or in one go:"
    # touch/chmod, then a uci batch heredoc): other shell lines are passed over there, and
    # anywhere when the entry is only that shell part.  Before any section they are an error.
    shell_ok = any(_BATCH_START.match(line) for line in lines)
    i = 0
    while i < len(lines):
        line = lines[i]
        word = line.split(None, 1)[0] if line.strip() else ""
        if not word or word.startswith("#") or word in _UCI_WORDS:
            uci_lines.append(line)
            shell_ok = shell_ok or word in ("config", "c")
            i += 1
            continue
        m = _BATCH_START.match(line)
        if m is None:
            if not shell_ok:
                raise ClientError(f"{where}:{i + 1}: not a client entry line: "
                                  f"{line.strip()[:80]!r} (expected the output of "
                                  "`bonding-server add-client`)")
            uci_lines.append("")
            i += 1
            continue
        marker = m.group(2)
        j = i + 1
        while j < len(lines) and lines[j].strip() != marker:
            batch.append((j + 1, lines[j]))
            j += 1
        if j == len(lines):
            raise ClientError(f"{where}:{i + 1}: the 'uci batch' heredoc has no closing {marker}")
        uci_lines.extend("" for _ in range(i, j + 1))  # keep line numbers in UCI messages
        i = j + 1
    return "\n".join(uci_lines) + "\n", batch


def _from_sections(text: str, where: str) -> dict[str, dict[str, str]]:
    try:
        pkg = uci.loads(text, "bonding", where)
    except uci.UciParseError as e:
        raise ClientError(f"malformed client entry: {e}") from None
    out: dict[str, dict[str, str]] = {}
    for s in pkg.sections:
        if s.type != "server":
            raise ClientError(f"{where}: unexpected 'config {s.type}' section; a client entry "
                              "holds 'config server' sections only")
        if s.name is None:
            raise ClientError(f"{where}: a 'config server' section without a name")
        opts: dict[str, str] = {}
        for k, v in s.options.items():
            if not isinstance(v, str):
                raise ClientError(f"{where}: server '{s.name}': '{k}' is a list; it takes "
                                  "one value")
            opts[k] = v
        out[s.name] = opts
    return out


def _from_batch(batch: list[tuple[int, str]], where: str) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for lineno, line in batch:
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            words = shlex.split(line, comments=False, posix=True)
        except ValueError as e:
            raise ClientError(f"{where}:{lineno}: cannot read {line.strip()!r}: {e}") from None
        if words[0] == "commit":
            continue
        if words[0] != "set" or len(words) != 2:
            raise ClientError(f"{where}:{lineno}: unexpected batch command {line.strip()!r} "
                              "(a client entry only sets bonding/bonding_secrets options)")
        m = _BATCH_SET.match(words[1])
        if m is None:
            raise ClientError(f"{where}:{lineno}: cannot read {line.strip()!r}")
        pkg, sec, opt, value = m.groups()
        entry = out.setdefault(sec, {})
        if opt is None:
            if value != "server":
                raise ClientError(f"{where}:{lineno}: {pkg}.{sec} is a '{value}', not a server")
            continue
        if (pkg == "bonding_secrets") != (opt == "key"):
            raise ClientError(f"{where}:{lineno}: {pkg}.{sec}.{opt}: the key belongs in "
                              "bonding_secrets and only there")
        entry[opt] = value
    return out


def parse_text(text: str, where: str) -> list[ServerEntry]:
    uci_part, batch = _split_text(text, where)
    sections = _from_sections(uci_part, where)
    batched = _from_batch(batch, where)
    if not sections and not batched:
        raise ClientError(f"{where}: no 'config server' section found: is this the output of "
                          "`bonding-server add-client`?")
    if sections and batched:
        for name in sorted(set(sections) | set(batched)):
            a, b = sections.get(name, {}), batched.get(name, {})
            for opt in sorted(set(a) & set(b)):
                if a[opt] != b[opt]:
                    raise ClientError(f"{where}: server '{name}': the sections say {opt}="
                                      f"{a[opt]!r} but the uci batch says {b[opt]!r}")
    merged: dict[str, dict[str, str]] = {}
    for src in (batched, sections):
        for name, opts in src.items():
            merged.setdefault(name, {}).update(opts)
    entries = []
    for name, opts in merged.items():
        key = opts.pop("key", None)
        entries.append(make_entry(where, name, opts, key))
    return entries


# --- the JSON form ------------------------------------------------------------------------------


def _json_entry(obj: Any, where: str) -> ServerEntry:
    if not isinstance(obj, dict):
        raise ClientError(f"{where}: a JSON client entry is an object, not {type(obj).__name__}")
    for f in ("name", "address", "port", "key"):
        if f not in obj:
            raise ClientError(f"{where}: JSON client entry has no '{f}'")
    port = obj["port"]
    if isinstance(port, bool) or not isinstance(port, int | str):
        raise ClientError(f"{where}: 'port' is {port!r}; a number 1–65535")
    for f in ("name", "address", "key", "protocol", "cipher"):
        if f in obj and not isinstance(obj[f], str):
            raise ClientError(f"{where}: '{f}' is {obj[f]!r}; a string")
    if obj.get("address6") is not None and not isinstance(obj["address6"], str):
        raise ClientError(f"{where}: 'address6' is {obj['address6']!r}; a string or null")
    uot = obj.get("udp_over_tcp", False)
    if not isinstance(uot, bool):
        raise ClientError(f"{where}: 'udp_over_tcp' is {uot!r}; true or false")
    opts = {"address": obj["address"], "port": str(port),
            "protocol": obj.get("protocol", DEFAULT_PROTOCOL),
            "cipher": obj.get("cipher", DEFAULT_CIPHER), "udp_over_tcp": str(int(uot)),
            **({"address6": obj["address6"]} if obj.get("address6") else {})}
    return make_entry(where, obj["name"], opts, obj["key"])


def parse_json(text: str, where: str) -> list[ServerEntry]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ClientError(f"{where}: malformed JSON: {e}") from None
    items = data if isinstance(data, list) else [data]
    if not items:
        raise ClientError(f"{where}: an empty JSON list: no server in it")
    return [_json_entry(o, f"{where}[{i}]" if isinstance(data, list) else where)
            for i, o in enumerate(items)]


def parse(text: str, where: str) -> list[ServerEntry]:
    """A client entry in either form (JSON when it starts with '{' or '[')."""
    if text.lstrip().startswith(("{", "[")):
        return parse_json(text, where)
    return parse_text(text, where)
