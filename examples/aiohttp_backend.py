"""A small aiohttp backend that stores uploaded files encrypted on IPFS and shares them.

The server holds one identity ("server") and acts as it:

    POST   /files                      multipart upload (field "file"), streamed into
                                       mesh.files.put -> 201 {"content", "name", "size", ...}
    POST   /files/{cid}/shares         JSON {"to": ["bob"], "expires_in": "7d",
                                       "allow_download": true} -> 201 {"capsule", ...}
    GET    /capsules/{id}?as=NAME      the opened plaintext, streamed, with the file's
                                       media type
    DELETE /capsules/{id}              revoke the share -> {"revoked", "revocation_head"}

The upload is never held in memory: the multipart part's chunks go, as an async iterator,
through the encryption and into Kubo. Errors are mapped to HTTP statuses in one place
(``status_for``), from the library's one table of stable error codes
(``ipfs_share.status``): 404 for what does not exist, 403 for an opener who is not
allowed, 410 for an expired or revoked share, 400 for bad input, 502 when the node fails.

GET /capsules opens *as a user* whose keys live in the server's home, so the demo can be
tried with curl. That is only a stand-in: in a real app the opener is the client, which
holds its own keys and calls ``mesh.share.open_capsule`` itself (the capsule ID is all it
needs), so the server never sees plaintext meant for others. The demo users are created
at start-up (``--users bob,carol``) in a temporary home, so your identities are never
touched.

    python examples/aiohttp_backend.py --port 8088 [--api /ip4/127.0.0.1/tcp/5001]

    curl -F file=@notes.txt http://127.0.0.1:8088/files
    curl -d '{"to": ["bob"], "expires_in": "7d"}' http://127.0.0.1:8088/files/CID/shares
    curl 'http://127.0.0.1:8088/capsules/CAPSULE?as=bob'
    curl -X DELETE http://127.0.0.1:8088/capsules/CAPSULE
"""

from __future__ import annotations

import argparse
import logging
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from aiohttp import BodyPartReader, hdrs, web

from ipfs_share.client import Mesh, connect
from ipfs_share.crypto.passphrase import KdfParams
from ipfs_share.errors import (
    InvalidInputError,
    IpfsShareError,
    PassphraseInvalidError,
    PassphraseRequiredError,
)
from ipfs_share.node import resolve_api
from ipfs_share.status import http_status_for

# A demo passphrase, so the server starts unattended. A real deployment reads it from a
# secret store or the environment (IPFS_SHARE_PASSPHRASE, connect()'s default).
DEMO_PASSPHRASE = b"demo passphrase: never hard-code a real one"

SERVER = "server"  # the name of the identity the server acts as
MESH = web.AppKey("mesh", Mesh)
STREAMING = web.RequestKey("streaming", bool)  # set once a response's headers are sent
UPLOAD_PIECE = 1 << 20

log = logging.getLogger("aiohttp_backend")


# -- errors: the statuses come from ipfs-share's one table (ipfs_share.status) -------------
def status_for(exc: IpfsShareError) -> int:
    """The HTTP status for an error: the library's own, from its stable code (the same
    table gives the CLI its exit codes and the agent's HTTP API its statuses)."""
    if isinstance(exc, PassphraseRequiredError | PassphraseInvalidError):
        return 500  # the server's own keys: not the client's input
    return http_status_for(exc)


@web.middleware
async def errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except IpfsShareError as exc:
        if request.get(STREAMING):
            # The status line is gone; all we can do is cut the body short. The response
            # declared its Content-Length, so every client sees the truncation.
            log.warning("stream of %s failed: %s: %s", request.path, exc.code, exc.message)
            raise
        status = status_for(exc)
        if status >= 500:
            log.warning("%s %s: %s: %s", request.method, request.path, exc.code, exc.message)
        body = {"error": exc.code, "message": exc.message, "hint": exc.hint}
        return web.json_response(body, status=status)


# -- handlers ------------------------------------------------------------------------------
async def upload(request: web.Request) -> web.Response:
    if request.content_type != "multipart/form-data":
        raise InvalidInputError(f"expected multipart/form-data, found {request.content_type}")
    part = await (await request.multipart()).next()
    if not isinstance(part, BodyPartReader) or part.name != "file" or not part.filename:
        raise InvalidInputError("expected a multipart/form-data body whose first part is 'file'")
    file_part, name = part, part.filename  # (named again for the closure below)

    async def chunks() -> AsyncIterator[bytes]:
        while chunk := await file_part.read_chunk(UPLOAD_PIECE):
            yield chunk

    media_type = file_part.headers.get(hdrs.CONTENT_TYPE)
    if media_type == "application/octet-stream":
        media_type = None  # say nothing, and the library guesses from the file name
    file = await request.app[MESH].files.put(name, chunks(), media_type=media_type)
    return web.json_response(file.to_json(), status=201)


async def share(request: web.Request) -> web.Response:
    try:
        body = await request.json()
    except ValueError:
        raise InvalidInputError("expected a JSON body") from None
    to = body.get("to") if isinstance(body, dict) else None
    if not isinstance(to, list) or not to or not all(isinstance(t, str) for t in to):
        raise InvalidInputError(
            f'expected "to": a non-empty list of names or dids, found {to!r:.80}'
        )
    allow_download = body.get("allow_download", True)
    if not isinstance(allow_download, bool):
        raise InvalidInputError(
            f'expected "allow_download": true or false, found {allow_download!r}'
        )
    mesh = request.app[MESH]
    capsule = await mesh.share.file(request.match_info["cid"]).with_(
        to, expires_in=body.get("expires_in", "7d"), allow_download=allow_download
    )
    return web.json_response({"capsule": capsule.id, **capsule.to_json()}, status=201)


async def open_capsule(request: web.Request) -> web.StreamResponse:
    opener = request.query.get("as")
    if not opener:
        raise InvalidInputError("expected ?as=NAME: whom to open the capsule as")
    # Every check (signature, expiry, revocation, policy, capability, unwrap) happens here,
    # before the status line is sent, so a refusal is a clean 403 or 410.
    opened = await request.app[MESH].share.open_capsule(request.match_info["id"], as_=opener)
    response = web.StreamResponse(
        headers={
            hdrs.CONTENT_TYPE: opened.media_type,
            hdrs.CONTENT_LENGTH: str(opened.size),
            # allow_download=False is advice to honest clients; a browser shows it inline.
            hdrs.CONTENT_DISPOSITION: "attachment" if opened.allow_download else "inline",
        }
    )
    await response.prepare(request)
    request[STREAMING] = True
    async for piece in opened:  # authenticated chunk by chunk as it is read
        await response.write(piece)
    await response.write_eof()
    return response


async def revoke(request: web.Request) -> web.Response:
    result = await request.app[MESH].share.revoke(request.match_info["id"])
    return web.json_response({"revoked": list(result.revoked), "revocation_head": result.head})


def make_app(mesh: Mesh) -> web.Application:
    """The web app over ``mesh``, whose default identity is the one the server acts as."""
    app = web.Application(middlewares=[errors])
    app[MESH] = mesh
    app.add_routes(
        [
            web.post("/files", upload),
            web.post("/files/{cid}/shares", share),
            web.get("/capsules/{id}", open_capsule),
            web.delete("/capsules/{id}", revoke),
        ]
    )
    return app


async def demo_mesh(
    api: str | None, home: Path, users: list[str], *, kdf: KdfParams | None = None
) -> Mesh:
    """A home with the server's identity (the default) and the demo users' identities."""
    mesh = await connect(
        api or resolve_api(), home=home, passphrase=lambda prompt: DEMO_PASSPHRASE, kdf=kdf
    )
    await mesh.identity.create(SERVER)
    mesh.identity.use(SERVER)
    for name in users:
        await mesh.identity.create(name)
    return mesh


async def build(api: str | None, users: list[str]) -> web.Application:
    home = Path(tempfile.mkdtemp(prefix="ipfs-share-backend-"))
    mesh = await demo_mesh(api, home, users)
    app = make_app(mesh)

    async def cleanup(app: web.Application) -> None:
        await mesh.close()
        shutil.rmtree(home, ignore_errors=True)

    app.on_cleanup.append(cleanup)
    print(f"backend: acting as {SERVER!r}; demo users: {', '.join(users)}; home {home}")
    return app


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--api", help="the Kubo RPC API (multiaddr or URL)")
    parser.add_argument("--port", type=int, default=8088, help="port on 127.0.0.1 (8088)")
    parser.add_argument("--users", default="bob,carol", help="demo users (bob,carol)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    # 127.0.0.1 only: this demo has no authentication at all.
    web.run_app(build(args.api, args.users.split(",")), host="127.0.0.1", port=args.port)
