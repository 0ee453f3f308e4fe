"""The command line's side of the agent's socket: stdlib only.

A command that finds an agent for its home hands it the whole operation over
``<home>/agent.sock`` (HTTP/1.1 over a unix socket, with ``http.client``) instead of
opening the home, connecting to the node and unlocking keys itself. This module imports
no aiohttp, no nacl and none of the services, so ``ipfs-share open`` through the agent
starts in a few tens of milliseconds.

>>> from pathlib import Path
>>> AgentClient.find(Path("/nonexistent")) is None
True
"""

from __future__ import annotations

import base64
import http.client
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


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: Path, timeout: float | None) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = str(path)

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(CONNECT_TIMEOUT)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        sock.settimeout(self.timeout)
        self.sock = sock


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
    response: http.client.HTTPResponse

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
        except (http.client.IncompleteRead, OSError):
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
    ) -> http.client.HTTPResponse:
        conn = _UnixConnection(self.path, self.timeout)
        try:
            conn.request(method, target, body=body, headers=dict(headers or {}))
            return conn.getresponse()
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            conn.close()
            raise AgentNotRunningError(
                f"no agent answers on {self.path} ({exc.strerror or exc})"
            ) from None
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
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
        length = int(h.get("Content-Length") or 0)
        offset = 0
        if response.status == 206:
            offset = int(str(h.get("Content-Range", "bytes 0-")).split()[1].split("-")[0])
        return Opened(
            capsule=h.get("X-Ipfs-Share-Capsule", capsule),
            content=h.get("X-Ipfs-Share-Content", ""),
            name=unquote(h.get("X-Ipfs-Share-Name", "")),
            media_type=h.get("Content-Type", "application/octet-stream"),
            size=int(h.get("X-Ipfs-Share-Size") or 0),
            allow_download=h.get("X-Ipfs-Share-Allow-Download") == "true",
            issuer=h.get("X-Ipfs-Share-Issuer") or None,
            issuer_name=unquote(h.get("X-Ipfs-Share-Issuer-Name", "")) or None,
            length=length,
            offset=offset,
            response=response,
        )


def _error_of(status: int, payload: bytes) -> IpfsShareError:
    """The typed error an agent's JSON error body describes."""
    try:
        error = json.loads(payload)["error"]
        code, message, hint = str(error["code"]), str(error["message"]), str(error["hint"])
    except (ValueError, KeyError, TypeError):
        return AgentError(f"the agent answered {status}: {payload[:80]!r}")
    return error_class(code)(message, hint=hint)
