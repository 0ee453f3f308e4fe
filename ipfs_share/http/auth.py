"""Who may use the HTTP API: the bearer token, and the browser origins CORS lets in.

Every request on TCP (or on a socket given with ``--listen unix:PATH``) carries
``Authorization: Bearer TOKEN``, the token ``serve`` writes to ``<home>/agent.token`` (0600)
at its first start. A request without it, or with another one, is answered 401 before its
handler runs or its body is read: it changes nothing. Tokens are compared in constant
time. The home's own socket, ``<home>/agent.sock``, needs no token: like ssh-agent's, it
is a 0600 socket in a 0700 home and the peer's uid is checked on every request.

CORS is off unless origins are named (``--cors-origin``, repeatable): a browser page from
any other origin gets no ``Access-Control-Allow-Origin`` and its preflight is refused (403).
A preflight (``OPTIONS`` with ``Access-Control-Request-Method``) from a named origin is
answered 204 without the token (browsers never send one on a preflight).

>>> token_matches("Bearer abc", "abc"), token_matches("Bearer abd", "abc")
(True, False)
>>> token_matches(None, "abc"), token_matches("abc", "abc")
(False, False)
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Iterable

from aiohttp import hdrs, web

from ipfs_share.errors import UnauthorizedError
from ipfs_share.http.errors import error_body, status_for

__all__ = ["ALLOW_HEADERS", "EXPOSE_HEADERS", "cors_middleware", "token_middleware"]

CORS_ORIGIN: web.RequestKey[str] = web.RequestKey("cors_origin", str)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Middleware = Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]

ALLOW_HEADERS = (
    "Authorization, Content-Type, Range, Last-Event-ID, X-Ipfs-Share-As, "
    "X-Ipfs-Share-Capability, X-Ipfs-Share-Name"
)
EXPOSE_HEADERS = (
    "Content-Length, Content-Range, Accept-Ranges, X-Ipfs-Share-Name, X-Ipfs-Share-Size, "
    "X-Ipfs-Share-Content, X-Ipfs-Share-Capsule, X-Ipfs-Share-Allow-Download, "
    "X-Ipfs-Share-Issuer, X-Ipfs-Share-Issuer-Name"
)
ALLOW_METHODS = "GET, POST, PUT, DELETE, OPTIONS"


def token_matches(header: str | None, token: str) -> bool:
    """Does an ``Authorization`` header carry ``token``? (constant time in its bytes)"""
    if header is None or not header.startswith("Bearer "):
        return False
    given = header[len("Bearer ") :].strip().encode("utf-8", "replace")
    return hmac.compare_digest(given, token.encode("ascii"))


def token_middleware(token: str) -> Middleware:
    @web.middleware
    async def check_token(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method == hdrs.METH_OPTIONS and _is_preflight(request):
            return await handler(request)  # the CORS layer answers (or refuses) it
        if not token_matches(request.headers.get(hdrs.AUTHORIZATION), token):
            exc = UnauthorizedError("expected a valid bearer token in the Authorization header")
            return web.json_response(
                error_body(exc.code, exc.message, exc.hint),
                status=status_for(exc),
                headers={"WWW-Authenticate": 'Bearer realm="ipfs-share"'},
            )
        return await handler(request)

    return check_token


def cors_middleware(origins: Iterable[str]) -> Middleware:
    allowed = frozenset(o.rstrip("/") for o in origins)

    @web.middleware
    async def cors(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get(hdrs.ORIGIN)
        if request.method == hdrs.METH_OPTIONS and _is_preflight(request):
            if origin is None or origin not in allowed:
                return web.json_response(
                    error_body("unauthorized", f"the origin {origin!r:.80} is not allowed", ""),
                    status=403,
                )
            return web.Response(
                status=204,
                headers={
                    hdrs.ACCESS_CONTROL_ALLOW_ORIGIN: origin,
                    hdrs.ACCESS_CONTROL_ALLOW_METHODS: ALLOW_METHODS,
                    hdrs.ACCESS_CONTROL_ALLOW_HEADERS: ALLOW_HEADERS,
                    hdrs.ACCESS_CONTROL_MAX_AGE: "600",
                    hdrs.VARY: "Origin",
                },
            )
        if origin is not None and origin in allowed:
            # Set before the handler runs: a streamed response sends its headers early.
            request[CORS_ORIGIN] = origin
        return await handler(request)

    return cors


async def add_cors_headers(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: the CORS headers of an allowed origin (also on errors)."""
    origin = request.get(CORS_ORIGIN)
    if isinstance(origin, str):
        response.headers[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] = origin
        response.headers[hdrs.ACCESS_CONTROL_EXPOSE_HEADERS] = EXPOSE_HEADERS
        response.headers[hdrs.VARY] = "Origin"


def _is_preflight(request: web.Request) -> bool:
    return hdrs.ACCESS_CONTROL_REQUEST_METHOD in request.headers
