"""The agent as a process and as the command line sees it: one per home, SIGTERM, status,
unlock and lock, delegated operations, the fast open path, the socket's permissions, no
unlock route on TCP; and its parts on their own (event bus, lock, the command table).

Agents here are real ``ipfs-share serve`` processes on real Kubo nodes, started and
stopped by their pids (tests/agentkit.py), or in-process agents on the home's socket.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from agentkit import (
    PASSPHRASE,
    AgentProcess,
    Person,
    cli_env,
    person,
    run_cli,
    run_cli_bytes,
    running_agent,
    sse_events,
    wait_for,
)

from ipfs_share.agent.core import Agent
from ipfs_share.agent.events import EventBus, SubscriptionOverflow
from ipfs_share.agent.files import socket_path, token_path
from ipfs_share.agent.lock import InstanceLock, holder
from ipfs_share.agent.remote import AgentClient
from ipfs_share.cli.main import COMMANDS, EXIT_CODES, build_parser
from ipfs_share.crypto.stream import FileKey
from ipfs_share.errors import (
    AgentNotRunningError,
    AgentRunningError,
    IdentityLockedError,
    ShareRevokedError,
    StreamTruncatedError,
)
from ipfs_share.formats.envelope import encrypt
from ipfs_share.http.app import make_app
from ipfs_share.http.server import AgentServer
from ipfs_share.local.state import StateDB
from ipfs_share.node.daemon import RunningNode

# -- a home with a capsule for bob, and bob's agent as a process ---------------------------


@pytest.fixture
async def people(kubo: RunningNode, tmp_path: Path) -> AsyncIterator[tuple[Person, Person, str]]:
    """alice shares a 1 KiB file with bob (a contact); yields (alice, bob, capsule)."""
    alice = await person(kubo.api_url, tmp_path / "alice", "alice")
    bob = await person(kubo.api_url, tmp_path / "bob", "bob")
    alice.mesh.identity.add_contact("bob", bob.did)
    f = await alice.mesh.files.put("note.txt", bytes(range(256)) * 4)
    capsule = (await alice.mesh.share.file(f).with_("bob")).id
    await bob.mesh.close()  # bob's home is the agent's from here on
    yield alice, bob, capsule
    await alice.mesh.close()


@pytest.fixture
def bob_agent(kubo: RunningNode, people: tuple[Person, Person, str]) -> Iterator[AgentProcess]:
    _, bob, _ = people
    agent = AgentProcess(bob.home, kubo.api_url)
    try:
        agent.wait_ready()
        yield agent
    finally:
        agent.stop()


def test_one_agent_per_home_status_and_a_clean_sigterm(
    kubo: RunningNode, people: tuple[Person, Person, str], bob_agent: AgentProcess
) -> None:
    _, bob, _ = people
    env = cli_env(bob.home, kubo.api_url)
    code, out, err = run_cli(env, "agent", "status", "--json")
    assert code == 0, err
    status = json.loads(out)
    assert status["running"] and status["pid"] == bob_agent.pid
    assert status["node"]["up"] and status["node"]["url"] == kubo.api_url
    assert [u["name"] for u in status["unlocked"]] == ["bob"]
    assert status["republish"]["last"]["ok"] is True  # it ran at start: none had run yet
    assert status["watching"][0]["identity"] == bob.did
    # Only the owner can reach the socket.
    assert stat.S_IMODE(bob.home.stat().st_mode) == 0o700
    assert stat.S_IMODE(socket_path(bob.home).stat().st_mode) == 0o600
    assert stat.S_IMODE(token_path(bob.home).stat().st_mode) == 0o600
    code, out, _ = run_cli(env, "agent", "token")
    assert code == 0 and out.strip() == token_path(bob.home).read_text().strip()
    # A second agent for the same home is refused, naming the first.
    code, _, err = run_cli(env, "serve")
    assert code == EXIT_CODES["agent_error"] == 14
    assert f"already running for {bob.home} (pid {bob_agent.pid})" in err
    # SIGTERM: it stops, cleanly, and lets go of the home.
    assert bob_agent.stop() == 0
    assert not socket_path(bob.home).exists() and holder(bob.home) is None
    assert "stopping" in bob_agent.text() and "Traceback" not in bob_agent.text()
    code, _, err = run_cli(env, "agent", "status")
    assert code == 14 and "no agent is running" in err


def test_open_through_the_agent_with_no_passphrase_then_lock(
    kubo: RunningNode, people: tuple[Person, Person, str], bob_agent: AgentProcess, tmp_path: Path
) -> None:
    _, bob, capsule = people
    env = cli_env(bob.home, kubo.api_url)  # no IPFS_SHARE_PASSPHRASE, no terminal
    code, data, err = run_cli_bytes(env, "open", capsule)
    assert code == 0, err
    assert data == bytes(range(256)) * 4
    code, _, err = run_cli(dict(env, IPFS_SHARE_NO_AGENT="1"), "open", capsule)
    assert code == EXIT_CODES["invalid_input"] and "passphrase" in err  # ran here: no key
    code, out, err = run_cli(env, "open", capsule, "-o", str(tmp_path / "out"), "--json")
    assert code == 0, err
    assert json.loads(out)["saved_to"] == str(tmp_path / "out")
    assert (tmp_path / "out").read_bytes() == bytes(range(256)) * 4
    assert stat.S_IMODE((tmp_path / "out").stat().st_mode) == 0o600
    code, out, err = run_cli(env, "open", capsule, "--range", "256-259", "-o", str(tmp_path / "r"))
    assert code == 0, err
    assert (tmp_path / "r").read_bytes() == bytes([0, 1, 2, 3])
    # Locked: the command falls back to unlocking by itself, and without a passphrase or a
    # terminal that fails as it always did. So the opens above were the agent's.
    code, out, _ = run_cli(env, "lock", "--json")
    assert code == 0 and json.loads(out)["locked"] == [bob.did]
    code, _, err = run_cli(env, "open", capsule)
    assert code == EXIT_CODES["invalid_input"] and "passphrase" in err
    assert "the agent holds this identity locked" in err
    # unlock --for: asks once (here from the environment), then opens need nothing.
    code, out, err = run_cli(
        {**env, "IPFS_SHARE_PASSPHRASE": PASSPHRASE}, "unlock", "--for", "1h", "--json"
    )
    assert code == 0, err
    assert json.loads(out)["until"] is not None
    code, _, err = run_cli(env, "open", capsule)
    assert code == 0, err
    code, _, err = run_cli({**env, "IPFS_SHARE_PASSPHRASE": "wrong"}, "unlock")
    assert code == EXIT_CODES["invalid_input"], err  # passphrase_invalid
    assert PASSPHRASE not in bob_agent.text() and "wrong" not in bob_agent.text()


def test_a_delegated_open_loads_no_aiohttp_nacl_or_services(
    kubo: RunningNode, people: tuple[Person, Person, str], bob_agent: AgentProcess
) -> None:
    _, bob, capsule = people
    probe = (
        "import sys, io\n"
        "from ipfs_share.cli.main import main\n"
        "sys.stdout = io.TextIOWrapper(io.BytesIO())\n"
        f"code = main(['open', {capsule!r}])\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('aiohttp', 'nacl', 'aioipfs', 'cbor2', 'multiformats', 'asyncio') "
        "or m.startswith(('ipfs_share.services', 'ipfs_share.client', 'ipfs_share.storage')))\n"
        "sys.stderr.write(repr((code, heavy)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        env=cli_env(bob.home, kubo.api_url),
        capture_output=True,
        timeout=60,
    )
    assert done.stderr.decode().endswith("(0, [])"), done.stderr.decode()


def test_a_link_from_share_opens_and_makes_its_sender_a_contact(
    kubo: RunningNode, people: tuple[Person, Person, str]
) -> None:
    """``share --link`` prints ``ipfs-share:CAPSULE?from=DID``; opening it (here without an
    agent) opens the capsule and then makes the sender a contact."""
    alice, bob, _ = people
    src = alice.home.parent / "hello.txt"
    src.write_bytes(b"hello link")
    env_a = cli_env(alice.home, kubo.api_url, IPFS_SHARE_PASSPHRASE=PASSPHRASE)
    code, out, err = run_cli(env_a, "put", str(src), "--json")
    assert code == 0, err
    cid = json.loads(out)["content"]
    code, out, err = run_cli(env_a, "share", cid, "--to", "bob", "--link")
    assert code == 0, err
    link = out.strip()
    assert link.startswith("ipfs-share:bafyrei") and link.endswith(f"?from={alice.did}")
    env_b = cli_env(bob.home, kubo.api_url, IPFS_SHARE_PASSPHRASE=PASSPHRASE)
    code, data, err = run_cli_bytes(env_b, "open", link)
    assert code == 0, err
    assert data == b"hello link" and f"added the sender {alice.did} as contact peer-" in err
    code, out, _ = run_cli(env_b, "contacts", "list", "--json")
    assert [c["did"] for c in json.loads(out)["contacts"]] == [alice.did]
    code, _, err = run_cli(env_b, "open", link.replace("?from=", "?from=x"))
    assert code == EXIT_CODES["invalid_input"] and "ipfs-share:<capsule>?from=<did>" in err


async def test_unlock_exists_on_the_unix_socket_only(
    kubo: RunningNode, people: tuple[Person, Person, str]
) -> None:
    _, bob, _ = people
    async with running_agent(bob.home, kubo.api_url, unlock=False) as agent:
        client = AgentClient(socket_path(bob.home))
        status = await asyncio.to_thread(client.status)
        assert status["unlocked"] == [] and status["locked"] == ["bob"]
        with pytest.raises(IdentityLockedError):  # an operation with the keys locked
            await asyncio.to_thread(client.operation, "publish", {})
        done = await asyncio.to_thread(client.unlock, "bob", PASSPHRASE.encode(), 60.0)
        assert done["unlocked"]["name"] == "bob" and "passphrase" not in json.dumps(done)
        published = await asyncio.to_thread(client.operation, "publish", {})
        assert published["did"] == bob.did
        # The same app for TCP has no unlock route, and its handler refuses TCP anyway.
        tcp = make_app(agent, unix=False)
        assert not [r for r in tcp.router.routes() if "unlock" in str(r.resource)]
        runner = aiohttp.web.AppRunner(tcp)
        await runner.setup()
        site = aiohttp.web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        try:
            async with aiohttp.ClientSession() as http:
                body = {"identity": "bob", "passphrase_b64": base64.b64encode(b"pw").decode()}
                async with http.post(f"http://127.0.0.1:{port}/v1/agent/unlock", json=body) as r:
                    assert r.status == 404
                    assert (await r.json())["error"]["code"] == "not_found"
        finally:
            await runner.cleanup()


async def test_unlock_refuses_tcp_even_where_the_route_exists(
    kubo: RunningNode, people: tuple[Person, Person, str]
) -> None:
    """Served on TCP by mistake, the unix app's unlock still refuses (404): the handler
    looks at the connection itself, not only at how the app was built."""
    _, bob, _ = people
    async with running_agent(bob.home, kubo.api_url, unlock=False) as agent:
        runner = aiohttp.web.AppRunner(make_app(agent, unix=True))
        await runner.setup()
        site = aiohttp.web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        try:
            async with aiohttp.ClientSession() as http:
                body = {"identity": "bob", "passphrase_b64": base64.b64encode(b"pw").decode()}
                async with http.post(f"http://127.0.0.1:{port}/v1/agent/unlock", json=body) as r:
                    assert r.status == 404
        finally:
            await runner.cleanup()
        assert not agent.keys.is_unlocked(bob.did)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")
async def test_another_user_is_refused_even_if_the_socket_is_opened_up(kubo: RunningNode) -> None:
    """The peer's uid is checked on every request: a socket and home loosened by hand
    (and a path others can traverse) still serve nobody but the owner."""
    base = Path(tempfile.mkdtemp(prefix="ipfs-share-uid-", dir="/tmp"))
    try:
        os.chmod(base, 0o711)
        bob = await person(kubo.api_url, base / "bob", "bob")
        await bob.mesh.close()
        async with running_agent(bob.home, kubo.api_url, unlock=False):
            os.chmod(bob.home, 0o755)
            os.chmod(socket_path(bob.home), 0o666)
            probe = (
                "import os\n"
                "from pathlib import Path\n"
                "from ipfs_share.agent.remote import AgentClient\n"
                "import ipfs_share.errors, encodings.idna\n"
                "os.setgid(65534); os.setuid(65534)  # after the imports: nobody cannot read them\n"
                "try:\n"
                f"    AgentClient(Path({str(socket_path(bob.home))!r})).status()\n"
                "except Exception as exc:\n"
                "    print(type(exc).__name__, exc)\n"
            )
            done = await asyncio.to_thread(
                subprocess.run, [sys.executable, "-c", probe], capture_output=True, timeout=60
            )
            out = done.stdout.decode()
            assert "only the home's owner may use the agent" in out, (out, done.stderr)
    finally:
        shutil.rmtree(base, ignore_errors=True)


async def test_unlock_runs_out_and_an_expired_identity_is_locked(
    kubo: RunningNode, people: tuple[Person, Person, str]
) -> None:
    alice, bob, _ = people
    db = StateDB(bob.home)
    db.contacts.put("alice", alice.did)  # so the watch derives a mailbox key to forget
    db.close()
    async with running_agent(bob.home, kubo.api_url, unlock=False) as agent:
        await agent.keys.unlock("bob", PASSPHRASE.encode(), 2.0)
        assert agent.keys.is_unlocked(bob.did)
        derived = agent.mesh.inbox.pairs._pairs
        await wait_for(lambda: any(k[0] == bob.did for k in derived), 10, "a derived key")
        # File keys unwrapped by bob's opens (as an open keeps them) go with his keys too.
        unwrapped = FileKey(bytes(32))
        agent.mesh.share._file_keys[("bafy-opened", bob.did, b"x25519")] = unwrapped
        agent.mesh.inbox.share._file_keys[("bafy-opened", bob.did, b"x25519")] = unwrapped
        agent.mesh.files._headers.decode(encrypt(unwrapped, b"x", rng=bytes), unwrapped)
        assert len(agent.mesh.files._headers) == 1
        await wait_for(lambda: not agent.keys.is_unlocked(bob.did), 5, "the unlock to run out")
        assert bob.did not in agent.mesh.identity.unlocked_dids()  # the keys are gone too
        assert not [k for k in agent.mesh.inbox.pairs._pairs if k[0] == bob.did]  # and derived ones
        assert not agent.mesh.share._file_keys and not agent.mesh.inbox.share._file_keys
        assert not len(agent.mesh.files._headers)  # and the headers, with their payload keys
        await wait_for(lambda: not agent.watched(), 5, "the inbox watch to stop")


async def test_stopping_lets_an_open_in_flight_finish(
    kubo: RunningNode, people: tuple[Person, Person, str]
) -> None:
    """On SIGTERM the server stops taking connections but lets a request in flight (an
    open streaming 8 MiB to a slow reader) finish within its grace period, then the agent
    stops and the socket is gone."""
    alice, bob, _ = people
    size = 8 << 20
    f = await alice.mesh.files.put("big.bin", os.urandom(1 << 20) * 8)
    capsule = (await alice.mesh.share.file(f).with_("bob")).id
    agent = Agent(bob.home, kubo.api_url, passphrase=lambda _: PASSPHRASE.encode())
    await agent.start()
    server = AgentServer(agent, grace=30)
    await server.start()
    try:
        client = AgentClient(socket_path(bob.home))
        opened = await asyncio.to_thread(client.open, capsule)
        assert opened.length == size

        def slow_read() -> int:
            done = 0
            for piece in opened.chunks(size=256 << 10):
                done += len(piece)
                time.sleep(0.05)
            return done

        reading = asyncio.ensure_future(asyncio.to_thread(slow_read))
        await asyncio.sleep(0.2)
        assert not reading.done()  # in flight
        await server.close()  # what serve() does on SIGTERM, in this order
        await agent.stop()
        assert await asyncio.wait_for(reading, 30) == size
        assert not socket_path(bob.home).exists()
        with pytest.raises(AgentNotRunningError):
            await asyncio.to_thread(client.status)
    finally:
        await server.close()
        await agent.stop()


async def test_events_resume_after_last_event_id_and_a_reader_may_leave_quietly(
    kubo: RunningNode, people: tuple[Person, Person, str], caplog: pytest.LogCaptureFixture
) -> None:
    _, bob, _ = people
    async with running_agent(bob.home, kubo.api_url) as agent:
        base = agent.bus.last_id
        for i in range(3):
            agent.bus.publish("tick", {"i": i})
        got = await asyncio.to_thread(sse_events, bob.home, 2, last_id=base + 1)
        assert [(e["id"], e["data"]["i"]) for e in got] == [(base + 2, 1), (base + 3, 2)]
        caplog.set_level(logging.WARNING)
        # A reader that leaves mid-stream: the next events find its connection gone.
        await asyncio.to_thread(sse_events, bob.home, 1, last_id=base)
        for i in range(50):
            agent.bus.publish("tick", {"i": i})
            await asyncio.sleep(0.01)
        await wait_for(lambda: agent.bus.subscribers == 0, 10, "the reader to be dropped")
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


# -- the parts ---------------------------------------------------------------------------


async def test_event_bus_resumes_from_the_ring_and_cuts_off_a_laggard() -> None:
    bus = EventBus(ring_size=4, queue_size=3)
    for i in range(6):
        bus.publish("tick", {"i": i})
    events, missed = bus.since(3)
    assert [e.id for e in events] == [4, 5, 6] and not missed
    events, missed = bus.since(1)  # ids 2 and 3 fell out of the ring
    assert [e.id for e in events] == [3, 4, 5, 6] and missed
    sub = bus.subscribe(last_id=5)
    assert (await anext(sub)).id == 6
    for i in range(4):  # more than the queue holds: the subscriber is cut off
        bus.publish("tick", {"i": i})
    assert sub.overflowed and bus.subscribers == 0
    with pytest.raises(SubscriptionOverflow):
        await anext(sub)
    assert bus.last_id == 10


async def test_the_socket_client_reads_lengths_chunks_and_notices_a_cut(tmp_path: Path) -> None:
    """The command line's small HTTP client against a real aiohttp server on a unix
    socket: a sized body, a chunked one, an error body, and a stream cut short."""

    async def sized(request: aiohttp.web.Request) -> aiohttp.web.Response:
        return aiohttp.web.json_response({"ok": True, "n": 1})

    async def chunked(request: aiohttp.web.Request) -> aiohttp.web.StreamResponse:
        response = aiohttp.web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for piece in (b'{"ok": ', b"true", b"}"):
            await response.write(piece)
        await response.write_eof()
        return response

    async def refused(request: aiohttp.web.Request) -> aiohttp.web.Response:
        error = {"error": {"code": "share_revoked", "message": "gone", "hint": "ask"}}
        return aiohttp.web.json_response(error, status=410)

    async def cut(request: aiohttp.web.Request) -> aiohttp.web.StreamResponse:
        response = aiohttp.web.StreamResponse()
        response.content_length = 1000
        await response.prepare(request)
        await response.write(b"x" * 400)
        assert request.transport is not None
        request.transport.close()
        return response

    app = aiohttp.web.Application()
    app.router.add_get("/v1/agent", sized)
    app.router.add_post("/v1/ops/chunked", chunked)
    app.router.add_post("/v1/ops/refused", refused)
    app.router.add_get("/v1/capsules/{id}/plaintext", cut)
    runner = aiohttp.web.AppRunner(app)
    await runner.setup()
    path = tmp_path / "agent.sock"
    await aiohttp.web.UnixSite(runner, str(path)).start()
    try:
        client = AgentClient(path)
        assert await asyncio.to_thread(client.status) == {"ok": True, "n": 1}
        assert await asyncio.to_thread(client.operation, "chunked", {}) == {"ok": True}
        with pytest.raises(ShareRevokedError, match="gone"):
            await asyncio.to_thread(client.operation, "refused", {})
        opened = await asyncio.to_thread(client.open, "bafy")
        assert opened.length == 1000
        with pytest.raises(StreamTruncatedError, match="400 of 1000"):
            await asyncio.to_thread(lambda: b"".join(opened.chunks()))
    finally:
        await runner.cleanup()
    with pytest.raises(AgentNotRunningError):
        await asyncio.to_thread(AgentClient(path).status)


def test_instance_lock_names_the_holder_and_survives_a_stale_file(tmp_path: Path) -> None:
    (tmp_path / "agent.lock").write_text("99999999\n")  # left by an agent that died
    first = InstanceLock(tmp_path)
    first.acquire()
    assert holder(tmp_path) == os.getpid()
    # flock is per open file: a second lock object, as another process would be, is refused.
    with pytest.raises(AgentRunningError, match=f"pid {os.getpid()}"):
        InstanceLock(tmp_path).acquire()
    first.release()
    assert holder(tmp_path) is None and not (tmp_path / "agent.lock").exists()


def test_the_command_table_lists_every_command_and_help_loads_no_module() -> None:
    every = build_parser("*")
    sub = next(a for a in every._actions if isinstance(a, __import__("argparse")._SubParsersAction))
    assert set(sub.choices) == set(COMMANDS), "add the missing commands to cli/main.py COMMANDS"
    code = (
        "import sys\nfrom ipfs_share.cli.main import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "sys.stderr.write(repr(sorted(m for m in sys.modules if m.startswith('ipfs_share.cli.'))))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    assert "ipfs_share.cli.share" not in done.stderr.decode()
    for name in COMMANDS:
        assert name in done.stdout.decode()
