"""Signed dag-cbor objects: one strict decoder and one signer for every object kind.

Every object ipfs-share signs (identity document, capsule, capability token, mailbox
entry, revocation head) is a dag-cbor map with a version ``"v"`` (1, or the schema's own:
capsules are at 2) and a ``"sig"`` field::

    sig = Ed25519(signer, label || dagcbor(map without "sig"))

A :class:`Schema` names the object's label, its fields and their checks, the field that
holds the signer's did, its size limit and the lists whose length is capped. The decoder
works in a fixed order (docs/spec/README.md), and nothing cryptographic runs before the
input has passed every structural check:

1. size limit (before parsing);
2. capped list lengths, read from the CBOR heads before the list is materialized;
3. strict dag-cbor (:mod:`ipfs_share.formats.dagcbor`);
4. a map whose ``"v"`` is the schema's version; exactly the schema's keys; each field's
   type and range;
5. the expected signer, if the caller names one;
6. the signature.

>>> SCHEMA = Schema("note", b"ipfs-share/v1/example", {"by": did, "text": text(100)}, "by")
>>> key = SigningKey.from_seed(bytes(32))
>>> block = sign_object(SCHEMA, {"by": did_key(key.public_key), "text": "hi"}, key)
>>> block.cid[:7]
'bafyrei'
>>> fields = decode_signed(SCHEMA, block.data)
>>> fields["text"], fields["v"]
('hi', 1)
>>> decode_signed(SCHEMA, block.data[:-1] + b"\\x00")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
ipfs_share.errors.SignatureInvalidError: expected a valid ed25519 signature, found one ...

The same module holds the did:key codec (an identity's id) and the driver for block
walks: the DAG walkers of the mailbox and revocation modules are generators that yield
the CID they need and receive its bytes, so the same pure logic serves a synchronous
``get_block`` (tests, vectors) and the async storage layer.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

from ipfs_share.crypto.signing import SIGNATURE_SIZE, SigningKey, VerifyKey
from ipfs_share.crypto.x25519 import decode_did_key, encode_did_key
from ipfs_share.errors import (
    FormatError,
    IntegrityError,
    InvalidInputError,
    SignatureInvalidError,
)
from ipfs_share.formats import dagcbor
from ipfs_share.formats.cid import (
    DAG_CBOR,
    MEMO_TTL,
    cid_from_digest,
    cid_string,
    parse_cid,
)
from ipfs_share.formats.dagcbor import Link
from ipfs_share.formats.memo import Recent

__all__ = [
    "MAX_UINT",
    "MIN_INT",
    "PEEK_BUDGET",
    "VERSION",
    "Block",
    "BlockWalk",
    "Check",
    "KeyFor",
    "Schema",
    "block_from_bytes",
    "block_of",
    "boolean",
    "bytes_of",
    "bytes_pair",
    "check_block",
    "closed_map",
    "decode_signed",
    "decode_signed_any",
    "decode_structure",
    "did",
    "did_key",
    "encode_plain",
    "is_dag_cbor_cid",
    "link",
    "list_of",
    "nullable",
    "open_map",
    "parse_did_key",
    "peek_list_length",
    "run_walk",
    "sign_object",
    "text",
    "uint",
    "without_pairs",
]

VERSION: Final = 1
# Integers in signed objects stay within int64, though dag-cbor reaches 2^64 - 1: Go's
# IPLD codec (go-ipld-prime, in Kubo) holds integers as int64 and cannot carry the rest
# through dag-json, so an object with one would not survive a second implementation.
MAX_UINT: Final = 2**63 - 1
MIN_INT: Final = -(2**63)

# A CIDv1 of a dag-cbor block hashed with sha2-256: the only CID our own objects have.
_DAG_CBOR_CID_PREFIX: Final = b"\x01\x71\x12\x20"

Check = Callable[[Any, str], None]
"""A field check: ``check(value, path)`` returns, or raises :class:`FormatError`."""

_T = TypeVar("_T")

BlockWalk = Generator[str, bytes, _T]
"""A pure DAG walk: yields the CID of each block it needs and is sent that block's bytes."""


@dataclass(frozen=True, slots=True)
class Block:
    """An encoded block and its CID (CIDv1, dag-cbor, sha2-256)."""

    cid: str
    data: bytes = field(repr=False)


def block_from_bytes(data: bytes) -> Block:
    """Name bytes that are already a dag-cbor block by their CID."""
    return Block(cid_from_digest(DAG_CBOR, hashlib.sha256(data).digest()), data)


def block_of(value: Any) -> Block:
    """Encode ``value`` as canonical dag-cbor and name it by its CID.

    >>> block_of(None).cid
    'bafyreifqwkmiw256ojf2zws6tzjeonw6bpd5vza4i22ccpcq4hjv2ts7cm'
    """
    return block_from_bytes(dagcbor.encode(value))


# --- did:key ------------------------------------------------------------------------------


def did_key(key: VerifyKey) -> str:
    """The did:key of an Ed25519 public key (the codec is :mod:`ipfs_share.crypto.x25519`'s).

    >>> did_key(SigningKey.from_seed(bytes(32)).public_key)
    'did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp'
    """
    return encode_did_key(bytes(key))


def parse_did_key(value: str) -> VerifyKey:
    """The Ed25519 key of a did:key, accepted only in its one canonical spelling; anything
    else is a :class:`FormatError` (this is a field of a signed object).

    >>> parse_did_key("did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp")
    VerifyKey('3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29')
    """
    if type(value) is not str:
        raise FormatError(f"expected a did:key string, found {type(value).__name__}")
    return _parse_did_key(value)


def _decode_did_key(value: str) -> VerifyKey:
    try:
        key = VerifyKey(decode_did_key(value))
    except (InvalidInputError, ValueError) as exc:
        raise FormatError(f"expected an ed25519 did:key, found {value[:80]!r}") from exc
    if encode_did_key(bytes(key)) != value:  # the one spelling
        raise FormatError(f"expected a canonical ed25519 did:key, found {value[:80]!r}")
    return key


# A feed's entries all name the same signer: one decode per did, not one per entry (the
# key object is immutable; a did that does not parse raises every time, and is not kept).
# Recent, not every did ever met: strangers' introductions bring a new one each.
_parse_did_key = Recent(_decode_did_key, size=1024, ttl=MEMO_TTL)


# --- field checks -------------------------------------------------------------------------


def _fail(expected: str, value: Any, path: str) -> FormatError:
    found = type(value).__name__ if not isinstance(value, bool | int) else repr(value)
    return FormatError(f"expected {expected} at {path}, found {found}")


def uint(value: Any, path: str) -> None:
    """An integer in [0, 2^63 - 1] (a bool is not an integer here)."""
    if type(value) is not int or not 0 <= value <= MAX_UINT:
        raise _fail("an integer in [0, 2^63-1]", value, path)


def did(value: Any, path: str) -> None:
    """An Ed25519 did:key in canonical form."""
    try:
        parse_did_key(value)
    except FormatError as exc:
        raise FormatError(f"{exc.message} at {path}") from None


def boolean(value: Any, path: str) -> None:
    if type(value) is not bool:
        raise _fail("a boolean", value, path)


def bytes_of(size: int) -> Check:
    """A byte string of exactly ``size`` bytes."""

    def check(value: Any, path: str) -> None:
        if type(value) is not bytes:
            raise _fail(f"{size} bytes", value, path)
        if len(value) != size:
            raise FormatError(f"expected {size} bytes at {path}, found {len(value)}")

    return check


def text(max_bytes: int, choices: Iterable[str] | None = None) -> Check:
    """A text string of at most ``max_bytes`` UTF-8 bytes, optionally one of ``choices``."""
    allowed = None if choices is None else frozenset(choices)

    def check(value: Any, path: str) -> None:
        if type(value) is not str:
            raise _fail("a text string", value, path)
        if allowed is not None and value not in allowed:
            raise FormatError(f"expected one of {sorted(allowed)} at {path}, found {value[:40]!r}")
        if len(value) > max_bytes or len(value.encode("utf-8")) > max_bytes:
            raise FormatError(f"expected at most {max_bytes} bytes of text at {path}")

    return check


def link(codec: int | None = DAG_CBOR) -> Check:
    """A link; with ``codec`` (the default, dag-cbor), a CIDv1 of that codec and sha2-256.

    ``link(None)`` accepts any CID (content links: raw or dag-pb roots)."""

    def check(value: Any, path: str) -> None:
        if type(value) is not Link:
            raise _fail("a link", value, path)
        if codec is None:
            return
        raw = bytes(value)
        if not (len(raw) == 36 and raw[0] == 1 and raw[1] == codec and raw[2:4] == b"\x12\x20"):
            raise FormatError(
                f"expected a CIDv1 (codec {codec:#x}, sha2-256) at {path}, found {value.cid[:80]}"
            )

    return check


def dag_cbor_cid_bytes(value: Any, path: str) -> None:
    """A binary CIDv1 of a dag-cbor block (sha2-256, 36 bytes) held as bytes, not as a
    link: an ID that a pin of the object must not follow (a revoked capsule)."""
    if type(value) is not bytes or not is_dag_cbor_cid(value):
        raise FormatError(
            f"expected a 36-byte binary CIDv1 (dag-cbor, sha2-256) at {path}, "
            f"found {type(value).__name__}"
        )


def nullable(inner: Check) -> Check:
    def check(value: Any, path: str) -> None:
        if value is not None:
            inner(value, path)

    return check


def list_of(item: Check, max_count: int, *, min_count: int = 0) -> Check:
    def check(value: Any, path: str) -> None:
        if type(value) is not list:
            raise _fail("a list", value, path)
        if not min_count <= len(value) <= max_count:
            wanted = f"{min_count} to {max_count}" if min_count < max_count else f"{max_count}"
            raise FormatError(f"expected {wanted} items at {path}, found {len(value)}")
        for i, element in enumerate(value):
            item(element, f"{path}[{i}]")

    return check


def closed_map(fields: Mapping[str, Check]) -> Check:
    """A map with exactly these keys, each passing its check."""

    def check(value: Any, path: str) -> None:
        if type(value) is not dict:
            raise _fail("a map", value, path)
        _check_keys(value, fields.keys(), path)
        for key, inner in fields.items():
            inner(value[key], f"{path}.{key}")

    return check


def open_map(value: Any, path: str) -> None:
    """Any map of dag-cbor data except floats and integers outside int64 (its contents
    already passed strict dag-cbor). Floats are refused because dag-json, the other IPLD
    codec, writes an integral float such as 1.0 as 1, which reads back as an integer; big
    integers because Go's codec holds int64 only. A signed object holding either would
    change its bytes and CID on a trip through Kubo 0.43 (tests/test_kubo_crosscheck.py)."""
    if type(value) is not dict:
        raise _fail("a map", value, path)
    pending: list[Any] = [value]
    while pending:
        item = pending.pop()
        kind = type(item)
        if kind is float:
            raise FormatError(f"expected no floats in {path}, found {item!r}")
        if kind is int and not MIN_INT <= item <= MAX_UINT:
            raise FormatError(f"expected integers within int64 in {path}, found {item}")
        if kind is dict:
            pending.extend(item.values())
        elif kind is list:
            pending.extend(item)


def _check_keys(value: dict[str, Any], expected: Iterable[str], path: str) -> None:
    wanted = set(expected)
    found = value.keys()
    if found == wanted:
        return
    missing = sorted(wanted - found)
    extra = sorted(found - wanted)
    parts = []
    if missing:
        parts.append(f"missing {', '.join(repr(k) for k in missing)}")
    if extra:
        parts.append(f"unknown {', '.join(repr(k[:40]) for k in extra[:5])}")
    raise FormatError(f"expected keys {sorted(wanted)} at {path}, found {'; '.join(parts)}")


# --- schemas, signing and decoding --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Schema:
    """One kind of object.

    ``fields`` are the keys besides ``"v"`` (and ``"sig"``); ``version`` is the value of
    ``"v"`` (:data:`VERSION` unless the kind moved on); ``signer`` names the field
    that holds the signer's did, or is ``None`` for an unsigned object (a revocation trie
    node, protected by the signed head that links to it); ``max_counts`` caps top-level
    lists, checked from the CBOR heads before anything is decoded; ``rules`` checks
    relations between fields (after the field checks, before the signature).
    """

    name: str
    label: bytes
    fields: Mapping[str, Check]
    signer: str | None
    max_size: int = 64 * 1024
    max_counts: Mapping[str, int] = field(default_factory=dict)
    rules: Callable[[dict[str, Any]], None] | None = None
    version: int = VERSION

    @property
    def keys(self) -> frozenset[str]:
        signed = {"sig"} if self.signer is not None else set()
        return frozenset(self.fields) | {"v"} | signed


def sign_object(schema: Schema, fields: Mapping[str, Any], key: SigningKey) -> Block:
    """Check ``fields`` against ``schema``, add ``"v"`` and the signature, encode.

    The writer applies the same checks as the reader, so an object this returns always
    decodes; the signer's did must be the one named in ``fields``.
    """
    if schema.signer is None:
        raise TypeError(f"{schema.name} is not a signed object; use encode_plain")
    body: dict[str, Any] = {"v": schema.version, **fields}
    _check_keys({**body, "sig": b""}, schema.keys, schema.name)
    _check_fields(schema, body)
    if body[schema.signer] != did_key(key.public_key):
        raise SignatureInvalidError(
            f"expected the key of {schema.name}.{schema.signer}, found another key"
        )
    body["sig"] = key.sign(schema.label + dagcbor.encode(body))
    return _sized(schema, block_of(body))


def encode_plain(schema: Schema, fields: Mapping[str, Any]) -> Block:
    """Check ``fields`` against an unsigned ``schema``, add ``"v"``, encode."""
    body: dict[str, Any] = {"v": schema.version, **fields}
    _check_keys(body, schema.keys, schema.name)
    _check_fields(schema, body)
    return _sized(schema, block_of(body))


def _sized(schema: Schema, block: Block) -> Block:
    if len(block.data) > schema.max_size:
        raise FormatError(
            f"expected at most {schema.max_size} bytes for {schema.name}, found {len(block.data)}"
        )
    return block


KeyFor = Callable[[str], VerifyKey]
"""Maps the signer an object names to the key its signature must verify under (raising
:class:`SignatureInvalidError` for a signer that is not accepted)."""


def decode_signed(
    schema: Schema, data: bytes, *, signer: str | None = None, keys: KeyFor | None = None
) -> dict[str, Any]:
    """Decode and verify one signed object; return its fields (``"v"`` and ``"sig"`` too).

    ``signer``, if given, is the did the caller expects in the signer field; another did
    is refused with :class:`SignatureInvalidError` before the signature is checked.
    ``keys`` maps the named signer to its verifying key (default: the did:key itself).
    """
    return decode_signed_any((schema,), data, signer=signer, keys=keys)[1]


def decode_signed_any(
    schemas: tuple[Schema, ...],
    data: bytes,
    *,
    signer: str | None = None,
    keys: KeyFor | None = None,
    verify: bool = True,
) -> tuple[Schema, dict[str, Any]]:
    """Like :func:`decode_signed` for an object that may be one of several kinds; the
    version and the key set pick the kind. All ``schemas`` share one label.

    ``verify=False`` skips the signature (every other check stays): only for bytes this
    program verified before and kept, such as a feed reader's staged progress."""
    schema, value = decode_structure(schemas, data)
    assert schema.signer is not None, "decode_signed is for signed schemas"
    claimed = value[schema.signer]
    if signer is not None and claimed != signer:
        raise SignatureInvalidError(
            f"expected {schema.name} signed by {signer}, found one signed by {claimed}"
        )
    if verify:
        key = parse_did_key(claimed) if keys is None else keys(claimed)
        key.verify(schema.label + _unsigned(data, value), value["sig"])
    return schema, value


# The "sig" pair of a signed map as canonical dag-cbor writes it: the text "sig", then the
# head of a 64-byte byte string (the signature follows): bytes_pair("sig", sig)[:6].
_SIG_PAIR: Final = b"\x63sig\x58\x40"


def _unsigned(data: bytes, value: dict[str, Any]) -> bytes:
    """What the signature of ``value`` covers: the canonical bytes of the map without
    ``"sig"`` (:func:`without_pairs`, else the map encoded again).

    >>> body = {"by": "me", "v": 1}
    >>> signed = dagcbor.encode({**body, "sig": bytes(64)})
    >>> _unsigned(signed, dagcbor.decode(signed)) == dagcbor.encode(body)
    True
    """
    cut = without_pairs(data, [_SIG_PAIR + value["sig"]])
    if cut is not None:
        return cut
    return dagcbor.encode({k: v for k, v in value.items() if k != "sig"})


def bytes_pair(key: str, value: bytes) -> bytes:
    """A map pair ``key: value`` (a byte string) as canonical dag-cbor writes it, for
    :func:`without_pairs` (keys under 24 bytes, values under 256).

    >>> bytes_pair("sig", bytes(64))[:6] == _SIG_PAIR
    True
    """
    name = key.encode()
    assert len(name) < 24 and len(value) < 256
    head = bytes((0x40 + len(value),)) if len(value) < 24 else bytes((0x58, len(value)))
    return bytes((0x60 + len(name),)) + name + head + value


def without_pairs(data: bytes, pairs: Sequence[bytes]) -> bytes | None:
    """The canonical bytes of a map without some of its pairs, cut from its canonical
    encoding ``data`` (the decoder proved it canonical): the other pairs keep their bytes
    and their order, the count is less by as many. Each pair's bytes (its key, then its
    value: a signature, a commitment) must occur exactly once in ``data`` (then that
    occurrence is the pair), and the count fit the one-byte head; else None (encode the
    map again).

    >>> m = dagcbor.encode({"a": 1, "commit": bytes(32), "sig": bytes(64)})
    >>> cut = without_pairs(m, [bytes_pair("sig", bytes(64)), bytes_pair("commit", bytes(32))])
    >>> cut == dagcbor.encode({"a": 1})
    True
    """
    if not data or not 0xA0 + len(pairs) <= data[0] <= 0xB7:
        return None
    spans: list[tuple[int, int]] = []
    for pair in pairs:
        at = data.find(pair)
        if at <= 0 or data.find(pair, at + 1) >= 0:
            return None
        spans.append((at, at + len(pair)))
    spans.sort()
    out = [bytes((data[0] - len(pairs),))]
    start = 1
    for at, end in spans:
        if at < start:  # overlapping: not two pairs
            return None
        out.append(data[start:at])
        start = end
    out.append(data[start:])
    return b"".join(out)


def decode_structure(schemas: tuple[Schema, ...], data: bytes) -> tuple[Schema, dict[str, Any]]:
    """Steps 1-4 of the decoder (everything but the signature): size, capped list
    lengths, strict dag-cbor, version, key set (which picks the schema), fields, rules.
    For an unsigned schema this is the whole decoder."""
    first = schemas[0]
    if type(data) is not bytes:
        raise FormatError(f"expected {first.name} bytes, found {type(data).__name__}")
    limit = max(s.max_size for s in schemas)
    if len(data) > limit:
        raise FormatError(f"expected at most {limit} bytes for {first.name}, found {len(data)}")
    caps: dict[str, tuple[int, str]] = {}
    for schema in schemas:  # the smallest cap of a list, peeked once
        for key, cap in schema.max_counts.items():
            if key not in caps or cap < caps[key][0]:
                caps[key] = (cap, schema.name)
    for key, (cap, name) in caps.items():
        # Every item takes a byte at least: input no longer than the cap cannot hold a
        # longer list (one that declares more is cut short, which the decoder refuses
        # without allocating it), and the peek, item by item in Python, would only cost.
        count = peek_list_length(data, key) if len(data) > cap else None
        if count is not None and count > cap:
            raise FormatError(f"expected at most {cap} items in {name}.{key}, found {count}")
    value = dagcbor.decode(data, max_size=limit)
    if type(value) is not dict:
        raise FormatError(f"expected {first.name} as a map, found {type(value).__name__}")
    version = value.get("v")
    # The version, then the key set, pick the schema: a kind may still read an older
    # version (a capsule of version 2) beside the one it writes.
    same = tuple(s for s in schemas if s.version == version) if type(version) is int else ()
    if not same:
        versions = " or ".join(str(v) for v in dict.fromkeys(s.version for s in schemas))
        raise FormatError(f"expected {first.name} version {versions}, found {version!r:.40}")
    schema = _pick_schema(same, value)
    if len(data) > schema.max_size:  # kinds of one family may have their own limits
        raise FormatError(
            f"expected at most {schema.max_size} bytes for {schema.name}, found {len(data)}"
        )
    _check_fields(schema, value)
    return schema, value


def _pick_schema(schemas: tuple[Schema, ...], value: dict[str, Any]) -> Schema:
    for schema in schemas:
        if value.keys() == schema.keys:
            return schema
    # Report against the nearest kind, so the message names the real difference.
    nearest = min(schemas, key=lambda s: len(s.keys ^ value.keys()))
    _check_keys(value, nearest.keys, nearest.name)
    raise AssertionError("unreachable: the key sets differ")


def _check_fields(schema: Schema, value: dict[str, Any]) -> None:
    for key, check in schema.fields.items():
        check(value[key], f"{schema.name}.{key}")
    if schema.signer is not None:
        _SIGNATURE(value.get("sig", bytes(SIGNATURE_SIZE)), f"{schema.name}.sig")
    if schema.rules is not None:
        schema.rules(value)


_SIGNATURE: Final = bytes_of(SIGNATURE_SIZE)


# --- reading a list's length from the CBOR heads ------------------------------------------


# How many CBOR items peek_list_length walks past before giving up. Walking is Python and
# costs about as much per item as cbor2 does per kilobyte, so a budget keeps a hostile
# input from making the peek dearer than the decode it is meant to spare. Honest capsules
# put a few dozen items before their stanzas.
PEEK_BUDGET: Final = 4096


def peek_list_length(data: bytes, key: str) -> int | None:
    """The declared length of the list under top-level ``key`` of a CBOR map, read from the
    heads alone (nothing is decoded or allocated); ``None`` if the key is absent, not a
    list, or more than :data:`PEEK_BUDGET` items away (the caller's field check then
    applies the same limit after decoding, still before any crypto). Malformed input
    raises :class:`FormatError`.

    This is what lets a decoder refuse a capsule with too many stanzas before parsing it.

    >>> peek_list_length(dagcbor.encode({"a": b"x", "list": [1, 2, 3]}), "list")
    3
    """
    major, count, pos = _head(data, 0)
    if major != 5:
        return None
    wanted = key.encode("utf-8")
    wanted_order = (len(wanted), wanted)
    last: tuple[int, bytes] | None = None
    budget = PEEK_BUDGET
    for _ in range(min(count, budget)):
        major, size, pos = _head(data, pos)
        if major != 3:
            return None  # not a dag-cbor map; the strict decoder says so
        name = data[pos : pos + size]
        pos += size
        order = (len(name), name)
        # dag-cbor sorts map keys (shorter first, then bytewise): past the place of the
        # wanted key, it is not there. Keys out of order are refused here, as the strict
        # decoder would, so no input can hide its list further on.
        if last is not None and not last < order:
            raise FormatError("expected dag-cbor map keys in canonical order, found them unsorted")
        last = order
        if name == wanted:
            major, length, _ = _head(data, pos)
            return length if major == 4 else None
        if order > wanted_order:
            return None
        pos, budget = _skip(data, pos, budget)
        if budget <= 0:
            return None
    return None


def _head(data: bytes, pos: int) -> tuple[int, int, int]:
    if pos >= len(data):
        raise FormatError("expected a dag-cbor value, found truncated input")
    initial = data[pos]
    major, info = initial >> 5, initial & 0x1F
    if info < 24:
        return major, info, pos + 1
    if info > 27:
        raise FormatError(f"expected a definite-length dag-cbor head, found {initial:#04x}")
    width = 1 << (info - 24)
    end = pos + 1 + width
    if end > len(data):
        raise FormatError("expected a dag-cbor value, found truncated input")
    return major, int.from_bytes(data[pos + 1 : end], "big"), end


def _skip(data: bytes, pos: int, budget: int) -> tuple[int, int]:
    """Skip one CBOR item without recursion (a counter of items still to skip), spending
    one unit of ``budget`` per item; stop early when it runs out."""
    pending = 1
    while pending and budget > 0:
        major, arg, pos = _head(data, pos)
        pending -= 1
        budget -= 1
        if major in (2, 3):
            pos += arg
        elif major == 4:
            pending += arg
        elif major == 5:
            pending += 2 * arg
        elif major == 6:
            pending += 1
        # Each pending item takes at least one byte: more than remain means a lie.
        if pos > len(data) or pending > len(data) - pos:
            raise FormatError("expected a dag-cbor value, found truncated input")
    return pos, budget


# --- block walks --------------------------------------------------------------------------


def run_walk(walk: BlockWalk[_T], get_block: Callable[[str], bytes]) -> _T:
    """Drive a pure walk with a synchronous block source; every block is checked against
    its CID before the walk sees it (:class:`IntegrityError` otherwise).

    An async caller drives the same generator with ``await storage.block_get(cid)``
    and :func:`check_block`.
    """
    try:
        cid = next(walk)
        while True:
            cid = walk.send(check_block(cid, get_block(cid)))
    except StopIteration as done:
        result: _T = done.value
        return result


def check_block(cid: str, data: bytes) -> bytes:
    """Return ``data`` if it is the dag-cbor block ``cid`` names; else raise
    :class:`IntegrityError` (a store that lies could otherwise make a DAG loop)."""
    actual = _DAG_CBOR_CID_PREFIX + hashlib.sha256(data).digest()
    if parse_cid(cid).raw != actual:  # binary forms: no text made for a block that matches
        raise IntegrityError(f"expected the block {cid}, found bytes of {cid_string(actual)}")
    return data


def is_dag_cbor_cid(raw: bytes) -> bool:
    """True if ``raw`` is a binary CIDv1 of a dag-cbor block hashed with sha2-256."""
    return len(raw) == 36 and raw.startswith(_DAG_CBOR_CID_PREFIX)
