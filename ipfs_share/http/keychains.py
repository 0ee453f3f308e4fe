"""The HTTP API's keychain routes: everything ``mesh.keychains`` does, per keychain
fingerprint (``{fp}``: the whole fingerprint or 8+ characters of it), as the acting
identity (``X-Ipfs-Share-As`` or ``?as=``).

Encrypt and decrypt take and give raw bytes (``application/octet-stream``), with the
associated data in ``?ad=`` (UTF-8 text, as the CLI's ``--ad``); a keychain message is
small (one AEAD seal), so the body is read whole, up to the app's 1 MiB limit.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ipfs_share.errors import InvalidInputError
from ipfs_share.formats.keychain import PERMISSION_NAMES
from ipfs_share.http.app import AGENT, acting, body, json_response

__all__ = ["add_keychain_routes"]


def add_keychain_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/v1/keychains", _list)
    r.add_post("/v1/keychains", _create)
    r.add_post("/v1/keychains/sync", _sync)
    r.add_get("/v1/keychains/outgoing", _outgoing)
    r.add_post("/v1/keychains/outgoing/cancel", _cancel)
    r.add_post("/v1/keychains/receive", _receive)
    r.add_post("/v1/keychains/offers/{offer}/accept", _accept)
    r.add_get("/v1/keychains/{fp}", _show)
    r.add_post("/v1/keychains/{fp}/rotate", _rotate)
    r.add_post("/v1/keychains/{fp}/share", _share)
    r.add_get("/v1/keychains/{fp}/participants", _participants)
    r.add_get("/v1/keychains/{fp}/permissions", _permissions)
    r.add_put("/v1/keychains/{fp}/permissions/{who}", _set_permissions)
    r.add_post("/v1/keychains/{fp}/ban", _ban)
    r.add_post("/v1/keychains/{fp}/leave", _leave)
    r.add_post("/v1/keychains/{fp}/encrypt", _encrypt)
    r.add_post("/v1/keychains/{fp}/decrypt", _decrypt)


def _kc(request: web.Request) -> Any:
    return request.app[AGENT].mesh.keychains


def _str(data: dict[str, Any], key: str, *, required: bool = False) -> str | None:
    value = data.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise InvalidInputError(f"expected {key!r}, a string")
    return value


def _seconds(data: dict[str, Any], key: str) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if type(value) is not int or value <= 0:
        raise InvalidInputError(f"expected {key!r} in seconds > 0, found {value!r:.20}")
    return value


def _bool(data: dict[str, Any], key: str, default: bool = False) -> bool:
    value = data.get(key, default)
    if not isinstance(value, bool):
        raise InvalidInputError(f"expected {key!r} true or false, found {value!r:.20}")
    return value


async def _list(request: web.Request) -> web.Response:
    return json_response(
        {"keychains": [k.to_json() for k in _kc(request).list(as_=acting(request))]}
    )


async def _create(request: web.Request) -> web.Response:
    """``{"name", "expires_in"}``: a new keychain with its first key."""
    data = await body(request)
    made = await _kc(request).create(
        _str(data, "name", required=True),
        as_=acting(request),
        expires_in=_seconds(data, "expires_in"),
    )
    return json_response(made.to_json(), 201)


async def _show(request: web.Request) -> web.Response:
    view = await _kc(request).show(request.match_info["fp"], as_=acting(request))
    return json_response(view.to_json())


async def _rotate(request: web.Request) -> web.Response:
    data = await body(request)
    key = await _kc(request).rotate(
        request.match_info["fp"], expires_in=_seconds(data, "expires_in"), as_=acting(request)
    )
    return json_response(key.to_json(), 201)


async def _share(request: web.Request) -> web.Response:
    """``{"to", "which": "latest"|"all"|KEYFP, "expires_in", "allow_sharing",
    "allow_rotation", "allow_deletion", "allow_management"}``."""
    data = await body(request)
    kc = _kc(request)
    fp = request.match_info["fp"]
    to = _str(data, "to", required=True)
    options: dict[str, Any] = {
        "expires_in": _seconds(data, "expires_in"),
        "as_": acting(request),
        **{f"allow_{n}": _bool(data, f"allow_{n}") for n in PERMISSION_NAMES},
    }
    which = _str(data, "which") or "latest"
    if which == "latest":
        done = await kc.share_most_recent_key(fp, to, **options)
    elif which == "all":
        done = await kc.share_complete_keychain(fp, to, **options)
    else:
        done = await kc.share_key(fp, which, to, **options)
    return json_response(done.to_json(), 201)


async def _outgoing(request: web.Request) -> web.Response:
    found = _kc(request).outgoing_shared_keys(as_=acting(request))
    return json_response({"outgoing": [o.to_json() for o in found]})


async def _cancel(request: web.Request) -> web.Response:
    """``{"to", "key", "keychain"}``: cancel open offers to ``to``."""
    data = await body(request)
    done = await _kc(request).delete_outgoing_shared_key(
        _str(data, "to", required=True),
        _str(data, "key"),
        keychain=_str(data, "keychain"),
        as_=acting(request),
    )
    return json_response({"cancelled": [o.to_json() for o in done]})


async def _receive(request: web.Request) -> web.Response:
    """``{"op"}``: an op CID handed over out of band; fetch it and sync."""
    data = await body(request)
    report = await _kc(request).receive(_str(data, "op", required=True), as_=acting(request))
    return json_response(report.to_json())


async def _accept(request: web.Request) -> web.Response:
    op = await _kc(request).accept(request.match_info["offer"], as_=acting(request))
    return json_response({"accepted": request.match_info["offer"], "op": op})


async def _sync(request: web.Request) -> web.Response:
    report = await _kc(request).sync(as_=acting(request))
    return json_response(report.to_json())


async def _participants(request: web.Request) -> web.Response:
    found = _kc(request).participants(
        request.match_info["fp"], request.query.get("key") or None, as_=acting(request)
    )
    return json_response({"participants": [p.to_json() for p in found]})


async def _permissions(request: web.Request) -> web.Response:
    perms = _kc(request).permissions(
        request.match_info["fp"], request.query.get("who") or None, as_=acting(request)
    )
    return json_response(perms.to_json())


async def _set_permissions(request: web.Request) -> web.Response:
    """``{"allow_sharing": true, ...}``: the permissions named change; others stay."""
    data = await body(request)
    changes: dict[str, bool | None] = {}
    for n in PERMISSION_NAMES:
        if f"allow_{n}" in data:
            changes[n] = _bool(data, f"allow_{n}")
    perms = await _kc(request).set_permissions(
        request.match_info["who"], request.match_info["fp"], as_=acting(request), **changes
    )
    return json_response(perms.to_json())


async def _ban(request: web.Request) -> web.Response:
    """``{"who", "rotate"}`` (rotate: default true)."""
    data = await body(request)
    done = await _kc(request).ban(
        _str(data, "who", required=True),
        request.match_info["fp"],
        rotate=_bool(data, "rotate", True),
        as_=acting(request),
    )
    return json_response(done.to_json())


async def _leave(request: web.Request) -> web.Response:
    view = await _kc(request).leave(request.match_info["fp"], as_=acting(request))
    return json_response(view.to_json())


async def _encrypt(request: web.Request) -> web.Response:
    sealed = await _kc(request).encrypt(
        request.match_info["fp"],
        await request.read(),
        ad=request.query.get("ad", "").encode(),
        as_=acting(request),
    )
    return web.Response(body=sealed, content_type="application/octet-stream")


async def _decrypt(request: web.Request) -> web.Response:
    plain = await _kc(request).decrypt(
        request.match_info["fp"],
        await request.read(),
        ad=request.query.get("ad", "").encode(),
        as_=acting(request),
    )
    return web.Response(body=plain, content_type="application/octet-stream")
