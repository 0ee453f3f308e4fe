"""The keys one local member holds in one keychain, opened from its deliveries.

A key is used only when the replayed state says the member holds it: a delivery in an op
the replay ignored (a release after a cancel, the share of a banned member) is never
opened, whatever it contains. Each delivery is checked against the fingerprints its op
names (:func:`~ipfs_share.formats.keychain.open_delivery`) and the keychain secret
against the sealed name. Key material stays in memory (this object); nothing is stored.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from ipfs_share.crypto.keychain import (
    KeychainKey,
    KeychainSecret,
    open_message,
    open_name,
    open_with,
    seal_message,
)
from ipfs_share.crypto.x25519 import EncryptionKey
from ipfs_share.errors import (
    DecryptionError,
    InvalidInputError,
    KeyUnwrapFailedError,
    RecipientNotAuthorizedError,
)
from ipfs_share.formats.keychain import (
    AddKey,
    Create,
    Delivery,
    Grant,
    Op,
    Release,
    fingerprint_text,
    open_delivery,
)
from ipfs_share.formats.keychain_replay import Holding, KeyInfo, Replica

__all__ = ["Keyring", "delivery_of"]

log = logging.getLogger("ipfs_share.keychains")


def delivery_of(op: Op, replica: Replica) -> tuple[Delivery, tuple[bytes, ...]] | None:
    """The delivery an op carries and the fingerprints of the keys it names, in order."""
    body = op.body
    if isinstance(body, Create | AddKey):
        return body.delivery, (body.key,)
    if isinstance(body, Grant):
        return body.delivery, body.keys
    if isinstance(body, Release):
        offer = replica.state.offers.get(body.offer)
        return None if offer is None else (body.delivery, offer.keys)
    return None


class Keyring:
    """``keys`` by fingerprint; ``secret`` (the keychain's, once a delivery gave it)."""

    def __init__(self, keychain: str, member: str) -> None:
        self.keychain = keychain
        self.member = member
        self.secret: KeychainSecret | None = None
        self.keys: dict[bytes, KeychainKey] = {}
        self.failed: dict[bytes, str] = {}  # fingerprint -> why its delivery did not open
        self._recent: tuple[bytes, KeychainKey, int | None] | None = None

    def __repr__(self) -> str:
        return f"Keyring({self.keychain!r}, {self.member!r}, keys={len(self.keys)})"

    def pending(self, replica: Replica) -> list[Holding]:
        """Holdings of this member whose key is not open yet (opening them needs the
        member's identity key unlocked)."""
        held = replica.state.holdings.get(self.member, {})
        return [h for fp, h in held.items() if fp not in self.keys and fp not in self.failed]

    def refresh(self, replica: Replica, my_key: EncryptionKey, name: bytes) -> list[Holding]:
        """Open every pending holding; return those opened (in replay order). ``name`` is
        the sealed name of the keychain, against which a delivered secret is checked."""
        opened: list[Holding] = []
        pending = sorted(self.pending(replica), key=lambda h: replica.state.keys[h.fp].index)
        for holding in pending:
            if holding.fp in self.keys:  # came with an earlier delivery of this loop
                opened.append(holding)
                continue
            found = delivery_of(replica.nodes[holding.since].op, replica)
            if found is None:
                self.failed[holding.fp] = "the op that gave it carries no delivery"
                continue
            delivery, fps = found
            try:
                secret, keys = open_delivery(delivery, self.member, my_key, fps)
            except (KeyUnwrapFailedError, RecipientNotAuthorizedError) as exc:
                log.warning(
                    "keychain %s: the key %s does not open: %s",
                    self.keychain,
                    fingerprint_text(holding.fp)[:12],
                    exc.message,
                )
                self.failed[holding.fp] = exc.message
                continue
            if self.secret is None:
                try:
                    open_name(secret, name)
                    self.secret = secret
                except DecryptionError:
                    log.warning("keychain %s: a delivery carried a wrong secret", self.keychain)
            held = replica.state.holdings.get(self.member, {})
            for fp, key in zip(fps, keys, strict=True):
                if fp in held:
                    self.keys[fp] = key
            opened.append(holding)
        if opened:
            self._recent = None
        return opened

    def name(self, sealed: bytes) -> str | None:
        """The keychain's name, if this member holds the secret."""
        if self.secret is None:
            return None
        return open_name(self.secret, sealed).decode("utf-8", errors="replace")

    # -- using keys -------------------------------------------------------------------------
    def most_recent(self, replica: Replica, now: int) -> tuple[bytes, KeychainKey]:
        """The most recent unexpired key this member holds and has open."""
        cached = self._recent
        if cached is not None and (cached[2] is None or now < cached[2]):
            return cached[0], cached[1]
        info = _most_recent_open(replica, self.member, self.keys, now)
        if info is None:
            raise RecipientNotAuthorizedError(
                f"expected an unexpired key of {self.keychain} held by {self.member}, found none",
                hint="ask a member to share the most recent key, or rotate if you may",
            )
        holding = replica.state.holdings[self.member][info.fp]
        until = min((t for t in (info.expires, holding.expires) if t is not None), default=None)
        self._recent = (info.fp, self.keys[info.fp], until)
        return info.fp, self.keys[info.fp]

    def forget_cache(self) -> None:
        self._recent = None

    def encrypt(self, replica: Replica, data: bytes, ad: bytes, now: int) -> bytes:
        fp, key = self.most_recent(replica, now)
        return seal_message(key, fp, data, ad)

    def decrypt(self, sealed: bytes, ad: bytes) -> bytes:
        return open_with(self.keys, sealed, ad)

    def key(self, fp: bytes) -> KeychainKey:
        found = self.keys.get(fp)
        if found is None:
            raise RecipientNotAuthorizedError(
                f"expected the key {fingerprint_text(fp)[:12]}... among the keys this member "
                "holds, found it missing",
                hint="ask a member with allow_sharing to share that key",
            )
        return found

    def open(self, fp: bytes, sealed: bytes, ad: bytes) -> bytes:
        return open_message(self.key(fp), sealed, ad)


def _most_recent_open(
    replica: Replica, member: str, keys: Mapping[bytes, KeychainKey], now: int
) -> KeyInfo | None:
    state = replica.state
    best: KeyInfo | None = None
    for h in state.holdings.get(member, {}).values():
        if h.fp not in keys:
            continue
        info = state.keys[h.fp]
        if (info.expires is not None and now >= info.expires) or (
            h.expires is not None and now >= h.expires
        ):
            continue
        if best is None or info.index > best.index:
            best = info
    return best


def resolve_key(replica: Replica, text: str) -> bytes:
    """A key of the keychain named by its fingerprint text or a unique prefix (>= 6)."""
    text = text.strip().lower()
    matches = [fp for fp in replica.state.keys if fingerprint_text(fp).startswith(text)]
    if len(text) < 6 or len(matches) != 1:
        found = "none" if not matches else f"{len(matches)} keys"
        raise InvalidInputError(
            f"expected a key fingerprint (or a unique prefix of 6+ characters) of the "
            f"keychain, found {found} for {text[:60]!r}",
            hint="see the keys with 'ipfs-share keychain show FP'",
        )
    return matches[0]


def unique(items: Sequence[bytes]) -> list[bytes]:
    return list(dict.fromkeys(items))


__all__ += ["resolve_key"]
