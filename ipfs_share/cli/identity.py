"""``ipfs-share identity ...``: create, keep, move, publish and resolve identities.

::

    $ ipfs-share identity create alice
    created alice did:key:z6Mk...
    $ ipfs-share identity publish alice
    published alice as k51... (seq 0)
    $ ipfs-share identity resolve did:key:z6Mk... --name bob
    did:key:z6Mk... (seq 0), saved as contact bob
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ipfs_share import paths
from ipfs_share.cli.common import Context, Subparsers
from ipfs_share.cli.passphrase import add_passphrase_option, passphrase_source
from ipfs_share.client import open_storage
from ipfs_share.errors import InvalidInputError
from ipfs_share.local.files import write_atomic
from ipfs_share.services.identities import Identity, IdentityService
from ipfs_share.storage.base import Storage

__all__ = ["register", "service"]


def register(subparsers: Subparsers) -> None:
    identity = subparsers.add_parser(
        "identity",
        help="create, list, move, publish and resolve identities",
        description="An identity is an Ed25519 signing key and an X25519 encryption key, kept "
        "in the ipfs-share home; its did:key names it everywhere.",
    )
    sub = identity.add_subparsers(dest="identity_command", metavar="COMMAND", required=True)

    create = sub.add_parser("create", help="make a new identity")
    create.add_argument("name")
    create.add_argument(
        "--unencrypted",
        action="store_true",
        help="keep the keys in the clear (development only: anyone who reads the file has them)",
    )
    add_passphrase_option(create)
    create.set_defaults(handler=_create)

    sub.add_parser("list", help="list local identities").set_defaults(handler=_list)

    show = sub.add_parser("show", help="show one identity (the default one if no name)")
    show.add_argument("name", nargs="?")
    show.set_defaults(handler=_show)

    use = sub.add_parser("use", help="make an identity the default for every command")
    use.add_argument("name")
    use.set_defaults(handler=_use)

    rename = sub.add_parser("rename", help="give an identity another local name")
    rename.add_argument("old")
    rename.add_argument("new")
    rename.set_defaults(handler=_rename)

    delete = sub.add_parser("delete", help="delete an identity's keys from this machine")
    delete.add_argument("name")
    delete.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    delete.set_defaults(handler=_delete)

    export = sub.add_parser("export", help="write an identity, sealed, to move it elsewhere")
    export.add_argument("name")
    export.add_argument("-o", "--output", type=Path, help="file to write (default stdout)")
    add_passphrase_option(export)
    export.set_defaults(handler=_export)

    imp = sub.add_parser("import", help="take an identity written by export")
    imp.add_argument("file", help="the export file, or - for stdin")
    imp.add_argument("--name", help="a local name (default: the name in the export)")
    add_passphrase_option(imp)
    imp.set_defaults(handler=_import)

    publish = sub.add_parser("publish", help="publish the signed identity document to IPNS")
    publish.add_argument("name", nargs="?")
    add_passphrase_option(publish)
    publish.set_defaults(handler=_publish)

    resolve = sub.add_parser("resolve", help="fetch and verify someone's identity document")
    resolve.add_argument("who", help="a did:key or k51... IPNS name")
    resolve.add_argument("--name", help="save it as a contact under this petname")
    resolve.set_defaults(handler=_resolve)


def service(args: argparse.Namespace, storage: Storage | None = None) -> IdentityService:
    return IdentityService(paths.home_dir(), storage, passphrase=passphrase_source(args))


def _line(i: Identity) -> str:
    flags = [] if i.encrypted else ["UNENCRYPTED"]
    if i.default:
        flags.append("default")
    if i.published_seq is not None:
        flags.append(f"published seq {i.published_seq}")
    extra = f"  ({', '.join(flags)})" if flags else ""
    return f"{i.name:<16} {i.did}{extra}"


async def _create(args: argparse.Namespace, ctx: Context) -> None:
    ids = service(args)
    if args.unencrypted:
        ctx.note("warning: the keys are stored UNENCRYPTED; use this for development only")
    created = await ids.create(args.name, encrypted=not args.unencrypted)
    ctx.emit(created.to_json(), f"created {created.name} {created.did}")


def _list(args: argparse.Namespace, ctx: Context) -> None:
    found = service(args).list()
    ctx.emit(
        {"identities": [i.to_json() for i in found]},
        "\n".join(_line(i) for i in found) or "no identities yet: ipfs-share identity create NAME",
    )


def _show(args: argparse.Namespace, ctx: Context) -> None:
    i = service(args).get(args.name)
    text = "\n".join(
        [
            f"name:      {i.name}{'  (default)' if i.default else ''}",
            f"did:       {i.did}",
            f"ipns name: {i.ipns_name}",
            f"x25519:    {i.enc}",
            f"keys:      {'sealed with a passphrase' if i.encrypted else 'UNENCRYPTED'}",
            f"published: {'never' if i.published_seq is None else f'seq {i.published_seq}'}",
        ]
    )
    ctx.emit(i.to_json(), text)


def _use(args: argparse.Namespace, ctx: Context) -> None:
    i = service(args).use(args.name)
    ctx.emit(i.to_json(), f"{i.name} is now the default identity")


def _rename(args: argparse.Namespace, ctx: Context) -> None:
    i = service(args).rename(args.old, args.new)
    ctx.emit(i.to_json(), f"renamed {args.old} to {i.name}")


def _delete(args: argparse.Namespace, ctx: Context) -> None:
    ids = service(args)
    i = ids.get(args.name)
    live = ids.live_shares(i.did)
    if live:
        ctx.note(
            f"warning: {i.name} issued {live} share(s) that are still active; without its "
            "keys they can never be revoked (revoke them first: ipfs-share revoke CAPSULE)"
        )
    if not args.yes:
        if not sys.stdin.isatty():
            raise InvalidInputError(
                f"deleting {i.name} needs confirmation",
                hint="pass --yes (its keys are gone for good unless you exported them)",
            )
        answer = input(f"delete the keys of {i.name} ({i.did})? type its name to confirm: ")
        if answer.strip() != i.name:
            ctx.note("not deleted")
            return
    deleted = ids.delete(i.did)
    ctx.emit(deleted.to_json(), f"deleted {deleted.name} {deleted.did}")


async def _export(args: argparse.Namespace, ctx: Context) -> None:
    ids = service(args)
    source = passphrase_source(args)
    blob = await ids.export(args.name, source(f"passphrase to seal the export of {args.name}"))
    if args.output:
        write_atomic(args.output, blob.encode())
        ctx.emit({"file": str(args.output)}, f"wrote {args.output} (sealed; keep it private)")
    else:
        ctx.emit({"export": blob}, blob.rstrip("\n"))


def _read_blob(name: str) -> str:
    if name == "-":
        return sys.stdin.read()
    try:
        return Path(name).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"cannot read {name}: {exc}") from exc


async def _import(args: argparse.Namespace, ctx: Context) -> None:
    blob = _read_blob(args.file)
    ids = service(args)
    source = passphrase_source(args)
    i = await ids.import_(blob, source("passphrase of the export"), name=args.name)
    ctx.emit(i.to_json(), f"imported {i.name} {i.did}")


async def _publish(args: argparse.Namespace, ctx: Context) -> None:
    from ipfs_share.cli._delegate import run_operation

    params = {"name": args.name, "as": getattr(args, "as_", None)}
    done = await run_operation(args, ctx, "publish", params)
    ctx.emit(done, f"published {done['did']} as {done['ipns_name']} (seq {done['seq']})")


async def _resolve(args: argparse.Namespace, ctx: Context) -> None:
    async with await open_storage(ctx.api, cluster=ctx.cluster) as storage:
        found = await service(args, storage).resolve(args.who, petname=args.name)
    saved = f", saved as contact {args.name}" if args.name else ""
    ctx.emit(
        found.to_json(), f"{found.did} (seq {found.seq}){saved}\nx25519: {found.enc.to_text()}"
    )
