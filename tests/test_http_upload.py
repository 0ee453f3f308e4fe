"""An HTTP upload cut short leaves nothing half-written: a client that goes away mid-body,
and a request cancelled (the server shutting down) while the worker thread that seals
and sends the body waits for more of it. Neither leaves a file record or a pin, and the
thread is done once the server is: nothing waits for a body that will not come. Driven
by a raw socket against a real agent and Kubo; the last test drives the pipe alone.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO

import aiohttp
import pytest
from agentkit import Person, person, running_agent
from aiohttp import StreamReader, web
from aiohttp.base_protocol import BaseProtocol

from ipfs_share.agent.files import ensure_token
from ipfs_share.http.api import make_api
from ipfs_share.http.upload import BodyCutError, put_streamed
from ipfs_share.node.daemon import RunningNode

LIMIT = aiohttp.ClientTimeout(total=60)
SIZE = 8 << 20


@pytest.fixture
async def alice(kubo: RunningNode, tmp_path: Path) -> AsyncIterator[Person]:
    found = await person(kubo.api_url, tmp_path / "alice", "alice")
    await found.mesh.close()
    yield found


async def pins(api: str) -> set[str]:
    async with (
        aiohttp.ClientSession(timeout=LIMIT) as http,
        http.post(f"{api}/api/v0/pin/ls", params={"type": "recursive"}) as r,
    ):
        return set((await r.json())["Keys"])


async def serve(app: web.Application) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]


async def start_upload(port: int, token: str, sent: int) -> asyncio.StreamWriter:
    """A put of SIZE bytes announced, ``sent`` of them written; the connection is left open."""
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        (
            f"POST /v1/files?name=cut.bin HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Authorization: Bearer {token}\r\nContent-Length: {SIZE}\r\n\r\n"
        ).encode()
    )
    writer.write(os.urandom(sent))
    await writer.drain()
    return writer


async def test_a_client_gone_mid_upload_leaves_no_file_and_no_pin(
    kubo: RunningNode, alice: Person
) -> None:
    async with running_agent(alice.home, kubo.api_url) as agent:
        token = ensure_token(agent.home)
        runner, port = await serve(make_api(agent, token=token))
        try:
            before = await pins(kubo.api_url)
            writer = await start_upload(port, token, 3 << 20)
            await asyncio.sleep(0.5)  # the worker thread is sealing and sending by now
            writer.transport.abort()  # the client goes away (a reset, not a clean end)
            headers = {"Authorization": f"Bearer {token}"}
            async with aiohttp.ClientSession(timeout=LIMIT) as http:
                # The agent goes on: a whole put after the cut one is stored as usual.
                async with http.post(
                    f"http://127.0.0.1:{port}/v1/files",
                    params={"name": "whole.bin"},
                    data=os.urandom(1 << 20),
                    headers=headers,
                ) as r:
                    assert r.status == 201, await r.text()
                    whole = (await r.json())["content"]
                await asyncio.sleep(1)  # had the cut put been taken whole, it would be by now
                async with http.get(f"http://127.0.0.1:{port}/v1/files", headers=headers) as r:
                    files = (await r.json())["files"]
            assert [f["name"] for f in files] == ["whole.bin"]
            assert await pins(kubo.api_url) == before | {whole}
        finally:
            await runner.cleanup()


async def test_an_upload_cancelled_while_the_thread_waits_stores_nothing(
    kubo: RunningNode, alice: Person
) -> None:
    async with running_agent(alice.home, kubo.api_url) as agent:
        token = ensure_token(agent.home)
        runner, port = await serve(make_api(agent, token=token))
        before = await pins(kubo.api_url)
        writer = await start_upload(port, token, 3 << 20)
        try:
            await asyncio.sleep(0.5)  # 3 MiB sealed and sent; the thread waits for more
            # The server shuts down: after its 1 s grace the request is cancelled. The
            # thread blocked on the body must wake and end, or this never returns.
            await asyncio.wait_for(runner.cleanup(), 30)
        finally:
            writer.close()
        assert agent.mesh.db.files.list() == []
        assert await pins(kubo.api_url) == before


async def test_a_put_cancelled_while_its_client_stays_wakes_the_waiting_thread() -> None:
    """The pipe alone, over aiohttp's own stream: the reader on a worker thread has taken
    what came and waits for more; the request is cancelled with its client still there
    (nothing ends the body). The pipe is ended first, so the thread fails and is done."""
    loop = asyncio.get_running_loop()
    ours, theirs = socket.socketpair()  # a connection for the stream to belong to
    transport, protocol = await loop.connect_accepted_socket(lambda: BaseProtocol(loop), ours)
    content = StreamReader(protocol, 1 << 16, loop=loop)
    content.feed_data(b"x" * 1000)
    taken: list[int] = []
    failed: list[BaseException] = []

    def read_all(body: IO[bytes]) -> None:  # as the storage's worker thread reads a file
        buffer = bytearray(4096)
        try:
            while n := body.readinto(buffer):  # type: ignore[attr-defined]
                taken.append(n)
        except BodyCutError as exc:
            failed.append(exc)

    async def put(body: IO[bytes]) -> None:
        # As the storage's upload does: a cancelled put still waits for its thread.
        thread = asyncio.ensure_future(asyncio.to_thread(read_all, body))
        try:
            await asyncio.shield(thread)
        finally:
            await asyncio.wait([thread])

    task = asyncio.ensure_future(put_streamed(content, 5000, put))
    for _ in range(200):
        if taken:
            break
        await asyncio.sleep(0.01)
    assert taken == [1000]
    await asyncio.sleep(0.1)  # the thread waits on the pipe now
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=10)
    transport.close()
    theirs.close()
    assert done, "the worker thread was left waiting for the body"
    assert task.cancelled()
    assert len(failed) == 1 and "expected a request body of 5000 bytes, found 1000" in str(
        failed[0]
    )
