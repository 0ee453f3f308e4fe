"""A small HTTP/1.1 client for the two Kubo calls where a client's own cost shows: short
answers in long runs (``block/get``) and big uploads (``add`` of a file).

A feed walk asks for one block at a time, thousands in a row, and each answer is a few
hundred bytes: there the client's own cost per request is what counts. aiohttp spends
about 0.5 ms of CPU on one such request here; this client, which writes one request line
and reads one status line, the headers and a chunked or sized body, about half of that.

An upload of a file (:meth:`KeepAliveClient.upload`) is written by one worker thread to a
blocking socket: the thread pulls each piece from a synchronous iterator (which reads and
seals a file, both without the GIL) and sends it with ``sendall``, so no piece crosses the
event loop and none is copied on the way but by the kernel; the producer may reuse its buffers,
since ``sendall`` has returned before the next piece is asked for. The answer is then read
on the event loop like any other. A long answer (a ``cat`` of many MiB) is read as a
stream (:meth:`KeepAliveClient.stream`): asked in HTTP/1.0, so Kubo sends the body as it
is, to the end of its own connection, and each piece the socket gives (up to 256 KiB) is
handed on as it came, with no copy and no parser in between. Everything else (JSON calls,
uploads from async sources, pubsub) stays on aiohttp.

It speaks only what Kubo's RPC answers with: ``Content-Length`` or chunked bodies, with
the ``X-Stream-Error`` trailer Kubo sends when an answer fails after its headers (turned
into an error here, where aiohttp drops it). A body larger than ``max_body`` is refused
before it is read. Connections are pooled; one that was cut, timed out or cancelled
mid-answer is closed, never reused. A request on a pooled connection the node closed
while it sat idle is sent again once on a new one (it is a read: safe to repeat).

>>> Answer(200, b"x", None, "application/vnd.ipld.raw").ok
True
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections import deque
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from urllib.parse import quote

__all__ = ["Answer", "KeepAliveClient", "ProtocolError", "Stream"]

_MAX_HEADERS = 64
_MAX_LINE = 8192
_MAX_UPLOAD_ANSWER = 1 << 20  # an add answers with a line of JSON per file and directory
_STREAM_HIGH = 4 << 20  # a stream stops reading from the socket with this much unread...
_STREAM_LOW = 1 << 20  # ... and reads again below this

Pieces = Iterator[bytes | bytearray | memoryview]


class ProtocolError(Exception):
    """The server's answer was not HTTP/1.1 as Kubo writes it (or was cut)."""


@dataclass(frozen=True, slots=True)
class Answer:
    """``status``, the whole ``body``, the ``X-Stream-Error`` trailer if one came, and the
    ``Content-Type``."""

    status: int
    body: bytes
    stream_error: str | None
    content_type: str

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.stream_error is None


_Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class KeepAliveClient:
    """POSTs to ``http://host:port/api/v0/...`` over at most ``pool`` idle connections."""

    def __init__(self, host: str, port: int, *, pool: int = 16, max_body: int) -> None:
        self.host, self.port = host, port
        self._authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self._idle: deque[_Conn] = deque()
        self._pool = pool
        self._max_body = max_body

    def __repr__(self) -> str:
        return f"KeepAliveClient({self._authority!r}, idle={len(self._idle)})"

    async def post(self, path: str, params: list[tuple[str, str]]) -> Answer:
        request = self._request(path, params)
        for attempt in (0, 1):
            reused = bool(self._idle)
            conn = self._idle.pop() if reused else await self._open()
            keep = False
            try:
                conn[1].write(request)
                answer, keep = await _read_answer(conn[0], self._max_body)
                return answer
            except (ConnectionError, asyncio.IncompleteReadError, ProtocolError) as exc:
                # A pooled connection the node closed while idle fails before any byte of
                # the answer: try once more on a fresh one. Anything else is the node's.
                if reused and attempt == 0 and _nothing_read(exc):
                    continue
                raise
            finally:
                if keep and len(self._idle) < self._pool:
                    self._idle.append(conn)
                else:
                    conn[1].close()
        raise AssertionError("unreachable")  # pragma: no cover

    async def post_many(self, path: str, calls: list[list[tuple[str, str]]]) -> list[Answer]:
        """``post`` for each of ``calls``, pipelined: the requests are written at once and
        the answers read in order (HTTP/1.1 pipelining; Kubo's server answers them one
        after the other). One write and a few reads for many short answers: the cost of a
        round trip per request goes, the server's own stays. A server that ends the
        connection between two answers (a limit on requests per connection) gets the rest
        on a new one; any other failure closes the connection and raises."""
        answers: list[Answer] = []
        fresh_failures = 0
        while len(answers) < len(calls):
            rest = calls[len(answers) :]
            reused = bool(self._idle)
            conn = self._idle.pop() if reused else await self._open()
            keep = False  # set once the line is clear again: every answer on it was read
            before = len(answers)
            try:
                conn[1].write(b"".join(self._request(path, params) for params in rest))
                for _ in rest:
                    answer, more = await _read_answer(conn[0], self._max_body)
                    answers.append(answer)
                    if not more:
                        break
                keep = more and len(answers) == len(calls)
            except (ConnectionError, asyncio.IncompleteReadError, ProtocolError) as exc:
                # Closed before an answer began: after answers on this connection (the
                # server's limit), or on a pooled one it dropped while idle, go on anew.
                if not _nothing_read(exc) or (not reused and len(answers) == before):
                    raise
                fresh_failures += len(answers) == before
                if fresh_failures > 1:
                    raise
            finally:  # cut or cancelled part way: answers may still be on the line
                if keep and len(self._idle) < self._pool:
                    self._idle.append(conn)
                else:
                    conn[1].close()
        return answers

    def _request(self, path: str, params: list[tuple[str, str]]) -> bytes:
        query = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in params)
        return (
            f"POST /api/v0/{path}?{query} HTTP/1.1\r\nHost: {self._authority}\r\n"
            "Content-Length: 0\r\n\r\n"
        ).encode("ascii")

    async def upload(
        self,
        path: str,
        params: list[tuple[str, str]],
        headers: dict[str, str],
        body: Pieces,
        *,
        length: int,
        timeout: float,
    ) -> Answer:
        """POST ``length`` bytes of ``body``, pulled and sent on a worker thread, on a new
        connection (closed after); the whole answer. A send blocked for ``timeout`` seconds,
        or an answer that takes as long, raises :class:`TimeoutError`; an error the body's
        iterator raises comes out as it is. If the server ends the connection before the
        body is sent, its answer is read all the same (it may say why) and returned; with
        no answer, the :class:`ConnectionError` of the send is raised.

        If the caller is cancelled, the connection is shut (so the thread stops at its next
        send) and the thread is awaited: once this returns or raises, ``body`` is not used.
        """
        query = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in params)
        lines = [f"POST /api/v0/{path}?{query} HTTP/1.1", f"Host: {self._authority}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        lines += [f"Content-Length: {length}", "Connection: close", "", ""]
        request = _Upload((self.host, self.port), timeout, "\r\n".join(lines).encode(), body)
        sending = asyncio.get_running_loop().run_in_executor(None, request.send)
        try:
            try:
                cut = await asyncio.shield(sending)
            except asyncio.CancelledError:
                request.cancel()
                await asyncio.wait([sending])
                if not sending.cancelled():
                    sending.exception()  # how the cut send ended is of no interest now
                raise
            assert request.sock is not None
            reader, writer = await asyncio.open_connection(sock=request.sock, limit=_MAX_LINE * 2)
            try:
                async with asyncio.timeout(timeout):
                    answer, _ = await _read_answer(reader, _MAX_UPLOAD_ANSWER)
            except (ProtocolError, asyncio.IncompleteReadError, ConnectionError):
                if cut is not None:  # no answer: how the send failed says more
                    raise cut from None
                raise
            finally:
                writer.close()
            return answer
        finally:
            if request.sock is not None:
                request.sock.close()

    async def stream(self, path: str, params: list[tuple[str, str]], *, timeout: float) -> Stream:
        """POST in HTTP/1.0 on a connection of its own; the answer's status and headers,
        and its body to read as it comes (:meth:`Stream.pieces`). Waiting ``timeout``
        seconds for the head, or for any next piece of the body, raises
        :class:`TimeoutError`. The caller closes the stream (``async with``)."""
        query = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in params)
        request = (
            f"POST /api/v0/{path}?{query} HTTP/1.0\r\nHost: {self._authority}\r\n"
            "Content-Length: 0\r\n\r\n"
        ).encode("ascii")
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(timeout):
            _, body = await loop.create_connection(_Body, self.host, self.port)
        try:
            body.transport.write(request)
            return await Stream.begin(body, timeout)
        except BaseException:
            body.transport.close()
            raise

    async def _open(self) -> _Conn:
        return await asyncio.open_connection(self.host, self.port, limit=_MAX_LINE * 2)

    def close(self) -> None:
        while self._idle:
            self._idle.pop()[1].close()


class _Upload:
    """One request written by a worker thread (:meth:`send`); :meth:`cancel` from the loop."""

    def __init__(self, address: tuple[str, int], timeout: float, head: bytes, body: Pieces):
        self.sock: socket.socket | None = None
        self._address, self._timeout, self._head, self._body = address, timeout, head, body
        self._lock = threading.Lock()
        self._cancelled = False

    def send(self) -> ConnectionError | None:
        """Connect and write the request. A connection the server ended early is returned
        (its answer may still be there to read); anything else is raised."""
        sock = socket.create_connection(self._address, self._timeout)
        # Every write is one whole piece (or the small head or tail): send each at once.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._lock:
            self.sock = sock
            if self._cancelled:
                return None
        try:
            sock.sendall(self._head)
            for piece in self._body:
                if self._cancelled:
                    return None
                sock.sendall(piece)
        except (BrokenPipeError, ConnectionResetError) as exc:
            return exc
        return None

    def cancel(self) -> None:
        with self._lock:
            self._cancelled = True
            if self.sock is not None:
                with contextlib.suppress(OSError):  # not connected yet, or closed
                    self.sock.shutdown(socket.SHUT_RDWR)  # wakes a blocked sendall


class _Body(asyncio.Protocol):
    """What the socket gave, in the pieces it gave them, until the server closed; reading
    pauses while more than ``_STREAM_HIGH`` bytes wait unread (so memory stays bounded)."""

    transport: asyncio.Transport

    def __init__(self) -> None:
        self.pieces: deque[bytes] = deque()
        self.waiting = 0  # bytes in pieces
        self.ended = False
        self.error: BaseException | None = None
        self._paused = False
        self._wake: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.pieces.append(data)
        self.waiting += len(data)
        if self.waiting > _STREAM_HIGH and not self._paused:
            self._paused = True
            self.transport.pause_reading()
        self._notify()

    def eof_received(self) -> bool:
        self.ended = True
        self._notify()
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.ended = True
        self.error = exc
        self._notify()

    def _notify(self) -> None:
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    async def next(self, timeout: float) -> bytes | None:
        """The next piece; None once the connection ended and every piece was taken."""
        while not self.pieces:
            if self.ended:
                if self.error is not None:
                    raise ConnectionResetError(str(self.error)) from self.error
                return None
            self._wake = asyncio.get_running_loop().create_future()
            async with asyncio.timeout(timeout):
                await self._wake
        piece = self.pieces.popleft()
        self.waiting -= len(piece)
        if self._paused and self.waiting < _STREAM_LOW:
            self._paused = False
            self.transport.resume_reading()
        return piece

    def push_back(self, piece: bytes) -> None:
        if piece:
            self.pieces.appendleft(piece)
            self.waiting += len(piece)


class Stream:
    """An answer read as it comes: ``status``, ``headers`` (names in lower case), and the
    body through :meth:`pieces` or :meth:`read`. An async context manager that closes the
    connection."""

    def __init__(self, body: _Body, status: int, headers: dict[str, str], timeout: float):
        self.status, self.headers = status, headers
        self._body, self._timeout = body, timeout
        length = headers.get("content-length")
        if length is not None and not length.isdigit():
            raise ProtocolError(f"expected a Content-Length, found {length[:20]!r}")
        self._left = None if length is None else int(length)  # None: to the end

    @classmethod
    async def begin(cls, body: _Body, timeout: float) -> Stream:
        """Read the status line and the headers (at most ``2 * _MAX_LINE`` bytes)."""
        head = b""
        while (end := head.find(b"\r\n\r\n")) < 0:
            if len(head) > _MAX_LINE * 2:
                raise ProtocolError(f"expected headers of at most {_MAX_LINE * 2} bytes")
            piece = await body.next(timeout)
            if piece is None:
                raise ProtocolError("the connection closed")
            head += piece
        body.push_back(head[end + 4 :])
        status_line, *lines = head[:end].split(b"\r\n")
        parts = status_line.split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
            raise ProtocolError(f"expected an HTTP status line, found {status_line[:40]!r}")
        headers = _fields(lines)
        if "chunked" in headers.get("transfer-encoding", "").lower():
            raise ProtocolError("expected an HTTP/1.0 body, found a chunked one")
        return cls(body, int(parts[1]), headers, timeout)

    async def pieces(self) -> AsyncIterator[bytes]:
        """The body, in the pieces the socket gave (Content-Length, if sent, is kept to)."""
        while self._left is None or self._left > 0:
            piece = await self._body.next(self._timeout)
            if piece is None:
                if self._left:
                    raise asyncio.IncompleteReadError(b"", self._left)
                return
            if self._left is not None:
                if len(piece) > self._left:
                    raise ProtocolError("the server sent more than its Content-Length")
                self._left -= len(piece)
            yield piece

    async def read(self, limit: int) -> bytes:
        """The whole body (an error's message), refused past ``limit`` bytes."""
        got = bytearray()
        async for piece in self.pieces():
            got += piece
            if len(got) > limit:
                raise ProtocolError(f"expected at most {limit} bytes, found more")
        return bytes(got)

    def close(self) -> None:
        self._body.transport.close()

    async def __aenter__(self) -> Stream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


def _nothing_read(exc: BaseException) -> bool:
    if isinstance(exc, asyncio.IncompleteReadError):
        return not exc.partial
    return isinstance(exc, ConnectionError) or (
        isinstance(exc, ProtocolError) and str(exc) == "the connection closed"
    )


async def _line(reader: asyncio.StreamReader) -> bytes:
    try:
        line = await reader.readuntil(b"\r\n")
    except asyncio.LimitOverrunError as exc:
        raise ProtocolError(f"expected a line of at most {_MAX_LINE} bytes") from exc
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            raise ProtocolError("the connection closed") from exc
        raise
    if len(line) > _MAX_LINE:
        raise ProtocolError(f"expected a line of at most {_MAX_LINE} bytes")
    return line[:-2]


async def _head(reader: asyncio.StreamReader) -> tuple[bytes, dict[str, str]]:
    """The status line and the headers, read in one go (up to the blank line)."""
    try:
        block = await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError as exc:
        raise ProtocolError(f"expected headers of at most {_MAX_LINE * 2} bytes") from exc
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            raise ProtocolError("the connection closed") from exc
        raise
    status, *lines = block[:-4].split(b"\r\n")
    return status, _fields(lines)


async def _trailers(reader: asyncio.StreamReader) -> dict[str, str]:
    lines: list[bytes] = []
    for _ in range(_MAX_HEADERS + 1):
        line = await _line(reader)
        if not line:
            return _fields(lines)
        lines.append(line)
    raise ProtocolError(f"expected at most {_MAX_HEADERS} trailer lines")


def _fields(lines: list[bytes]) -> dict[str, str]:
    if len(lines) > _MAX_HEADERS:
        raise ProtocolError(f"expected at most {_MAX_HEADERS} header lines")
    found: dict[str, str] = {}
    for line in lines:
        name, sep, value = line.partition(b":")
        if not sep:
            raise ProtocolError(f"expected a header line, found {line[:40]!r}")
        found[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
    return found


async def _read_answer(reader: asyncio.StreamReader, max_body: int) -> tuple[Answer, bool]:
    """One answer; returns it and whether the connection may carry another."""
    status_line, headers = await _head(reader)
    parts = status_line.split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        raise ProtocolError(f"expected an HTTP status line, found {status_line[:40]!r}")
    status = int(parts[1])
    keep = parts[0] == b"HTTP/1.1" and headers.get("connection", "").lower() != "close"
    trailers: dict[str, str] = {}
    length = headers.get("content-length")
    if "chunked" in headers.get("transfer-encoding", "").lower():
        pieces: list[bytes] = []
        total = 0
        while True:
            size_text = (await _line(reader)).split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError as exc:
                raise ProtocolError(f"expected a chunk size, found {size_text[:20]!r}") from exc
            if size == 0:
                trailers = await _trailers(reader)
                break
            total += size
            if total > max_body:
                raise ProtocolError(f"expected at most {max_body} bytes, found more")
            pieces.append(await reader.readexactly(size))
            if await reader.readexactly(2) != b"\r\n":
                raise ProtocolError("expected CRLF after a chunk")
        body = b"".join(pieces)
    elif length is not None:
        if not length.isdigit() or int(length) > max_body:
            raise ProtocolError(f"expected a body of at most {max_body} bytes, found {length!r}")
        body = await reader.readexactly(int(length))
    else:  # the body runs to the end of the connection
        keep = False
        rest = bytearray()
        while piece := await reader.read(65536):
            rest += piece
            if len(rest) > max_body:
                raise ProtocolError(f"expected at most {max_body} bytes, found more")
        body = bytes(rest)
    error = trailers.get("x-stream-error") or None
    return Answer(status, body, error, headers.get("content-type", "")), keep
