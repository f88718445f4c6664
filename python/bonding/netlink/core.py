"""Netlink socket, message and attribute codec (standard library only)."""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import socket
import struct
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Self

# Netlink protocols.
NETLINK_ROUTE = 0
NETLINK_GENERIC = 16

# Message types.
NLMSG_NOOP = 1
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLMSG_OVERRUN = 4
NLMSG_MIN_TYPE = 0x10

# Message flags.
NLM_F_REQUEST = 0x01
NLM_F_MULTI = 0x02
NLM_F_ACK = 0x04
NLM_F_ECHO = 0x08
NLM_F_DUMP_INTR = 0x10
NLM_F_ROOT = 0x100
NLM_F_MATCH = 0x200
NLM_F_DUMP = NLM_F_ROOT | NLM_F_MATCH
NLM_F_REPLACE = 0x100
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400
NLM_F_APPEND = 0x800
NLM_F_CAPPED = 0x100
NLM_F_ACK_TLVS = 0x200

# Attribute flags.
NLA_F_NESTED = 0x8000
NLA_F_NET_BYTEORDER = 0x4000
NLA_TYPE_MASK = 0x3FFF

# Socket options.
SOL_NETLINK = 270
NETLINK_ADD_MEMBERSHIP = 1
NETLINK_DROP_MEMBERSHIP = 2
NETLINK_CAP_ACK = 10
NETLINK_EXT_ACK = 11

SO_RCVBUFFORCE = 33  # not exported by the socket module

# Extended ack attributes.
NLMSGERR_ATTR_MSG = 1

NLMSG_HDR = struct.Struct("=IHHII")  # len, type, flags, seq, pid
NLA_HDR = struct.Struct("=HH")  # len, type

RECV_BUFSIZE = 64 * 1024
DEFAULT_TIMEOUT = 5.0
DUMP_RETRIES = 5

_seq_source = itertools.count((int(time.time()) & 0xFFFF) << 12)


def nl_align(length: int) -> int:
    """Round up to the 4-byte netlink alignment (NLMSG_ALIGN / NLA_ALIGN)."""
    return (length + 3) & ~3


class NetlinkError(OSError):
    """A netlink request failed; `errno` is set, `operation` names the request."""

    def __init__(self, err: int, operation: str, message: str | None = None) -> None:
        text = os.strerror(err)
        if message:
            text = f"{text} ({message})"
        super().__init__(err, f"{operation}: {text}")
        self.operation = operation
        self.ext_message = message


# --- attributes -------------------------------------------------------------


def nla(attr_type: int, payload: bytes) -> bytes:
    """Encode one attribute, padded to 4 bytes."""
    length = NLA_HDR.size + len(payload)
    return NLA_HDR.pack(length, attr_type) + payload + b"\0" * (nl_align(length) - length)


def nla_u8(attr_type: int, value: int) -> bytes:
    return nla(attr_type, struct.pack("=B", value))


def nla_u16(attr_type: int, value: int) -> bytes:
    return nla(attr_type, struct.pack("=H", value))


def nla_be16(attr_type: int, value: int) -> bytes:
    return nla(attr_type, struct.pack("!H", value))


def nla_u32(attr_type: int, value: int) -> bytes:
    return nla(attr_type, struct.pack("=I", value))


def nla_s32(attr_type: int, value: int) -> bytes:
    return nla(attr_type, struct.pack("=i", value))


def nla_str(attr_type: int, value: str) -> bytes:
    """A NUL-terminated string attribute (NLA_NUL_STRING / NLA_STRING)."""
    return nla(attr_type, value.encode() + b"\0")


def nla_nest(attr_type: int, children: Iterable[bytes]) -> bytes:
    """A nested attribute; NLA_F_NESTED is set as the kernel expects."""
    return nla(attr_type | NLA_F_NESTED, b"".join(children))


def iter_attrs(data: bytes) -> Iterator[tuple[int, bytes]]:
    """Yield (type without flag bits, payload) for each attribute in `data`."""
    pos = 0
    end = len(data)
    while pos + NLA_HDR.size <= end:
        length, attr_type = NLA_HDR.unpack_from(data, pos)
        if length < NLA_HDR.size or pos + length > end:
            raise ValueError(f"bad attribute length {length} at offset {pos}")
        yield attr_type & NLA_TYPE_MASK, data[pos + NLA_HDR.size : pos + length]
        pos += nl_align(length)


class Attrs:
    """Decoded attributes of one message or nest (last occurrence wins)."""

    __slots__ = ("_items", "_map")

    def __init__(self, data: bytes) -> None:
        self._items = list(iter_attrs(data))
        self._map = dict(self._items)

    def __contains__(self, attr_type: int) -> bool:
        return attr_type in self._map

    def items(self) -> list[tuple[int, bytes]]:
        return list(self._items)

    def raw(self, attr_type: int) -> bytes | None:
        return self._map.get(attr_type)

    def _unpack(self, attr_type: int, fmt: str) -> int | None:
        data = self._map.get(attr_type)
        if data is None:
            return None
        size = struct.calcsize(fmt)
        if len(data) < size:
            raise ValueError(f"attribute {attr_type} too short: {len(data)} < {size}")
        value: int = struct.unpack_from(fmt, data)[0]
        return value

    def u8(self, attr_type: int) -> int | None:
        return self._unpack(attr_type, "=B")

    def u16(self, attr_type: int) -> int | None:
        return self._unpack(attr_type, "=H")

    def be16(self, attr_type: int) -> int | None:
        return self._unpack(attr_type, "!H")

    def u32(self, attr_type: int) -> int | None:
        return self._unpack(attr_type, "=I")

    def s32(self, attr_type: int) -> int | None:
        return self._unpack(attr_type, "=i")

    def str(self, attr_type: int) -> str | None:
        data = self._map.get(attr_type)
        if data is None:
            return None
        return data.split(b"\0", 1)[0].decode(errors="replace")

    def nested(self, attr_type: int) -> Attrs | None:
        data = self._map.get(attr_type)
        return None if data is None else Attrs(data)


# --- messages ---------------------------------------------------------------


@dataclass(frozen=True)
class Message:
    """One netlink message: header fields and the raw payload after the header."""

    type: int
    flags: int
    seq: int
    pid: int
    payload: bytes

    def encode(self) -> bytes:
        length = NLMSG_HDR.size + len(self.payload)
        header = NLMSG_HDR.pack(length, self.type, self.flags, self.seq, self.pid)
        return header + self.payload + b"\0" * (nl_align(length) - length)


def parse_messages(data: bytes) -> list[Message]:
    """Split a datagram into messages; raise ValueError on a malformed one."""
    out: list[Message] = []
    pos = 0
    end = len(data)
    while pos + NLMSG_HDR.size <= end:
        length, msg_type, flags, seq, pid = NLMSG_HDR.unpack_from(data, pos)
        if length < NLMSG_HDR.size or pos + length > end:
            raise ValueError(f"bad message length {length} at offset {pos}")
        out.append(Message(msg_type, flags, seq, pid, data[pos + NLMSG_HDR.size : pos + length]))
        pos += nl_align(length)
    return out


def parse_error(msg: Message) -> tuple[int, str | None]:
    """Return (errno, extack message) of an NLMSG_ERROR; errno 0 is an ACK."""
    if len(msg.payload) < 4:
        raise ValueError("short NLMSG_ERROR")
    (code,) = struct.unpack_from("=i", msg.payload)
    text: str | None = None
    if msg.flags & NLM_F_ACK_TLVS and len(msg.payload) >= 4 + NLMSG_HDR.size:
        (orig_len,) = struct.unpack_from("=I", msg.payload, 4)
        skip = NLMSG_HDR.size if msg.flags & NLM_F_CAPPED else nl_align(orig_len)
        try:
            text = Attrs(msg.payload[4 + skip :]).str(NLMSGERR_ATTR_MSG)
        except ValueError:
            text = None
    return -code, text


# --- socket -----------------------------------------------------------------


class Closing:
    """``close()`` and the with-statement, for what owns a netlink socket."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class NetlinkSocket(Closing):
    """A netlink socket for requests (blocking with timeout) or events (non-blocking)."""

    def __init__(
        self,
        protocol: int,
        groups: int = 0,
        *,
        nonblocking: bool = False,
        timeout: float = DEFAULT_TIMEOUT,
        rcvbuf: int | None = None,
    ) -> None:
        sock_type = socket.SOCK_RAW | socket.SOCK_CLOEXEC
        if nonblocking:
            sock_type |= socket.SOCK_NONBLOCK
        self.sock = socket.socket(socket.AF_NETLINK, sock_type, protocol)
        try:
            if rcvbuf:
                set_rcvbuf(self.sock, rcvbuf)
            for opt in (NETLINK_EXT_ACK, NETLINK_CAP_ACK):
                with contextlib.suppress(OSError):
                    self.sock.setsockopt(SOL_NETLINK, opt, 1)
            self.sock.bind((0, groups))
            if not nonblocking:
                self.sock.settimeout(timeout)
        except BaseException:
            self.sock.close()
            raise
        self.pid: int = self.sock.getsockname()[0]
        self._buf = bytearray(RECV_BUFSIZE)

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()

    def add_membership(self, group: int) -> None:
        """Join a multicast group by number (needed for genl groups > 32)."""
        self.sock.setsockopt(SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, group)

    def recv_ready(self, max_datagrams: int) -> Iterator[bytes | None]:
        """The datagrams readable now (non-blocking socket), at most `max_datagrams`;
        None for each overrun (ENOBUFS: the kernel dropped messages)."""
        for _ in range(max_datagrams):
            try:
                data: bytes | None = self.recv_datagram()
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno != errno.ENOBUFS:
                    raise
                data = None
            yield data

    def recv_datagram(self) -> bytes:
        """Read one whole datagram, growing the buffer first if it would truncate."""
        size = self.sock.recv_into(self._buf, len(self._buf), socket.MSG_PEEK | socket.MSG_TRUNC)
        if size > len(self._buf):
            self._buf = bytearray(nl_align(size))
        size = self.sock.recv_into(self._buf, len(self._buf))
        return bytes(self._buf[:size])

    def send(self, msg_type: int, flags: int, payload: bytes) -> int:
        """Send one request; return its sequence number."""
        seq = next(_seq_source) & 0xFFFFFFFF
        data = Message(msg_type, flags | NLM_F_REQUEST, seq, 0, payload).encode()
        self.sock.sendto(data, (0, 0))
        return seq

    def request(
        self, msg_type: int, flags: int, payload: bytes, operation: str
    ) -> list[Message]:
        """Send a request and return its replies (without the ACK or DONE).

        Dumps (NLM_F_DUMP) run until NLMSG_DONE and are retried when the kernel
        flags them interrupted; other requests carry NLM_F_ACK and end at the ACK.
        """
        dump = flags & NLM_F_DUMP == NLM_F_DUMP
        if not dump:
            flags |= NLM_F_ACK
        for _attempt in range(DUMP_RETRIES):
            replies, interrupted = self._exchange(msg_type, flags, payload, operation)
            if not interrupted:
                return replies
        raise NetlinkError(errno.EINTR, operation, "dump kept being interrupted")

    def _exchange(
        self, msg_type: int, flags: int, payload: bytes, operation: str
    ) -> tuple[list[Message], bool]:
        try:
            seq = self.send(msg_type, flags, payload)
        except OSError as exc:
            raise NetlinkError(exc.errno or errno.EIO, operation) from exc
        replies: list[Message] = []
        interrupted = False
        deadline = time.monotonic() + (self.sock.gettimeout() or DEFAULT_TIMEOUT)
        while time.monotonic() < deadline:
            try:
                data = self.recv_datagram()
            except TimeoutError:
                break
            except OSError as exc:
                raise NetlinkError(exc.errno or errno.EIO, operation) from exc
            for msg in parse_messages(data):
                if msg.seq != seq or msg.pid not in (self.pid, 0):
                    continue  # a stale reply to an earlier, abandoned request
                if msg.flags & NLM_F_DUMP_INTR:
                    interrupted = True
                if msg.type == NLMSG_ERROR:
                    err, text = parse_error(msg)
                    if err:
                        raise NetlinkError(err, operation, text)
                    return replies, interrupted
                if msg.type == NLMSG_DONE:
                    if len(msg.payload) >= 4:
                        (code,) = struct.unpack_from("=i", msg.payload)
                        if code < 0:
                            raise NetlinkError(-code, operation)
                    return replies, interrupted
                if msg.type in (NLMSG_NOOP, NLMSG_OVERRUN):
                    continue
                replies.append(msg)
        raise NetlinkError(errno.ETIMEDOUT, operation, "no answer from the kernel")


class NetlinkClient(Closing):
    """What owns one :class:`NetlinkSocket` as ``nl`` (Rtnl, MptcpPM, the event readers)."""

    nl: NetlinkSocket

    def fileno(self) -> int:
        return self.nl.fileno()

    def close(self) -> None:
        self.nl.close()


def set_rcvbuf(sock: socket.socket, size: int) -> None:
    """Raise the receive buffer, past rmem_max when privileged."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, size)
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)


# --- generic netlink --------------------------------------------------------

GENL_ID_CTRL = 0x10
CTRL_CMD_GETFAMILY = 3
CTRL_ATTR_FAMILY_ID = 1
CTRL_ATTR_FAMILY_NAME = 2
CTRL_ATTR_VERSION = 3
CTRL_ATTR_MCAST_GROUPS = 7
CTRL_ATTR_MCAST_GRP_NAME = 1
CTRL_ATTR_MCAST_GRP_ID = 2

GENL_HDR = struct.Struct("=BBH")  # cmd, version, reserved


@dataclass(frozen=True)
class GenlFamily:
    """A resolved generic netlink family."""

    name: str
    id: int
    version: int
    mcast_groups: dict[str, int]


def genl_payload(cmd: int, version: int, attrs: Iterable[bytes] = ()) -> bytes:
    return GENL_HDR.pack(cmd, version, 0) + b"".join(attrs)


def genl_split(msg: Message) -> tuple[int, Attrs]:
    """Return (cmd, attributes) of a generic netlink message."""
    if len(msg.payload) < GENL_HDR.size:
        raise ValueError("short generic netlink message")
    cmd = msg.payload[0]
    return cmd, Attrs(msg.payload[GENL_HDR.size :])


def parse_family(attrs: Attrs) -> GenlFamily:
    groups: dict[str, int] = {}
    nest = attrs.nested(CTRL_ATTR_MCAST_GROUPS)
    if nest is not None:
        for _index, data in nest.items():
            grp = Attrs(data)
            name = grp.str(CTRL_ATTR_MCAST_GRP_NAME)
            gid = grp.u32(CTRL_ATTR_MCAST_GRP_ID)
            if name is not None and gid is not None:
                groups[name] = gid
    fid = attrs.u16(CTRL_ATTR_FAMILY_ID)
    if fid is None:
        raise ValueError("family reply without id")
    return GenlFamily(
        name=attrs.str(CTRL_ATTR_FAMILY_NAME) or "",
        id=fid,
        version=attrs.u32(CTRL_ATTR_VERSION) or 0,
        mcast_groups=groups,
    )


def resolve_family(sock: NetlinkSocket, name: str) -> GenlFamily:
    """Look up a generic netlink family (id, version, multicast groups) by name."""
    payload = genl_payload(CTRL_CMD_GETFAMILY, 1, [nla_str(CTRL_ATTR_FAMILY_NAME, name)])
    replies = sock.request(GENL_ID_CTRL, 0, payload, f"resolve genl family {name!r}")
    for msg in replies:
        _cmd, attrs = genl_split(msg)
        return parse_family(attrs)
    raise NetlinkError(errno.ENOENT, f"resolve genl family {name!r}", "empty reply")
