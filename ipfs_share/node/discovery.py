"""Which Kubo RPC API to talk to, and whether it answers.

The library and the CLI find the node's API from, in order:

1. an explicit address (``--api``, or the ``api=`` argument of the library);
2. the environment variable ``IPFS_SHARE_API``;
3. the node ipfs-share manages: Kubo writes ``$IPFS_PATH/api`` while its daemon runs;
4. the conventional ``/ip4/127.0.0.1/tcp/5001`` (a Docker node from docker/compose.yml,
   or a stock Kubo).

The first one *given* wins; nothing here connects. Whoever connects checks with
:func:`probe_api` and, when nothing answers, raises
:class:`~ipfs_share.errors.NodeUnreachableError` (its default hint says how to start a
node).

>>> multiaddr_to_url("/ip4/127.0.0.1/tcp/5001")
'http://127.0.0.1:5001'
>>> url_to_multiaddr("http://localhost:5001")
'/dns/localhost/tcp/5001'
>>> resolve_api("/ip6/::1/tcp/5001")
'/ip6/::1/tcp/5001'
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from urllib.parse import urlsplit

from ipfs_share import paths
from ipfs_share.errors import InvalidInputError

__all__ = [
    "API_ENV",
    "DEFAULT_API",
    "api_source_note",
    "api_source_text",
    "multiaddr_to_url",
    "probe_api",
    "resolve_api",
    "resolve_api_source",
    "url_to_multiaddr",
]

API_ENV = "IPFS_SHARE_API"
DEFAULT_API = "/ip4/127.0.0.1/tcp/5001"

_API_HINT = (
    "give the API as a multiaddr such as /ip4/127.0.0.1/tcp/5001 or a URL such as "
    "http://127.0.0.1:5001 (--api or IPFS_SHARE_API)"
)


def _bad(value: str, why: str) -> InvalidInputError:
    return InvalidInputError(
        f"expected a Kubo API multiaddr or http(s) URL, found {value!r} ({why})", hint=_API_HINT
    )


def _port(value: str, text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise _bad(value, f"port {text!r} is not in 1..65535")
    return int(text)


def multiaddr_to_url(maddr: str) -> str:
    """Turn a TCP multiaddr (optionally ending ``/http`` or ``/https``) into a base URL.

    >>> multiaddr_to_url("/ip6/::1/tcp/5001")
    'http://[::1]:5001'
    >>> multiaddr_to_url("/dns4/kubo.example/tcp/443/https")
    'https://kubo.example:443'
    >>> try:
    ...     multiaddr_to_url("/unix/tmp/api.sock")
    ... except ValueError as exc:
    ...     exc.code
    'invalid_input'
    """
    parts = maddr.strip().split("/")
    # A multiaddr starts with '/', so split gives a leading empty string.
    if len(parts) < 5 or parts[0] != "":
        raise _bad(maddr, "only /ip4, /ip6 and /dns addresses with /tcp are supported")
    _, proto, host, transport, port_text, *rest = parts
    if proto not in ("ip4", "ip6", "dns", "dns4", "dns6") or transport != "tcp":
        raise _bad(maddr, "only /ip4, /ip6 and /dns addresses with /tcp are supported")
    if proto == "ip4" or proto == "ip6":
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            raise _bad(maddr, f"{host!r} is not an {proto} address") from None
        if address.version != int(proto[-1]):
            raise _bad(maddr, f"{host!r} is not an {proto} address")
    elif not host:
        raise _bad(maddr, "the host name is empty")
    port = _port(maddr, port_text)
    if rest not in ([], ["http"], ["https"]):
        raise _bad(maddr, f"unexpected components after the port: /{'/'.join(rest)}")
    scheme = rest[0] if rest else "http"
    netloc = f"[{host}]" if proto == "ip6" else host
    return f"{scheme}://{netloc}:{port}"


def url_to_multiaddr(url: str) -> str:
    """Turn an ``http(s)://host:port`` URL into the multiaddr :func:`resolve_api` returns.

    >>> url_to_multiaddr("http://127.0.0.1:5001/")
    '/ip4/127.0.0.1/tcp/5001'
    >>> url_to_multiaddr("https://[::1]:8443")
    '/ip6/::1/tcp/8443/https'
    """
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _bad(url, "a URL must look like http://host:port")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise _bad(url, "give only scheme, host and port; the client adds /api/v0")
    try:
        port = parts.port
    except ValueError:
        raise _bad(url, "the port is not a number in 1..65535") from None
    if port is None:
        port = 443 if parts.scheme == "https" else 80
    try:
        address = ipaddress.ip_address(parts.hostname)
        head = f"/ip{address.version}/{address.compressed}"
    except ValueError:
        head = f"/dns/{parts.hostname}"
    tail = "/https" if parts.scheme == "https" else ""
    return f"{head}/tcp/{port}{tail}"


def _normalize(value: str) -> str:
    value = value.strip()
    if value.startswith(("http://", "https://")):
        return url_to_multiaddr(value)
    multiaddr_to_url(value)  # validates, raising a typed error with a hint
    return value


def resolve_api_source(explicit: str | None = None, *, home: Path | None = None) -> tuple[str, str]:
    """Like :func:`resolve_api`, and also say where the address came from.

    The source is one of ``"explicit"``, ``"env"``, ``"managed"`` or ``"default"``.

    >>> resolve_api_source("http://127.0.0.1:5002")
    ('/ip4/127.0.0.1/tcp/5002', 'explicit')
    """
    if explicit:
        return _normalize(explicit), "explicit"
    from_env = os.environ.get(API_ENV)
    if from_env:
        try:
            return _normalize(from_env), "env"
        except InvalidInputError as exc:
            raise InvalidInputError(
                f"{API_ENV}: {exc.message}", hint=f"fix or unset {API_ENV}; {_API_HINT}"
            ) from exc
    api_file = paths.kubo_repo_dir(home) / "api"
    try:
        written = api_file.read_text(encoding="utf-8").strip()
    except OSError:
        written = ""
    if written:
        return _normalize(written), "managed"
    return DEFAULT_API, "default"


def api_source_text(source: str, home: Path | None = None) -> str:
    """Why this node, in words, for a message naming it (``source`` as
    :func:`resolve_api_source` returns it).

    >>> api_source_text("env")
    'from IPFS_SHARE_API'
    """
    if source == "explicit":
        return "the address given (--api)"
    if source == "env":
        return f"from {API_ENV}"
    if source == "managed":
        return f"the managed node of {home or paths.home_dir()}"
    return f"the default address: {_no_managed(home)}"


def _no_managed(home: Path | None) -> str:
    repo = paths.kubo_repo_dir(home)
    if (repo / "config").is_file():
        return f"the managed node of {repo.parent} is not running"
    return f"{repo.parent} has no managed node"


def api_source_note(url: str, source: str, home: Path | None = None) -> str | None:
    """The one note to give when a command uses a node that is not the home's own (and
    was not named): the default address, which may answer with someone else's node.

    >>> import tempfile
    >>> api_source_note("http://127.0.0.1:5001", "explicit") is None
    True
    >>> print(api_source_note("http://127.0.0.1:5001", "default", Path(tempfile.mkdtemp())))
    ... # doctest: +ELLIPSIS
    using the Kubo node at http://127.0.0.1:5001, the default address: /tmp/... has no ...
    """
    if source != "default":
        return None
    return (
        f"using the Kubo node at {url}, {api_source_text(source, home)} "
        "('ipfs-share node start' starts one; --api names another)"
    )


def resolve_api(explicit: str | None = None, *, home: Path | None = None) -> str:
    """Return the multiaddr of the Kubo API to use (see the module docstring for the order).

    ``explicit`` may be a multiaddr or an ``http(s)://host:port`` URL; a malformed value
    raises :class:`~ipfs_share.errors.InvalidInputError` with a hint. ``home`` overrides
    the ipfs-share home whose managed node is consulted.
    """
    return resolve_api_source(explicit, home=home)[0]


async def probe_api(url: str, *, timeout: float = 2.0) -> bool:
    """True if a Kubo RPC API answers ``POST <url>/api/v0/version`` within ``timeout``.

    Never raises for network trouble: an unreachable, slow or non-Kubo endpoint is False.

    >>> import asyncio
    >>> asyncio.run(probe_api("http://127.0.0.1:9"))   # the discard port: nothing there
    False
    """
    # Imported here: the CLI's node commands never need it, and it costs ~0.1 s to load.
    import aiohttp

    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
            session.post(f"{url.rstrip('/')}/api/v0/version") as response,
        ):
            if response.status != 200:
                return False
            body = await response.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, OSError, ValueError):
        return False
    return isinstance(body, dict) and isinstance(body.get("Version"), str)
