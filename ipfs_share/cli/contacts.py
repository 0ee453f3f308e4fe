"""``ipfs-share contacts add|list|remove|accept|reject``: petnames for other people's dids.

::

    $ ipfs-share contacts add bob did:key:z6Mk...
    bob = did:key:z6Mk...
    $ ipfs-share contacts add bob did:key:z6Mk...other    # refused: bob is taken (--force)

A petname that is already a contact's is refused unless ``--force`` (a typo would send
shares to someone else), and one that is a local identity's name is refused (names find
local identities first, so the contact could never be reached). ``add`` checks the did's
identity document can be found now, and warns if not (the did is kept all the same:
its owner may publish later, or be on a node this one cannot reach yet).

``accept`` takes a pending introduction (a sender who is not a contact yet reached this
home through its agent; ``ipfs-share inbox`` lists them) and makes the sender a contact,
so every inbox sync reads its mailbox from then on; ``reject`` drops it and ignores that
sender's later introductions.

::

    $ ipfs-share inbox --as bob
    ...
    1 pending introduction(s) ...:
      did:key:z6Mk...  wants to send to did:key:z6Mk...  (first 2026-12-01T10:00:00Z, 1x)
    $ ipfs-share contacts accept did:key:z6Mk... alice
    alice = did:key:z6Mk... (its mailbox is read from now on)
"""

from __future__ import annotations

import argparse
import asyncio

from ipfs_share import paths
from ipfs_share.cli._delegate import poke_agent
from ipfs_share.cli.common import Context, Subparsers
from ipfs_share.client import open_storage
from ipfs_share.errors import IpfsShareError, NotFoundError
from ipfs_share.local.state import StateDB
from ipfs_share.services.identities import IdentityService
from ipfs_share.services.introductions import IntroductionService

__all__ = ["CHECK_TIMEOUT", "register"]

# Seconds ``contacts add`` gives the check that the did's identity document resolves.
CHECK_TIMEOUT = 10.0


def register(subparsers: Subparsers) -> None:
    contacts = subparsers.add_parser("contacts", help="petnames for other people's identities")
    sub = contacts.add_subparsers(dest="contacts_command", metavar="COMMAND", required=True)
    add = sub.add_parser(
        "add",
        help="name a did (or k51... IPNS name)",
        description="Give someone's did a petname here, to use with --to, --from and "
        "--drop. It checks that their identity document resolves now, and warns if not.",
    )
    add.add_argument("petname", help="the name you will use for them")
    add.add_argument("who", help="their did:key:z6Mk... (or k51... IPNS name)")
    add.add_argument(
        "--force", action="store_true", help="replace a contact of that petname (another did)"
    )
    add.add_argument(
        "--no-check", action="store_true", help="do not check that the did resolves now"
    )
    add.set_defaults(handler=_add, as_applies=False)
    sub.add_parser("list", help="list contacts").set_defaults(handler=_list, as_applies=False)
    remove = sub.add_parser("remove", help="forget a petname")
    remove.add_argument("petname", help="the contact to forget")
    remove.set_defaults(handler=_remove, as_applies=False)
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
    reject.add_argument("did", metavar="DID", help="the sender's did, as the inbox lists it")
    reject.set_defaults(handler=_reject)


async def _add(args: argparse.Namespace, ctx: Context) -> None:
    ids = IdentityService(paths.home_dir(), None)
    before = ids.db.contacts.get(args.petname)
    did = ids.add_contact(args.petname, args.who, force=args.force)
    replaced = before.did if before is not None and before.did != did else None
    ctx.emit({"petname": args.petname, "did": did, "replaced": replaced}, f"{args.petname} = {did}")
    if replaced is not None:
        ctx.note(f"{args.petname} was {replaced} before")
    if not args.no_check:
        why = await _unresolvable(ctx, did)
        if why is not None:
            ctx.note(
                f"warning: the identity document of {did} cannot be resolved right now "
                f"({why}); the contact is kept, but sharing with {args.petname} needs it: "
                "ask its owner to run 'ipfs-share identity publish', and check the nodes "
                "are connected"
            )


async def _unresolvable(ctx: Context, did: str) -> str | None:
    """Why ``did``'s identity document cannot be had now, or None if it resolved."""
    try:
        async with await open_storage(ctx.api, cluster=ctx.cluster) as storage:
            ids = IdentityService(paths.home_dir(), storage)
            async with asyncio.timeout(CHECK_TIMEOUT):
                await ids.resolve(did)
    except TimeoutError:
        return f"no answer within {CHECK_TIMEOUT:.0f} s"
    except IpfsShareError as exc:
        return exc.message
    return None


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
