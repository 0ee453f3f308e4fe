"""IPNS records (V2), built and signed in Python, verified strictly.

Identity and mailbox keys never enter Kubo's keystore (the node may be shared), so
ipfs-share makes the signed record itself and hands Kubo the bytes (``name/put``). The
format is the IPNS record spec (specs.ipfs.tech/ipns/ipns-record/);
docs/spec/ipns-record.md states exactly what is written and what is accepted. Records are
V2-only: no V1 compatibility fields.

>>> from datetime import UTC, datetime, timedelta
>>> key = SigningKey.from_seed(bytes(32))
>>> name = ipns_name(key.public_key)
>>> name
'k51qzi5uqu5dhnwe629wdlncpql6frppdpwnz4wtlcw816aysd5wwlk63g4wmh'
>>> now = datetime(2026, 11, 22, tzinfo=UTC)
>>> record = make_record(key, "/ipfs/bafkqaaa", sequence=7, validity=timedelta(hours=1),
...                      ttl_seconds=60, now=now)
>>> checked = verify_record(name, record, now=now)
>>> checked.value, checked.sequence, checked.ttl.total_seconds()
('/ipfs/bafkqaaa', 7, 60.0)
>>> format_rfc3339(checked.validity)
'2026-11-22T01:00:00Z'
>>> verify_record(name, record, now=now + timedelta(hours=2))  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
ipfs_share.errors.IpnsRecordExpiredError: expected a record valid after ..., found it expired ...
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Final, TypeVar

from ipfs_share.basex import b36encode
from ipfs_share.crypto.labels import IPNS_SIGNATURE_V2_PREFIX
from ipfs_share.crypto.signing import PUBLIC_KEY_SIZE, SigningKey, VerifyKey
from ipfs_share.errors import (
    CidInvalidError,
    FormatError,
    IpnsRecordExpiredError,
    IpnsRecordInvalidError,
    SignatureInvalidError,
)
from ipfs_share.formats import dagcbor
from ipfs_share.formats.cid import IDENTITY, LIBP2P_KEY, parse_cid, varint
from ipfs_share.formats.protobuf import LEN, VARINT, field_bytes, field_varint, iter_fields

__all__ = [
    "MAX_RECORD_SIZE",
    "IpnsRecord",
    "ipns_name",
    "make_record",
    "parse_ipns_name",
    "verify_record",
]

# The spec's limit: implementations MUST handle records up to 10 KiB and MAY drop larger.
MAX_RECORD_SIZE: Final = 10 * 1024

# libp2p crypto.proto KeyType; only Ed25519 names are ours to resolve.
_KEY_TYPE_ED25519 = 1
_VALIDITY_EOL = 0
_NS = 1_000_000_000
_MAX_U64 = 2**64 - 1

# IpnsEntry protobuf field numbers (spec: "Record Serialization Format").
_F_VALUE, _F_SIGNATURE_V1, _F_VALIDITY_TYPE, _F_VALIDITY = 1, 2, 3, 4
_F_SEQUENCE, _F_TTL, _F_PUBKEY, _F_SIGNATURE_V2, _F_DATA = 5, 6, 7, 8, 9
_WIRE_TYPES = {
    _F_VALUE: LEN,
    _F_SIGNATURE_V1: LEN,
    _F_VALIDITY_TYPE: VARINT,
    _F_VALIDITY: LEN,
    _F_SEQUENCE: VARINT,
    _F_TTL: VARINT,
    _F_PUBKEY: LEN,
    _F_SIGNATURE_V2: LEN,
    _F_DATA: LEN,
}
_V1_FIELDS = (_F_VALUE, _F_SIGNATURE_V1, _F_VALIDITY_TYPE, _F_VALIDITY, _F_SEQUENCE, _F_TTL)

# RFC 3339 as Go's time.RFC3339Nano writes and parses it: optional 1-9 fraction digits,
# "Z" or a numeric offset. Anything looser (lower-case t/z, spaces) is refused.
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})"
)
_VALUE_PREFIXES = ("/ipfs/", "/ipns/")

_In = TypeVar("_In")
_Out = TypeVar("_Out")


@dataclass(frozen=True, slots=True)
class IpnsRecord:
    """What a verified record says. ``validity`` is the end of life (UTC, to the
    microsecond; nanoseconds are dropped, which only makes it earlier); ``ttl`` is the
    caching hint."""

    value: str
    sequence: int
    validity: datetime
    ttl: timedelta


def ipns_name(verify_key: VerifyKey) -> str:
    """The IPNS name of an Ed25519 key: CIDv1(libp2p-key, identity(PublicKey protobuf))
    in base36, the ``k51...`` form Kubo prints."""
    return "k" + b36encode(_name_cid_bytes(verify_key))


def parse_ipns_name(name: str) -> VerifyKey:
    """The Ed25519 key an IPNS name embeds; ``/ipns/`` prefix allowed.

    Accepts the name as a CIDv1 in any multibase (``k51...`` base36, ``bafzaa...``
    base32). Refuses anything but a libp2p-key CID with an identity multihash of an
    Ed25519 ``PublicKey``: hashed names (RSA) and other key types cannot be verified
    from the name alone.

    >>> key = SigningKey.from_seed(bytes(32)).public_key
    >>> parse_ipns_name("/ipns/" + ipns_name(key)) == key
    True
    """
    if not isinstance(name, str):
        raise FormatError(f"expected an IPNS name as text, found {type(name).__name__}")
    text = name.removeprefix("/ipns/")
    try:
        parsed = parse_cid(text)
    except CidInvalidError as exc:
        raise FormatError(f"expected an IPNS name (k51...), found {text[:80]!r}") from exc
    if parsed.version != 1 or parsed.codec != LIBP2P_KEY:
        raise FormatError(
            f"expected a libp2p-key (0x72) CIDv1, found codec {parsed.codec_name} "
            f"version {parsed.version}"
        )
    if parsed.hash_code != IDENTITY:
        raise FormatError(
            f"expected an identity multihash (an inlined ed25519 key), found hash code "
            f"{parsed.hash_code:#x}"
        )
    return _parse_public_key(parsed.digest)


def make_record(
    signing_key: SigningKey,
    value: str,
    *,
    sequence: int,
    validity: datetime | timedelta,
    ttl_seconds: int,
    now: datetime | None = None,
) -> bytes:
    """A signed V2 IPNS record (``IpnsEntry`` protobuf bytes) pointing at ``value``.

    ``validity`` is the end of life, or a lifetime counted from ``now`` (default: the
    current time). ``ttl_seconds`` is how long resolvers may cache the record.
    """
    if not isinstance(value, str) or not value.startswith(_VALUE_PREFIXES):
        raise FormatError(f"expected a value starting /ipfs/ or /ipns/, found {value!r:.80}")
    if type(sequence) is not int or not 0 <= sequence <= _MAX_U64:
        raise FormatError(f"expected a sequence in [0, 2^64-1], found {sequence!r}")
    if type(ttl_seconds) is not int or not 0 <= ttl_seconds * _NS <= _MAX_U64:
        raise FormatError(f"expected ttl_seconds in [0, {_MAX_U64 // _NS}], found {ttl_seconds!r}")
    if isinstance(validity, timedelta):
        start = datetime.now(UTC) if now is None else _aware(now, "now")
        try:
            eol = start + validity
        except OverflowError:
            raise FormatError(
                f"expected a lifetime ending before year 10000, found {validity}"
            ) from None
    else:
        eol = _aware(validity, "validity")
    data = dagcbor.encode(
        {
            "Value": value.encode("utf-8"),
            "Validity": format_rfc3339(eol).encode("ascii"),
            "ValidityType": _VALIDITY_EOL,
            "Sequence": sequence,
            "TTL": ttl_seconds * _NS,
        }
    )
    signature = signing_key.sign(IPNS_SIGNATURE_V2_PREFIX + data)
    # The Ed25519 key is inlined in the name, so pubKey (field 7) is left out, as the spec
    # says it SHOULD be; V1 fields are left out too (docs/spec/ipns-record.md says why).
    record = field_bytes(_F_SIGNATURE_V2, signature) + field_bytes(_F_DATA, data)
    if len(record) > MAX_RECORD_SIZE:
        raise FormatError(
            f"expected a record of at most {MAX_RECORD_SIZE} bytes, found {len(record)}"
        )
    return record


def verify_record(name: str, record: bytes, *, now: datetime) -> IpnsRecord:
    """Check ``record`` for ``name`` in the spec's order, failing on the first problem
    with :class:`IpnsRecordInvalidError`: size, protobuf, data (strict dag-cbor),
    signature V2 by the name's key, V1 fields (if any) equal to the data, not expired.
    """
    key = parse_ipns_name(name)  # a bad name is the caller's input error, not the record's
    now = _aware(now, "now")
    if not isinstance(record, bytes):
        raise IpnsRecordInvalidError(f"expected the record as bytes, found {type(record).__name__}")
    if len(record) > MAX_RECORD_SIZE:
        raise IpnsRecordInvalidError(
            f"expected a record of at most {MAX_RECORD_SIZE} bytes, found {len(record)}"
        )
    fields = _parse_entry(record)
    signature = fields.get(_F_SIGNATURE_V2)
    data = fields.get(_F_DATA)
    if not isinstance(signature, bytes) or not isinstance(data, bytes) or not signature or not data:
        raise IpnsRecordInvalidError("expected non-empty signatureV2 and data, found them missing")
    pubkey = fields.get(_F_PUBKEY)
    if isinstance(pubkey, bytes):
        embedded = _record_error(_parse_public_key, pubkey)
        if embedded != key:
            raise IpnsRecordInvalidError("expected pubKey to be the name's key, found another key")
    entries = _parse_data(data)
    try:
        key.verify(IPNS_SIGNATURE_V2_PREFIX + data, signature)
    except SignatureInvalidError:
        raise IpnsRecordInvalidError(
            "expected signatureV2 by the name's key, found one that does not verify"
        ) from None
    if any(number in fields for number in _V1_FIELDS):
        _check_v1_fields(fields, entries)
    if entries["ValidityType"] != _VALIDITY_EOL:
        raise IpnsRecordInvalidError(
            f"expected ValidityType 0 (EOL), found {entries['ValidityType']}"
        )
    eol = _record_error(parse_rfc3339, entries["Validity"])
    if not eol > now:
        raise IpnsRecordExpiredError(
            f"expected a record valid after {format_rfc3339(now)}, found it expired at "
            f"{format_rfc3339(eol)}"
        )
    try:
        value = entries["Value"].decode("utf-8")
    except UnicodeDecodeError:
        raise IpnsRecordInvalidError("expected Value to be UTF-8 text, found other bytes") from None
    ttl = timedelta(microseconds=entries["TTL"] // 1000)
    return IpnsRecord(value=value, sequence=entries["Sequence"], validity=eol, ttl=ttl)


# --- time ---------------------------------------------------------------------------------


def format_rfc3339(moment: datetime) -> str:
    """UTC RFC 3339 with the fraction trimmed, as Go's ``time.RFC3339Nano`` writes it.

    >>> format_rfc3339(datetime(2026, 1, 2, 3, 4, 5, 120000, tzinfo=UTC))
    '2026-01-02T03:04:05.12Z'
    """
    utc = _aware(moment, "time").astimezone(UTC)
    text = (
        f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}"
        f"T{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}"
    )
    if utc.microsecond:
        text += "." + f"{utc.microsecond:06d}".rstrip("0")
    return text + "Z"


def parse_rfc3339(raw: bytes) -> datetime:
    """Parse an RFC 3339 timestamp (as bytes) to an aware UTC datetime, strictly.

    >>> parse_rfc3339(b"2023-05-02T13:43:41.262136727Z")
    datetime.datetime(2023, 5, 2, 13, 43, 41, 262136, tzinfo=datetime.timezone.utc)
    """
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise FormatError("expected an ASCII RFC 3339 time, found other bytes") from None
    match = _RFC3339.fullmatch(text)
    if not match:
        raise FormatError(f"expected an RFC 3339 time, found {text[:64]!r}")
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    micro = int((fraction or "0").ljust(9, "0")[:6])  # truncating nanoseconds: never later
    if zone == "Z":
        tz = UTC
    else:
        sign = 1 if zone[0] == "+" else -1
        tz = timezone(sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6])))
    try:
        moment = datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second), micro, tz
        )
    except ValueError as exc:  # month 13, second 60 (Python has no leap seconds) ...
        raise FormatError(f"expected a valid RFC 3339 time, found {text[:64]!r}") from exc
    return moment.astimezone(UTC)


def _aware(moment: datetime, what: str) -> datetime:
    if not isinstance(moment, datetime) or moment.tzinfo is None:
        raise FormatError(f"expected {what} as a timezone-aware datetime, found {moment!r:.60}")
    return moment


# --- keys and names -----------------------------------------------------------------------


def _public_key_protobuf(key: VerifyKey) -> bytes:
    return field_varint(1, _KEY_TYPE_ED25519) + field_bytes(2, bytes(key))


def _name_cid_bytes(key: VerifyKey) -> bytes:
    digest = _public_key_protobuf(key)
    return varint(1) + varint(LIBP2P_KEY) + varint(IDENTITY) + varint(len(digest)) + digest


def _parse_public_key(raw: bytes) -> VerifyKey:
    """A libp2p ``PublicKey`` protobuf holding an Ed25519 key, in its one canonical form."""
    try:
        fields = list(iter_fields(raw))
    except FormatError as exc:
        raise FormatError(f"expected a libp2p PublicKey protobuf, found {exc.message}") from exc
    key_type = next((v for n, w, v in fields if n == 1 and w == VARINT), None)
    if key_type != _KEY_TYPE_ED25519:
        raise FormatError(f"expected an ed25519 public key (type 1), found key type {key_type!r}")
    data = next((v for n, w, v in fields if n == 2 and w == LEN), b"")
    if not isinstance(data, bytes) or len(data) != PUBLIC_KEY_SIZE:
        size = len(data) if isinstance(data, bytes) else "no"
        raise FormatError(f"expected a {PUBLIC_KEY_SIZE}-byte ed25519 key, found {size} bytes")
    key = VerifyKey(data)
    if raw != _public_key_protobuf(key):
        raise FormatError("expected the canonical PublicKey encoding, found another encoding")
    return key


# --- record parsing -----------------------------------------------------------------------


def _parse_entry(record: bytes) -> dict[int, int | bytes]:
    fields: dict[int, int | bytes] = {}
    try:
        for number, wire, value in iter_fields(record):
            expected = _WIRE_TYPES.get(number)
            if expected is None:
                raise IpnsRecordInvalidError(f"expected IpnsEntry fields 1-9, found field {number}")
            if wire != expected:
                raise IpnsRecordInvalidError(
                    f"expected wire type {expected} for field {number}, found {wire}"
                )
            if number in fields:
                raise IpnsRecordInvalidError(f"expected field {number} once, found it repeated")
            fields[number] = value
    except IpnsRecordInvalidError:
        raise
    except FormatError as exc:
        raise IpnsRecordInvalidError(f"expected an IpnsEntry protobuf: {exc.message}") from exc
    return fields


_DATA_TYPES: dict[str, type] = {
    "Value": bytes,
    "Validity": bytes,
    "ValidityType": int,
    "Sequence": int,
    "TTL": int,
}


def _parse_data(data: bytes) -> dict[str, Any]:
    entries = _record_error(dagcbor.decode, data)
    if type(entries) is not dict:
        raise IpnsRecordInvalidError(f"expected data to be a map, found {type(entries).__name__}")
    for key, kind in _DATA_TYPES.items():
        if key not in entries:
            raise IpnsRecordInvalidError(f"expected data[{key}], found it missing")
        if type(entries[key]) is not kind:
            raise IpnsRecordInvalidError(
                f"expected data[{key}] to be {kind.__name__}, found {type(entries[key]).__name__}"
            )
    for key in ("ValidityType", "Sequence", "TTL"):
        if entries[key] < 0:
            raise IpnsRecordInvalidError(f"expected data[{key}] >= 0, found {entries[key]}")
    # The spec makes data extensible: other keys are allowed and ignored.
    return entries


def _check_v1_fields(fields: dict[int, int | bytes], entries: dict[str, Any]) -> None:
    # Protobuf defaults apply to absent fields, as in the reference implementation (boxo).
    pairs = (
        (_F_VALUE, b"", "Value"),
        (_F_VALIDITY, b"", "Validity"),
        (_F_VALIDITY_TYPE, 0, "ValidityType"),
        (_F_SEQUENCE, 0, "Sequence"),
        (_F_TTL, 0, "TTL"),
    )
    for number, default, key in pairs:
        if fields.get(number, default) != entries[key]:
            raise IpnsRecordInvalidError(
                f"expected the V1 field {number} to equal data[{key}], found a different value"
            )


def _record_error(parse: Callable[[_In], _Out], raw: _In) -> _Out:
    """Run a parser, turning its FormatError into IpnsRecordInvalidError."""
    try:
        return parse(raw)
    except IpnsRecordInvalidError:
        raise
    except FormatError as exc:
        raise IpnsRecordInvalidError(exc.message) from exc
