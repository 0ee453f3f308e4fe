"""A client of the IPFS Pinning Service API (v1): ask a remote service to pin a CID.

The calls the spec defines, over aiohttp with a bearer token: ``POST /pins`` (a pin
request, with our node's multiaddrs as ``origins`` so the service can fetch from us),
``GET /pins/{requestid}`` (its status: queued, pinning, pinned or failed), ``GET /pins``
(a listing, filtered by CID and status), ``DELETE /pins/{requestid}``. :meth:`wait` polls a
request with exponential backoff, for a bounded time, until it is pinned or failed.

Errors become ours here: 401/403 is :class:`~ipfs_share.errors.PinServiceAuthError`, a
request that failed or did not finish in time is
:class:`~ipfs_share.errors.RemotePinFailedError`, any other refusal
:class:`~ipfs_share.errors.PinServiceError` carrying the service's ``reason``. The token
never appears in a repr, a message or a log.

>>> token = AccessToken("s3cret")
>>> token, str(PinningClient("https://pins.example/api/v1", token))
(AccessToken(***), "PinningClient('https://pins.example/api/v1')")
>>> PinningClient("http://pins.example", token)   # doctest: +ELLIPSIS
Traceback (most recent call last):
...
ipfs_share.errors.InvalidInputError: expected an https URL for a pinning service ...
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from ipfs_share.errors import (
    InvalidInputError,
    NodeUnreachableError,
    NotFoundError,
    PinServiceAuthError,
    PinServiceError,
    RemotePinFailedError,
)

__all__ = ["STATUSES", "AccessToken", "PinningClient", "RemotePin", "check_service_url"]

STATUSES = ("queued", "pinning", "pinned", "failed")
_MAX_TOKEN = 8192  # a JWT is a few hundred bytes; this bounds what we read and send


class AccessToken:
    """A pinning service's bearer token: a secret, so never shown.

    >>> AccessToken(" abc \\n").reveal()
    'abc'
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        value = value.strip()
        if not value or len(value) > _MAX_TOKEN or any(c.isspace() for c in value):
            raise InvalidInputError(
                f"expected an access token of 1 to {_MAX_TOKEN} characters without spaces, "
                f"found {'an empty one' if not value else f'{len(value)} characters'}",
                hint="give the token your pinning service issued, alone in the file",
            )
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "AccessToken(***)"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AccessToken):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(type(self))


def check_service_url(url: str) -> str:
    """The service's base URL, checked: http(s), no credentials in it, and https unless
    the host is this machine (the token goes with every request).

    >>> check_service_url("http://127.0.0.1:9097/")
    'http://127.0.0.1:9097'
    """
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInputError(
            f"expected a pinning service URL such as https://pins.example/api/v1, found "
            f"{url!r:.80}",
            hint="give the service's API endpoint, the part before /pins",
        )
    if parts.username or parts.password:
        raise InvalidInputError(
            "expected a URL without credentials, found a user name or password in it",
            hint="give the token with --token-file (or on stdin), never in the URL",
        )
    if parts.query or parts.fragment:
        raise InvalidInputError(
            f"expected a URL without query or fragment, found {url!r:.80}",
            hint="give the service's API endpoint alone; the token goes in --token-file",
        )
    if parts.scheme == "http" and not _loopback(parts.hostname):
        raise InvalidInputError(
            "expected an https URL for a pinning service (a token goes with every request), "
            f"found {url.strip()}",
            hint="use the service's https endpoint (plain http is for services on this machine)",
        )
    return url.strip().rstrip("/")


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class RemotePin:
    """A pin request's status as the service reports it (the spec's PinStatus)."""

    requestid: str
    status: str  # one of STATUSES
    cid: str
    name: str = ""
    created: str = ""
    delegates: tuple[str, ...] = ()
    info: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return {
            "requestid": self.requestid,
            "status": self.status,
            "cid": self.cid,
            "name": self.name,
            "created": self.created,
            "delegates": list(self.delegates),
            "info": dict(self.info),
        }

    @classmethod
    def of(cls, doc: Any) -> RemotePin:
        """Parse a PinStatus strictly enough to trust what we act on."""
        if not isinstance(doc, dict):
            raise PinServiceError(f"expected a pin status object, found {doc!r:.80}")
        pin = doc.get("pin")
        status = doc.get("status")
        requestid = doc.get("requestid")
        if not isinstance(pin, dict) or not isinstance(pin.get("cid"), str):
            raise PinServiceError(f"expected a pin status with pin.cid, found {doc!r:.120}")
        if status not in STATUSES or not isinstance(requestid, str) or not requestid:
            raise PinServiceError(
                f"expected a requestid and a status in {'/'.join(STATUSES)}, found "
                f"{requestid!r:.40} and {status!r:.20}"
            )
        info = doc.get("info") if isinstance(doc.get("info"), dict) else {}
        return cls(
            requestid=requestid,
            status=status,
            cid=pin["cid"],
            name=str(pin.get("name") or ""),
            created=str(doc.get("created") or ""),
            delegates=tuple(str(d) for d in doc.get("delegates") or () if isinstance(d, str)),
            info={str(k): str(v) for k, v in (info or {}).items()},
        )


def _reason(body: bytes) -> str:
    try:
        doc = json.loads(body)
        error = doc.get("error") if isinstance(doc, dict) else None
        if isinstance(error, dict) and error.get("reason"):
            details = f": {error['details']}" if error.get("details") else ""
            return f"{error['reason']}{details}"[:300]
    except ValueError:
        pass
    return body.decode("utf-8", "replace").strip()[:300] or "no reason given"


class PinningClient:
    """One pinning service: its base URL (the part before ``/pins``) and token."""

    def __init__(self, url: str, token: AccessToken, *, timeout: float = 30.0) -> None:
        self.url = check_service_url(url)
        self._token = token
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"PinningClient({self.url!r})"

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> PinningClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        expect_body: bool = True,
    ) -> Any:
        if self._session is None:
            self._session = aiohttp.ClientSession(trust_env=False)
        headers = {"Authorization": f"Bearer {self._token.reveal()}", "Accept": "application/json"}
        what = f"{method} {path}"
        timeout = aiohttp.ClientTimeout(total=self._timeout, sock_connect=10)
        try:
            async with self._session.request(
                method, self.url + path, params=params, json=body, headers=headers, timeout=timeout
            ) as resp:
                raw = await resp.read()
                status = resp.status
        except aiohttp.ClientConnectorError as exc:
            raise NodeUnreachableError(
                f"{what}: the pinning service at {self.url} did not answer ({exc.strerror})",
                hint="check the service is up and its URL ('ipfs-share pin remote ls')",
            ) from exc
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise PinServiceError(
                f"{what}: the pinning service at {self.url} failed: {type(exc).__name__}"
            ) from exc
        if status in (401, 403):
            raise PinServiceAuthError(
                f"{what}: the pinning service at {self.url} refused the token ({status}: "
                f"{_reason(raw)})"
            )
        if status == 404:
            raise NotFoundError(f"{what}: the pinning service has no such pin ({_reason(raw)})")
        if not 200 <= status < 300:
            raise PinServiceError(f"{what}: the pinning service answered {status}: {_reason(raw)}")
        if not expect_body:
            return None
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise PinServiceError(f"{what}: expected JSON, found {raw[:80]!r}") from exc

    async def add(
        self,
        cid: str,
        *,
        name: str | None = None,
        origins: Sequence[str] = (),
        meta: Mapping[str, str] | None = None,
    ) -> RemotePin:
        """Ask the service to pin ``cid`` (``POST /pins``); returns the queued request."""
        body: dict[str, Any] = {"cid": cid}
        if name:
            body["name"] = name
        if origins:
            body["origins"] = list(origins)[:20]  # the spec caps origins at 20
        if meta:
            body["meta"] = dict(meta)
        return RemotePin.of(await self._call("POST", "/pins", body=body))

    async def get(self, requestid: str) -> RemotePin:
        return RemotePin.of(await self._call("GET", f"/pins/{requestid}"))

    async def list(
        self, *, cids: Sequence[str] = (), statuses: Sequence[str] = STATUSES, limit: int = 1000
    ) -> list[RemotePin]:
        params = {"status": ",".join(statuses), "limit": str(limit)}
        if cids:
            params["cid"] = ",".join(cids)
        doc = await self._call("GET", "/pins", params=params)
        results = doc.get("results") if isinstance(doc, dict) else None
        if not isinstance(results, list):
            raise PinServiceError(f"GET /pins: expected results, found {doc!r:.80}")
        return [RemotePin.of(r) for r in results]

    async def remove(self, requestid: str) -> None:
        await self._call("DELETE", f"/pins/{requestid}", expect_body=False)

    async def wait(
        self,
        requestid: str,
        *,
        timeout: float = 600.0,
        first_delay: float = 0.2,
        max_delay: float = 5.0,
    ) -> RemotePin:
        """Poll the request, doubling the delay up to ``max_delay``, until it is pinned
        (returned) or failed (:class:`RemotePinFailedError`), for at most ``timeout`` s."""
        deadline = time.monotonic() + timeout
        delay = first_delay
        while True:
            pin = await self.get(requestid)
            if pin.status == "pinned":
                return pin
            if pin.status == "failed":
                detail = "; ".join(f"{k}: {v}" for k, v in pin.info.items())
                raise RemotePinFailedError(
                    f"the pinning service at {self.url} could not pin {pin.cid}"
                    + (f" ({detail})" if detail else "")
                )
            left = deadline - time.monotonic()
            if left <= 0:
                raise RemotePinFailedError(
                    f"the pinning service at {self.url} had not pinned {pin.cid} after "
                    f"{timeout:g} s (status {pin.status})",
                    hint="it may still finish: check with 'ipfs-share pin remote ls SERVICE'; "
                    "make sure the service can reach this node",
                )
            await asyncio.sleep(min(delay, left))
            delay = min(delay * 2, max_delay)
