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

The parts: ``model`` (`Package`, `Section`, names and errors), ``parser`` (the port of libuci's
file.c: `loads`), ``pyuci`` (`load`: through libuci's binding when it is there, else the parser)
and ``writer`` (`dumps`).
"""

from bonding.uci.model import (
    OptionValue,
    Package,
    Section,
    UciError,
    UciParseError,
    anonymous_sid,
    valid_name,
    valid_package_name,
    valid_type,
)
from bonding.uci.parser import loads
from bonding.uci.pyuci import have_pyuci, load
from bonding.uci.writer import dumps

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
