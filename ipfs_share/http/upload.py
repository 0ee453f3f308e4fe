"""A request body of known length, handed from the event loop to the worker thread that
seals and sends it.

The library's put of a file runs on one worker thread of the storage: it reads a piece,
seals it and sends it to the node (both without the GIL), piece after piece, no piece
crossing the event loop. An HTTP upload comes in on the event loop instead, so
:class:`BodyPipe` joins the two: a task on the loop (:meth:`BodyPipe.pump`) takes the
body's pieces as aiohttp received them and queues them, and the worker thread reads them
out with :meth:`BodyPipe.readinto`, as it reads a file. The loop is asked for nothing a
piece: the thread waits on a condition the pump notifies, and the pump waits for room
only when ``bound`` bytes are queued, resumed when half of them are taken. So at most
``bound`` bytes wait between the two (plus aiohttp's own read buffer, which pauses the
socket when full): memory stays flat, whatever the body's size.

A body that ends early, or a client that goes away, ends the pipe with an error the
thread raises at its next read: the upload fails before its end, so the node stores no
file and no record is written. :func:`put_streamed` runs a put over a pipe and, if the
request is cancelled, ends the pipe first, so the thread never waits for a body that will
not come.

>>> BodyPipe.__name__
'BodyPipe'
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Awaitable, Callable
from typing import IO, TypeVar, cast

from aiohttp import StreamReader

from ipfs_share.errors import InvalidInputError

__all__ = ["PIPE_BOUND", "RECV_SIZE", "BodyCutError", "BodyPipe", "put_streamed", "read_large"]

# Queued between the loop and the thread at most (the thread takes 256 KiB a read).
PIPE_BOUND = 4 << 20
# The most one read of an upload's socket takes (see read_large).
RECV_SIZE = 1 << 20

_T = TypeVar("_T")


class BodyCutError(InvalidInputError):
    """The request body ended, or the client went away, before its Content-Length."""


class BodyPipe:
    """``length`` bytes of ``content`` for a reader on another thread (``readinto``,
    ``read``), fed by :meth:`pump` on the event loop."""

    def __init__(self, content: StreamReader, length: int, *, bound: int = PIPE_BOUND) -> None:
        self._content = content
        self._length = length
        self._bound = bound
        self._loop = asyncio.get_running_loop()
        self._cond = threading.Condition()
        self._chunks: deque[memoryview] = deque()
        self._held = 0  # bytes queued
        self._received = 0
        self._ended = False  # no more chunks will come
        self._error: BaseException | None = None
        self._room = asyncio.Event()
        self._waiting = False  # the pump waits for room (under the condition's lock)

    def __repr__(self) -> str:
        return f"BodyPipe(received={self._received}, length={self._length})"

    # -- the event loop's side ---------------------------------------------------------

    async def pump(self) -> None:
        """Move the body into the pipe until its end; a failure ends the pipe with it."""
        try:
            while self._received < self._length:
                chunk, _ = await self._content.readchunk()
                if not chunk:
                    if self._content.at_eof():
                        break
                    continue  # the end of an HTTP chunk, no data
                self._received += len(chunk)
                with self._cond:
                    self._chunks.append(memoryview(chunk))
                    self._held += len(chunk)
                    self._cond.notify()
                    full = self._waiting = self._held >= self._bound
                    if full:
                        self._room.clear()
                if full:
                    await self._room.wait()
        except BaseException as exc:
            self.abort(exc)
            raise
        if self._received < self._length:
            self.abort()
        else:
            self._end(None)

    def abort(self, cause: BaseException | None = None) -> None:
        """End the pipe short: the reader's next read raises :class:`BodyCutError`."""
        error = BodyCutError(
            f"expected a request body of {self._length} bytes, found {self._received}"
            + ("" if cause is None else f" ({type(cause).__name__})"),
            hint="send the whole body (the upload was cut or cancelled)",
        )
        self._end(error)

    def _end(self, error: BaseException | None) -> None:
        with self._cond:
            if self._ended:
                return
            self._ended, self._error = True, error
            self._cond.notify_all()

    # -- the worker thread's side ------------------------------------------------------

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readinto(self, buffer: bytearray | memoryview) -> int:
        """Fill ``buffer`` with what has come (waiting for the first byte); 0 at the end."""
        view = memoryview(buffer).cast("B")
        n = 0
        with self._cond:
            while not self._chunks and not self._ended:
                self._cond.wait()
            if self._error is not None:
                raise self._error
            while self._chunks and n < len(view):
                chunk = self._chunks[0]
                take = min(len(chunk), len(view) - n)
                view[n : n + take] = chunk[:take]
                n += take
                if take == len(chunk):
                    self._chunks.popleft()
                else:
                    self._chunks[0] = chunk[take:]
            self._held -= n
            if self._waiting and self._held <= self._bound // 2:
                self._waiting = False
                self._loop.call_soon_threadsafe(self._room.set)
        return n

    def read(self, size: int = -1) -> bytes:
        buffer = bytearray(size if size >= 0 else self._bound)
        return bytes(buffer[: self.readinto(buffer)])


def read_large(transport: asyncio.BaseTransport | None) -> None:
    """Have the event loop read ``transport``'s socket up to :data:`RECV_SIZE` at a time.

    asyncio's socket transports read at most 256 KiB a call (their ``max_size``); for an
    upload each read is a system call, a pass of the HTTP parser and a queued piece, so
    reads of 1 MiB spend a third less of the loop's CPU on a large body. A transport
    without that attribute is left as it is."""
    if transport is not None and isinstance(getattr(transport, "max_size", None), int):
        transport.max_size = max(transport.max_size, RECV_SIZE)  # type: ignore[attr-defined]


async def put_streamed(
    content: StreamReader, length: int, put: Callable[[IO[bytes]], Awaitable[_T]]
) -> _T:
    """``put`` of the body (``length`` bytes) read through a :class:`BodyPipe`.

    If this is cancelled (the request is), the pipe is ended before the put is cancelled:
    a worker thread blocked on a read wakes and fails, and is done before this returns."""
    pipe = BodyPipe(content, length)
    pump = asyncio.ensure_future(pipe.pump())
    work = asyncio.ensure_future(put(cast(IO[bytes], pipe)))
    try:
        await asyncio.wait([work])
        return work.result()
    finally:
        if not work.done():  # cancelled: wake the thread, then stop the put
            pipe.abort()
            work.cancel()
            await asyncio.wait([work])
        pump.cancel()
        await asyncio.wait([pump])
        if not pump.cancelled():
            pump.exception()  # how the body's read ended is in the put's error already
