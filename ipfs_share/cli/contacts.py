"""``ipfs-share contacts add|list|remove|accept|reject``: petnames for other people's dids.

``accept`` takes a pending introduction (a sender who is not a contact yet reached this
home through its agent; ``ipfs-share inbox`` lists them) and makes the sender a contact,
so every inbox sync reads its mailbox from then on; ``reject`` drops it and ignores that
sender's later introductions.

::

    $ ipfs-share inbox --as bob
    ...
    1 pending introduction(s) ...:
      did:key:z6Mk...  wants to send to did:key:z6Mk...  (first 2026-12-01 10:00:00 UTC, 1x)
    $ ipfs-share contacts accept did:key:z6Mk... alice
    alice = did:key:z6Mk... (its mailbox is read from now on)
"""

from __future__ import annotations

import argparse

from ipfs_share import paths
from ipfs_share.cli._delegate import poke_agent
from ipfs_share.cli.common import Context, Subparsers
from ipfs_share.errors import NotFoundError
from ipfs_share.local.state import StateDB
from ipfs_share.services.identities import IdentityService
from ipfs_share.services.introductions import IntroductionService

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
    accept = sub.add_parser(
        "accept",
        help="accept a pending introduction: the sender becomes a contact",
        description="Make the sender of a pending introduction (see 'ipfs-share inbox') a "
        "contact named NAME (default peer-XXXXXXXX), so its mailbox is read from now on.",
    )
    accept.add_argument("did", metavar="DID", help="the sender's did, as the inbox lists it")
    accept.add_argument("name", metavar="NAME", nargs="?", help="a petname for the sender")
    accept.set_defaults(handler=_accept)
    reject = sub.add_parser("reject", help="drop a pending introduction and ignore its sender")
    reject.add_argument("did", metavar="DID")
    reject.set_defaults(handler=_reject)


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


def _introductions() -> IntroductionService:
    home = paths.home_dir()
    db = StateDB(home)
    return IntroductionService(home, None, IdentityService(home, None, db=db), db)


def _accept(args: argparse.Namespace, ctx: Context) -> None:
    intros = _introductions()
    try:
        name = intros.accept(args.did, args.name, as_=getattr(args, "as_", None))
        did = intros.db.contacts.get(name)
    finally:
        intros.close()
        intros.db.close()
    poke_agent(ctx)  # the agent watches the new contact's mailbox now, not in a while
    ctx.emit(
        {"petname": name, "did": None if did is None else did.did},
        f"{name} = {args.did.strip()} (its mailbox is read from now on)",
    )


def _reject(args: argparse.Namespace, ctx: Context) -> None:
    intros = _introductions()
    try:
        count = intros.reject(args.did, as_=getattr(args, "as_", None))
    finally:
        intros.close()
        intros.db.close()
    ctx.emit({"rejected": args.did.strip(), "count": count}, f"rejected {args.did.strip()}")
