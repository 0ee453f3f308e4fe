"""People with their own keychain replicas, for replay tests, the vectors and the bench.

Each person writes ops with a :class:`~ipfs_share.formats.keychain.Writer`, naming the
heads of *their own* replica as parents, so concurrency is whatever the test makes it:
ops written before two people sync are concurrent, ops written after are not.
Key material is opened from the deliveries each person receives (``open_delivery``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ipfs_share.crypto.keychain import KeychainKey, KeychainSecret
from ipfs_share.crypto.random import DeterministicRng
from ipfs_share.crypto.signing import SigningKey
from ipfs_share.crypto.x25519 import EncryptionKey
from ipfs_share.formats.keychain import (
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
    key_fingerprint,
    make_delivery,
    open_delivery,
)
from ipfs_share.formats.keychain_replay import Replica
from ipfs_share.formats.signed import did_key

T0 = 1_800_000_000


@dataclass
class Person:
    name: str
    signing: SigningKey
    enc: EncryptionKey
    replica: Replica | None = None
    writer: Writer | None = None
    keys: dict[bytes, KeychainKey] = field(default_factory=dict)
    secret: KeychainSecret | None = None

    @property
    def did(self) -> str:
        return did_key(self.signing.public_key)


class World:
    def __init__(self, seed: bytes = b"world", *, rng: DeterministicRng | None = None) -> None:
        self.rng = rng or DeterministicRng(b"ipfs-share/tests/keychain/" + seed)
        self.people: dict[str, Person] = {}
        self.ops: list[Op] = []
        self.clock = T0
        self.create_op: Op | None = None

    # people and time
    def person(self, name: str) -> Person:
        if name not in self.people:
            self.people[name] = Person(
                name, SigningKey.generate(self.rng), EncryptionKey.generate(self.rng)
            )
        return self.people[name]

    def tick(self) -> int:
        self.clock += 60
        return self.clock

    @property
    def keychain(self) -> str:
        assert self.create_op is not None
        return self.create_op.cid

    # writing
    def create(self, name: str, kc_name: str = "team") -> Op:
        p = self.person(name)
        secret, first = KeychainSecret.generate(self.rng), KeychainKey.generate(self.rng)
        p.writer = Writer.create(
            p.signing,
            p.enc.public_key,
            name=kc_name,
            time=self.tick(),
            secret=secret,
            first=first,
            rng=self.rng,
        )
        op = p.writer.created
        self.create_op = op
        p.replica = Replica(op.cid)
        self._receive(p, [op])
        self.ops.append(op)
        return op

    def write(self, name: str, body: Body, *, apply: bool = True) -> Op:
        p = self.person(name)
        self._ensure(p)
        assert p.writer is not None and p.replica is not None
        op = p.writer.write(body, time=self.tick(), parents=p.replica.heads())
        self.ops.append(op)
        if apply:
            self._receive(p, [op])
        return op

    def sync(self, name: str, *others: str) -> None:
        """``name`` learns every op that ``others`` (default: everyone) hold."""
        p = self.person(name)
        self._ensure(p)
        assert p.replica is not None
        sources = [self.people[o] for o in others] if others else list(self.people.values())
        ops = [op for s in sources if s.replica is not None for op in s.replica.ops()]
        self._receive(p, ops)

    def sync_all(self) -> None:
        for name in list(self.people):
            self.sync(name)
        for name in list(self.people):
            self.sync(name)

    def _ensure(self, p: Person) -> None:
        if p.replica is None:
            assert self.create_op is not None
            p.replica = Replica(self.create_op.cid)
            self._receive(p, [self.create_op])
        if p.writer is None:
            assert self.create_op is not None
            p.writer = Writer(p.signing, self.create_op)

    def _receive(self, p: Person, ops: Sequence[Op]) -> None:
        assert p.replica is not None
        for op in ops:
            p.replica.add_op(op)
        for cid in p.replica.update():
            self._open(p, p.replica.nodes[cid].op)

    def _open(self, p: Person, op: Op) -> None:
        body = op.body
        if isinstance(body, Create | AddKey):
            fps: tuple[bytes, ...] = (body.key,)
        elif isinstance(body, Grant):
            fps = body.keys
        elif isinstance(body, Release):
            assert p.replica is not None
            offer = p.replica.nodes[body.offer].op.body
            assert isinstance(offer, Share)
            fps = offer.keys
        else:
            return
        if p.did not in body.delivery.to:
            return
        secret, keys = open_delivery(body.delivery, p.did, p.enc, fps)
        p.secret = p.secret or secret
        for fp, key in zip(fps, keys, strict=True):
            p.keys[fp] = key

    # the ops, by kind
    def rotate(self, name: str, *, to: Sequence[str] = (), expires: int | None = None) -> Op:
        p = self.person(name)
        key = KeychainKey.generate(self.rng)
        recipients = [self.person(n) for n in (name, *to)]
        assert p.secret is not None
        delivery = make_delivery(
            p.secret, [key], [(r.did, r.enc.public_key) for r in recipients], self.rng
        )
        p.keys[key_fingerprint(key)] = key
        return self.write(name, AddKey(key_fingerprint(key), expires, delivery))

    def share(
        self,
        name: str,
        to: str,
        *,
        keys: Sequence[bytes] | None = None,
        perms: Permissions = Permissions(),
        expires: int | None = None,
        apply: bool = True,
    ) -> Op:
        p = self.person(name)
        if keys is None:
            assert p.replica is not None
            recent = p.replica.state.most_recent_key(p.did, self.clock)
            assert recent is not None
            keys = [recent.fp]
        body = Share(self.person(to).did, tuple(sorted(keys)), expires, perms)
        return self.write(name, body, apply=apply)

    def accept(self, name: str, offer: Op) -> Op:
        return self.write(name, Accept(offer.cid, bytes(self.person(name).enc.public_key)))

    def cancel(self, name: str, offer: Op) -> Op:
        return self.write(name, Cancel(offer.cid))

    def release(self, name: str, offer: Op, *, keys: Sequence[KeychainKey] | None = None) -> Op:
        p = self.person(name)
        body = offer.body
        assert isinstance(body, Share) and p.secret is not None
        to = next(q for q in self.people.values() if q.did == body.to)
        material = list(keys) if keys is not None else [p.keys[fp] for fp in body.keys]
        delivery = make_delivery(p.secret, material, [(to.did, to.enc.public_key)], self.rng)
        return self.write(name, Release(offer.cid, delivery))

    def grant(self, name: str, to: Sequence[str], fps: Sequence[bytes]) -> Op:
        p = self.person(name)
        assert p.secret is not None
        recipients = [self.person(n) for n in to]
        delivery = make_delivery(
            p.secret,
            [p.keys[fp] for fp in sorted(fps)],
            [(r.did, r.enc.public_key) for r in recipients],
            self.rng,
        )
        return self.write(name, Grant(tuple(sorted(fps)), delivery))

    def set_perms(self, name: str, who: str, **changes: bool) -> Op:
        return self.write(name, SetPermissions(self.person(who).did, **changes))

    def ban(self, name: str, who: str) -> Op:
        return self.write(name, Ban(self.person(who).did))

    def leave(self, name: str) -> Op:
        return self.write(name, Leave())

    def invite(self, sharer: str, to: str, perms: Permissions = Permissions()) -> Op:
        """Share, accept, release: ``to`` becomes a member holding the most recent key."""
        offer = self.share(sharer, to, perms=perms)
        self.sync(to, sharer)
        self.accept(to, offer)
        self.sync(sharer, to)
        release = self.release(sharer, offer)
        self.sync(to, sharer)
        return release

    def fresh(self, ops: Sequence[Op] | None = None) -> Replica:
        """A new replica of every op written (or of ``ops``), replayed from scratch."""
        replica = Replica(self.keychain)
        for op in ops if ops is not None else self.ops:
            replica.add(op.data)
        replica.update()
        return replica


def first_key(world: World) -> bytes:
    assert world.create_op is not None and isinstance(world.create_op.body, Create)
    return world.create_op.body.key
