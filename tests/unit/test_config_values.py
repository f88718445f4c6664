"""Option value parsers (bonding.config.values), each on its own: str → value, or ValueError."""

from __future__ import annotations

import base64
from collections.abc import Callable

import pytest

from bonding.config import key_problem, values

# (parser, text, value it gives, or None and the start of the ValueError message)
CASES: list[tuple[str, Callable[[str], object], str, object, str | None]] = [
    ("whole", values.whole(1, 100), " 42 ", 42, None),
    ("whole low", values.whole(1, 100), "0", None, "out of range: use 1–100"),
    ("whole unit", values.whole(10, 60000, " ms"), "9", None, "out of range: use 10–60000 ms"),
    ("whole not decimal", values.whole(1, 100), "0x10", None, "not a whole number: use 1–100"),
    ("whole text", values.whole(0, 8, " s"), "many", None, "not a whole number s: use 0–8"),
    ("whole float", values.whole(0, 8), "1.5", None, "not a whole number"),
    ("number", values.number(1.0, 100.0), "2.5", 2.5, None),
    ("number integral", values.number(1, 100), "3", 3.0, None),
    ("number high", values.number(1.0, 100.0), "100.5", None, "out of range: use 1–100"),
    ("number text", values.number(1.0, 100.0), "x", None, "not a number: use 1–100"),
    ("ipv4_net", values.ipv4_net, "10.0.0.0/8", "10.0.0.0/8", None),
    ("ipv4_net host", values.ipv4_net, "192.0.2.7", "192.0.2.7", None),
    ("ipv4_net /32", values.ipv4_net, "192.0.2.7/32", "192.0.2.7", None),
    ("ipv4_net netmask", values.ipv4_net, "10.0.0.0/255.0.0.0", "10.0.0.0/8", None),
    ("ipv4_net host bits", values.ipv4_net, "10.0.0.1/8", None,
     "has host bits set: did you mean 10.0.0.0/8?"),
    ("ipv4_net v6", values.ipv4_net, "2001:db8::/32", None,
     "an IPv6 network: it goes in list bypass6"),
    ("ipv4_net bad", values.ipv4_net, "lan", None, "not an IPv4 network (like 10.0.0.0/8"),
    ("ipv6_net", values.ipv6_net, "2001:DB8::/32", "2001:db8::/32", None),
    ("ipv6_net host", values.ipv6_net, "2001:db8::0:7", "2001:db8::7", None),
    ("ipv6_net /128", values.ipv6_net, "2001:db8::7/128", "2001:db8::7", None),
    ("ipv6_net host bits", values.ipv6_net, "2001:db8::1/32", None,
     "has host bits set: did you mean 2001:db8::/32?"),
    ("ipv6_net v4", values.ipv6_net, "10.0.0.0/8", None, "an IPv4 network: it goes in list bypass"),
    ("ipv6_net bad", values.ipv6_net, "fe80::/129", None, "not an IPv6 network (like fd00::/8"),
    ("boolean", values.boolean, " Yes ", True, None),
    ("boolean off", values.boolean, "disabled", False, None),
    ("boolean bad", values.boolean, "maybe", None, "not a boolean: use 1 or 0"),
    ("fwmark", values.fwmark, "0xb0", (0xB0, 0xB0), None),
    ("fwmark mask", values.fwmark, "16/0xff", (16, 0xFF), None),
    ("fwmark outside", values.fwmark, "0x1ff/0xff", None, "the mark 0x1ff has bits outside"),
    ("ifname", values.ifname, "br-lan.10@x", "br-lan.10@x", None),
    ("ifname long", values.ifname, "a" * 16, None, "not a network device name"),
    ("ifname dot", values.ifname, "..", None, "not a network device name"),
    # the kernel takes these two, but an nft string cannot hold them (the LAN table names them)
    ("ifname quote", values.ifname, 'br"lan', None, "not a network device name"),
    ("ifname backslash", values.ifname, "br\\lan", None, "not a network device name"),
    ("ifname control", values.ifname, "br\x01lan", None, "not a network device name"),
]


@pytest.mark.parametrize(("parse", "text", "value", "message"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_parser(parse: Callable[[str], object], text: str, value: object,
                message: str | None) -> None:
    if message is None:
        assert parse(text) == value
    else:
        with pytest.raises(ValueError) as e:
            parse(text)
        assert str(e.value).startswith(message), str(e.value)


@pytest.mark.parametrize(("text", "v4", "v6"), [
    ("192.0.2.1", True, False), ("2001:db8::1", False, True), ("fe80::1%eth0", False, True),
    ("vps.example.com", False, False), ("192.0.2.0/24", False, False),
])
def test_address_family(text: str, v4: bool, v6: bool) -> None:
    assert (values.is_ipv4(text), values.is_ipv6(text)) == (v4, v6)


@pytest.mark.parametrize(("cipher", "key", "problem"), [
    ("chacha20-ietf-poly1305", "any password at all", None),
    ("2022-blake3-aes-128-gcm", base64.b64encode(b"k" * 16).decode(), None),
    ("2022-blake3-aes-256-gcm", base64.b64encode(b"k" * 32).decode(), None),
    ("2022-blake3-chacha20-poly1305", base64.b64encode(b"k" * 32).decode(), None),
    ("2022-blake3-aes-128-gcm", base64.b64encode(b"k" * 32).decode(),
     "decodes to 32 bytes; cipher 2022-blake3-aes-128-gcm needs exactly 16"),
    ("2022-blake3-chacha20-poly1305", base64.b64encode(b"k" * 16).decode(),
     "decodes to 16 bytes; cipher 2022-blake3-chacha20-poly1305 needs exactly 32"),
    ("2022-blake3-aes-128-gcm", "not-base64-at-all!", "not base64"),
])
def test_shadowsocks_2022_keys_are_base64_of_the_cipher_size(cipher: str, key: str,
                                                             problem: str | None) -> None:
    got = key_problem(cipher, key)
    if problem is None:
        assert got is None
    else:
        assert got is not None and problem in got and key not in got
        assert "openssl rand -base64" in got
