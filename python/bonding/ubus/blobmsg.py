"""Python values <-> blobmsg, in pure Python over bytes.

The wire format (libubox blob.h / blobmsg.h), all integers big-endian:

* ``blob_attr``: a 32-bit ``id_len`` word -- bit 31 "extended" (has a blobmsg name), bits 24..30
  the type, bits 0..23 the raw length including this 4-byte header -- then the payload, then
  zero padding to a multiple of 4 (the padding is not counted in the raw length of the attribute
  itself, but is counted in the length of the container holding it).
* ``blobmsg_hdr`` (extended attributes): 16-bit name length, the name, a NUL, zero padding so
  that header + name + NUL is a multiple of 4; the value follows.
* Tables hold named attributes, arrays hold attributes with an empty name.

Python mapping (the same choices as libblobmsg_json, i.e. what ``ubus call`` produces):
``dict`` <-> TABLE, ``list``/``tuple`` -> ARRAY (-> ``list``), ``str`` <-> STRING, ``bool`` <->
BOOL (INT8), ``int`` -> INT32 when it fits, else INT64 (INT8/16/32/64 -> ``int``, except INT8 ->
``bool``), ``float`` <-> DOUBLE, ``None`` <-> UNSPEC (empty payload).
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from enum import IntEnum
from typing import Any

__all__ = [
    "MAX_DEPTH",
    "BlobmsgError",
    "BlobmsgType",
    "decode",
    "decode_attrs",
    "decode_value",
    "encode",
    "encode_attrs",
    "type_matches",
]

#: nesting deeper than this is refused in both directions (a guard against cycles and bombs)
MAX_DEPTH = 64

BLOB_ATTR_EXTENDED = 0x80000000
BLOB_ATTR_ID_MASK = 0x7F000000
BLOB_ATTR_ID_SHIFT = 24
BLOB_ATTR_LEN_MASK = 0x00FFFFFF


class BlobmsgType(IntEnum):
    """``enum blobmsg_type`` (libubox blobmsg.h); also the policy types ``ubus list -v`` shows."""

    UNSPEC = 0
    ARRAY = 1
    TABLE = 2
    STRING = 3
    INT64 = 4
    INT32 = 5
    INT16 = 6
    INT8 = 7
    BOOL = 7  # an alias of INT8, as in C
    DOUBLE = 8


class BlobmsgError(ValueError):
    """A value that cannot be encoded, or bytes that are not valid blobmsg."""


_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_INT16_MIN, _INT16_MAX = -(2**15), 2**15 - 1

_U32 = struct.Struct(">I")
_U16 = struct.Struct(">H")
_HDR = struct.Struct(">IH")  # id_len + blobmsg namelen
_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_I64 = struct.Struct(">q")
_DBL = struct.Struct(">d")
_ZEROS = tuple(b"\0" * n for n in range(8))

_TRUE = b"\x01"
_FALSE = b"\x00"

# type id pre-shifted into the id_len word, with the extended bit set
_EXT = {t: BLOB_ATTR_EXTENDED | (t << BLOB_ATTR_ID_SHIFT) for t in range(9)}


# --------------------------------------------------------------------------- encoding


def _attr(typ: int, name: bytes, payload: bytes) -> bytes:
    """One extended (named) blobmsg attribute, padded to 4 bytes."""
    namelen = len(name)
    hdrlen = (namelen + 6) & ~3  # BLOBMSG_PADDING(sizeof(blobmsg_hdr) + namelen + 1)
    raw = 4 + hdrlen + len(payload)
    if raw > BLOB_ATTR_LEN_MASK:
        raise BlobmsgError(f"attribute too long for blobmsg ({raw} bytes, max 16 MiB)")
    return b"".join(
        (
            _HDR.pack(_EXT[typ] | raw, namelen),
            name,
            _ZEROS[hdrlen - 2 - namelen],
            payload,
            _ZEROS[-raw & 3],
        )
    )


def _name(key: object) -> bytes:
    if not isinstance(key, str):
        raise BlobmsgError(f"table keys must be str, not {type(key).__name__}: {key!r}")
    raw = key.encode("utf-8", "surrogateescape")
    if b"\0" in raw:
        raise BlobmsgError(f"table key contains a NUL character: {key!r}")
    if len(raw) > 0xFFFF:
        raise BlobmsgError("table key longer than 65535 bytes")
    return raw


def _value(name: bytes, value: object, depth: int) -> bytes:
    # the order matters: bool is an int subclass
    if isinstance(value, str):
        raw = value.encode("utf-8", "surrogateescape")
        if b"\0" in raw:
            raise BlobmsgError(f"string contains a NUL character: {value[:40]!r}")
        return _attr(3, name, raw + b"\0")
    if value is True:
        return _attr(7, name, _TRUE)
    if value is False:
        return _attr(7, name, _FALSE)
    if isinstance(value, int):
        if _INT32_MIN <= value <= _INT32_MAX:
            return _attr(5, name, _I32.pack(value))
        if _INT64_MIN <= value <= _INT64_MAX:
            return _attr(4, name, _I64.pack(value))
        raise BlobmsgError(f"integer out of the signed 64-bit range: {value}")
    if isinstance(value, float):
        return _attr(8, name, _DBL.pack(value))
    if value is None:
        return _attr(0, name, b"")
    if depth >= MAX_DEPTH:
        raise BlobmsgError(f"nesting deeper than {MAX_DEPTH} levels (a cycle?)")
    if isinstance(value, Mapping):
        return _attr(2, name, _table(value, depth + 1))
    if isinstance(value, list | tuple):
        return _attr(1, name, b"".join([_value(b"", item, depth + 1) for item in value]))
    raise BlobmsgError(f"cannot encode {type(value).__name__} as blobmsg: {value!r:.60}")


def _table(mapping: Mapping[Any, Any], depth: int) -> bytes:
    return b"".join([_value(_name(k), v, depth) for k, v in mapping.items()])


def encode_attrs(mapping: Mapping[str, Any]) -> bytes:
    """The attributes of a table, without the enclosing blob header (``blob_data()``)."""
    if not isinstance(mapping, Mapping):
        raise BlobmsgError(f"a blobmsg message is a table (Mapping), not {type(mapping).__name__}")
    return _table(mapping, 0)


def encode(mapping: Mapping[str, Any] | None, blob_id: int = 0) -> bytes:
    """A whole message: a blob header (``blob_buf_init(buf, blob_id)``) and the table's attributes.

    This is what libubus takes as ``struct blob_attr *msg``.
    """
    payload = encode_attrs(mapping) if mapping is not None else b""
    raw = 4 + len(payload)
    if raw > BLOB_ATTR_LEN_MASK:
        raise BlobmsgError(f"message too long for blobmsg ({raw} bytes, max 16 MiB)")
    return _U32.pack(((blob_id << BLOB_ATTR_ID_SHIFT) & BLOB_ATTR_ID_MASK) | raw) + payload


# --------------------------------------------------------------------------- decoding


def _decode_list(buf: bytes, off: int, end: int, table: bool, depth: int) -> Any:
    """Attributes in ``buf[off:end]`` -> dict (table) or list (array)."""
    if depth > MAX_DEPTH:
        raise BlobmsgError(f"nesting deeper than {MAX_DEPTH} levels")
    out_d: dict[str, Any] = {}
    out_l: list[Any] = []
    unpack_u32 = _U32.unpack_from
    while end - off >= 4:
        (id_len,) = unpack_u32(buf, off)
        raw = id_len & BLOB_ATTR_LEN_MASK
        if raw < 4 or off + raw > end:
            raise BlobmsgError(f"bad attribute length {raw} at offset {off} (room: {end - off})")
        typ = (id_len & BLOB_ATTR_ID_MASK) >> BLOB_ATTR_ID_SHIFT
        data = off + 4
        attr_end = off + raw
        name = None
        if id_len & BLOB_ATTR_EXTENDED:
            if raw < 6:
                raise BlobmsgError(f"truncated blobmsg header at offset {off}")
            (namelen,) = _U16.unpack_from(buf, data)
            hdrlen = (namelen + 6) & ~3
            if 4 + hdrlen > raw or buf[data + 2 + namelen] != 0:
                raise BlobmsgError(f"bad blobmsg name at offset {off}")
            if table:
                name = buf[data + 2 : data + 2 + namelen].decode("utf-8", "surrogateescape")
            data += hdrlen
        value = _decode_one(buf, typ, data, attr_end, depth, off)
        if table:
            # blobmsg_parse() keeps the first of duplicate names; unnamed attributes are skipped
            if name is not None and name not in out_d:
                out_d[name] = value
        else:
            out_l.append(value)
        off += (raw + 3) & ~3
    return out_d if table else out_l


def _decode_one(buf: bytes, typ: int, data: int, end: int, depth: int, off: int) -> Any:
    size = end - data
    if typ == 3:  # STRING
        if size < 1 or buf[end - 1] != 0:
            raise BlobmsgError(f"string not NUL-terminated at offset {off}")
        raw = buf[data : end - 1]
        nul = raw.find(b"\0")
        if nul >= 0:
            raw = raw[:nul]
        return raw.decode("utf-8", "surrogateescape")
    if typ == 5:  # INT32
        if size < 4:
            raise BlobmsgError(f"short int32 at offset {off}")
        return _I32.unpack_from(buf, data)[0]
    if typ == 2:  # TABLE
        return _decode_list(buf, data, end, True, depth + 1)
    if typ == 1:  # ARRAY
        return _decode_list(buf, data, end, False, depth + 1)
    if typ == 7:  # INT8 / BOOL
        if size < 1:
            raise BlobmsgError(f"short int8 at offset {off}")
        return buf[data] != 0
    if typ == 4:  # INT64
        if size < 8:
            raise BlobmsgError(f"short int64 at offset {off}")
        return _I64.unpack_from(buf, data)[0]
    if typ == 8:  # DOUBLE
        if size < 8:
            raise BlobmsgError(f"short double at offset {off}")
        return _DBL.unpack_from(buf, data)[0]
    if typ == 6:  # INT16
        if size < 2:
            raise BlobmsgError(f"short int16 at offset {off}")
        return _I16.unpack_from(buf, data)[0]
    if typ == 0:  # UNSPEC
        return None
    raise BlobmsgError(f"unknown blobmsg type {typ} at offset {off}")


def decode_attrs(payload: bytes) -> dict[str, Any]:
    """Table attributes (``blob_data()`` of a message) -> dict."""
    result: dict[str, Any] = _decode_list(payload, 0, len(payload), True, 0)
    return result


def decode(blob: bytes) -> dict[str, Any]:
    """A whole message (blob header + table attributes) -> dict."""
    if len(blob) < 4:
        raise BlobmsgError("message shorter than a blob header")
    raw = _U32.unpack_from(blob, 0)[0] & BLOB_ATTR_LEN_MASK
    if raw < 4 or raw > len(blob):
        raise BlobmsgError(f"bad message length {raw} (have {len(blob)} bytes)")
    result: dict[str, Any] = _decode_list(blob, 4, raw, True, 0)
    return result


def decode_value(attr: bytes) -> tuple[str, Any]:
    """One extended attribute -> (name, value)."""
    if len(attr) < 4:
        raise BlobmsgError("attribute shorter than a blob header")
    raw = _U32.unpack_from(attr, 0)[0] & BLOB_ATTR_LEN_MASK
    padded = attr[:raw] + _ZEROS[-raw & 3]
    result = _decode_list(padded, 0, len(padded), True, 0)
    if not result:
        raise BlobmsgError("not a named blobmsg attribute")
    name, value = next(iter(result.items()))
    return name, value


# --------------------------------------------------------------------------- policies


def type_matches(expected: BlobmsgType, value: object) -> bool:
    """Whether a decoded value can have come from an attribute of the ``expected`` type.

    Integer types check the range; ``UNSPEC`` accepts anything (as in a C blobmsg_policy).
    """
    if expected == BlobmsgType.UNSPEC:
        return True
    if expected == BlobmsgType.STRING:
        return isinstance(value, str)
    if expected == BlobmsgType.BOOL:
        return isinstance(value, bool)
    if expected == BlobmsgType.DOUBLE:
        return isinstance(value, float)
    if expected == BlobmsgType.TABLE:
        return isinstance(value, dict)
    if expected == BlobmsgType.ARRAY:
        return isinstance(value, list)
    if not isinstance(value, int) or isinstance(value, bool):
        return False
    if expected == BlobmsgType.INT32:
        return _INT32_MIN <= value <= _INT32_MAX
    if expected == BlobmsgType.INT16:
        return _INT16_MIN <= value <= _INT16_MAX
    return _INT64_MIN <= value <= _INT64_MAX
