"""The UCI model: a `Package` of `Section`\\ s, the names libuci accepts, and the errors."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Final

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
