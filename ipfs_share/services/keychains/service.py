"""Keychains: e2esdk's model (keys with rotation, shares, four permissions, participants,
bans, events) enforced by signatures over a log every member replays.

``mesh.keychains`` writes this home's ops (each checked locally first, so an op that every
replica would ignore is refused before it is signed), publishes each member's chain,
reads the other members' chains, replays, and acts on what it finds: on every sync it
accepts the offers addressed to this home and releases the keys of its own offers that
were accepted (e2esdk's "shared keys arrive by themselves"), then opens the keys it now
holds and fires ``keychain_updated`` then ``key_received`` for each.

Offers reach a recipient who does not know the keychain through a :class:`Notifier` (the
mailbox, wired by the facade); without one, or out of band, :meth:`receive` takes the CID
of an offer (or of an accept of our offer) directly.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import inspect
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from ipfs_share.crypto.keychain import KeychainKey, key_fingerprint
from ipfs_share.crypto.signing import SigningKey
from ipfs_share.crypto.stream import FileKey
from ipfs_share.crypto.x25519 import PublicEncryptionKey
from ipfs_share.errors import (
    InvalidInputError,
    IpfsShareError,
    KeychainNotFoundError,
    PermissionDeniedError,
    RecipientNotAuthorizedError,
)
from ipfs_share.formats.feed import FeedEntry
from ipfs_share.formats.ipns import ipns_name
from ipfs_share.formats.keychain import (
    KEYCHAIN_FEED,
    MAX_DELIVERY,
    PERMISSION_NAMES,
    Accept,
    AddKey,
    Ban,
    Body,
    Cancel,
    Create,
    Grant,
    Leave,
    Op,
    Permissions,
    Release,
    SetPermissions,
    Share,
    Writer,
    chain_key,
    chain_name,
    decode_op,
    feed_entry,
    fingerprint_text,
    load_op,
    make_delivery,
)
from ipfs_share.formats.keychain_file import (
    KeychainFile,
    decode_keychain_file,
    make_keychain_file,
    open_file_key,
)
from ipfs_share.formats.keychain_replay import Member, Offer, Rejection, Replica
from ipfs_share.formats.keystore import IdentityKeys
from ipfs_share.local.state import StateDB
from ipfs_share.local.state.keychains import StoredOp
from ipfs_share.services.feeds import Batch, Feed, FeedReader, FeedWriter
from ipfs_share.services.identities import IdentityService
from ipfs_share.services.keychains.chains import ChainNetwork
from ipfs_share.services.keychains.keyring import Keyring, resolve_key
from ipfs_share.services.keychains.views import (
    BanResult,
    KeychainView,
    KeyReceived,
    KeyView,
    OutgoingShare,
    Participant,
    Rejected,
    SyncReport,
)
from ipfs_share.services.mailbox import MailboxService
from ipfs_share.storage.base import Storage

__all__ = ["EVENTS", "KeychainService", "MailboxNotifier", "Notifier"]

log = logging.getLogger("ipfs_share.keychains")

EVENTS = ("keychain_updated", "key_received")
SYNC_SECONDS = 60.0  # how long one sync may spend reading one member's chain
Event = Literal["keychain_updated", "key_received"]
Callback = Callable[[Any], object]


class Notifier(Protocol):
    """How ops reach a member who may not read the keychain yet (the mailbox, wired by the
    facade): ``notify`` points ``recipient`` (a did) at op ``op`` of ``sender`` (an offer
    for it, or an accept of its offer); ``poll`` reads what was pointed at ``member`` and
    files it (the mailbox reader files pointers with its mark, in the state's
    ``keychain_notices``)."""

    async def notify(self, sender: str, recipient: str, op: str) -> None: ...

    async def poll(self, member: str) -> None: ...


class MailboxNotifier:
    """:class:`Notifier` over the mailbox: an entry of kind ``keychain`` in our mailbox for
    the recipient; a poll is an inbox sync (which files the pointers it finds)."""

    def __init__(self, mailbox: MailboxService) -> None:
        self.mailbox = mailbox

    async def notify(self, sender: str, recipient: str, op: str) -> None:
        await self.mailbox.send_op(op, recipient, as_=sender)

    async def poll(self, member: str) -> None:
        report = await self.mailbox.sync_report(member)
        for who, exc in report.failed:
            log.info("keychain pointers: the mailbox from %s: %s", who, exc.message)


@dataclass(slots=True)
class _Loaded:
    """One keychain as one local member sees it."""

    keychain: str
    member: str
    role: str
    replica: Replica
    keyring: Keyring
    stored: set[str] = field(default_factory=set)  # op CIDs in the repository
    row: int = 0  # the last repository row loaded
    name: str | None = None  # as stored once opened (so a listing needs no key)

    @property
    def create(self) -> Op:
        return self.replica.nodes[self.keychain].op

    @property
    def create_body(self) -> Create:
        body = self.create.body
        assert isinstance(body, Create)
        return body


class KeychainService:
    def __init__(
        self,
        storage: Storage,
        state: StateDB,
        identities: IdentityService,
        *,
        writer: FeedWriter,
        reader: FeedReader,
        now: Callable[[], float] = time.time,
        auto_accept: bool = True,
        notifier: Notifier | None = None,
    ) -> None:
        self.storage = storage
        self.state = state
        self.repo = state.keychains
        self.identities = identities
        self.writer = writer
        self.reader = reader
        self.net = ChainNetwork(storage)
        self.auto_accept = auto_accept
        self.notifier = notifier
        self._now = now
        self._loaded: dict[tuple[str, str], _Loaded] = {}
        self._write_lock = asyncio.Lock()
        self._subscribers: dict[str, list[Callback]] = {e: [] for e in EVENTS}

    def __repr__(self) -> str:
        return f"KeychainService({self.storage!r})"

    def _t(self) -> int:
        return int(self._now())

    # -- events ---------------------------------------------------------------------------
    def on(self, event: Event, callback: Callback) -> Callable[[], None]:
        """Call ``callback`` (plain or async) on ``event``: ``"keychain_updated"`` with a
        :class:`KeychainView`, then ``"key_received"`` with a :class:`KeyReceived`, for
        every key that arrives. Returns a function that unsubscribes."""
        if event not in self._subscribers:
            raise InvalidInputError(f"expected an event in {EVENTS}, found {event!r:.40}")
        self._subscribers[event].append(callback)

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self._subscribers[event].remove(callback)

        return unsubscribe

    async def _emit(self, event: Event, payload: object) -> None:
        for callback in list(self._subscribers[event]):
            try:
                result = callback(payload)
                if inspect.isawaitable(result):
                    await result
            except Exception:  # a subscriber's bug must not stop the sync
                log.exception("a %s subscriber failed", event)

    # -- loading --------------------------------------------------------------------------
    def _load(self, keychain: str, member: str, role: str) -> _Loaded:
        found = self._loaded.get((keychain, member))
        if found is None:
            replica = Replica(keychain)
            found = _Loaded(keychain, member, role, replica, Keyring(keychain, member))
            row = [r for r in self.repo.keychains(member=member) if r.keychain == keychain]
            found.name = row[0].name if row else None
            for cid, (reason, message) in self.repo.refused(keychain).items():
                replica.rejected[cid] = Rejection(cid, reason, message)
            self._loaded[(keychain, member)] = found
        self._reload(found)
        return found

    def _reload(self, loaded: _Loaded) -> None:
        """Take the ops another process of this home stored since (verified already)."""
        fresh = self.repo.ops(loaded.keychain, after=loaded.row)
        for s in fresh:
            if s.cid not in loaded.stored:
                loaded.replica.add_op(load_op(s.data, s.cid))
                loaded.stored.add(s.cid)
            loaded.row = max(loaded.row, s.row)
        if fresh:
            loaded.replica.update()

    def _keychain(self, fingerprint: str, as_: str | None = None) -> _Loaded:
        """The keychain a fingerprint (or a unique prefix of 8+ characters) names, as the
        local member ``as_`` (default: the only local member, or the default identity)."""
        text = fingerprint.strip()
        rows = [r for r in self.repo.keychains() if r.keychain.startswith(text)]
        if len(text) < 8 or len({r.keychain for r in rows}) != 1:
            found = "none" if not rows else f"{len({r.keychain for r in rows})} keychains"
            raise KeychainNotFoundError(
                f"expected a keychain fingerprint (or a unique prefix of 8+ characters) this "
                f"home belongs to, found {found} for {text[:60]!r}"
            )
        if as_ is not None:
            me = self.identities.get(as_).did
            rows = [r for r in rows if r.member == me]
        elif len(rows) > 1:
            default = self.identities.get(None).did
            rows = [r for r in rows if r.member == default] or rows[:0]
        if len(rows) != 1:
            raise KeychainNotFoundError(
                f"expected one local identity in {rows[0].keychain if rows else text}, "
                f"found {len(rows)}",
                hint="pass --as with the identity to act as",
            )
        row = rows[0]
        return self._load(row.keychain, row.member, row.role)

    def _all_loaded(self, as_: str | None = None) -> list[_Loaded]:
        me = None if as_ is None else self.identities.get(as_).did
        return [self._load(r.keychain, r.member, r.role) for r in self.repo.keychains(member=me)]

    async def _open_keys(self, loaded: _Loaded, keys: IdentityKeys | None = None) -> list[Any]:
        """Open the keys this member holds but has not opened (unlocks the identity only
        if there are any)."""
        if not loaded.keyring.pending(loaded.replica):
            return []
        keys = keys or await self.identities.unlock(loaded.member)
        opened = loaded.keyring.refresh(loaded.replica, keys.encryption, loaded.create_body.name)
        if loaded.name is None:
            loaded.name = loaded.keyring.name(loaded.create_body.name)
            if loaded.name is not None:
                self.repo.set_name(loaded.keychain, loaded.member, loaded.name)
        return opened

    async def _ready(self, fingerprint: str, as_: str | None) -> _Loaded:
        loaded = self._keychain(fingerprint, as_)
        await self._open_keys(loaded)
        return loaded

    # -- writing --------------------------------------------------------------------------
    def _store(self, loaded: _Loaded, ops: Sequence[Op]) -> None:
        new = [o for o in ops if o.cid not in loaded.stored]
        if new:
            stored = [StoredOp(o.cid, o.author, o.seq, o.data) for o in new]
            self.repo.add_ops(loaded.keychain, stored, at=self._t())
            loaded.stored.update(o.cid for o in new)
        refused = self.repo.refused(loaded.keychain)
        for cid, rejection in loaded.replica.rejected.items():
            if cid not in refused:
                self.repo.refuse(loaded.keychain, cid, rejection.reason, rejection.message)

    def _own_feed(self, loaded: _Loaded, keys: IdentityKeys) -> tuple[Feed, SigningKey]:
        """This member's chain in the keychain, and the key that signs its records."""
        key = chain_key(keys.signing, loaded.create_body.nonce)
        name = ipns_name(key.public_key)
        return Feed(KEYCHAIN_FEED, name, loaded.member, topic=loaded.create_body.nonce.hex()), key

    def _their_feed(self, loaded: _Loaded, author: str, chain: bytes) -> Feed:
        return Feed(KEYCHAIN_FEED, chain_name(chain), author, reader=loaded.member)

    async def _write(self, loaded: _Loaded, body: Body, keys: IdentityKeys | None = None) -> Op:
        """Sign ``body`` as the next op of this member's chain and append it with the feed
        writer (compare-and-set on the chain's head, so two processes never sign two ops
        at one seq: the loser signs again after the winner's op), stored with the head in
        one transaction; replay it; publish the chain's head."""
        async with self._write_lock:
            keys = keys or await self.identities.unlock(loaded.member)
            feed, record_key = self._own_feed(loaded, keys)
            made: list[Op] = []

            async def make(prev: FeedEntry | None) -> Batch:
                self._reload(loaded)
                last = None if prev is None else prev.value
                writer = Writer(keys.signing, loaded.create, last=last)
                op = writer.write(body, time=self._t(), parents=loaded.replica.heads())
                made[:] = [op]
                return Batch([feed_entry(op)])

            await self.writer.append(
                feed, make, then=lambda entries: self._store(loaded, [e.value for e in entries])
            )
            op = made[0]
            loaded.replica.add_op(op)
            loaded.replica.update()
            await self.writer.publish(feed, record_key)
            return op

    def _ignored(self, loaded: _Loaded, op: Op) -> None:
        """Raise if the replay ignored an op this home just wrote (a local check missed)."""
        rejection = loaded.replica.state.invalid.get(op.cid)
        if rejection is not None:
            raise PermissionDeniedError(
                f"the op was written but every replica ignores it ({rejection.reason}): "
                f"{rejection.message}"
            )

    # -- local checks (what every replica would refuse, refused before it is signed) ------
    def _me(self, loaded: _Loaded) -> Member:
        m = loaded.replica.state.members.get(loaded.member)
        if m is None or m.status != "member":
            state = "not a member yet" if m is None else m.status
            raise PermissionDeniedError(
                f"expected {loaded.member} to be a member of {loaded.keychain}, found it {state}",
                hint="sync first; a member who left needs a new share",
            )
        return m

    def _need(self, m: Member, *permissions: str) -> None:
        for p in permissions:
            if not getattr(m.perms, p):
                raise PermissionDeniedError(
                    f"expected allow_{p} for {m.did}, found it not granted",
                    hint="ask a member with allow_management to grant it "
                    f"('ipfs-share keychain permissions FP {m.did} --allow-{p}')",
                )

    # -- the API --------------------------------------------------------------------------
    async def create(
        self, name: str, *, as_: str | None = None, expires_in: int | None = None
    ) -> KeychainView:
        """A new keychain with its first key; this identity is its creator."""
        me = self.identities.get(as_)
        keys = await self.identities.unlock(me.did)
        now = self._t()
        writer = Writer.create(
            keys.signing,
            keys.enc_public,
            name=name,
            time=now,
            expires=None if expires_in is None else now + expires_in,
        )
        op = writer.created
        with self.state.transaction():
            self.repo.add_keychain(op.cid, me.did, role="creator", at=now)
            self.repo.add_ops(op.cid, [StoredOp(op.cid, op.author, 0, op.data)], at=now)
        loaded = self._load(op.cid, me.did, "creator")
        feed, record_key = self._own_feed(loaded, keys)

        async def first(prev: FeedEntry | None) -> Batch:
            return Batch([] if prev is not None else [feed_entry(op)])

        await self.writer.append(feed, first, adopt=False)
        await self.writer.publish(feed, record_key)
        await self._open_keys(loaded, keys)
        return self._view(loaded)

    def list(self, *, as_: str | None = None) -> list[KeychainView]:
        return [self._view(loaded, brief=True) for loaded in self._all_loaded(as_)]

    async def show(self, fingerprint: str, *, as_: str | None = None) -> KeychainView:
        loaded = await self._ready(fingerprint, as_)
        return self._view(loaded)

    async def rotate(
        self, fingerprint: str, *, expires_in: int | None = None, as_: str | None = None
    ) -> KeyView:
        """Add a new key (the most recent from now on), for this member; with
        ``allow_sharing`` also for every other member, so the keychain moves on at once."""
        loaded = await self._ready(fingerprint, as_)
        me = self._me(loaded)
        self._need(me, "rotation")
        to = [me] if not me.perms.sharing else loaded.replica.state.current_members()
        op = await self._rotate(loaded, to, expires_in)
        return self._key_view(loaded, loaded.replica.state.keys[_added_key(op)])

    async def _rotate(self, loaded: _Loaded, to: Sequence[Member], expires_in: int | None) -> Op:
        secret = loaded.keyring.secret
        if secret is None:
            raise RecipientNotAuthorizedError(
                f"expected the keychain secret of {loaded.keychain}, found none opened",
                hint="sync first: the secret comes with the first key shared with you",
            )
        key = KeychainKey.generate()
        me = [m for m in to if m.did == loaded.member]
        others = [m for m in to if m.did != loaded.member]
        first, rest = others[: MAX_DELIVERY - 1], others[MAX_DELIVERY - 1 :]
        recipients = [(m.did, _enc(m)) for m in (*me, *first)]
        now = self._t()
        body = AddKey(
            key_fingerprint(key),
            None if expires_in is None else now + expires_in,
            make_delivery(secret, [key], recipients),
        )
        loaded.keyring.keys[key_fingerprint(key)] = key
        op = await self._write(loaded, body)
        self._ignored(loaded, op)
        for i in range(0, len(rest), MAX_DELIVERY):  # beyond one op's cap: grants
            chunk = rest[i : i + MAX_DELIVERY]
            grant = Grant(
                (key_fingerprint(key),),
                make_delivery(secret, [key], [(m.did, _enc(m)) for m in chunk]),
            )
            self._ignored(loaded, await self._write(loaded, grant))
        loaded.keyring.forget_cache()
        return op

    async def share_most_recent_key(
        self, fingerprint: str, to: str, **options: Any
    ) -> OutgoingShare:
        """Offer the most recent key to ``to`` (a name, petname or did). Options:
        ``expires_in`` (seconds, of the recipient's holding), ``allow_sharing``,
        ``allow_rotation``, ``allow_deletion``, ``allow_management`` (the permissions
        granted, each one the sharer must hold), ``as_``."""
        loaded = await self._ready(fingerprint, options.get("as_"))
        fp, _ = loaded.keyring.most_recent(loaded.replica, self._t())
        return await self._share(loaded, to, [fp], **options)

    async def share_complete_keychain(
        self, fingerprint: str, to: str, **options: Any
    ) -> OutgoingShare:
        """Offer every key this member holds (the options of :meth:`share_most_recent_key`)."""
        loaded = await self._ready(fingerprint, options.get("as_"))
        return await self._share(loaded, to, sorted(loaded.keyring.keys), **options)

    async def share_key(self, fingerprint: str, key: str, to: str, **options: Any) -> OutgoingShare:
        """Offer one key, named by its fingerprint or a unique prefix."""
        loaded = await self._ready(fingerprint, options.get("as_"))
        return await self._share(loaded, to, [resolve_key(loaded.replica, key)], **options)

    async def _share(
        self,
        loaded: _Loaded,
        to: str,
        fps: Sequence[bytes],
        *,
        expires_in: int | None = None,
        allow_sharing: bool = False,
        allow_rotation: bool = False,
        allow_deletion: bool = False,
        allow_management: bool = False,
        as_: str | None = None,
    ) -> OutgoingShare:
        me = self._me(loaded)
        self._need(me, "sharing")
        recipient = await self.identities.recipient(to)
        state = loaded.replica.state
        if recipient.did == loaded.member:
            raise InvalidInputError("expected a recipient other than yourself, found yourself")
        target = state.members.get(recipient.did)
        if target is not None and target.status == "banned":
            raise PermissionDeniedError(
                f"expected a recipient not banned, found {recipient.did} banned",
                hint="a banned identity cannot be offered keys of this keychain again",
            )
        for fp in fps:
            if fp not in loaded.keyring.keys:
                raise PermissionDeniedError(
                    f"expected to hold the key {fingerprint_text(fp)[:12]}... to share it, "
                    "found it not held (or not opened)"
                )
        perms = Permissions(allow_sharing, allow_rotation, allow_deletion, allow_management)
        for name in PERMISSION_NAMES:
            if getattr(perms, name):
                self._need(me, name)
        now = self._t()
        body = Share(
            recipient.did,
            tuple(sorted(fps)),
            None if expires_in is None else now + expires_in,
            perms,
        )
        op = await self._write(loaded, body)
        self._ignored(loaded, op)
        await self._notify(loaded.member, recipient.did, op.cid)
        return self._outgoing(loaded, state.offers[op.cid])

    async def _notify(self, sender: str, recipient: str, op: str) -> None:
        if self.notifier is None:
            log.info(
                "no notifier: hand %s the op %s ('ipfs-share keychain receive')", recipient, op
            )
            return
        try:
            await self.notifier.notify(sender, recipient, op)
        except IpfsShareError as exc:  # the op is published; the next sync tries again
            log.warning("could not tell %s about %s: %s", recipient, op, exc.message)

    def outgoing_shared_keys(self, *, as_: str | None = None) -> builtins.list[OutgoingShare]:
        """Offers this home made that are not released, cancelled or dead yet."""
        out = []
        for loaded in self._all_loaded(as_):
            for o in loaded.replica.state.open_offers(sharer=loaded.member):
                out.append(self._outgoing(loaded, o))
        return sorted(out, key=lambda o: (o.created, o.offer))

    def incoming_offers(self, *, as_: str | None = None) -> builtins.list[OutgoingShare]:
        """Offers to this home's members not released, cancelled or dead yet: pending (to
        accept) or accepted (waiting for the sharer to release the keys)."""
        out = []
        for loaded in self._all_loaded(as_):
            for o in loaded.replica.state.open_offers(to=loaded.member):
                out.append(self._outgoing(loaded, o))
        return sorted(out, key=lambda o: (o.created, o.offer))

    async def delete_outgoing_shared_key(
        self,
        to: str,
        key_fp: str | None = None,
        *,
        keychain: str | None = None,
        as_: str | None = None,
    ) -> builtins.list[OutgoingShare]:
        """Cancel the open offers to ``to`` (in ``keychain``, and naming ``key_fp`` if
        given); returns them, cancelled. Offers already released cannot be cancelled: the
        keys were delivered."""
        recipient = await self.identities.recipient(to)
        targets = [self._keychain(keychain, as_)] if keychain else self._all_loaded(as_)
        cancelled = []
        for loaded in targets:
            fp = None if key_fp is None else resolve_key(loaded.replica, key_fp)
            for o in loaded.replica.state.open_offers(sharer=loaded.member, to=recipient.did):
                if fp is not None and fp not in o.keys:
                    continue
                op = await self._write(loaded, Cancel(o.cid))
                self._ignored(loaded, op)
                cancelled.append(self._outgoing(loaded, loaded.replica.state.offers[o.cid]))
        if not cancelled:
            raise KeychainNotFoundError(
                f"expected an open offer to {recipient.did}, found none",
                hint="see 'ipfs-share keychain outgoing'; a released share cannot be cancelled",
            )
        return cancelled

    def participants(
        self, fingerprint: str, key_fp: str | None = None, *, as_: str | None = None
    ) -> builtins.list[Participant]:
        """Members (current, left and banned), or with ``key_fp`` who holds that key, since
        when and added by whom, with their permissions."""
        loaded = self._keychain(fingerprint, as_)
        state = loaded.replica.state
        if key_fp is None:
            members = sorted(state.members.values(), key=lambda m: m.rank)
            return [self._participant(m) for m in members]
        fp = resolve_key(loaded.replica, key_fp)
        out = []
        for h in state.holders(fp):
            m = state.members[h.holder]
            base = self._participant(m)
            out.append(
                Participant(
                    **{f: getattr(base, f) for f in ("did", "name", "status", "permissions")},
                    joined=m.since,
                    joined_at=m.time,
                    added_by=m.added_by,
                    key=fingerprint_text(fp),
                    since=h.since,
                    since_time=h.time,
                    key_added_by=h.added_by,
                    expires=h.expires,
                )
            )
        return out

    def permissions(
        self, fingerprint: str, who: str | None = None, *, as_: str | None = None
    ) -> Permissions:
        """The permissions of ``who`` (a did; default: this member)."""
        loaded = self._keychain(fingerprint, as_)
        did = loaded.member if who is None else self._did_of(who)
        m = loaded.replica.state.members.get(did)
        if m is None or m.status != "member":
            return Permissions()
        return m.perms

    async def set_permissions(
        self, who: str, fingerprint: str, *, as_: str | None = None, **partial: bool | None
    ) -> Permissions:
        """Change some permissions of ``who`` (``sharing=``, ``rotation=``, ``deletion=``,
        ``management=``, or the ``allow_*`` spellings); omitted ones stay as they are."""
        changes = {k.removeprefix("allow_"): v for k, v in partial.items() if v is not None}
        unknown = set(changes) - set(PERMISSION_NAMES)
        if unknown or not changes:
            raise InvalidInputError(
                f"expected some of {list(PERMISSION_NAMES)}, found {sorted(unknown) or 'none'}"
            )
        loaded = await self._ready(fingerprint, as_)
        me = self._me(loaded)
        self._need(me, "management")
        did = (await self.identities.recipient(who)).did
        state = loaded.replica.state
        target = state.members.get(did)
        if target is None or target.status != "member":
            raise PermissionDeniedError(f"expected {did} to be a member, found it not")
        if did == state.creator and me.did != state.creator:
            raise PermissionDeniedError("only the creator changes the creator's permissions")
        op = await self._write(loaded, SetPermissions(did, **changes))
        self._ignored(loaded, op)
        return loaded.replica.state.members[did].perms

    async def ban(
        self, who: str, fingerprint: str, *, rotate: bool = True, as_: str | None = None
    ) -> BanResult:
        """Ban ``who``; with ``rotate`` (the default) add a new key for every member left,
        in the same call. A ban cannot take back keys already held: what was encrypted
        before it stays readable to the banned member."""
        loaded = await self._ready(fingerprint, as_)
        me = self._me(loaded)
        did = (await self.identities.recipient(who)).did
        state = loaded.replica.state
        if did != me.did:
            self._need(me, "deletion")
            if did == state.creator:
                raise PermissionDeniedError("the creator cannot be banned by others")
        target = state.members.get(did)
        if target is None or target.status != "member":
            raise PermissionDeniedError(f"expected {did} to be a member, found it not")
        if rotate and did != me.did:
            self._need(me, "rotation", "sharing")
        op = await self._write(loaded, Ban(did))
        self._ignored(loaded, op)
        if not rotate or did == me.did:
            return BanResult(op.cid, None, 0)
        left = loaded.replica.state.current_members()
        rotation = await self._rotate(loaded, left, None)
        return BanResult(op.cid, fingerprint_text(_added_key(rotation)), len(left))

    async def leave(self, fingerprint: str, *, as_: str | None = None) -> KeychainView:
        """Leave the keychain (keys already held stay held; a new share can bring you back)."""
        loaded = await self._ready(fingerprint, as_)
        self._me(loaded)
        op = await self._write(loaded, Leave())
        self._ignored(loaded, op)
        return self._view(loaded)

    # -- using keys -----------------------------------------------------------------------
    async def encrypt(
        self, fingerprint: str, data: bytes, *, ad: bytes = b"", as_: str | None = None
    ) -> bytes:
        """``data`` sealed under the most recent unexpired key this member holds; the
        output names the key (docs/spec/keychain.md section 7)."""
        loaded = await self._ready(fingerprint, as_)
        return loaded.keyring.encrypt(loaded.replica, data, ad, self._t())

    async def decrypt(
        self, fingerprint: str, sealed: bytes, *, ad: bytes = b"", as_: str | None = None
    ) -> bytes:
        """The plaintext of a sealed message, with whichever held key it names."""
        loaded = await self._ready(fingerprint, as_)
        return loaded.keyring.decrypt(sealed, ad)

    async def seal_file(
        self, fingerprint: str, content: str, file_key: FileKey, *, as_: str | None = None
    ) -> KeychainFile:
        """A keychain file for ``content``: its file key sealed under the most recent key,
        stored and pinned on the node. Members open it with :meth:`open_file`."""
        loaded = await self._ready(fingerprint, as_)
        _, key = loaded.keyring.most_recent(loaded.replica, self._t())
        keys = await self.identities.unlock(loaded.member)
        made = make_keychain_file(
            keys.signing,
            content=content,
            keychain=loaded.keychain,
            key=key,
            file_key=file_key,
            created=self._t(),
        )
        await self.storage.block_put(made.data, codec="dag-cbor", pin=True)
        return made

    async def open_file(
        self, data: bytes, *, as_: str | None = None
    ) -> tuple[KeychainFile, FileKey]:
        """The file key of a keychain file (its block), for a member holding its key."""
        file = decode_keychain_file(data)
        loaded = await self._ready(file.keychain, as_)
        return file, open_file_key(file, loaded.keyring.key(file.key))

    async def accept(self, offer: str, *, as_: str | None = None) -> str:
        """Accept one open offer addressed to this member (what sync does by itself unless
        the service was made with ``auto_accept=False``); returns the accept op's CID."""
        for loaded in self._all_loaded(as_):
            o = loaded.replica.state.offers.get(offer)
            if o is None or o.to != loaded.member:
                continue
            if o.status != "pending":
                raise PermissionDeniedError(f"expected an open offer, found it {o.status}")
            keys = await self.identities.unlock(loaded.member)
            op = await self._write(loaded, Accept(o.cid, bytes(keys.enc_public)), keys)
            self._ignored(loaded, op)
            await self._notify(loaded.member, o.sharer, op.cid)
            return op.cid
        raise KeychainNotFoundError(
            f"expected an offer {offer} for this home among its keychains, found none",
            hint="take it first with receive(CID), or sync",
        )

    # -- syncing --------------------------------------------------------------------------
    async def receive(self, op: str, *, as_: str | None = None) -> SyncReport:
        """Take the CID of an op handed over (an offer for this home, or an accept of one
        of its offers), fetch it and its causal past, and sync that keychain."""
        me = self.identities.get(as_).did
        self.repo.add_notice(me, op, sender="", at=self._t())
        return await self.sync(as_=as_)

    async def sync(self, *, as_: str | None = None, poll: bool = True) -> SyncReport:
        """Read every member's chain of every keychain this home belongs to (and the ops
        handed over to it), replay, accept offers addressed to it, release the keys of
        its accepted offers, open what it now holds, and fire the events. ``poll=False``
        skips reading the mailboxes for pointers first (a caller that watches the inbox
        already has them filed: the agent)."""
        report = _Report()
        members = [self.identities.get(as_).did] if as_ else [i.did for i in self.identities.list()]
        for me in members:
            if self.notifier is not None and poll:
                try:
                    await self.notifier.poll(me)
                except IpfsShareError as exc:
                    report.problems.append(f"reading the mailboxes of {me}: {exc.message}")
            await self._take_notices(me, report)
        for loaded in self._all_loaded(as_):
            try:
                await self._sync_one(loaded, report)
            except IpfsShareError as exc:
                report.problems.append(f"{loaded.keychain}: {exc.message}")
        return report.done()

    async def _take_notices(self, me: str, report: _Report) -> None:
        for notice in self.repo.notices(me):
            try:
                data = await self.net.fetch(notice.op)
                op = decode_op(data)
            except IpfsShareError as exc:
                report.problems.append(f"{notice.op}: {exc.message}")
                self.repo.set_notice(me, notice.op, "refused")
                continue
            known = {r.keychain for r in self.repo.keychains(member=me)}
            if op.keychain not in known:
                if not (isinstance(op.body, Share) and op.body.to == me):
                    report.problems.append(f"{op.cid}: not an offer for {me}")
                    self.repo.set_notice(me, notice.op, "refused")
                    continue
                self.repo.add_keychain(op.keychain, me, role="invited", at=self._t())
            row = next(r for r in self.repo.keychains(member=me) if r.keychain == op.keychain)
            loaded = self._load(op.keychain, me, row.role)
            loaded.replica.add_op(op)
            report.fetched += 1 + await self.net.fill(loaded.replica, list(op.deps))
            self._store(loaded, [n.op for n in loaded.replica.nodes.values()])
            loaded.replica.update()
            self.repo.set_notice(me, notice.op, "done")

    async def _sync_one(self, loaded: _Loaded, report: _Report) -> None:
        report.keychains += 1
        self._reload(loaded)
        replica = loaded.replica

        def filed(entries: Sequence[FeedEntry]) -> None:  # with the mark, in one transaction
            self._store(loaded, [e.value for e in entries])

        for author, chain in sorted(replica.chains().items()):
            if author == loaded.member:
                continue
            feed = self._their_feed(loaded, author, chain)
            try:
                update = await self.reader.read(feed, apply=filed, deadline=self._deadline())
            except IpfsShareError as exc:  # unreachable, a rollback, a fork: say so, go on
                report.problems.append(f"{loaded.keychain} {author}: {exc.message}")
                continue
            for entry in update.new:
                if entry.value.keychain == loaded.keychain:
                    replica.add_op(entry.value)
                    report.fetched += 1
        report.fetched += await self.net.fill(replica, sorted(replica.missing()))
        self._store(loaded, [n.op for c, n in replica.nodes.items() if c not in loaded.stored])
        replica.update()
        await self._act(loaded, report)
        await self._announce(loaded, report)

    def _deadline(self) -> float:
        return asyncio.get_running_loop().time() + SYNC_SECONDS

    async def _act(self, loaded: _Loaded, report: _Report) -> None:
        """Accept offers to this member, release its accepted offers."""
        state = loaded.replica.state
        me = loaded.member
        if self.auto_accept:
            mine = {
                n.op.body.offer
                for n in loaded.replica.nodes.values()
                if n.op.author == me and isinstance(n.op.body, Accept)
            }
            for o in state.open_offers(to=me):
                if o.status == "pending" and o.cid not in mine:
                    keys = await self.identities.unlock(me)
                    op = await self._write(loaded, Accept(o.cid, bytes(keys.enc_public)), keys)
                    report.wrote.append(op.cid)
                    if op.cid not in loaded.replica.state.invalid:
                        report.accepted.append(o.cid)
                        await self._notify(me, o.sharer, op.cid)
        for o in state.open_offers(sharer=me):
            if o.status != "accepted":
                continue
            try:
                report.wrote.append(await self._release(loaded, o))
                report.released.append(o.cid)
            except IpfsShareError as exc:
                report.problems.append(f"{loaded.keychain}: release of {o.cid}: {exc.message}")

    async def _release(self, loaded: _Loaded, offer: Offer) -> str:
        me = self._me(loaded)  # the checks every replica makes, before signing anything
        self._need(me, "sharing", *(n for n in PERMISSION_NAMES if getattr(offer.perms, n)))
        await self._open_keys(loaded)
        keyring = loaded.keyring
        if keyring.secret is None:
            raise RecipientNotAuthorizedError("expected the keychain secret, found none opened")
        material = [keyring.key(fp) for fp in offer.keys]
        assert offer.accept is not None
        accept = loaded.replica.nodes[offer.accept].op.body
        assert isinstance(accept, Accept)
        delivery = make_delivery(keyring.secret, material, [(offer.to, _enc_bytes(accept.enc))])
        op = await self._write(loaded, Release(offer.cid, delivery))
        self._ignored(loaded, op)
        return op.cid

    async def _announce(self, loaded: _Loaded, report: _Report) -> None:
        opened = await self._open_keys(loaded)
        for holding in opened:
            await self._emit("keychain_updated", self._view(loaded))
            received = KeyReceived(
                loaded.keychain,
                loaded.member,
                fingerprint_text(holding.fp),
                holding.added_by,
                holding.since,
            )
            report.received.append(received)
            await self._emit("key_received", received)

    async def watch(
        self, *, interval: float = 5.0, stop: asyncio.Event | None = None, as_: str | None = None
    ) -> None:
        """Sync every ``interval`` seconds until ``stop`` is set (the agent runs this)."""
        stop = stop or asyncio.Event()
        while not stop.is_set():
            try:
                await self.sync(as_=as_)
            except IpfsShareError as exc:
                log.warning("keychain sync failed: %s", exc.message)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)

    # -- views ----------------------------------------------------------------------------
    def _view(self, loaded: _Loaded, *, brief: bool = False) -> KeychainView:
        replica = loaded.replica
        state = replica.state
        m = state.members.get(loaded.member)
        status = "invited" if m is None else m.status
        recent = None
        with contextlib.suppress(IpfsShareError):
            recent = loaded.keyring.most_recent(replica, self._t())[0]
        keys = tuple(
            self._key_view(loaded, k, recent)
            for k in state.keys_in_order()
            if not brief or k.fp in state.holdings.get(loaded.member, {})
        )
        ignored = tuple(
            Rejected(r.cid, replica.nodes[r.cid].op.author, replica.nodes[r.cid].op.kind,
                     r.reason, r.message)
            for r in state.invalid.values()
        )  # fmt: skip
        return KeychainView(
            fingerprint=loaded.keychain,
            name=loaded.name,
            member=loaded.member,
            status=status,
            creator=state.creator or loaded.create.author,
            created=loaded.create.time,
            permissions=m.perms if m is not None and m.status == "member" else Permissions(),
            members=len(state.current_members()),
            keys=keys,
            ops=len(replica.nodes),
            ignored=() if brief else ignored,
        )

    def _key_view(self, loaded: _Loaded, info: Any, recent: bytes | None = None) -> KeyView:
        return KeyView(
            fingerprint=fingerprint_text(info.fp),
            created=info.time,
            expires=info.expires,
            added_by=info.added_by,
            op=info.op,
            held=info.fp in loaded.keyring.keys,
            most_recent=info.fp == recent,
        )

    def _outgoing(self, loaded: _Loaded, o: Offer) -> OutgoingShare:
        return OutgoingShare(
            offer=o.cid,
            keychain=loaded.keychain,
            sharer=o.sharer,
            to=o.to,
            to_name=self._name_of(o.to),
            keys=tuple(fingerprint_text(fp) for fp in o.keys),
            expires=o.expires,
            permissions=o.perms,
            created=o.time,
            status=o.status,
        )

    def _participant(self, m: Member) -> Participant:
        return Participant(
            did=m.did,
            name=self._name_of(m.did),
            status=m.status,
            permissions=m.perms if m.status == "member" else Permissions(),
            joined=m.since,
            joined_at=m.time,
            added_by=m.added_by,
        )

    def name_of(self, did: str) -> str | None:
        """How this home calls ``did``: a local identity's name, else a contact's petname."""
        return self._name_of(did)

    def _name_of(self, did: str) -> str | None:
        local = self.identities.keystore.find(did)
        if local is not None:
            return local.name
        contacts = self.identities.db.contacts.of(did)
        return contacts[0].petname if contacts else None

    def _did_of(self, who: str) -> str:
        if who.startswith("did:"):
            return who
        local = self.identities.keystore.find(who)
        if local is not None:
            return local.did
        contact = self.identities.db.contacts.get(who)
        if contact is None:
            raise InvalidInputError(f"expected a did, an identity or a contact, found {who!r:.60}")
        return contact.did


@dataclass(slots=True)
class _Report:
    keychains: int = 0
    fetched: int = 0
    accepted: list[str] = field(default_factory=list)
    released: list[str] = field(default_factory=list)
    received: list[KeyReceived] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    wrote: list[str] = field(default_factory=list)

    def done(self) -> SyncReport:
        return SyncReport(
            keychains=self.keychains,
            fetched=self.fetched,
            accepted=tuple(self.accepted),
            released=tuple(self.released),
            received=tuple(self.received),
            problems=tuple(self.problems),
            wrote=tuple(self.wrote),
        )


def _added_key(op: Op) -> bytes:
    assert isinstance(op.body, AddKey)
    return op.body.key


def _enc(m: Member) -> PublicEncryptionKey:
    return PublicEncryptionKey(m.enc)


def _enc_bytes(raw: bytes) -> PublicEncryptionKey:
    return PublicEncryptionKey(raw)
