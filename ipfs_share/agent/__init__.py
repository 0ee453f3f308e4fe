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
- :mod:`.core` -- :class:`~ipfs_share.agent.core.Agent`, which ties them together.

This ``__init__`` imports nothing, so the command line can load :mod:`.remote` alone.
"""
