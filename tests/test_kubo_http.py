"""The keep-alive client under block_get, against real Kubo and a real proxy in front of it
that tells lies in the HTTP framing (a trailer error, a cut body, a huge chunk, a closed
idle connection, silence)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest

from ipfs_share.errors import (
    IntegrityError,
    NodeRequestError,
    NodeTimeoutError,
    NotFoundError,
    StreamTruncatedError,
)
from ipfs_share.formats.cid import RAW, cid_for
from ipfs_share.node.ports import free_port
from ipfs_share.storage.kubo import KuboStorage


async def test_blocks_come_over_one_kept_alive_connection(kubo: Any) -> None:
    async with await KuboStorage.connect(kubo.api_url) as store:
        blocks = [os.urandom(100 + i) for i in range(40)]
        cids = [await store.block_put(b) for b in blocks]
        assert [await store.block_get(c) for c in cids] == blocks
        client = store._blocks
        assert client is not None and len(client._idle) == 1  # one connection, reused
        got = await asyncio.gather(*(store.block_get(c) for c in cids))
        assert got == blocks and 1 <= len(client._idle) <= 16


async def test_blocks_asked_for_together_come_pipelined(kubo: Any, liar: dict[str, Any]) -> None:
    async with await KuboStorage.connect(kubo.api_url) as direct:
        blocks = [os.urandom(100 + i) for i in range(150)]
        cids = [await direct.block_put(b) for b in blocks]
        missing = cid_for(RAW, os.urandom(32))  # refused in the middle of a pipeline
        got = await direct.block_get_local([*cids[:70], missing, *cids[70:]])
        assert got == dict(zip(cids, blocks, strict=True))
        assert direct._blocks is not None and len(direct._blocks._idle) == 1  # one line
    # The proxy ends a connection after 100 requests (as proxies with a limit do), on
    # the boundary between two answers: the rest go on a new connection.
    async with KuboStorage(liar["url"]) as store:
        assert await store.block_get_local(cids) == dict(zip(cids, blocks, strict=True))
        assert liar["conns"] == 2
        assert await store.block_get(cids[0]) == blocks[0]


@pytest.mark.parametrize(
    ("mode", "error"),
    [("cut", StreamTruncatedError), ("other-bytes", IntegrityError)],
)
async def test_a_lie_in_a_pipeline_fails_it_and_its_connection_is_dropped(
    kubo: Any, liar: dict[str, Any], mode: str, error: type[Exception]
) -> None:
    cid, data = await _stored(kubo)
    liar["mode"] = mode
    async with KuboStorage(liar["url"]) as store:
        with pytest.raises(error):
            await store.block_get_local([cid, cid])
        liar["mode"] = "honest"
        assert await store.block_get_local([cid]) == {cid: data}
        assert liar["conns"] == (1 if mode == "other-bytes" else 2)  # framing lies: a new one


async def test_a_pipeline_cut_by_its_deadline_leaves_no_connection_behind(
    kubo: Any, liar: dict[str, Any]
) -> None:
    cid, data = await _stored(kubo)
    liar["mode"] = "silent"
    async with KuboStorage(liar["url"], timeout=0.5) as store:
        with pytest.raises(NodeTimeoutError):
            await store.block_get_local([cid, cid, cid])
        assert store._blocks is not None and not store._blocks._idle  # answers may follow
        liar["mode"] = "honest"
        assert await store.block_get_local([cid, cid]) == {cid: data}


async def test_kubo_errors_keep_their_types(kubo: Any) -> None:
    async with await KuboStorage.connect(kubo.api_url) as store:
        with pytest.raises(NotFoundError, match="block/get"):
            await store.block_get(cid_for(RAW, os.urandom(32)), offline=True)
        data = os.urandom(64)  # the connection that carried the error carries the next read
        assert await store.block_get(await store.block_put(data)) == data


@pytest.fixture
async def liar(kubo: Any) -> AsyncIterator[dict[str, Any]]:
    """A raw TCP server in front of the real node: it reads one request head, asks the real
    node the same thing, and writes the answer back framed as ``liar["mode"]`` says."""
    port = free_port()
    state: dict[str, Any] = {"url": f"http://127.0.0.1:{port}", "mode": "honest", "conns": 0}
    session = aiohttp.ClientSession()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        state["conns"] += 1
        try:
            for _ in range(100):  # requests on this connection
                head = await reader.readuntil(b"\r\n\r\n")
                target = head.split(b" ", 2)[1].decode()
                async with session.post(kubo.api_url + target) as upstream:
                    body = await upstream.read()
                mode = state["mode"]
                if not target.startswith(state.get("only", "/")):
                    mode = "honest"  # lies told only to the requests named
                if mode == "silent":
                    await asyncio.sleep(30)
                    return
                frame = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                if mode == "trailer":
                    frame += b"%x\r\n%s\r\n0\r\nX-Stream-Error: disk on fire\r\n\r\n" % (
                        len(body),
                        body,
                    )
                elif mode == "cut":
                    frame += b"%x\r\n%s" % (len(body), body[: len(body) // 2])
                elif mode == "huge":
                    frame += b"7fffffff\r\n"
                elif mode == "other-bytes":
                    frame += b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), bytes(len(body)))
                else:
                    frame += b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
                writer.write(frame)
                await writer.drain()
                if mode in ("cut", "huge", "close-idle"):
                    return  # the connection ends here (after one honest answer for close-idle)
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", port)
    try:
        yield state
    finally:
        server.close()
        await server.wait_closed()
        await session.close()


async def _stored(kubo: Any) -> tuple[str, bytes]:
    data = os.urandom(300)
    async with await KuboStorage.connect(kubo.api_url) as store:
        return await store.block_put(data), data


async def test_an_error_in_the_trailer_is_an_error(kubo: Any, liar: dict[str, Any]) -> None:
    cid, _ = await _stored(kubo)
    liar["mode"] = "trailer"
    async with KuboStorage(liar["url"]) as store:
        with pytest.raises(NodeRequestError, match="disk on fire"):
            await store.block_get(cid)


@pytest.mark.parametrize(
    ("mode", "error"),
    [("cut", StreamTruncatedError), ("huge", NodeRequestError), ("other-bytes", IntegrityError)],
)
async def test_a_lying_answer_is_refused_and_its_connection_dropped(
    kubo: Any, liar: dict[str, Any], mode: str, error: type[Exception]
) -> None:
    cid, data = await _stored(kubo)
    liar["mode"] = mode
    async with KuboStorage(liar["url"]) as store:
        with pytest.raises(error):
            await store.block_get(cid)
        assert store._blocks is not None
        liar["mode"] = "honest"
        assert await store.block_get(cid) == data
        if mode != "other-bytes":  # a framing lie closes the connection: a new one follows
            assert liar["conns"] == 2


async def test_a_connection_the_node_closed_while_idle_is_replaced(
    kubo: Any, liar: dict[str, Any]
) -> None:
    cid, data = await _stored(kubo)
    liar["mode"] = "close-idle"
    async with KuboStorage(liar["url"]) as store:
        assert await store.block_get(cid) == data
        await asyncio.sleep(0.1)  # the server has closed the pooled connection by now
        assert await store.block_get(cid) == data
    assert liar["conns"] == 2


async def test_a_node_that_goes_silent_times_out(kubo: Any, liar: dict[str, Any]) -> None:
    cid, data = await _stored(kubo)
    liar["mode"] = "silent"
    async with KuboStorage(liar["url"], timeout=0.5) as store:
        with pytest.raises(NodeTimeoutError):
            await store.block_get(cid)
        assert store._blocks is not None and not store._blocks._idle  # not reused
        liar["mode"] = "honest"
        assert await store.block_get(cid) == data


async def test_a_server_that_is_not_kubo_is_named(kubo: Any) -> None:
    from aiohttp import web

    async def not_kubo(request: web.Request) -> web.Response:
        return web.Response(status=404, text="nope")

    port = free_port()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", not_kubo)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        async with KuboStorage(f"http://127.0.0.1:{port}") as store:
            with pytest.raises(NodeRequestError, match="is not a Kubo RPC API"):
                await store.block_get(cid_for(RAW, b"x"))
    finally:
        await runner.cleanup()


# -- uploads: a file's add, written by a worker thread to a blocking socket --------------


@pytest.fixture
async def uploads() -> AsyncIterator[dict[str, Any]]:
    """A raw TCP server that takes an add the way ``uploads["mode"]`` says: ``trailer``
    reads the whole body and answers 200 with a CID and then an error in the trailer;
    ``refuse`` reads 64 KiB of the body, answers 500 as Kubo does and closes; ``stall``
    reads the request head and then nothing (the client's sends block)."""
    port = free_port()
    state: dict[str, Any] = {"url": f"http://127.0.0.1:{port}", "mode": "stall", "got": 0}

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length: ", 1)[1].split(b"\r\n")[0])
            if state["mode"] == "stall":
                await asyncio.sleep(30)
                return
            take = length if state["mode"] == "trailer" else 65536
            state["got"] = len(await reader.readexactly(take))
            if state["mode"] == "trailer":
                line = b'{"Name":"data","Hash":"%s"}\n' % cid_for(RAW, b"x").encode()
                writer.write(
                    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                    b"%x\r\n%s\r\n0\r\nX-Stream-Error: disk on fire\r\n\r\n" % (len(line), line)
                )
            else:
                body = b'{"Message":"disk full","Code":0,"Type":"error"}\n'
                writer.write(
                    b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
                )
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", port)
    try:
        yield state
    finally:
        server.close()
        await server.wait_closed()


class Pulled:
    """A blocking source of ``size`` bytes in 1 MiB pieces of one reused buffer, counting
    the pieces pulled and whether it was closed."""

    def __init__(self, size: int) -> None:
        self.size, self.pulled, self.closed = size, 0, False

    def __iter__(self) -> Iterator[memoryview]:
        buffer = memoryview(bytearray(1 << 20))
        try:
            for _ in range(self.size >> 20):
                self.pulled += 1
                yield buffer
        finally:
            self.closed = True


async def test_an_upload_error_in_the_trailer_is_an_error(uploads: dict[str, Any]) -> None:
    uploads["mode"] = "trailer"
    source = Pulled(4 << 20)
    async with KuboStorage(uploads["url"]) as store:
        with pytest.raises(NodeRequestError, match="disk on fire"):
            await store.add(iter(source), size=source.size, verify=False)
    assert uploads["got"] > source.size  # the whole body went, then the answer said no


async def test_a_node_that_refuses_mid_upload_is_heard(uploads: dict[str, Any]) -> None:
    uploads["mode"] = "refuse"
    source = Pulled(64 << 20)
    async with KuboStorage(uploads["url"]) as store:
        with pytest.raises(NodeRequestError, match="disk full"):
            await store.add(iter(source), size=source.size, verify=False)
    assert source.pulled < 64  # the node's answer stopped the upload, not the source's end


async def test_an_upload_the_node_stops_reading_times_out(uploads: dict[str, Any]) -> None:
    source = Pulled(256 << 20)
    async with KuboStorage(uploads["url"], timeout=0.5) as store:
        with pytest.raises(NodeTimeoutError, match="add"):
            await store.add(iter(source), size=source.size, verify=False)
    assert source.pulled < 256


async def test_a_cancelled_upload_stops_its_thread_before_returning(
    uploads: dict[str, Any],
) -> None:
    source = Pulled(256 << 20)
    async with KuboStorage(uploads["url"]) as store:
        task = asyncio.ensure_future(store.add(iter(source), size=source.size, verify=False))
        for _ in range(200):  # the thread is blocked in a send once the buffers are full
            await asyncio.sleep(0.01)
            if source.pulled >= 2:
                break
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 10)
        pulled = source.pulled
        await asyncio.sleep(0.2)
        assert source.pulled == pulled < 256  # no piece is pulled once add has returned


# -- cats: a long range as an HTTP/1.0 stream, a short one as one answer ------------------


@pytest.fixture
async def streamer(kubo: Any) -> AsyncIterator[dict[str, Any]]:
    """A raw TCP server in front of the real node for ``cat``: it asks the node the same
    thing and answers as ``streamer["mode"]`` says: ``honest`` (HTTP/1.0, the body to the
    end of the connection, as Kubo answers a 1.0 request), ``cut`` (half the body),
    ``more`` (the body and more), ``other-bytes`` (the right length, other bytes),
    ``refuse`` (a 500 with Kubo's JSON error), ``stall`` (the head, then silence).
    Anything but a cat passes through honestly, on keep-alive HTTP/1.1."""
    port = free_port()
    state: dict[str, Any] = {"url": f"http://127.0.0.1:{port}", "mode": "honest", "cats": []}
    session = aiohttp.ClientSession()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            for _ in range(1000):  # requests on this connection
                head = await reader.readuntil(b"\r\n\r\n")
                target = head.split(b" ", 2)[1].decode()
                async with session.post(kubo.api_url + target) as upstream:
                    body = await upstream.read()
                    status, kind = upstream.status, upstream.headers.get("Content-Type", "")
                if not target.startswith("/api/v0/cat"):
                    writer.write(
                        b"HTTP/1.1 %d X\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n%s"
                        % (status, kind.encode(), len(body), body)
                    )
                    await writer.drain()
                    continue
                state["cats"].append(head.split(b"\r\n", 1)[0].rsplit(b" ", 1)[1].decode())
                mode = state["mode"]
                if mode == "refuse":
                    error = b'{"Message":"disk on fire","Code":0,"Type":"error"}'
                    writer.write(b"HTTP/1.0 500 Internal Server Error\r\n\r\n" + error)
                    return
                writer.write(b"HTTP/1.0 200 OK\r\nX-Content-Length: %d\r\n\r\n" % len(body))
                if mode == "stall":
                    await writer.drain()
                    await asyncio.sleep(30)
                    return
                if mode == "cut":
                    body = body[: len(body) // 2]
                elif mode == "more":
                    body += b"x" * 1000
                elif mode == "other-bytes":
                    body = bytes(len(body))
                for i in range(0, len(body), 100_000):  # in pieces, as a network gives them
                    writer.write(body[i : i + 100_000])
                    await writer.drain()
                return  # an HTTP/1.0 body ends with its connection
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", port)
    try:
        yield state
    finally:
        server.close()
        await server.wait_closed()
        await session.close()


async def _stored_file(kubo: Any, size: int) -> tuple[str, bytes]:
    data = os.urandom(size)
    async with await KuboStorage.connect(kubo.api_url) as store:
        return (await store.add(data)).cid, data


async def _cat(store: KuboStorage, cid: str, **span: int) -> bytes:
    return b"".join([bytes(p) async for p in store.cat(cid, **span)])


async def test_a_long_cat_streams_in_http_1_0_and_a_short_one_is_one_answer(
    kubo: Any, streamer: dict[str, Any]
) -> None:
    cid, data = await _stored_file(kubo, 3 << 20)
    async with KuboStorage(streamer["url"]) as store:
        assert await _cat(store, cid) == data
        assert await _cat(store, cid, offset=1000, length=5000) == data[1000:6000]
        assert await _cat(store, cid, offset=(1 << 20) + 7) == data[(1 << 20) + 7 :]
    assert streamer["cats"] == ["HTTP/1.0", "HTTP/1.1", "HTTP/1.0"]


@pytest.mark.parametrize(
    ("mode", "error", "message"),
    [
        ("cut", StreamTruncatedError, "cat"),
        ("more", StreamTruncatedError, "more bytes"),
        ("other-bytes", IntegrityError, "do not hash"),
        ("refuse", NodeRequestError, "disk on fire"),
    ],
)
async def test_a_lying_stream_is_refused(
    kubo: Any, streamer: dict[str, Any], mode: str, error: type[Exception], message: str
) -> None:
    cid, data = await _stored_file(kubo, 3 << 20)
    streamer["mode"] = mode
    async with KuboStorage(streamer["url"]) as store:
        with pytest.raises(error, match=message):
            await _cat(store, cid)
        streamer["mode"] = "honest"
        assert await _cat(store, cid) == data


async def test_a_stream_that_goes_silent_times_out(kubo: Any, streamer: dict[str, Any]) -> None:
    cid, _ = await _stored_file(kubo, 3 << 20)
    streamer["mode"] = "stall"
    async with KuboStorage(streamer["url"], timeout=0.5) as store:
        with pytest.raises(NodeTimeoutError, match="cat"):
            await _cat(store, cid)


async def test_an_error_in_a_short_cats_trailer_is_an_error(
    kubo: Any, liar: dict[str, Any]
) -> None:
    data = os.urandom(300_000)  # a dag-pb root over two raw leaves: the leaves are one cat
    async with await KuboStorage.connect(kubo.api_url) as direct:
        cid = (await direct.add(data)).cid
        root = await direct.block_get(cid)
    liar["mode"] = "trailer"
    liar["only"] = "/api/v0/cat"
    async with KuboStorage(liar["url"]) as store:
        with pytest.raises(NodeRequestError, match="disk on fire"):
            await _cat(store, cid)
        assert await store.block_get(cid) == root
