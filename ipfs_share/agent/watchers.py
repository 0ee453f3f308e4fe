"""What the agent keeps running while the node answers: watches, listeners, the announcer.

A :class:`Watcher` is anything with a ``key`` and an ``async run()`` that works until it is
cancelled. The agent keeps one set of them running (:class:`Supervised`): it starts the
ones that should run, cancels the ones that should not (an identity locked, the node
gone), and restarts one that ended or failed, after a backoff. Extra watchers passed to
the agent join the same set.

- :class:`InboxWatcher` -- ``mesh.inbox.watch`` for one unlocked identity (pubsub notices,
  else polling); what arrives goes to the event bus through the mailbox events;
- :class:`IntroductionListener` -- the identity's introduction topic: each message through
  ``mesh.introductions.receive``; a new sender becomes a pending introduction (an
  ``introduction`` event), a known one gets its mailbox synced now;
- :class:`KeychainWatcher` -- keychain shares to one unlocked identity, taken up as the
  inbox watch files their pointers (accepted, keys released, events fired);
- :class:`Announcer` -- for capsules sent from this home and not acknowledged, an
  introduction to the recipient, again and again with a backoff, until acknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Protocol

from ipfs_share.agent.events import EventBus
from ipfs_share.client import Mesh
from ipfs_share.errors import IpfsShareError
from ipfs_share.formats.keystore import IdentityKeys

__all__ = [
    "AnnounceSchedule",
    "Announcer",
    "InboxWatcher",
    "IntroductionListener",
    "KeychainWatcher",
    "Supervised",
    "Watcher",
]

log = logging.getLogger("ipfs_share.agent")

RESTART_MIN, RESTART_MAX = 1.0, 60.0  # a watcher that ended: restarted after this backoff


class Watcher(Protocol):
    @property
    def key(self) -> Hashable: ...

    async def run(self) -> None: ...


class Supervised:
    """The running set of watchers, made to match what is wanted by :meth:`want`."""

    def __init__(self, *, on_end: Callable[[Hashable, BaseException | None], None]) -> None:
        self._tasks: dict[Hashable, asyncio.Task[None]] = {}
        self._restart_at: dict[Hashable, float] = {}
        self._backoff: dict[Hashable, float] = {}
        self._on_end = on_end

    def running(self) -> list[Hashable]:
        return [k for k, t in self._tasks.items() if not t.done()]

    def want(self, watchers: Iterable[Watcher]) -> None:
        """Start what is wanted and not running (unless it is backing off), stop what is
        running and no longer wanted."""
        wanted = {w.key: w for w in watchers}
        for key in [k for k in self._tasks if k not in wanted]:
            self._tasks.pop(key).cancel()
            self._restart_at.pop(key, None)
            self._backoff.pop(key, None)
        now = time.monotonic()
        for key, watcher in wanted.items():
            task = self._tasks.get(key)
            if task is not None and not task.done():
                continue
            if self._restart_at.get(key, 0.0) > now:
                continue
            self._tasks[key] = asyncio.create_task(self._guard(key, watcher), name=f"watch {key}")

    async def _guard(self, key: Hashable, watcher: Watcher) -> None:
        error: BaseException | None = None
        started = time.monotonic()
        try:
            await watcher.run()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            error = exc
        # It ended by itself: back off before the next start (reset after a long run).
        delay = self._backoff.get(key, RESTART_MIN)
        if time.monotonic() - started > RESTART_MAX:
            delay = RESTART_MIN
        self._restart_at[key] = time.monotonic() + delay
        self._backoff[key] = min(delay * 2, RESTART_MAX)
        self._on_end(key, error)

    async def stop(self) -> None:
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


# -- the watchers --------------------------------------------------------------------------


def inbox_peers(mesh: Mesh, did: str) -> tuple[str, ...]:
    """Whose mailboxes an inbox watch of ``did`` reads (as the mailbox service does): a
    change means the watch must start again to subscribe to the new ones."""
    db = mesh.db
    own = db.feeds.own_feeds("mailbox")
    peers = [c.did for c in db.contacts.list()]
    peers += [f.topic for f in own if f.owner == did] + [f.owner for f in own if f.topic == did]
    return tuple(sorted(set(peers)))


@dataclass(frozen=True)
class InboxWatcher:
    mesh: Mesh
    did: str
    peers: tuple[str, ...]  # part of the key: a new contact starts a new watch
    poll_min: float = 1.0
    poll_max: float = 60.0
    resync: float = 30.0

    @property
    def key(self) -> Hashable:
        return ("inbox", self.did, self.peers)

    async def run(self) -> None:
        watch = self.mesh.inbox.watch(
            self.did, poll_min=self.poll_min, poll_max=self.poll_max, resync=self.resync
        )
        async with watch:
            async for _item in watch:  # each item was published on the bus as it came
                pass


@dataclass(frozen=True)
class IntroductionListener:
    mesh: Mesh
    did: str
    bus: EventBus

    @property
    def key(self) -> Hashable:
        return ("introductions", self.did)

    async def run(self) -> None:
        intros = self.mesh.introductions
        keys = await self.mesh.identity.unlock(self.did)  # held by the agent: no prompt
        caps = await self.mesh.storage.capabilities()
        if not caps.pubsub:
            log.info("pubsub is off on the node: no introductions reach %s", self.did)
            await asyncio.Event().wait()  # nothing to do; stay "running" until cancelled
        async with self.mesh.storage.pubsub_subscribe(intros.topic(self.did)) as messages:
            async for message in messages:
                got = intros.receive(keys, bytes(message.data))
                if got.outcome == "pending":
                    self.bus.publish(
                        "introduction", {"recipient": got.recipient, "sender": got.sender}
                    )
                elif got.outcome == "known" and got.sender is not None:
                    await self._sync(keys, got.sender)
        log.info("introductions to %s: the subscription ended", self.did)

    async def _sync(self, keys: IdentityKeys, sender: str) -> None:
        """A known sender announced itself: a capsule may be waiting that its notice did
        not bring (the watch had not subscribed yet, or the notice was lost)."""
        try:
            await self.mesh.inbox.sync_report(self.did, senders=[sender], contacts=False, keys=keys)
        except IpfsShareError as exc:
            log.info("sync of %s after its introduction: %s", sender, exc.message)


class KeychainWatcher:
    """Keychain shares for one unlocked identity, as they arrive: ``mesh.keychains.sync``
    (which accepts offers to it, releases the keys of its accepted offers and fires
    ``keychain_updated`` then ``key_received``) as soon as the inbox watch has filed a
    pointer to a keychain op for it, every ``check`` seconds while one of its accepts
    waits for the sharer's release (the release is read from the sharer's chain, which
    announces nothing), and every ``idle`` seconds otherwise. The inbox watch reads the
    mailboxes, so the sync does not (``poll=False``)."""

    def __init__(
        self,
        mesh: Mesh,
        did: str,
        *,
        check: float = 1.0,
        idle: float = 30.0,
        expect_for: float = 300.0,
    ) -> None:
        self._mesh = mesh
        self.did = did
        self.check = check
        self.idle = idle
        self.expect_for = expect_for  # how long an accept's release is waited for, quickly
        self.syncs = 0
        self._since: dict[str, float] = {}  # accepted offers to us: first seen accepted

    @property
    def key(self) -> Hashable:
        return ("keychains", self.did)

    def _waiting(self) -> bool:
        """Has an accept of ours been waiting less than ``expect_for`` for its release
        (since this watch first saw it accepted)?"""
        now = time.monotonic()
        offers = self._mesh.keychains.incoming_offers(as_=self.did)
        accepted = {o.offer for o in offers if o.status == "accepted"}
        self._since = {cid: self._since.get(cid, now) for cid in accepted}
        return any(now - since < self.expect_for for since in self._since.values())

    async def run(self) -> None:
        keychains, notices = self._mesh.keychains, self._mesh.db.keychains
        last = -float("inf")
        while True:
            now = time.monotonic()
            due = self.check if self._waiting() else self.idle
            if notices.notices(self.did) or now - last >= due:
                last = now
                self.syncs += 1
                report = await keychains.sync(as_=self.did, poll=False)
                for problem in report.problems:
                    log.info("keychain sync of %s: %s", self.did, problem)
            await asyncio.sleep(self.check)


@dataclass
class AnnounceSchedule:
    """The backoff of the introductions from one sender to one recipient."""

    next_at: float
    interval: float
    sent: int = 0


class Announcer:
    """Introduce each sender of this home to each recipient with capsules queued (sent,
    not acknowledged, not cancelled): first ``grace`` seconds after the oldest such send
    (a recipient who knows the sender has usually acknowledged by then, and then nothing
    is announced), then after ``first_retry`` seconds, doubling up to ``max_interval``,
    until acknowledged; for ``give_up`` seconds at most."""

    key: Hashable = ("announcer",)

    def __init__(
        self,
        mesh: Mesh,
        unlocked: Callable[[], tuple[str, ...]],
        *,
        grace: float = 15.0,
        first_retry: float = 15.0,
        max_interval: float = 3600.0,
        give_up: float = 30 * 86400.0,
        scan_every: float = 5.0,
        now: Callable[[], float] = time.time,
    ) -> None:
        self._mesh = mesh
        self._unlocked = unlocked
        self.grace = grace
        self.first_retry = first_retry
        self.max_interval = max_interval
        self.give_up = give_up
        self.scan_every = scan_every
        self._now = now
        self.schedules: dict[tuple[str, str], AnnounceSchedule] = {}
        self._wake = asyncio.Event()
        self.announced = 0

    def poke(self) -> None:
        """Look at the queue now (a send just went out)."""
        self._wake.set()

    async def run(self) -> None:
        while True:
            await self.tick()
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._next_wait())

    def _next_wait(self) -> float:
        due = [s.next_at for s in self.schedules.values()]
        soonest = min(due, default=self._now() + self.scan_every) - self._now()
        return max(0.05, min(self.scan_every, soonest))

    async def tick(self) -> None:
        now = self._now()
        held = set(self._unlocked())
        local = {i.did for i in self._mesh.identity.list()}  # they read each other already
        queued = {
            (s, r): oldest
            for s, r, oldest in self._mesh.db.mailboxes.queued_pairs()
            if s in held and r not in local and now - oldest < self.give_up
        }
        for pair in [p for p in self.schedules if p not in queued]:
            del self.schedules[pair]  # acknowledged, cancelled, or its sender locked
        for pair, oldest in queued.items():
            schedule = self.schedules.get(pair)
            if schedule is None:
                schedule = self.schedules[pair] = AnnounceSchedule(
                    next_at=max(now, oldest + self.grace), interval=self.first_retry
                )
            if schedule.next_at > now:
                continue
            await self._announce(*pair)
            schedule.sent += 1
            schedule.next_at = now + schedule.interval
            schedule.interval = min(schedule.interval * 2, self.max_interval)

    async def _announce(self, sender: str, recipient: str) -> None:
        try:
            keys = await self._mesh.identity.unlock(sender)
            if await self._mesh.introductions.announce(keys, recipient):
                self.announced += 1
                log.info("introduced %s to %s (capsules queued)", sender, recipient)
        except IpfsShareError as exc:
            log.info("introduction of %s to %s not sent: %s", sender, recipient, exc.message)
