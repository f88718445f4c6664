"""The pure-Python blobmsg codec: exact bytes, round trips, limits, malformed input."""

from __future__ import annotations

import math
import struct
from typing import Any

import pytest

from bonding.ubus.blobmsg import (
    MAX_DEPTH,
    BlobmsgError,
    BlobmsgType,
    decode,
    decode_attrs,
    decode_value,
    encode,
    encode_attrs,
    type_matches,
)


def attr(typ: int, name: bytes, payload: bytes) -> bytes:
    """An extended attribute built straight from the libubox header definitions."""
    hdr = struct.pack(">H", len(name)) + name + b"\0"
    hdr += b"\0" * (-len(hdr) % 4)
    raw = 4 + len(hdr) + len(payload)
    return struct.pack(">I", 0x80000000 | typ << 24 | raw) + hdr + payload + b"\0" * (-raw % 4)


# --------------------------------------------------------------------------- exact bytes


@pytest.mark.parametrize(
    ("value", "typ", "payload"),
    [
        ("ab", BlobmsgType.STRING, b"ab\0"),
        ("", BlobmsgType.STRING, b"\0"),
        ("é", BlobmsgType.STRING, "é".encode() + b"\0"),
        (True, BlobmsgType.BOOL, b"\x01"),
        (False, BlobmsgType.BOOL, b"\x00"),
        (0, BlobmsgType.INT32, b"\0\0\0\0"),
        (1, BlobmsgType.INT32, b"\0\0\0\x01"),
        (-1, BlobmsgType.INT32, b"\xff\xff\xff\xff"),
        (2**31 - 1, BlobmsgType.INT32, b"\x7f\xff\xff\xff"),
        (-(2**31), BlobmsgType.INT32, b"\x80\0\0\0"),
        (2**31, BlobmsgType.INT64, b"\0\0\0\0\x80\0\0\0"),
        (-(2**31) - 1, BlobmsgType.INT64, b"\xff\xff\xff\xff\x7f\xff\xff\xff"),
        (2**63 - 1, BlobmsgType.INT64, b"\x7f" + b"\xff" * 7),
        (-(2**63), BlobmsgType.INT64, b"\x80" + b"\0" * 7),
        (1.5, BlobmsgType.DOUBLE, b"\x3f\xf8" + b"\0" * 6),
        (None, BlobmsgType.UNSPEC, b""),
    ],
)
def test_scalar_bytes(value: Any, typ: int, payload: bytes) -> None:
    assert encode_attrs({"k": value}) == attr(typ, b"k", payload)


def test_header_and_padding_layout() -> None:
    # name "k": namelen(2) + "k" + NUL = 4 -> no padding; string "ab\0" -> raw 11, pad 1
    assert encode_attrs({"k": "ab"}) == bytes.fromhex(
        "8300000b 0001 6b00 616200 00".replace(" ", "")
    )
    # name "ab": 2 + 2 + 1 = 5 -> header padded to 8
    assert encode_attrs({"ab": 7}) == bytes.fromhex("85000010000261620000000000000007")
    # whole message: blob header (id 0) counts the padded attributes
    msg = encode({"k": "ab"})
    assert msg[:4] == struct.pack(">I", 4 + 12)
    assert len(msg) == 16
    assert encode({"k": "ab"}, blob_id=BlobmsgType.TABLE)[:4] == struct.pack(">I", 0x02000010)
    assert encode(None) == b"\0\0\0\x04"
    assert encode({}) == b"\0\0\0\x04"


def test_nested_bytes() -> None:
    inner_array = attr(BlobmsgType.INT32, b"", b"\0\0\0\x01") + attr(
        BlobmsgType.STRING, b"", b"x\0"
    )
    expected = attr(
        BlobmsgType.TABLE,
        b"t",
        attr(BlobmsgType.ARRAY, b"a", inner_array) + attr(BlobmsgType.TABLE, b"e", b""),
    )
    assert encode_attrs({"t": {"a": [1, "x"], "e": {}}}) == expected


def test_tuple_is_an_array_and_key_order_is_kept() -> None:
    data = {"z": (1, 2), "a": 1, "m": [True]}
    out = decode_attrs(encode_attrs(data))
    assert list(out) == ["z", "a", "m"]
    assert out == {"z": [1, 2], "a": 1, "m": [True]}


# --------------------------------------------------------------------------- round trips

ROUND_TRIP: list[Any] = [
    {},
    {"s": "string", "u": "ünïcødé ✓", "empty": ""},
    {"i": 0, "neg": -5, "max32": 2**31 - 1, "min32": -(2**31)},
    {"big": 2**31, "huge": 2**63 - 1, "low": -(2**63), "ts": 1_700_000_000_123},
    {"t": True, "f": False},
    {"d": 0.1, "n": -2.5e300, "z": 0.0, "inf": math.inf, "ninf": -math.inf},
    {"none": None},
    {"nested": {"a": {"b": {"c": [1, [2, [3, {"d": None}]], {}]}}}},
    {"list_of_tables": [{"x": 1}, {"y": [True, 1.5, "s", None]}]},
    {"long": "x" * 100_000, "keys": {f"k{i}": i for i in range(300)}},
    {"a" * 1000: 1},
]


@pytest.mark.parametrize("value", ROUND_TRIP)
def test_round_trip(value: dict[str, Any]) -> None:
    blob = encode(value)
    assert len(blob) % 4 == 0
    assert decode(blob) == value
    assert decode_attrs(encode_attrs(value)) == value


def test_nan_round_trip() -> None:
    assert math.isnan(decode(encode({"x": math.nan}))["x"])


def test_types_come_back_as_python_types() -> None:
    out = decode(encode({"b": True, "i": 1, "f": 1.0, "l": [], "t": {}}))
    assert type(out["b"]) is bool
    assert type(out["i"]) is int
    assert type(out["f"]) is float
    assert type(out["l"]) is list
    assert type(out["t"]) is dict


def test_non_utf8_strings_survive() -> None:
    blob = encode_attrs({"k": "x"}).replace(b"x\0", b"\xff\0")
    value = decode_attrs(blob)["k"]
    assert value == "\udcff"
    assert encode_attrs({"k": value}) == blob


def test_int_subclasses_and_mapping_types() -> None:
    from collections import OrderedDict
    from types import MappingProxyType

    assert decode(encode({"s": BlobmsgType.STRING})) == {"s": 3}
    assert decode(encode(MappingProxyType({"a": OrderedDict(b=1)}))) == {"a": {"b": 1}}


# --------------------------------------------------------------------------- decoding details


def test_other_int_widths_decode() -> None:
    blob = (
        attr(BlobmsgType.INT16, b"s", b"\xff\xfe")
        + attr(BlobmsgType.INT8, b"b", b"\x02")
        + attr(BlobmsgType.INT64, b"q", b"\xff" * 8)
    )
    assert decode_attrs(blob) == {"s": -2, "b": True, "q": -1}


def test_duplicate_names_keep_the_first_like_blobmsg_parse() -> None:
    blob = attr(BlobmsgType.INT32, b"a", b"\0\0\0\x01") + attr(
        BlobmsgType.INT32, b"a", b"\0\0\0\x02"
    )
    assert decode_attrs(blob) == {"a": 1}


def test_unnamed_attributes_in_a_table_are_skipped() -> None:
    plain = struct.pack(">I", (BlobmsgType.INT32 << 24) | 8) + b"\0\0\0\x09"
    assert decode_attrs(plain + attr(BlobmsgType.STRING, b"k", b"v\0")) == {"k": "v"}


def test_array_items_ignore_names() -> None:
    arr = attr(BlobmsgType.INT32, b"x", b"\0\0\0\x01")
    assert decode_attrs(attr(BlobmsgType.ARRAY, b"a", arr)) == {"a": [1]}


def test_string_stops_at_first_nul_like_c() -> None:
    assert decode_attrs(attr(BlobmsgType.STRING, b"k", b"ab\0cd\0")) == {"k": "ab"}


def test_trailing_slack_shorter_than_a_header_is_ignored() -> None:
    assert decode_attrs(encode_attrs({"a": 1}) + b"\0\0") == {"a": 1}


def test_decode_value() -> None:
    assert decode_value(encode_attrs({"name": [1, "x"]})) == ("name", [1, "x"])
    # an attribute without its trailing padding (blob_raw_len bytes) is fine too
    one = encode_attrs({"k": "ab"})
    assert decode_value(one[:11]) == ("k", "ab")


MALFORMED = [
    pytest.param(b"\x83\x00\x00\x02", id="raw-length-below-header"),
    pytest.param(b"\x83\x00\x00\x40\x00\x01k\x00", id="length-beyond-end"),
    pytest.param(attr(BlobmsgType.STRING, b"k", b"ab"), id="string-not-nul-terminated"),
    pytest.param(attr(BlobmsgType.STRING, b"k", b""), id="empty-string-payload"),
    pytest.param(attr(BlobmsgType.INT32, b"k", b"\0\0"), id="short-int32"),
    pytest.param(attr(BlobmsgType.INT64, b"k", b"\0" * 4), id="short-int64"),
    pytest.param(attr(BlobmsgType.DOUBLE, b"k", b"\0" * 4), id="short-double"),
    pytest.param(attr(BlobmsgType.INT16, b"k", b"\0"), id="short-int16"),
    pytest.param(attr(BlobmsgType.INT8, b"k", b""), id="short-int8"),
    pytest.param(attr(9, b"k", b"\0\0\0\0"), id="unknown-type"),
    pytest.param(b"\x83\x00\x00\x05\x00", id="truncated-name-header"),
    pytest.param(b"\x83\x00\x00\x08\x00\x09ab", id="name-longer-than-attr"),
    pytest.param(b"\x83\x00\x00\x0c\x00\x01kXab\x00\x00", id="name-not-nul-terminated"),
    pytest.param(
        attr(BlobmsgType.TABLE, b"t", attr(BlobmsgType.STRING, b"k", b"abc")), id="nested-bad"
    ),
]


@pytest.mark.parametrize("blob", MALFORMED)
def test_malformed_input_raises(blob: bytes) -> None:
    with pytest.raises(BlobmsgError):
        decode_attrs(blob)


def test_decode_checks_the_message_header() -> None:
    with pytest.raises(BlobmsgError):
        decode(b"\0\0")
    with pytest.raises(BlobmsgError):
        decode(b"\0\0\0\x10")  # claims 16 bytes, has 4
    with pytest.raises(BlobmsgError):
        decode(b"\0\0\0\x02")


def test_decode_depth_limit() -> None:
    blob = b""
    for _ in range(MAX_DEPTH + 2):
        blob = attr(BlobmsgType.ARRAY, b"", blob)
    with pytest.raises(BlobmsgError, match="deeper"):
        decode_attrs(attr(BlobmsgType.TABLE, b"t", blob))


def test_error_is_a_value_error() -> None:
    assert issubclass(BlobmsgError, ValueError)


# --------------------------------------------------------------------------- encoding errors


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ({"i": 2**63}, "64-bit"),
        ({"i": -(2**63) - 1}, "64-bit"),
        ({"s": "a\0b"}, "NUL"),
        ({"a\0": 1}, "NUL"),
        ({1: 1}, "keys must be str"),
        ({"b": b"bytes"}, "cannot encode bytes"),
        ({"s": {1, 2}}, "cannot encode set"),
        ({"o": object()}, "cannot encode object"),
        ({"k" * 70000: 1}, "65535"),
    ],
)
def test_unencodable_values(value: Any, match: str) -> None:
    with pytest.raises(BlobmsgError, match=match):
        encode(value)


def test_top_level_must_be_a_mapping() -> None:
    with pytest.raises(BlobmsgError, match="Mapping"):
        encode([1, 2])  # type: ignore[arg-type]


def test_cycles_are_refused() -> None:
    a: dict[str, Any] = {}
    a["self"] = a
    with pytest.raises(BlobmsgError, match="deeper"):
        encode(a)
    lst: list[Any] = []
    lst.append(lst)
    with pytest.raises(BlobmsgError, match="deeper"):
        encode({"l": lst})


def test_depth_limit_is_symmetric() -> None:
    value: Any = 1
    for _ in range(MAX_DEPTH - 1):
        value = [value]
    assert decode(encode({"v": value})) == {"v": value}


def test_too_large_for_24_bit_length() -> None:
    with pytest.raises(BlobmsgError, match="too long"):
        encode({"s": "x" * (1 << 24)})


# --------------------------------------------------------------------------- policy types


@pytest.mark.parametrize(
    ("typ", "good", "bad"),
    [
        (BlobmsgType.STRING, ["", "x"], [1, None, True, b"x"]),
        (BlobmsgType.BOOL, [True, False], [0, 1, "true", None]),
        (BlobmsgType.INT32, [0, -(2**31), 2**31 - 1], [2**31, True, 1.0, "1"]),
        (BlobmsgType.INT16, [0, -(2**15), 2**15 - 1], [2**15, True]),
        (BlobmsgType.INT64, [0, 2**63 - 1, -(2**63)], [2**63, False, 1.5]),
        (BlobmsgType.DOUBLE, [1.0, 0.0], [1, "1.0", True]),
        (BlobmsgType.TABLE, [{}, {"a": 1}], [[], None]),
        (BlobmsgType.ARRAY, [[], [1]], [{}, (1,), "x"]),
        (BlobmsgType.UNSPEC, [None, 1, "x", {}], []),
    ],
)
def test_type_matches(typ: BlobmsgType, good: list[Any], bad: list[Any]) -> None:
    for value in good:
        assert type_matches(typ, value), (typ, value)
    for value in bad:
        assert not type_matches(typ, value), (typ, value)


def test_enum_values_match_libubox() -> None:
    assert [t.value for t in BlobmsgType] == [0, 1, 2, 3, 4, 5, 6, 7, 8]
    assert BlobmsgType(7) is BlobmsgType.BOOL  # an alias of INT8, as in C
    assert BlobmsgType["BOOL"] is BlobmsgType["INT8"]
