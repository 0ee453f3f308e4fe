"""``ipfs-share send``, ``inbox``, ``outgoing`` and ``cancel``: capsules through mailboxes.

::

    $ ipfs-share send bafyrei... --to bob           # alice: into her mailbox for bob
    sent bafyrei... to bob (queued)
    $ ipfs-share inbox --as bob                     # bob, whenever: what is new
    bafyrei...  from alice  delivered  sent 2026-11-22 10:00:00 UTC
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
from datetime import UTC, datetime

from ipfs_share.cli.common import Context, Subparsers
from ipfs_share.cli.main import exit_code_for
from ipfs_share.cli.passphrase import add_passphrase_option, passphrase_source
from ipfs_share.client import Mesh, connect
from ipfs_share.services.mailbox import InboxItem, OutgoingCapsule

__all__ = ["register"]


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


def _when(ts: int | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _item_line(item: InboxItem) -> str:
    return (
        f"{item.id}  from {item.sender_name or item.sender}  {item.state}  sent {_when(item.sent)}"
    )


def _outgoing_line(o: OutgoingCapsule) -> str:
    when = {"delivered": o.delivered_at, "opened": o.opened_at, "cancelled": o.cancelled_at}
    at = when.get(o.state)
    suffix = f" {_when(at)}" if at is not None else ""
    return f"{o.id}  to {o.recipient_name or o.recipient}  {o.state}{suffix}"


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
    failed = [
        {"sender": who, "code": exc.code, "message": exc.message, "hint": exc.hint}
        for who, exc in report.failed
    ]
    lines = [f"{len(report.new)} new"] + [_item_line(i) for i in items]
    ctx.emit(
        {
            "new": [i.to_json() for i in report.new],
            "inbox": [i.to_json() for i in items],
            "unreachable": list(report.unreachable),
            "failed": failed,
            "partial": list(report.partial),
            "deferred": [{"sender": who, "capsules": n} for who, n in report.deferred],
            "missing": [{"sender": who, "capsules": n} for who, n in report.missing],
        },
        "\n".join(lines),
    )
    for who in report.partial:
        ctx.note(f"the mailbox from {who} is long: the rest is read at the next sync")
    for who, n in report.deferred:
        ctx.note(f"{n} capsules from {who} could not be fetched yet; tried again later")
    for who, n in report.missing:
        ctx.note(f"{n} capsules from {who} could not be fetched after every retry: missing")
    for who, exc in report.failed:  # the others were synced and stored all the same
        print(f"ipfs-share: error: the mailbox from {who}: {exc.message}", file=ctx.stderr)
        if exc.hint:
            print(f"ipfs-share: hint: {exc.hint}", file=ctx.stderr)
    return exit_code_for(report.failed[0][1]) if report.failed else 0


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
        done = await mesh.share.cancel(args.capsule)
    ctx.emit(
        {"cancelled": [o.to_json() for o in done]},
        "\n".join(_outgoing_line(o) for o in done)
        + "\nnote: the capsule is revoked; its entry stays in the mailbox's history",
    )
