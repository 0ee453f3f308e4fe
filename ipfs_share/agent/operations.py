"""The operations the command line hands to the agent: JSON in, JSON out, over the facade.

Each operation is one whole library call (share, send, an inbox sync, revoke, ...) with
plain JSON parameters and a plain JSON result: the agent runs it with the keys it holds
and hands back the result, never a key. The command line runs the very same function
in its own process when no agent is there (or the agent holds the identity locked), so
the two paths cannot drift apart: only where it runs differs.

Parameters are checked here, strictly (a missing or mistyped field is ``invalid_input``
with what was expected): over the socket they come from another process.

>>> sorted(OPERATIONS)
['cancel', 'capability', 'inbox', 'outgoing', 'publish', 'revoke', 'send', 'share']
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from ipfs_share.client import Mesh
from ipfs_share.errors import InvalidInputError
from ipfs_share.formats.capsule import Policy, decode_capability
from ipfs_share.formats.cid import normalize_cid
from ipfs_share.formats.introduction import format_link
from ipfs_share.services.policy import TimeWindowProvider

__all__ = ["OPERATIONS", "Operation", "Params", "acting_identity"]

Params = Mapping[str, Any]
Operation = Callable[[Mesh, Params], Awaitable[dict[str, Any]]]

_MISSING = object()


def _get(p: Params, key: str, kind: type | tuple[type, ...], default: Any = _MISSING) -> Any:
    """``p[key]`` checked against ``kind``; absent or null gives ``default`` (if any)."""
    value = p.get(key)
    if value is None:
        if default is _MISSING:
            raise InvalidInputError(f"expected the parameter {key!r}, found none")
        return default
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(value, kinds) or (type(value) is bool and bool not in kinds):
        names = " or ".join(k.__name__ for k in kinds)
        raise InvalidInputError(f"expected {key!r} to be {names}, found {type(value).__name__}")
    return value


def _names(p: Params, key: str) -> list[str]:
    value = _get(p, key, list, [])
    if not all(isinstance(v, str) for v in value):
        raise InvalidInputError(f"expected {key!r} to be a list of names")
    return list(value)


def acting_identity(p: Params) -> str | None:
    """The identity an operation acts as (``"as"``; None: the default one)."""
    value: str | None = _get(p, "as", str, None)
    return value


# -- the operations ----------------------------------------------------------------------


async def share(mesh: Mesh, p: Params) -> dict[str, Any]:
    """``share.file(content).with_(to, ...)``, then ``send`` with ``"send": true``."""
    as_ = acting_identity(p)
    recipients = _names(p, "to")
    policy = await _policy(mesh, _get(p, "policy", dict, None))
    capsule = await mesh.share.file(normalize_cid(_get(p, "content", str))).with_(
        recipients,
        expires_in=_get(p, "expires_in", int, None),
        allow_download=_get(p, "allow_download", bool, True),
        policy=policy,
        capability=_get(p, "capability", str, None),
        as_=as_,
    )
    data = capsule.to_json()
    data["link"] = format_link(capsule.id, capsule.issuer)
    if _get(p, "send", bool, False):
        sent = await mesh.share.send(capsule, as_=as_)
        data["sent"] = [o.to_json() for o in sent]
    return data


async def _policy(mesh: Mesh, spec: dict[str, Any] | None) -> Policy | None:
    """A policy from ``{"provider", "params", "allow"}``: ``allow`` names (petnames, dids)
    are resolved here, with the home's contacts, into the window policy's dids."""
    if spec is None:
        return None
    provider = _get(spec, "provider", str)
    params = dict(_get(spec, "params", dict, {}))
    allow = _names(spec, "allow")
    if allow:
        if provider != TimeWindowProvider.name:
            raise InvalidInputError(
                f"allow belongs to the policy {TimeWindowProvider.name}, found {provider}"
            )
        dids = [(await mesh.identity.recipient(n)).did for n in allow]
        params.update(TimeWindowProvider.params(allow=dids))
    return Policy(provider, params)


async def send(mesh: Mesh, p: Params) -> dict[str, Any]:
    """``share.send(capsule, to or the share's recipients)``."""
    names = _names(p, "to")
    sent = await mesh.share.send(
        normalize_cid(_get(p, "capsule", str)), names or None, as_=acting_identity(p)
    )
    links = {o.id: format_link(o.id, o.sender) for o in sent}
    return {"sent": [o.to_json() for o in sent], "links": links}


async def inbox(mesh: Mesh, p: Params) -> dict[str, Any]:
    """An inbox sync and the list after it, with the pending introductions."""
    as_ = acting_identity(p)
    report = await mesh.inbox.sync_report(as_, senders=_names(p, "from"))
    items = mesh.inbox.list(as_, include_withdrawn=_get(p, "all", bool, False))
    return {
        "new": [i.to_json() for i in report.new],
        "inbox": [i.to_json() for i in items],
        "unreachable": list(report.unreachable),
        "failed": [
            {"sender": who, "code": exc.code, "message": exc.message, "hint": exc.hint}
            for who, exc in report.failed
        ],
        "partial": list(report.partial),
        "deferred": [{"sender": who, "capsules": n} for who, n in report.deferred],
        "missing": [{"sender": who, "capsules": n} for who, n in report.missing],
        "introductions": [i.to_json() for i in mesh.introductions.pending(as_)],
    }


async def outgoing(mesh: Mesh, p: Params) -> dict[str, Any]:
    found = await mesh.share.outgoing(
        as_=acting_identity(p), refresh=_get(p, "refresh", bool, True)
    )
    return {"outgoing": [o.to_json() for o in found]}


async def cancel(mesh: Mesh, p: Params) -> dict[str, Any]:
    done = await mesh.share.cancel(_get(p, "capsule", str))
    return {"cancelled": [o.to_json() for o in done]}


async def revoke(mesh: Mesh, p: Params) -> dict[str, Any]:
    """``share.revoke``; with ``"as"``, only a share that identity made."""
    capsule = normalize_cid(_get(p, "capsule", str))
    as_ = acting_identity(p)
    if as_ is not None:
        me = mesh.identity.get(as_)
        issuer = mesh.share.get(capsule).issuer
        if issuer != me.did:
            raise InvalidInputError(
                f"the share {capsule} was made by {issuer}, not by {me.name}",
                hint="revoke it as the identity that shared it (or leave out --as)",
            )
    done = await mesh.share.revoke(
        capsule, rotate=_get(p, "rotate", bool, False), drop=_names(p, "drop")
    )
    return done.to_json()


async def publish(mesh: Mesh, p: Params) -> dict[str, Any]:
    """``identity.publish`` (the identity named by ``"name"``, else the acting one)."""
    name = _get(p, "name", str, None) or acting_identity(p)
    return (await mesh.identity.publish(name)).to_json()


async def capability(mesh: Mesh, p: Params) -> dict[str, Any]:
    """``share.issue_capability``: the token in base64 and what it says."""
    capsule = normalize_cid(_get(p, "capsule", str))
    token = await mesh.share.issue_capability(
        capsule,
        _get(p, "to", str),
        valid_for=_get(p, "valid_for", (str, int), "1d"),
        as_=acting_identity(p),
    )
    decoded = decode_capability(token)
    return {
        "capability": decoded.cid,
        "capsule": capsule,
        "issuer": decoded.issuer,
        "audience": decoded.aud,
        "not_before": decoded.nbf,
        "expires": decoded.exp,
        "token_base64": base64.b64encode(token).decode(),
    }


OPERATIONS: dict[str, Operation] = {
    "cancel": cancel,
    "capability": capability,
    "inbox": inbox,
    "outgoing": outgoing,
    "publish": publish,
    "revoke": revoke,
    "send": send,
    "share": share,
}
