"""Identities: create and keep keys locally, publish signed documents, resolve others'.

An identity is an Ed25519 signing key and an X25519 encryption key. Its id is the did:key
of the Ed25519 key, and the IPNS name of that same key holds its signed identity document,
so anyone who knows a did finds the document on IPFS with no directory server. Keys never
enter the node: documents and IPNS records are signed here and stored with ``block/put``
and ``name/put``. An identity's documents are a feed (kind ``identity``,
docs/spec/feeds.md): the feed writer publishes ours, the feed reader follows others' and
refuses an older document than one seen (``feed_rollback``) or a second one at a seq
seen (``feed_fork``).

>>> import asyncio, tempfile
>>> from pathlib import Path
>>> from ipfs_share.crypto.passphrase import KdfParams
>>> from ipfs_share.storage.embedded import EmbeddedStorage
>>> async def demo() -> str:
...     home = Path(tempfile.mkdtemp())
...     async with EmbeddedStorage(home / "store") as store:
...         ids = IdentityService(home, store, passphrase=lambda prompt: b"pw",
...                               kdf=KdfParams.fastest())
...         alice = await ids.create("alice")
...         await ids.publish("alice")
...         found = await ids.resolve(alice.did)
...         return "resolved" if found.did == alice.did else "wrong"
>>> asyncio.run(demo())
'resolved'
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ipfs_share.crypto.passphrase import KdfParams
from ipfs_share.crypto.x25519 import PublicEncryptionKey
from ipfs_share.errors import (
    ChainInvalidError,
    FormatError,
    IdentityDocumentInvalidError,
    IdentityExistsError,
    IdentityNotFoundError,
    InvalidInputError,
    IpfsShareError,
    IpnsRecordInvalidError,
    NodeUnreachableError,
    NotFoundError,
    PassphraseRequiredError,
    SignatureInvalidError,
)
from ipfs_share.formats.feed import FeedEntry
from ipfs_share.formats.identity_doc import (
    IDENTITY_FEED,
    IdentityDocument,
    identity_ipns_name,
    make_identity_document,
)
from ipfs_share.formats.ipns import ipns_name, parse_ipns_name
from ipfs_share.formats.keystore import IdentityKeys, KeyFile, check_name
from ipfs_share.formats.signed import did_key, parse_did_key
from ipfs_share.local.keystore import Keystore
from ipfs_share.local.state import StateDB
from ipfs_share.services.feeds import Batch, Feed, FeedReader, FeedWriter
from ipfs_share.storage.base import Storage
from ipfs_share.storage.timed import within

__all__ = [
    "PASSPHRASE_ENV",
    "Identity",
    "IdentityService",
    "PassphraseSource",
    "Published",
    "Recipient",
    "ResolvedIdentity",
    "env_passphrase",
]

PASSPHRASE_ENV = "IPFS_SHARE_PASSPHRASE"  # noqa: S105 - the variable's name, not a secret
# A cached identity document older than this is resolved again before use (its X25519 key
# may have changed); if that fails within REFRESH_TIMEOUT, the cached one is used. (The
# lifetime of the documents' IPNS records: services/feeds/refs.py, LIFETIMES.)
DOCUMENT_REFRESH = 3600.0
RACED_READS = 4  # reads of a document that may each lose the race to move its mark, in a row
REFRESH_TIMEOUT = 5.0

log = logging.getLogger("ipfs_share.identities")

# Asked with a prompt such as "passphrase for alice"; returns the passphrase bytes.
PassphraseSource = Callable[[str], bytes]


def env_passphrase(prompt: str) -> bytes:
    """The passphrase from ``IPFS_SHARE_PASSPHRASE``: the non-interactive default."""
    value = os.environ.get(PASSPHRASE_ENV)
    if not value:
        raise PassphraseRequiredError(
            f"{prompt}: no passphrase given",
            hint=f"set {PASSPHRASE_ENV}, or pass passphrase= (a str, bytes, or a function)",
        )
    return value.encode()


@dataclass(frozen=True, slots=True)
class Identity:
    """A local identity (its public side; the keys stay in the keystore)."""

    name: str
    did: str
    ipns_name: str
    enc: str  # the X25519 public key in text form
    created: int
    encrypted: bool
    published_seq: int | None
    default: bool = False

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "did": self.did,
            "ipns_name": self.ipns_name,
            "enc": self.enc,
            "created": self.created,
            "encrypted": self.encrypted,
            "published_seq": self.published_seq,
            "default": self.default,
        }


@dataclass(frozen=True, slots=True)
class Published:
    did: str
    ipns_name: str
    cid: str
    seq: int

    def to_json(self) -> dict[str, object]:
        return {"did": self.did, "ipns_name": self.ipns_name, "cid": self.cid, "seq": self.seq}


@dataclass(frozen=True, slots=True)
class ResolvedIdentity:
    did: str
    ipns_name: str
    enc: PublicEncryptionKey
    seq: int
    cid: str
    revocations: str
    petnames: tuple[str, ...]

    def to_json(self) -> dict[str, object]:
        return {
            "did": self.did,
            "ipns_name": self.ipns_name,
            "enc": self.enc.to_text(),
            "seq": self.seq,
            "cid": self.cid,
            "revocations": self.revocations,
            "petnames": list(self.petnames),
        }


@dataclass(frozen=True, slots=True)
class Recipient:
    """Whom a share is wrapped to: a did and its X25519 key, and how it was named."""

    did: str
    enc: PublicEncryptionKey
    via: str  # "identity", "contact", "did" or "ipns"


class IdentityService:
    """``writer`` and ``reader`` are the feed writer and reader of the home (made from
    ``storage`` and ``db`` when not given)."""

    def __init__(
        self,
        home: Path,
        storage: Storage | None,
        *,
        passphrase: PassphraseSource = env_passphrase,
        kdf: KdfParams | None = None,
        now: Callable[[], float] = time.time,
        db: StateDB | None = None,
        writer: FeedWriter | None = None,
        reader: FeedReader | None = None,
    ) -> None:
        self.home = home
        self._storage = storage
        self.keystore = Keystore(home)
        self.db = db or StateDB(home)
        self._passphrase = passphrase
        self._kdf = kdf
        self._now = now
        self._writer = writer
        self._reader = reader
        self._unlocked: dict[str, IdentityKeys] = {}
        # did -> its last verified document: one a did, however often it is republished
        self._documents: dict[str, IdentityDocument] = {}

    def __repr__(self) -> str:
        return f"IdentityService({str(self.home)!r})"

    @property
    def storage(self) -> Storage:
        """The node; only publishing and resolving need one."""
        if self._storage is None:
            raise NodeUnreachableError("this needs a node, and none was given")
        return self._storage

    @property
    def writer(self) -> FeedWriter:
        if self._writer is None:
            self._writer = FeedWriter(self.storage, self.db, now=self._now)
        return self._writer

    @property
    def reader(self) -> FeedReader:
        if self._reader is None:
            self._reader = FeedReader(self.storage, self.db, now=self._now)
        return self._reader

    @staticmethod
    def feed(did: str) -> Feed:
        """The feed of ``did``'s identity documents."""
        return Feed(IDENTITY_FEED, identity_ipns_name(did), did)

    # -- local ----------------------------------------------------------------------------
    def _view(self, key_file: KeyFile) -> Identity:
        return Identity(
            name=key_file.name,
            did=key_file.did,
            ipns_name=identity_ipns_name(key_file.did),
            enc=_enc_text(key_file.enc),
            created=key_file.created,
            encrypted=key_file.encrypted,
            published_seq=self._published_seq(key_file.did),
            default=self.db.meta.get("default_identity") == key_file.did,
        )

    def _published_seq(self, did: str) -> int | None:
        row = self.db.feeds.own(identity_ipns_name(did))
        return None if row is None else row.published_seq

    async def create(self, name: str, *, encrypted: bool = True) -> Identity:
        """Make a new identity. ``encrypted=False`` keeps the keys in the clear: for
        development only (the CLI warns).

        The first identity of a home becomes its default, and stays so when more are
        made, until :meth:`use` picks another."""
        check_name(name)
        if self.keystore.find(name) is not None:
            raise IdentityExistsError(f"an identity named {name!r} already exists")
        keys = IdentityKeys.generate()
        passphrase = self._passphrase(f"new passphrase for {name}") if encrypted else None
        key_file = await asyncio.to_thread(
            KeyFile.create,
            name,
            keys,
            created=int(self._now()),
            passphrase=passphrase,
            params=self._kdf,
        )
        self._keep_default_before_adding()
        self.keystore.add(key_file)
        return self._view(key_file)

    def _keep_default_before_adding(self) -> None:
        """A home whose one identity is its default only because it is the only one (the
        first needs nothing written down) gets that default written down before a second
        is added, so the second changes nothing."""
        if self.db.meta.get("default_identity") is None:
            existing = self.keystore.list()
            if len(existing) == 1:
                self.db.meta.set("default_identity", existing[0].did)

    def list(self) -> list[Identity]:
        return [self._view(k) for k in self.keystore.list()]

    def get(self, name_or_did: str | None = None) -> Identity:
        """An identity by name or did; with None, the default one (see :meth:`default`)."""
        if name_or_did is None:
            return self.default()
        return self._view(self.keystore.get(name_or_did))

    def name_and_did(self, name_or_did: str | None = None) -> tuple[str, str]:
        """The name and did of :meth:`get`'s identity, without the rest of its view (which
        costs two reads of the database): what an open needs of the identity opening."""
        found = self._default_key_file() if name_or_did is None else self.keystore.get(name_or_did)
        return found.name, found.did

    def default(self) -> Identity:
        """The identity set with :meth:`use`, else the only one there is."""
        return self._view(self._default_key_file())

    def _default_key_file(self) -> KeyFile:
        chosen = self.db.meta.get("default_identity")
        if chosen is not None:
            found = self.keystore.find(chosen)
            if found is not None:
                return found
        all_ids = self.keystore.list()
        if len(all_ids) == 1:
            return all_ids[0]
        if not all_ids:
            raise IdentityNotFoundError(
                "there is no local identity yet",
                hint="create one with identity.create(NAME)",
                reason="no_identity",
            )
        raise IdentityNotFoundError(
            f"there are {len(all_ids)} identities and none is the default",
            hint="pick one with identity.use(NAME), or name the one to act as (as_=NAME)",
            reason="no_default_identity",
        )

    def use(self, name_or_did: str) -> Identity:
        key_file = self.keystore.get(name_or_did)
        self.db.meta.set("default_identity", key_file.did)
        return self._view(key_file)

    def rename(self, old: str, new: str) -> Identity:
        return self._view(self.keystore.rename(old, new))

    def live_shares(self, name_or_did: str) -> int:
        """How many capsules this identity issued that are still active: deleting its keys
        leaves them unrevokable (revoking needs the key)."""
        did = self.keystore.get(name_or_did).did
        return sum(1 for s in self.db.shares.list(issuer=did) if s.state == "active")

    def delete(self, name_or_did: str) -> Identity:
        """Delete the keys of an identity. What it signed and published stays valid; shares
        wrapped to it can no longer be opened here, and capsules it issued can no longer be
        revoked (see :meth:`live_shares`; the CLI warns)."""
        key_file = self.keystore.get(name_or_did)
        view = self._view(key_file)
        self.keystore.delete(key_file.did)
        self._unlocked.pop(key_file.did, None)
        if self.db.meta.get("default_identity") == key_file.did:
            self.db.meta.set("default_identity", None)
        # The feed's head stays: an identity imported again continues after it.
        return view

    async def unlock(
        self, name_or_did: str | None = None, *, passphrase: bytes | None = None
    ) -> IdentityKeys:
        """The secret keys of an identity (asks for its passphrase if it is sealed).

        Keys stay unlocked in this service's memory until :meth:`lock` (``Mesh.close``
        calls it), like an ssh-agent for one process: argon2id runs once per identity, not
        once per open. A backend that must not hold keys calls :meth:`lock` after use.
        ``passphrase`` is used instead of asking, and is always checked (even if the keys
        are held already): the agent's unlock goes this way."""
        key_file = (
            self.keystore.get(self.default().did)
            if name_or_did is None
            else self.keystore.get(name_or_did)
        )
        held = self._unlocked.get(key_file.did)
        if held is not None and passphrase is None:
            return held
        if key_file.encrypted and passphrase is None:
            passphrase = self._passphrase(f"passphrase for {key_file.name}")
        keys = await asyncio.to_thread(key_file.unlock, passphrase if key_file.encrypted else None)
        self._unlocked[key_file.did] = keys
        return keys

    def unlocked_dids(self) -> tuple[str, ...]:
        """The dids whose keys this service holds now."""
        return tuple(self._unlocked)

    def unlocked(self, name_or_did: str) -> IdentityKeys | None:
        """The keys of an identity if they are unlocked in this service now (never asks
        for a passphrase; None if they are locked or the identity is not here)."""
        found = self.keystore.find(name_or_did)
        return None if found is None else self._unlocked.get(found.did)

    def lock(self, name_or_did: str | None = None) -> None:
        """Forget unlocked keys: of one identity, or (None) of all."""
        if name_or_did is None:
            self._unlocked.clear()
        else:
            self._unlocked.pop(self.get(name_or_did).did, None)

    # -- moving between machines ----------------------------------------------------------
    async def export(self, name_or_did: str, passphrase: bytes) -> str:
        """The identity sealed under ``passphrase``, as ASCII armor for another machine."""
        key_file = self.keystore.get(name_or_did)
        keys = await self.unlock(key_file.did)
        sealed = await asyncio.to_thread(
            KeyFile.create,
            key_file.name,
            keys,
            created=key_file.created,
            passphrase=passphrase,
            params=self._kdf,
        )
        return sealed.armored()

    async def import_(self, blob: str, passphrase: bytes, *, name: str | None = None) -> Identity:
        """Take an exported identity. It stays sealed under the export's passphrase, which
        is then the one to use here; the passphrase is checked before anything is written."""
        key_file = KeyFile.from_armored(blob)
        await asyncio.to_thread(key_file.unlock, passphrase)
        if name is not None:
            key_file = key_file.renamed(name)
        self._keep_default_before_adding()
        self.keystore.add(key_file)
        return self._view(key_file)

    # -- the network ----------------------------------------------------------------------
    async def publish(self, name_or_did: str | None = None) -> Published:
        """Sign a new identity document and publish it under the identity's IPNS name.

        Its seq is one more than the last document of this identity: the one this home
        published, else the one the network has (an identity imported from elsewhere)."""
        keys = await self.unlock(name_or_did)
        feed = self.feed(keys.did)

        async def next_document(prev: FeedEntry | None) -> Batch:
            doc = make_identity_document(
                keys.signing,
                keys.enc_public,
                seq=0 if prev is None else prev.seq + 1,
                created=int(self._now()),
            )
            return Batch([IDENTITY_FEED.read(doc.data, None)])

        done = await self.writer.append(feed, next_document)
        await self.writer.publish(feed, keys.signing)
        assert done.head is not None
        return Published(did=keys.did, ipns_name=feed.name, cid=done.head.head, seq=done.head.seq)

    async def resolve(
        self, did_or_name: str, *, petname: str | None = None, force: bool = False
    ) -> ResolvedIdentity:
        """Fetch, verify and keep the freshest identity document of a did or IPNS name.

        A record or document that does not verify is
        :class:`IdentityDocumentInvalidError`; one older than a document already seen is
        :class:`~ipfs_share.errors.FeedRollbackError`, another at a seq already seen
        :class:`~ipfs_share.errors.FeedForkError`. With ``petname`` the identity is added
        to the contacts under that name (as :meth:`add_contact` would, ``force`` too)."""
        did, _ = _did_and_name(did_or_name)
        if petname is not None:
            self._check_petname(petname, did, force=force)
        feed = self.feed(did)
        for _ in range(RACED_READS):
            head = await self._read_document(feed, did)
            if head is not None:
                break
        else:
            raise IdentityDocumentInvalidError(
                f"the identity document of {did} moved under {RACED_READS} reads in a row",
                hint="try again: other reads of this home were updating the same document",
            )
        if petname is not None:
            self.db.contacts.put(petname, did)
        return self._resolved(self._document_of(head))

    async def _read_document(self, feed: Feed, did: str) -> FeedEntry | None:
        """One read of ``did``'s document feed: its verified head, or None when another
        read of this home (another task, another process) moved the mark first. What
        that read verified may be older than the record this one resolved (one that came
        in between), so it is not taken as is: the caller reads again, resolving anew."""
        try:
            update = await self.reader.read(feed)
        except NotFoundError:
            raise IdentityNotFoundError(
                f"no identity document is published for {did}",
                hint="ask its owner to publish it; check the nodes are connected",
                reason="not_published",
                subject=did,
            ) from None
        except ChainInvalidError:
            raise
        except IpnsRecordInvalidError as exc:
            raise IdentityDocumentInvalidError(f"the IPNS record of {did}: {exc.message}") from exc
        except (FormatError, SignatureInvalidError) as exc:
            raise IdentityDocumentInvalidError(
                f"the identity document of {did} does not verify: {exc.message}"
            ) from exc
        if update.head is not None:
            return update.head
        if update.raced:
            return None
        held = self.reader.held(feed)
        assert held is not None  # an identity document is always kept
        return held

    def _document_of(self, entry: FeedEntry) -> IdentityDocument:
        doc: IdentityDocument = entry.value
        self._documents[doc.did] = doc
        return doc

    def _resolved(self, doc: IdentityDocument) -> ResolvedIdentity:
        return ResolvedIdentity(
            did=doc.did,
            ipns_name=identity_ipns_name(doc.did),
            enc=doc.enc,
            seq=doc.seq,
            cid=doc.cid,
            revocations=doc.revocations,
            petnames=tuple(c.petname for c in self.db.contacts.of(doc.did)),
        )

    async def document(self, did: str) -> IdentityDocument:
        """The verified document of ``did``: for a local identity the one this home
        published; else the one last verified, if that was within
        :data:`DOCUMENT_REFRESH` seconds, or resolved again (falling back to the last one
        if that fails: a verified document beats none). The X25519 key is independent of
        the did's key and may change with a new document; re-resolving is how a sender
        learns of it."""
        feed = self.feed(did)
        if self.keystore.find(did) is not None:
            own = self.db.feeds.own(feed.name)
            if own is not None and own.head_block is not None:
                return self._cached(did, own.head, own.head_block)
        held = self._documents.get(did)
        if held is not None:  # verified from the block of a mark: is that still the mark?
            head, checked_at = self.db.feeds.read_head(feed.name) or (None, 0)
            if head == held.cid and self._now() - checked_at <= DOCUMENT_REFRESH:
                return held
        state = self.db.feeds.read(feed.name)
        if state is None or state.head_block is None:
            await self.resolve(did)
            state = self.db.feeds.read(feed.name)
            assert state is not None and state.head_block is not None
        elif self._now() - state.checked_at > DOCUMENT_REFRESH:
            try:
                async with within(REFRESH_TIMEOUT, f"refreshing the identity document of {did}"):
                    await self.resolve(did)
            except IpfsShareError as exc:
                log.info("kept the cached identity document of %s: %s", did, exc.message)
            state = self.db.feeds.read(feed.name) or state
        assert state.mark is not None and state.head_block is not None
        return self._cached(did, state.mark.cid, state.head_block)

    def _cached(self, did: str, cid: str, data: bytes) -> IdentityDocument:
        doc = self._documents.get(did)
        if doc is None or doc.cid != cid:  # verify once per version, not once per open
            doc = self._document_of(IDENTITY_FEED.read(data, self.feed(did).accepts))
        return doc

    # -- contacts and recipients ----------------------------------------------------------
    def add_contact(self, petname: str, did_or_name: str, *, force: bool = False) -> str:
        """Name someone's did (or k51... IPNS name) ``petname`` here; returns the did.

        Refused: a petname that is a local identity's name (it would never be reached:
        names look up local identities first), and, unless ``force``, a petname already
        given to another did (a typo would silently send shares elsewhere)."""
        did, _ = _did_and_name(did_or_name)
        self._check_petname(petname, did, force=force)
        self.db.contacts.put(petname, did)
        return did

    def _check_petname(self, petname: str, did: str, *, force: bool) -> None:
        check_name(petname)
        if self.keystore.find(petname) is not None:
            raise InvalidInputError(
                f"{petname!r} is the name of a local identity here, so it cannot name a "
                "contact too",
                hint="choose another petname",
                reason="shadows_identity",
                subject=petname,
            )
        held = self.db.contacts.get(petname)
        if held is not None and held.did != did and not force:
            raise InvalidInputError(
                f"the contact {petname!r} is already {held.did}, not {did}",
                hint="pass force=True to point it at the new did, or choose another petname",
                reason="contact_exists",
                subject=petname,
            )

    def did_of(self, text: str) -> str:
        """The did ``text`` names (a local identity's name, a contact petname, a did:key or
        an IPNS name), without fetching anything: for naming people, not for sending."""
        if not text.startswith(("did:", "k51", "/ipns/")):
            local = self.keystore.find(text)
            if local is not None:
                return local.did
            contact = self.db.contacts.get(text)
            if contact is None:
                raise IdentityNotFoundError(
                    f"{text!r:.80} is neither a local identity nor a contact",
                    hint="add it as a contact first, or pass a did",
                    reason="not_a_contact",
                    subject=text,
                )
            return contact.did
        did, _ = _did_and_name(text)
        return did

    async def recipient(self, text: str) -> Recipient:
        """Whom ``text`` names: a local identity, a contact petname, a did:key or an IPNS name.
        Others' keys come from their verified documents (cached, else resolved now)."""
        if not text.startswith(("did:", "k51", "/ipns/")):
            local = self.keystore.find(text)
            if local is not None:
                return Recipient(local.did, local.enc, "identity")
            contact = self.db.contacts.get(text)
            if contact is None:
                raise IdentityNotFoundError(
                    f"{text!r:.80} is neither a local identity nor a contact",
                    hint="add it as a contact first, or pass a did",
                    reason="not_a_contact",
                    subject=text,
                )
            did, via = contact.did, "contact"
        else:
            did, _ = _did_and_name(text)
            via = "did" if text.startswith("did:") else "ipns"
        own = self.keystore.find(did)
        if own is not None:
            return Recipient(own.did, own.enc, "identity")
        return Recipient(did, (await self.document(did)).enc, via)


def _did_and_name(did_or_name: str) -> tuple[str, str]:
    """(did, IPNS name) of a did:key, a k51... name or /ipns/k51...."""
    text = did_or_name.strip()
    try:
        key = parse_did_key(text) if text.startswith("did:") else parse_ipns_name(text)
    except FormatError as exc:
        raise InvalidInputError(
            f"expected a did:key:z6Mk... or a k51... IPNS name, found {text!r:.80}",
            hint="copy the did the other identity's owner shows for it",
            reason="not_a_did",
        ) from exc
    return did_key(key), ipns_name(key)


@functools.lru_cache(maxsize=256)  # a base58 encoding, asked for at every identity view
def _enc_text(key: PublicEncryptionKey) -> str:
    return key.to_text()
