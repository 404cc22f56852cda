"""The ``username`` Node annotation, encrypted as WMCO writes and reads it.

WMCO (``pkg/crypto/crypto.go``) never stores a host's SSH user name in the clear: the
annotation holds an OpenPGP message (RFC 4880) symmetrically encrypted with
``golang.org/x/crypto/openpgp``, the private key from ``cloud-private-key`` (the Secret's
bytes, newlines and all) being the passphrase, ASCII-armored with the block type
``ENCRYPTED DATA``. The armor's first and last lines and the blank line are cut, the rest
trimmed of newlines, and every remaining newline replaced by ``<wmcoMarker>`` so the value
stays one line. Reading reverses that; a value that still carries the armor lines is
read too.

syncer writes the same, so WMCO can take its nodes back, and reads WMCO's, so a node
WMCO configured can be deconfigured. Decryption that fails (another key, plain text from
an old syncer) raises :class:`UsernameError`; the caller decides what that means.

Why not a library: Go's package frames its packets with partial body lengths whose first
chunk is shorter than RFC 4880's minimum of 512 octets (``partialLengthWriter``), which
conforming implementations (Sequoia) reject as malformed, and GnuPG takes no passphrase
with newlines. So the small subset involved is implemented here on ``cryptography``'s
primitives: a v4 SKESK (iterated and salted S2K, optional encrypted session key) and a
SEIPD v1 with its modification detection code around a literal (optionally compressed)
packet. The tests check it both ways against ``golang.org/x/crypto/openpgp`` itself.
"""

from __future__ import annotations

import base64
import hashlib
import os
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.decrepit.ciphers.modes import CFB
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

MARKER = "<wmcoMarker>"
TAG = "ENCRYPTED DATA"
BEGIN = f"-----BEGIN {TAG}-----"
END = f"-----END {TAG}-----"
MAX_VALUE = 64 * 1024  # an annotation value larger than this is not a user name
MAX_PLAINTEXT = 4096

# RFC 4880 9.2 symmetric algorithms (AES only, as Go and WMCO use) -> key bytes.
_AES_KEY_SIZES = {7: 16, 8: 24, 9: 32}
# RFC 4880 9.4 hash algorithms.
_HASHES: dict[int, Callable[[], hashlib._Hash]] = {
    2: hashlib.sha1, 8: hashlib.sha256, 9: hashlib.sha384, 10: hashlib.sha512,
    11: hashlib.sha224,
}
_CIPHER, _HASH, _S2K_COUNT = 9, 8, 0x60  # AES-256, SHA-256, 65536 octets
_SKESK, _SEIPD, _LITERAL, _COMPRESSED, _MDC = 3, 18, 11, 8, 19


class UsernameError(ValueError):
    """The annotation cannot be decrypted with this key."""


# --- armor ------------------------------------------------------------------------------
def _crc24(data: bytes) -> int:
    """RFC 4880 6.1."""
    crc = 0xB704CE
    for byte in data:
        crc ^= byte << 16
        for _ in range(8):
            crc <<= 1
            if crc & 0x1000000:
                crc ^= 0x1864CFB
    return crc & 0xFFFFFF


def _armor_body(message: bytes) -> str:
    body = base64.b64encode(message).decode("ascii")
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    crc = base64.b64encode(_crc24(message).to_bytes(3, "big")).decode("ascii")
    return MARKER.join([*lines, "=" + crc])


def _dearmor(value: str) -> bytes:
    text = value.replace(MARKER, "\n").strip()
    if text.startswith(BEGIN):
        text = text[len(BEGIN):]
    if text.endswith(END):
        text = text[: -len(END)]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    lines = [line for line in lines if ":" not in line]  # armor headers, if any
    checksum = lines.pop()[1:] if lines and lines[-1].startswith("=") else None
    try:
        message = base64.b64decode("".join(lines), validate=True)
    except ValueError:
        raise UsernameError("not an encrypted user name (not base64)") from None
    if checksum is not None:
        try:
            crc = int.from_bytes(base64.b64decode(checksum, validate=True), "big")
        except ValueError:
            raise UsernameError("not an encrypted user name (bad armor checksum)") from None
        if crc != _crc24(message):
            raise UsernameError("the encrypted user name is damaged (armor checksum)")
    return message


# --- packets ----------------------------------------------------------------------------
def _header(tag: int, length: int) -> bytes:
    """A new-format packet header with a definite length (RFC 4880 4.2.2)."""
    if length < 192:
        size = bytes([length])
    elif length < 8384:
        size = bytes([((length - 192) >> 8) + 192, (length - 192) & 0xFF])
    else:
        size = b"\xff" + length.to_bytes(4, "big")
    return bytes([0xC0 | tag]) + size


@dataclass(frozen=True)
class _Packet:
    tag: int
    body: bytes


def _packets(data: bytes) -> list[_Packet]:
    """Packets in ``data``, partial body lengths joined (RFC 4880 4.2)."""
    out: list[_Packet] = []
    i = 0

    def take(n: int) -> bytes:
        nonlocal i
        if n < 0 or i + n > len(data):
            raise UsernameError("the encrypted user name is truncated")
        chunk = data[i:i + n]
        i += n
        return chunk

    while i < len(data):
        first = take(1)[0]
        if not first & 0x80:
            raise UsernameError("not an OpenPGP message")
        if first & 0x40:  # new format
            tag, body = first & 0x3F, b""
            while True:
                octet = take(1)[0]
                if octet < 192:
                    body += take(octet)
                elif octet < 224:
                    body += take(((octet - 192) << 8) + take(1)[0] + 192)
                elif octet == 255:
                    body += take(int.from_bytes(take(4), "big"))
                else:  # partial body length: more chunks follow
                    body += take(1 << (octet & 0x1F))
                    continue
                break
        else:  # old format
            tag, kind = (first >> 2) & 0x0F, first & 0x03
            if kind == 3:
                body = take(len(data) - i)
            else:
                body = take(int.from_bytes(take(1 << kind), "big"))
        out.append(_Packet(tag, body))
    return out


def _s2k(passphrase: bytes, hash_id: int, salt: bytes, count: int, size: int) -> bytes:
    """The iterated and salted string-to-key (RFC 4880 3.7.1.3), ``size`` bytes."""
    make = _HASHES.get(hash_id)
    if make is None:
        raise UsernameError(f"unsupported S2K hash algorithm {hash_id}")
    material = salt + passphrase
    total = max(count, len(material))
    key = b""
    preload = 0
    while len(key) < size:
        h = make()
        h.update(b"\0" * preload)
        full, rest = divmod(total, len(material))
        h.update(material * full + material[:rest])
        key += h.digest()
        preload += 1
    return key[:size]


def _cfb(key: bytes, data: bytes, *, encrypt: bool) -> bytes:
    cipher = Cipher(algorithms.AES(key), CFB(b"\0" * 16))  # OpenPGP's CFB, zero IV
    op = cipher.encryptor() if encrypt else cipher.decryptor()
    return op.update(data) + op.finalize()


# --- the two directions ---------------------------------------------------------------
def seal(username: str, private_key: bytes) -> str:
    """The annotation value for ``username``."""
    salt, session = os.urandom(8), os.urandom(_AES_KEY_SIZES[_CIPHER])
    count = (16 + (_S2K_COUNT & 15)) << ((_S2K_COUNT >> 4) + 6)
    kek = _s2k(private_key, _HASH, salt, count, _AES_KEY_SIZES[_CIPHER])
    esk = _cfb(kek, bytes([_CIPHER]) + session, encrypt=True)
    skesk = bytes([4, _CIPHER, 3, _HASH]) + salt + bytes([_S2K_COUNT]) + esk
    data = username.encode("utf-8")
    literal_body = b"b\0" + b"\0\0\0\0" + data  # binary, no file name, no date
    literal = _header(_LITERAL, len(literal_body)) + literal_body
    prefix = os.urandom(16)
    prefix += prefix[-2:]
    mdc = hashlib.sha1(prefix + literal + b"\xd3\x14").digest()
    plain = prefix + literal + b"\xd3\x14" + mdc
    seipd = b"\x01" + _cfb(session, plain, encrypt=True)
    message = _header(_SKESK, len(skesk)) + skesk + _header(_SEIPD, len(seipd)) + seipd
    return _armor_body(message)


def unseal(value: str, private_key: bytes) -> str:
    """The user name in an annotation value. Raises UsernameError."""
    if len(value) > MAX_VALUE:
        raise UsernameError("not an encrypted user name (too long)")
    packets = _packets(_dearmor(value))
    skesk = next((p.body for p in packets if p.tag == _SKESK), None)
    seipd = next((p.body for p in packets if p.tag == _SEIPD), None)
    if skesk is None or seipd is None:
        raise UsernameError("not a symmetrically encrypted message")
    cipher_id, session = _session_key(skesk, private_key)
    if not seipd or seipd[0] != 1:
        raise UsernameError("unsupported encrypted data packet version")
    plain = _cfb(session, seipd[1:], encrypt=False)
    block = 16 if cipher_id in _AES_KEY_SIZES else 0
    if len(plain) < block + 2 + 22 or plain[block - 2:block] != plain[block:block + 2]:
        raise UsernameError("cannot decrypt the user name with this key (wrong key)")
    body, mdc = plain[:-22], plain[-22:]
    if mdc[:2] != b"\xd3\x14" or hashlib.sha1(body + b"\xd3\x14").digest() != mdc[2:]:
        raise UsernameError("the encrypted user name was modified (MDC mismatch)")
    try:
        return _literal(body[block + 2:]).decode("utf-8")
    except UnicodeDecodeError:
        raise UsernameError("the decrypted user name is not UTF-8") from None


def _session_key(skesk: bytes, passphrase: bytes) -> tuple[int, bytes]:
    if len(skesk) < 4 or skesk[0] != 4:
        raise UsernameError("unsupported symmetric-key packet")
    cipher_id, s2k_type = skesk[1], skesk[2]
    size = _AES_KEY_SIZES.get(cipher_id)
    if size is None:
        raise UsernameError(f"unsupported cipher {cipher_id}")
    if s2k_type == 3 and len(skesk) >= 13:
        hash_id, salt, c = skesk[3], skesk[4:12], skesk[12]
        count, rest = (16 + (c & 15)) << ((c >> 4) + 6), skesk[13:]
    elif s2k_type == 1 and len(skesk) >= 12:
        hash_id, salt, count, rest = skesk[3], skesk[4:12], 0, skesk[12:]
    elif s2k_type == 0 and len(skesk) >= 4:
        hash_id, salt, count, rest = skesk[3], b"", 0, skesk[4:]
    else:
        raise UsernameError(f"unsupported string-to-key type {s2k_type}")
    kek = _s2k(passphrase, hash_id, salt, count, size)
    if not rest:
        return cipher_id, kek
    decrypted = _cfb(kek, rest, encrypt=False)
    inner = _AES_KEY_SIZES.get(decrypted[0])
    if inner is None or len(decrypted) != inner + 1:
        raise UsernameError("cannot decrypt the user name with this key (wrong key)")
    return decrypted[0], decrypted[1:]


def _literal(data: bytes, depth: int = 0) -> bytes:
    """The content of the literal packet in ``data`` (inside a compressed one, maybe)."""
    for packet in _packets(data):
        if packet.tag == _LITERAL:
            body = packet.body
            if len(body) < 6:
                raise UsernameError("malformed literal data")
            start = 2 + body[1] + 4
            content = body[start:]
            if len(content) > MAX_PLAINTEXT:
                raise UsernameError("the decrypted user name is too long")
            return content
        if packet.tag == _COMPRESSED and depth == 0 and packet.body:
            algo, compressed = packet.body[0], packet.body[1:]
            if algo == 0:
                inner = compressed
            elif algo in (1, 2):
                d = zlib.decompressobj(-15 if algo == 1 else 15)
                inner = d.decompress(compressed, MAX_PLAINTEXT * 4)
            else:
                raise UsernameError(f"unsupported compression {algo}")
            return _literal(inner, depth + 1)
    raise UsernameError("no literal data in the message")
