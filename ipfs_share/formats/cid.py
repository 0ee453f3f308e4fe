"""Content identifiers: compute them locally, parse them strictly, print them one way.

A CID is handled as its canonical string: CIDv1 in base32 (``b...``), the form Kubo prints
for ``--cid-version=1``. Parsing by hand is ~50x faster than ``multiformats.CID`` (which
costs ~150 us a call), and every CID we compute is sha2-256, so this module only needs the
general library for the rare inputs in other bases (CIDv0 ``Qm...``, base36 ``k...``).

>>> cid_for(RAW, b"hello")
'bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq'
>>> parse_cid('bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq').codec == RAW
True
>>> parse_cid('k51qzi5uqu5dhnwe629wdlncpql6frppdpwnz4wtlcw816aysd5wwlk63g4wmh').codec == LIBP2P_KEY
True
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import re
from dataclasses import dataclass

from ipfs_share.basex import b36decode
from ipfs_share.errors import CidInvalidError
from ipfs_share.formats.memo import Recent

__all__ = [
    "DAG_CBOR",
    "DAG_PB",
    "IDENTITY",
    "LIBP2P_KEY",
    "RAW",
    "SHA2_256",
    "ParsedCid",
    "cid_bytes",
    "cid_for",
    "cid_from_digest",
    "cid_string",
    "normalize_cid",
    "parse_cid",
    "varint",
]

# multicodec codes
RAW = 0x55
DAG_PB = 0x70
DAG_CBOR = 0x71
LIBP2P_KEY = 0x72
SHA2_256 = 0x12
IDENTITY = 0x00

_CODEC_NAMES = {RAW: "raw", DAG_PB: "dag-pb", DAG_CBOR: "dag-cbor", LIBP2P_KEY: "libp2p-key"}

_BASE36 = re.compile(r"[0-9a-z]+")

# A CID never needs more than this; anything longer is garbage or an attack.
_MAX_CID_BYTES = 128


def varint(n: int) -> bytes:
    """Unsigned LEB128, as multiformats uses it.

    >>> varint(300).hex()
    'ac02'
    """
    if n < 0:
        raise ValueError(f"varint must be non-negative, found {n}")
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    n = 0
    shift = 0
    for i in range(pos, min(len(buf), pos + 9)):
        b = buf[i]
        n |= (b & 0x7F) << shift
        if not b & 0x80:
            if b == 0 and i != pos:
                raise CidInvalidError("expected a minimal varint, found a padded one")
            return n, i + 1
        shift += 7
    raise CidInvalidError("expected a varint, found truncated or overlong bytes")


@dataclass(frozen=True, slots=True)
class ParsedCid:
    version: int
    codec: int
    hash_code: int
    digest: bytes
    raw: bytes  # the binary CID (for v0: the bare multihash)

    @property
    def codec_name(self) -> str:
        return _CODEC_NAMES.get(self.codec, hex(self.codec))

    def __str__(self) -> str:
        return cid_string(self.raw) if self.version == 1 else _v0_to_v1_string(self)


# A chain's CIDs pass through here two or three times each (the link that names a block,
# the fetch, the check of its bytes): keeping the recent ones saves a base32 pass. At most
# 2 * MEMO_SIZE of each kept, for MEMO_TTL to 2 * MEMO_TTL seconds unless used again (see
# formats/memo.py): a long-running process does not keep every CID it ever met.
MEMO_SIZE = 4096
MEMO_TTL = 60.0


def _encode_b32(data: bytes) -> str:
    text = "b" + base64.b32encode(data).decode("ascii").rstrip("=").lower()
    with contextlib.suppress(CidInvalidError):  # the text is parsed next, as a rule
        _parse_base32.remember(text, _parse_binary(data, text))
    return text


_b32 = Recent(_encode_b32, size=MEMO_SIZE, ttl=MEMO_TTL)


def cid_string(binary_cid: bytes) -> str:
    """The canonical string of a binary CIDv1."""
    return _b32(binary_cid)


def cid_from_digest(codec: int, digest: bytes, hash_code: int = SHA2_256) -> str:
    return _b32(b"\x01" + varint(codec) + varint(hash_code) + varint(len(digest)) + digest)


def cid_for(codec: int, data: bytes) -> str:
    """The CIDv1 (sha2-256) of ``data`` stored as a block of ``codec``."""
    return cid_from_digest(codec, hashlib.sha256(data).digest())


def cid_bytes(cid: str) -> bytes:
    """The binary form of a CID string (for tag-42 links and dag-pb hashes)."""
    p = parse_cid(cid)
    return p.raw if p.version == 1 else b"\x01" + varint(p.codec) + p.raw


def _v0_to_v1_string(p: ParsedCid) -> str:
    return _b32(b"\x01" + varint(p.codec) + p.raw)


def parse_cid(text: str) -> ParsedCid:
    """Parse a CID string strictly; raise :class:`CidInvalidError` with what was found."""
    if not isinstance(text, str):
        raise CidInvalidError(f"expected a CID string, found {type(text).__name__}")
    if not text or len(text) > 2 * _MAX_CID_BYTES:
        raise CidInvalidError(f"expected a CID, found {text[:80]!r}")
    if text[0] == "k" and _BASE36.fullmatch(text, 1):
        # base36 (k51... IPNS names): parsed in C, far faster than the library.
        return _parse_binary(b36decode(text[1:]), text)
    if text[0] == "b" and text.islower():
        return _parse_base32(text)
    return _parse_other_base(text)


def _decode_base32(text: str) -> ParsedCid:
    try:
        pad = "=" * (-(len(text) - 1) % 8)
        raw = base64.b32decode(text[1:].upper() + pad)
    except ValueError as exc:
        raise CidInvalidError(f"expected a base32 CID, found {text[:80]!r}") from exc
    return _parse_binary(raw, text)


_parse_base32 = Recent(_decode_base32, size=MEMO_SIZE, ttl=MEMO_TTL)  # immutable results


def _parse_other_base(text: str) -> ParsedCid:
    from multiformats import CID  # the edge: rare inputs only

    try:
        c = CID.decode(text)
    except Exception as exc:  # the library raises several unrelated types
        raise CidInvalidError(f"expected a CID, found {text[:80]!r}") from exc
    if c.version == 0:
        mh = bytes(c.digest)  # for v0, 'digest' is the full multihash
        mh_code, pos = _read_varint(mh, 0)
        size, pos = _read_varint(mh, pos)
        return ParsedCid(0, DAG_PB, mh_code, mh[pos : pos + size], mh)
    return _parse_binary(bytes(c), text)


def _parse_binary(raw: bytes, text: str) -> ParsedCid:
    if len(raw) > _MAX_CID_BYTES:
        raise CidInvalidError(f"expected a CID of at most {_MAX_CID_BYTES} bytes, found {len(raw)}")
    version, pos = _read_varint(raw, 0)
    if version != 1:
        raise CidInvalidError(f"expected CID version 1, found {version} in {text[:80]!r}")
    codec, pos = _read_varint(raw, pos)
    hash_code, pos = _read_varint(raw, pos)
    size, pos = _read_varint(raw, pos)
    digest = raw[pos:]
    if len(digest) != size:
        raise CidInvalidError(
            f"expected a {size}-byte digest, found {len(digest)} bytes in {text[:80]!r}"
        )
    return ParsedCid(1, codec, hash_code, digest, raw)


def normalize_cid(text: str) -> str:
    """The canonical (CIDv1 base32) string of any CID string.

    >>> normalize_cid('QmdfTbBqBPQ7VNxZEYEj14VmRuZBkqFbiwReogJgS1zR1n')
    'bafybeihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku'
    """
    return str(parse_cid(text))
