"""The HTTP API for backends in any language: every capability of the library, as routes.

Thin, like the command line: each handler parses, calls the facade (or one of the
agent's operations, the very functions the CLI delegates), and answers JSON. The
document of record is ``docs/openapi.json`` (served at ``/openapi.json``); a test keeps
it and these routes in step, both ways.

- **Who acts**: the ``X-Ipfs-Share-As`` header or the ``as`` query parameter names a local
  identity (default: the home's default one). The agent's unlocked keys are used; a
  passphrase never crosses TCP, and an identity the agent holds locked gives 423
  ``identity_locked`` (run ``ipfs-share unlock --as NAME``).
- **Files** go in as the raw request body of ``POST /v1/files?name=...``, streamed through
  the encryption into the node (no size limit; memory stays flat): with a
  ``Content-Length`` the body is handed to one worker thread that seals and sends it
  (:mod:`.upload`), without one (chunked) its ciphertext is spooled to the home first.
  The file's media type is the request's ``Content-Type`` (or guessed from the name for
  ``application/octet-stream``).
- **Opening** (``GET /v1/capsules/{id}/plaintext``, and ``GET /v1/files/{cid}/plaintext``
  for the owner) streams the plaintext; ``Range`` gives 206 with only the chunks that hold
  the range fetched, 416 for a range past the end. A view-only share
  (``allow_download: false``) still streams, marked ``X-Ipfs-Share-Allow-Download: false``
  and ``Content-Disposition: inline``; ``?save=1`` (the caller means to keep a copy)
  refuses it with 403 ``download_not_allowed``. That is advice to honest clients, as in the
  CLI: whoever reads the plaintext can keep it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from ipfs_share.agent.core import Agent
from ipfs_share.agent.operations import OPERATIONS
from ipfs_share.client import Mesh
from ipfs_share.errors import InvalidInputError, NotFoundError
from ipfs_share.formats.cid import normalize_cid
from ipfs_share.http.app import (
    AGENT,
    acting,
    body,
    json_response,
    make_app,
    on_unix,
    stream_opened,
)
from ipfs_share.http.keychains import add_keychain_routes
from ipfs_share.http.upload import put_streamed, read_large
from ipfs_share.services.identities import IdentityService
from ipfs_share.services.share import ShareCapsule

__all__ = ["UPLOAD_PIECE", "add_api_routes", "make_api"]

UPLOAD_PIECE = 1 << 20


def make_api(
    agent: Agent,
    *,
    unix: bool = False,
    token: str | None = None,
    cors_origins: Sequence[str] = (),
) -> web.Application:
    """The whole API over ``agent`` (the command line's routes, and these)."""
    app = make_app(agent, unix=unix, token=token, cors_origins=cors_origins)
    add_api_routes(app)
    add_keychain_routes(app)
    return app


def add_api_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/openapi.json", _openapi)
    r.add_get("/v1/identities", _identities)
    r.add_post("/v1/identities", _create_identity)
    r.add_get("/v1/identities/{name}", _identity)
    r.add_post("/v1/identities/{name}/publish", _publish)
    r.add_post("/v1/resolve", _resolve)
    r.add_get("/v1/contacts", _contacts)
    r.add_put("/v1/contacts/{petname}", _add_contact)
    r.add_delete("/v1/contacts/{petname}", _remove_contact)
    r.add_get("/v1/introductions", _introductions)
    r.add_post("/v1/introductions/{did}/accept", _accept)
    r.add_post("/v1/introductions/{did}/reject", _reject)
    r.add_post("/v1/files", _put)
    r.add_get("/v1/files", _files)
    r.add_get("/v1/files/{cid}", _file)
    r.add_delete("/v1/files/{cid}", _remove_file)
    r.add_get("/v1/files/{cid}/plaintext", _file_plaintext)
    r.add_get("/v1/files/{cid}/placement", _placement)
    r.add_post("/v1/shares", _share)
    r.add_get("/v1/shares", _shares)
    r.add_get("/v1/shares/{capsule}", _show_share)
    r.add_post("/v1/shares/{capsule}/revoke", _revoke)
    r.add_post("/v1/shares/{capsule}/send", _send)
    r.add_post("/v1/shares/{capsule}/capabilities", _capability)
    r.add_get("/v1/inbox", _inbox)
    r.add_post("/v1/inbox/sync", _sync)
    r.add_get("/v1/outgoing", _outgoing)
    r.add_post("/v1/outgoing/{capsule}/cancel", _cancel)


# -- helpers -------------------------------------------------------------------------------


async def _params(request: web.Request) -> dict[str, Any]:
    """The JSON body, with the acting identity (a body's own ``as`` wins)."""
    data = await body(request)
    if "as" not in data:
        data["as"] = acting(request)
    return data


async def _run(request: web.Request, name: str, params: dict[str, Any]) -> dict[str, Any]:
    agent = request.app[AGENT]
    result = await OPERATIONS[name](agent.mesh, params)
    if name in ("share", "send"):
        agent.announcer.poke()  # queued capsules: announce without waiting for the scan
    return result


def _flag(request: web.Request, name: str, default: bool = False) -> bool:
    value = request.query.get(name)
    if value is None or value == "":
        return default
    if value in ("1", "true"):
        return True
    if value in ("0", "false"):
        return False
    raise InvalidInputError(f"expected {name}=true or false, found {value!r:.20}")


# -- identities and contacts ---------------------------------------------------------------


async def _identities(request: web.Request) -> web.Response:
    agent = request.app[AGENT]
    found = []
    for i in agent.mesh.identity.list():
        data = i.to_json()
        data["unlocked"] = agent.keys.is_unlocked(i.did)
        found.append(data)
    return json_response({"identities": found})


async def _identity(request: web.Request) -> web.Response:
    agent = request.app[AGENT]
    i = agent.mesh.identity.get(request.match_info["name"])
    return json_response({**i.to_json(), "unlocked": agent.keys.is_unlocked(i.did)})


async def _create_identity(request: web.Request) -> web.Response:
    """``{"name", "sealed"}``. A sealed identity needs its new passphrase
    (``passphrase_b64``), which is taken on the home's unix socket only; over TCP an
    identity is made unsealed (``"sealed": false``, said explicitly: its keys are kept in
    the clear in the 0700 home, as a server keeps its host key)."""
    agent = request.app[AGENT]
    data = await body(request)
    name = data.get("name")
    if not isinstance(name, str):
        raise InvalidInputError("expected 'name', a string")
    sealed = data.get("sealed", True)
    if not isinstance(sealed, bool):
        raise InvalidInputError(f"expected 'sealed' true or false, found {sealed!r:.20}")
    passphrase: bytes | None = None
    if sealed:
        if not on_unix(request) or "passphrase_b64" not in data:
            raise InvalidInputError(
                "expected 'sealed': false over TCP (a passphrase never crosses it)",
                hint="make a sealed identity with 'ipfs-share identity create NAME', or "
                "send 'sealed': false for keys kept in the clear in the home",
            )
        try:
            passphrase = base64.b64decode(str(data["passphrase_b64"]), validate=True)
        except (binascii.Error, ValueError):
            raise InvalidInputError("expected 'passphrase_b64' in base64") from None
        if not passphrase:
            raise InvalidInputError("expected a passphrase, found an empty one")
    mesh = agent.mesh
    secret = passphrase
    maker = IdentityService(mesh.home, mesh.storage, db=mesh.db, passphrase=lambda _: secret or b"")
    made = await maker.create(name, encrypted=sealed)
    await agent.keys.unlock(made.did, passphrase, None)
    return json_response({**made.to_json(), "unlocked": True}, 201)


async def _publish(request: web.Request) -> web.Response:
    params = {"name": request.match_info["name"], "as": None}
    return json_response(await _run(request, "publish", params))


async def _resolve(request: web.Request) -> web.Response:
    """``{"did", "petname"}``: fetch and verify a published identity; with ``petname``,
    save it as a contact too."""
    data = await body(request)
    who, petname = data.get("did"), data.get("petname")
    if not isinstance(who, str) or (petname is not None and not isinstance(petname, str)):
        raise InvalidInputError("expected 'did' (and optionally 'petname') as strings")
    agent = request.app[AGENT]
    found = await agent.mesh.identity.resolve(who, petname=petname)
    if petname:
        agent.reconcile()
    return json_response(found.to_json())


async def _contacts(request: web.Request) -> web.Response:
    found = request.app[AGENT].mesh.db.contacts.list()
    return json_response(
        {"contacts": [{"petname": c.petname, "did": c.did, "added": c.added} for c in found]}
    )


async def _add_contact(request: web.Request) -> web.Response:
    """``{"did"}``: a petname for a did (or for a local identity's name)."""
    data = await body(request)
    who = data.get("did")
    if not isinstance(who, str):
        raise InvalidInputError("expected 'did', a string")
    agent = request.app[AGENT]
    petname = request.match_info["petname"]
    did = agent.mesh.identity.add_contact(petname, who)
    agent.reconcile()  # watch the new contact's mailbox now
    return json_response({"petname": petname, "did": did})


async def _remove_contact(request: web.Request) -> web.Response:
    agent = request.app[AGENT]
    petname = request.match_info["petname"]
    if not agent.mesh.db.contacts.remove(petname):
        raise NotFoundError(f"no contact named {petname!r:.60}", hint="see GET /v1/contacts")
    agent.reconcile()
    return json_response({"removed": petname})


async def _introductions(request: web.Request) -> web.Response:
    mesh = request.app[AGENT].mesh
    return json_response(
        {"introductions": [i.to_json() for i in mesh.introductions.pending(acting(request))]}
    )


async def _accept(request: web.Request) -> web.Response:
    """``{"petname"}`` (optional): the sender becomes a contact; its mailbox is read."""
    data = await body(request)
    petname = data.get("petname")
    if petname is not None and not isinstance(petname, str):
        raise InvalidInputError("expected 'petname', a string")
    agent = request.app[AGENT]
    did = unquote(request.match_info["did"])
    name = agent.mesh.introductions.accept(did, petname, as_=acting(request))
    agent.reconcile()
    return json_response({"petname": name, "did": did.strip()})


async def _reject(request: web.Request) -> web.Response:
    agent = request.app[AGENT]
    did = unquote(request.match_info["did"])
    count = agent.mesh.introductions.reject(did, as_=acting(request))
    return json_response({"rejected": did.strip(), "count": count})


# -- files ---------------------------------------------------------------------------------


async def _put(request: web.Request) -> web.Response:
    """The raw body, streamed: ``?name=`` (or ``X-Ipfs-Share-Name``, percent-encoded)."""
    name = request.query.get("name") or unquote(request.headers.get("X-Ipfs-Share-Name", ""))
    if not name:
        raise InvalidInputError(
            "expected the file's name in ?name= or the X-Ipfs-Share-Name header"
        )
    media: str | None = request.headers.get("Content-Type")
    if media in (None, "", "application/octet-stream"):
        media = None
    size = request.content_length

    async def pieces() -> Any:
        # Whole pieces of UPLOAD_PIECE (the last one shorter), not what each read of the
        # socket brought: fewer, larger pieces through the encryptor and on to the node.
        while True:
            try:
                yield await request.content.readexactly(UPLOAD_PIECE)
            except asyncio.IncompleteReadError as end:
                if end.partial:
                    yield end.partial
                return

    mesh = request.app[AGENT].mesh
    as_ = acting(request)
    if size is None:  # chunked: the ciphertext is spooled first (its size goes in the header)
        stored = await mesh.files.put(name, pieces(), as_=as_, media_type=media)
    else:  # read, sealed and sent by one worker thread, as the library's put of a file
        read_large(request.transport)
        stored = await put_streamed(
            request.content,
            size,
            lambda body: mesh.files.put(name, body, as_=as_, media_type=media, size=size),
        )
    return json_response(stored.to_json(), 201)


async def _files(request: web.Request) -> web.Response:
    mesh = request.app[AGENT].mesh
    who = acting(request)
    owner = None if who is None else mesh.identity.get(who).did
    return json_response({"files": [f.to_json() for f in mesh.files.list(owner=owner)]})


async def _file(request: web.Request) -> web.Response:
    mesh = request.app[AGENT].mesh
    return json_response(mesh.files.get(request.match_info["cid"]).to_json())


async def _remove_file(request: web.Request) -> web.Response:
    mesh = request.app[AGENT].mesh
    return json_response((await mesh.files.remove(request.match_info["cid"])).to_json())


async def _placement(request: web.Request) -> web.Response:
    """Where the file's ciphertext is pinned, peer by peer, when the agent's storage is a
    cluster (``{"placement": null}`` on a single node)."""
    mesh = request.app[AGENT].mesh
    stored = mesh.files.get(request.match_info["cid"])
    found = await mesh.files.placements([stored.cid])
    where = None if found is None else found.get(stored.cid)
    return json_response(
        {"content": stored.cid, "placement": None if where is None else where.to_json()}
    )


async def _file_plaintext(request: web.Request) -> web.StreamResponse:
    """The owner's own file, decrypted with the key wrapped to the owner."""
    mesh = request.app[AGENT].mesh
    stored = mesh.files.get(request.match_info["cid"])
    keys = await mesh.identity.unlock(stored.owner)
    opened = await mesh.files.open(stored.cid, mesh.files.file_key(stored.cid, keys.encryption))
    return await stream_opened(request, opened)


# -- shares --------------------------------------------------------------------------------


async def _share(request: web.Request) -> web.Response:
    """The CLI's ``share``: ``{"content", "to", "expires_in", "allow_download", "policy",
    "capability", "send"}``."""
    return json_response(await _run(request, "share", await _params(request)), 201)


def _share_view(mesh: Mesh, capsule: str) -> dict[str, Any]:
    row = mesh.db.shares.get(capsule)
    if row is None:
        raise NotFoundError(
            f"no share {capsule} was made from this home",
            hint="shares are recorded in the home of whoever shared them (GET /v1/shares)",
        )
    s = ShareCapsule.of(row, mesh.db.shares.recipients(capsule))
    opens = mesh.db.shares.opens(capsule)
    return {
        **s.to_json(),
        "revoked_at": row.revoked_at,
        "revocation_head": row.revocation_head,
        "opens": [
            {
                "opener": o.opener,
                "opened_at": o.opened_at,
                "revocation_head": o.revocation_head,
                "capability": o.capability,
            }
            for o in opens
        ],
    }


async def _shares(request: web.Request) -> web.Response:
    mesh = request.app[AGENT].mesh
    content = request.query.get("content")
    found = mesh.share.list(content=None if content is None else normalize_cid(content))
    who = acting(request)
    if who is not None:
        did = mesh.identity.get(who).did
        found = [s for s in found if s.issuer == did]
    return json_response({"shares": [s.to_json() for s in found]})


async def _show_share(request: web.Request) -> web.Response:
    mesh = request.app[AGENT].mesh
    return json_response(_share_view(mesh, normalize_cid(request.match_info["capsule"])))


async def _revoke(request: web.Request) -> web.Response:
    """``{"rotate", "drop", "dry_run"}``. A dry run changes nothing and says what a revoke
    would do: the capsules it would revoke and the recipients left."""
    params = await _params(request)
    capsule = normalize_cid(request.match_info["capsule"])
    params["capsule"] = capsule
    if params.pop("dry_run", False) is True:
        mesh = request.app[AGENT].mesh
        view = _share_view(mesh, capsule)
        if view["state"] != "active":
            raise InvalidInputError(f"the share {capsule} is {view['state']}, not active")
        drop = params.get("drop") or []
        dropped = {(await mesh.identity.recipient(n)).did for n in drop}
        others = [
            s.id
            for s in mesh.share.list(content=view["content"])
            if s.state == "active" and s.id != capsule
        ]
        return json_response(
            {
                "dry_run": True,
                "revoke": [capsule, *others] if params.get("rotate") else [capsule],
                "rotate": bool(params.get("rotate")),
                "drop": sorted(dropped),
                "reissue_to": [r["did"] for r in view["recipients"] if r["did"] not in dropped]
                if drop
                else [],
            }
        )
    return json_response(await _run(request, "revoke", params))


async def _send(request: web.Request) -> web.Response:
    params = await _params(request)
    params["capsule"] = request.match_info["capsule"]
    return json_response(await _run(request, "send", params))


async def _capability(request: web.Request) -> web.Response:
    params = await _params(request)
    params["capsule"] = request.match_info["capsule"]
    return json_response(await _run(request, "capability", params), 201)


# -- mailboxes -----------------------------------------------------------------------------


async def _inbox(request: web.Request) -> web.Response:
    """What arrived (no sync: the agent's watch keeps it current; POST /v1/inbox/sync)."""
    mesh = request.app[AGENT].mesh
    who = acting(request)
    items = mesh.inbox.list(who, include_withdrawn=_flag(request, "all"))
    return json_response(
        {
            "inbox": [i.to_json() for i in items],
            "introductions": [i.to_json() for i in mesh.introductions.pending(who)],
        }
    )


async def _sync(request: web.Request) -> web.Response:
    """The CLI's ``inbox``: sync the mailboxes (``{"from": [...]}`` for some only)."""
    result = await _run(request, "inbox", await _params(request))
    request.app[AGENT].reconcile()
    return json_response(result)


async def _outgoing(request: web.Request) -> web.Response:
    params = {"as": acting(request), "refresh": _flag(request, "refresh", True)}
    return json_response(await _run(request, "outgoing", params))


async def _cancel(request: web.Request) -> web.Response:
    params = {"capsule": request.match_info["capsule"]}
    return json_response(await _run(request, "cancel", params))


# -- the contract --------------------------------------------------------------------------


async def _openapi(request: web.Request) -> web.Response:
    from ipfs_share.http.openapi import document

    return json_response(document())
