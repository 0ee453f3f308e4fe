"""Helpers for the agent tests: agents as real processes (``ipfs-share serve``), started and
stopped by their pids; in-process agents with short timings; nodes with fixed ports (so a
restart comes back at the same address); people (homes with an identity).

Not a test module. Every process started here is recorded in :data:`AGENTS` and stopped
by its pid at teardown, and by an atexit hook if a session dies first.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conftest import STARTED

from ipfs_share.agent.core import Agent, AgentOptions
from ipfs_share.agent.files import socket_path
from ipfs_share.agent.remote import AgentClient
from ipfs_share.client import Mesh
from ipfs_share.crypto.passphrase import KdfParams
from ipfs_share.http.server import AgentServer
from ipfs_share.node.daemon import KuboDaemon, RunningNode, pid_alive
from ipfs_share.node.ports import NodePorts, free_port
from ipfs_share.storage.kubo import KuboStorage

PASSPHRASE = "pw"
FAST: dict[str, Any] = {"passphrase": lambda _: PASSPHRASE.encode(), "kdf": KdfParams.fastest()}

AGENTS: dict[int, subprocess.Popen[bytes]] = {}


def _stop_all() -> None:
    for pid, proc in list(AGENTS.items()):
        if proc.poll() is None:
            os.kill(pid, signal.SIGKILL)


atexit.register(_stop_all)


def cli_env(home: Path, api: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IPFS_SHARE_")}
    env.update(IPFS_SHARE_HOME=str(home), IPFS_SHARE_API=api, **extra)
    return env


def run_cli(env: dict[str, str], *argv: str, timeout: float = 120) -> tuple[int, str, str]:
    """``ipfs-share ARGV`` as its own process: (exit code, stdout, stderr)."""
    code, out, err = run_cli_bytes(env, *argv, timeout=timeout)
    return code, out.decode(errors="replace"), err


def run_cli_bytes(env: dict[str, str], *argv: str, timeout: float = 120) -> tuple[int, bytes, str]:
    done = subprocess.run(
        [sys.executable, "-m", "ipfs_share.cli.main", *argv],
        env=env,
        capture_output=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    return done.returncode, done.stdout, done.stderr.decode(errors="replace")


class AgentProcess:
    """``ipfs-share serve`` for one home, as a process of this test's own."""

    def __init__(self, home: Path, api: str, *args: str, env: dict[str, str] | None = None):
        self.home = home
        self.log = home.parent / f"{home.name}-agent.log"
        self.env = env or cli_env(home, api, IPFS_SHARE_PASSPHRASE=PASSPHRASE)
        if "--port" not in args and "--no-http" not in args:
            args = (*args, "--port", "0")  # tests run side by side: any free port
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "ipfs_share.cli.main", "serve", *args],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        AGENTS[self.proc.pid] = self.proc

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_ready(self, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"the agent exited {self.proc.returncode}: {self.text()}")
            if socket_path(self.home).exists():
                try:
                    status = AgentClient(socket_path(self.home)).status()
                except Exception:
                    status = None
                if status and status["node"]["up"]:
                    return status
            time.sleep(0.1)
        raise AssertionError(f"the agent was not ready in {timeout} s: {self.text()}")

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM by pid, and wait; SIGKILL if it does not go."""
        if self.proc.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.proc.wait(10)
        AGENTS.pop(self.pid, None)
        return self.proc.returncode


def start_fixed_node(repo: Path, binary: Path) -> tuple[KuboDaemon, RunningNode]:
    """A local node whose ports are fixed in its config: a restart keeps its address."""
    daemon = KuboDaemon(repo, binary)
    daemon.init(ports=NodePorts(api=free_port(), gateway=free_port(), swarm=free_port()))
    STARTED[daemon.start(die_with_parent=True)] = daemon
    try:
        return daemon, daemon.wait_ready(timeout=30)
    except BaseException:
        daemon.stop(timeout=5)
        raise


def restart(daemon: KuboDaemon, *, down_for: float = 0.0) -> RunningNode:
    """Stop a node by its pid, wait, start it again at the same address."""
    pid = daemon.running_pid()
    daemon.stop(timeout=10)
    assert pid is None or not pid_alive(pid)
    time.sleep(down_for)
    STARTED[daemon.start(die_with_parent=True)] = daemon
    return daemon.wait_ready(timeout=30)


@dataclass
class Person:
    mesh: Mesh
    home: Path
    name: str
    did: str


async def person(api: str, home: Path, name: str) -> Person:
    """A home with one published identity sealed with :data:`PASSPHRASE`."""
    mesh = Mesh(await KuboStorage.connect(api), home, **FAST)
    if not mesh.identity.list():
        await mesh.identity.create(name)
        await mesh.identity.publish()
    return Person(mesh, home, name, mesh.identity.get().did)


@asynccontextmanager
async def running_agent(
    home: Path, api: str, *, unlock: bool = True, **options: Any
) -> AsyncIterator[Agent]:
    """An agent in this process, with its server on the home's socket, short timings."""
    defaults: dict[str, Any] = {
        "probe_every": 0.5,
        "reconcile_every": 0.2,
        "resync": 2.0,
        "poll_min": 0.2,
        "poll_max": 1.0,
        "announce_grace": 0.5,
        "announce_retry": 0.5,
        "announce_max": 2.0,
        "scan_every": 0.2,
        "revocation_fresh_for": 0.3,
    }
    defaults.update(options)
    agent = Agent(
        home,
        api,
        options=AgentOptions(**defaults),
        passphrase=(lambda _: PASSPHRASE.encode()) if unlock else None,
    )
    await agent.start()
    server = AgentServer(agent, grace=2)
    await server.start()
    try:
        await wait_for(lambda: agent.node.state.up is True, 30, "the node to be up")
        yield agent
    finally:
        await server.close()
        await agent.stop()


async def wait_for(check: Any, timeout: float, what: str) -> None:
    """Poll ``check()`` (sync or async) until true, for at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if asyncio.iscoroutine(got):
            got = await got
        if got:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout} s for {what}")
        await asyncio.sleep(0.1)


def sse_events(
    home: Path,
    count: int,
    *,
    last_id: int | None = None,
    timeout: float = 20,
    types: frozenset[str] | None = None,
) -> list[dict[str, Any]]:
    """Read ``count`` events (of ``types`` only, if given) from the agent's /v1/events
    (blocking; run in a thread), or what came within ``timeout`` seconds."""
    import http.client
    import socket as socketlib

    class Conn(http.client.HTTPConnection):
        def connect(self) -> None:
            s = socketlib.socket(socketlib.AF_UNIX, socketlib.SOCK_STREAM)
            s.settimeout(timeout)
            s.connect(str(socket_path(home)))
            self.sock = s

    conn = Conn("localhost", timeout=timeout)
    headers = {} if last_id is None else {"Last-Event-ID": str(last_id)}
    conn.request("GET", "/v1/events", headers=headers)
    response = conn.getresponse()
    events: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    deadline = time.monotonic() + timeout  # the stream's keep-alives reset the socket's
    try:
        while len(events) < count and time.monotonic() < deadline:
            line = response.fp.readline().decode().rstrip("\n")
            if line.startswith("id: "):
                current["id"] = int(line[4:])
            elif line.startswith("event: "):
                current["type"] = line[7:]
            elif line.startswith("data: "):
                current["data"] = json.loads(line[6:])
            elif line == "" and current:
                if types is None or current.get("type") in types:
                    events.append(current)
                current = {}
    finally:
        conn.close()
    return events


@asynccontextmanager
async def tcp_api(agent: Agent, *, cors: tuple[str, ...] = ()) -> AsyncIterator[str]:
    """The agent's HTTP API on 127.0.0.1 at a free port, as ``serve`` serves it (the
    token of the home's agent.token); yields its base URL."""
    from aiohttp import web

    from ipfs_share.agent.files import ensure_token
    from ipfs_share.http.api import make_api

    runner = web.AppRunner(make_api(agent, token=ensure_token(agent.home), cors_origins=cors))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()
