"""``ipfs-share send``, ``inbox``, ``outgoing`` and ``cancel``: capsules through mailboxes.

::

    $ ipfs-share send bafyrei... --to bob           # alice: into her mailbox for bob
    sent bafyrei... to bob (queued)
    $ ipfs-share inbox --as bob                     # bob, whenever: what is new
    1 new
    bafyrei...  from alice  delivered  sent 2026-11-22T10:00:00Z
    ipfs-share: read 1 mailbox (1 contact, and whoever you sent to or named with --from): 1 answered
    $ ipfs-share inbox --as bob --watch             # and then as it arrives
    $ ipfs-share outgoing                           # alice: queued, delivered, opened ...
    $ ipfs-share cancel bafyrei...                  # withdraw one nobody picked up yet

A mailbox is an IPNS name only the two ends can compute (docs/spec/mailbox.md), so no
server is involved: bob's node fetches alice's chain from alice's node when he syncs.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from ipfs_share.cli._shared import Names, fmt_time
from ipfs_share.cli.common import Context, Subparsers
from ipfs_share.cli.hints import cli_hint
from ipfs_share.cli.main import exit_code_for
from ipfs_share.cli.passphrase import add_passphrase_option, passphrase_source
from ipfs_share.client import Mesh, connect
from ipfs_share.errors import InvalidInputError
from ipfs_share.services.mailbox import InboxItem, OutgoingCapsule, SyncReport

__all__ = ["delivery_text", "register"]


def register(subparsers: Subparsers) -> None:
    send = subparsers.add_parser(
        "send",
        help="send a capsule to a recipient's inbox (through your mailbox for them)",
        description="Append the capsule to your mailbox for each recipient and publish it; "
        "they find it with 'ipfs-share inbox', even if their node is off now.",
    )
    send.add_argument("capsule", metavar="CAPSULE", help="the capsule ID printed by share")
    send.add_argument(
        "--to",
        action="append",
        metavar="NAME[,NAME...]",
        help="recipients (default: everyone the share was made for)",
    )
    add_passphrase_option(send)
    send.set_defaults(handler=_send)

    inbox = subparsers.add_parser(
        "inbox",
        help="sync your contacts' mailboxes and list what arrived",
        description="Read the mailboxes of your contacts (and --from), verify every new "
        "entry, acknowledge what arrived, and list the inbox. Open an item with "
        "'ipfs-share open CAPSULE'.",
    )
    inbox.add_argument(
        "--from",
        dest="senders",
        action="append",
        default=[],
        metavar="NAME|DID",
        help="also read this sender's mailbox (not a contact)",
    )
    inbox.add_argument(
        "--watch",
        action="store_true",
        help="keep going: print capsules as they arrive (pubsub, else polling) until Ctrl-C",
    )
    inbox.add_argument("--all", action="store_true", help="include withdrawn capsules")
    add_passphrase_option(inbox)
    inbox.set_defaults(handler=_inbox)

    outgoing = subparsers.add_parser(
        "outgoing",
        help="capsules you sent, and whether they were delivered or opened",
        description="Read the recipients' acknowledgements, then list sent capsules with "
        "their state: queued, delivered, opened, revoked or cancelled.",
    )
    outgoing.add_argument(
        "--no-refresh", action="store_true", help="do not read acknowledgements first"
    )
    add_passphrase_option(outgoing)
    outgoing.set_defaults(handler=_outgoing)

    cancel = subparsers.add_parser(
        "cancel",
        help="withdraw a sent capsule nobody has picked up yet (revokes it)",
        description="Revoke a sent capsule that no recipient has acknowledged: a recipient "
        "who syncs later never sees it as new and cannot open it. One already delivered "
        "cannot be taken back: use 'ipfs-share revoke'.",
    )
    cancel.add_argument("capsule", metavar="CAPSULE")
    add_passphrase_option(cancel)
    cancel.set_defaults(handler=_cancel)


@asynccontextmanager
async def _mesh(args: argparse.Namespace, ctx: Context) -> AsyncIterator[Mesh]:
    mesh = await connect(ctx.api, cluster=ctx.cluster, passphrase=passphrase_source(args))
    async with mesh:
        yield mesh


def _item_line(item: InboxItem) -> str:
    state = item.state
    if item.replaced_by is not None:
        state += f" by {item.replaced_by}"
    elif item.state == "expired":
        state += f" {fmt_time(item.expires)}"
    return f"{item.id}  from {item.sender_name or item.sender}  {state}  sent {fmt_time(item.sent)}"


def delivery_text(o: OutgoingCapsule) -> str:
    """A sent capsule's state and the times that make it, as 'outgoing' and 'shares show'
    both print it: ``opened 2026-11-22T10:00:05Z``, ``revoked (opened ...)``."""
    times = [("sent", o.sent_at), ("delivered", o.delivered_at), ("opened", o.opened_at)]
    if o.cancelled_at is not None:
        times.append(("cancelled", o.cancelled_at))
    shown = {"queued": "sent", "delivered": "delivered", "opened": "opened"}.get(o.state)
    if shown is not None:
        at = dict(times)[shown]
        return f"{o.state} {fmt_time(at)}"
    done = [f"{k} {fmt_time(t)}" for k, t in times if t is not None and k != "sent"]
    tail = f" ({', '.join(done)})" if done else ""
    replaced = f" by {o.replaced_by}" if o.state == "replaced" and o.replaced_by else ""
    return f"{o.state}{replaced}{tail}"


def _outgoing_line(o: OutgoingCapsule) -> str:
    return f"{o.id}  to {o.recipient_name or o.recipient}  {delivery_text(o)}"


async def _send(args: argparse.Namespace, ctx: Context) -> None:
    names = [n.strip() for v in args.to or [] for n in v.split(",") if n.strip()]
    async with _mesh(args, ctx) as mesh:
        sent = await mesh.share.send(args.capsule, names or None, as_=args.as_)
    ctx.emit(
        {"sent": [o.to_json() for o in sent]},
        "\n".join(f"sent {o.id} to {o.recipient_name or o.recipient} ({o.state})" for o in sent),
    )


async def _inbox(args: argparse.Namespace, ctx: Context) -> int:
    async with _mesh(args, ctx) as mesh:
        if args.watch:
            await _watch(mesh, args, ctx)
            return 0
        report = await mesh.inbox.sync_report(args.as_, senders=args.senders)
        items = mesh.inbox.list(args.as_, include_withdrawn=args.all)
        contacts = len(mesh.db.contacts.list())
    lines = [f"{len(report.new)} new"] + [_item_line(i) for i in items]
    data = report.to_json()
    del data["receipts"]
    ctx.emit({**data, "inbox": [i.to_json() for i in items]}, "\n".join(lines))
    _say_what_was_read(ctx, report, contacts)
    for who in report.partial:
        ctx.note(f"the mailbox from {who} is long: the rest is read at the next sync")
    for who, n in report.deferred:
        ctx.note(f"{n} capsules from {who} could not be fetched yet; tried again later")
    for who, n in report.missing:
        ctx.note(f"{n} capsules from {who} could not be fetched after every retry: missing")
    for who, exc in report.failed:  # the others were synced and stored all the same
        print(f"ipfs-share: error: the mailbox from {who}: {exc.message}", file=ctx.stderr)
        if cli_hint(exc):
            print(f"ipfs-share: hint: {cli_hint(exc)}", file=ctx.stderr)
    return exit_code_for(report.failed[0][1]) if report.failed else 0


def _say_what_was_read(ctx: Context, report: SyncReport, contacts: int) -> None:
    """On stderr: how many mailboxes were read, which did not answer and why; a hint
    when there is nobody to read from."""
    names = Names()
    n = len(report.read)
    answered = n - len(report.unreachable) - len(report.failed)
    ctx.note(
        f"read {n} mailbox{'es' if n != 1 else ''} ({contacts} contact"
        f"{'s' if contacts != 1 else ''}, and whoever you sent to or named with --from): "
        f"{answered} answered"
        + (f", {len(report.unreachable)} unreachable" if report.unreachable else "")
        + (f", {len(report.failed)} failed" if report.failed else "")
    )
    for who, why in report.unreachable_why:
        ctx.note(f"  {names.short(who)}: {why}")
    if report.revoked:
        ctx.note(
            f"{len(report.revoked)} capsule{'s were' if len(report.revoked) != 1 else ' was'} "
            "revoked by the issuer since it arrived"
        )
    if contacts == 0:
        ctx.note(
            "hint: you have no contacts, whose mailboxes an inbox reads: add one with "
            "'ipfs-share contacts add NAME DID', or read a sender's with --from DID"
        )


async def _watch(mesh: Mesh, args: argparse.Namespace, ctx: Context) -> None:
    async with mesh.inbox.watch(args.as_, senders=args.senders) as watch:

        async def say_how() -> None:
            await watch.ready.wait()
            if watch.mode == "pubsub":
                ctx.note("watching for capsules over pubsub (Ctrl-C to stop)")
            else:
                ctx.note(
                    "pubsub is off on the node: polling for capsules with a backoff "
                    "(Ctrl-C to stop)"
                )

        told = asyncio.create_task(say_how())
        try:
            async for item in watch:
                if ctx.json:
                    ctx.emit(item.to_json(), "")
                else:
                    print(_item_line(item), file=ctx.stdout, flush=True)
        finally:
            told.cancel()


async def _outgoing(args: argparse.Namespace, ctx: Context) -> None:
    async with _mesh(args, ctx) as mesh:
        found = await mesh.share.outgoing(as_=args.as_, refresh=not args.no_refresh)
    ctx.emit(
        {"outgoing": [o.to_json() for o in found]},
        "\n".join(_outgoing_line(o) for o in found) or "nothing sent yet",
    )


async def _cancel(args: argparse.Namespace, ctx: Context) -> None:
    async with _mesh(args, ctx) as mesh:
        if args.as_ is not None:
            me = mesh.identity.get(args.as_)
            issuer = mesh.share.get(args.capsule).issuer
            if issuer != me.did:
                raise InvalidInputError(
                    f"the share {args.capsule} was made by {issuer}, not by {me.name}",
                    hint="cancel it as the identity that shared it (or leave out --as)",
                )
        done = await mesh.share.cancel(args.capsule)
    ctx.emit(
        {"cancelled": [o.to_json() for o in done]},
        "\n".join(_outgoing_line(o) for o in done)
        + "\nnote: the capsule is revoked; its entry stays in the mailbox's history",
    )
