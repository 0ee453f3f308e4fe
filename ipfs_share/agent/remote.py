"""The command line's side of the agent's socket: stdlib only, and little of it.

A command that finds an agent for its home hands it the whole operation over
``<home>/agent.sock`` instead of opening the home, connecting to the node and unlocking
keys itself. This module imports no aiohttp, no nacl and none of the services, so
``ipfs-share open`` through the agent starts in a few tens of milliseconds.

It speaks just enough HTTP/1.1 itself (one request per connection, ``Connection:
close``; a body by ``Content-Length``, or chunked): the standard library's
``http.client`` would bring ``ssl`` and the ``email`` package along, half of this path's
start-up, for a socket that is never TLS and headers that are never mail.

>>> from pathlib import Path
>>> AgentClient.find(Path("/nonexistent")) is None
True
"""

from __future__ import annotations

import base64
import json
import os
import socket
from collections.abc import Generator, Mapping
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import unquote, urlencode

from ipfs_share.agent.files import socket_path
from ipfs_share.errors import (
    AgentError,
    AgentNotRunningError,
    IpfsShareError,
    StreamTruncatedError,
    error_class,
)

__all__ = ["NO_AGENT_ENV", "AgentClient", "Opened", "agent_for"]

NO_AGENT_ENV = "IPFS_SHARE_NO_AGENT"  # set (to anything but "" or "0"): never delegate
CONNECT_TIMEOUT = 2.0
READ_SIZE = 1 << 20


def agent_for(home: Path) -> AgentClient | None:
    """The agent client for ``home``, unless none could be running (no socket) or the
    user said not to delegate (:data:`NO_AGENT_ENV`)."""
    if os.environ.get(NO_AGENT_ENV, "") not in ("", "0"):
        return None
    return AgentClient.find(home)


MAX_HEAD = 64 << 10  # a response head longer than this is no answer of the agent's


class Response:
    """One response: ``status``, ``headers`` (lower-case names), and the body through
    :meth:`read` (``Content-Length`` bytes, or chunked, or until the agent closes)."""

    def __init__(self, sock: socket.socket, status: int, headers: dict[str, str], rest: bytes):
        self._sock = sock
        self.status = status
        self.headers = headers
        self._buf = rest
        length = headers.get("content-length")
        self._left: int | None = int(length) if length and length.isdigit() else None
        self._chunked = "chunked" in headers.get("transfer-encoding", "").lower()

    def _recv(self) -> bytes:
        if self._buf:
            data, self._buf = self._buf, b""
            return data
        return self._sock.recv(READ_SIZE)

    def read(self, n: int | None = None) -> bytes:
        """Up to ``n`` more bytes of the body (None: all of it); b"" at its end."""
        if self._chunked:
            return self._read_chunked() if n is None or n else b""
        out = bytearray()
        while (n is None or len(out) < n) and self._left != 0:
            want = READ_SIZE if n is None else n - len(out)
            if self._left is not None:
                want = min(want, self._left)
            data = self._recv()
            if not data:
                break
            if len(data) > want:
                data, self._buf = data[:want], data[want:]
            out += data
            if self._left is not None:
                self._left -= len(data)
        return bytes(out)

    def _read_chunked(self) -> bytes:
        raw = self._buf
        self._buf = b""
        while not raw.endswith(b"\r\n0\r\n\r\n") and not raw.startswith(b"0\r\n"):
            data = self._sock.recv(READ_SIZE)
            if not data:
                break
            raw += data
        out = bytearray()
        while raw:
            size_line, _, raw = raw.partition(b"\r\n")
            size = int(size_line.split(b";")[0] or b"0", 16)
            if size == 0:
                break
            out += raw[:size]
            raw = raw[size + 2 :]
        self._chunked = False
        self._left = 0
        return bytes(out)

    def close(self) -> None:
        self._sock.close()


def _exchange(
    path: Path,
    method: str,
    target: str,
    body: bytes | None,
    headers: Mapping[str, str],
    timeout: float | None,
) -> Response:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(CONNECT_TIMEOUT)
        sock.connect(str(path))
        sock.settimeout(timeout)
        lines = [f"{method} {target} HTTP/1.1", "Host: localhost", "Connection: close"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        if body is not None or method == "POST":
            lines.append(f"Content-Length: {len(body or b'')}")
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b""))
        data = b""
        while b"\r\n\r\n" not in data:
            more = sock.recv(READ_SIZE)
            if not more or len(data) > MAX_HEAD:
                raise ConnectionError("the agent closed the connection before it answered")
            data += more
        head, _, rest = data.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            raise ConnectionError(f"expected an HTTP status line, found {status_line[:60]!r}")
        found: dict[str, str] = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            found[name.strip().lower()] = value.strip()
        return Response(sock, int(parts[1]), found, rest)
    except BaseException:
        sock.close()
        raise


class Opened(NamedTuple):
    """What the agent's open found, and the plaintext as it streams (:meth:`chunks`).
    (A NamedTuple: ``dataclasses`` would cost this fast path its import.)"""

    capsule: str
    content: str
    name: str
    media_type: str
    size: int
    allow_download: bool
    issuer: str | None
    issuer_name: str | None
    length: int  # the bytes this response carries (the range's length, or ``size``)
    offset: int
    response: Response

    def chunks(self, size: int = READ_SIZE) -> Generator[bytes, None, None]:
        """The body in pieces; :class:`StreamTruncatedError` if it ends short of
        ``length`` (the agent cut it: a later chunk failed its check)."""
        done = 0
        try:
            while done < self.length:
                piece = self.response.read(min(size, self.length - done))
                if not piece:
                    break
                done += len(piece)
                yield piece
        except OSError:
            pass
        finally:
            self.response.close()
        if done != self.length:
            raise StreamTruncatedError(
                f"the agent stopped after {done} of {self.length} bytes",
                hint="the agent's log says why (a chunk that failed its integrity check, "
                "or the node going away); retry",
            )

    def describe(self) -> dict[str, object]:
        return {
            "capsule": self.capsule,
            "content": self.content,
            "name": self.name,
            "media_type": self.media_type,
            "size": self.size,
            "allow_download": self.allow_download,
            "issuer": self.issuer,
            "issuer_name": self.issuer_name,
        }


class AgentClient:
    """Requests to the agent of one home. Each call opens its own connection."""

    def __init__(self, path: Path, *, timeout: float | None = None) -> None:
        self.path = path
        self.timeout = timeout

    @classmethod
    def find(cls, home: Path) -> AgentClient | None:
        path = socket_path(home)
        return cls(path) if path.exists() else None

    # -- plumbing -------------------------------------------------------------------------
    def _send(
        self,
        method: str,
        target: str,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        try:
            return _exchange(self.path, method, target, body, headers or {}, self.timeout)
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise AgentNotRunningError(
                f"no agent answers on {self.path} ({exc.strerror or exc})"
            ) from None
        except OSError as exc:
            raise AgentError(f"the agent on {self.path} did not answer: {exc}") from exc

    def _json(self, method: str, target: str, data: Any = None) -> dict[str, Any]:
        body = None if data is None else json.dumps(data).encode()
        headers = {"Content-Type": "application/json"} if body is not None else {}
        response = self._send(method, target, body, headers)
        try:
            payload = response.read()
        finally:
            response.close()
        if response.status >= 300:
            raise _error_of(response.status, payload)
        try:
            found = json.loads(payload)
        except ValueError:
            raise AgentError(f"expected JSON from the agent, found {payload[:60]!r}") from None
        if not isinstance(found, dict):
            raise AgentError("expected a JSON object from the agent")
        return found

    # -- calls ----------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        return self._json("GET", "/v1/agent")

    def unlock(
        self, identity: str | None, passphrase: bytes, seconds: float | None
    ) -> dict[str, Any]:
        data = {
            "identity": identity,
            "passphrase_b64": base64.b64encode(passphrase).decode(),
            "seconds": seconds,
        }
        return self._json("POST", "/v1/agent/unlock", data)

    def lock(self, identity: str | None) -> dict[str, Any]:
        return self._json("POST", "/v1/agent/lock", {"identity": identity})

    def reload(self) -> dict[str, Any]:
        return self._json("POST", "/v1/agent/reload", {})

    def republish(self) -> dict[str, Any]:
        return self._json("POST", "/v1/agent/republish", {})

    def operation(self, name: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """Run a delegated operation (:mod:`ipfs_share.agent.operations`) in the agent."""
        return self._json("POST", f"/v1/ops/{name}", dict(params))

    def open(
        self,
        capsule: str,
        *,
        as_: str | None = None,
        max_staleness: float | None = None,
        capability: bytes | None = None,
        save: bool = False,
        span: tuple[int, int | None] | None = None,
    ) -> Opened:
        """Open ``capsule`` in the agent; the plaintext streams from :meth:`Opened.chunks`.
        ``span`` is (offset, length or None for the rest)."""
        query = {k: v for k, v in (("as", as_), ("save", "1" if save else None)) if v}
        if max_staleness is not None:
            query["max_staleness"] = repr(float(max_staleness))
        headers = {}
        if capability is not None:
            headers["X-Ipfs-Share-Capability"] = base64.b64encode(capability).decode()
        if span is not None:
            offset, length = span
            end = "" if length is None else str(offset + length - 1)
            headers["Range"] = f"bytes={offset}-{end}"
        target = f"/v1/capsules/{capsule}/plaintext" + (f"?{urlencode(query)}" if query else "")
        response = self._send("GET", target, None, headers)
        if response.status >= 300:
            try:
                payload = response.read()
            finally:
                response.close()
            raise _error_of(response.status, payload)
        h = response.headers
        length = int(h.get("content-length") or 0)
        offset = 0 if span is None else span[0]
        return Opened(
            capsule=h.get("x-ipfs-share-capsule", capsule),
            content=h.get("x-ipfs-share-content", ""),
            name=unquote(h.get("x-ipfs-share-name", "")),
            media_type=h.get("content-type", "application/octet-stream"),
            size=int(h.get("x-ipfs-share-size") or 0),
            allow_download=h.get("x-ipfs-share-allow-download") == "true",
            issuer=h.get("x-ipfs-share-issuer") or None,
            issuer_name=unquote(h.get("x-ipfs-share-issuer-name", "")) or None,
            length=length,
            offset=offset,
            response=response,
        )


def _error_of(status: int, payload: bytes) -> IpfsShareError:
    """The typed error an agent's JSON error body describes."""
    try:
        error = json.loads(payload)["error"]
        code, message, hint = str(error["code"]), str(error["message"]), str(error["hint"])
        reason, subject = error.get("reason"), error.get("subject")
    except (ValueError, KeyError, TypeError, AttributeError):
        return AgentError(f"the agent answered {status}: {payload[:80]!r}")
    return error_class(code)(
        message,
        hint=hint,
        reason=reason if isinstance(reason, str) else None,
        subject=subject if isinstance(subject, str) else None,
    )
