"""The agent: one long-running service per home (``ipfs-share serve`` runs it)::

    async with Agent(home, api, passphrase=source) as agent:   # lock, node, watches, ...
        await agent.stopped.wait()                             # until stop(), or a failure

What it holds together (each in its module): the single-instance lock, the node
supervisor (reconnects with a backoff), the key cache, the event bus, the republish
schedule, and the set of watchers (an inbox watch and an introduction listener per
unlocked identity, the announcer, and any extra watchers given). The HTTP layer
(:mod:`ipfs_share.http`) serves it; the agent knows nothing of HTTP.

Stopping is orderly: the server stops taking requests and lets those in flight finish
(the server's grace period), then the agent cancels its watchers and its schedule (each
database change is one transaction, so a cancelled one leaves nothing half-written),
closes the node connection, forgets every unlocked key and releases the lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ipfs_share.agent import memtrace
from ipfs_share.agent.events import EventBus
from ipfs_share.agent.files import ensure_token
from ipfs_share.agent.keycache import KeyCache, refuse_prompt
from ipfs_share.agent.lock import InstanceLock
from ipfs_share.agent.node import NodeSupervisor
from ipfs_share.agent.republish import DEFAULT_EVERY, RETRY_MIN, Republish, RepublishSchedule
from ipfs_share.agent.watchers import (
    Announcer,
    InboxWatcher,
    IntroductionListener,
    KeychainWatcher,
    Supervised,
    Watcher,
    inbox_peers,
)
from ipfs_share.client import Mesh
from ipfs_share.local.agentdb import RepublishLog, RepublishRun
from ipfs_share.node.discovery import multiaddr_to_url, resolve_api
from ipfs_share.services.feeds.republish import RepublishReport
from ipfs_share.services.identities import PassphraseSource
from ipfs_share.services.keychains import KeychainView, KeyReceived
from ipfs_share.services.mailbox import InboxItem, OutgoingCapsule
from ipfs_share.services.revocations import checked_fresh_for
from ipfs_share.storage.kubo import KuboStorage

__all__ = ["Agent", "AgentOptions"]

log = logging.getLogger("ipfs_share.agent")


@dataclass(frozen=True)
class AgentOptions:
    """The agent's timings (defaults for real use; tests shorten them)."""

    republish_every: float = DEFAULT_EVERY
    republish_retry: float = RETRY_MIN
    probe_every: float = 5.0  # node probe while it answers
    reconcile_every: float = 2.0  # compare running watchers with what should run
    poll_min: float = 1.0  # inbox watch without pubsub
    poll_max: float = 60.0
    resync: float = 30.0  # inbox watch with pubsub: a full sync this often anyway
    announce_grace: float = 15.0
    announce_retry: float = 15.0
    announce_max: float = 3600.0
    scan_every: float = 5.0  # the announcer's look at what is queued
    keychain_check: float = 1.0  # keychain watch: filed pointers, an accept's release
    keychain_idle: float = 30.0  # keychain watch: a full sync this often anyway
    # An open may use an issuer's revocation list resolved at most this long ago
    # (docs/spec/revocation.md section 5.1; 0 to 60 s); 0: resolve at every open.
    revocation_fresh_for: float = 1.0

    def __post_init__(self) -> None:
        checked_fresh_for(self.revocation_fresh_for)  # refused here, not at start


@dataclass
class _Counts:
    capsules_received: int = 0
    acks_received: int = 0
    keychains_updated: int = 0
    keys_received: int = 0
    watcher_restarts: int = 0
    errors: list[str] = field(default_factory=list)


class Agent:
    def __init__(
        self,
        home: Path,
        api: str | None = None,
        *,
        options: AgentOptions | None = None,
        passphrase: PassphraseSource | None = None,
        republish: Republish | None = None,
        watchers: Sequence[Watcher] = (),
    ) -> None:
        self.home = home
        self.api = resolve_api(api)
        self.url = self.api if self.api.startswith("http") else multiaddr_to_url(self.api)
        self.options = options or AgentOptions()
        self._start_passphrase = passphrase
        self._republish = republish
        self._extra = tuple(watchers)
        self.started_at: float | None = None
        self.pid = os.getpid()
        self.bus = EventBus()
        self.stopped = asyncio.Event()
        self.counts = _Counts()
        self._lock = InstanceLock(home)
        self._tasks: list[asyncio.Task[None]] = []
        self._reconcile_now = asyncio.Event()
        self._keychain_watchers: dict[str, KeychainWatcher] = {}
        # Built in start():
        self.mesh: Mesh
        self.keys: KeyCache
        self.node: NodeSupervisor
        self.schedule: RepublishSchedule
        self.announcer: Announcer
        self._watchers: Supervised
        self._runs: RepublishLog

    def __repr__(self) -> str:
        return f"Agent(home={str(self.home)!r}, node={self.url!r})"

    # -- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        """Take the lock (or :class:`~ipfs_share.errors.AgentRunningError`), open the home,
        unlock what can be unlocked without asking, and start everything."""
        self.home.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.home.chmod(0o700)  # the socket lives here: only the owner may reach it
        self._lock.acquire()
        try:
            ensure_token(self.home)  # for the HTTP API on TCP: made once, kept
            await self._start()
        except BaseException:
            await self._close()
            raise

    async def _start(self) -> None:
        opts = self.options
        storage = KuboStorage(self.url)  # connected lazily: the node may not be up yet
        self.mesh = Mesh(storage, self.home, passphrase=refuse_prompt)
        self.mesh.revocations.fresh_for = opts.revocation_fresh_for
        self.keys = KeyCache(
            self.mesh.identity, on_change=self.reconcile, on_forget=self.mesh.share.forget
        )
        await self.keys.unlock_available(self._start_passphrase)
        self._start_passphrase = None  # not kept: what it unlocked is unlocked
        self.mesh.inbox.subscribe("capsule_received", self._on_capsule)
        self.mesh.inbox.subscribe("ack_received", self._on_ack)
        self.mesh.keychains.on("keychain_updated", self._on_keychain)
        self.mesh.keychains.on("key_received", self._on_key)
        self.node = NodeSupervisor(
            storage,
            self.url,
            on_up=self._node_up,
            on_down=self._node_down,
            probe_every=opts.probe_every,
        )
        self._runs = RepublishLog(self.home)
        self.schedule = RepublishSchedule(
            self._republish or self._republish_records,
            self._runs,
            every=opts.republish_every,
            retry_min=opts.republish_retry,
            on_run=self._on_republish,
        )
        self.announcer = Announcer(
            self.mesh,
            self.mesh.identity.unlocked_dids,
            grace=opts.announce_grace,
            first_retry=opts.announce_retry,
            max_interval=opts.announce_max,
            scan_every=opts.scan_every,
        )
        self._watchers = Supervised(on_end=self._watcher_ended)
        self.started_at = time.time()
        for name, job in (
            ("node", self.node.run()),
            ("republish", self._scheduled()),
            ("reconcile", self._reconcile_loop()),
        ):
            self._tasks.append(asyncio.create_task(self._critical(name, job), name=name))
        trace = memtrace.from_env(self.home)  # a diagnostic, off unless asked for
        if trace is not None:
            self._tasks.append(asyncio.create_task(trace.run(), name="memtrace"))
        log.info("agent for %s started (pid %d, node %s)", self.home, self.pid, self.url)

    async def stop(self) -> None:
        """Cancel everything and let go of the home (the server stops first)."""
        if self.stopped.is_set():
            return
        log.info("agent for %s stopping", self.home)
        self.stopped.set()
        await self._close()

    async def _close(self) -> None:
        tasks, self._tasks = self._tasks, []
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if hasattr(self, "_watchers"):
            await self._watchers.stop()
        if hasattr(self, "keys"):
            self.keys.close()
        if hasattr(self, "mesh"):
            with contextlib.suppress(Exception):
                await self.mesh.close()
        if hasattr(self, "_runs"):
            self._runs.close()
        self._lock.release()
        self.stopped.set()

    async def __aenter__(self) -> Agent:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _critical(self, name: str, job: Any) -> None:
        """A part the agent cannot run without: if it fails, the agent stops (and says
        why) rather than run half-blind."""
        try:
            await job
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            message = getattr(exc, "message", None) or repr(exc)
            log.error("the agent's %s failed: %s; stopping", name, message)
            self.counts.errors.append(f"{name}: {message}")
            self.stopped.set()

    async def _republish_records(self) -> RepublishReport:
        """``mesh.republish``: every record put again; our own near their end re-signed
        with the keys the agent holds (a locked identity's are reported, never asked)."""
        return await self.mesh.republish(renew=True, unlock=False)

    async def _scheduled(self) -> None:
        await self.node.up.wait()  # a first run against a node that is not there fails
        await self.schedule.run()

    # -- what runs ------------------------------------------------------------------------
    def reconcile(self) -> None:
        """Make the running watchers match the node's state, the unlocked identities and
        their contacts (soon: at the next turn of the reconcile loop)."""
        self._reconcile_now.set()

    async def _reconcile_loop(self) -> None:
        while True:
            self._watchers.want(self._wanted())
            self._reconcile_now.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._reconcile_now.wait(), self.options.reconcile_every)

    def _wanted(self) -> list[Watcher]:
        if not self.node.state.up:
            return []
        opts = self.options
        wanted: list[Watcher] = [self.announcer, *self._extra]
        for did in self.mesh.identity.unlocked_dids():
            wanted.append(
                InboxWatcher(
                    self.mesh,
                    did,
                    inbox_peers(self.mesh, did),
                    poll_min=opts.poll_min,
                    poll_max=opts.poll_max,
                    resync=opts.resync,
                )
            )
            wanted.append(IntroductionListener(self.mesh, did, self.bus))
            wanted.append(self._keychain_watcher(did))
        return wanted

    def _keychain_watcher(self, did: str) -> KeychainWatcher:
        """One per identity, kept while it runs (it remembers which accepts it waits on)."""
        found = self._keychain_watchers.get(did)
        if found is None:
            opts = self.options
            found = self._keychain_watchers[did] = KeychainWatcher(
                self.mesh, did, check=opts.keychain_check, idle=opts.keychain_idle
            )
        return found

    def watched(self) -> list[dict[str, object]]:
        """The inbox watches running now, per identity."""
        found = []
        for key in self._watchers.running():
            if isinstance(key, tuple) and key and key[0] == "inbox":
                _, did, peers = key
                found.append({"identity": did, "mailboxes": len(peers), "senders": list(peers)})
        return found

    def _watcher_ended(self, key: Hashable, error: BaseException | None) -> None:
        self.counts.watcher_restarts += 1
        why = getattr(error, "message", None) or (repr(error) if error else "it ended")
        log.info("watcher %s stopped (%s); restarting after a backoff", _short(key), why)
        self.node.suspect()  # most often the node went away under it
        self.reconcile()

    def _node_up(self) -> None:
        self.bus.publish("node", {"up": True, "url": self.url})
        self.reconcile()
        last = self.schedule.state.last
        if last is not None and not last.ok:
            self.schedule.run_now()  # it failed while the node was away: try again now

    def _node_down(self) -> None:
        self.bus.publish("node", {"up": False, "url": self.url, "error": self.node.state.error})
        self.reconcile()

    # -- events ---------------------------------------------------------------------------
    def _on_capsule(self, item: InboxItem) -> None:
        self.counts.capsules_received += 1
        self.bus.publish("capsule_received", item.to_json())

    def _on_ack(self, receipt: OutgoingCapsule) -> None:
        self.counts.acks_received += 1
        self.bus.publish("ack_received", receipt.to_json())

    def _on_keychain(self, view: KeychainView) -> None:
        self.counts.keychains_updated += 1
        self.bus.publish("keychain_updated", view.to_json())

    def _on_key(self, received: KeyReceived) -> None:
        self.counts.keys_received += 1
        self.bus.publish("key_received", received.to_json())

    def _on_republish(self, run: RepublishRun) -> None:
        self.bus.publish("republish", run.to_json())

    # -- status ---------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """What ``ipfs-share agent status`` shows (see its module for the fields)."""
        mesh = self.mesh
        intros = mesh.introductions
        pending_intros = intros.pending()
        inbox_pending = 0
        for identity in mesh.identity.list():
            inbox_pending += len(mesh.db.mailboxes.inbox(identity.did, states=("pending",)))
        return {
            "running": True,
            "pid": self.pid,
            "home": str(self.home),
            "started_at": None if self.started_at is None else int(self.started_at),
            "node": self.node.state.to_json(),
            "unlocked": [u.to_json() for u in self.keys.held()],
            "locked": [i.name for i in mesh.identity.list() if not self.keys.is_unlocked(i.did)],
            "republish": self.schedule.state.to_json(),
            "watching": self.watched(),
            "pending": {
                "introductions": [p.to_json() for p in pending_intros],
                "inbox_not_fetched": inbox_pending,
                "queued_outgoing": sum(1 for _ in mesh.db.mailboxes.queued_pairs()),
                "announcing": len(self.announcer.schedules),
                "keychains": self._keychain_pending(),
            },
            "introductions": dict(intros.counters.by_outcome),
            "events": {"last_id": self.bus.last_id, "subscribers": self.bus.subscribers},
            "counts": {
                "capsules_received": self.counts.capsules_received,
                "acks_received": self.counts.acks_received,
                "keychains_updated": self.counts.keychains_updated,
                "keys_received": self.counts.keys_received,
                "introductions_announced": self.announcer.announced,
                "watcher_restarts": self.counts.watcher_restarts,
            },
        }

    def _keychain_pending(self) -> dict[str, Any]:
        """Keychain items not settled yet: pointers filed and not taken up, offers to this
        home (to accept, or accepted and waiting for the keys), offers it made (waiting
        for an accept, or for its release)."""
        kc = self.mesh.keychains
        return {
            "notices": len(self.mesh.db.keychains.notices()),
            "incoming": [o.to_json() for o in kc.incoming_offers()],
            "outgoing": [o.to_json() for o in kc.outgoing_shared_keys()],
        }


def _short(key: Hashable) -> str:
    if isinstance(key, tuple) and len(key) >= 2:
        return f"{key[0]} {key[1]}"
    return str(key)
