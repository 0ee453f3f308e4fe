"""``ipfs-share put`` and ``ipfs-share files``: encrypt and store files, list them, unpin them.

::

    $ ipfs-share put report.pdf
    bafybei...                                   (stdout: the content CID)
    ipfs-share: put report.pdf (3.0 MiB, application/pdf) as alice, pinned
    $ tar c photos | ipfs-share put - --name photos.tar
    $ ipfs-share files
    $ ipfs-share files rm bafybei...
    $ ipfs-share --cluster local put --replication 2 report.pdf   # on 2 peers of a cluster
    $ ipfs-share --cluster local files                             # ... and where each is pinned
    $ ipfs-share put report.pdf --pin-remote pinata                # and at a pinning service

The content CID names ciphertext only: name, media type and size travel encrypted, and
nobody can read the file without a share (``ipfs-share share``). No passphrase is needed
to put: the file key is wrapped to the owner's public key.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from ipfs_share import paths
from ipfs_share.cli._shared import Names, acting, open_mesh, progress
from ipfs_share.cli.common import Context, Subparsers
from ipfs_share.cli.progress import Progress, human_size
from ipfs_share.cli.text import printable
from ipfs_share.client import CLUSTER_ENV
from ipfs_share.errors import InvalidInputError, IpfsShareError
from ipfs_share.formats.cid import normalize_cid
from ipfs_share.local.state import StateDB
from ipfs_share.services.files import PIECE, MeshFile
from ipfs_share.services.identities import IdentityService
from ipfs_share.storage.base import Placement

if TYPE_CHECKING:
    from ipfs_share.storage.pinning import RemotePin

__all__ = ["UNPIN_NOTE", "register"]

UNPIN_NOTE = (
    "note: unpinning lets this node's next garbage collection free the ciphertext; it does "
    "not erase copies other nodes fetched, cached or pinned, and capsules that link to the "
    "content keep it pinned here until they are revoked (the ciphertext is useless without "
    "a key, but it is not erased)"
)


def register(subparsers: Subparsers) -> None:
    put = subparsers.add_parser(
        "put",
        help="encrypt a file and store it, pinned, on the node",
        description="Encrypt FILE (or stdin with -) as the acting identity and pin the "
        "ciphertext; print its content CID. Memory stays flat for any size.",
    )
    put.add_argument("file", metavar="FILE|-", help="the file to put, or - for stdin")
    put.add_argument("--name", help="the file name stored (encrypted) with it (default: FILE's)")
    put.add_argument(
        "--type", dest="media_type", metavar="MEDIA", help="media type (default: from the name)"
    )
    put.add_argument(
        "--keychain",
        metavar="FP",
        help="also seal the file key under this keychain's most recent key: every member "
        "holding it opens the file ('ipfs-share open ID' with the keychain file ID printed)",
    )
    put.add_argument(
        "--replication",
        type=int,
        metavar="N",
        help="on a cluster (--cluster): pin it on N peers (default: the home's setting, "
        "'ipfs-share cluster replication', else the cluster's own)",
    )
    put.add_argument(
        "--pin-remote",
        metavar="SERVICE",
        help="also have this pinning service pin it, and wait until it did "
        "(see 'ipfs-share pin remote')",
    )
    put.add_argument(
        "--pin-remote-timeout",
        type=float,
        default=600.0,
        metavar="SECONDS",
        help="how long to wait for the pinning service (default 600)",
    )
    put.set_defaults(handler=_put)

    files = subparsers.add_parser(
        "files",
        help="list or remove the files put from this home",
        description="Files put from this home (all identities, or --as NAME's).",
    )
    files.set_defaults(handler=_list)
    sub = files.add_subparsers(dest="files_command", metavar="COMMAND")
    sub.add_parser("list", help="list stored files (the default)").set_defaults(handler=_list)
    rm = sub.add_parser(
        "rm", help="unpin files from the node", description="Unpin files. " + UNPIN_NOTE[6:]
    )
    rm.add_argument("cids", nargs="+", metavar="CID")
    rm.set_defaults(handler=_rm)


async def _pieces(stream: BinaryIO, bar: Progress) -> AsyncIterator[bytes]:
    """A pipe, read in pieces: the bar counts what was read, then what is stored."""
    done = 0
    while piece := await asyncio.to_thread(stream.read, PIECE):
        done += len(piece)
        bar.update(done)
        yield piece
    bar.phase("put stdin: storing", done)


def _remaining(stream: BinaryIO) -> int | None:
    """Bytes left in a seekable stream (stdin redirected from a file); None for a pipe."""
    try:
        if not stream.seekable():
            return None
        here = stream.tell()
        return os.fstat(stream.fileno()).st_size - here
    except (OSError, ValueError):
        return None


def _source(args: argparse.Namespace) -> tuple[str, Path | BinaryIO, int | None]:
    """(name, what to put, its size: None for a pipe) for FILE or - (stdin)."""
    data: Path | BinaryIO
    if args.file == "-":
        name: str = args.name if args.name is not None else ""
        data = sys.stdin.buffer
        total = _remaining(data)
    else:
        path = Path(args.file)
        if not path.is_file():
            found = "a folder" if path.is_dir() else "nothing"
            raise InvalidInputError(
                f"expected a file to put, found {found} at {path}",
                hint="put one file at a time; for a folder: tar c DIR | ipfs-share put - "
                "--name DIR.tar",
            )
        name = args.name if args.name is not None else path.name
        data, total = path, path.stat().st_size
    return name, data, total


async def _put(args: argparse.Namespace, ctx: Context) -> None:
    if args.replication is not None and args.replication < 1:
        raise InvalidInputError(
            f"expected --replication N with N >= 1, found {args.replication}",
            hint="ask for the number of peers that should hold the file, e.g. --replication 2",
        )
    if args.pin_remote is not None:
        from ipfs_share.services.remote_pins import RemotePins  # an HTTP client: only if asked

        RemotePins(paths.home_dir(), None).service(args.pin_remote)  # known, before any work
    name, source, total = _source(args)
    remote: RemotePin | None = None
    remote_error: IpfsShareError | None = None
    async with open_mesh(args, ctx, replication=args.replication) as mesh:
        me = mesh.identity.get(acting(args))
        with progress(ctx, f"put {name or 'stdin'}", total) as bar:
            data: Path | BinaryIO | AsyncIterator[bytes] = source
            if total is None and not isinstance(source, Path):
                # A pipe has no size: the library spools ciphertext (never plaintext) to
                # learn it, then stores it; the bar shows both stages.
                bar.phase("put stdin: reading", None)
                data = _pieces(source, bar)
            put = await mesh.files.put(
                name,
                data,
                as_=me.did,
                media_type=args.media_type,
                # With no bar to draw, no report: each one wakes the event loop from the
                # thread that sends the file (2,048 times for 512 MiB).
                progress=bar.update if bar.active else None,
                keychain=args.keychain,
            )
        placements = await mesh.files.placements([put.cid])
        if args.pin_remote is not None:
            try:
                remote = await mesh.remote_pins.pin(
                    args.pin_remote, put.cid, timeout=args.pin_remote_timeout
                )
            except IpfsShareError as exc:
                remote_error = exc
    where = placements.get(put.cid) if placements is not None else None
    result = put.to_json()
    if where is not None:
        result["placement"] = where.to_json()
    if args.pin_remote is not None:
        result["remote_pin"] = (
            remote.to_json() if remote is not None else {"service": args.pin_remote, "error": True}
        )
    ctx.emit(result, put.cid)
    if put.keychain_file is not None and not ctx.json:
        ctx.note(f"keychain file {put.keychain_file}: members open it with "
                 f"'ipfs-share open {put.keychain_file}'")  # fmt: skip
    if not ctx.json:
        label = printable(put.name) if put.name else "stdin"
        pinned = "pinned" if where is None else f"pinned on {_peer_names(where) or 'no peer'}"
        ctx.note(
            f"put {label} ({human_size(put.size)}, {put.media_type}) as {me.name}, {pinned}; "
            f"share it with: ipfs-share share {put.cid} --to NAME"
        )
        if remote is not None:
            ctx.note(f"{args.pin_remote} pinned it too (request {remote.requestid})")
    if remote_error is not None:
        # The put itself is done (stored, recorded, its CID printed); only the remote pin
        # failed, so say both.
        remote_error.message = (
            f"{put.cid} is stored, but {args.pin_remote} did not pin it: {remote_error.message}"
        )
        raise remote_error


def _peer_names(where: Placement) -> str:
    return ", ".join(p.name for p in where.pinned)


def _line(f: MeshFile, names: Names, where: Placement | None = None) -> str:
    name = printable(f.name) if f.name else "(no name)"
    line = f"{f.cid}  {human_size(f.size):>10}  {names.short(f.owner):<12} {name}"
    if where is not None:
        others = [f"{p.name}: {p.status}" for p in where.peers if p.status not in _QUIET]
        line += f"  [pinned on {_peer_names(where) or 'no peer'}"
        line += f"; {', '.join(others)}]" if others else "]"
    return line


# Statuses not worth a word in a listing: held by the listed peers, or by others.
_QUIET = frozenset({"pinned", "remote"})


async def _list(args: argparse.Namespace, ctx: Context) -> None:
    home = paths.home_dir()
    owner = None
    if acting(args) is not None:
        owner = IdentityService(home, None).get(acting(args)).did
    db = StateDB(home)
    try:
        found = [MeshFile.of(r) for r in db.files.list(owner=owner)]
    finally:
        db.close()
    placements: dict[str, Placement] = {}
    if found and (ctx.cluster or os.environ.get(CLUSTER_ENV)):
        # On a cluster, also where each file is pinned (asked of the cluster).
        async with open_mesh(args, ctx) as mesh:
            stored = [f.cid for f in found if f.state == "stored"]
            placements = await mesh.files.placements(stored) or {}
    names = Names()
    ctx.emit(
        {
            "files": [
                {
                    **f.to_json(),
                    **({"placement": placements[f.cid].to_json()} if f.cid in placements else {}),
                }
                for f in found
            ]
        },
        "\n".join(_line(f, names, placements.get(f.cid)) for f in found)
        or "no files yet: ipfs-share put FILE",
    )


async def _rm(args: argparse.Namespace, ctx: Context) -> None:
    removed: list[MeshFile] = []
    still_shared: dict[str, int] = {}
    cids = [normalize_cid(c) for c in args.cids]  # all checked before any is unpinned
    async with open_mesh(args, ctx) as mesh:
        for cid in cids:
            gone = await mesh.files.remove(cid)
            removed.append(gone)
            # An expired share opens no more but its capsule still pins the content.
            live = [
                s for s in mesh.share.list(content=gone.cid) if s.state in ("active", "expired")
            ]
            if live:
                still_shared[gone.cid] = len(live)
    lines = [f"unpinned {f.cid} ({printable(f.name) if f.name else 'no name'})" for f in removed]
    for cid, n in still_shared.items():
        lines.append(
            f"  {cid}: {n} share{'s' if n > 1 else ''} not revoked still pin it; revoke them "
            f"to release it (ipfs-share shares list --content {cid})"
        )
    ctx.emit(
        {
            "removed": [f.to_json() for f in removed],
            "still_pinned_by_shares": still_shared,
            "note": UNPIN_NOTE.removeprefix("note: "),
        },
        "\n".join(lines),
    )
    if not ctx.json:
        ctx.note(UNPIN_NOTE)
