"""Sharing: capsules that wrap a file key for recipients, opening them, revoking them.

A capsule (docs/spec/capsule.md) is a signed dag-cbor block that links to the content CID,
wraps the file key once per recipient, and commits to the key. Its ID is its CID. Sharing
stores it, pins it recursively (which keeps the content too), and records it locally.

Opening checks, in this order, and fails closed: the capsule's signature, its expiry, the
issuer's revocation list, the policy it names, the capability it requires, the unwrap of
a stanza (and the key commitment), and the content's integrity as it is read.
"""

from __future__ import annotations

import random
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from ipfs_share.crypto.random import random_bytes
from ipfs_share.crypto.stream import PAYLOAD_NONCE_SIZE, FileKey
from ipfs_share.crypto.wrap import Stanza, unwrap, wrap
from ipfs_share.errors import (
    InvalidInputError,
    NotFoundError,
    RecipientNotAuthorizedError,
    ShareError,
    ShareReplacedError,
    ShareRevokedError,
)
from ipfs_share.formats.capsule import (
    Capsule,
    Perms,
    Policy,
    build_capsule,
    check_commitment,
    check_expiry,
    decode_capsule,
    find_and_unwrap,
    make_capability,
    require_capability,
)
from ipfs_share.formats.cid import DAG_PB, RAW, normalize_cid, parse_cid
from ipfs_share.formats.keystore import IdentityKeys
from ipfs_share.local.state import OpenRow, RotationRow, ShareRow, StateDB
from ipfs_share.services.files import FileService, MeshFile
from ipfs_share.services.identities import IdentityService, Recipient
from ipfs_share.services.opened import OpenedFile
from ipfs_share.services.policy import PolicyRegistry, PolicyRequest
from ipfs_share.services.revocations import CheckedList, RevocationService
from ipfs_share.storage.base import Storage

__all__ = [
    "MAX_DURATION",
    "Reissue",
    "RevokePlan",
    "RevokeResult",
    "ShareBuilder",
    "ShareCapsule",
    "ShareService",
    "parse_duration",
    "share_state",
]

_DURATION = re.compile(r"^(\d+)([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
# The longest duration accepted: 100 years (of 365 days), so every expiry stays a date a
# person can read (ipfs_share.times.iso) and an integer every codec carries.
MAX_DURATION = 100 * 365 * 86400
ACCEPTED_DURATIONS = "1s to 36500d (100 years), as 90s, 15m, 12h, 7d or 2w"
# Capsules decoded and verified, kept by CID (a CID names its bytes, so what decoded and
# verified once always will): at most this many, and this many bytes of them.
CAPSULE_CACHE = 1024
CAPSULE_CACHE_BYTES = 8 << 20
# File keys unwrapped from a capsule's stanzas, kept by (capsule CID, the opener's X25519
# public key): the stanzas are the capsule's bytes, so the same key opens the same one
# each time. At most this many, least recently used out first; a failure is never kept.
FILE_KEY_CACHE = 256


def parse_duration(value: str | int | timedelta | None) -> int | None:
    """Seconds from "90s", "15m", "12h", "7d", "2w", an int, a timedelta; None is never.
    At most :data:`MAX_DURATION`.

    >>> parse_duration("7d"), parse_duration(60), parse_duration(None)
    (604800, 60, None)
    >>> parse_duration("99999999999999w")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ipfs_share.errors.InvalidInputError: expected a duration of at most 36500d (100 years), ...
    """
    if value is None:
        return None
    if isinstance(value, timedelta):
        seconds = int(value.total_seconds())
    elif isinstance(value, int) and not isinstance(value, bool):
        seconds = value
    elif isinstance(value, str) and (m := _DURATION.match(value.strip())):
        seconds = int(m[1]) * _UNITS[m[2]]
    else:
        raise InvalidInputError(
            f"expected a duration such as 90s, 15m, 12h, 7d or 2w, found {value!r:.40}",
            hint=f"accepted: {ACCEPTED_DURATIONS}; or no expiry, for a share that does not expire",
        )
    if seconds <= 0:
        raise InvalidInputError(
            f"expected a positive duration, found {seconds} s",
            hint=f"accepted: {ACCEPTED_DURATIONS}",
        )
    if seconds > MAX_DURATION:
        shown = value.strip() if isinstance(value, str) else f"{seconds} s"
        raise InvalidInputError(
            f"expected a duration of at most 36500d (100 years), found {shown:.40}",
            hint=f"accepted: {ACCEPTED_DURATIONS}; or no expiry, for a share that does not expire",
        )
    return seconds


def share_state(row: ShareRow, now: float) -> str:
    """A share's state as every view shows it: "active", "expired" (an active share past
    its expiry: nothing opens it, and it need not be revoked), "revoked" or "replaced"
    (revoked, and re-issued as ``row.replaced_by``).

    >>> row = ShareRow("bafyrei...", "bafybei...", "did:key:z6Mk...", 100, 200, True, False,
    ...                None, None)
    >>> share_state(row, 199), share_state(row, 200)
    ('active', 'expired')
    """
    if row.state == "active" and row.expires is not None and now >= row.expires:
        return "expired"
    return row.state


@dataclass(frozen=True, slots=True)
class ShareCapsule:
    id: str  # the capsule's CID
    content: str
    issuer: str
    recipients: tuple[tuple[str, str], ...]  # (did, how it was named)
    created: int
    expires: int | None
    allow_download: bool
    policy: str | None
    cap_issuer: str | None
    state: str = "active"  # see share_state: active, expired, revoked or replaced
    replaced_by: str | None = None
    revoked_at: int | None = None
    revocation_head: str | None = None
    replaces: str | None = None  # the capsule this one re-issues (a revoke made it)

    @classmethod
    def of(
        cls,
        row: ShareRow,
        pairs: Sequence[tuple[str, str]],
        *,
        now: float | None = None,
        replaces: str | None = None,
    ) -> ShareCapsule:
        """The view of a recorded share (``StateDB.shares``: its row and recipients) at
        ``now`` (default: the time now), which decides whether it is expired."""
        return cls(
            id=row.capsule,
            content=row.content,
            issuer=row.issuer,
            recipients=tuple(pairs),
            created=row.created,
            expires=row.expires,
            allow_download=row.download,
            policy=row.policy,
            cap_issuer=row.cap_issuer,
            state=share_state(row, time.time() if now is None else now),
            replaced_by=row.replaced_by,
            revoked_at=row.revoked_at,
            revocation_head=row.revocation_head,
            replaces=replaces,
        )

    def to_json(self) -> dict[str, object]:
        return {
            "capsule": self.id,
            "content": self.content,
            "issuer": self.issuer,
            "recipients": [{"did": d, "name": n} for d, n in self.recipients],
            "created": self.created,
            "expires": self.expires,
            "allow_download": self.allow_download,
            "policy": self.policy,
            "capability_issuer": self.cap_issuer,
            "state": self.state,
            "replaced_by": self.replaced_by,
            "replaces": self.replaces,
            "revoked_at": self.revoked_at,
            "revocation_head": self.revocation_head,
        }


@dataclass(frozen=True, slots=True)
class Reissue:
    """One capsule a revoke re-issues: ``old`` is revoked, and a new capsule of the
    (new) content is made for ``to`` (did, label), naming ``old`` in its ``replaces``;
    ``send_to`` (dids) get the new capsule in their inboxes."""

    old: str
    to: tuple[tuple[str, str], ...]
    send_to: tuple[str, ...] = ()

    def to_json(self) -> dict[str, object]:
        return {
            "replaces": self.old,
            "recipients": [{"did": d, "name": n} for d, n in self.to],
            "send_to": list(self.send_to),
        }


@dataclass(frozen=True, slots=True)
class RevokePlan:
    """What a revoke will do (:meth:`ShareService.plan_revoke`), before it does any of it:
    the capsules that go on the revocation list (``revoked``, each with its recipients),
    those re-issued (``reissue``: to whom, and whose inboxes get them), the dropped
    recipients, whether the content is re-keyed (``rotate``; its ciphertext ``content``
    is then unpinned), and revoked shares not re-issued because they had expired."""

    capsule: str
    content: str
    revoked: tuple[tuple[str, tuple[tuple[str, str], ...]], ...]
    reissue: tuple[Reissue, ...]
    dropped: tuple[str, ...]
    rotate: bool
    expired: tuple[str, ...] = ()
    still_reaches: tuple[tuple[str, str], ...] = ()  # (did, old capsule re-issued to them)

    def to_json(self) -> dict[str, object]:
        return {
            "capsule": self.capsule,
            "content": self.content,
            "revoke": [
                {"capsule": c, "recipients": [{"did": d, "name": n} for d, n in to]}
                for c, to in self.revoked
            ],
            "reissue": [r.to_json() for r in self.reissue],
            "dropped": list(self.dropped),
            "rotate": self.rotate,
            "unpin": [c for c, _ in self.revoked] + ([self.content] if self.rotate else []),
            "expired": list(self.expired),
            "still_reaches": [{"did": d, "through": c} for d, c in self.still_reaches],
        }


@dataclass(frozen=True, slots=True)
class RevokeResult:
    revoked: tuple[str, ...]  # capsule IDs now on the revocation list
    head: str  # the revocation list head that records them
    rotated_to: str | None = None  # the new content CID, after a rotation
    reissued: tuple[ShareCapsule, ...] = field(default=())
    # Recipients of the revoked capsule who get the new key all the same, through a
    # re-issued share of the same content: (did, re-issued capsule ID). Drop them to stop it.
    still_reaches: tuple[tuple[str, str], ...] = field(default=())
    plan: RevokePlan | None = None  # what was planned (each revoked capsule's recipients)
    # Sending the re-issued capsules (a service with mailboxes does, MailShareService):
    # (capsule, recipient did) sent, and those that could not be, with why.
    sent: tuple[tuple[str, str], ...] = field(default=())
    not_sent: tuple[tuple[str, str, str], ...] = field(default=())

    def to_json(self) -> dict[str, object]:
        return {
            "revoked": list(self.revoked),
            "revocation_head": self.head,
            "rotated_to": self.rotated_to,
            "reissued": [c.to_json() for c in self.reissued],
            "still_reaches": [{"did": d, "through": c} for d, c in self.still_reaches],
            "sent": [{"capsule": c, "recipient": d} for c, d in self.sent],
            "not_sent": [{"capsule": c, "recipient": d, "why": why} for c, d, why in self.not_sent],
        }


class ShareBuilder:
    """``await mesh.share.file(f).with_(["bob", "carol"], expires_in="7d")``."""

    def __init__(self, service: ShareService, content: str) -> None:
        self._service = service
        self._content = content

    async def with_(
        self,
        recipients: str | Sequence[str],
        *,
        expires_in: str | int | timedelta | None = "7d",
        allow_download: bool = True,
        policy: Policy | tuple[str, dict[str, Any]] | None = None,
        capability: str | None = None,
        as_: str | None = None,
    ) -> ShareCapsule:
        """Share with one or more recipients (local identity names, contact petnames,
        dids or IPNS names). ``capability`` names who issues the capability tokens an
        opener must present: ``"self"`` (the sharer) or a did / name of a vault identity."""
        names = [recipients] if isinstance(recipients, str) else list(recipients)
        if not names:
            raise InvalidInputError("expected at least one recipient, found none")
        if isinstance(policy, tuple):
            policy = Policy(policy[0], policy[1])
        return await self._service.share_file(
            self._content,
            names,
            expires_in=parse_duration(expires_in),
            perms=Perms(download=allow_download),
            policy=policy,
            capability=capability,
            as_=as_,
        )


class ShareService:
    def __init__(
        self,
        storage: Storage,
        db: StateDB,
        identities: IdentityService,
        files: FileService,
        revocations: RevocationService,
        policies: PolicyRegistry,
        *,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.storage = storage
        self.db = db
        self.identities = identities
        self.files = files
        self.revocations = revocations
        self.policies = policies
        self._now = now
        self._capsules: OrderedDict[str, Capsule] = OrderedDict()
        self._capsule_bytes = 0
        self._file_keys: OrderedDict[tuple[str, str, bytes], FileKey] = OrderedDict()

    # -- sharing --------------------------------------------------------------------------
    def file(self, file_or_cid: MeshFile | str) -> ShareBuilder:
        cid = file_or_cid.cid if isinstance(file_or_cid, MeshFile) else normalize_cid(file_or_cid)
        return ShareBuilder(self, cid)

    async def share_file(
        self,
        content: str,
        names: list[str],
        *,
        expires_in: int | None,
        perms: Perms,
        policy: Policy | None,
        capability: str | None,
        as_: str | None,
    ) -> ShareCapsule:
        me = self.identities.get(as_)
        row = self.db.files.get(content)
        if row is None or row.state != "stored":
            raise NotFoundError(
                f"no stored file {content} was put from this home",
                hint="put it first (files.put), or share from the home that put it",
                reason="not_put_here",
                subject=content,
            )
        if row.owner != me.did:
            raise InvalidInputError(
                f"the file {content} belongs to {row.owner}, not to {me.name}",
                hint="act as the identity that put it (as_=)",
                reason="not_owner",
            )
        recipients = [await self.identities.recipient(n) for n in names]
        cap_issuer = await self._cap_issuer(capability, me.did)
        if policy is not None:
            self.policies.names()  # providers are looked up at open; the name is free text
        keys = await self.identities.unlock(me.did)
        file_key = self.files.file_key(content, keys.encryption)
        await self._ensure_published(keys)
        created = int(self._now())
        capsule = self._build(
            keys, content, file_key, recipients, created, expires_in, perms, policy, cap_issuer
        )
        return await self._store(capsule, recipients, names)

    def _build(
        self,
        keys: IdentityKeys,
        content: str,
        file_key: FileKey,
        recipients: list[Recipient],
        created: int,
        expires_in: int | None,
        perms: Perms,
        policy: Policy | None,
        cap_issuer: str | None,
        replaces: str | None = None,
    ) -> Capsule:
        # Stanza order must not echo the order of an address book: shuffle the keys.
        keys_in_order = [r.enc for r in recipients]
        random.SystemRandom().shuffle(keys_in_order)
        return build_capsule(
            keys.signing,
            content=content,
            file_key=file_key,
            recipients=keys_in_order,
            created=created,
            expires=None if expires_in is None else created + expires_in,
            perms=perms,
            policy=policy,
            cap_issuer=cap_issuer,
            replaces=replaces,
        )

    async def _store(
        self,
        capsule: Capsule,
        recipients: list[Recipient],
        labels: list[str],
        *,
        reissue_of: str | None = None,
    ) -> ShareCapsule:
        await self.storage.block_put(capsule.data, codec="dag-cbor")
        if reissue_of is None:
            # A recursive pin on the capsule keeps its content too.
            await self.storage.pin_add(capsule.cid)
        row = ShareRow(
            capsule=capsule.cid,
            content=capsule.content.cid,
            issuer=capsule.issuer,
            created=capsule.created,
            expires=capsule.expires,
            download=capsule.perms.download,
            reshare=False,  # a column from capsule version 1, which had perms.reshare
            policy=None if capsule.policy is None else capsule.policy.provider,
            cap_issuer=capsule.cap_issuer,
        )
        pairs = list(
            dict.fromkeys((r.did, label) for r, label in zip(recipients, labels, strict=True))
        )
        self.db.shares.add(row, pairs, reissue_of=reissue_of)
        if reissue_of is not None:
            # Pinned once recorded (with what it re-issues): a revoke interrupted before
            # this leaves an unpinned block, never a pinned capsule nothing knows of.
            await self.storage.pin_add(capsule.cid)
        return self._view(row, pairs)

    async def _cap_issuer(self, capability: str | None, me: str) -> str | None:
        if capability is None:
            return None
        if capability == "self":
            return me
        return (await self.identities.recipient(capability)).did

    async def _ensure_published(self, keys: IdentityKeys) -> None:
        """A recipient needs our identity document (for the revocation list's name) and
        the list itself: publish both on the first share."""
        if self.identities.get(keys.did).published_seq is None:
            await self.identities.publish(keys.did)
        await self.revocations.ensure_list(keys)

    # -- records --------------------------------------------------------------------------
    def _view(self, row: ShareRow, pairs: Sequence[tuple[str, str]]) -> ShareCapsule:
        replaces = self.db.shares.reissue_of(row.capsule)
        return ShareCapsule.of(row, pairs, now=self._now(), replaces=replaces)

    def get(self, capsule_id: str) -> ShareCapsule:
        row = self.db.shares.get(normalize_cid(capsule_id))
        if row is None:
            raise NotFoundError(f"no share {capsule_id} was made from this home")
        return self._view(row, self.db.shares.recipients(row.capsule))

    def list(self, *, content: str | None = None, issuer: str | None = None) -> list[ShareCapsule]:
        """Shares made from this home (of ``content``, by ``issuer``), oldest first."""
        return [
            self._view(r, self.db.shares.recipients(r.capsule))
            for r in self.db.shares.list(content=content, issuer=issuer)
        ]

    def opens(self, capsule_id: str | None = None) -> Sequence[OpenRow]:
        """The opens recorded in this home (all, or of one capsule), oldest first."""
        return self.db.shares.opens(None if capsule_id is None else normalize_cid(capsule_id))

    # -- opening --------------------------------------------------------------------------
    async def open_capsule(
        self,
        capsule_or_id: ShareCapsule | str,
        *,
        as_: str | None = None,
        capability: bytes | None = None,
        now: float | None = None,
        max_staleness: float | None = None,
    ) -> OpenedFile:
        """Check everything, in order, then return the opened file (see the module doc).

        ``max_staleness`` (seconds) overrides the service's staleness rule for this open:
        when the issuer's revocation list cannot be resolved, a head verified at most that
        long ago is accepted; by default an open fails closed."""
        capsule_id = capsule_or_id.id if isinstance(capsule_or_id, ShareCapsule) else capsule_or_id
        capsule_id = normalize_cid(capsule_id)
        self._refuse_content_cid(capsule_id)
        capsule = await self._capsule(capsule_id)
        t = int(self._now() if now is None else now)
        check_expiry(capsule, t)
        issuer_doc = await self.identities.document(capsule.issuer)
        checked = await self._check_revocation(capsule, issuer_doc.revocations, as_, max_staleness)
        opener_name, opener = self.identities.name_and_did(as_)
        if capsule.policy is not None:
            self.policies.check(
                capsule.policy.provider,
                PolicyRequest(capsule.cid, capsule.issuer, opener, t, capsule.policy.params),
            )
        token = require_capability(capsule, capability, audience=opener, now=t)
        keys = await self.identities.unlock(opener)
        file_key = self._unwrap(capsule, keys, opener_name, opener)
        check_commitment(capsule, file_key)
        opened = await self.files.open(
            capsule.content.cid,
            file_key,
            allow_download=capsule.perms.download,
            capsule=capsule.cid,
            issuer=capsule.issuer,
            issuer_name=self._name_of(capsule.issuer),
        )
        self.db.shares.record_open(
            OpenRow(capsule.cid, opener, t, checked.head, None if token is None else token.cid)
        )
        return opened

    async def _capsule(self, cid: str) -> Capsule:
        """The capsule ``cid`` decoded and verified: fetched (its bytes hashed against the
        CID) and decoded once, then held (:data:`CAPSULE_CACHE`, least recently used
        first out). What it decoded to cannot change; its expiry and revocation are
        checked at every open."""
        held = self._capsules.get(cid)
        if held is not None:
            self._capsules.move_to_end(cid)
            return held
        data = await self.storage.block_get(cid)  # deadlines: storage/timed.py
        capsule = decode_capsule(data)  # size, strict encoding, fields, then the signature
        if cid in self._capsules:  # another open of it fetched it meanwhile: counted once
            return capsule
        self._capsules[cid] = capsule
        self._capsule_bytes += len(capsule.data)
        while len(self._capsules) > CAPSULE_CACHE or self._capsule_bytes > CAPSULE_CACHE_BYTES:
            _, dropped = self._capsules.popitem(last=False)
            self._capsule_bytes -= len(dropped.data)
        return capsule

    async def _check_revocation(
        self, capsule: Capsule, list_name: str, as_: str | None, max_staleness: float | None
    ) -> CheckedList:
        """Step 3: the issuer's revocation list; a revoked capsule its issuer re-issued to
        the opener is :class:`ShareReplacedError` (see :meth:`_revoked`)."""
        try:
            return await self.revocations.check(
                capsule.issuer, list_name, capsule.cid, max_staleness=max_staleness
            )
        except ShareRevokedError as exc:
            raise self._revoked(capsule, self.identities.get(as_).did, exc) from None

    def _unwrap(self, capsule: Capsule, keys: IdentityKeys, name: str, did: str) -> FileKey:
        """Step 6: the stanza of the opener (``name``, ``did``). An issuer holds no stanza
        in its own capsule (it reads its file with :meth:`FileService.open_own`): it is
        told so, in those words. A key unwrapped once is kept (:data:`FILE_KEY_CACHE`);
        the commitment is checked at every open all the same."""
        held_as = (capsule.cid, did, bytes(keys.encryption.public_key))
        held = self._file_keys.get(held_as)
        if held is not None:
            self._file_keys.move_to_end(held_as)
            return held
        try:
            file_key = find_and_unwrap(capsule, keys.encryption)
        except RecipientNotAuthorizedError:
            if capsule.issuer != did:
                raise
            raise RecipientNotAuthorizedError(
                f"{name} issued this share for others, and it holds no key for "
                f"{name}; the file is {capsule.content.cid}",
                hint=f"read your own file with files.open_own({capsule.content.cid!r})",
                reason="own_share",
                subject=capsule.content.cid,
            ) from None
        self._file_keys[held_as] = file_key
        if len(self._file_keys) > FILE_KEY_CACHE:
            self._file_keys.popitem(last=False)
        return file_key

    def forget(self, did: str) -> None:
        """Drop the file keys unwrapped for ``did`` (its identity was locked: what was
        derived from its secret key goes with it), and every header the file service
        holds (a header carries its file's payload key; which identity opened it is not
        kept, so all go)."""
        for held_as in [k for k in self._file_keys if k[1] == did]:
            del self._file_keys[held_as]
        self.files.forget_headers()

    def _refuse_content_cid(self, cid: str) -> None:
        """A content CID (raw or dag-pb: what put prints) is never a capsule ID (dag-cbor):
        say so before fetching anything."""
        if parse_cid(cid).codec not in (RAW, DAG_PB):
            return
        row = self.db.files.get(cid)
        if row is not None and self.identities.keystore.find(row.owner) is not None:
            raise InvalidInputError(
                f"{cid} is the content CID of a file you put, not a capsule ID",
                hint=f"read your own file with files.open_own({cid!r}); capsules are what "
                "sharing makes",
                reason="own_content_cid",
                subject=cid,
            )
        raise InvalidInputError(
            f"{cid} is a content CID (encrypted file data), not a capsule ID",
            hint="opening takes the capsule ID the sharer's share gave (bafyrei..., a "
            "dag-cbor CID); ask the sender for it",
            reason="content_cid",
            subject=cid,
        )

    def _revoked(self, capsule: Capsule, opener: str, exc: ShareRevokedError) -> ShareError:
        """The error for a revoked capsule: :class:`ShareReplacedError` naming the new
        capsule when the issuer re-issued it to ``opener`` (a capsule of the same issuer
        that names this one in ``replaces`` arrived in the opener's inbox), else
        ``exc``. The inbox item, if any, is marked revoked."""
        self.db.mailboxes.mark_revoked(opener, [capsule.cid])
        found = self.db.mailboxes.replacement(opener, capsule.cid, capsule.issuer)
        if found is None:
            return exc
        return ShareReplacedError(
            f"the share {capsule.cid} was revoked by its issuer and replaced by {found.capsule}",
            replaced_by=found.capsule,
        )

    def _name_of(self, did: str) -> str | None:
        """How this home names ``did``: a local identity's name, else a contact petname."""
        own = self.identities.keystore.find(did)
        if own is not None:
            return own.name
        contacts = self.db.contacts.of(did)
        return contacts[0].petname if contacts else None

    # -- capabilities ---------------------------------------------------------------------
    async def issue_capability(
        self,
        capsule_id: str,
        audience: str,
        *,
        valid_for: str | int | timedelta = "1d",
        as_: str | None = None,
        now: float | None = None,
    ) -> bytes:
        """A capability token letting ``audience`` open ``capsule_id``, signed by the
        identity the capsule names as its capability issuer (the owner or a vault)."""
        capsule_id = normalize_cid(capsule_id)
        capsule = decode_capsule(await self.storage.block_get(capsule_id))
        me = self.identities.get(as_)
        if capsule.cap_issuer is None:
            raise InvalidInputError(f"the capsule {capsule_id} requires no capability")
        if capsule.cap_issuer != me.did:
            raise InvalidInputError(
                f"capabilities for {capsule_id} are issued by {capsule.cap_issuer}, "
                f"not by {me.did}",
                hint="act as the identity the share names (as_=)",
                reason="capability_issuer",
            )
        who = (await self.identities.recipient(audience)).did
        seconds = parse_duration(valid_for)
        assert seconds is not None
        t = int(self._now() if now is None else now)
        keys = await self.identities.unlock(me.did)
        return make_capability(
            keys.signing, aud=who, capsule=capsule_id, nbf=t, exp=t + seconds
        ).data

    # -- revoking -------------------------------------------------------------------------
    def _revocable(self, capsule_id: str) -> ShareRow:
        row = self.db.shares.get(normalize_cid(capsule_id))
        if row is None:
            raise NotFoundError(
                f"no share {capsule_id} was made from this home",
                hint="only the home that shared it can revoke it",
            )
        # A share marked replaced but never revoked is what an interrupted revoke of an
        # earlier version left behind; finishing the revoke must stay possible.
        if row.revoked_at is not None or (
            row.state != "active" and not (row.state == "replaced" and row.revoked_at is None)
        ):
            raise InvalidInputError(f"the share {row.capsule} is already {row.state}")
        return row

    def plan_revoke(
        self,
        capsule_id: str,
        *,
        rotate: bool = False,
        drop: Sequence[str] = (),
        send: bool | None = None,
    ) -> RevokePlan:
        """What :meth:`revoke` would do, computed from this home's records alone: nothing
        is changed, fetched or unlocked. It refuses what :meth:`revoke` refuses: a share
        not made here or already revoked, a ``drop`` that names someone who is not a
        recipient, and ``drop`` without ``rotate`` (the content would keep its key, which
        a dropped recipient may have kept).

        ``send`` says whose inboxes get the re-issued capsules: None, the recipients the
        old capsule was sent to through mailboxes; True, every recipient of each; False,
        nobody (a service with mailboxes sends them: ``mesh.share``)."""
        row = self._revocable(capsule_id)
        recipients = self.db.shares.recipients(row.capsule)
        theirs = {d for d, _ in recipients}
        dropped: list[str] = []
        for name in drop:
            did = self.identities.did_of(name)
            if did not in theirs:
                labels = ", ".join(label for _, label in recipients)
                raise InvalidInputError(
                    f"{name} is not a recipient of the share {row.capsule}",
                    hint=f"its recipients: {labels}",
                    reason="not_a_recipient",
                    subject=labels,
                )
            dropped.append(did)
        if dropped and not rotate:
            raise InvalidInputError(
                "dropping recipients needs a rotation: without a new key, a dropped "
                "recipient who kept the file key still decrypts the content",
                hint="pass rotate=True, or revoke the share and share again with the others",
                reason="drop_without_rotate",
            )
        now = self._now()
        revoked = [row]
        reissue = [row] if dropped else []
        expired: list[str] = []
        if rotate:
            for other in self.db.shares.list(content=row.content):
                if other.capsule == row.capsule or other.state != "active":
                    continue
                revoked.append(other)
                if share_state(other, now) == "expired":
                    expired.append(other.capsule)  # revoked (and unpinned), not re-issued
                else:
                    reissue.append(other)
        planned: list[Reissue] = []
        for old in reissue:
            # A dropped recipient gets no new capsule at all: with rotation, not even
            # through another share of the same content, or the new key would reach them.
            pairs = tuple(
                (d, n) for d, n in self.db.shares.recipients(old.capsule) if d not in dropped
            )
            if not pairs:
                continue
            if send is None:
                sent = {r.recipient for r in self.db.mailboxes.sent(capsule=old.capsule)}
                send_to = tuple(d for d, _ in pairs if d in sent)
            else:
                send_to = tuple(d for d, _ in pairs) if send else ()
            planned.append(Reissue(old.capsule, pairs, send_to))
        own = theirs - set(dropped)
        return RevokePlan(
            capsule=row.capsule,
            content=row.content,
            revoked=tuple(
                (r.capsule, tuple(self.db.shares.recipients(r.capsule))) for r in revoked
            ),
            reissue=tuple(planned),
            dropped=tuple(dropped),
            rotate=rotate,
            expired=tuple(expired),
            still_reaches=tuple(
                (d, r.old) for r in planned if r.old != row.capsule for d, _ in r.to if d in own
            ),
        )

    async def revoke(
        self,
        capsule_id: str,
        *,
        rotate: bool = False,
        drop: Sequence[str] = (),
        send: bool | None = None,
    ) -> RevokeResult:
        """Put a capsule on our revocation list and unpin it.

        With ``rotate``, the content is re-encrypted under a new key, every other live
        capsule of that content is re-issued for the new content (an expired one is
        revoked, not re-issued), and the old ciphertext is unpinned. ``drop`` (recipient
        names or dids; needs ``rotate``) re-issues the revoked capsule itself to its
        recipients less these, and leaves them out of every re-issued capsule, so no new
        key reaches them. A recipient of the revoked capsule who gets the new key through
        another share is named in :attr:`RevokeResult.still_reaches`. Each re-issued
        capsule names the one it replaces, so its recipients are told which to open
        instead (docs/spec/capsule.md section 1.7); ``send``: see :meth:`plan_revoke`.
        :meth:`plan_revoke` says all of this beforehand, changing nothing.

        An interrupted revoke (a crash, a kill) finishes when it is run again: the new
        content, the re-issued capsules and the revocation are each made once, and what
        the first run left pinned is unpinned."""
        row = self.db.shares.get(normalize_cid(capsule_id))
        if row is not None and row.revoked_at is not None and row.revocation_head is not None:
            await self._finish(row)
            raise InvalidInputError(f"the share {row.capsule} is already {row.state}")
        plan = self.plan_revoke(capsule_id, rotate=rotate, drop=drop, send=send)
        row = self._revocable(plan.capsule)
        keys = await self.identities.unlock(row.issuer)
        new_content = await self._rekey(keys, row.content) if rotate else row.content
        fresh: list[tuple[str, ShareCapsule]] = []  # (old capsule, its replacement)
        for planned in plan.reissue:
            old = self.db.shares.get(planned.old)
            assert old is not None
            fresh.append(
                (old.capsule, await self._reissue_once(keys, old, new_content, planned.to))
            )
        revoked = [c for c, _ in plan.revoked]
        head = await self.revocations.revoke(keys, revoked)
        self.db.shares.mark_revoked(revoked, at=int(self._now()), head=head.cid)
        # Only now, with the old capsules on the published list, are they "replaced": a
        # revoke interrupted before this point leaves them active, and a retry finishes it.
        for old_id, made in fresh:
            self.db.shares.mark_replaced(old_id, made.id)
        done = self.db.shares.get(row.capsule)
        assert done is not None
        await self._finish(done)
        made_for = dict(fresh)
        return RevokeResult(
            tuple(revoked),
            head.cid,
            new_content if rotate else None,
            tuple(m for _, m in fresh),
            still_reaches=tuple((d, made_for[old].id) for d, old in plan.still_reaches),
            plan=plan,
        )

    async def _finish(self, row: ShareRow) -> None:
        """What a revoke does after its head is published: unpin every capsule it revoked
        and, after a rotation, the old ciphertext. Run again, it does nothing new."""
        assert row.revocation_head is not None
        for c in self.db.shares.revoked_with(row.revocation_head):
            await self.storage.pin_rm(c)
        rotation = self.db.shares.rotation(row.content)
        if rotation is not None and rotation.new_content is not None and rotation.done_at is None:
            old = self.db.files.get(row.content)
            if old is not None and old.state == "stored":
                await self.files.remove(row.content)
            self.db.shares.rotation_done(row.content, at=int(self._now()))

    async def _rekey(self, keys: IdentityKeys, content: str) -> str:
        """Re-encrypt a file we own under a new key: decrypt, encrypt, add, streaming.

        The new key and the new envelope's nonce are recorded first, so a retry after an
        interruption makes the very same envelope (the same CID: stored and pinned once)
        instead of a second copy."""
        now = int(self._now())
        key = FileKey.generate()
        rotation = self.db.shares.start_rotation(
            RotationRow(
                content=content,
                owner=keys.did,
                stanza=bytes(wrap(key, [keys.enc_public])[0]),
                nonce=random_bytes(PAYLOAD_NONCE_SIZE),
                started_at=now,
            )
        )
        if rotation.new_content is not None:
            found = self.db.files.get(rotation.new_content)
            if found is not None and found.state == "stored":
                return rotation.new_content
        file_key = unwrap([Stanza.from_bytes(rotation.stanza)], keys.encryption)
        nonce = rotation.nonce
        old = self.files.get(content)
        old_key = self.files.file_key(content, keys.encryption)
        opened = await self.files.open(content, old_key)
        made = await self.files.put_as(
            old.name,
            opened.__aiter__(),
            owner=keys.did,
            owner_enc=keys.enc_public,
            media_type=old.media_type,
            size=opened.size,
            file_key=file_key,
            rng=_fixed(nonce),
        )
        self.db.shares.rotated(content, made.cid)
        return made.cid

    async def _reissue_once(
        self, keys: IdentityKeys, old: ShareRow, content: str, pairs: Sequence[tuple[str, str]]
    ) -> ShareCapsule:
        """:meth:`_reissue`, or the capsule an interrupted revoke already made for it."""
        made = self.db.shares.reissued_as(old.capsule)
        if made is not None:
            found = self.db.shares.get(made)
            if found is not None and found.content == content and found.state == "active":
                await self.storage.pin_add(made)  # in case the first run stopped before
                return self._view(found, self.db.shares.recipients(made))
        return await self._reissue(keys, old, content, pairs)

    async def _reissue(
        self, keys: IdentityKeys, old: ShareRow, content: str, pairs: Sequence[tuple[str, str]]
    ) -> ShareCapsule:
        file_key = self.files.file_key(content, keys.encryption)
        recipients = [await self.identities.recipient(d) for d, _ in pairs]
        now = int(self._now())
        expires_in = None if old.expires is None else max(1, old.expires - now)
        policy = None
        if old.policy is not None:
            previous = decode_capsule(await self.storage.block_get(old.capsule))
            policy = previous.policy
        capsule = self._build(
            keys,
            content,
            file_key,
            recipients,
            now,
            expires_in,
            Perms(download=old.download),
            policy,
            old.cap_issuer,
            replaces=old.capsule,
        )
        return await self._store(capsule, recipients, [n for _, n in pairs], reissue_of=old.capsule)


def _fixed(nonce: bytes) -> Callable[[int], bytes]:
    """A source of randomness that gives ``nonce`` once, for the envelope's payload nonce
    (the one draw an encryptor makes), and refuses anything else."""
    given = [nonce]

    def rng(n: int) -> bytes:
        if n != len(nonce) or not given:
            raise AssertionError(f"expected one draw of {len(nonce)} bytes, found {n}")
        return given.pop()

    return rng
