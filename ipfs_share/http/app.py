"""The routes the command line needs from the agent (the full API builds on these).

====================================  ====================================================
route                                 what it does
====================================  ====================================================
``GET /v1/agent``                     the agent's status (``ipfs-share agent status``)
``POST /v1/agent/unlock``             unlock an identity: ``{"identity", "passphrase_b64",
                                      "seconds"}`` (unix socket only, never on TCP)
``POST /v1/agent/lock``               lock one identity (``{"identity"}``) or all
``POST /v1/agent/reload``             contacts changed: watch their mailboxes now
``POST /v1/agent/republish``          run the republish now (not waiting for the schedule)
``POST /v1/ops/{name}``               a delegated operation (:mod:`ipfs_share.agent.operations`)
``GET /v1/capsules/{id}/plaintext``   open a capsule: the plaintext, streamed; ``Range:
                                      bytes=A-B`` gives 206 with only those bytes fetched
``GET /v1/events``                    the event bus as Server-Sent Events (``Last-Event-ID``)
====================================  ====================================================

Query parameters of the open: ``as`` (the acting identity), ``max_staleness`` (seconds),
``save=1`` (the caller saves to a file: a view-only share refuses, as ``open -o`` does);
the capability token, if the share needs one, in ``X-Ipfs-Share-Capability`` (base64).
What the open found comes back in headers: ``X-Ipfs-Share-Name`` (percent-encoded UTF-8),
``X-Ipfs-Share-Size``, ``X-Ipfs-Share-Content``, ``X-Ipfs-Share-Capsule``,
``X-Ipfs-Share-Allow-Download``, ``X-Ipfs-Share-Issuer`` (who signed the capsule) and
``X-Ipfs-Share-Issuer-Name`` (this home's name for that did, percent-encoded; empty for a
stranger), and ``Content-Type`` (the file's media type). A failure
before the first byte is a JSON error; one after it (the rest of a large file failing its
integrity check) cuts the stream short of its ``Content-Length``, which the reader MUST
treat as an error.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import os
import re
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any
from urllib.parse import quote

from aiohttp import web

from ipfs_share.agent.core import Agent
from ipfs_share.agent.events import SubscriptionOverflow
from ipfs_share.agent.operations import OPERATIONS
from ipfs_share.errors import (
    DownloadNotAllowedError,
    IntegrityError,
    InvalidInputError,
    IpfsShareError,
    NotFoundError,
    RangeNotSatisfiableError,
)
from ipfs_share.http.auth import add_cors_headers, cors_middleware, token_middleware
from ipfs_share.http.errors import error_body, status_for
from ipfs_share.services.opened import OpenedFile

__all__ = [
    "AGENT",
    "CLOSING",
    "LISTENING",
    "acting",
    "body",
    "json_response",
    "make_app",
    "on_unix",
    "stream_opened",
]

log = logging.getLogger("ipfs_share.agent")

AGENT: web.AppKey[Agent] = web.AppKey("agent", Agent)
CLOSING: web.AppKey[asyncio.Event] = web.AppKey("closing", asyncio.Event)
UNIX: web.AppKey[bool] = web.AppKey("unix", bool)
LISTENING: web.AppKey[list[str]] = web.AppKey("listening", list)  # the HTTP API's URLs

RANGE_STEP = 4 << 20  # plaintext pieces of a streamed open (a multiple of the 64 KiB chunk)
# A streamed open keeps up to this much written and not yet sent, so it decrypts the next
# piece while the kernel sends the last one (asyncio's default pauses at 64 KiB).
WRITE_AHEAD = 2 * RANGE_STEP
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
SSE_KEEPALIVE = 15.0

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def make_app(
    agent: Agent,
    *,
    unix: bool = True,
    token: str | None = None,
    cors_origins: Sequence[str] = (),
) -> web.Application:
    """The app over ``agent``. ``unix``: it is served on the home's unix socket, the only
    place the unlock route exists (a TCP app has none: a passphrase never crosses TCP).
    ``token``: every request must carry it (:mod:`.auth`); ``cors_origins``: the browser
    origins let in (none: CORS is off)."""
    middlewares: list[Any] = []
    if cors_origins:
        middlewares.append(cors_middleware(cors_origins))
    middlewares.append(_errors)
    if token is not None:
        middlewares.append(token_middleware(token))
    middlewares.append(_same_user)
    app = web.Application(middlewares=middlewares, client_max_size=1 << 20)
    app[AGENT] = agent
    app[CLOSING] = asyncio.Event()
    app[UNIX] = unix
    if cors_origins:
        app.on_response_prepare.append(add_cors_headers)
    app.router.add_get("/v1/agent", _status)
    if unix:
        app.router.add_post("/v1/agent/unlock", _unlock)
        app.router.add_post("/v1/agent/lock", _lock)
    app.router.add_post("/v1/agent/reload", _reload)
    app.router.add_post("/v1/agent/republish", _republish)
    app.router.add_post("/v1/ops/{name}", _operation)
    app.router.add_get("/v1/capsules/{capsule}/plaintext", _open)
    app.router.add_get("/v1/events", _events)
    return app


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        text=json.dumps(data, sort_keys=True), status=status, content_type="application/json"
    )


def _error(exc: IpfsShareError) -> web.Response:
    body = error_body(exc.code, exc.message, exc.hint)
    for key in ("reason", "subject"):  # which situation: front ends pick their own hints
        if getattr(exc, key) is not None:
            body["error"][key] = getattr(exc, key)
    return _json(body, status_for(exc))


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except IpfsShareError as exc:
        return _error(exc)
    except web.HTTPException as exc:
        return _json(
            error_body("not_found" if exc.status == 404 else "invalid_input", exc.reason, ""),
            exc.status,
        )
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception as exc:
        log.exception("request %s %s failed", request.method, request.path)
        return _json(
            error_body(
                "internal_error",
                f"internal error: {type(exc).__name__}",
                "this is a bug in ipfs-share; the agent's log has the traceback",
            ),
            500,
        )


@web.middleware
async def _same_user(request: web.Request, handler: Handler) -> web.StreamResponse:
    """On the unix socket, the peer must run as the agent's own user (the socket is 0600
    in a 0700 home already; this holds even if someone loosens those)."""
    if request.app[UNIX]:
        sock = request.transport.get_extra_info("socket") if request.transport else None
        peer_uid = _peer_uid(sock)
        if peer_uid is not None and peer_uid != os.getuid():
            return _json(
                error_body("agent_error", "only the home's owner may use the agent", ""), 403
            )
    return await handler(request)


def _peer_uid(sock: socket.socket | None) -> int | None:
    if sock is None or sock.family != socket.AF_UNIX or not hasattr(socket, "SO_PEERCRED"):
        return None
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return int(uid)


def acting(request: web.Request) -> str | None:
    """The identity a request acts as: the ``X-Ipfs-Share-As`` header, else the ``as``
    query parameter, else None (the home's default identity)."""
    return request.headers.get("X-Ipfs-Share-As") or request.query.get("as") or None


async def _body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        data = await request.json()
    except ValueError:
        raise InvalidInputError("expected a JSON object as the request body") from None
    if not isinstance(data, dict):
        raise InvalidInputError(f"expected a JSON object, found {type(data).__name__}")
    return data


body = _body
json_response = _json


def _on_unix(request: web.Request) -> bool:
    sock = request.transport.get_extra_info("socket") if request.transport else None
    return sock is not None and sock.family == socket.AF_UNIX


on_unix = _on_unix


# -- the agent -----------------------------------------------------------------------------


async def _status(request: web.Request) -> web.Response:
    return _json({**request.app[AGENT].status(), "http": request.app.get(LISTENING, [])})


async def _unlock(request: web.Request) -> web.Response:
    if not _on_unix(request):  # registered on the unix app only; checked again here
        raise NotFoundError("no such route")
    agent = request.app[AGENT]
    body = await _body(request)
    identity = body.get("identity")
    seconds = body.get("seconds")
    if identity is not None and not isinstance(identity, str):
        raise InvalidInputError("expected 'identity' to be a name or a did")
    if seconds is not None and (type(seconds) not in (int, float) or seconds <= 0):
        raise InvalidInputError(f"expected 'seconds' > 0, found {seconds!r:.20}")
    try:
        passphrase = base64.b64decode(str(body.get("passphrase_b64", "")), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInputError("expected 'passphrase_b64' in base64") from None
    done = await agent.keys.unlock(identity, passphrase or None, seconds)
    return _json({"unlocked": done.to_json()})


async def _lock(request: web.Request) -> web.Response:
    if not _on_unix(request):
        raise NotFoundError("no such route")
    body = await _body(request)
    identity = body.get("identity")
    if identity is not None and not isinstance(identity, str):
        raise InvalidInputError("expected 'identity' to be a name or a did")
    return _json({"locked": request.app[AGENT].keys.lock(identity)})


async def _reload(request: web.Request) -> web.Response:
    request.app[AGENT].reconcile()
    return _json({"ok": True})


async def _republish(request: web.Request) -> web.Response:
    request.app[AGENT].schedule.run_now()
    return _json({"ok": True, "started": True})


# -- operations ----------------------------------------------------------------------------


async def _operation(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    op = OPERATIONS.get(name)
    if op is None:
        raise NotFoundError(f"expected an operation in {sorted(OPERATIONS)}, found {name!r:.40}")
    agent = request.app[AGENT]
    result = await op(agent.mesh, await _body(request))
    if name in ("share", "send"):
        agent.announcer.poke()  # queued capsules: announce without waiting for the scan
    if name == "inbox":
        agent.reconcile()
    return _json(result)


# -- open ----------------------------------------------------------------------------------


async def _open(request: web.Request) -> web.StreamResponse:
    agent = request.app[AGENT]
    q = request.query
    max_staleness = _number(q.get("max_staleness"), "max_staleness")
    token = _capability(request.headers.get("X-Ipfs-Share-Capability"))
    opened = await agent.mesh.share.open_capsule(
        request.match_info["capsule"],
        as_=acting(request),
        capability=token,
        max_staleness=max_staleness,
    )
    if q.get("save") == "1" and not opened.allow_download:
        raise DownloadNotAllowedError(
            f"the owner shared {opened.name or opened.capsule} for viewing only; not saved",
            hint="read it without -o (to a pager or a pipe); this is advice to honest "
            "clients, which a modified client can ignore",
        )
    return await stream_opened(request, opened)


async def stream_opened(request: web.Request, opened: OpenedFile) -> web.StreamResponse:
    """The plaintext of ``opened`` as the response: whole (200), or the ``Range`` asked
    for (206; only the chunks that hold it are fetched), or 416 for a range that starts
    past the end."""
    try:
        span = _range(request.headers.get("Range"), opened.size)
    except RangeNotSatisfiableError as exc:
        refused = _error(exc)
        refused.headers["Content-Range"] = f"bytes */{opened.size}"
        return refused
    headers = {
        "Content-Type": opened.media_type or "application/octet-stream",
        "X-Ipfs-Share-Name": quote(opened.name, safe=""),
        "X-Ipfs-Share-Size": str(opened.size),
        "X-Ipfs-Share-Content": opened.cid,
        "X-Ipfs-Share-Capsule": opened.capsule or "",
        "X-Ipfs-Share-Allow-Download": "true" if opened.allow_download else "false",
        "X-Ipfs-Share-Issuer": opened.issuer or "",
        "X-Ipfs-Share-Issuer-Name": quote(opened.issuer_name or "", safe=""),
        "Accept-Ranges": "bytes",
    }
    if not opened.allow_download:
        headers["Content-Disposition"] = "inline"  # view-only: advice to honest clients
    pieces: AsyncIterator[bytes] | AsyncIterator[bytearray]
    if span is None:
        offset, length, status = 0, opened.size, 200
        pieces = aiter(opened)
    else:
        offset, length = span
        status = 206
        headers["Content-Range"] = f"bytes {offset}-{offset + length - 1}/{opened.size}"
        pieces = opened.iter_range(offset, length, step=RANGE_STEP)
    # The first piece before the headers: a small file's whole open (and most failures)
    # then come back as a status, not as a cut stream.
    first: bytes | bytearray = await anext(pieces, b"")
    if len(first) == length:
        # All of it (a small file): the reader runs to its end (its final check) and the
        # headers and body go out in one write.
        async for extra in pieces:
            if extra:
                raise IntegrityError(f"the file {opened.cid} holds more than its {length} bytes")
        return web.Response(body=first, status=status, headers=headers)
    response = web.StreamResponse(status=status, headers=headers)
    response.content_length = length
    if request.transport is not None:
        request.transport.set_write_buffer_limits(high=WRITE_AHEAD)
    await response.prepare(request)
    try:
        if first:
            await response.write(first)
        async for piece in pieces:
            await response.write(piece)
    except ConnectionResetError:
        return response  # the reader went away: nothing to tell it
    except IpfsShareError as exc:
        # Past the headers: cut the stream short of its length (the reader must treat a
        # short body as an error); nothing unauthenticated was written.
        log.warning("open of %s failed mid-stream: %s", opened.capsule, exc.message)
        if request.transport is not None:
            request.transport.close()
        return response
    await response.write_eof()
    return response


def _number(text: str | None, name: str) -> float | None:
    if text is None or text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        raise InvalidInputError(f"expected {name} in seconds, found {text!r:.20}") from None
    if value < 0:
        raise InvalidInputError(f"expected {name} >= 0, found {value}")
    return value


def _capability(text: str | None) -> bytes | None:
    if not text:
        return None
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInputError("expected the capability token in base64") from None


def _range(header: str | None, size: int) -> tuple[int, int] | None:
    """(offset, length) of a ``bytes=A-B``, ``bytes=A-`` or ``bytes=-N`` range within
    ``size``; :class:`RangeNotSatisfiableError` (416) for one that holds no byte of it.

    >>> _range("bytes=0-9", 100), _range("bytes=95-", 100), _range("bytes=-10", 100)
    ((0, 10), (95, 5), (90, 10))
    >>> _range("bytes=90-200", 100), _range(None, 100)
    ((90, 10), None)
    """
    if header is None:
        return None
    m = _RANGE.match(header.strip())
    if m is None or not (m[1] or m[2]):
        raise InvalidInputError(
            f"expected a Range of bytes=A-B, bytes=A- or bytes=-N, found {header!r:.40}"
        )
    if not m[1]:  # bytes=-N: the last N bytes
        n = min(int(m[2]), size)
        if n == 0:
            raise RangeNotSatisfiableError(
                f"expected a suffix range of the {size}-byte file, found {header!r:.40}"
            )
        return size - n, n
    start = int(m[1])
    if start >= size:
        raise RangeNotSatisfiableError(
            f"expected a range that starts within the {size}-byte file, found {start}"
        )
    end = size - 1 if not m[2] else min(int(m[2]), size - 1)
    if end < start:
        raise InvalidInputError(f"expected the range's end >= its start ({start}), found {end}")
    return start, end - start + 1


# -- events --------------------------------------------------------------------------------


async def _events(request: web.Request) -> web.StreamResponse:
    """The bus as Server-Sent Events: ``id:``, ``event:``, ``data:`` (JSON) per event; a
    ``Last-Event-ID`` header (or ``?last_id=``) resumes after that id, and an ``event:
    missed`` says the ring no longer held all of them."""
    agent = request.app[AGENT]
    closing = request.app[CLOSING]
    last = request.headers.get("Last-Event-ID") or request.query.get("last_id")
    last_id = int(last) if last is not None and last.isdigit() else None
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    await response.prepare(request)
    events = agent.bus.subscribe(last_id)
    nxt = asyncio.ensure_future(anext(events))
    stop = asyncio.ensure_future(closing.wait())
    try:
        if events.missed:
            await response.write(b"event: missed\ndata: {}\n\n")
        while True:
            done, _ = await asyncio.wait(
                {nxt, stop}, timeout=SSE_KEEPALIVE, return_when=asyncio.FIRST_COMPLETED
            )
            if stop in done:
                break
            if nxt not in done:
                await response.write(b": keep-alive\n\n")
                continue
            try:
                event = nxt.result()
            except SubscriptionOverflow:
                break  # fell behind: the client reconnects with its Last-Event-ID
            data = json.dumps(event.data, sort_keys=True)
            frame = f"id: {event.id}\nevent: {event.type}\ndata: {data}\n\n"
            await response.write(frame.encode())
            nxt = asyncio.ensure_future(anext(events))
    except ConnectionResetError:
        pass  # the subscriber went away (it resumes with its Last-Event-ID)
    finally:
        nxt.cancel()
        stop.cancel()
        events.close()
    return response
