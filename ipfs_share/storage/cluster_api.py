"""IPFS Cluster's REST API (``ipfs-cluster-service``, port 9094 by default), the calls
ipfs-share makes: add, pin, unpin, allocations, status, peers.

Given several peers' REST URLs, a call that cannot connect to one tries the next (the one
that answered is tried first next time); a call that reached a peer and got an answer is
never repeated elsewhere, because the answer is the cluster's, not the peer's. Errors
become ours here, in :func:`_translated` and :func:`_refusal`.

>>> ClusterAPI(["http://127.0.0.1:9094"])
ClusterAPI(['http://127.0.0.1:9094'])
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

import aiohttp

from ipfs_share.errors import (
    CidInvalidError,
    IpfsShareError,
    NodeRequestError,
    NodeUnreachableError,
    NotFoundError,
    ReplicationError,
    StreamTruncatedError,
)
from ipfs_share.node.discovery import multiaddr_to_url
from ipfs_share.storage.base import Placement

__all__ = ["CLUSTER_HINT", "PENDING", "ClusterAPI"]

_T = TypeVar("_T")

CLUSTER_HINT = (
    "start the cluster ('ipfs-share cluster up', or docker compose -f "
    "docker/cluster-compose.yml up -d), or pass the REST API of a running peer with "
    "--cluster URL / IPFS_SHARE_CLUSTER"
)

# Statuses in which an allocated peer may still get to "pinned" by itself: queued or
# pinning, or not yet aware of the pin or of its new allocations ("unpinned", "remote"
# until the shared state reaches it).
PENDING = frozenset({"pin_queued", "pinning", "queued", "unpinned", "undefined", "remote"})


def _message(body: bytes) -> str:
    try:
        doc = json.loads(body)
    except ValueError:
        return body.decode("utf-8", "replace").strip()[:300]
    if isinstance(doc, dict):
        return str(doc.get("message") or doc.get("Message") or doc)[:300]
    return str(doc)[:300]


def _refusal(status: int, message: str, what: str) -> IpfsShareError:
    """The cluster's error answer as our error type."""
    if "not enough peers to allocate" in message:
        return ReplicationError(f"{what}: the cluster cannot place the copies asked: {message}")
    if status == 404 or "not part of the pinset" in message:
        return NotFoundError(f"{what}: {message}")
    if status == 400 and "cid" in message.lower():
        return CidInvalidError(f"{what}: {message}")
    return NodeRequestError(
        f"{what}: the cluster answered {status}: {message}",
        hint="see the cluster peer's log ('ipfs-share cluster status' shows where it is)",
    )


async def _translated(what: str, url: str, call: Awaitable[_T]) -> _T:
    try:
        return await call
    except IpfsShareError:
        raise
    except aiohttp.ClientConnectorError as exc:
        raise NodeUnreachableError(
            f"{what}: no cluster peer answered at {url} ({exc})", hint=CLUSTER_HINT
        ) from exc
    except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError) as exc:
        raise StreamTruncatedError(f"{what}: the cluster closed the answer early ({exc})") from exc
    except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
        raise NodeRequestError(f"{what}: the cluster did not answer in time") from exc
    except aiohttp.ClientError as exc:
        raise NodeRequestError(f"{what}: {type(exc).__name__}: {exc}") from exc


class ClusterAPI:
    """A REST API client over one or more peers of the same cluster."""

    def __init__(self, urls: Sequence[str], *, timeout: float = 120.0) -> None:
        if not urls:
            raise NodeUnreachableError("no cluster REST API given", hint=CLUSTER_HINT)
        self.urls = [
            (u if u.startswith(("http://", "https://")) else multiaddr_to_url(u)).rstrip("/")
            for u in urls
        ]
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"ClusterAPI({self.urls!r})"

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            # trust_env=False: loopback requests must never go through an HTTP proxy.
            self._session = aiohttp.ClientSession(trust_env=False)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
        read: Callable[[aiohttp.ClientResponse], Awaitable[_T]],
        may_retry: Callable[[], bool] = lambda: True,
        timeout: float | None = None,
    ) -> _T:
        """One request, to the first peer that accepts the connection."""
        t = aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=timeout or self._timeout)
        last: NodeUnreachableError | None = None
        for url in list(self.urls):

            async def go(url: str = url) -> _T:
                async with self.session.request(
                    method, url + path, params=params, data=data, headers=headers, timeout=t
                ) as resp:
                    if resp.status >= 300:
                        raise _refusal(resp.status, _message(await resp.read()), path)
                    return await read(resp)

            try:
                result = await _translated(f"{method} {path}", url, go())
            except NodeUnreachableError as exc:
                last = exc
                if not may_retry():
                    raise
                continue
            if url != self.urls[0]:  # remember who answered
                self.urls.remove(url)
                self.urls.insert(0, url)
            return result
        assert last is not None
        raise last

    async def _json(self, method: str, path: str, **kw: Any) -> Any:
        async def read(resp: aiohttp.ClientResponse) -> Any:
            body = await resp.read()
            try:
                return json.loads(body) if body.strip() else None
            except ValueError as exc:
                raise NodeRequestError(f"{path}: expected JSON, found {body[:80]!r}") from exc

        return await self._call(method, path, read=read, **kw)

    async def _lines(self, path: str, params: Mapping[str, str] | None = None) -> list[Any]:
        """A streamed list: one JSON value a line (an error may come as the last line)."""

        async def read(resp: aiohttp.ClientResponse) -> list[Any]:
            out = []
            async for line in resp.content:
                if line.strip():
                    out.append(json.loads(line))
            return out

        return await self._call("GET", path, params=params, read=read)

    # -- the calls ---------------------------------------------------------------------------

    async def id(self) -> dict[str, Any]:
        doc = await self._json("GET", "/id", timeout=10)
        if not isinstance(doc, dict) or not doc.get("id"):
            raise NodeRequestError(f"/id: expected a cluster peer's identity, found {doc!r:.80}")
        return doc

    async def peers(self) -> list[dict[str, Any]]:
        return [p for p in await self._lines("/peers") if isinstance(p, dict)]

    async def add(
        self,
        body: AsyncIterator[bytes | bytearray | memoryview],
        headers: Mapping[str, str],
        params: Mapping[str, str],
        started: Callable[[], bool],
    ) -> dict[str, Any]:
        """POST /add with a multipart body; the root's AddedOutput. ``stream-channels``
        must be false in ``params``: the cluster then answers with a status code (500 on
        failure) instead of hiding a failure in a trailer."""
        doc = await self._json(
            "POST",
            "/add",
            params=params,
            data=body,
            headers=headers,
            may_retry=lambda: not started(),
        )
        if not isinstance(doc, list) or not doc or not isinstance(doc[-1], dict):
            raise StreamTruncatedError(f"/add: expected the added file, found {doc!r:.80}")
        return doc[-1]

    async def pin(
        self,
        cid: str,
        *,
        mode: str = "recursive",
        replication: int | None = None,
        allocations: Sequence[str] = (),
        name: str = "",
    ) -> dict[str, Any]:
        params: dict[str, str] = {"mode": mode}
        if replication is not None:
            params["replication-min"] = params["replication-max"] = str(replication)
        if allocations:
            params["user-allocations"] = ",".join(allocations)
        if name:
            params["name"] = name
        doc = await self._json("POST", f"/pins/{cid}", params=params)
        return doc if isinstance(doc, dict) else {}

    async def unpin(self, cid: str) -> bool:
        """Remove ``cid`` from the pinset; False if it was not in it."""
        try:
            await self._json("DELETE", f"/pins/{cid}")
        except NotFoundError:
            return False
        return True

    async def allocation(self, cid: str) -> dict[str, Any] | None:
        """The pin of ``cid`` in the shared state (its allocations, options), or None."""
        try:
            doc = await self._json("GET", f"/allocations/{cid}", timeout=30)
        except NotFoundError:
            return None
        return doc if isinstance(doc, dict) else None

    async def allocations(self) -> list[dict[str, Any]]:
        """Every pin in the shared state (type "pin")."""
        return [p for p in await self._lines("/allocations", {"filter": "pin"}) if p]

    async def status(self, cid: str) -> Placement:
        doc = await self._json("GET", f"/pins/{cid}", timeout=30)
        if not isinstance(doc, dict):
            raise NodeRequestError(f"/pins/{cid}: expected a status, found {doc!r:.80}")
        return Placement.of(doc)

    async def statuses(self, cids: Sequence[str]) -> list[Placement]:
        if not cids:
            return []
        docs = await self._lines("/pins", {"cids": ",".join(cids)})
        return [Placement.of(d) for d in docs if isinstance(d, dict) and d.get("cid")]
