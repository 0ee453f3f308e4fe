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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from ipfs_share.crypto.random import random_bytes
from ipfs_share.crypto.stream import PAYLOAD_NONCE_SIZE, FileKey
from ipfs_share.crypto.wrap import Stanza, unwrap, wrap
from ipfs_share.errors import InvalidInputError, NotFoundError
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
from ipfs_share.formats.cid import normalize_cid
from ipfs_share.formats.keystore import IdentityKeys
from ipfs_share.local.state import OpenRow, RotationRow, ShareRow, StateDB
from ipfs_share.services.files import FileService, MeshFile
from ipfs_share.services.identities import IdentityService, Recipient
from ipfs_share.services.opened import OpenedFile
from ipfs_share.services.policy import PolicyRegistry, PolicyRequest
from ipfs_share.services.revocations import RevocationService
from ipfs_share.storage.base import Storage

__all__ = ["RevokeResult", "ShareBuilder", "ShareCapsule", "ShareService", "parse_duration"]

_DURATION = re.compile(r"^(\d+)([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: str | int | timedelta | None) -> int | None:
    """Seconds from "90s", "15m", "12h", "7d", "2w", an int, a timedelta; None is never.

    >>> parse_duration("7d"), parse_duration(60), parse_duration(None)
    (604800, 60, None)
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
            hint="or pass no expiry for a share that does not expire",
        )
    if seconds <= 0:
        raise InvalidInputError(f"expected a positive duration, found {seconds} s")
    return seconds


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
    state: str = "active"
    replaced_by: str | None = None
    revoked_at: int | None = None
    revocation_head: str | None = None

    @classmethod
    def of(cls, row: ShareRow, pairs: Sequence[tuple[str, str]]) -> ShareCapsule:
        """The view of a recorded share (``StateDB.share`` and ``share_recipients``)."""
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
            state=row.state,
            replaced_by=row.replaced_by,
            revoked_at=row.revoked_at,
            revocation_head=row.revocation_head,
        )

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
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
            "revoked_at": self.revoked_at,
            "revocation_head": self.revocation_head,
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

    def to_json(self) -> dict[str, object]:
        return {
            "revoked": list(self.revoked),
            "revocation_head": self.head,
            "rotated_to": self.rotated_to,
            "reissued": [c.to_json() for c in self.reissued],
            "still_reaches": [{"did": d, "through": c} for d, c in self.still_reaches],
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
                hint="put it first with 'ipfs-share put', or share from the home that put it",
            )
        if row.owner != me.did:
            raise InvalidInputError(
                f"the file {content} belongs to {row.owner}, not to {me.name}",
                hint="pass --as with the identity that put it",
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
        return _view(row, pairs)

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
    def get(self, capsule_id: str) -> ShareCapsule:
        row = self.db.shares.get(normalize_cid(capsule_id))
        if row is None:
            raise NotFoundError(f"no share {capsule_id} was made from this home")
        return _view(row, self.db.shares.recipients(row.capsule))

    def list(self, *, content: str | None = None) -> list[ShareCapsule]:
        return [
            _view(r, self.db.shares.recipients(r.capsule))
            for r in self.db.shares.list(content=content)
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
        data = await self.storage.block_get(capsule_id)  # deadlines: storage/timed.py
        capsule = decode_capsule(data)  # size, strict encoding, fields, then the signature
        t = int(self._now() if now is None else now)
        check_expiry(capsule, t)
        issuer_doc = await self.identities.document(capsule.issuer)
        checked = await self.revocations.check(
            capsule.issuer, issuer_doc.revocations, capsule.cid, max_staleness=max_staleness
        )
        opener = self.identities.get(as_)
        if capsule.policy is not None:
            self.policies.check(
                capsule.policy.provider,
                PolicyRequest(capsule.cid, capsule.issuer, opener.did, t, capsule.policy.params),
            )
        token = require_capability(capsule, capability, audience=opener.did, now=t)
        keys = await self.identities.unlock(opener.did)
        file_key = find_and_unwrap(capsule, keys.encryption)
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
            OpenRow(capsule.cid, opener.did, t, checked.head, None if token is None else token.cid)
        )
        return opened

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
                hint="run this as the identity the share names (--as)",
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
    async def revoke(
        self, capsule_id: str, *, rotate: bool = False, drop: Sequence[str] = ()
    ) -> RevokeResult:
        """Put a capsule on our revocation list and unpin it.

        With ``rotate``, the content is re-encrypted under a new key, every other live
        capsule of that content is re-issued for the new content, and the old ciphertext
        is unpinned. ``drop`` (recipient names or dids) re-issues the revoked capsule itself
        to its recipients less these, and with ``rotate`` leaves them out of every
        re-issued capsule, so no new key reaches them. (Without ``rotate`` a dropped
        recipient who kept the old key can still decrypt the old ciphertext.) A recipient
        of the revoked capsule who gets the new key through another share is named in
        :attr:`RevokeResult.still_reaches`.

        An interrupted revoke (a crash, a kill) finishes when it is run again: the new
        content, the re-issued capsules and the revocation are each made once, and what
        the first run left pinned is unpinned."""
        row = self.db.shares.get(normalize_cid(capsule_id))
        if row is None:
            raise NotFoundError(
                f"no share {capsule_id} was made from this home",
                hint="only the home that shared it can revoke it",
            )
        if row.revoked_at is not None and row.revocation_head is not None:
            await self._finish(row)
            raise InvalidInputError(f"the share {row.capsule} is already {row.state}")
        # A share marked replaced but never revoked is what an interrupted revoke leaves
        # behind; finishing the revoke must stay possible.
        if row.state != "active" and not (row.state == "replaced" and row.revoked_at is None):
            raise InvalidInputError(f"the share {row.capsule} is already {row.state}")
        keys = await self.identities.unlock(row.issuer)
        dropped = {(await self.identities.recipient(d)).did for d in drop}
        revoked = [row.capsule]
        reissue: list[ShareRow] = []
        if dropped:
            reissue.append(row)
        content, new_content = row.content, row.content
        if rotate:
            new_content = await self._rekey(keys, content)
            others = [r for r in self.db.shares.list(content=content) if r.state == "active"]
            reissue += [r for r in others if r.capsule != row.capsule]
            revoked += [r.capsule for r in others if r.capsule != row.capsule]
        fresh: list[tuple[str, ShareCapsule]] = []  # (old capsule, its replacement)
        for old in reissue:
            # A dropped recipient gets no new capsule at all: with rotation, not even
            # through another share of the same content, or the new key would reach them.
            pairs = [(d, n) for d, n in self.db.shares.recipients(old.capsule) if d not in dropped]
            if pairs:
                fresh.append((old.capsule, await self._reissue_once(keys, old, new_content, pairs)))
        head = await self.revocations.revoke(keys, revoked)
        self.db.shares.mark_revoked(revoked, at=int(self._now()), head=head.cid)
        # Only now, with the old capsules on the published list, are they "replaced": a
        # revoke interrupted before this point leaves them active, and a retry finishes it.
        for old_id, made in fresh:
            self.db.shares.mark_replaced(old_id, made.id)
        done = self.db.shares.get(row.capsule)
        assert done is not None
        await self._finish(done)
        own = {d for d, _ in self.db.shares.recipients(row.capsule)} - dropped
        reaches = tuple(
            (d, made.id)
            for old_id, made in fresh
            if old_id != row.capsule
            for d, _ in made.recipients
            if d in own
        )
        return RevokeResult(
            tuple(revoked),
            head.cid,
            new_content if rotate else None,
            tuple(m for _, m in fresh),
            still_reaches=reaches,
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
                return _view(found, self.db.shares.recipients(made))
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
        )
        return await self._store(capsule, recipients, [n for _, n in pairs], reissue_of=old.capsule)


def _view(row: ShareRow, pairs: Sequence[tuple[str, str]]) -> ShareCapsule:
    return ShareCapsule.of(row, pairs)


def _fixed(nonce: bytes) -> Callable[[int], bytes]:
    """A source of randomness that gives ``nonce`` once, for the envelope's payload nonce
    (the one draw an encryptor makes), and refuses anything else."""
    given = [nonce]

    def rng(n: int) -> bytes:
        if n != len(nonce) or not given:
            raise AssertionError(f"expected one draw of {len(nonce)} bytes, found {n}")
        return given.pop()

    return rng
