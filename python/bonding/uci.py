"""UCI config files (``/etc/config/<package>``): read them as libuci does, and write them.

`load()` reads a package with pyuci (the CZ.NIC binding to libuci, OpenWrt's ``python3-uci``)
when ``import uci`` works, and with the parser in this module otherwise (CI, Debian servers, the
lab).  Both return the same model: a `Package` holding an ordered tuple of `Section`\\ s.

The parser is a faithful port of libuci's ``file.c`` (strict mode, as pyuci, netifd and ucode use
it), so it accepts exactly the files libuci accepts and builds the same data from them, quirks
included.  The rules, in short:

- A file is read line by line; leading whitespace is skipped and the first word (up to a space or
  tab) is the command: ``package``/``p``, ``config``/``c``, ``option``/``o``, ``list``/``l``.
  An empty line or one whose first word starts with ``#`` is ignored; any other word is an
  "invalid command".
- Arguments are runs of pieces glued together until unquoted whitespace: ``'single'`` (taken
  literally, may span lines), ``"double"`` (backslash escapes any character, may span lines),
  or unquoted text (backslash escapes any character).  A backslash at the end of a line joins the
  next line (outside single quotes; if that line starts with a blank, the word ends there);
  inside quotes a newline is part of the value.  An unquoted ``#`` ends the line.  A ``;`` right
  after a quoted piece starts another command on the same line, but right after a bare word it
  ends the line and the rest is ignored (libuci writes its NUL over the ``;``).
- ``config <type> [<name>]``: the type is 1+ printable ASCII characters other than space; the
  name is letters, digits and ``_``.  No name (or ``''``) makes an anonymous section, which libuci
  names ``cfgNNHHHH`` (NN: count of sections so far, HHHH: a hash of the type).  A name seen
  before continues that section (same type) or is an error (other type).
- ``option <name> [<value>]`` sets (replaces in place) a value; an empty value changes nothing.
  ``list <name> [<value>]`` appends (an option turns into a list).  Option names are letters,
  digits and ``_``.  Extra arguments are "too many arguments".
- The ``package`` line of a file under a config directory is checked and otherwise ignored.
- Bytes are kept as they are (text is UTF-8; other bytes survive as surrogate escapes).  A NUL
  byte is refused: libuci's line reader misreads the rest of such a file.

Nothing here knows what the bonding options mean: that is `bonding.config`.
"""

from __future__ import annotations

import functools
import importlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Final

__all__ = [
    "OptionValue",
    "Package",
    "Section",
    "UciError",
    "UciParseError",
    "anonymous_sid",
    "dumps",
    "have_pyuci",
    "load",
    "loads",
    "valid_name",
    "valid_package_name",
    "valid_type",
]

OptionValue = str | tuple[str, ...]

# The text codec for config files: UTF-8, keeping undecodable bytes (libuci is byte-transparent).
_ENCODING: Final = "utf-8"
_ERRORS: Final = "surrogateescape"


class UciError(Exception):
    """Root of this module's errors."""


class UciParseError(UciError, ValueError):
    """A file libuci would reject, with where and why.

    `reason` is libuci's own wording (e.g. ``invalid command``), `line` is 1-based (0 when not
    known), `text` the offending line as written.
    """

    def __init__(self, path: str, line: int, reason: str, *, column: int = 0,
                 text: str | None = None, hint: str | None = None) -> None:
        self.path = path
        self.line = line
        self.column = column
        self.reason = reason
        self.text = text
        self.hint = hint
        where = path if line <= 0 else f"{path}:{line}" + (f":{column}" if column > 0 else "")
        msg = f"{where}: {reason}"
        if hint:
            msg += f" ({hint})"
        if text is not None:
            shown = text if len(text) <= 80 else text[:77] + "..."
            msg += f": {shown!r}"
        super().__init__(msg)


# --- the model ---------------------------------------------------------------------------------


def _djbhash(data: bytes, h: int = 5381) -> int:
    for b in data:
        # libuci adds a `char` (signed on x86/MIPS): types are printable ASCII, so it never matters
        h = (h * 33 + (b - 256 if b >= 128 else b)) & 0xFFFFFFFF
    return h & 0x7FFFFFFF


def anonymous_sid(section_type: str, count: int) -> str:
    """The name libuci gives an anonymous section: ``cfg`` + `count` (the number of sections
    created in the package so far, this one included) + a 16-bit hash of the type."""
    h = _djbhash(section_type.encode(_ENCODING, _ERRORS))
    return f"cfg{count:02x}{h % 65536:04x}"


_SID_RE: Final = re.compile(r"cfg[0-9a-f]{2,}([0-9a-f]{4})")


def _looks_anonymous(sid: str, section_type: str) -> bool:
    m = _SID_RE.fullmatch(sid)
    return m is not None and m.group(1) == anonymous_sid(section_type, 0)[-4:]


@dataclass(frozen=True)
class Section:
    """One ``config`` block.

    `name` is None for an anonymous section.  `options` keeps the file's order; a ``list`` is a
    tuple.  `index` is the position in the package, `type_index` the position among sections of
    the same type (``@type[type_index]`` in ``uci show``), `sid` libuci's name for the section
    (the name, or ``cfgNNHHHH`` when anonymous).  `Package` fills the last three.
    """

    type: str
    name: str | None
    options: dict[str, OptionValue] = field(default_factory=dict)
    index: int = 0
    type_index: int = 0
    sid: str = ""

    def __post_init__(self) -> None:
        opts: dict[str, OptionValue] = {}
        for k, v in dict(self.options).items():
            if isinstance(v, str):
                opts[k] = v
            elif isinstance(v, Iterable) and all(isinstance(i, str) for i in v):
                opts[k] = tuple(v)
            else:
                raise TypeError(f"option {k!r}: a value is a str or a sequence of str, not {v!r}")
        object.__setattr__(self, "options", opts)

    @property
    def anonymous(self) -> bool:
        return self.name is None

    @property
    def ref(self) -> str:
        """How ``uci show`` names the section: its name, or ``@type[i]``."""
        return self.name if self.name is not None else f"@{self.type}[{self.type_index}]"

    def get(self, option: str, default: OptionValue | None = None) -> OptionValue | None:
        return self.options.get(option, default)


@dataclass(frozen=True)
class Package:
    """A config package: its name and its sections in file order.

    Construction numbers the sections (`Section.index`, `Section.type_index`) and gives
    anonymous sections without a `Section.sid` the one libuci would give them on loading.
    """

    name: str
    sections: tuple[Section, ...] = ()

    def __post_init__(self) -> None:
        out: list[Section] = []
        per_type: dict[str, int] = {}
        for i, s in enumerate(self.sections):
            ti = per_type.get(s.type, 0)
            per_type[s.type] = ti + 1
            sid = s.sid or (s.name if s.name is not None else anonymous_sid(s.type, i + 1))
            out.append(Section(s.type, s.name, s.options, i, ti, sid))
        object.__setattr__(self, "sections", tuple(out))

    def __iter__(self) -> Iterator[Section]:
        return iter(self.sections)

    def __len__(self) -> int:
        return len(self.sections)

    def of_type(self, section_type: str) -> tuple[Section, ...]:
        return tuple(s for s in self.sections if s.type == section_type)

    def section(self, ref: str) -> Section | None:
        """Look a section up as uci does: by name/sid, or ``@type[i]`` / ``@type[-1]``."""
        m = re.fullmatch(r"@([^\[\]]*)\[(-?\d+)\]", ref)
        if m is None:
            return next((s for s in self.sections if s.sid == ref), None)
        candidates = self.of_type(m.group(1)) if m.group(1) else self.sections
        idx = int(m.group(2))
        if idx < 0:
            idx += len(candidates)
        return candidates[idx] if 0 <= idx < len(candidates) else None


# --- names, as libuci validates them ---------------------------------------------------------

_ALNUM: Final = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
_SPACE: Final = frozenset(b" \t\n\v\f\r")  # C isspace()


def _valid(s: bytes, *, name: bool, package: bool) -> bool:
    """libuci's uci_validate_str()."""
    if not s:
        return False
    for c in s:
        if c in _ALNUM or (c == 0x2D and package):  # '-'
            continue
        if name or c < 33 or c > 126:
            return False
    return True


def valid_package_name(name: str) -> bool:
    """A package name libuci and this module can both load: letters, digits, ``_`` and ``-``."""
    return _valid(name.encode(_ENCODING, _ERRORS), name=True, package=True)


def valid_name(name: str) -> bool:
    """A section or option name: letters, digits and ``_``."""
    return _valid(name.encode(_ENCODING, _ERRORS), name=True, package=False)


def valid_type(section_type: str) -> bool:
    """A section type: printable ASCII without space."""
    return _valid(section_type.encode(_ENCODING, _ERRORS), name=False, package=False)


# --- the parser: libuci's file.c, step by step ------------------------------------------------

_HINTS: Final = {
    "invalid command": "a line starts with package, config, option, list or #",
    "invalid character in name field": "names may contain only letters, digits and '_'",
    "invalid character in type field": "a section type is printable ASCII without spaces",
    "insufficient arguments": "a name is missing",
    "too many arguments": "quote a value that contains spaces",
    "option/list command found before the first section": "start a section with 'config <type>'",
    "section of different type overwrites prior section with same name":
        "two sections have the same name",
}


class _Abort(Exception):
    def __init__(self, reason: str, detail: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail


@dataclass
class _MSection:
    type: bytes
    sid: bytes
    anonymous: bool
    options: dict[bytes, bytes | list[bytes]] = field(default_factory=dict)


class _Parser:
    """A port of libuci's parser that works on the same kind of buffer (the quirks of ``;``,
    ``#`` and line continuations come from where it writes NUL bytes into that buffer)."""

    def __init__(self, data: bytes, path: str) -> None:
        self.src = data
        self.srcpos = 0
        self.path = path
        self.buf = bytearray(64)
        self.pos = 0
        self.filled = 0
        self.eof = False
        self.physline = 0  # physical lines read so far
        self.starts: list[tuple[int, int, int]] = []  # (buffer offset, line number, src offset)
        self.sections: list[_MSection] = []
        self.section: _MSection | None = None

    # -- buffer primitives
    def ch(self, i: int) -> int:
        return self.buf[i] if i < len(self.buf) else 0

    def setch(self, i: int, c: int) -> None:
        if i >= len(self.buf):
            self.buf.extend(bytes(i + 1 - len(self.buf) + 64))
        self.buf[i] = c

    def cstr(self, i: int) -> bytes:
        end = self.buf.find(0, i)
        return bytes(self.buf[i:end if end >= 0 else len(self.buf)])

    def getln(self, offset: int) -> None:
        """uci_getln(): read the next line (with its newline) into the buffer at `offset`."""
        self.setch(offset, 0)
        if self.srcpos >= len(self.src):
            self.eof = True
            return
        nl = self.src.find(b"\n", self.srcpos)
        end = len(self.src) if nl < 0 else nl + 1
        chunk = self.src[self.srcpos:end]
        if nl < 0:
            self.eof = True
        if offset == 0:
            self.starts = []
        self.physline += 1
        self.starts.append((offset, self.physline, self.srcpos))
        self.srcpos = end
        need = offset + len(chunk) + 1
        if need > len(self.buf):
            self.buf.extend(bytes(need - len(self.buf) + 64))
        self.buf[offset:offset + len(chunk)] = chunk
        self.buf[offset + len(chunk)] = 0
        self.filled = offset + len(chunk)

    def error(self, reason: str, detail: str | None = None) -> _Abort:
        return _Abort(reason, detail)

    # -- tokenizer (parse_backslash, skip_whitespace, parse_*_quote, parse_str, next_arg)
    def parse_backslash(self) -> bool:
        self.pos += 1
        c = self.ch(self.pos)
        if c == 0 or c == 0x0A or (
            c == 0x0D and self.ch(self.pos + 1) == 0x0A and self.ch(self.pos + 2) == 0
        ):
            self.getln(self.pos)
            return False
        return True

    def skip_whitespace(self) -> None:
        while self.ch(self.pos) and self.ch(self.pos) in _SPACE:
            self.pos += 1

    def addc(self, target: int) -> int:
        self.setch(target, self.ch(self.pos))
        self.pos += 1
        return target + 1

    def parse_quoted(self, target: int, quote: int) -> int:
        opened = self.line_of(self.pos)[0]
        self.pos += 1
        while True:
            c = self.ch(self.pos)
            if c == quote:
                self.pos += 1
                return target
            if c == 0:
                self.getln(self.pos)
                if not self.ch(self.pos):
                    raise self.error("EOF with unterminated " + chr(quote),
                                     f"the quote opened on line {opened}")
                continue
            if c == 0x5C and quote == 0x22 and not self.parse_backslash():  # '\\' in "..."
                continue
            target = self.addc(target)

    def parse_str(self, target: int) -> int:
        nxt = True
        while True:
            c = self.ch(self.pos)
            if c in (0x27, 0x22):  # ' "
                target = self.parse_quoted(target, c)
            elif c == 0x23:  # '#': the rest of the line is a comment
                self.setch(self.pos, 0)
                break
            elif c == 0:
                break
            elif c == 0x3B:  # ';'
                nxt = False
                break
            elif c == 0x5C:  # '\\'
                if self.parse_backslash():
                    target = self.addc(target)
            else:
                target = self.addc(target)
            c = self.ch(self.pos)
            if c == 0 or c in _SPACE:
                break
        # An unquoted word stopped at whitespace: step over it, the NUL may overwrite it.  When it
        # stopped at ';' with nothing removed before it, the NUL overwrites the ';' (libuci then
        # ignores the rest of the line; after a quoted piece the ';' survives and splits it).
        if self.ch(self.pos) and nxt:
            self.pos += 1
        self.setch(target, 0)
        return target

    def next_arg(self, required: bool, name: bool, package: bool) -> int:
        self.skip_whitespace()
        val = self.pos
        if self.ch(self.pos) == 0x3B:
            self.setch(self.pos, 0)
            self.pos += 1
        else:
            self.parse_str(val)
        if not self.ch(val):
            if required:
                raise self.error("insufficient arguments")
            return val
        if name and not _valid(self.cstr(val), name=name, package=package):
            raise self.error("invalid character in name field", _show(self.cstr(val)))
        return val

    def assert_eol(self) -> None:
        self.skip_whitespace()
        v = self.next_arg(False, False, False)
        if self.ch(v):
            raise self.error("too many arguments", _show(self.cstr(v)))

    def increase_pos(self, add: int, reason: str) -> None:
        if self.pos + add > self.filled:
            raise self.error(reason)
        self.pos += add

    def skip_command(self, reason: str) -> None:
        # "command string null-terminated by strtok": step over it
        self.increase_pos(len(self.cstr(self.pos)) + 1, reason)

    # -- commands
    def parse_package(self) -> None:
        self.skip_command("package without name")
        self.next_arg(True, True, True)
        self.assert_eol()  # a config dir's file names its package: the line is only checked

    def parse_config(self) -> None:
        self.skip_command("config without name")
        ofs_type = self.next_arg(True, False, False)
        stype = self.cstr(ofs_type)
        if not _valid(stype, name=False, package=False):
            raise self.error("invalid character in type field", _show(stype))
        ofs_name = self.next_arg(False, True, False)
        self.assert_eol()
        stype = self.cstr(ofs_type)
        name = self.cstr(ofs_name)
        if not name:
            count = len(self.sections) + 1
            sid = anonymous_sid(stype.decode(_ENCODING, _ERRORS), count).encode()
            self.section = _MSection(stype, sid, True)
            self.sections.append(self.section)
            return
        found = next((s for s in self.sections if s.sid == name), None)
        if found is not None:
            if found.type != stype:
                raise self.error(
                    "section of different type overwrites prior section with same name",
                    f"{_show(name)} is a {_show(found.type)}, not a {_show(stype)}")
            self.section = found
            return
        self.section = _MSection(stype, name, False)
        self.sections.append(self.section)

    def parse_option(self, is_list: bool) -> None:
        if self.section is None:
            raise self.error("option/list command found before the first section")
        self.skip_command("option without name")
        ofs_name = self.next_arg(True, True, False)
        ofs_value = self.next_arg(False, False, False)
        self.assert_eol()
        name = self.cstr(ofs_name)
        value = self.cstr(ofs_value)
        opts = self.section.options
        old = opts.get(name)
        if is_list:
            if old is None:
                opts[name] = [value]
            elif isinstance(old, list):
                old.append(value)
            else:
                opts[name] = [old, value]
        elif value:  # libuci: setting an empty value through the parser changes nothing
            opts[name] = value

    def parse_line(self) -> None:
        self.skip_whitespace()
        while True:
            # strtok(cur, " \t"): skip blanks, cut the word with a NUL
            s = self.pos
            while self.ch(s) in (0x20, 0x09):
                s += 1
            if self.ch(s) == 0:
                return
            e = s
            while self.ch(e) not in (0, 0x20, 0x09):
                e += 1
            word = bytes(self.buf[s:e])
            self.setch(e, 0)
            if word[:1] == b"#":
                return
            if word in (b"p", b"package"):
                self.parse_package()
            elif word in (b"c", b"config"):
                self.parse_config()
            elif word in (b"o", b"option"):
                self.parse_option(False)
            elif word in (b"l", b"list"):
                self.parse_option(True)
            else:
                raise self.error("invalid command", _show(word))

    def run(self) -> list[_MSection]:
        if b"\0" in self.src:
            line = self.src.count(b"\n", 0, self.src.index(b"\0")) + 1
            raise UciParseError(self.path, line, "NUL byte in file",
                                hint="a config file is text; libuci cannot read it reliably")
        while not self.eof:
            self.pos = 0
            self.getln(0)
            if self.ch(0):
                try:
                    self.parse_line()
                except _Abort as a:
                    raise self.located(a) from None
        return self.sections

    def line_of(self, pos: int) -> tuple[int, int, str | None]:
        """(line, column, text) of a buffer position, as in the file."""
        if not self.starts:
            return 0, 0, None
        off, line, src = next((st for st in reversed(self.starts) if st[0] <= pos), self.starts[0])
        end = self.src.find(b"\n", src)
        raw = self.src[src:end if end >= 0 else len(self.src)].rstrip(b"\r")
        return line, max(pos - off, 0) + 1, raw.decode(_ENCODING, "replace")

    def located(self, a: _Abort) -> UciParseError:
        line, column, text = self.line_of(self.pos)
        hint = _HINTS.get(a.reason)
        if a.detail:
            hint = f"{a.detail}: {hint}" if hint else a.detail
        return UciParseError(self.path, line, a.reason, column=column, text=text, hint=hint)


def _show(b: bytes) -> str:
    return repr(b.decode(_ENCODING, "replace").rstrip("\r\n"))


def _dec(b: bytes) -> str:
    return b.decode(_ENCODING, _ERRORS)


def loads(data: str | bytes, package: str, path: str | None = None) -> Package:
    """Parse the text of ``/etc/config/<package>``; raise `UciParseError` where libuci would."""
    raw = data if isinstance(data, bytes) else data.encode(_ENCODING, _ERRORS)
    sections = _Parser(raw, path or f"<{package}>").run()
    return Package(package, tuple(
        Section(
            _dec(s.type),
            None if s.anonymous else _dec(s.sid),
            {_dec(k): (_dec(v) if isinstance(v, bytes) else tuple(_dec(i) for i in v))
             for k, v in s.options.items()},
            sid=_dec(s.sid),
        )
        for s in sections
    ))


# --- pyuci --------------------------------------------------------------------------------------


@functools.cache
def _pyuci() -> ModuleType | None:
    try:
        mod = importlib.import_module("uci")
    except ImportError:
        return None
    return mod if hasattr(mod, "Uci") and hasattr(mod, "UciException") else None


def have_pyuci() -> bool:
    """True when ``import uci`` gives pyuci (then `load` reads through libuci)."""
    return _pyuci() is not None


def _load_pyuci(mod: ModuleType, config_dir: Path, package: str) -> Package:
    path = config_dir / package
    not_found: type[BaseException] = getattr(mod, "UciExceptionNotFound", LookupError)
    ctx: Any = mod.Uci(confdir=str(config_dir))
    try:
        data: Any = ctx.get_all(package)
        sections: list[Section] = []
        for sid, opts in data.items():
            stype = str(ctx.get(package, sid))
            anonymous = _looks_anonymous(str(sid), stype)
            options: dict[str, OptionValue] = {
                str(k): (str(v) if isinstance(v, str) else tuple(str(i) for i in v))
                for k, v in opts.items()
            }
            sections.append(Section(stype, None if anonymous else str(sid), options, sid=str(sid)))
    except (UnicodeDecodeError, SystemError) as e:
        # libuci took the file, but pyuci can only hand out UTF-8 (and then sometimes raises a
        # SystemError around the UnicodeDecodeError): read it here, with the same result.
        if not isinstance(e, UnicodeDecodeError) and not isinstance(e.__cause__,
                                                                      UnicodeDecodeError):
            raise
        return loads(path.read_bytes(), package, str(path))
    except not_found:
        raise FileNotFoundError(2, "No such UCI package", str(path)) from None
    except mod.UciException as e:
        # pyuci says no more than "invalid input": let the parser (which agrees with libuci) say
        # where and why.
        try:
            loads(path.read_bytes(), package, str(path))
        except UciParseError as pe:
            raise pe from None
        except OSError:
            pass
        raise UciParseError(str(path), 0, f"libuci rejected the package ({type(e).__name__}: "
                            f"{e or 'no detail'})") from None
    finally:
        del ctx
    return Package(package, tuple(sections))


def load(config_dir: Path, package: str, *, use_pyuci: bool | None = None) -> Package:
    """Read `package` from `config_dir` (e.g. ``Path("/etc/config")``).

    With pyuci (``use_pyuci`` None and ``import uci`` works, or True) libuci reads it, applying
    uncommitted changes saved under ``/tmp/.uci`` and preferring ``/var/run/uci/<package>`` as
    every libuci user does; otherwise the file is parsed here.  Raises FileNotFoundError when
    there is no such package, `UciParseError` when the file is malformed.

    pyuci does not say which sections are anonymous: a section whose id has libuci's anonymous
    form for its type (``cfgNN`` + the type's hash) is taken as anonymous.
    """
    if not valid_package_name(package):
        raise ValueError(f"invalid UCI package name {package!r}: use letters, digits, '_', '-'")
    mod = _pyuci() if use_pyuci is not False else None
    if use_pyuci and mod is None:
        raise UciError("pyuci (import uci) is not available")
    if mod is not None:
        return _load_pyuci(mod, Path(config_dir), package)
    path = Path(config_dir) / package
    if not path.is_file():  # libuci: a directory or a missing file is "not found"
        raise FileNotFoundError(2, "No such UCI package", str(path))
    return loads(path.read_bytes(), package, str(path))


# --- writing -----------------------------------------------------------------------------------


def _quote(value: str) -> str:
    return "'" + value.replace("'", "'\\''") + "'"


_PLAIN_TYPE: Final = re.compile(r"[!$-&(-:<-\[\]-~]+")  # printable, no ' " # ; \ space


def dumps(package: Package, *, header: bool = False) -> str:
    """The text of a config file for `package`, in ``uci export``'s layout (with ``header`` the
    ``package`` line too, exactly as ``uci export`` prints it).  `loads` of the result gives the
    same sections back; what the format cannot hold raises ValueError: an empty option value
    (libuci ignores it), an empty list, a repeated section name, bad names or NUL bytes."""
    if not valid_package_name(package.name):
        raise ValueError(f"invalid package name {package.name!r}")
    out: list[str] = [f"package {package.name}\n"] if header else []
    seen: set[str] = set()
    for s in package.sections:
        where = f"section {s.ref}"
        if not valid_type(s.type):
            raise ValueError(f"{where}: invalid type {s.type!r} (printable ASCII, no spaces)")
        if s.name is not None:
            if not valid_name(s.name):
                raise ValueError(f"{where}: invalid name {s.name!r} (letters, digits, '_')")
            if s.name in seen:
                raise ValueError(f"{where}: the name {s.name!r} is used twice")
            seen.add(s.name)
        stype = s.type if _PLAIN_TYPE.fullmatch(s.type) else _quote(s.type)
        named = f" {_quote(s.name)}" if s.name is not None else ""
        out.append(f"\nconfig {stype}{named}\n")
        for k, v in s.options.items():
            if not valid_name(k):
                raise ValueError(f"{where}: invalid option name {k!r} (letters, digits, '_')")
            values = (v,) if isinstance(v, str) else v
            if isinstance(v, str) and not v:
                raise ValueError(f"{where}: option {k!r} is empty, which UCI cannot store")
            if not values:
                raise ValueError(f"{where}: list {k!r} is empty, which UCI cannot store")
            for item in values:
                if "\0" in item:
                    raise ValueError(f"{where}: option {k!r} holds a NUL character")
                kw = "option" if isinstance(v, str) else "list"
                out.append(f"\t{kw} {k} {_quote(item)}\n")
    out.append("\n")
    text = "".join(out)
    back = loads(text, package.name)
    if _shape(back) != _shape(package):
        raise ValueError("the package cannot be written so that it reads back the same "
                         "(a section name equal to an anonymous section's cfgNNHHHH id?)")
    return text


def _shape(p: Package) -> list[tuple[str, str | None, list[tuple[str, OptionValue]]]]:
    return [(s.type, s.name, list(s.options.items())) for s in p.sections]
