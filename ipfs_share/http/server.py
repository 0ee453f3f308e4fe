"""Serving the agent on ``<home>/agent.sock`` and its HTTP API (127.0.0.1:5052 by default,
see :class:`Listen`) until SIGTERM or SIGINT, then stopping in order.

The socket is created 0600 (under a umask that allows nothing else, then chmod'ed to be
sure) in a home that is 0700, and a socket file left by an agent that died is replaced
(the instance lock, held by then, says no agent is using it). On a signal: stop taking
connections, let requests in flight finish for up to ``grace`` seconds (longer ones are
cancelled; each database change is one transaction, so nothing is half-written), end the
event streams, then stop the agent.

The HTTP API needs the bearer token of ``<home>/agent.token`` on every request (made at
the first start, 0600); the home's socket needs none (:mod:`.auth` says why). Where it
listens is in the status (``GET /v1/agent``: ``"http"``), so ``--port 0`` (any free port)
can be found.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from ipfs_share.agent.core import Agent
from ipfs_share.agent.files import ensure_token, socket_path
from ipfs_share.errors import AgentError
from ipfs_share.http.api import make_api
from ipfs_share.http.app import CLOSING, LISTENING

__all__ = ["DEFAULT_PORT", "SHUTDOWN_GRACE", "AgentServer", "Listen", "serve"]

DEFAULT_PORT = 5052


@dataclass(frozen=True)
class Listen:
    """Where the HTTP API listens: ``host`` and ``port`` (0: any free port), or a unix
    socket ``path`` (made 0600; the token is needed there too)."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    path: Path | None = None
    cors_origins: Sequence[str] = ()


log = logging.getLogger("ipfs_share.agent")

SHUTDOWN_GRACE = 10.0
# A request body is read ahead up to this much (aiohttp pauses the socket at twice it):
# an upload then comes in pieces near the 1 MiB the encryptor takes, not 64 KiB ones.
READ_BUFSIZE = 1 << 20


class AgentServer:
    """The agent's app on its unix socket: ``await start()``, ``await close()``."""

    def __init__(
        self, agent: Agent, *, grace: float = SHUTDOWN_GRACE, http: Listen | None = None
    ) -> None:
        self.agent = agent
        self.path: Path = socket_path(agent.home)
        self.app = make_api(agent, unix=True)
        self._runner = web.AppRunner(
            self.app,
            handle_signals=False,
            access_log=None,
            shutdown_timeout=grace,
            read_bufsize=READ_BUFSIZE,
        )
        self.http = http
        self.urls: list[str] = []  # filled in by start(); the status shows them
        self.app[LISTENING] = self.urls
        self._http_runner: web.AppRunner | None = None
        if http is not None:
            self.http_app = make_api(
                agent, token=ensure_token(agent.home), cors_origins=http.cors_origins
            )
            self.http_app[LISTENING] = self.urls
            self._http_runner = web.AppRunner(
                self.http_app,
                handle_signals=False,
                access_log=None,
                shutdown_timeout=grace,
                read_bufsize=READ_BUFSIZE,
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
        if self._http_runner is not None:
            await self._start_http()

    async def _start_http(self) -> None:
        assert self.http is not None and self._http_runner is not None
        await self._http_runner.setup()
        site: web.BaseSite
        if self.http.path is not None:
            site = web.UnixSite(self._http_runner, str(self.http.path))
            old = os.umask(0o177)  # 0600, as the home's socket; the token is needed anyway
            try:
                await site.start()
            finally:
                os.umask(old)
            self.urls.append(f"unix:{self.http.path}")
        else:
            site = web.TCPSite(self._http_runner, self.http.host, self.http.port)
            try:
                await site.start()
            except OSError as exc:
                raise AgentError(
                    f"the HTTP API cannot listen on {self.http.host}:{self.http.port}: "
                    f"{exc.strerror}",
                    hint="choose another with --port (0: any free port) or --listen",
                ) from None
            server = site._server
            for sock in getattr(server, "sockets", None) or ():
                host, port = sock.getsockname()[:2]
                shown = f"[{host}]" if ":" in host else host
                self.urls.append(f"http://{shown}:{port}")
        log.info("HTTP API on %s (bearer token in %s)", ", ".join(self.urls), "agent.token")

    async def close(self) -> None:
        self.app[CLOSING].set()
        if self._http_runner is not None:
            self.http_app[CLOSING].set()
            await self._http_runner.cleanup()
        await self._runner.cleanup()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


async def serve(agent: Agent, *, grace: float = SHUTDOWN_GRACE, http: Listen | None = None) -> None:
    """Start ``agent`` and its server; run until SIGTERM/SIGINT (or the agent stops by
    itself, failing); then stop both, in order."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await agent.start()
        server = AgentServer(agent, grace=grace, http=http)
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
