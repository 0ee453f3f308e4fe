"""Republishing: put every record in the record store on the node again, byte for byte, so
that the feeds this home signs or follows stay resolvable (docs/spec/feeds.md section 8).

Since Kubo 0.43 a node's DHT forgets a value record nobody put again within 48 hours, and
Kubo republishes only the keys of its own keystore, which ours never are. So a home puts
again what it published and what it depends on: the identity documents of its contacts,
the revocation lists of the issuers whose capsules it holds, the heads of the mailboxes it
reads. Putting a signed record again needs no key. Records of its own with less than the
kind's renewal window left are re-signed, if their keys are unlocked (never asking for a
passphrase: ``keys`` answers only from keys already unlocked), else reported.

It is idempotent and safe to run at any time, from several processes of one home at once
(cron, the agent every 4 hours, a person): each put is of the same bytes, and what it
records about a put is only recorded against those same bytes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

from ipfs_share.crypto.signing import SigningKey
from ipfs_share.errors import IpfsShareError, IpnsRecordInvalidError, NodeRequestError
from ipfs_share.formats.feed import kind_named
from ipfs_share.formats.ipns import verify_record
from ipfs_share.local.state import OwnHead, RecordRow, StateDB
from ipfs_share.services.feeds.blocks import bounded
from ipfs_share.services.feeds.records import keep_record
from ipfs_share.services.feeds.refs import Feed, lifetime_of
from ipfs_share.services.feeds.writer import FeedWriter, held_sequence
from ipfs_share.storage.base import Storage

__all__ = ["Action", "RecordKeys", "RecordReport", "RepublishReport", "Republisher"]

log = logging.getLogger("ipfs_share.feeds")

Action = Literal["reput", "resigned", "skipped", "failed"]

RecordKeys = Callable[[OwnHead], Awaitable[SigningKey | None]]
"""The key that signs the records of a feed of our own, if its owner's keys are unlocked
now (None otherwise: a republish never asks for a passphrase)."""

CONCURRENCY = 8  # records put at once


@dataclass(frozen=True, slots=True)
class RecordReport:
    """What a republish did with one record: ``reput`` (the same bytes stored again),
    ``resigned`` (a new record of ours: renewed, or a head not published yet),
    ``skipped`` (nothing to do, or nothing it can do: ``reason`` says which), ``failed``
    (the node refused or did not answer: ``error``)."""

    name: str
    kind: str
    whose: str
    own: bool
    action: Action
    seq: int
    eol: int  # the end of validity of the record now kept (Unix seconds)
    put_at: int | None  # when it was last stored on a node
    reason: str | None = None
    error: IpfsShareError | None = field(default=None, compare=False)

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "kind": self.kind,
            "whose": self.whose,
            "own": self.own,
            "action": self.action,
            "seq": self.seq,
            "eol": self.eol,
            "put_at": self.put_at,
            "reason": self.reason,
            "error": None
            if self.error is None
            else {"code": self.error.code, "message": self.error.message, "hint": self.error.hint},
        }


@dataclass(frozen=True, slots=True)
class RepublishReport:
    records: tuple[RecordReport, ...]
    started: int
    finished: int

    def count(self, action: Action, *, own: bool | None = None) -> int:
        return sum(1 for r in self.records if r.action == action and (own is None or r.own == own))

    @property
    def ok(self) -> bool:
        """Nothing failed."""
        return self.count("failed") == 0

    def to_json(self) -> dict[str, object]:
        actions: tuple[Action, ...] = ("reput", "resigned", "skipped", "failed")
        return {
            "started": self.started,
            "finished": self.finished,
            "counts": {a: self.count(a) for a in actions},
            "records": [r.to_json() for r in self.records],
        }


class Republisher:
    def __init__(
        self,
        storage: Storage,
        state: StateDB,
        writer: FeedWriter,
        keys: RecordKeys,
        *,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.storage = storage
        self._state = state
        self._writer = writer
        self._keys = keys
        self._now = now

    async def republish(self, *, renew: bool = True) -> RepublishReport:
        """Put every kept record again; re-sign our own that are near their end of
        validity, or whose head is not published yet (``renew`` and their keys unlocked).
        Returns what it did, record by record."""
        started = int(self._now())
        reports: list[RecordReport] = []
        await self._recover_records()
        own = {f.name: f for f in self._state.feeds.own_feeds()}
        kept = {r.name: r for r in self._state.records.list()}

        async def one(name: str) -> None:
            reports.append(await self._one(kept.get(name), own.get(name), renew=renew))

        await bounded((one(n) for n in sorted(set(kept) | set(own))), limit=CONCURRENCY)
        order = {n: i for i, n in enumerate(sorted(set(kept) | set(own)))}
        reports.sort(key=lambda r: (not r.own, r.kind, order[r.name]))
        return RepublishReport(tuple(reports), started, int(self._now()))

    async def _recover_records(self) -> None:
        """Keep the records the node still has of feeds whose head this home verified but
        whose record it did not keep (a home from before the record store): a record
        naming exactly that head, verified under the name, is the one to put again."""
        kept = {r.name for r in self._state.records.list()}
        heads = [
            (f.name, f.kind, f.owner, f.head, True)
            for f in self._state.feeds.own_feeds()
            if f.name not in kept and f.published
        ]
        heads += [
            (f.name, f.kind, f.signer, f.mark.cid, False)
            for f in self._state.feeds.read_feeds()
            if f.name not in kept and f.mark is not None
        ]

        async def one(name: str, kind: str, whose: str, head: str, own: bool) -> None:
            try:
                data = await self.storage.ipns_get(name)
                parsed = verify_record(name, data, now=datetime.fromtimestamp(self._now(), UTC))
            except IpfsShareError:
                return
            if parsed.value != f"/ipfs/{head}":
                return
            feed = Feed(kind_named(kind), name, whose)
            keep_record(
                self._state.records, feed, data, parsed, own=own, at=int(self._now()), put=False
            )

        await bounded((one(*h) for h in heads), limit=CONCURRENCY)

    async def _one(
        self, row: RecordRow | None, head: OwnHead | None, *, renew: bool
    ) -> RecordReport:
        now = int(self._now())
        note = None
        if head is not None:
            due = _renewal_due(row, head, now)
            if due is not None:
                key = await self._keys(head) if renew else None
                if key is not None:
                    return await self._resign(head, key, row, due)
                note = f"{due}; renewal needs its owner's keys unlocked"
                if row is None or row.eol <= now:
                    return _report(head, row, "skipped", note)
        if row is None:  # pragma: no cover - a head with no record is always due
            assert head is not None
            return _report(head, None, "skipped", "no record kept yet")
        if row.eol <= now:
            return _report(head, row, "skipped", "expired; only its owner can renew it")
        try:
            await self.storage.ipns_put(row.name, row.record)
        except (NodeRequestError, IpnsRecordInvalidError) as exc:
            held = held_sequence(exc)
            if held is None:
                return self._failed(head, row, exc)
            reason = (
                f"the node holds a newer record (seq {held})"
                if held > row.seq
                else "the node holds another record of this sequence (valid longer)"
            )
            self._state.records.note_put(row.name, row.record, at=None, outcome="skipped")
            return _report(head, row, "skipped", reason)
        except IpfsShareError as exc:
            return self._failed(head, row, exc)
        self._state.records.note_put(row.name, row.record, at=now, outcome="reput")
        return _report(head, row, "reput", note, put_at=now)

    async def _resign(
        self, head: OwnHead, key: SigningKey, row: RecordRow | None, why: str
    ) -> RecordReport:
        feed = Feed(kind_named(head.kind), head.name, head.owner, topic=head.topic)
        try:
            if head.published:
                await self._writer.renew(feed, key)
            else:
                await self._writer.publish(feed, key)
        except IpfsShareError as exc:
            return self._failed(head, row, exc)
        return _report(head, self._state.records.get(head.name), "resigned", why)

    def _failed(
        self, head: OwnHead | None, row: RecordRow | None, exc: IpfsShareError
    ) -> RecordReport:
        if row is not None:
            self._state.records.note_put(
                row.name, row.record, at=None, outcome="failed", error=exc.message
            )
        name = row.name if row is not None else head.name if head is not None else "?"
        log.warning("republish of %s failed: %s", name, exc.message)
        return _report(head, row, "failed", exc.message, error=exc)


def _renewal_due(row: RecordRow | None, head: OwnHead, now: int) -> str | None:
    """Why our own record needs a new signature now, or None."""
    if not head.published or row is None or row.seq < head.seq:
        return f"head seq {head.seq} not published yet"
    window: timedelta = lifetime_of(head.kind).renew_before
    left = row.eol - now
    if left <= window.total_seconds():
        return f"{max(0, left) // 86400} days of validity left"
    return None


def _report(
    head: OwnHead | None,
    row: RecordRow | None,
    action: Action,
    reason: str | None,
    *,
    put_at: int | None = None,
    error: IpfsShareError | None = None,
) -> RecordReport:
    if row is not None:
        return RecordReport(
            name=row.name,
            kind=row.kind,
            whose=row.whose,
            own=row.own or head is not None,
            action=action,
            seq=row.seq,
            eol=row.eol,
            put_at=put_at if put_at is not None else row.put_at,
            reason=reason,
            error=error,
        )
    assert head is not None
    return RecordReport(
        name=head.name,
        kind=head.kind,
        whose=head.owner,
        own=True,
        action=action,
        seq=head.seq,
        eol=0,
        put_at=None,
        reason=reason,
        error=error,
    )
