"""Strict DAG-CBOR: one encoding per value, so the same value always has the same CID.

The encoder writes only the canonical form (docs/spec/dag-cbor.md): definite lengths,
shortest integer heads, 64-bit floats, map keys that are text strings sorted
length-first then bytewise, and tag 42 for links and for nothing else. The decoder
accepts only what the encoder writes: it parses with cbor2 (fast, but lenient), checks
the value's types, re-encodes it and requires the bytes to be identical. Anything else
raises :class:`FormatError`; no other exception escapes :func:`decode`.

>>> link = Link("bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq")
>>> data = encode({"b": 1, "aa": [link]})
>>> data.hex()[:16]
'a261620162616181'
>>> decode(data)["aa"][0] == link
True
>>> decode(bytes.fromhex("f93c00"))  # 1.0 as a 16-bit float: refused  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
ipfs_share.errors.FormatError: expected canonical dag-cbor, found a non-canonical encoding ...
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from typing import Any, NoReturn

import cbor2

from ipfs_share.basex import b58encode
from ipfs_share.errors import FormatError
from ipfs_share.formats.cid import DAG_CBOR, cid_for, cid_string, parse_cid
from ipfs_share.formats.protobuf import read_varint

__all__ = ["MAX_BLOCK_SIZE", "MAX_DEPTH", "Link", "cid_of", "decode", "decode_trusted", "encode"]

# Kubo refuses blocks above 2 MiB, so nothing larger can ever be a block we read.
MAX_BLOCK_SIZE = 2 * 1024 * 1024
# Deep enough for any structure ipfs-share writes; shallow enough that neither cbor2 nor
# the Python walk below can exhaust the stack on hostile input.
MAX_DEPTH = 256

_CID_TAG = 42
_MIN_INT = -(2**64)  # CBOR major type 1 reaches -2^64 ...
_MAX_INT = 2**64 - 1  # ... and major type 0 reaches 2^64 - 1; beyond that needs tag 2/3
_SHA2_256_V0_PREFIX = b"\x12\x20"  # a CIDv0 is a bare sha2-256 multihash, 34 bytes

# cbor2 decodes these tags itself (dates, bignums, decimals, value sharing, the
# self-describe tag 55799 that silently unwraps ...). DAG-CBOR allows none of them, so
# each is routed to a decoder that refuses it. tests/test_dagcbor.py probes every tag
# below 70 000 to prove this list is complete for the installed cbor2.
_CBOR2_BUILTIN_TAGS = (
    0, 1, 2, 3, 4, 5, 25, 28, 29, 30, 35, 36, 37, 52, 54, 100,
    256, 258, 260, 261, 1004, 43000, 55799,
)  # fmt: skip


class Link:
    """A link to another block: a CID, written in DAG-CBOR as tag 42. Immutable.

    ``cid`` is the canonical text form: base32 ``b...`` for CIDv1 (any other base is
    converted) and base58 ``Qm...`` for CIDv0, which has no other form. Two links are
    equal when their binary CIDs are.

    >>> a = Link("bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq")
    >>> a == Link("BAFKREIBM6JG3UX5QUMHCN2B3FLC3TYU6DMLB4XA7U5BF44YEGNRJHC4YEQ".lower())
    True
    >>> a.cid
    'bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq'
    >>> bytes(Link("QmdfTbBqBPQ7VNxZEYEj14VmRuZBkqFbiwReogJgS1zR1n"))[:2].hex()
    '1220'
    """

    # The text form is computed on first use: decoding a node with 10 000 links must not
    # pay for 10 000 base32 encodings nobody reads.
    __slots__ = ("_raw", "_text")
    _raw: bytes
    _text: str

    def __init__(self, cid: str) -> None:
        parsed = parse_cid(cid)  # CidInvalidError (a ValueError) on bad input
        object.__setattr__(self, "_raw", parsed.raw)
        object.__setattr__(self, "_text", cid if parsed.version == 0 else str(parsed))

    @classmethod
    def _from_binary(cls, raw: bytes) -> Link:
        # The decoder's path: raw was already validated by _check_binary_cid.
        link = object.__new__(cls)
        object.__setattr__(link, "_raw", raw)
        return link

    @property
    def cid(self) -> str:
        """The canonical CID string."""
        try:
            return self._text
        except AttributeError:
            raw = self._raw
            if len(raw) == 34 and raw.startswith(_SHA2_256_V0_PREFIX):
                text = b58encode(raw)
            else:  # remembered: the text of a link is parsed again soon (a fetch by it)
                text = cid_string(raw)
            object.__setattr__(self, "_text", text)
            return text

    def __bytes__(self) -> bytes:
        """The binary CID (for CIDv0: the bare multihash)."""
        return self._raw

    def __eq__(self, other: object) -> bool:
        if type(other) is not Link:
            return NotImplemented
        return self._raw == other._raw

    def __hash__(self) -> int:
        return hash((Link, self._raw))

    def __repr__(self) -> str:
        return f"Link(cid={self.cid!r})"

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError(f"Link is immutable; cannot set {name!r}")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError(f"Link is immutable; cannot delete {name!r}")

    def __reduce__(self) -> tuple[type[Link], tuple[str]]:
        return (Link, (self.cid,))


def encode(obj: Any) -> bytes:
    """The canonical DAG-CBOR bytes of ``obj``.

    Accepted: ``dict`` with ``str`` keys, ``list``/``tuple``, ``str``, ``bytes``, ``int``
    in [-2^64, 2^64 - 1], finite ``float``, ``bool``, ``None`` and :class:`Link`.

    >>> encode({"bb": 1, "a": 2.5}).hex()
    'a26161fb400400000000000062626201'
    >>> encode(float("nan"))
    Traceback (most recent call last):
    ...
    ipfs_share.errors.FormatError: expected a finite float, found nan at $
    """
    _check_value(obj, keys_sorted=False)
    return _emit(obj, sort_keys=True)


def decode(data: bytes, *, max_size: int = MAX_BLOCK_SIZE) -> Any:
    """Decode canonical DAG-CBOR; raise :class:`FormatError` for anything else.

    The size is checked before any parsing, so oversize input costs nothing.

    >>> decode(bytes.fromhex("a26161f56162f6"))
    {'a': True, 'b': None}
    """
    if not isinstance(data, bytes):
        raise FormatError(f"expected dag-cbor bytes, found {type(data).__name__}")
    if len(data) > max_size:
        raise FormatError(f"expected at most {max_size} bytes of dag-cbor, found {len(data)}")
    if not data:
        raise FormatError("expected a dag-cbor value, found no bytes")
    try:
        value = cbor2.loads(
            data,
            tag_hook=_tag_hook,
            semantic_decoders=_REFUSE_BUILTIN_TAGS,
            str_errors="strict",
            max_depth=MAX_DEPTH,
            allow_indefinite=False,
            allow_duplicate_keys=False,
            strict_hashable_types=True,
        )
    except FormatError:
        raise
    except Exception as exc:
        # cbor2 reports bad input with several exception types and wraps errors raised
        # in our hooks; the contract is one error type, so translate all of them here.
        cause = exc.__cause__
        if isinstance(cause, FormatError):
            raise FormatError(cause.message) from exc
        raise FormatError(f"expected canonical dag-cbor, found {_describe(exc)}") from exc
    _check_value(value, keys_sorted=True)
    # Every check above passed, yet the bytes may still be non-canonical (long integer
    # or length heads, float16/32, trailing bytes): only the canonical re-encoding proves
    # they are not.
    again = _emit(value, sort_keys=False)
    if again != data:
        if len(again) < len(data) and data.startswith(again):
            raise FormatError(
                f"expected one dag-cbor value, found {len(data) - len(again)} trailing bytes"
            )
        raise FormatError(
            "expected canonical dag-cbor, found a non-canonical encoding "
            f"(re-encoded {len(again)} bytes differ from the {len(data)} given)"
        )
    return value


def decode_trusted(data: bytes) -> Any:
    """Decode bytes that :func:`decode` already accepted once (a local store of verified
    blocks reloading them): cbor2 with the tag-42 hook, none of the canonical checks.
    Never use it on bytes from the network.

    >>> decode_trusted(encode({"a": [1, None]}))
    {'a': [1, None]}
    """
    return cbor2.loads(data, tag_hook=_tag_hook, semantic_decoders=_REFUSE_BUILTIN_TAGS)


def cid_of(obj: Any) -> str:
    """The CIDv1 (dag-cbor, sha2-256) of ``obj``'s canonical encoding.

    >>> cid_of(None)
    'bafyreifqwkmiw256ojf2zws6tzjeonw6bpd5vza4i22ccpcq4hjv2ts7cm'
    """
    return cid_for(DAG_CBOR, encode(obj))


# --- encoding ----------------------------------------------------------------------------


def _encode_float(encoder: cbor2.CBOREncoder, value: float) -> None:
    # DAG-CBOR pins floats to 64 bits; cbor2's canonical mode would shrink them.
    if not math.isfinite(value):
        raise FormatError(f"expected a finite float, found {value!r}")
    encoder.write(b"\xfb" + struct.pack(">d", value))


def _encode_link(encoder: cbor2.CBOREncoder, link: Link) -> None:
    # The 0x00 is the multibase "identity" prefix the DAG-CBOR spec puts before the CID.
    encoder.encode_semantic(_CID_TAG, b"\x00" + link._raw)


def _refuse_type(encoder: cbor2.CBOREncoder, value: Any) -> NoReturn:
    raise FormatError(f"expected a dag-cbor data model value, found {type(value).__name__}")


_ENCODERS: dict[type, Callable[[cbor2.CBOREncoder, Any], Any]] = {
    float: _encode_float,
    Link: _encode_link,
    type(cbor2.undefined): _refuse_type,
    cbor2.CBORSimpleValue: _refuse_type,
}
_LINK_ENCODER: dict[type, Callable[[cbor2.CBOREncoder, Any], Any]] = {Link: _encode_link}


def _emit(value: Any, *, sort_keys: bool) -> bytes:
    """cbor2 writes definite lengths and shortest heads in either mode.

    ``sort_keys=True`` (encode): canonical mode sorts map keys length-first (~0.3 us a
    key), and the float hook undoes its float shrinking. ``sort_keys=False`` (the decoder's
    re-encoding): _check_value has already proved every map's keys sorted, so the map's own
    order is the canonical one; and non-canonical cbor2 writes every finite float as 64
    bits by itself, so the hook table holds links alone. (A link must be in a table: a
    type cbor2 finds in none sends it through its deferred default encoders first, which
    imports email, decimal, uuid, fractions and more, about 50 ms, before it asks
    ``default``.)
    """
    try:
        if sort_keys:
            return cbor2.dumps(value, canonical=True, encoders=_ENCODERS)
        return cbor2.dumps(value, encoders=_LINK_ENCODER, default=_encode_default)
    except FormatError:
        raise
    except Exception as exc:
        cause = exc.__cause__
        if isinstance(cause, FormatError):
            raise FormatError(cause.message) from exc
        raise FormatError(f"expected a dag-cbor data model value, found {_describe(exc)}") from exc


def _encode_default(encoder: cbor2.CBOREncoder, value: Any) -> None:
    if type(value) is Link:
        _encode_link(encoder, value)
    else:
        _refuse_type(encoder, value)


class _BadValue(Exception):
    """Raised deep in the walk; each level adds its path segment on the way out, so the
    happy path builds no path strings at all."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.segments: list[str] = []


_LEAF_TYPES = frozenset({str, bytes, bool, type(None), Link})


def _check_value(value: Any, *, keys_sorted: bool) -> None:
    """Refuse anything outside the DAG-CBOR data model before any bytes are written.

    With ``keys_sorted`` (the decoder's case) also require every map's keys to be in
    canonical order already.
    """
    try:
        _walk(value, 0, keys_sorted)
    except _BadValue as bad:
        where = "$" + "".join(reversed(bad.segments))
        raise FormatError(f"{bad.message} at {where}") from None


def _walk(value: Any, depth: int, keys_sorted: bool) -> None:
    kind = type(value)
    if kind in _LEAF_TYPES:
        return
    if kind is int:
        if not _MIN_INT <= value <= _MAX_INT:
            raise _BadValue(f"expected an integer in [-2^64, 2^64-1], found {value}")
        return
    if kind is float:
        if not math.isfinite(value):
            raise _BadValue(f"expected a finite float, found {value!r}")
        return
    if depth >= MAX_DEPTH:
        raise _BadValue(f"expected nesting of at most {MAX_DEPTH} levels, found more")
    if kind is list or kind is tuple:
        index = 0
        try:
            for index, item in enumerate(value):  # noqa: B007 (index is read on error)
                _walk(item, depth + 1, keys_sorted)
        except _BadValue as bad:
            bad.segments.append(f"[{index}]")
            raise
        return
    if kind is dict:
        previous = b""
        key: Any = None
        try:
            for key, item in value.items():
                if type(key) is not str:
                    raise _BadValue(f"expected text map keys, found {type(key).__name__}")
                if keys_sorted:
                    encoded = key.encode("utf-8")
                    if previous and (len(encoded), encoded) <= (len(previous), previous):
                        raise _BadValue(
                            "expected map keys sorted length-first then bytewise, "
                            f"found {key[:40]!r} after {previous[:40].decode(errors='replace')!r}"
                        )
                    previous = encoded
                _walk(item, depth + 1, keys_sorted)
        except _BadValue as bad:
            if type(key) is str:
                bad.segments.append(f".{key[:40]}")
            raise
        return
    raise _BadValue(f"expected a dag-cbor data model value, found {kind.__name__}")


# --- decoding ----------------------------------------------------------------------------


def _tag_hook(tag: Any, immutable: bool) -> Link:
    if tag.tag != _CID_TAG:
        raise FormatError(f"expected only tag 42 (a CID), found tag {tag.tag}")
    payload = tag.value
    if type(payload) is not bytes:
        raise FormatError(f"expected bytes inside tag 42, found {type(payload).__name__}")
    if not payload or payload[0] != 0:
        raise FormatError("expected a 0x00 multibase prefix on the tag-42 CID, found none")
    raw = payload[1:]
    _check_binary_cid(raw)
    return Link._from_binary(raw)


def _check_binary_cid(raw: bytes) -> None:
    """Accept a CIDv0 (34-byte sha2-256 multihash) or a well-formed binary CIDv1."""
    size = len(raw)
    if size == 34 and raw.startswith(_SHA2_256_V0_PREFIX):
        return
    # Fast path: version, codec, hash code and digest length each one byte (the usual
    # bafy.../bafk... CID); saves four varint calls per link.
    if size >= 4 and raw[0] == 1 and raw[1] < 0x80 and raw[2] < 0x80 and raw[3] < 0x80:
        if size - 4 != raw[3]:
            raise FormatError(f"expected a {raw[3]}-byte digest in a link, found {size - 4} bytes")
        return
    version, pos = read_varint(raw, 0)
    if version != 1:
        raise FormatError(f"expected CID version 1 (or a CIDv0) in a link, found version {version}")
    _codec, pos = read_varint(raw, pos)
    _hash, pos = read_varint(raw, pos)
    size, pos = read_varint(raw, pos)
    if len(raw) - pos != size:
        raise FormatError(f"expected a {size}-byte digest in a link, found {len(raw) - pos} bytes")


def _tag_refuser(number: int) -> Callable[[Any, bool], NoReturn]:
    def refuse(value: Any, immutable: bool) -> NoReturn:
        raise FormatError(f"expected only tag 42 (a CID), found tag {number}")

    return refuse


_REFUSE_BUILTIN_TAGS = {number: _tag_refuser(number) for number in _CBOR2_BUILTIN_TAGS}


def _describe(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]
