"""What the keychain service returns: frozen views with ``to_json`` for the CLI's --json."""

from __future__ import annotations

from dataclasses import dataclass, field

from ipfs_share.formats.keychain import Permissions

__all__ = [
    "BanResult",
    "KeyReceived",
    "KeyView",
    "KeychainView",
    "OutgoingShare",
    "Participant",
    "Rejected",
    "SyncReport",
]


@dataclass(frozen=True, slots=True)
class KeyView:
    fingerprint: str
    created: int
    expires: int | None
    added_by: str
    op: str
    held: bool  # this member holds it (and has it open)
    most_recent: bool  # the key encrypt uses

    def to_json(self) -> dict[str, object]:
        return {
            "fingerprint": self.fingerprint,
            "created": self.created,
            "expires": self.expires,
            "added_by": self.added_by,
            "op": self.op,
            "held": self.held,
            "most_recent": self.most_recent,
        }


@dataclass(frozen=True, slots=True)
class Rejected:
    op: str
    author: str
    kind: str
    reason: str
    message: str

    def to_json(self) -> dict[str, str]:
        return {
            "op": self.op,
            "author": self.author,
            "kind": self.kind,
            "reason": self.reason,
            "message": self.message,
        }


@dataclass(frozen=True, slots=True)
class KeychainView:
    fingerprint: str  # the create op's CID
    name: str | None  # None until this member holds the keychain secret
    member: str  # the local identity
    status: str  # 'member' | 'left' | 'banned' | 'invited' (an offer, not yet a member)
    creator: str
    created: int
    permissions: Permissions
    members: int
    keys: tuple[KeyView, ...]
    ops: int
    ignored: tuple[Rejected, ...] = field(default=())

    def to_json(self) -> dict[str, object]:
        return {
            "fingerprint": self.fingerprint,
            "name": self.name,
            "member": self.member,
            "status": self.status,
            "creator": self.creator,
            "created": self.created,
            "permissions": self.permissions.to_json(),
            "members": self.members,
            "keys": [k.to_json() for k in self.keys],
            "ops": self.ops,
            "ignored": [r.to_json() for r in self.ignored],
        }


@dataclass(frozen=True, slots=True)
class Participant:
    did: str
    name: str | None  # a local identity's name or a contact petname
    status: str
    permissions: Permissions
    joined: str  # the op that made it a member
    joined_at: int
    added_by: str
    key: str | None = None  # with a key filter: the key, since when and by whom
    since: str | None = None
    since_time: int | None = None
    key_added_by: str | None = None
    expires: int | None = None

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "did": self.did,
            "name": self.name,
            "status": self.status,
            "permissions": self.permissions.to_json(),
            "joined": self.joined,
            "joined_at": self.joined_at,
            "added_by": self.added_by,
        }
        if self.key is not None:
            out |= {
                "key": self.key,
                "since": self.since,
                "since_time": self.since_time,
                "key_added_by": self.key_added_by,
                "expires": self.expires,
            }
        return out


@dataclass(frozen=True, slots=True)
class OutgoingShare:
    offer: str  # the share op's CID
    keychain: str
    sharer: str
    to: str
    to_name: str | None
    keys: tuple[str, ...]
    expires: int | None
    permissions: Permissions
    created: int
    status: str  # 'pending' | 'accepted' | 'released' | 'cancelled' | 'dead'

    def to_json(self) -> dict[str, object]:
        return {
            "offer": self.offer,
            "keychain": self.keychain,
            "sharer": self.sharer,
            "to": self.to,
            "to_name": self.to_name,
            "keys": list(self.keys),
            "expires": self.expires,
            "permissions": self.permissions.to_json(),
            "created": self.created,
            "status": self.status,
        }


@dataclass(frozen=True, slots=True)
class KeyReceived:
    """The payload of ``key_received``: a key this member now holds and has open."""

    keychain: str
    member: str
    fingerprint: str
    added_by: str
    since: str

    def to_json(self) -> dict[str, str]:
        return {
            "keychain": self.keychain,
            "member": self.member,
            "fingerprint": self.fingerprint,
            "added_by": self.added_by,
            "since": self.since,
        }


@dataclass(frozen=True, slots=True)
class BanResult:
    ban: str
    rotated_to: str | None  # the new key's fingerprint
    delivered_to: int  # members the new key went to (the author included)

    def to_json(self) -> dict[str, object]:
        return {"ban": self.ban, "rotated_to": self.rotated_to, "delivered_to": self.delivered_to}


@dataclass(frozen=True, slots=True)
class SyncReport:
    keychains: int = 0
    fetched: int = 0  # ops fetched from the network
    accepted: tuple[str, ...] = ()  # offers this home accepted
    released: tuple[str, ...] = ()  # offers this home released
    received: tuple[KeyReceived, ...] = ()
    refused: int = 0  # blocks that were not valid ops
    problems: tuple[str, ...] = ()  # chains that could not be read, and why
    wrote: tuple[str, ...] = ()  # ops this sync wrote (accepts, releases)

    def to_json(self) -> dict[str, object]:
        return {
            "keychains": self.keychains,
            "fetched": self.fetched,
            "accepted": list(self.accepted),
            "released": list(self.released),
            "received": [r.to_json() for r in self.received],
            "refused": self.refused,
            "problems": list(self.problems),
            "wrote": list(self.wrote),
        }
