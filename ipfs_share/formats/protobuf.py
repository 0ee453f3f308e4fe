"""The little of the protobuf wire format that dag-pb, UnixFS and IPNS records use.

Only wire types 0 (varint) and 2 (length-delimited) exist in those schemas, so the reader
rejects every other wire type, truncated input and non-minimal varints: a strict parser
refuses what a canonical encoder never writes.

>>> field_varint(3, 300) + field_bytes(1, b"hi")
b'\\x18\\xac\\x02\\n\\x02hi'
>>> list(iter_fields(b'\\x18\\xac\\x02\\n\\x02hi'))
[(3, 0, 300), (1, 2, b'hi')]
"""

from __future__ import annotations

from collections.abc import Iterator

from ipfs_share.errors import FormatError
from ipfs_share.formats.cid import varint

__all__ = ["LEN", "VARINT", "field_bytes", "field_varint", "iter_fields", "read_varint"]

VARINT = 0
LEN = 2


def field_varint(field: int, value: int) -> bytes:
    return varint(field << 3 | VARINT) + varint(value)


def field_bytes(field: int, value: bytes) -> bytes:
    return varint(field << 3 | LEN) + varint(len(value)) + value


def read_varint(buf: bytes | memoryview, pos: int) -> tuple[int, int]:
    """Read a minimal unsigned varint (at most 64 bits) at ``pos``; return (value, next pos)."""
    if pos < len(buf) and buf[pos] < 0x80:  # one byte: most tags, lengths and sizes
        return buf[pos], pos + 1
    n = 0
    shift = 0
    end = min(len(buf), pos + 10)
    for i in range(pos, end):
        b = buf[i]
        n |= (b & 0x7F) << shift
        if not b & 0x80:
            if b == 0 and i != pos:
                raise FormatError("expected a minimal varint, found trailing zero bytes")
            if n >= 1 << 64:
                raise FormatError("expected a 64-bit varint, found a larger value")
            return n, i + 1
        shift += 7
    raise FormatError("expected a varint, found truncated or overlong bytes")


def iter_fields(buf: bytes | memoryview) -> Iterator[tuple[int, int, int | bytes]]:
    """Yield (field number, wire type, value) in order; bytes values are copies."""
    pos = 0
    size = len(buf)
    while pos < size:
        key, pos = read_varint(buf, pos)
        field, wire = key >> 3, key & 7
        if field == 0:
            raise FormatError("expected a field number >= 1, found 0")
        if wire == VARINT:
            value, pos = read_varint(buf, pos)
            yield field, wire, value
        elif wire == LEN:
            length, pos = read_varint(buf, pos)
            if pos + length > size:
                raise FormatError(f"expected {length} bytes for field {field}, found {size - pos}")
            yield field, wire, bytes(buf[pos : pos + length])
            pos += length
        else:
            raise FormatError(f"expected wire type 0 or 2, found {wire} for field {field}")
