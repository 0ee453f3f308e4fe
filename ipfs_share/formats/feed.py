"""Feeds: signed, append-only chains whose newest entry (the head) is published under an
IPNS name (docs/spec/feeds.md).

Identity documents, revocation lists and mailboxes are feeds; so are the per-member chains
of a keychain. Each keeps its own wire format: a *kind* (:class:`FeedKind`) says how to
read an entry's ``seq``, ``prev`` and signer from its bytes, whether entries link to their
predecessor, and whether a first reader needs the whole history (a mailbox's entries are
its content) or only the head (a revocation list's head names the whole set). Everything
here is pure; the walk is a generator that yields the CIDs it needs (a
:data:`~ipfs_share.formats.signed.BlockWalk`), like the other walks of this package.

A reader keeps a high-water mark (:class:`Mark`): the newest entry it verified and
connected to everything before it. :func:`walk` goes back from a new head to that mark and
refuses what cannot be one history:

- a head older than the mark, or older than a head seen before: :class:`FeedRollbackError`;
- another entry at a sequence already verified: :class:`FeedForkError`;
- a gap, a head that does not match its IPNS record, a signer the feed does not accept:
  :class:`ChainInvalidError` / :class:`SignatureInvalidError`.

A long walk can stop part way (``budget`` entries) and say how far it got
(:class:`Segment`); the next walk resumes below it instead of starting again, so a reader
never verifies an entry twice.

>>> from ipfs_share.crypto.signing import SigningKey
>>> from ipfs_share.formats.mailbox import MAILBOX_FEED, make_entry
>>> from ipfs_share.formats.signed import did_key, run_walk
>>> key = SigningKey.from_seed(b"\\x01" * 32)
>>> cap = "bafyreifqwkmiw256ojf2zws6tzjeonw6bpd5vza4i22ccpcq4hjv2ts7cm"
>>> chain = [make_entry(key, None, capsule=cap, sent=1)]
>>> for _ in range(4):
...     chain.append(make_entry(key, chain[-1], capsule=cap, sent=1))
>>> store = {e.cid: e.data for e in chain}
>>> me = Only(did_key(key.public_key))
>>> part = run_walk(walk(MAILBOX_FEED, chain[4].cid, signers=me, budget=2), store.__getitem__)
>>> part.complete, [e.seq for e in part.entries], part.segment.bottom.seq
(False, [4, 3], 3)
>>> rest = run_walk(walk(MAILBOX_FEED, chain[4].cid, signers=me, resume=part.resume),
...                 store.__getitem__)
>>> rest.complete, [e.seq for e in rest.entries]
(True, [2, 1, 0])
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, Literal, Protocol

from ipfs_share.crypto.signing import VerifyKey
from ipfs_share.errors import (
    ChainInvalidError,
    FeedForkError,
    FeedRollbackError,
    FormatError,
    SignatureInvalidError,
)
from ipfs_share.formats.dagcbor import Link
from ipfs_share.formats.ipns import IpnsRecord
from ipfs_share.formats.signed import BlockWalk, link, parse_did_key

__all__ = [
    "DEFAULT_BUDGET",
    "STOP",
    "FeedEntry",
    "FeedKind",
    "FeedWalk",
    "Mark",
    "Only",
    "Resume",
    "Segment",
    "Signers",
    "head_of_record",
    "kind_named",
    "kinds",
    "register",
    "walk",
]

# Entries one walk verifies before it stops and reports its progress, unless the caller
# asks for another number.
DEFAULT_BUDGET: Final = 100_000
# Sent to a walk in place of a block: stop here and report the progress (a deadline came).
# No block is empty, so it cannot be mistaken for one.
STOP: Final = b""


class Signers(Protocol):
    """Who may sign a feed's entries: maps the signer an entry names to the key its
    signature must verify under, or raises :class:`SignatureInvalidError`. Identity
    documents, revocation lists and mailboxes accept one did:key (:class:`Only`); a
    keychain's member chains accept a did after checking it is a member."""

    def key_for(self, signer: str) -> VerifyKey: ...


@dataclass(frozen=True, slots=True)
class Only:
    """Entries signed by one did:key identity, and nobody else."""

    did: str

    def key_for(self, signer: str) -> VerifyKey:
        if signer != self.did:
            raise SignatureInvalidError(
                f"expected an entry signed by {self.did}, found one signed by {signer}"
            )
        return parse_did_key(signer)


@dataclass(frozen=True, slots=True)
class FeedEntry:
    """One entry of a feed, decoded by its kind: ``value`` is the kind's own object
    (an IdentityDocument, a RevocationHead, a MailboxEntry ...)."""

    kind: str
    seq: int
    prev: str | None  # the previous entry's CID (None: the first, or an unlinked kind)
    signer: str
    cid: str
    data: bytes = field(repr=False)
    value: Any = field(repr=False, compare=False)


Reader = Callable[[bytes, "Signers | None"], FeedEntry]
"""``read(data, signers)``: decode an entry strictly and check its signature under
``signers``; with ``None``, bytes this home verified before (their signature is not
checked again: staged progress is re-read that way)."""


@dataclass(frozen=True, slots=True)
class FeedKind:
    """What a feed's entries are.

    ``linked``: each entry names its predecessor in ``prev`` (else a new entry only has a
    higher ``seq``: identity documents). ``history``: a reader that has no mark walks back
    to seq 0 (the entries are the content: mailboxes) instead of taking the head alone
    (the head holds everything: revocation lists). ``pin``: how a writer keeps its
    entries on its node: ``"head"``, one recursive pin of the head (moved with
    ``pin/update``), for kinds whose links stay inside the feed; ``"entries"``, a direct
    pin of each entry, for kinds whose entries link to things pinned or unpinned on their
    own (a mailbox entry links to a capsule, which links to content that a revoke may
    unpin). ``step(older, newer)`` checks a kind's own rule between consecutive entries.
    ``prev_field``: the name of the dag-cbor field that holds ``prev`` in an entry's
    block, for a reader that asks its node where the chain is far below the head (None:
    the reader walks one entry after the other).
    """

    name: str
    read: Reader
    linked: bool = True
    history: bool = True
    pin: Literal["head", "entries"] = "entries"
    step: Callable[[FeedEntry, FeedEntry], None] | None = None
    prev_field: str | None = None


_KINDS: dict[str, FeedKind] = {}


def register(kind: FeedKind) -> FeedKind:
    """Register a kind under its name (the modules that define kinds do it on import)."""
    found = _KINDS.setdefault(kind.name, kind)
    if found is not kind:
        raise ValueError(f"a feed kind named {kind.name!r} is already registered")
    return kind


def kind_named(name: str) -> FeedKind:
    try:
        return _KINDS[name]
    except KeyError:
        raise FormatError(f"expected a feed kind in {sorted(_KINDS)}, found {name!r:.40}") from None


def kinds() -> tuple[str, ...]:
    return tuple(sorted(_KINDS))


@dataclass(frozen=True, slots=True)
class Mark:
    """A position in a feed: an entry's ``seq`` and CID."""

    seq: int
    cid: str

    @classmethod
    def of(cls, entry: Any) -> Mark:
        """The mark of anything with ``seq`` and ``cid`` (a FeedEntry, a MailboxEntry ...)."""
        return cls(int(entry.seq), str(entry.cid))


@dataclass(frozen=True, slots=True)
class Segment:
    """A run of entries verified from ``top`` down to ``bottom`` (linked, signed) that is
    not connected to the mark yet; ``below`` is the bottom's ``prev``, where a walk
    resumes."""

    top: Mark
    bottom: Mark
    below: str | None


@dataclass(frozen=True, slots=True)
class Resume:
    """What a walk needs to continue a :class:`Segment`: the segment and its bottom entry
    (for the kind's ``step`` rule across the join)."""

    segment: Segment
    bottom: FeedEntry


@dataclass(frozen=True, slots=True)
class FeedWalk:
    """What a walk found. ``head`` is the head's position; ``entries`` the entries this
    walk verified, newest first (with a resumed segment, those above and below it, not
    the segment's own). ``complete``: nothing more to verify (connected to the mark, to
    seq 0, or the kind needs no history); else ``segment`` is how far it got, including
    the resumed one."""

    head: Mark
    entries: tuple[FeedEntry, ...]
    complete: bool
    segment: Segment | None = None
    bottom: FeedEntry | None = None  # the segment's bottom entry, for the next Resume

    @property
    def resume(self) -> Resume | None:
        if self.segment is None or self.bottom is None:
            return None
        return Resume(self.segment, self.bottom)

    @property
    def up_to_date(self) -> bool:
        return self.complete and not self.entries


def head_of_record(record: IpnsRecord) -> tuple[str, int]:
    """The head CID and sequence a verified IPNS record of a feed names: its value must be
    ``/ipfs/<CIDv1 dag-cbor sha2-256>``."""
    value = record.value
    if not value.startswith("/ipfs/"):
        raise FormatError(f"expected a feed record value /ipfs/<cid>, found {value[:80]!r}")
    try:
        head = Link(value.removeprefix("/ipfs/"))
    except (FormatError, ValueError) as exc:
        raise FormatError(
            f"expected a feed record value /ipfs/<cid>, found {value[:80]!r}"
        ) from exc
    link()(head, "record.value")
    return head.cid, record.sequence


def walk(
    kind: FeedKind,
    head: str,
    *,
    signers: Signers,
    record_seq: int | None = None,
    known: Mark | None = None,
    resume: Resume | None = None,
    seen: Mark | None = None,
    head_entry: FeedEntry | None = None,
    budget: int = DEFAULT_BUDGET,
    max_backlog: int | None = None,
) -> BlockWalk[FeedWalk]:
    """Verify the feed from ``head`` back to the mark ``known`` (or to seq 0).

    ``record_seq``: the sequence of the IPNS record that named ``head``, which must be the
    head's. ``resume``: a segment verified by an earlier walk of this feed, to continue
    below instead of walking it again. ``seen``: the newest head this reader saw (a
    segment's top) when no ``resume`` is given. ``head_entry``: the head, already read
    and verified. ``budget``: how many entries this walk verifies before it stops and
    reports a segment. ``max_backlog``: refuse (before fetching more than the head) a
    head more than that many entries past the mark.
    """
    segment = None if resume is None else resume.segment
    newest = segment.top if segment is not None else seen
    if known is not None and head == known.cid:
        _same_seq(record_seq, known.seq)
        return FeedWalk(known, (), True)
    if segment is not None and head == segment.top.cid:
        _same_seq(record_seq, segment.top.seq)
        current: FeedEntry | Mark = segment.top
        top = segment.top
        new: list[FeedEntry] = []
        joined = True
    else:
        if head_entry is None:
            data = yield head
            if data is STOP or not data:  # stopped before anything new was verified
                where = Mark(-1 if record_seq is None else record_seq, head)
                return FeedWalk(
                    where, (), False, segment, None if resume is None else resume.bottom
                )
            head_entry = kind.read(data, signers)
        entry = head_entry
        _same_seq(record_seq, entry.seq)
        _not_older(kind, entry, known, "the mark verified before")
        _not_older(kind, entry, newest, "a head seen before")
        if max_backlog is not None:
            behind = entry.seq - (-1 if known is None else known.seq)
            if behind > max_backlog:
                raise ChainInvalidError(
                    f"expected at most {max_backlog} new entries in the {kind.name} feed, "
                    f"found {behind} (head seq {entry.seq})"
                )
        top = Mark.of(entry)
        if not kind.linked or (known is None and not kind.history):
            return FeedWalk(top, (entry,), True)
        current = entry
        new = [entry]
        joined = False
    while True:
        if isinstance(current, FeedEntry):
            if known is not None and current.seq == known.seq + 1:
                if current.prev != known.cid:
                    raise FeedForkError(
                        f"expected the {kind.name} entry at seq {current.seq} to follow "
                        f"{known.cid} (the mark), found one that follows {current.prev}: a fork"
                    )
                return FeedWalk(top, tuple(new), True)
            if current.prev is None:
                if current.seq != 0:
                    raise ChainInvalidError(
                        f"expected a prev link on the {kind.name} entry at seq {current.seq}, "
                        "found none"
                    )
                if known is not None:  # unreachable: seq 0 is never above a mark
                    raise FeedForkError(f"expected the {kind.name} feed to reach its mark")
                return FeedWalk(top, tuple(new), True)
            if segment is not None and current.seq == segment.top.seq + 1:
                if current.prev != segment.top.cid:
                    raise FeedForkError(
                        f"expected the {kind.name} entry at seq {current.seq} to follow "
                        f"{segment.top.cid} (read before), found {current.prev}: a fork"
                    )
                current = segment.top  # jump over the verified run
                joined = True
                continue
            # The budget holds once the walk is below what it verified before: stopping
            # above an earlier segment would leave two runs that do not meet.
            if len(new) >= budget and (segment is None or joined):
                segment_now = Segment(top, Mark.of(current), current.prev)
                return FeedWalk(top, tuple(new), False, segment_now, current)
            wanted, newer = current.prev, current
        else:
            assert resume is not None and segment is not None
            if segment.below is None:  # the segment reached seq 0 already
                return FeedWalk(top, tuple(new), True)
            bottom_entry = resume.bottom
            if known is not None and bottom_entry.seq == known.seq + 1:
                if bottom_entry.prev != known.cid:
                    raise FeedForkError(
                        f"expected the {kind.name} entry at seq {bottom_entry.seq} to follow "
                        f"{known.cid} (the mark), found {bottom_entry.prev}: a fork"
                    )
                return FeedWalk(top, tuple(new), True)
            if len(new) >= budget:
                return FeedWalk(
                    top,
                    tuple(new),
                    False,
                    Segment(top, segment.bottom, segment.below),
                    bottom_entry,
                )
            wanted, newer = segment.below, bottom_entry
        assert wanted is not None  # checked above: an entry without prev ends the walk
        data = yield wanted
        if not data:  # STOP: report how far the walk got
            if isinstance(current, FeedEntry) and (segment is None or joined):
                return FeedWalk(
                    top, tuple(new), False, Segment(top, Mark.of(current), wanted), current
                )
            if isinstance(current, Mark) and resume is not None and segment is not None:
                return FeedWalk(
                    top,
                    tuple(new),
                    False,
                    Segment(top, segment.bottom, segment.below),
                    resume.bottom,
                )
            # Above an earlier segment and not joined yet: keep the earlier one alone.
            return FeedWalk(
                segment.top if segment else top,
                (),
                False,
                segment,
                None if resume is None else resume.bottom,
            )
        older = kind.read(data, signers)
        if older.seq != newer.seq - 1:
            raise ChainInvalidError(
                f"expected seq {newer.seq - 1} before seq {newer.seq} in the {kind.name} "
                f"feed, found seq {older.seq}: a gap"
            )
        if kind.step is not None:
            kind.step(older, newer)
        new.append(older)
        current = older


def _same_seq(record_seq: int | None, seq: int) -> None:
    if record_seq is not None and record_seq != seq:
        raise ChainInvalidError(
            f"expected the head at the record's sequence {record_seq}, found seq {seq}"
        )


def _not_older(kind: FeedKind, entry: FeedEntry, than: Mark | None, what: str) -> None:
    if than is None:
        return
    if entry.seq < than.seq:
        raise FeedRollbackError(
            f"expected a {kind.name} head at seq >= {than.seq} ({what}), found seq "
            f"{entry.seq}: a rollback"
        )
    if entry.seq == than.seq and entry.cid != than.cid:
        raise FeedForkError(
            f"expected {than.cid} at seq {than.seq} of the {kind.name} feed ({what}), found "
            f"{entry.cid}: a fork"
        )
