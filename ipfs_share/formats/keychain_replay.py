"""Replaying a keychain: from a DAG of signed ops to members, permissions and keys.

Pure and deterministic: every replica that holds the same set of ops computes the same
state, whatever order the ops arrived in (docs/spec/keychain.md section 4 states the rules;
tests/test_keychain_replay.py checks convergence over every merge order Hypothesis finds).

The order. Ops are replayed in a topological order of their causal links (``Op.deps``);
among ops that are ready at the same time the next is, in this order of preference:

1. not *blocked*: an op whose author is the target of a ban not yet replayed, and that is
   not in that ban's causal past, waits for the ban (so a ban wins the race against the
   banned member's concurrent ops, wherever the ban sits in the DAG);
2. authority-reducing first (ban, leave, cancel, a permission set to false);
3. the more senior author (the creator, then members in the order they joined; anyone
   else last);
4. the smaller op CID (binary).

When every ready op is blocked, bans go first. Timestamps never decide anything.

Validity. An op is valid if its rule holds in the replayed state *and* in its own causal
past: the op that made its author a member, the op that gave it each permission it uses
and the op that gave it each key it shares must all be in its causal past (ancestry is
read from ancestor bitsets). Invalid ops are kept, ignored, with a reason
(:class:`Rejection`).

Incremental. The replica keeps the replayed state and checkpoints of it. New ops that
become ready only after everything already replayed are applied to the state directly
(one op, O(1) work); an op that is concurrent with replayed ops (or a ban, or a fork, that
changes how earlier ops fare) makes the replica go back to the nearest checkpoint before
the first position it can change, and replay from there. Both give exactly the state a
full replay of the same ops gives (the order's prefix before that position cannot change).

>>> from ipfs_share.crypto.random import DeterministicRng
>>> from ipfs_share.crypto.signing import SigningKey
>>> from ipfs_share.crypto.x25519 import EncryptionKey
>>> from ipfs_share.formats.keychain import Writer
>>> rng = DeterministicRng(b"replay")
>>> owner, enc = SigningKey.generate(rng), EncryptionKey.generate(rng)
>>> w = Writer.create(owner, enc.public_key, name="team", time=1_800_000_000, rng=rng)
>>> bob = "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp"
>>> offer = w.write(Share(bob, (w.first_key,), None, Permissions()), time=1_800_000_060)
>>> replica = Replica(w.keychain)
>>> [replica.add(op.data) is not None for op in (offer, w.created)]   # any order
[True, True]
>>> replica.update() == [w.keychain, offer.cid]
True
>>> [o.to for o in replica.state.open_offers()] == [bob]
True
"""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Final, Literal

from ipfs_share.errors import IntegrityError, IpfsShareError
from ipfs_share.formats.keychain import (
    PERMISSION_NAMES,
    Accept,
    AddKey,
    Ban,
    Cancel,
    Create,
    Grant,
    Leave,
    Op,
    Permissions,
    Release,
    SetPermissions,
    Share,
    decode_op,
)
from ipfs_share.formats.signed import block_from_bytes

__all__ = [
    "CHECKPOINT_EVERY",
    "REASONS",
    "Holding",
    "KeyInfo",
    "Member",
    "Offer",
    "Rejection",
    "Replica",
    "State",
]

CHECKPOINT_EVERY: Final = 256
_JUNIOR: Final = 1 << 62  # the seniority of anyone who is not a member

# Every reason an op can be ignored for, with what it means (docs/spec/keychain.md 4.4).
REASONS: Final = {
    "signature_invalid": "the op's signature does not verify under its author's key",
    "format_invalid": "the op is malformed, or belongs to another keychain",
    "chain_invalid": "prev is not the author's op at seq - 1",
    "fork": "its author signed two ops at one seq: everything from there on is void",
    "not_a_member": "the author is not a member here (or joined outside its causal past)",
    "banned": "its author was banned, and the ban had not seen this op",
    "permission_denied": "the author lacks a permission the op needs, in its causal past",
    "creator_protected": "only the creator can ban the creator or change its permissions",
    "unknown_key": "the op names a key no add_key introduced (new keys need allowRotation)",
    "duplicate_key": "the key was already introduced",
    "key_not_held": "the author does not hold a key it shares, in the op's causal past",
    "target_not_member": "the member the op acts on is not one (or not in its causal past)",
    "member_banned": "the recipient is banned from this keychain",
    "invalid_recipient": "the recipient of a share is its author",
    "bad_delivery": "the op delivers keys to someone it may not",
    "offer_invalid": "the offer the op answers was ignored",
    "not_offer_recipient": "only an offer's recipient can accept it",
    "not_offer_author": "only an offer's author can cancel or release it",
    "offer_cancelled": "the offer was cancelled first",
    "offer_dead": "the offer died with a ban or a leave",
    "already_accepted": "the offer was accepted already",
    "already_released": "the offer's keys were released already",
    "already_cancelled": "the offer was cancelled already",
    "not_accepted": "the release does not follow the recipient's acceptance",
}

OfferStatus = Literal["pending", "accepted", "released", "cancelled", "dead"]
MemberStatus = Literal["member", "left", "banned"]


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why an op is ignored: a stable ``reason`` (a key of :data:`REASONS`) and details."""

    cid: str
    reason: str
    message: str

    def to_json(self) -> dict[str, str]:
        return {"op": self.cid, "reason": self.reason, "message": self.message}


@dataclass(frozen=True, slots=True)
class Member:
    did: str
    perms: Permissions
    status: MemberStatus
    since: str  # the op that made them a member (create or release)
    added_by: str
    time: int
    rank: int  # seniority: 0 for the creator, then in the order members joined
    perm_ops: tuple[str, str, str, str]  # the op that last set each permission
    enc: bytes  # its X25519 key, named in its create or accept: deliveries wrap keys for it
    ended_by: str | None = None  # the leave or ban


@dataclass(frozen=True, slots=True)
class KeyInfo:
    fp: bytes
    added_by: str
    op: str
    time: int
    expires: int | None
    index: int  # its place in the replay order: the larger, the more recent


@dataclass(frozen=True, slots=True)
class Holding:
    """``holder`` has held key ``fp`` since op ``since`` (``added_by`` gave it)."""

    fp: bytes
    holder: str
    since: str
    added_by: str
    time: int
    expires: int | None  # the holder's own expiry (from the share), if any


@dataclass(frozen=True, slots=True)
class Offer:
    cid: str
    sharer: str
    to: str
    keys: tuple[bytes, ...]
    expires: int | None
    perms: Permissions
    time: int
    status: OfferStatus = "pending"
    accept: str | None = None
    release: str | None = None
    ended_by: str | None = None

    def moved(
        self,
        status: OfferStatus,
        *,
        accept: str | None = None,
        release: str | None = None,
        ended_by: str | None = None,
    ) -> Offer:
        """This offer in another state (``dataclasses.replace`` costs four times more, and
        every share and cancel of a long log goes through here)."""
        return Offer(
            self.cid,
            self.sharer,
            self.to,
            self.keys,
            self.expires,
            self.perms,
            self.time,
            status,
            accept or self.accept,
            release or self.release,
            ended_by or self.ended_by,
        )


class State:
    """The replayed state of a keychain. Read it through the methods; the replica owns it."""

    __slots__ = (
        "creator",
        "cutoffs",
        "holdings",
        "invalid",
        "keys",
        "members",
        "next_rank",
        "offers",
    )

    def __init__(self) -> None:
        self.creator: str | None = None
        self.members: dict[str, Member] = {}
        self.keys: dict[bytes, KeyInfo] = {}
        self.holdings: dict[str, dict[bytes, Holding]] = {}
        self.offers: dict[str, Offer] = {}
        self.invalid: dict[str, Rejection] = {}
        # banned did -> (the last seq of theirs the ban had seen, the ban)
        self.cutoffs: dict[str, tuple[int, str]] = {}
        self.next_rank = 0

    def copy(self) -> State:
        other = State()
        other.creator = self.creator
        other.members = dict(self.members)
        other.keys = dict(self.keys)
        other.holdings = {k: dict(v) for k, v in self.holdings.items()}
        other.offers = dict(self.offers)
        other.invalid = dict(self.invalid)
        other.cutoffs = dict(self.cutoffs)
        other.next_rank = self.next_rank
        return other

    # -- queries ----------------------------------------------------------------------------
    def member(self, did: str) -> Member | None:
        """The member record of ``did`` (also for one who left or was banned)."""
        return self.members.get(did)

    def is_member(self, did: str) -> bool:
        m = self.members.get(did)
        return m is not None and m.status == "member"

    def current_members(self) -> list[Member]:
        return sorted(
            (m for m in self.members.values() if m.status == "member"), key=lambda m: m.rank
        )

    def keys_in_order(self) -> list[KeyInfo]:
        return sorted(self.keys.values(), key=lambda k: k.index)

    def held_by(self, did: str) -> list[Holding]:
        held = self.holdings.get(did, {})
        return sorted(held.values(), key=lambda h: self.keys[h.fp].index)

    def holders(self, fp: bytes) -> list[Holding]:
        out = [h[fp] for h in self.holdings.values() if fp in h]
        return sorted(out, key=lambda h: (self.members[h.holder].rank, h.holder))

    def most_recent_key(self, did: str, now: int) -> KeyInfo | None:
        """The most recent key ``did`` holds that has not expired at ``now``."""
        best: KeyInfo | None = None
        for h in self.holdings.get(did, {}).values():
            info = self.keys[h.fp]
            if _expired(info.expires, now) or _expired(h.expires, now):
                continue
            if best is None or info.index > best.index:
                best = info
        return best

    def open_offers(self, *, sharer: str | None = None, to: str | None = None) -> list[Offer]:
        """Offers not released, cancelled or dead (pending or accepted), oldest first."""
        return [
            o
            for o in self.offers.values()
            if o.status in ("pending", "accepted")
            and (sharer is None or o.sharer == sharer)
            and (to is None or o.to == to)
        ]

    def digest(self) -> str:
        """A hash of everything replayed (for comparing replicas)."""
        h = hashlib.sha256()
        for part in (
            sorted(self.members.items()),
            sorted(self.keys.items()),
            sorted((k, sorted(v.items())) for k, v in self.holdings.items()),
            sorted(self.offers.items()),
            sorted(self.invalid.items()),
            sorted(self.cutoffs.items()),
        ):
            h.update(repr(part).encode())
        return h.hexdigest()


def _expired(expires: int | None, now: int) -> bool:
    return expires is not None and now >= expires


class _Invalid(Exception):  # a control-flow signal inside the replay, never raised out
    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        self.message = message


# --- the replica ------------------------------------------------------------------------


@dataclass(slots=True)
class _Node:
    op: Op
    key: bytes  # sha256 of the block: the binary CID order
    id: int = -1  # the order in which ops became complete: this op's bit in ``anc``
    anc: int = 0  # a bitset of every op in this op's causal past
    complete: bool = False
    waiting: int = 0  # deps not yet complete


class Replica:
    """The ops of one keychain and their replayed state.

    ``add(data)`` verifies and stores an op (or records why it was refused);
    ``missing()`` lists the CIDs referenced but not held yet (fetch and ``add`` them);
    ``update()`` replays what became complete. ``state`` is the result.
    """

    def __init__(self, keychain: str) -> None:
        self.keychain = keychain
        self.nodes: dict[str, _Node] = {}
        self.rejected: dict[str, Rejection] = {}  # refused at decoding: never in the DAG
        self.state = State()
        self.order: list[str] = []
        self.index: dict[str, int] = {}
        self.stats = {"applied": 0, "replays": 0, "restarts_from": -1}
        self._dependants: dict[str, list[str]] = {}  # missing or incomplete cid -> ops
        self._seqs: dict[str, dict[int, list[str]]] = {}  # author -> seq -> cids
        self._forks: dict[str, int] = {}  # author -> the first seq signed twice
        self._new: list[str] = []  # complete, not replayed yet
        self._new_forks: set[str] = set()
        self._heads: set[str] = set()
        self._next_id = 0
        self._checkpoints: list[tuple[int, State]] = [(0, State())]

    # -- ingestion --------------------------------------------------------------------------
    def add(self, data: bytes, *, cid: str | None = None) -> Op | None:
        """Decode and verify one op; ``None`` if it is refused (see :attr:`rejected`)."""
        actual = block_from_bytes(data).cid
        if cid is not None and cid != actual:
            raise IntegrityError(f"expected the block {cid}, found bytes of {actual}")
        try:
            op = decode_op(data, keychain=self.keychain)
        except IpfsShareError as exc:
            self.rejected[actual] = Rejection(actual, exc.code, exc.message)
            return None
        self.add_op(op)
        return op

    def add_op(self, op: Op) -> None:
        """Store an op already decoded and verified by :func:`decode_op` for this keychain."""
        if op.cid in self.nodes:
            return
        if op.keychain != self.keychain:
            raise ValueError(f"expected an op of {self.keychain}, found one of {op.keychain}")
        node = _Node(op, hashlib.sha256(op.data).digest())
        self.nodes[op.cid] = node
        waiting = 0
        for dep in op.deps:
            d = self.nodes.get(dep)
            if d is None or not d.complete:
                waiting += 1
                self._dependants.setdefault(dep, []).append(op.cid)
        node.waiting = waiting
        if waiting == 0:
            self._complete(node)

    def _complete(self, first: _Node) -> None:
        stack = [first]
        while stack:
            node = stack.pop()
            op = node.op
            if op.prev is not None:
                prev = self.nodes[op.prev].op
                if prev.author != op.author or prev.seq != op.seq - 1:
                    # Never part of the DAG: a gap or a borrowed prev would make the vector
                    # clocks claim ops were seen that were not. Its dependants wait forever.
                    self.rejected[op.cid] = Rejection(
                        op.cid, "chain_invalid", f"prev is not {op.author}'s op at seq {op.seq - 1}"
                    )
                    continue
            anc = 0
            for dep in op.deps:
                d = self.nodes[dep]
                anc |= d.anc | (1 << d.id)
            node.anc = anc
            node.id = self._next_id
            self._next_id += 1
            node.complete = True
            self._heads.difference_update(op.deps)
            self._heads.add(op.cid)
            seqs = self._seqs.setdefault(op.author, {}).setdefault(op.seq, [])
            seqs.append(op.cid)
            if len(seqs) > 1 and self._forks.get(op.author, op.seq + 1) > op.seq:
                self._forks[op.author] = op.seq
                self._new_forks.add(op.author)
            self._new.append(op.cid)
            for child in self._dependants.pop(op.cid, ()):
                c = self.nodes[child]
                c.waiting -= 1
                if c.waiting == 0:
                    stack.append(c)

    def missing(self) -> set[str]:
        """CIDs that held ops depend on and that are neither held nor refused."""
        return {c for c in self._dependants if c not in self.nodes and c not in self.rejected}

    def waiting(self) -> list[Op]:
        """Ops held but not replayable yet (a dependency is missing or was refused)."""
        return [n.op for n in self.nodes.values() if not n.complete]

    def heads(self) -> list[str]:
        """Complete ops no complete op depends on (what a new op should name), newest
        first in replay order (ops not replayed yet first of all)."""
        index = self.index
        return sorted(self._heads, key=lambda c: -index.get(c, len(index)))

    def in_past(self, ancestor: str, op: str) -> bool:
        """Is ``ancestor`` in the causal past of ``op`` (both complete)?"""
        return bool(self.nodes[op].anc >> self.nodes[ancestor].id & 1)

    def cutoff(self, ban: str, member: str) -> int:
        """The greatest seq of ``member``'s ops in the causal past of ``ban`` (-1: none);
        its ops are a chain, so exactly those up to this seq are in that past."""
        anc = self.nodes[ban].anc
        best = -1
        for seq, cids in self._seqs.get(member, {}).items():
            if seq > best and any(anc >> self.nodes[c].id & 1 for c in cids):
                best = seq
        return best

    # -- replay -----------------------------------------------------------------------------
    def update(self) -> list[str]:
        """Replay the ops that became complete since the last update; return the CIDs
        applied in this call (in replay order, including the ones replayed again)."""
        if not self._new:
            return []
        new, self._new = self._new, []
        start = self._restart_point(new)
        todo = self._rewind(start) + new if start < len(self.order) else new
        self.stats["restarts_from"] = start
        before = len(self.order)
        self._run(todo)
        return self.order[before:]

    def replay_all(self) -> None:
        """Forget the replayed state and replay everything (what a new replica does)."""
        self._new = []
        self._new_forks.clear()
        self._rewind(0)
        self._run([c for c, n in self.nodes.items() if n.complete])

    def _restart_point(self, new: list[str]) -> int:
        """The first position of the replay order that ``new`` ops can change."""
        fresh = set(new)
        point = len(self.order)
        for cid in new:
            op = self.nodes[cid].op
            old = [self.index[d] for d in op.deps if d not in fresh]
            if len(old) == len(op.deps):  # becomes ready right after its last dependency
                point = min(point, 1 + max(old, default=-1))
            if isinstance(op.body, Ban):  # holds back the target's concurrent ops
                cut = self.cutoff(cid, op.body.member)
                point = min(point, self._first_applied(op.body.member, cut + 1))
        for author in self._new_forks:
            point = min(point, self._first_applied(author, self._forks[author]))
        self._new_forks.clear()
        return point

    def _first_applied(self, author: str, from_seq: int) -> int:
        best = len(self.order)
        for seq, cids in self._seqs.get(author, {}).items():
            if seq >= from_seq:
                for c in cids:
                    i = self.index.get(c)
                    if i is not None and i < best:
                        best = i
        return best

    def _rewind(self, position: int) -> list[str]:
        """Go back to the last checkpoint at or before ``position``; return the ops that
        are no longer replayed."""
        while self._checkpoints[-1][0] > position:
            self._checkpoints.pop()
        at, saved = self._checkpoints[-1]
        undone = self.order[at:]
        for cid in undone:
            del self.index[cid]
        del self.order[at:]
        self.state = saved.copy()
        self.stats["replays"] += 1
        return undone

    def _run(self, todo: list[str]) -> None:
        """Kahn's algorithm over ``todo`` (complete ops not replayed yet), with the
        preference order of the module docstring."""
        nodes, index = self.nodes, self.index
        if not todo:
            return
        todo_set = set(todo)
        indegree: dict[str, int] = {}
        children: dict[str, list[str]] = {}
        bans: dict[str, list[tuple[int, str]]] = {}  # target -> (cutoff, ban) not replayed
        for cid in todo:
            op = nodes[cid].op
            count = 0
            for dep in op.deps:
                if dep in todo_set:
                    count += 1
                    children.setdefault(dep, []).append(cid)
            indegree[cid] = count
            if isinstance(op.body, Ban):
                target = op.body.member
                bans.setdefault(target, []).append((self.cutoff(cid, target), cid))
        heap: list[tuple[int, int, int, int, bytes, str, int]] = []
        version: dict[str, int] = {}
        ready_by_author: dict[str, set[str]] = {}

        def push(cid: str) -> None:
            node = nodes[cid]
            op = node.op
            pending = bans.get(op.author)
            blocked = pending is not None and any(cut < op.seq for cut, _ in pending)
            is_ban = isinstance(op.body, Ban)
            member = self.state.members.get(op.author)
            rank = member.rank if member is not None and member.status == "member" else _JUNIOR
            v = version.get(cid, 0) + 1
            version[cid] = v
            key = (
                int(blocked),
                0 if blocked and is_ban else 1,
                0 if op.reduces_authority else 1,
                rank,
                node.key,
                cid,
                v,
            )
            heapq.heappush(heap, key)
            ready_by_author.setdefault(op.author, set()).add(cid)

        for cid in todo:
            if indegree[cid] == 0:
                push(cid)
        checkpoint_at = self._checkpoints[-1][0] + CHECKPOINT_EVERY
        while heap:
            *_, cid, v = heapq.heappop(heap)
            if version[cid] != v:
                continue  # re-keyed since
            op = nodes[cid].op
            ready_by_author[op.author].discard(cid)
            before = self.state.members.get(op.author)
            touched = self._apply(op)
            index[cid] = len(self.order)
            self.order.append(cid)
            self.stats["applied"] += 1
            if isinstance(op.body, Ban):
                target = op.body.member
                bans[target] = [b for b in bans[target] if b[1] != cid]
                if not bans[target]:
                    del bans[target]
                touched.add(target)
            if self.state.members.get(op.author) is not before:
                touched.add(op.author)
            for did in touched:  # seniority or blocking changed: re-key their ready ops
                for other in list(ready_by_author.get(did, ())):
                    push(other)
            for child in children.get(cid, ()):
                indegree[child] -= 1
                if indegree[child] == 0:
                    push(child)
            if len(self.order) >= checkpoint_at:
                self._checkpoints.append((len(self.order), self.state.copy()))
                checkpoint_at = len(self.order) + CHECKPOINT_EVERY

    # -- the rules --------------------------------------------------------------------------
    def _apply(self, op: Op) -> set[str]:
        """Apply one op to the state, or record why it is ignored; return the dids whose
        membership changed (their seniority decides the order of their ready ops)."""
        try:
            return self._check_and_apply(op)
        except _Invalid as bad:
            self.state.invalid[op.cid] = Rejection(op.cid, bad.reason, bad.message)
            return set()

    def _check_and_apply(self, op: Op) -> set[str]:
        s = self.state
        fork = self._forks.get(op.author)
        if fork is not None and op.seq >= fork:
            raise _Invalid("fork", f"{op.author} signed two ops at seq {fork}")
        cut = s.cutoffs.get(op.author)
        if cut is not None and op.seq > cut[0]:
            raise _Invalid("banned", f"{op.author} was banned by {cut[1]}, which had not seen it")
        body = op.body
        if isinstance(body, Create):
            return self._create(op, body)
        if isinstance(body, Accept):
            return self._accept(op, body)
        if isinstance(body, Cancel):
            return self._cancel(op, body)
        if isinstance(body, Release):
            return self._release(op, body)
        author = self._member(op)
        if isinstance(body, AddKey):
            return self._add_key(op, body, author)
        if isinstance(body, Share):
            return self._share(op, body, author)
        if isinstance(body, Grant):
            return self._grant(op, body, author)
        if isinstance(body, SetPermissions):
            return self._set_permissions(op, body, author)
        if isinstance(body, Ban):
            return self._ban(op, body, author)
        assert isinstance(body, Leave)
        s.members[op.author] = replace(author, status="left", ended_by=op.cid)
        self._end_offers(op.author, op.cid)
        return {op.author}

    # checks shared by the kinds
    def _member(self, op: Op) -> Member:
        m = self.state.members.get(op.author)
        if m is None or m.status != "member":
            state = "never a member" if m is None else m.status
            raise _Invalid("not_a_member", f"{op.author} is not a member ({state})")
        if not self.in_past(m.since, op.cid):
            raise _Invalid("not_a_member", f"{op.author}'s membership is not in the op's past")
        return m

    def _require(self, op: Op, m: Member, permission: str) -> None:
        i = PERMISSION_NAMES.index(permission)
        if not getattr(m.perms, permission):
            raise _Invalid("permission_denied", f"{m.did} lacks allow_{permission}")
        if not self.in_past(m.perm_ops[i], op.cid):
            raise _Invalid("permission_denied", f"{m.did} got allow_{permission} after this op")

    def _target(self, op: Op, did: str) -> Member:
        m = self.state.members.get(did)
        if m is None or m.status != "member" or not self.in_past(m.since, op.cid):
            raise _Invalid("target_not_member", f"{did} is not a member in the op's past")
        return m

    def _holds(self, op: Op, did: str, fps: Iterable[bytes]) -> None:
        held = self.state.holdings.get(did, {})
        for fp in fps:
            if fp not in self.state.keys:
                raise _Invalid("unknown_key", f"no add_key introduced the key {fp.hex()[:16]}")
            h = held.get(fp)
            if h is None or not self.in_past(h.since, op.cid):
                raise _Invalid("key_not_held", f"{did} does not hold the key {fp.hex()[:16]}")

    def _grants(self, op: Op, m: Member, perms: Permissions) -> None:
        for name in PERMISSION_NAMES:
            if getattr(perms, name):
                try:
                    self._require(op, m, name)
                except _Invalid:
                    raise _Invalid(
                        "permission_denied", f"{m.did} cannot grant allow_{name}: it lacks it"
                    ) from None

    def _hold(self, did: str, fp: bytes, op: Op, by: str, expires: int | None) -> None:
        held = self.state.holdings.setdefault(did, {})
        if fp not in held:  # the first holding is the one "since"
            held[fp] = Holding(fp, did, op.cid, by, op.time, expires)

    def _join(self, did: str, op: Op, by: str, perms: Permissions, enc: bytes) -> None:
        s = self.state
        s.members[did] = Member(
            did, perms, "member", op.cid, by, op.time, s.next_rank, (op.cid,) * 4, enc
        )
        s.next_rank += 1

    def _end_offers(self, did: str, by: str) -> None:
        s = self.state
        for o in s.open_offers():
            if did in (o.sharer, o.to):
                s.offers[o.cid] = o.moved("dead", ended_by=by)

    def _offer(self, body: Accept | Cancel | Release) -> Offer:
        o = self.state.offers.get(body.offer)
        if o is None:
            why = self.state.invalid.get(body.offer)
            detail = f" ({why.reason})" if why is not None else ""
            raise _Invalid("offer_invalid", f"{body.offer} is not a valid offer{detail}")
        return o

    # the kinds
    def _create(self, op: Op, body: Create) -> set[str]:
        s = self.state
        if op.cid != self.keychain or s.creator is not None:
            raise _Invalid("format_invalid", "a second create op")
        if body.delivery.to != (op.author,):
            raise _Invalid("bad_delivery", "create delivers its first key to its creator only")
        s.creator = op.author
        self._join(op.author, op, op.author, Permissions.all(), body.enc)
        s.keys[body.key] = KeyInfo(body.key, op.author, op.cid, op.time, body.expires, 0)
        self._hold(op.author, body.key, op, op.author, None)
        return {op.author}

    def _add_key(self, op: Op, body: AddKey, m: Member) -> set[str]:
        s = self.state
        self._require(op, m, "rotation")
        if body.key in s.keys:
            raise _Invalid("duplicate_key", f"the key {body.key.hex()[:16]} exists already")
        self._deliver_to_members(op, body.delivery.to, m)
        s.keys[body.key] = KeyInfo(
            body.key, op.author, op.cid, op.time, body.expires, len(self.order)
        )
        for did in body.delivery.to:
            self._hold(did, body.key, op, op.author, None)
        return set()

    def _deliver_to_members(self, op: Op, to: tuple[str, ...], m: Member) -> None:
        others = [d for d in to if d != op.author]
        if others:
            self._require(op, m, "sharing")
        for did in others:
            try:
                self._target(op, did)
            except _Invalid as bad:
                raise _Invalid("bad_delivery", f"delivers to a non-member: {bad.message}") from None

    def _share(self, op: Op, body: Share, m: Member) -> set[str]:
        s = self.state
        self._require(op, m, "sharing")
        if body.to == op.author:
            raise _Invalid("invalid_recipient", "a share to its own author")
        to = s.members.get(body.to)
        if to is not None and to.status == "banned":
            raise _Invalid("member_banned", f"{body.to} is banned")
        self._holds(op, op.author, body.keys)
        self._grants(op, m, body.perms)
        s.offers[op.cid] = Offer(
            op.cid, op.author, body.to, body.keys, body.expires, body.perms, op.time
        )
        return set()

    def _accept(self, op: Op, body: Accept) -> set[str]:
        o = self._offer(body)
        if op.author != o.to:
            raise _Invalid("not_offer_recipient", f"the offer is for {o.to}")
        if o.status != "pending":
            raise _Invalid(_ANSWERED[o.status], f"the offer is {o.status}")
        self.state.offers[o.cid] = o.moved("accepted", accept=op.cid)
        return set()

    def _cancel(self, op: Op, body: Cancel) -> set[str]:
        o = self._offer(body)
        if op.author != o.sharer:
            raise _Invalid("not_offer_author", f"the offer is {o.sharer}'s")
        if o.status not in ("pending", "accepted"):
            reason = "already_cancelled" if o.status == "cancelled" else _ANSWERED[o.status]
            raise _Invalid(reason, f"the offer is {o.status}")
        self.state.offers[o.cid] = o.moved("cancelled", ended_by=op.cid)
        return set()

    def _release(self, op: Op, body: Release) -> set[str]:
        s = self.state
        o = self._offer(body)
        if op.author != o.sharer:
            raise _Invalid("not_offer_author", f"the offer is {o.sharer}'s")
        if o.status != "accepted":
            reason = "not_accepted" if o.status == "pending" else _ANSWERED[o.status]
            raise _Invalid(reason, f"the offer is {o.status}")
        assert o.accept is not None
        if not self.in_past(o.accept, op.cid):
            raise _Invalid("not_accepted", "the acceptance is not in the release's past")
        m = self._member(op)
        self._require(op, m, "sharing")
        self._holds(op, op.author, o.keys)
        self._grants(op, m, o.perms)
        if body.delivery.to != (o.to,):
            raise _Invalid("bad_delivery", f"a release delivers to the offer's recipient {o.to}")
        s.offers[o.cid] = o.moved("released", release=op.cid)
        accept = self.nodes[o.accept].op.body
        assert isinstance(accept, Accept)
        joined = set()
        if not s.is_member(o.to):
            self._join(o.to, op, op.author, o.perms, accept.enc)
            joined.add(o.to)
        elif s.members[o.to].enc != accept.enc:  # the member named a new key
            s.members[o.to] = replace(s.members[o.to], enc=accept.enc)
        for fp in o.keys:
            self._hold(o.to, fp, op, op.author, o.expires)
        return joined

    def _grant(self, op: Op, body: Grant, m: Member) -> set[str]:
        self._require(op, m, "sharing")
        self._holds(op, op.author, body.keys)
        if op.author in body.delivery.to:
            raise _Invalid("bad_delivery", "a grant to its own author")
        self._deliver_to_members(op, body.delivery.to, m)
        for did in body.delivery.to:
            for fp in body.keys:
                self._hold(did, fp, op, op.author, None)
        return set()

    def _set_permissions(self, op: Op, body: SetPermissions, m: Member) -> set[str]:
        s = self.state
        self._require(op, m, "management")
        target = self._target(op, body.member)
        if target.did == s.creator and op.author != s.creator:
            raise _Invalid("creator_protected", "only the creator changes its own permissions")
        flags = [getattr(target.perms, n) for n in PERMISSION_NAMES]
        ops = list(target.perm_ops)
        for name, value in body.changes().items():
            i = PERMISSION_NAMES.index(name)
            if value and not flags[i] and not self.in_past(ops[i], op.cid):
                continue  # a concurrent deny of this flag was replayed: deny wins
            if value != flags[i] or value is False:
                flags[i] = value
                ops[i] = op.cid
        s.members[target.did] = replace(
            target, perms=Permissions(*flags), perm_ops=(ops[0], ops[1], ops[2], ops[3])
        )
        return set()

    def _ban(self, op: Op, body: Ban, m: Member) -> set[str]:
        s = self.state
        if body.member != op.author:
            self._require(op, m, "deletion")
            if body.member == s.creator:
                raise _Invalid("creator_protected", "the creator cannot be banned by others")
        target = self._target(op, body.member)
        s.members[target.did] = replace(target, status="banned", ended_by=op.cid)
        s.cutoffs[target.did] = (self.cutoff(op.cid, target.did), op.cid)
        self._end_offers(target.did, op.cid)
        return {target.did}

    # -- reading ----------------------------------------------------------------------------
    def ops(self) -> Iterator[Op]:
        """Every op held, in replay order first, then those waiting."""
        for cid in self.order:
            yield self.nodes[cid].op
        for node in self.nodes.values():
            if node.op.cid not in self.index:
                yield node.op

    def chains(self) -> dict[str, bytes]:
        """The chain key each author named in its first op (author -> public key)."""
        out: dict[str, bytes] = {}
        for node in self.nodes.values():
            op = node.op
            if op.seq == 0 and op.chain is not None and op.author not in out:
                out[op.author] = op.chain
        return out


_ANSWERED: Final[dict[str, str]] = {
    "pending": "not_accepted",
    "accepted": "already_accepted",
    "released": "already_released",
    "cancelled": "offer_cancelled",
    "dead": "offer_dead",
}
