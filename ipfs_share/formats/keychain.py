"""Keychain ops: the signed dag-cbor entries of a keychain's log (docs/spec/keychain.md).

A keychain is a DAG of signed ops. Every op names its author's previous op (``prev``,
with ``seq``: each member keeps one chain per keychain) and the other members' heads its
author had seen (``parents``); together with the op an accept, cancel or release answers,
these links are the op's causal dependencies. The first op, ``create``, names no keychain:
its CID is the keychain's fingerprint, and every later op names it in ``kc``.

Kinds (one key of the map names the kind, as the mailbox's entry kinds are told apart):
``create``, ``add_key`` (rotate), ``share`` (an offer: no key material), ``accept``,
``cancel``, ``release`` (the keys of an accepted offer, wrapped for its recipient),
``grant`` (keys for current members, e.g. after a rotation), ``permissions``, ``ban`` and
``leave``. The rules a replica applies to them are :mod:`ipfs_share.formats.keychain_replay`.

Key material only travels in deliveries (create, add_key, release, grant): a fresh
release key wrapped for each recipient's X25519 key in a stanza, and one box sealing the
keychain secret and the keys under it. Each key is named by its fingerprint, which the
recipient checks, so a delivery cannot slip in a key the op does not name.

>>> from ipfs_share.crypto.x25519 import EncryptionKey
>>> from ipfs_share.crypto.random import DeterministicRng
>>> rng = DeterministicRng(b"doc")
>>> owner, enc = SigningKey.generate(rng), EncryptionKey.generate(rng)
>>> me = did_key(owner.public_key)
>>> secret, first = KeychainSecret.generate(rng), KeychainKey.generate(rng)
>>> genesis = make_create(owner, name="team", secret=secret, first=first,
...                       recipients=[(me, enc.public_key)], time=1_800_000_000, rng=rng)
>>> genesis.kind, genesis.seq, genesis.keychain == genesis.cid
('create', 0, True)
>>> got_secret, keys = open_delivery(genesis.body.delivery, me, enc, (genesis.body.key,))
>>> keys == [first], open_name(got_secret, genesis.body.name)
(True, b'team')
>>> decode_op(genesis.data) == genesis
True
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal, TypeVar

from ipfs_share.crypto.hkdf import hkdf
from ipfs_share.crypto.keychain import (
    FINGERPRINT_SIZE,
    KeychainKey,
    KeychainSecret,
    ReleaseKey,
    key_fingerprint,
    open_box,
    open_name,
    seal_box,
    seal_name,
)
from ipfs_share.crypto.labels import LABEL_KEYCHAIN_CHAIN, LABEL_KEYCHAIN_OP
from ipfs_share.crypto.random import Rng, random_bytes
from ipfs_share.crypto.signing import SigningKey, VerifyKey
from ipfs_share.crypto.stream import FileKey
from ipfs_share.crypto.wrap import STANZA_SIZE, Stanza, unwrap, wrap
from ipfs_share.crypto.x25519 import EncryptionKey, PublicEncryptionKey
from ipfs_share.errors import (
    DecryptionError,
    FormatError,
    InvalidInputError,
    KeyUnwrapFailedError,
    RecipientNotAuthorizedError,
)
from ipfs_share.formats import dagcbor, feed
from ipfs_share.formats.dagcbor import Link
from ipfs_share.formats.ipns import ipns_name
from ipfs_share.formats.signed import (
    Block,
    Check,
    Schema,
    block_from_bytes,
    boolean,
    bytes_of,
    closed_map,
    decode_structure,
    did,
    did_key,
    link,
    list_of,
    nullable,
    parse_did_key,
    sign_object,
    uint,
)

__all__ = [
    "KINDS",
    "MAX_DELIVERY",
    "MAX_KEYS",
    "MAX_NAME_SIZE",
    "MAX_OP_SIZE",
    "MAX_PARENTS",
    "PERMISSION_NAMES",
    "Accept",
    "AddKey",
    "Ban",
    "Body",
    "Cancel",
    "Create",
    "Delivery",
    "Grant",
    "Leave",
    "Op",
    "Permissions",
    "Release",
    "SetPermissions",
    "Share",
    "chain_key",
    "chain_name",
    "decode_op",
    "fingerprint_text",
    "load_op",
    "make_create",
    "make_delivery",
    "make_op",
    "open_delivery",
    "parse_fingerprint",
]

# A release for every member of a 1,000-member keychain is about 140 KB (a did and a
# stanza each); the caps leave room and keep every op far below Kubo's 2 MiB block limit.
MAX_OP_SIZE: Final = 1024 * 1024
MAX_DELIVERY: Final = 4096
MAX_KEYS: Final = 1024
MAX_PARENTS: Final = 64
MAX_NAME_SIZE: Final = 256
NONCE_SIZE: Final = 16
_MAX_SEALED_NAME: Final = 24 + MAX_NAME_SIZE + 16
# A bundle holds the secret and up to MAX_KEYS keys: a map head, two keys, the list.
_MAX_BOX: Final = 64 + (MAX_KEYS + 1) * (FINGERPRINT_SIZE + 3) + 16

PERMISSION_NAMES: Final = ("sharing", "rotation", "deletion", "management")

Kind = Literal[
    "create",
    "add_key",
    "share",
    "accept",
    "cancel",
    "release",
    "grant",
    "permissions",
    "ban",
    "leave",
]
KINDS: Final[tuple[Kind, ...]] = (
    "create",
    "add_key",
    "share",
    "accept",
    "cancel",
    "release",
    "grant",
    "permissions",
    "ban",
    "leave",
)


# --- values -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Permissions:
    """The four permissions of a member (default deny)."""

    sharing: bool = False
    rotation: bool = False
    deletion: bool = False
    management: bool = False

    @classmethod
    def all(cls) -> Permissions:
        return cls(True, True, True, True)

    def covers(self, other: Permissions) -> bool:
        """Does this set hold every permission ``other`` holds?"""
        return all(getattr(self, n) or not getattr(other, n) for n in PERMISSION_NAMES)

    def to_json(self) -> dict[str, bool]:
        return {f"allow_{n}": getattr(self, n) for n in PERMISSION_NAMES}


@dataclass(frozen=True, slots=True)
class Delivery:
    """Key material for ``to`` (dids, sorted): stanza i wraps the release key for ``to[i]``."""

    to: tuple[str, ...]
    stanzas: tuple[bytes, ...] = field(repr=False)  # 80 bytes each (a Stanza's bytes)
    box: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class Create:
    nonce: bytes  # random: makes every keychain distinct and salts its members' chain keys
    enc: bytes  # the creator's X25519 public key: where others deliver keys to it
    name: bytes = field(repr=False)  # sealed under the keychain secret
    key: bytes  # fingerprint of the first key
    expires: int | None
    delivery: Delivery


@dataclass(frozen=True, slots=True)
class AddKey:
    key: bytes
    expires: int | None
    delivery: Delivery


@dataclass(frozen=True, slots=True)
class Share:
    """An offer: which keys, to whom, until when, with which permissions. No key material."""

    to: str
    keys: tuple[bytes, ...]
    expires: int | None
    perms: Permissions


@dataclass(frozen=True, slots=True)
class Cancel:
    """The sharer withdraws ``offer``."""

    offer: str


@dataclass(frozen=True, slots=True)
class Accept:
    """The recipient accepts ``offer``; ``enc`` is its X25519 public key, where the
    release (and every later delivery) wraps keys for it. The accept is signed by the
    recipient's identity key, which binds the two as an identity document does."""

    offer: str
    enc: bytes


@dataclass(frozen=True, slots=True)
class Release:
    offer: str
    delivery: Delivery


@dataclass(frozen=True, slots=True)
class Grant:
    keys: tuple[bytes, ...]
    delivery: Delivery


@dataclass(frozen=True, slots=True)
class SetPermissions:
    """A partial update: ``None`` leaves a permission as it is."""

    member: str
    sharing: bool | None = None
    rotation: bool | None = None
    deletion: bool | None = None
    management: bool | None = None

    def changes(self) -> dict[str, bool]:
        out = {}
        if self.sharing is not None:
            out["sharing"] = self.sharing
        if self.rotation is not None:
            out["rotation"] = self.rotation
        if self.deletion is not None:
            out["deletion"] = self.deletion
        if self.management is not None:
            out["management"] = self.management
        return out

    @property
    def reduces(self) -> bool:
        return False in (self.sharing, self.rotation, self.deletion, self.management)


@dataclass(frozen=True, slots=True)
class Ban:
    member: str


@dataclass(frozen=True, slots=True)
class Leave:
    pass


Body = Create | AddKey | Share | Accept | Cancel | Release | Grant | SetPermissions | Ban | Leave


@dataclass(frozen=True, slots=True, eq=False)
class Op:
    """A decoded op whose signature verified. ``keychain`` is the create op's CID."""

    kind: Kind
    keychain: str
    author: str
    seq: int
    prev: str | None
    parents: tuple[str, ...]
    chain: bytes | None  # the public key of the author's chain IPNS key (seq 0 only)
    time: int
    body: Body
    cid: str
    data: bytes = field(repr=False)
    # Every op this one depends on: prev, parents and the offer it answers.
    deps: tuple[str, ...] = field(repr=False, default=())

    @property
    def reduces_authority(self) -> bool:
        """Ban, leave, cancel and a permission removal: ordered first among concurrent ops."""
        if self.kind in ("ban", "leave", "cancel"):
            return True
        return isinstance(self.body, SetPermissions) and self.body.reduces

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Op) and other.cid == self.cid

    def __hash__(self) -> int:
        return hash(self.cid)


# --- fingerprints and chain names ---------------------------------------------------------

_B32 = "abcdefghijklmnopqrstuvwxyz234567"


def fingerprint_text(fp: bytes) -> str:
    """A key fingerprint as text: lowercase base32 without padding (52 characters).

    >>> fingerprint_text(bytes(32))[:8], len(fingerprint_text(bytes(32)))
    ('aaaaaaaa', 52)
    """
    import base64

    return base64.b32encode(fp).decode("ascii").rstrip("=").lower()


def parse_fingerprint(text: str) -> bytes:
    """The 32 bytes of a full fingerprint text (52 base32 characters)."""
    import base64

    if not isinstance(text, str) or len(text) != 52 or not set(text) <= set(_B32):
        raise InvalidInputError(
            f"expected a key fingerprint of 52 base32 characters, found {str(text)[:60]!r}",
            hint="copy it from 'ipfs-share keychain show FP'",
        )
    return base64.b32decode(text.upper() + "====")


def chain_key(identity: SigningKey, nonce: bytes) -> SigningKey:
    """The Ed25519 key of ``identity``'s chain in the keychain whose create op has ``nonce``
    (it signs IPNS records only).

    seed = HKDF(identity seed, salt = create nonce, LABEL_KEYCHAIN_CHAIN, 32): only the
    member can derive it; others learn its public key from the member's first op. (The
    salt is the create op's nonce, not its CID: the creator's first op is the create op,
    which must name the chain before its own CID exists.)"""
    if type(nonce) is not bytes or len(nonce) != NONCE_SIZE:
        raise InvalidInputError(f"expected a {NONCE_SIZE}-byte keychain nonce")
    seed = hkdf(identity.seed_bytes(), salt=nonce, info=LABEL_KEYCHAIN_CHAIN, length=32)
    return SigningKey.from_seed(seed)


def chain_name(chain: bytes) -> str:
    """The IPNS name (``k51...``) of a chain, from the public key a first op names."""
    return ipns_name(VerifyKey(chain))


# --- schemas ------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1 << 16)
def _verify_key(value: str) -> VerifyKey:
    """:func:`parse_did_key`, remembered: a keychain's ops name the same few dids over and
    over, and base58 decoding costs more than the rest of an op's checks."""
    return parse_did_key(value)


def _did(value: Any, path: str) -> None:
    if type(value) is not str:
        did(value, path)
        return
    try:
        _verify_key(value)
    except FormatError:
        did(value, path)  # the message with the path


def _bytes_up_to(low: int, high: int) -> Check:
    def check(value: Any, path: str) -> None:
        if type(value) is not bytes:
            raise FormatError(f"expected bytes at {path}, found {type(value).__name__}")
        if not low <= len(value) <= high:
            raise FormatError(f"expected {low} to {high} bytes at {path}, found {len(value)}")

    return check


def _strictly_ascending(items: Sequence[Any], path: str, key: Any = None) -> None:
    encoded = [key(i) for i in items] if key is not None else list(items)
    for a, b in itertools.pairwise(encoded):
        if not a < b:
            raise FormatError(f"expected {path} sorted ascending without repeats, found otherwise")


_FP = bytes_of(FINGERPRINT_SIZE)
_PERMS = closed_map({n: boolean for n in PERMISSION_NAMES})
_DELIVERY = closed_map(
    {
        "to": list_of(_did, MAX_DELIVERY, min_count=1),
        "stanzas": list_of(bytes_of(STANZA_SIZE), MAX_DELIVERY, min_count=1),
        "box": _bytes_up_to(16, _MAX_BOX),
    }
)
_BODIES: Final[dict[str, Check]] = {
    "create": closed_map(
        {
            "nonce": bytes_of(NONCE_SIZE),
            "enc": bytes_of(32),
            "name": _bytes_up_to(40, _MAX_SEALED_NAME),
            "key": _FP,
            "expires": nullable(uint),
            "delivery": _DELIVERY,
        }
    ),
    "add_key": closed_map({"key": _FP, "expires": nullable(uint), "delivery": _DELIVERY}),
    "share": closed_map(
        {
            "to": _did,
            "keys": list_of(_FP, MAX_KEYS, min_count=1),
            "expires": nullable(uint),
            "perms": _PERMS,
        }
    ),
    "accept": closed_map({"offer": link(), "enc": bytes_of(32)}),
    "cancel": closed_map({"offer": link()}),
    "release": closed_map({"offer": link(), "delivery": _DELIVERY}),
    "grant": closed_map({"keys": list_of(_FP, MAX_KEYS, min_count=1), "delivery": _DELIVERY}),
    "permissions": closed_map(
        {"member": _did, "set": closed_map({n: nullable(boolean) for n in PERMISSION_NAMES})}
    ),
    "ban": closed_map({"member": _did}),
    "leave": closed_map({}),
}


def _rules(value: dict[str, Any]) -> None:
    seq, prev, chain = value["seq"], value["prev"], value["chain"]
    if (seq == 0) != (prev is None) or (seq == 0) != (chain is not None):
        raise FormatError(
            f"expected prev null and chain set exactly when seq is 0, found seq {seq}, prev "
            f"{'null' if prev is None else 'a link'}, chain {'null' if chain is None else 'set'}"
        )
    parents = value["parents"]
    _strictly_ascending(parents, "parents", key=bytes)
    if prev is not None and prev in parents:
        raise FormatError("expected prev not to be repeated in parents, found it there")
    kind = next(k for k in _BODIES if k in value)
    body = value[kind]
    if kind == "create" and (seq != 0 or parents):
        raise FormatError("expected create at seq 0 with no parents, found otherwise")
    if "expires" in body and body["expires"] is not None and not body["expires"] > value["time"]:
        raise FormatError(f"expected expires after time ({value['time']}), found {body['expires']}")
    if "keys" in body:
        _strictly_ascending(body["keys"], f"{kind}.keys")
    if "delivery" in body:
        delivery = body["delivery"]
        if len(delivery["to"]) != len(delivery["stanzas"]):
            raise FormatError(
                f"expected one stanza per recipient, found {len(delivery['to'])} recipients "
                f"and {len(delivery['stanzas'])} stanzas"
            )
        _strictly_ascending(delivery["to"], f"{kind}.delivery.to")
        if kind in ("create", "add_key") and value["author"] not in delivery["to"]:
            raise FormatError(f"expected the author among the recipients of {kind}, found not")
    if kind == "permissions" and all(v is None for v in body["set"].values()):
        raise FormatError("expected at least one permission set, found none")


_COMMON: Final[dict[str, Check]] = {
    "author": _did,
    "seq": uint,
    "prev": nullable(link()),
    "parents": list_of(link(), MAX_PARENTS),
    "chain": nullable(bytes_of(32)),
    "time": uint,
}


def _schema(kind: str) -> Schema:
    fields = {**_COMMON, kind: _BODIES[kind]}
    if kind != "create":
        fields["kc"] = link()
    return Schema(
        name=f"keychain {kind}",
        label=LABEL_KEYCHAIN_OP,
        fields=fields,
        signer="author",
        max_size=MAX_OP_SIZE,
        rules=_rules,
    )


SCHEMAS: Final[dict[str, Schema]] = {k: _schema(k) for k in KINDS}
_ALL: Final = tuple(SCHEMAS.values())


# --- decoding -----------------------------------------------------------------------------


def decode_op(data: bytes, *, keychain: str | None = None) -> Op:
    """Decode an op and verify its signature, in the fixed order of signed objects
    (size, strict dag-cbor, fields and rules, then the signature).

    ``keychain``, if given, is the keychain the op must belong to (``format_invalid``
    otherwise: an op of another keychain)."""
    _, value = decode_structure(_ALL, data)
    unsigned = {k: v for k, v in value.items() if k != "sig"}
    _verify_key(value["author"]).verify(LABEL_KEYCHAIN_OP + dagcbor.encode(unsigned), value["sig"])
    op = _op(value, block_from_bytes(data))
    if keychain is not None and op.keychain != keychain:
        raise FormatError(f"expected an op of keychain {keychain}, found one of {op.keychain}")
    return op


def load_op(data: bytes, cid: str) -> Op:
    """An op from a local store that verified it with :func:`decode_op` before storing it
    under ``cid``: no check is repeated (a replica's cold start replays thousands)."""
    return _op(dagcbor.decode_trusted(data), Block(cid, data))


# Binary CID -> text, for the links of ops: an op's prev and parents are recent ops and its
# kc is the same for all, so nearly every lookup hits, and base32 (pure Python in the
# standard library) is the largest cost of loading an op otherwise.
_CID_TEXT: dict[bytes, str] = {}
_CID_TEXT_MAX: Final = 1 << 17
_DAG_CBOR_SHA256: Final = b"\x01\x71\x12\x20"


def _text(link: Link) -> str:
    raw = bytes(link)
    text = _CID_TEXT.get(raw)
    if text is None:
        text = link.cid
        _remember(raw, text)
    return text


def _remember(raw: bytes, text: str) -> None:
    if len(_CID_TEXT) >= _CID_TEXT_MAX:
        _CID_TEXT.clear()
    _CID_TEXT[raw] = text


def _maker(cls: type[_D]) -> Callable[..., _D]:
    """A constructor for a frozen slots dataclass that fills its slots through their
    descriptors: the instance is as frozen as one its ``__init__`` made, and it costs a
    fifth (a frozen ``__init__`` goes through ``object.__setattr__`` once per field; a
    replica's cold start builds some 50,000 of these objects). No defaults, no checks:
    for values a decoder has checked already, every field given, in order."""
    setters = [getattr(cls, f.name).__set__ for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    new = object.__new__

    def make(*values: Any) -> _D:
        obj = new(cls)
        for put, value in zip(setters, values, strict=True):
            put(obj, value)
        return obj

    return make


_D = TypeVar("_D")
_new_op = _maker(Op)
_new_delivery = _maker(Delivery)
_new_share = _maker(Share)
_new_perms = _maker(Permissions)


def _op(value: dict[str, Any], block: Block) -> Op:
    kind: Kind = next(k for k in KINDS if k in value)
    prev = value["prev"]
    _remember(_DAG_CBOR_SHA256 + hashlib.sha256(block.data).digest(), block.cid)
    body = _body(kind, value[kind])
    prev_cid = None if prev is None else _text(prev)
    parents = tuple(_text(p) for p in value["parents"])
    deps = parents if prev_cid is None else (prev_cid, *parents)
    if isinstance(body, Accept | Cancel | Release) and body.offer not in deps:
        deps = (*deps, body.offer)
    return _new_op(
        kind,
        block.cid if kind == "create" else _text(value["kc"]),
        value["author"],
        value["seq"],
        prev_cid,
        parents,
        value["chain"],
        value["time"],
        body,
        block.cid,
        block.data,
        deps,
    )


def _delivery(value: dict[str, Any]) -> Delivery:
    return _new_delivery(tuple(value["to"]), tuple(value["stanzas"]), value["box"])


def _body(kind: Kind, v: dict[str, Any]) -> Body:
    if kind == "create":
        return Create(
            v["nonce"], v["enc"], v["name"], v["key"], v["expires"], _delivery(v["delivery"])
        )
    if kind == "add_key":
        return AddKey(v["key"], v["expires"], _delivery(v["delivery"]))
    if kind == "share":
        p = v["perms"]
        perms = _new_perms(p["sharing"], p["rotation"], p["deletion"], p["management"])
        return _new_share(v["to"], tuple(v["keys"]), v["expires"], perms)
    if kind == "accept":
        return Accept(_text(v["offer"]), v["enc"])
    if kind == "cancel":
        return Cancel(_text(v["offer"]))
    if kind == "release":
        return Release(_text(v["offer"]), _delivery(v["delivery"]))
    if kind == "grant":
        return Grant(tuple(v["keys"]), _delivery(v["delivery"]))
    if kind == "permissions":
        return SetPermissions(v["member"], **v["set"])
    if kind == "ban":
        return Ban(v["member"])
    return Leave()


# --- encoding -----------------------------------------------------------------------------


def _encode_delivery(d: Delivery) -> dict[str, Any]:
    return {"to": list(d.to), "stanzas": list(d.stanzas), "box": d.box}


def _encode_body(body: Body) -> tuple[Kind, dict[str, Any]]:
    if isinstance(body, Create):
        fields = {
            "nonce": body.nonce,
            "enc": body.enc,
            "name": body.name,
            "key": body.key,
            "expires": body.expires,
        }
        return "create", {**fields, "delivery": _encode_delivery(body.delivery)}
    if isinstance(body, AddKey):
        fields = {"key": body.key, "expires": body.expires}
        return "add_key", {**fields, "delivery": _encode_delivery(body.delivery)}
    if isinstance(body, Share):
        perms = {n: getattr(body.perms, n) for n in PERMISSION_NAMES}
        return "share", {
            "to": body.to,
            "keys": sorted(body.keys),
            "expires": body.expires,
            "perms": perms,
        }
    if isinstance(body, Accept):
        return "accept", {"offer": Link(body.offer), "enc": body.enc}
    if isinstance(body, Cancel):
        return "cancel", {"offer": Link(body.offer)}
    if isinstance(body, Release):
        return "release", {"offer": Link(body.offer), "delivery": _encode_delivery(body.delivery)}
    if isinstance(body, Grant):
        return "grant", {"keys": sorted(body.keys), "delivery": _encode_delivery(body.delivery)}
    if isinstance(body, SetPermissions):
        return "permissions", {
            "member": body.member,
            "set": {n: getattr(body, n) for n in PERMISSION_NAMES},
        }
    if isinstance(body, Ban):
        return "ban", {"member": body.member}
    if isinstance(body, Leave):
        return "leave", {}
    raise TypeError(f"expected an op body, found {type(body).__name__}")


def make_op(
    key: SigningKey,
    body: Body,
    *,
    keychain: str | None,
    prev: Op | None,
    parents: Sequence[str] = (),
    time: int,
    chain: bytes | None = None,
) -> Op:
    """Sign the op after ``prev`` (the author's previous op; ``None``: the author's first).

    ``chain`` is required for a first op (the author's chain public key, from
    :func:`chain_key`). The writer applies the reader's checks: what it returns decodes."""
    author = did_key(key.public_key)
    if prev is not None and prev.author != author:
        raise InvalidInputError(f"expected a previous op by {author}, found one by {prev.author}")
    name, encoded = _encode_body(body)
    fields: dict[str, Any] = {
        "author": author,
        "seq": 0 if prev is None else prev.seq + 1,
        "prev": None if prev is None else Link(prev.cid),
        "parents": sorted({Link(p) for p in parents}, key=bytes),
        "chain": chain if prev is None else None,
        "time": time,
        name: encoded,
    }
    if name != "create":
        if keychain is None:
            raise InvalidInputError(f"expected the keychain of a {name} op, found none")
        fields["kc"] = Link(keychain)
    block = sign_object(SCHEMAS[name], fields, key)  # the reader's field checks and rules
    return _op(dagcbor.decode_trusted(block.data), block)


def make_create(
    key: SigningKey,
    *,
    name: str,
    secret: KeychainSecret,
    first: KeychainKey,
    recipients: Sequence[tuple[str, PublicEncryptionKey]],
    time: int,
    expires: int | None = None,
    rng: Rng | None = None,
) -> Op:
    """The first op of a new keychain: a random nonce, its sealed name and its first key,
    delivered to the creator (``recipients`` holds the creator's did and X25519 key)."""
    encoded = name.encode("utf-8")
    if not 0 < len(encoded) <= MAX_NAME_SIZE:
        raise InvalidInputError(
            f"expected a keychain name of 1 to {MAX_NAME_SIZE} bytes, found {len(encoded)}"
        )
    nonce = random_bytes(NONCE_SIZE, rng)
    me = did_key(key.public_key)
    own = [enc for did_, enc in recipients if did_ == me]
    if len(recipients) != 1 or not own:
        raise InvalidInputError("expected the creator alone as the recipient of its first key")
    body = Create(
        nonce=nonce,
        enc=bytes(own[0]),
        name=seal_name(secret, encoded, rng),
        key=key_fingerprint(first),
        expires=expires,
        delivery=make_delivery(secret, [first], recipients, rng),
    )
    chain = bytes(chain_key(key, nonce).public_key)
    return make_op(key, body, keychain=None, prev=None, time=time, chain=chain)


def make_delivery(
    secret: KeychainSecret,
    keys: Sequence[KeychainKey],
    recipients: Sequence[tuple[str, PublicEncryptionKey]],
    rng: Rng | None = None,
) -> Delivery:
    """Wrap a fresh release key for each recipient (did, X25519 key) and seal the secret
    and ``keys`` under it. Recipients are sorted by did (the order is part of the format)."""
    if not recipients:
        raise InvalidInputError("expected at least one recipient, found none")
    if len(recipients) > MAX_DELIVERY:
        raise InvalidInputError(
            f"expected at most {MAX_DELIVERY} recipients in one delivery, found {len(recipients)}",
            hint="split the recipients over several grant ops",
        )
    if not 0 < len(keys) <= MAX_KEYS:
        raise InvalidInputError(f"expected 1 to {MAX_KEYS} keys, found {len(keys)}")
    ordered = sorted(recipients, key=lambda r: r[0])
    release = ReleaseKey.generate(rng)
    stanzas = wrap(FileKey(release.secret_bytes()), [enc for _, enc in ordered], rng)
    bundle = dagcbor.encode(
        {"secret": secret.secret_bytes(), "keys": [k.secret_bytes() for k in keys]}
    )
    return Delivery(
        tuple(d for d, _ in ordered), tuple(bytes(s) for s in stanzas), seal_box(release, bundle)
    )


def open_delivery(
    delivery: Delivery, me: str, my_key: EncryptionKey, fingerprints: Sequence[bytes]
) -> tuple[KeychainSecret, list[KeychainKey]]:
    """The secret and the keys a delivery holds for ``me``, each checked against the
    fingerprint the op names (in order). Raises :class:`RecipientNotAuthorizedError` if
    ``me`` is not a recipient, :class:`KeyUnwrapFailedError` if the stanza, the box or a
    fingerprint does not match (a sender that sealed something other than it named)."""
    try:
        index = delivery.to.index(me)
    except ValueError:
        raise RecipientNotAuthorizedError(
            f"expected {me} among the {len(delivery.to)} recipients of the delivery, found not"
        ) from None
    try:
        stanza = Stanza.from_bytes(delivery.stanzas[index])
        release = ReleaseKey(unwrap([stanza], my_key).secret_bytes())
        bundle = dagcbor.decode(open_box(release, delivery.box))
    except (RecipientNotAuthorizedError, DecryptionError, FormatError) as exc:
        raise KeyUnwrapFailedError(
            f"expected a delivery that opens with this identity's key: {exc.message}",
            hint="the op is malformed or was not made for this key; ask the sharer again",
        ) from exc
    if (
        type(bundle) is not dict
        or bundle.keys() != {"secret", "keys"}
        or type(bundle["secret"]) is not bytes
        or len(bundle["secret"]) != 32
        or type(bundle["keys"]) is not list
        or len(bundle["keys"]) != len(fingerprints)
        or not all(type(k) is bytes and len(k) == 32 for k in bundle["keys"])
    ):
        raise KeyUnwrapFailedError(
            f"expected a bundle of the secret and {len(fingerprints)} keys, found another shape"
        )
    keys = [KeychainKey(k) for k in bundle["keys"]]
    for got, fp in zip(keys, fingerprints, strict=True):
        if key_fingerprint(got) != fp:
            raise KeyUnwrapFailedError(
                f"expected the key {fingerprint_text(fp)[:12]}..., found another key",
                hint="the sharer sealed a key other than the one the op names; it is ignored",
            )
    return KeychainSecret(bundle["secret"]), keys


__all__ += ["NONCE_SIZE", "SCHEMAS", "open_name"]


# --- one member's writer ------------------------------------------------------------------


class Writer:
    """Signs one member's ops in one keychain, one after the other (``prev`` and ``seq``
    follow by themselves; the first op names the member's chain key).

    >>> from ipfs_share.crypto.x25519 import EncryptionKey
    >>> from ipfs_share.crypto.random import DeterministicRng
    >>> rng = DeterministicRng(b"writer")
    >>> owner, enc = SigningKey.generate(rng), EncryptionKey.generate(rng)
    >>> w = Writer.create(owner, enc.public_key, name="team", time=1_800_000_000, rng=rng)
    >>> share = w.write(Share("did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp",
    ...                       (w.first_key,), None, Permissions()), time=1_800_000_060)
    >>> (share.seq, share.prev == w.created.cid, share.keychain == w.keychain)
    (1, True, True)
    """

    def __init__(self, identity: SigningKey, create: Op, last: Op | None = None) -> None:
        if not isinstance(create.body, Create):
            raise TypeError("expected the keychain's create op")
        self.identity = identity
        self.did = did_key(identity.public_key)
        self.created = create
        self.keychain = create.cid
        self.last = last if last is not None else (create if create.author == self.did else None)

    @classmethod
    def create(
        cls,
        identity: SigningKey,
        enc: PublicEncryptionKey,
        *,
        name: str,
        time: int,
        expires: int | None = None,
        secret: KeychainSecret | None = None,
        first: KeychainKey | None = None,
        rng: Rng | None = None,
    ) -> Writer:
        """A new keychain whose creator this writer is."""
        op = make_create(
            identity,
            name=name,
            secret=secret if secret is not None else KeychainSecret.generate(rng),
            first=first if first is not None else KeychainKey.generate(rng),
            recipients=[(did_key(identity.public_key), enc)],
            time=time,
            expires=expires,
            rng=rng,
        )
        return cls(identity, op)

    @property
    def first_key(self) -> bytes:
        assert isinstance(self.created.body, Create)
        return self.created.body.key

    @property
    def nonce(self) -> bytes:
        assert isinstance(self.created.body, Create)
        return self.created.body.nonce

    def chain_key(self) -> SigningKey:
        return chain_key(self.identity, self.nonce)

    def write(self, body: Body, *, time: int, parents: Sequence[str] = ()) -> Op:
        """Sign the next op; ``parents`` are the heads seen (the own previous op and
        repeats are dropped; at most :data:`MAX_PARENTS`, the first ones given kept)."""
        own = None if self.last is None else self.last.cid
        named = list(dict.fromkeys(p for p in parents if p != own))[:MAX_PARENTS]
        chain = bytes(self.chain_key().public_key) if self.last is None else None
        op = make_op(
            self.identity,
            body,
            keychain=self.keychain,
            prev=self.last,
            parents=named,
            time=time,
            chain=chain,
        )
        self.last = op
        return op


__all__ += ["Writer"]


# --- a member's chain as a feed -----------------------------------------------------------


def _feed_entry(data: bytes, signers: feed.Signers | None) -> feed.FeedEntry:
    """A chain entry for the feed walk: decoded and verified, signed by whom ``signers``
    accepts (``None``: bytes this home verified before; nothing is checked again)."""
    if signers is None:
        op = load_op(data, block_from_bytes(data).cid)
    else:
        op = decode_op(data)
        signers.key_for(op.author)  # refuses any other signer
    return feed_entry(op)


def feed_entry(op: Op) -> feed.FeedEntry:
    """An op as an entry of its author's chain (kind :data:`KEYCHAIN_FEED`)."""
    return feed.FeedEntry(
        kind="keychain",
        seq=op.seq,
        prev=op.prev,
        signer=op.author,
        cid=op.cid,
        data=op.data,
        value=op,
    )


# A member's ops in one keychain form a linked feed, read from seq 0 by a new reader. One
# recursive pin of the head keeps the member's ops and, through their parents, the
# causal past of the keychain it had seen.
KEYCHAIN_FEED: Final = feed.register(
    feed.FeedKind(name="keychain", read=_feed_entry, linked=True, history=True, pin="head")
)

__all__ += ["KEYCHAIN_FEED", "feed_entry"]
