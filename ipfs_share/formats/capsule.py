"""Share capsules and capability tokens (docs/spec/capsule.md).

A capsule is a signed dag-cbor map that links to encrypted content, wraps its file key for
each recipient (one 80-byte stanza each, no recipient id), and states expiry, permissions,
an optional policy and an optional capability requirement. Its ID is its CID. The
``commit`` field binds the file key to everything else in the capsule (issuer, content,
stanzas and every term): a recipient who unwraps a key checks it is *the* key for those
bytes, and that a holder of that key chose these terms. Someone without the key who
re-signs a copy of the stanzas under other terms or another identity makes a capsule
that does not open.

Opening is a sequence of pure steps in the order of the spec (section 3):
:func:`decode_capsule` (size, stanza count, strict dag-cbor, fields, signature),
:func:`check_expiry`, revocation (:mod:`ipfs_share.formats.revocation`), policy (a
provider), :func:`require_capability`, :func:`find_and_unwrap`, :func:`check_commitment`,
then the envelope itself.

>>> from ipfs_share.crypto.signing import SigningKey
>>> from ipfs_share.crypto.x25519 import EncryptionKey
>>> from ipfs_share.crypto.stream import FileKey
>>> issuer = SigningKey.from_seed(bytes(32))
>>> bob = EncryptionKey(b"\\x02" * 32)
>>> file_key = FileKey(b"\\x03" * 32)
>>> capsule = build_capsule(
...     issuer, content="bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq",
...     file_key=file_key, recipients=[bob.public_key], created=1_800_000_000,
...     expires=None, rng=lambda n: b"\\x04" * n)
>>> opened = decode_capsule(capsule.data)
>>> opened == capsule, len(opened.stanzas)
(True, 1)
>>> key = find_and_unwrap(opened, bob)
>>> check_commitment(opened, key)     # returns None, or raises
>>> key == file_key
True
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from ipfs_share.crypto.hkdf import hkdf
from ipfs_share.crypto.labels import LABEL_CAPABILITY, LABEL_CAPSULE, LABEL_CAPSULE_COMMIT
from ipfs_share.crypto.random import Rng
from ipfs_share.crypto.signing import SigningKey
from ipfs_share.crypto.stream import FileKey
from ipfs_share.crypto.wrap import STANZA_SIZE, Stanza, unwrap, wrap
from ipfs_share.crypto.x25519 import EncryptionKey, PublicEncryptionKey
from ipfs_share.errors import (
    CapabilityInvalidError,
    CapabilityRequiredError,
    FormatError,
    InvalidInputError,
    KeyUnwrapFailedError,
    ShareExpiredError,
)
from ipfs_share.formats import dagcbor
from ipfs_share.formats.cid import DAG_PB, RAW, cid_bytes, cid_string
from ipfs_share.formats.dagcbor import Link
from ipfs_share.formats.signed import (
    Schema,
    block_from_bytes,
    boolean,
    bytes_of,
    bytes_pair,
    closed_map,
    dag_cbor_cid_bytes,
    decode_signed,
    decode_signed_any,
    did,
    did_key,
    link,
    list_of,
    nullable,
    open_map,
    sign_object,
    text,
    uint,
    without_pairs,
)
from ipfs_share.times import iso

__all__ = [
    "CAPSULE_VERSION",
    "COMMIT_SIZE",
    "MAX_CAPABILITY_SIZE",
    "MAX_CAPSULE_SIZE",
    "MAX_STANZAS",
    "READ_VERSIONS",
    "Capability",
    "Capsule",
    "Perms",
    "Policy",
    "build_capsule",
    "check_capability",
    "check_commitment",
    "check_expiry",
    "commitment",
    "decode_capability",
    "decode_capsule",
    "find_and_unwrap",
    "make_capability",
    "require_capability",
    "terms_digest",
]

# Version 3: a capsule names the capsule it re-issues ("replaces"), so a recipient who
# opens the old one is told which to open instead (docs/decisions/0009-capsule-v3-replaces.md).
# Version 2 (the same without "replaces") is still read. Version 1 capsules (commitment
# over the content CID alone) are refused, not read: a copy of one could be re-signed
# under any terms (docs/decisions/0003-capsule-v2.md).
CAPSULE_VERSION: Final = 3
READ_VERSIONS: Final = (3, 2)
MAX_STANZAS: Final = 10_000
MAX_CAPSULE_SIZE: Final = 1024 * 1024
MAX_CAPABILITY_SIZE: Final = 1024
COMMIT_SIZE: Final = 32
MAX_PROVIDER_SIZE: Final = 256
ABILITY_OPEN: Final = "open"

_CONTENT_CODECS: Final = (RAW, DAG_PB)


def _content_link(value: Any, path: str) -> None:
    # The content is what `add` stored: a raw block or a UnixFS (dag-pb) root, CIDv1.
    raw = bytes(value) if type(value) is Link else b""
    if not (
        len(raw) == 36 and raw[0] == 1 and raw[1] in _CONTENT_CODECS and raw[2:4] == b"\x12\x20"
    ):
        found = value.cid[:80] if type(value) is Link else type(value).__name__
        raise FormatError(f"expected a CIDv1 (raw or dag-pb, sha2-256) at {path}, found {found}")


def _capsule_rules(value: dict[str, Any]) -> None:
    expires = value["expires"]
    if expires is not None and not expires > value["created"]:
        raise FormatError(
            f"expected expires after created ({iso(value['created'])}), found {iso(expires)}"
        )


# The stanza count, read from the list's CBOR head before anything is decoded.
_STANZA_CAPS: Final = {"stanzas": MAX_STANZAS}
_V2_FIELDS: Final = {
    "content": _content_link,
    "issuer": did,
    "stanzas": list_of(bytes_of(STANZA_SIZE), MAX_STANZAS, min_count=1),
    "created": uint,
    "expires": nullable(uint),
    "perms": closed_map({"download": boolean}),
    "policy": nullable(closed_map({"provider": text(MAX_PROVIDER_SIZE), "params": open_map})),
    "cap": nullable(closed_map({"issuer": did})),
    "commit": bytes_of(COMMIT_SIZE),
}

CAPSULE: Final = Schema(
    name="capsule",
    label=LABEL_CAPSULE,
    # The ID, as bytes and not as a link: a recursive pin of the new capsule must not keep
    # the revoked one and, through it, the ciphertext a rotation unpinned.
    fields={**_V2_FIELDS, "replaces": nullable(dag_cbor_cid_bytes)},
    signer="issuer",
    max_size=MAX_CAPSULE_SIZE,
    max_counts=_STANZA_CAPS,
    rules=_capsule_rules,
    version=CAPSULE_VERSION,
)
# Read, never written: a version 2 capsule is a version 3 one that replaces nothing.
CAPSULE_V2: Final = Schema(
    name="capsule",
    label=LABEL_CAPSULE,
    fields=_V2_FIELDS,
    signer="issuer",
    max_size=MAX_CAPSULE_SIZE,
    max_counts=_STANZA_CAPS,
    rules=_capsule_rules,
    version=2,
)


def _capability_rules(value: dict[str, Any]) -> None:
    if not value["nbf"] < value["exp"]:
        raise FormatError(f"expected nbf before exp, found nbf {value['nbf']} exp {value['exp']}")


CAPABILITY: Final = Schema(
    name="capability",
    label=LABEL_CAPABILITY,
    fields={
        "issuer": did,
        "aud": did,
        "capsule": link(),
        "ability": text(16, choices=[ABILITY_OPEN]),
        "nbf": uint,
        "exp": uint,
    },
    signer="issuer",
    max_size=MAX_CAPABILITY_SIZE,
    rules=_capability_rules,
)


@dataclass(frozen=True, slots=True)
class Perms:
    """What a recipient may do with the plaintext: enforced by honest clients only.
    ``download``: keep a copy (``OpenedFile.save``); False is a view-only share."""

    download: bool = True


@dataclass(frozen=True, slots=True)
class Policy:
    """A policy reference: the provider that decides, and its parameters (any dag-cbor map)."""

    provider: str
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Capsule:
    """A decoded capsule whose signature verified. ``cid`` is its ID."""

    content: Link
    issuer: str
    stanzas: tuple[Stanza, ...] = field(repr=False)
    created: int
    expires: int | None
    perms: Perms
    policy: Policy | None
    cap_issuer: str | None
    commit: bytes
    cid: str
    data: bytes = field(repr=False)
    terms: bytes = field(repr=False)  # SHA-256 of the capsule without "commit" and "sig"
    replaces: str | None = None  # the ID of the capsule this one re-issues
    version: int = CAPSULE_VERSION


@dataclass(frozen=True, slots=True)
class Capability:
    """A decoded capability token: ``issuer`` lets ``aud`` open ``capsule`` in [nbf, exp)."""

    issuer: str
    aud: str
    capsule: Link
    ability: str
    nbf: int
    exp: int
    cid: str
    data: bytes = field(repr=False)


# --- the commitment -----------------------------------------------------------------------


def terms_digest(fields: Mapping[str, Any], data: bytes | None = None) -> bytes:
    """SHA-256 of the canonical dag-cbor of a capsule map without ``commit`` and ``sig``:
    what the commitment covers (``v``, content, issuer, stanzas, created, expires, perms,
    policy, cap, replaces). ``data``: the capsule's canonical bytes, if at hand (the two
    pairs are then cut out of them instead of the map being encoded again)."""
    if data is not None and "sig" in fields:
        pairs = [bytes_pair("commit", fields["commit"]), bytes_pair("sig", fields["sig"])]
        cut = without_pairs(data, pairs)
        if cut is not None:
            return hashlib.sha256(cut).digest()
    terms = {k: v for k, v in fields.items() if k not in ("commit", "sig")}
    return hashlib.sha256(dagcbor.encode(terms)).digest()


def commitment(file_key: FileKey, terms: bytes) -> bytes:
    """commit = HMAC-SHA-256(HKDF(file key, "", LABEL_CAPSULE_COMMIT, 32), terms digest)."""
    commit_key = hkdf(file_key.secret_bytes(), salt=b"", info=LABEL_CAPSULE_COMMIT, length=32)
    return hmac.digest(commit_key, terms, "sha256")


def check_commitment(capsule: Capsule, file_key: FileKey) -> None:
    """Check that ``file_key`` is the key the capsule commits to, under its own issuer,
    content, stanzas and terms.

    A key that unwrapped but does not match was committed for other bytes, another
    recipient set, other terms or another issuer (a copy of someone else's stanzas, signed
    again): :class:`KeyUnwrapFailedError`.
    """
    if not hmac.compare_digest(commitment(file_key, capsule.terms), capsule.commit):
        raise KeyUnwrapFailedError(
            "expected the file key the capsule commits to, found a key committed to other "
            "terms, content or issuer",
            hint="the share was tampered with, or is a copy of another share signed again by "
            f"{capsule.issuer}; ask the original sender to share it again",
        )


# --- capsules -----------------------------------------------------------------------------


def build_capsule(
    issuer: SigningKey,
    *,
    content: str | Link,
    file_key: FileKey,
    recipients: Sequence[PublicEncryptionKey],
    created: int,
    expires: int | None,
    perms: Perms | None = None,
    policy: Policy | None = None,
    cap_issuer: str | None = None,
    replaces: str | None = None,
    rng: Rng | None = None,
) -> Capsule:
    """Wrap ``file_key`` for each recipient, commit it to ``content`` and sign.

    Stanzas are in the order of ``recipients``; callers that do not want the order to say
    anything (it could match an address book) shuffle the list first. ``replaces`` is the
    ID of a capsule of the same issuer that this one re-issues (a revoke with rotation or
    a drop): its recipients' clients say which capsule to open instead.
    """
    if len(recipients) > MAX_STANZAS:
        raise InvalidInputError(
            f"expected at most {MAX_STANZAS} recipients, found {len(recipients)}",
            hint="split the recipients over several capsules",
        )
    content_link = content if isinstance(content, Link) else Link(content)
    perms = perms or Perms()
    fields: dict[str, Any] = {
        "content": content_link,
        "issuer": did_key(issuer.public_key),
        "stanzas": [bytes(s) for s in wrap(file_key, recipients, rng)],
        "created": created,
        "expires": expires,
        "perms": {"download": perms.download},
        "policy": None
        if policy is None
        else {"provider": policy.provider, "params": dict(policy.params)},
        "cap": None if cap_issuer is None else {"issuer": cap_issuer},
        "replaces": None if replaces is None else cid_bytes(replaces),
    }
    terms = terms_digest({"v": CAPSULE_VERSION, **fields})
    fields["commit"] = commitment(file_key, terms)
    # What we signed goes through the reader once: a capsule we write always decodes.
    return decode_capsule(sign_object(CAPSULE, fields, issuer).data)


def decode_capsule(data: bytes, *, issuer: str | None = None) -> Capsule:
    """Decode a capsule and verify its signature (``issuer``, if given, must be the signer).

    Checks run in this order and fail with :class:`FormatError` before any crypto: size
    (<= 1 MiB), stanza count (<= 10,000, read from the list's head before the list is
    decoded), strict dag-cbor, version (3, or 2), fields; then the signature
    (:class:`~ipfs_share.errors.SignatureInvalidError`).
    """
    _, fields = decode_signed_any((CAPSULE, CAPSULE_V2), data, signer=issuer)
    policy = fields["policy"]
    replaces = fields.get("replaces")
    cap = fields["cap"]
    perms = fields["perms"]
    block = block_from_bytes(data)
    return Capsule(
        content=fields["content"],
        issuer=fields["issuer"],
        stanzas=tuple(Stanza.from_bytes(s) for s in fields["stanzas"]),
        created=fields["created"],
        expires=fields["expires"],
        perms=Perms(download=perms["download"]),
        policy=None if policy is None else Policy(policy["provider"], policy["params"]),
        cap_issuer=None if cap is None else cap["issuer"],
        commit=fields["commit"],
        cid=block.cid,
        data=block.data,
        terms=terms_digest(fields, data),
        replaces=None if replaces is None else cid_string(replaces),
        version=fields["v"],
    )


def check_expiry(capsule: Capsule, now: int) -> None:
    """:class:`ShareExpiredError` once ``now`` (Unix seconds) reaches ``expires``."""
    if capsule.expires is not None and now >= capsule.expires:
        raise ShareExpiredError(
            f"expected a share valid at {iso(now)}, found it expired at {iso(capsule.expires)}"
        )


def find_and_unwrap(capsule: Capsule, my_key: EncryptionKey) -> FileKey:
    """The file key from this identity's stanza: every stanza is tried, so the time does
    not say which is ours. :class:`~ipfs_share.errors.RecipientNotAuthorizedError` if none
    opens; call :func:`check_commitment` next."""
    return unwrap(capsule.stanzas, my_key)


# --- capability tokens --------------------------------------------------------------------


def make_capability(
    issuer: SigningKey, *, aud: str, capsule: str | Link, nbf: int, exp: int
) -> Capability:
    """A token by which ``issuer`` (the capsule's ``cap.issuer``) lets ``aud`` open
    ``capsule`` from ``nbf`` until just before ``exp``."""
    fields = {
        "issuer": did_key(issuer.public_key),
        "aud": aud,
        "capsule": capsule if isinstance(capsule, Link) else Link(capsule),
        "ability": ABILITY_OPEN,
        "nbf": nbf,
        "exp": exp,
    }
    return decode_capability(sign_object(CAPABILITY, fields, issuer).data)


def decode_capability(data: bytes, *, issuer: str | None = None) -> Capability:
    """Decode a token and verify its signature (the codec; :func:`check_capability`
    checks it against a capsule)."""
    fields = decode_signed(CAPABILITY, data, signer=issuer)
    block = block_from_bytes(data)
    return Capability(
        issuer=fields["issuer"],
        aud=fields["aud"],
        capsule=fields["capsule"],
        ability=fields["ability"],
        nbf=fields["nbf"],
        exp=fields["exp"],
        cid=block.cid,
        data=block.data,
    )


def check_capability(token: Capability, *, capsule: Capsule, audience: str, now: int) -> None:
    """:class:`CapabilityInvalidError` unless ``token`` lets ``audience`` open ``capsule``
    at ``now``: issued by the capsule's ``cap.issuer``, for this capsule, to this
    audience, and ``nbf <= now < exp``."""
    if capsule.cap_issuer is None or token.issuer != capsule.cap_issuer:
        raise CapabilityInvalidError(
            f"expected a capability issued by {capsule.cap_issuer}, found one by {token.issuer}"
        )
    if token.capsule != Link(capsule.cid):
        raise CapabilityInvalidError(
            f"expected a capability for {capsule.cid}, found one for {token.capsule.cid}"
        )
    if token.aud != audience:
        raise CapabilityInvalidError(
            f"expected a capability for {audience}, found one for {token.aud}"
        )
    if not token.nbf <= now < token.exp:
        raise CapabilityInvalidError(
            f"expected a capability valid at {iso(now)}, found one valid from {iso(token.nbf)} "
            f"until just before {iso(token.exp)}"
        )


def require_capability(
    capsule: Capsule, token: bytes | None, *, audience: str, now: int
) -> Capability | None:
    """The open step "vault/capability": nothing to do if the capsule names no ``cap``;
    else :class:`CapabilityRequiredError` without a token, and
    :class:`CapabilityInvalidError` for a token that does not decode, verify or fit."""
    if capsule.cap_issuer is None:
        return None
    if token is None:
        raise CapabilityRequiredError(
            f"expected a capability token issued by {capsule.cap_issuer}, found none"
        )
    try:
        decoded = decode_capability(token, issuer=capsule.cap_issuer)
    except InvalidInputError as exc:  # malformed, or a signature that does not verify
        raise CapabilityInvalidError(f"expected a valid capability token: {exc.message}") from exc
    check_capability(decoded, capsule=capsule, audience=audience, now=now)
    return decoded
