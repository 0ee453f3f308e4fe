"""The agent, ``ipfs-share serve``: a standing presence for one home.

One long-running process per home keeps the home present while nobody types: it
republishes records on a schedule, watches the inbox of every unlocked identity, takes
introductions from senders not yet added and re-announces its own senders to recipients
who have not acknowledged, holds unlocked keys for the command line (which then delegates
whole operations over ``<home>/agent.sock``), and publishes what happens on an event bus.

The package, one concept a module:

- :mod:`.files` -- where the agent keeps its files in the home (stdlib only);
- :mod:`.remote` -- the command line's side of the socket (stdlib only: no aiohttp, no
  nacl, so a delegated ``open`` starts fast);
- :mod:`.lock` -- one agent per home (an exclusive lock that names the holder's pid);
- :mod:`.events` -- the event bus (ids that only grow, a bounded ring for resuming);
- :mod:`.keycache` -- unlocked keys with deadlines (memory only);
- :mod:`.node` -- the node: probing, reconnecting with backoff, saying so;
- :mod:`.republish` -- the republish schedule (it runs ``mesh.republish``);
- :mod:`.watchers` -- inbox watches, introduction listeners, the announcer;
- :mod:`.operations` -- the delegated operations (JSON in, JSON out, over the facade);
- :mod:`.memtrace` -- an opt-in memory trace, for a diagnostic run;
- :mod:`.core` -- :class:`~ipfs_share.agent.core.Agent`, which ties them together.

What it keeps in memory has a bound that does not grow with how long it runs; what grows
with the run (inbox items, receipts, introductions, republish runs) is in SQLite:

- the event ring: the last 1024 events (:data:`.events.RING_SIZE`), and at most 256
  queued for each subscriber, which is cut off beyond that (:data:`.events.QUEUE_SIZE`);
- the memos of CIDs and dids (``formats/memo.py``): at most 2 x 4096 CID strings and
  2 x 4096 parsed CIDs (about 320 and 400 bytes each, under 6 MiB together), 2 x 1024
  did keys; one not used again is dropped within 3 minutes (``MEMO_TTL``, 60 s, times 3),
  so a steady trickle of capsules keeps only the last minutes' worth;
- capsules fetched ahead of a mailbox read: at most 20,000 blocks and 32 MiB, each
  dropped as it is filed (the reader's ``PREFETCH_CAP``, ``PREFETCH_BYTES``);
- introductions: 4096 seen ones against replays, one rate bucket per identity; the
  pending ones (16 per identity at most) are in SQLite;
- per sender or recipient: one mailbox pair, read lock and write queue, one identity
  document per did, one announce schedule per pair with capsules queued; the keys of
  the dids keychain ops name, 65,536 at most (``formats/keychain.py``);
- a sync holds what its sender's new entries bring, not the sender's whole inbox (the
  revocation re-check reads one row per issuer until an issuer's list moves);
- per HTTP upload in flight: its body read ahead up to 2 MiB (the server's read buffer)
  and at most 4 MiB more queued for the worker thread that seals and sends it
  (``http/upload.py``, :data:`PIPE_BOUND`), with that thread's two 256 KiB buffers;
- SQLite's page cache of each connection (its default, 2 MiB), and the HTTP library's
  caches of parsed URLs (yarl: 128 entries each).

``IPFS_SHARE_TRACEMALLOC=SECONDS`` makes the agent write :mod:`tracemalloc` snapshots to
``<home>/memtrace/`` (:mod:`.memtrace`); ``bench/agent_soak.py`` drives an agent for an
hour and reports the slope of its memory (``--trace N``: under this trace).

This ``__init__`` imports nothing, so the command line can load :mod:`.remote` alone.
"""
