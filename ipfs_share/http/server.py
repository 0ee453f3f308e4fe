"""Serving the agent on ``<home>/agent.sock`` until SIGTERM or SIGINT, then stopping in
order.

The socket is created 0600 (under a umask that allows nothing else, then chmod'ed to be
sure) in a home that is 0700, and a socket file left by an agent that died is replaced
(the instance lock, held by then, says no agent is using it). On a signal: stop taking
connections, let requests in flight finish for up to ``grace`` seconds (longer ones are
cancelled; each database change is one transaction, so nothing is half-written), end the
event streams, then stop the agent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from pathlib import Path

from aiohttp import web

from ipfs_share.agent.core import Agent
from ipfs_share.agent.files import socket_path
from ipfs_share.errors import AgentError
from ipfs_share.http.app import CLOSING, make_app

__all__ = ["SHUTDOWN_GRACE", "AgentServer", "serve"]

log = logging.getLogger("ipfs_share.agent")

SHUTDOWN_GRACE = 10.0


class AgentServer:
    """The agent's app on its unix socket: ``await start()``, ``await close()``."""

    def __init__(self, agent: Agent, *, grace: float = SHUTDOWN_GRACE) -> None:
        self.agent = agent
        self.path: Path = socket_path(agent.home)
        self.app = make_app(agent, unix=True)
        self._runner = web.AppRunner(
            self.app, handle_signals=False, access_log=None, shutdown_timeout=grace
        )

    async def start(self) -> None:
        await self._runner.setup()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # left by an agent that died; the lock is ours now
        if len(str(self.path).encode()) > 107:
            raise AgentError(
                f"the home's path is too long for a unix socket ({self.path})",
                hint="use a shorter IPFS_SHARE_HOME",
            )
        old = os.umask(0o177)
        try:
            site = web.UnixSite(self._runner, str(self.path))
            await site.start()
        finally:
            os.umask(old)
        self.path.chmod(0o600)
        log.info("serving on %s", self.path)

    async def close(self) -> None:
        self.app[CLOSING].set()
        await self._runner.cleanup()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


async def serve(agent: Agent, *, grace: float = SHUTDOWN_GRACE) -> None:
    """Start ``agent`` and its server; run until SIGTERM/SIGINT (or the agent stops by
    itself, failing); then stop both, in order."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await agent.start()
        server = AgentServer(agent, grace=grace)
        try:
            await server.start()
            waits = [
                asyncio.ensure_future(stop.wait()),
                asyncio.ensure_future(agent.stopped.wait()),
            ]
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for w in waits:
                w.cancel()
            log.info("stopping: %s", "signal" if stop.is_set() else "the agent failed")
        finally:
            await server.close()
            await agent.stop()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
