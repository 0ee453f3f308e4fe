"""Identities: create and keep keys locally, publish signed documents, resolve others'.

An identity is an Ed25519 signing key and an X25519 encryption key. Its id is the did:key
of the Ed25519 key, and the IPNS name of that same key holds its signed identity document,
so anyone who knows a did finds the document on IPFS with no directory server. Keys never
enter the node: documents and IPNS records are signed here and stored with ``block/put``
and ``name/put``.

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
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ipfs_share.crypto.passphrase import KdfParams
from ipfs_share.crypto.x25519 import PublicEncryptionKey
from ipfs_share.errors import (
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
from ipfs_share.formats.cid import DAG_CBOR, parse_cid
from ipfs_share.formats.identity_doc import (
    IdentityDocument,
    decode_identity_document,
    identity_ipns_name,
    make_identity_document,
)
from ipfs_share.formats.ipns import ipns_name, make_record, parse_ipns_name, verify_record
from ipfs_share.formats.keystore import IdentityKeys, KeyFile, check_name
from ipfs_share.formats.signed import did_key, parse_did_key
from ipfs_share.local.db import StateDB
from ipfs_share.local.keystore import Keystore
from ipfs_share.storage.base import Storage

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
# An identity document's IPNS record is valid for a year: the node does not hold our key,
# so it cannot republish for us; `identity publish` again renews it.
DOCUMENT_VALIDITY = timedelta(days=365)
DOCUMENT_TTL_SECONDS = 60
RESOLVE_TIMEOUT = 30.0
# A cached identity document older than this is resolved again before use (its X25519 key
# may have changed); if that fails within REFRESH_TIMEOUT, the cached one is used.
DOCUMENT_REFRESH = 3600.0
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
            hint=f"set {PASSPHRASE_ENV}, pass --passphrase-file, or run in a terminal",
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
    def __init__(
        self,
        home: Path,
        storage: Storage | None,
        *,
        passphrase: PassphraseSource = env_passphrase,
        kdf: KdfParams | None = None,
        now: Callable[[], float] = time.time,
        db: StateDB | None = None,
    ) -> None:
        self.home = home
        self._storage = storage
        self.keystore = Keystore(home)
        self.db = db or StateDB(home)
        self._passphrase = passphrase
        self._kdf = kdf
        self._now = now
        self._unlocked: dict[str, IdentityKeys] = {}
        self._documents: dict[tuple[str, str], IdentityDocument] = {}  # (did, cid) -> verified

    def __repr__(self) -> str:
        return f"IdentityService({str(self.home)!r})"

    @property
    def storage(self) -> Storage:
        """The node; only publishing and resolving need one."""
        if self._storage is None:
            raise NodeUnreachableError("this needs a node, and none was given")
        return self._storage

    # -- local ----------------------------------------------------------------------------
    def _view(self, key_file: KeyFile) -> Identity:
        return Identity(
            name=key_file.name,
            did=key_file.did,
            ipns_name=identity_ipns_name(key_file.did),
            enc=key_file.enc.to_text(),
            created=key_file.created,
            encrypted=key_file.encrypted,
            published_seq=self.db.published_seq(key_file.did),
            default=self.db.get_meta("default_identity") == key_file.did,
        )

    async def create(self, name: str, *, encrypted: bool = True) -> Identity:
        """Make a new identity. ``encrypted=False`` keeps the keys in the clear: for
        development only (the CLI warns)."""
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
        self.keystore.add(key_file)
        return self._view(key_file)

    def list(self) -> list[Identity]:
        return [self._view(k) for k in self.keystore.list()]

    def get(self, name_or_did: str | None = None) -> Identity:
        """An identity by name or did; with None, the default one (see :meth:`default`)."""
        if name_or_did is None:
            return self.default()
        return self._view(self.keystore.get(name_or_did))

    def default(self) -> Identity:
        """The identity set with :meth:`use`, else the only one there is."""
        chosen = self.db.get_meta("default_identity")
        if chosen is not None:
            found = self.keystore.find(chosen)
            if found is not None:
                return self._view(found)
        all_ids = self.keystore.list()
        if len(all_ids) == 1:
            return self._view(all_ids[0])
        if not all_ids:
            raise IdentityNotFoundError("there is no local identity yet")
        raise IdentityNotFoundError(
            f"there are {len(all_ids)} identities and none is the default",
            hint="pick one with 'ipfs-share identity use NAME' or pass --as NAME",
        )

    def use(self, name_or_did: str) -> Identity:
        key_file = self.keystore.get(name_or_did)
        self.db.set_meta("default_identity", key_file.did)
        return self._view(key_file)

    def rename(self, old: str, new: str) -> Identity:
        return self._view(self.keystore.rename(old, new))

    def live_shares(self, name_or_did: str) -> int:
        """How many capsules this identity issued that are still active: deleting its keys
        leaves them unrevokable (revoking needs the key)."""
        did = self.keystore.get(name_or_did).did
        return sum(1 for s in self.db.shares(issuer=did) if s.state == "active")

    def delete(self, name_or_did: str) -> Identity:
        """Delete the keys of an identity. What it signed and published stays valid; shares
        wrapped to it can no longer be opened here, and capsules it issued can no longer be
        revoked (see :meth:`live_shares`; the CLI warns)."""
        key_file = self.keystore.get(name_or_did)
        view = self._view(key_file)
        self.keystore.delete(key_file.did)
        self._unlocked.pop(key_file.did, None)
        if self.db.get_meta("default_identity") == key_file.did:
            self.db.set_meta("default_identity", None)
        self.db.forget_published(key_file.did)
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
        key_file = self.keystore.get(self.get(name_or_did).did)
        held = self._unlocked.get(key_file.did)
        if held is not None and passphrase is None:
            return held
        if key_file.encrypted and passphrase is None:
            passphrase = self._passphrase(f"passphrase for {key_file.name}")
        keys = await asyncio.to_thread(key_file.unlock, passphrase if key_file.encrypted else None)
        self._unlocked[key_file.did] = keys
        return keys

    def unlocked(self) -> tuple[str, ...]:
        """The dids whose keys this service holds now."""
        return tuple(self._unlocked)

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
        self.keystore.add(key_file)
        return self._view(key_file)

    # -- the network ----------------------------------------------------------------------
    async def publish(self, name_or_did: str | None = None) -> Published:
        """Sign a new identity document and publish it under the identity's IPNS name."""
        keys = await self.unlock(name_or_did)
        did = keys.did
        last = self.db.published_seq(did)
        seq = 0 if last is None else last + 1
        doc = make_identity_document(
            keys.signing, keys.enc_public, seq=seq, created=int(self._now())
        )
        cid = await self.storage.block_put(doc.data, codec="dag-cbor", pin=True)
        name = ipns_name(keys.signing.public_key)
        record = make_record(
            keys.signing,
            f"/ipfs/{cid}",
            sequence=seq,
            validity=DOCUMENT_VALIDITY,
            ttl_seconds=DOCUMENT_TTL_SECONDS,
            now=datetime.fromtimestamp(self._now(), UTC),
        )
        await self.storage.ipns_put(name, record)
        self.db.record_published(did, seq, cid)
        self.db.keep_document(did, seq, cid, doc.data)
        return Published(did=did, ipns_name=name, cid=cid, seq=seq)

    async def resolve(self, did_or_name: str, *, petname: str | None = None) -> ResolvedIdentity:
        """Fetch, verify and cache the freshest identity document of a did or IPNS name.

        A record or document that does not verify, or one older than a document already
        seen, is :class:`IdentityDocumentInvalidError`; with ``petname`` the identity is
        added to the contacts under that name.
        """
        did, name = _did_and_name(did_or_name)
        if petname is not None:
            check_name(petname)
        try:
            record_bytes = await asyncio.wait_for(self.storage.ipns_get(name), RESOLVE_TIMEOUT)
        except (NotFoundError, TimeoutError):
            raise IdentityNotFoundError(
                f"no identity document is published for {did}",
                hint="ask its owner to run 'ipfs-share identity publish'; check the nodes "
                "are connected",
            ) from None
        now = datetime.fromtimestamp(self._now(), UTC)
        try:
            record = verify_record(name, record_bytes, now=now)
        except IpnsRecordInvalidError as exc:
            raise IdentityDocumentInvalidError(f"the IPNS record of {did}: {exc.message}") from exc
        doc = await self._fetch_document(did, record.value)
        if doc.seq != record.sequence:
            raise IdentityDocumentInvalidError(
                f"expected the document of {did} to have seq {record.sequence} (its record's), "
                f"found {doc.seq}"
            )
        if not self.db.keep_document(did, doc.seq, doc.cid, doc.data):
            held = self.db.cached_document(did)
            raise IdentityDocumentInvalidError(
                f"expected a document of {did} with seq >= {held.seq if held else 0}, "
                f"found seq {doc.seq} (a replay of an older one)"
            )
        if petname is not None:
            self.db.put_contact(petname, did)
        return self._resolved(doc)

    async def _fetch_document(self, did: str, value: str) -> IdentityDocument:
        if not value.startswith("/ipfs/"):
            raise IdentityDocumentInvalidError(
                f"expected /ipfs/<cid> for {did}, found {value!r:.80}"
            )
        cid = value.removeprefix("/ipfs/")
        try:
            if parse_cid(cid).codec != DAG_CBOR:
                raise FormatError("not a dag-cbor CID")
            data = await asyncio.wait_for(self.storage.block_get(cid), RESOLVE_TIMEOUT)
            return decode_identity_document(data, did=did)
        except TimeoutError:
            raise IdentityNotFoundError(
                f"the identity document of {did} ({cid}) could not be fetched",
                hint="check the nodes are connected; the publisher's node must be reachable",
            ) from None
        except (FormatError, SignatureInvalidError) as exc:
            raise IdentityDocumentInvalidError(
                f"the identity document of {did} does not verify: {exc.message}"
            ) from exc

    def _resolved(self, doc: IdentityDocument) -> ResolvedIdentity:
        return ResolvedIdentity(
            did=doc.did,
            ipns_name=identity_ipns_name(doc.did),
            enc=doc.enc,
            seq=doc.seq,
            cid=doc.cid,
            revocations=doc.revocations,
            petnames=tuple(c.petname for c in self.db.contacts_for(doc.did)),
        )

    async def document(self, did: str) -> IdentityDocument:
        """The verified document of ``did``: the cached one if it was resolved within
        :data:`DOCUMENT_REFRESH` seconds, else resolved again (falling back to the cached
        one if that fails: a verified document beats none). The X25519 key is independent
        of the did's key and may change with a new document; re-resolving is how a sender
        learns of it."""
        cached = self.db.cached_document(did)
        if cached is None:
            await self.resolve(did)
            cached = self.db.cached_document(did)
            assert cached is not None  # resolve caches what it returns
        elif self._now() - cached.resolved_at > DOCUMENT_REFRESH and not self.keystore.find(did):
            try:
                await asyncio.wait_for(self.resolve(did), REFRESH_TIMEOUT)
            except (IpfsShareError, TimeoutError) as exc:
                log.info("kept the cached identity document of %s: %s", did, exc)
            cached = self.db.cached_document(did) or cached
        doc = self._documents.get((did, cached.cid))
        if doc is None:  # verify once per process, not once per open
            doc = decode_identity_document(cached.document, did=did)
            self._documents[(did, cached.cid)] = doc
        return doc

    # -- contacts and recipients ----------------------------------------------------------
    def add_contact(self, petname: str, did_or_name: str) -> str:
        check_name(petname)
        did, _ = _did_and_name(did_or_name)
        self.db.put_contact(petname, did)
        return did

    async def recipient(self, text: str) -> Recipient:
        """Whom ``text`` names: a local identity, a contact petname, a did:key or an IPNS name.
        Others' keys come from their verified documents (cached, else resolved now)."""
        if not text.startswith(("did:", "k51", "/ipns/")):
            local = self.keystore.find(text)
            if local is not None:
                return Recipient(local.did, local.enc, "identity")
            contact = self.db.contact(text)
            if contact is None:
                raise IdentityNotFoundError(
                    f"{text!r:.80} is neither a local identity nor a contact",
                    hint="add it with 'ipfs-share contacts add NAME DID', or pass a did",
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
            hint="copy the did from 'ipfs-share identity show' on the other machine",
        ) from exc
    return did_key(key), ipns_name(key)
