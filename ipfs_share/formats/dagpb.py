"""dag-pb (codec 0x70): the PBNode that UnixFS nodes live in, encoded and strictly decoded.

A PBNode is a list of links and optional data. On the wire (as go-codec-dagpb writes it,
and as the dag-pb spec requires of canonical bytes) every Links entry (field 2) comes
first, then Data (field 1); inside a link Hash (1), Name (2) and Tsize (3) come in that
order. The decoder rejects anything an encoder following those rules never writes: fields
out of order or repeated, unknown fields, wrong wire types, a link without Hash, a Hash
that is not a CID, a Name that is not UTF-8, and truncated or trailing bytes.

>>> from ipfs_share.formats.cid import RAW, cid_bytes, cid_for
>>> link = PBLink(cid_bytes(cid_for(RAW, b"hello")), "", 5)
>>> block = encode_node(PBNode((link,), b"\\x08\\x02"))
>>> decode_node(block) == PBNode((link,), b"\\x08\\x02")
True
>>> decode_node(block).links[0].cid
'bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq'
"""

from __future__ import annotations

from dataclasses import dataclass

from ipfs_share.errors import FormatError
from ipfs_share.formats.cid import DAG_PB, cid_string
from ipfs_share.formats.protobuf import (
    LEN,
    VARINT,
    field_bytes,
    field_varint,
    iter_fields,
    read_varint,
)

__all__ = ["PBLink", "PBNode", "decode_node", "encode_node"]

# PBNode fields
_DATA = 1
_LINKS = 2
# PBLink fields
_HASH = 1
_NAME = 2
_TSIZE = 3

_U64 = 1 << 64

# A CIDv0 is a bare sha2-256 multihash: 0x12 (sha2-256), 0x20 (32 bytes), digest.
_V0_PREFIX = b"\x12\x20"
_V0_LENGTH = 34


def _check_cid(raw: bytes) -> None:
    """Raise FormatError unless ``raw`` is a binary CIDv1, or a CIDv0 multihash."""
    if len(raw) == _V0_LENGTH and raw.startswith(_V0_PREFIX):
        return
    if len(raw) > 4 and raw[0] == 1 and max(raw[1], raw[2], raw[3]) < 0x80:
        # The usual CIDv1 (one-byte codec, hash code and length): no varint loop needed.
        if len(raw) - 4 != raw[3]:
            raise FormatError(
                f"expected a {raw[3]}-byte digest in link Hash, found {len(raw) - 4} bytes"
            )
        return
    try:
        version, pos = read_varint(raw, 0)
        if version != 1:
            raise FormatError(
                f"expected a link Hash of CID version 1 or 0, found version {version}"
            )
        _codec, pos = read_varint(raw, pos)
        _hash_code, pos = read_varint(raw, pos)
        size, pos = read_varint(raw, pos)
    except FormatError as exc:
        raise FormatError(f"expected a CID in link Hash, found {raw[:40].hex()!r}: {exc}") from exc
    if len(raw) - pos != size:
        raise FormatError(
            f"expected a {size}-byte digest in link Hash, found {len(raw) - pos} bytes"
        )


@dataclass(frozen=True, slots=True)
class PBLink:
    """One link: the child's binary CID, a name, and the child's cumulative size.

    ``name`` and ``tsize`` may be absent (None) on the wire; go-merkledag always writes
    both, with an empty name for the links of a UnixFS file.
    """

    hash: bytes
    name: str | None = ""
    tsize: int | None = None

    def __post_init__(self) -> None:
        _check_cid(self.hash)
        if self.tsize is not None and not 0 <= self.tsize < _U64:
            raise FormatError(f"expected a link Tsize in [0, 2**64), found {self.tsize}")

    @property
    def cid(self) -> str:
        """The child's CID as a canonical string (a CIDv0 shows as its CIDv1 equal)."""
        if len(self.hash) == _V0_LENGTH and self.hash.startswith(_V0_PREFIX):
            return cid_string(b"\x01" + bytes([DAG_PB]) + self.hash)
        return cid_string(self.hash)

    def encode(self) -> bytes:
        out = field_bytes(_HASH, self.hash)
        if self.name is not None:
            out += field_bytes(_NAME, self.name.encode("utf-8"))
        if self.tsize is not None:
            out += field_varint(_TSIZE, self.tsize)
        return out


@dataclass(frozen=True, slots=True)
class PBNode:
    """A dag-pb node: links in order, then data (None when the Data field is absent)."""

    links: tuple[PBLink, ...] = ()
    data: bytes | None = None


def encode_node(node: PBNode) -> bytes:
    """The canonical bytes of ``node``: every link, then Data if present.

    >>> encode_node(PBNode(data=b"")).hex()
    '0a00'
    """
    parts = [field_bytes(_LINKS, link.encode()) for link in node.links]
    if node.data is not None:
        parts.append(field_bytes(_DATA, node.data))
    return b"".join(parts)


def _decode_link(buf: bytes) -> PBLink:
    last = 0
    hash_: bytes | None = None
    name: str | None = None
    tsize: int | None = None
    for field, wire, value in iter_fields(buf):
        if field <= last:
            raise FormatError(
                f"expected PBLink fields in order Hash, Name, Tsize once each, "
                f"found field {field} after field {last}"
            )
        last = field
        if field == _HASH and wire == LEN:
            assert isinstance(value, bytes)
            hash_ = value
        elif field == _NAME and wire == LEN:
            assert isinstance(value, bytes)
            try:
                name = value.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise FormatError(f"expected a UTF-8 link Name, found {value[:40]!r}") from exc
        elif field == _TSIZE and wire == VARINT:
            assert isinstance(value, int)
            tsize = value
        else:
            raise FormatError(f"expected PBLink field 1, 2 or 3, found field {field} (wire {wire})")
        if hash_ is None:
            raise FormatError(f"expected PBLink Hash first, found field {field}")
    if hash_ is None:
        raise FormatError("expected a PBLink Hash, found none")
    return PBLink(hash_, name, tsize)


def decode_node(block: bytes | memoryview) -> PBNode:
    """Decode dag-pb bytes strictly; raise :class:`FormatError` on anything non-canonical.

    >>> decode_node(bytes.fromhex("0a00"))
    PBNode(links=(), data=b'')
    >>> decode_node(bytes.fromhex("0a0012020a00"))
    Traceback (most recent call last):
    ...
    ipfs_share.errors.FormatError: expected PBNode Links before Data, found field 2 after Data
    """
    links: list[PBLink] = []
    data: bytes | None = None
    for field, wire, value in iter_fields(block):
        if data is not None:
            raise FormatError(f"expected PBNode Links before Data, found field {field} after Data")
        if wire != LEN or field not in (_DATA, _LINKS):
            raise FormatError(f"expected PBNode field 1 or 2, found field {field} (wire {wire})")
        assert isinstance(value, bytes)
        if field == _LINKS:
            links.append(_decode_link(value))
        else:
            data = value
    return PBNode(tuple(links), data)
