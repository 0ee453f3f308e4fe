"""The pure feed walk (formats/feed.py) over each registered kind: marks, resumed
progress, rollbacks, forks, gaps, budgets, backlogs and who may sign."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from ipfs_share.crypto.signing import SigningKey, VerifyKey
from ipfs_share.crypto.x25519 import EncryptionKey
from ipfs_share.errors import (
    ChainInvalidError,
    FeedForkError,
    FeedRollbackError,
    FormatError,
    SignatureInvalidError,
)
from ipfs_share.formats import feed
from ipfs_share.formats.feed import Mark, Only, walk
from ipfs_share.formats.identity_doc import IDENTITY_FEED, make_identity_document
from ipfs_share.formats.mailbox import MAILBOX_FEED, MailboxEntry, make_entry
from ipfs_share.formats.revocation import REVOCATION_FEED, make_head, revoke
from ipfs_share.formats.signed import block_from_bytes, block_of, did_key, parse_did_key, run_walk

KEY = SigningKey.from_seed(b"\x01" * 32)
ME = did_key(KEY.public_key)
CAP = block_of({"capsule": 1}).cid


def chain(n: int, key: SigningKey = KEY, start: MailboxEntry | None = None) -> list[MailboxEntry]:
    out: list[MailboxEntry] = []
    previous = start
    for i in range(n):
        previous = make_entry(key, previous, capsule=CAP, sent=1_800_000_000 + i)
        out.append(previous)
    return out


class Store:
    def __init__(self, *entries: MailboxEntry) -> None:
        self.blocks = {e.cid: e.data for e in entries}
        self.reads = 0

    def __call__(self, cid: str) -> bytes:
        self.reads += 1
        return self.blocks[cid]


def run(store: Callable[[str], bytes], head: str, **options: object) -> feed.FeedWalk:
    options.setdefault("signers", Only(ME))
    return run_walk(walk(MAILBOX_FEED, head, **options), store)  # type: ignore[arg-type]


def test_every_kind_is_registered_by_name() -> None:
    assert {"identity", "revocation", "mailbox"} <= set(feed.kinds())
    assert feed.kind_named("mailbox") is MAILBOX_FEED
    with pytest.raises(FormatError):
        feed.kind_named("nope")
    with pytest.raises(ValueError, match="already registered"):
        feed.register(feed.FeedKind("mailbox", MAILBOX_FEED.read))


def test_a_first_read_walks_a_history_kind_to_seq_0() -> None:
    entries = chain(5)
    store = Store(*entries)
    found = run(store, entries[-1].cid, record_seq=4)
    assert found.complete and [e.seq for e in found.entries] == [4, 3, 2, 1, 0]
    assert found.head == Mark.of(entries[-1]) and store.reads == 5


def test_a_read_behind_a_mark_reads_only_what_is_new() -> None:
    entries = chain(6)
    store = Store(*entries)
    found = run(store, entries[-1].cid, known=Mark.of(entries[3]))
    assert [e.seq for e in found.entries] == [5, 4] and store.reads == 2
    assert run(store, entries[3].cid, known=Mark.of(entries[3])).up_to_date
    assert store.reads == 2  # the head is the mark: nothing read


def test_an_older_head_is_a_rollback_and_another_at_the_marks_seq_a_fork() -> None:
    entries = chain(4)
    other = chain(2, start=entries[1])  # another seq 2 and 3 after the same seq 1
    store = Store(*entries, *other)
    with pytest.raises(FeedRollbackError, match="rollback"):
        run(store, entries[1].cid, known=Mark.of(entries[2]))
    with pytest.raises(FeedForkError):
        run(store, other[0].cid, known=Mark.of(entries[2]))
    with pytest.raises(FeedForkError, match="the mark"):
        run(store, other[1].cid, known=Mark.of(entries[2]))
    # Both are chain_invalid to a caller that does not care which.
    assert issubclass(FeedRollbackError, ChainInvalidError)
    assert issubclass(FeedForkError, ChainInvalidError)


def test_a_walk_stops_at_its_budget_and_resumes_below_without_reading_twice() -> None:
    entries = chain(10)
    store = Store(*entries)
    first = run(store, entries[-1].cid, budget=4)
    assert not first.complete and [e.seq for e in first.entries] == [9, 8, 7, 6]
    assert first.segment == feed.Segment(Mark.of(entries[9]), Mark.of(entries[6]), entries[5].cid)
    # Two more entries arrived meanwhile: the walk reads them, jumps the segment, goes on.
    more = chain(2, start=entries[-1])
    store.blocks.update((e.cid, e.data) for e in more)
    store.reads = 0
    second = run(store, more[-1].cid, resume=first.resume, budget=4)
    assert [e.seq for e in second.entries] == [11, 10, 5, 4]
    assert second.segment is not None and second.segment.top == Mark.of(more[-1])
    assert second.segment.bottom == Mark.of(entries[4])
    third = run(store, more[-1].cid, resume=second.resume)
    assert third.complete and [e.seq for e in third.entries] == [3, 2, 1, 0]
    assert store.reads == 2 + 2 + 4  # every entry once


def test_resuming_meets_the_mark_exactly() -> None:
    entries = chain(8)
    store = Store(*entries)
    known = Mark.of(entries[2])
    part = run(store, entries[-1].cid, known=known, budget=2)
    assert part.segment is not None and part.segment.bottom.seq == 6
    done = run(store, entries[-1].cid, known=known, resume=part.resume)
    assert done.complete and [e.seq for e in done.entries] == [5, 4, 3]
    # A segment whose bottom sits right above the mark connects without a read.
    exact = run(store, entries[-1].cid, known=Mark.of(entries[5]), resume=part.resume)
    assert exact.complete and exact.entries == ()


def test_a_segment_whose_bottom_does_not_follow_the_mark_is_a_fork() -> None:
    entries = chain(6)
    store = Store(*entries)
    part = run(store, entries[-1].cid, budget=3)  # segment 5..3, bottom seq 3
    assert part.segment is not None and part.segment.bottom.seq == 3
    other = [make_entry(KEY, None, capsule=block_of({"x": 1}).cid, sent=5)]
    for _ in range(2):  # another seq 0, 1, 2: the mark at seq 2 is not what seq 3 follows
        other.append(make_entry(KEY, other[-1], capsule=CAP, sent=5))
    with pytest.raises(FeedForkError, match="the mark"):
        run(store, entries[-1].cid, known=Mark.of(other[2]), resume=part.resume)


def test_a_head_older_than_the_segment_seen_is_a_rollback() -> None:
    entries = chain(6)
    store = Store(*entries)
    part = run(store, entries[-1].cid, budget=2)
    with pytest.raises(FeedRollbackError, match="seen before"):
        run(store, entries[3].cid, resume=part.resume)
    with pytest.raises(FeedRollbackError):
        run(store, entries[3].cid, seen=Mark.of(entries[5]))


def test_a_fork_of_the_segment_is_refused() -> None:
    entries = chain(6)
    other = chain(3, start=entries[2])  # seq 3, 4, 5 again, and then 6
    other.append(make_entry(KEY, other[-1], capsule=CAP, sent=9))
    store = Store(*entries, *other)
    part = run(store, entries[-1].cid, budget=2)  # segment 5..4
    with pytest.raises(FeedForkError, match="read before"):
        run(store, other[-1].cid, resume=part.resume)


def test_gaps_and_a_head_that_is_not_its_records_are_refused() -> None:
    entries = chain(3)
    store = Store(*entries)
    with pytest.raises(ChainInvalidError, match="record's sequence 7"):
        run(store, entries[-1].cid, record_seq=7)
    skip = make_entry(KEY, entries[0], capsule=CAP, sent=1)  # seq 1 ...
    fields = {"seq": 3, "prev": skip.prev, "sender": ME, "sent": 1, "capsule": skip.capsule}
    from ipfs_share.formats.mailbox import CAPSULE_ENTRY
    from ipfs_share.formats.signed import sign_object

    gap = sign_object(CAPSULE_ENTRY, fields, KEY)  # ... claiming seq 3
    store.blocks[gap.cid] = gap.data
    with pytest.raises(ChainInvalidError, match="a gap"):
        run(store, gap.cid)


def test_a_backlog_over_the_cap_is_refused_after_one_read() -> None:
    entries = chain(30)
    store = Store(*entries)
    with pytest.raises(ChainInvalidError, match="at most 10 new entries"):
        run(store, entries[-1].cid, known=Mark.of(entries[5]), max_backlog=10)
    assert store.reads == 1


def test_only_the_signers_the_feed_accepts() -> None:
    mallory = SigningKey.from_seed(b"\x07" * 32)
    store = Store(*chain(2, key=mallory))
    head = list(store.blocks)[-1]
    with pytest.raises(SignatureInvalidError):
        run(store, head)

    @dataclass(frozen=True)
    class Members:
        """A keychain-like resolver: any did in the set may sign."""

        members: frozenset[str]

        def key_for(self, signer: str) -> VerifyKey:
            if signer not in self.members:
                raise SignatureInvalidError(f"expected a member, found {signer}")
            return parse_did_key(signer)

    crew = Members(frozenset({ME, did_key(mallory.public_key)}))
    assert run(store, head, signers=crew).complete


def test_an_unlinked_kind_refuses_older_and_equal_but_other_documents() -> None:
    enc = EncryptionKey(b"\x02" * 32).public_key
    docs = [make_identity_document(KEY, enc, seq=s, created=1_800_000_000) for s in (0, 1, 2)]
    twin = make_identity_document(KEY, enc, seq=1, created=1_800_000_001)
    blocks = {d.cid: d.data for d in (*docs, twin)}

    def read(head: str, **options: object) -> feed.FeedWalk:
        return run_walk(walk(IDENTITY_FEED, head, signers=Only(ME), **options), blocks.__getitem__)  # type: ignore[arg-type]

    assert [e.seq for e in read(docs[2].cid, known=Mark.of(docs[0])).entries] == [2]
    with pytest.raises(FeedRollbackError):
        read(docs[0].cid, known=Mark.of(docs[1]))
    with pytest.raises(FeedForkError):
        read(twin.cid, known=Mark.of(docs[1]))


def test_a_revocation_list_takes_its_head_alone_first_and_checks_counts_after() -> None:
    store: dict[str, bytes] = {}
    heads = []
    previous = None
    for n in range(3):
        done = run_walk(
            revoke(KEY, previous, [block_of({"c": n}).cid], updated=1), store.__getitem__
        )
        store.update((b.cid, b.data) for b in done.blocks)
        heads.append(done.head)
        previous = done.head
    first = run_walk(walk(REVOCATION_FEED, heads[2].cid, signers=Only(ME)), store.__getitem__)
    assert [e.seq for e in first.entries] == [2]  # no history walk without a mark
    shrunk = make_head(
        KEY, seq=3, count=1, root=heads[2].root, prev=feed.Link(heads[2].cid), updated=1
    )
    store[shrunk.cid] = shrunk.data
    with pytest.raises(ChainInvalidError, match="at most 1 IDs"):
        run_walk(
            walk(REVOCATION_FEED, shrunk.cid, signers=Only(ME), known=Mark.of(heads[1])),
            store.__getitem__,
        )


def test_staged_bytes_are_read_back_without_their_signature() -> None:
    (entry,) = chain(1)
    broken = bytearray(entry.data)
    broken[broken.index(b"\x63sig\x58\x40") + 6] ^= 1
    with pytest.raises(SignatureInvalidError):
        MAILBOX_FEED.read(bytes(broken), Only(ME))
    assert MAILBOX_FEED.read(bytes(broken), None).seq == 0  # trusted: structure only


# -- signatures on the feed path, kind by kind (each kills a mutant of tests/mutants.toml) --

MALLORY = SigningKey.from_seed(b"\x07" * 32)


def _first_entry(kind: feed.FeedKind, key: SigningKey) -> bytes:
    """The first entry of a feed of ``kind``, signed by ``key`` (and naming it)."""
    if kind is IDENTITY_FEED:
        enc = EncryptionKey(b"\x02" * 32).public_key
        return make_identity_document(key, enc, seq=0, created=1_800_000_000).data
    if kind is REVOCATION_FEED:
        return make_head(key, seq=0, count=0, root=None, prev=None, updated=1).data
    return make_entry(key, None, capsule=CAP, sent=1).data


KINDS = pytest.mark.parametrize(
    "kind", [IDENTITY_FEED, REVOCATION_FEED, MAILBOX_FEED], ids=lambda k: k.name
)


@KINDS
def test_each_kind_accepts_only_the_feeds_signer(kind: feed.FeedKind) -> None:
    """An entry validly signed by someone else (and naming her) is refused by a feed that
    belongs to ME: the kind asks the feed's signers for the key, not the entry."""
    theirs = _first_entry(kind, MALLORY)
    assert kind.read(theirs, Only(did_key(MALLORY.public_key))).seq == 0
    with pytest.raises(SignatureInvalidError):
        kind.read(theirs, Only(ME))
    with pytest.raises(SignatureInvalidError):
        run_walk(walk(kind, block_from_bytes(theirs).cid, signers=Only(ME)), lambda _: theirs)


@KINDS
def test_each_kind_verifies_the_signature_of_what_it_reads_from_a_feed(
    kind: feed.FeedKind,
) -> None:
    """One bit of the signature flipped: refused on the feed path (signers given), read
    back only as bytes this home verified before (signers None: staged progress)."""
    broken = bytearray(_first_entry(kind, KEY))
    broken[broken.index(b"\x63sig\x58\x40") + 6] ^= 1
    with pytest.raises(SignatureInvalidError):
        kind.read(bytes(broken), Only(ME))
    assert kind.read(bytes(broken), None).seq == 0


def _forged(previous: MailboxEntry | None) -> MailboxEntry:
    """An entry that names ME as its sender but is signed by MALLORY."""
    from ipfs_share.crypto.labels import LABEL_MAILBOX_ENTRY
    from ipfs_share.formats import dagcbor
    from ipfs_share.formats.dagcbor import Link

    body = {
        "v": 1,
        "seq": 0 if previous is None else previous.seq + 1,
        "prev": None if previous is None else Link(previous.cid),
        "sender": ME,
        "sent": 1,
        "capsule": Link(CAP),
    }
    body["sig"] = MALLORY.sign(LABEL_MAILBOX_ENTRY + dagcbor.encode(body))
    entry: MailboxEntry = MAILBOX_FEED.read(dagcbor.encode(body), None).value
    return entry


@pytest.mark.parametrize("where", ["head", "below the head", "at seq 0"])
def test_every_entry_a_walk_reads_is_verified(where: str) -> None:
    """A forged entry anywhere in the chain stops the walk: the head and each entry below
    it are read with the feed's signers, never as trusted bytes."""
    good = chain(3)
    if where == "head":
        entries = [*good, _forged(good[-1])]
    elif where == "below the head":
        entries = [*good, _forged(good[-1])]
        entries += chain(2, start=entries[-1])
    else:
        entries = [_forged(None)]
        entries += chain(3, start=entries[-1])
    store = Store(*entries)
    with pytest.raises(SignatureInvalidError):
        run(store, entries[-1].cid)
    if where != "at seq 0":  # behind a mark below the forged entry: the same
        with pytest.raises(SignatureInvalidError):
            run(store, entries[-1].cid, known=Mark.of(good[1]))
