"""``ipfs-share contacts add|list|remove``: petnames for other people's dids."""

from __future__ import annotations

import argparse

from ipfs_share import paths
from ipfs_share.cli.common import Context, Subparsers
from ipfs_share.errors import NotFoundError
from ipfs_share.local.state import StateDB
from ipfs_share.services.identities import IdentityService

__all__ = ["register"]


def register(subparsers: Subparsers) -> None:
    contacts = subparsers.add_parser("contacts", help="petnames for other people's identities")
    sub = contacts.add_subparsers(dest="contacts_command", metavar="COMMAND", required=True)
    add = sub.add_parser("add", help="name a did (or k51... IPNS name)")
    add.add_argument("petname")
    add.add_argument("who")
    add.set_defaults(handler=_add)
    sub.add_parser("list", help="list contacts").set_defaults(handler=_list)
    remove = sub.add_parser("remove", help="forget a petname")
    remove.add_argument("petname")
    remove.set_defaults(handler=_remove)


def _add(args: argparse.Namespace, ctx: Context) -> None:
    did = IdentityService(paths.home_dir(), None).add_contact(args.petname, args.who)
    ctx.emit({"petname": args.petname, "did": did}, f"{args.petname} = {did}")


def _list(args: argparse.Namespace, ctx: Context) -> None:
    found = StateDB(paths.home_dir()).contacts.list()
    ctx.emit(
        {"contacts": [{"petname": c.petname, "did": c.did, "added": c.added} for c in found]},
        "\n".join(f"{c.petname:<16} {c.did}" for c in found) or "no contacts yet",
    )


def _remove(args: argparse.Namespace, ctx: Context) -> None:
    if not StateDB(paths.home_dir()).contacts.remove(args.petname):
        raise NotFoundError(
            f"no contact named {args.petname!r}", hint="see 'ipfs-share contacts list'"
        )
    ctx.emit({"removed": args.petname}, f"removed {args.petname}")
