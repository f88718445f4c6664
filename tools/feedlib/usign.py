"""usign's keys and signatures, as OpenWrt's opkg checks a feed index with them.  Standard library.

usign (OpenWrt's signify) signs with Ed25519 and writes three files, each a line
``untrusted comment: ...`` and a base64 line of a packed struct:

- secret key: ``"Ed" "BK"`` kdfrounds (u32, 0: no passphrase) salt[16] checksum[8] (the first
  bytes of SHA-512 of the 64 key bytes) fingerprint[8] key[64] (the 32-byte seed, then the
  public key);
- public key: ``"Ed"`` fingerprint[8] key[32];
- signature: ``"Ed"`` fingerprint[8] sig[64], an Ed25519 signature of the whole message.

The fingerprint is 8 random bytes chosen when the key is made; ``usign -F`` prints them as 16 hex
digits, and ``usign -V -P /etc/opkg/keys`` looks for the public key in the file of that name,
which is where ``opkg-key add`` puts it.  Ed25519 here is RFC 8032's arithmetic: slow (a few
milliseconds a signature), which is nothing for one Packages file.
"""

from __future__ import annotations

import base64
import hashlib
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from feedlib.common import FeedError

# --- Ed25519 (RFC 8032, section 5.1) -----------------------------------------------------------
_P = 2**255 - 19
_Q = 2**252 + 27742317777372353535851937790883648493
_D = -121665 * pow(121666, _P - 2, _P) % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)

Point = tuple[int, int, int, int]  # extended coordinates (X, Y, Z, T)


def _add(a: Point, b: Point) -> Point:
    x = (a[1] - a[0]) * (b[1] - b[0]) % _P
    y = (a[1] + a[0]) * (b[1] + b[0]) % _P
    c = 2 * a[3] * b[3] * _D % _P
    d = 2 * a[2] * b[2] % _P
    e, f, g, h = y - x, d - c, d + c, y + x
    return (e * f % _P, g * h % _P, f * g % _P, e * h % _P)


def _mul(s: int, p: Point) -> Point:
    q: Point = (0, 1, 1, 0)
    while s > 0:
        if s & 1:
            q = _add(q, p)
        p = _add(p, p)
        s >>= 1
    return q


def _recover_x(y: int, sign: int) -> int | None:
    if y >= _P:
        return None
    x2 = (y * y - 1) * pow(_D * y * y + 1, _P - 2, _P) % _P
    if x2 == 0:
        return None if sign else 0
    x = pow(x2, (_P + 3) // 8, _P)
    if (x * x - x2) % _P:
        x = x * _SQRT_M1 % _P
    if (x * x - x2) % _P:
        return None
    return _P - x if (x & 1) != sign else x


_GY = 4 * pow(5, _P - 2, _P) % _P
_GX = _recover_x(_GY, 0)
assert _GX is not None
_G: Point = (_GX, _GY, 1, _GX * _GY % _P)


def _compress(p: Point) -> bytes:
    zinv = pow(p[2], _P - 2, _P)
    x, y = p[0] * zinv % _P, p[1] * zinv % _P
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


def _decompress(b: bytes) -> Point | None:
    y = int.from_bytes(b, "little")
    sign, y = y >> 255, y & ((1 << 255) - 1)
    x = _recover_x(y, sign)
    return None if x is None else (x, y, 1, x * y % _P)


def _expand(seed: bytes) -> tuple[int, bytes]:
    h = hashlib.sha512(seed).digest()
    a = int.from_bytes(h[:32], "little")
    return (a & ((1 << 254) - 8)) | (1 << 254), h[32:]


def _hq(*parts: bytes) -> int:
    return int.from_bytes(hashlib.sha512(b"".join(parts)).digest(), "little") % _Q


def public_of(seed: bytes) -> bytes:
    return _compress(_mul(_expand(seed)[0], _G))


def ed25519_sign(seed: bytes, msg: bytes) -> bytes:
    a, prefix = _expand(seed)
    pub = _compress(_mul(a, _G))
    r = _hq(prefix, msg)
    rs = _compress(_mul(r, _G))
    return rs + ((r + _hq(rs, pub, msg) * a) % _Q).to_bytes(32, "little")


def ed25519_verify(pub: bytes, msg: bytes, sig: bytes) -> bool:
    a, r = _decompress(pub), _decompress(sig[:32])
    s = int.from_bytes(sig[32:], "little")
    if a is None or r is None or s >= _Q or len(sig) != 64:
        return False
    left, right = _mul(s, _G), _add(r, _mul(_hq(sig[:32], pub, msg), a))
    return (left[0] * right[2] - right[0] * left[2]) % _P == 0 and \
        (left[1] * right[2] - right[1] * left[2]) % _P == 0


# --- usign's files -----------------------------------------------------------------------------
_SECKEY = struct.Struct("<2s2sI16s8s8s64s")
_PUBKEY = struct.Struct("<2s8s32s")
_SIG = struct.Struct("<2s8s64s")


@dataclass(frozen=True)
class SecretKey:
    fingerprint: bytes
    seed: bytes

    @property
    def public(self) -> bytes:
        return public_of(self.seed)

    @property
    def hex(self) -> str:
        return self.fingerprint.hex()


def _file(comment: str, blob: bytes) -> str:
    return f"untrusted comment: {comment}\n{base64.b64encode(blob).decode()}\n"


def _blob(path: Path, size: int, what: str) -> bytes:
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise FeedError(f"{path}: cannot read the {what}: {e}") from None
    try:
        blob = base64.b64decode(lines[1], validate=True) if len(lines) >= 2 else b""
    except ValueError:
        blob = b""
    if not lines or not lines[0].startswith("untrusted comment:") or len(blob) != size \
            or blob[:2] != b"Ed":
        raise FeedError(f"{path} is not a usign {what} (usign -G makes one)")
    return blob


def generate(secret: Path, public: Path) -> SecretKey:
    """A new key pair, as `usign -G -s SECRET -p PUBLIC` makes it (the secret file mode 0600)."""
    key = SecretKey(os.urandom(8), os.urandom(32))
    both = key.seed + key.public
    blob = _SECKEY.pack(b"Ed", b"BK", 0, os.urandom(16), hashlib.sha512(both).digest()[:8],
                        key.fingerprint, both)
    fd = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(_file(f"private key {key.hex}", blob))
    public.write_text(_file(f"public key {key.hex}",
                            _PUBKEY.pack(b"Ed", key.fingerprint, key.public)))
    return key


def load_secret(path: Path) -> SecretKey:
    _alg, kdf, rounds, _salt, check, fp, both = _SECKEY.unpack(_blob(path, _SECKEY.size,
                                                                    "secret key"))
    if kdf != b"BK" or rounds:
        raise FeedError(f"{path}: a passphrase-protected key: usign cannot sign with it either")
    if hashlib.sha512(both).digest()[:8] != check or public_of(both[:32]) != both[32:]:
        raise FeedError(f"{path}: the secret key's checksum does not match: a damaged key")
    return SecretKey(fp, both[:32])


def load_public(path: Path) -> tuple[bytes, bytes]:
    """(fingerprint, key) of a usign public key file."""
    _alg, fp, key = _PUBKEY.unpack(_blob(path, _PUBKEY.size, "public key"))
    return fp, key


def public_text(key: SecretKey) -> str:
    """The public key file of `key` (what `usign -G` wrote beside the secret one)."""
    return _file(f"public key {key.hex}", _PUBKEY.pack(b"Ed", key.fingerprint, key.public))


def sign(msg: bytes, key: SecretKey) -> str:
    """The signature file of `msg`, as `usign -S -m MSG -s KEY` writes it."""
    return _file(f"signed by key {key.hex}",
                 _SIG.pack(b"Ed", key.fingerprint, ed25519_sign(key.seed, msg)))


def verify(msg: bytes, sig_text: str, pub_text: str) -> bool:
    """`usign -V`: does the signature check out against that public key (same fingerprint)."""
    try:
        sig = base64.b64decode(sig_text.splitlines()[1], validate=True)
        pub = base64.b64decode(pub_text.splitlines()[1], validate=True)
    except (IndexError, ValueError):
        return False
    if len(sig) != _SIG.size or len(pub) != _PUBKEY.size:
        return False
    _a, sfp, s = _SIG.unpack(sig)
    _b, pfp, p = _PUBKEY.unpack(pub)
    return sfp == pfp and ed25519_verify(p, msg, s)
