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
``inbox`` also lists pending introductions: senders who are not contacts yet and reached
this home's agent (docs/spec/introductions.md; accept with ``contacts accept``). With an
agent running, send, inbox, outgoing and cancel run in it (its unlocked keys), else here.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from ipfs_share.cli._delegate import run_operation
from ipfs_share.cli._shared import Names, fmt_time
from ipfs_share.cli.common import Context, Subparsers
from ipfs_share.cli.hints import cli_hint
from ipfs_share.cli.main import exit_code_for
from ipfs_share.cli.passphrase import add_passphrase_option, passphrase_source
from ipfs_share.client import Mesh, connect
from ipfs_share.errors import error_class

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
    send.add_argument(
        "--link",
        action="store_true",
        help="also print a link (ipfs-share:CAPSULE?from=DID) to hand over out of band",
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


def _item_line(item: dict[str, Any]) -> str:
    """An inbox item (``InboxItem.to_json()``) on one line."""
    state = str(item["state"])
    if item.get("replaced_by") is not None:
        state += f" by {item['replaced_by']}"
    elif item["state"] == "expired":
        state += f" {fmt_time(item['expires'])}"
    who = item["sender_name"] or item["sender"]
    return f"{item['capsule']}  from {who}  {state}  sent {fmt_time(item['sent_at'])}"


def delivery_text(o: dict[str, Any]) -> str:
    """A sent capsule's state (``OutgoingCapsule.to_json()``) and the times that make it,
    as 'outgoing' and 'shares show' both print it: ``opened 2026-11-22T10:00:05Z``,
    ``revoked (opened ...)``."""
    times = [("sent", o["sent_at"]), ("delivered", o["delivered_at"]), ("opened", o["opened_at"])]
    if o["cancelled_at"] is not None:
        times.append(("cancelled", o["cancelled_at"]))
    shown = {"queued": "sent", "delivered": "delivered", "opened": "opened"}.get(o["state"])
    if shown is not None:
        return f"{o['state']} {fmt_time(dict(times)[shown])}"
    done = [f"{k} {fmt_time(t)}" for k, t in times if t is not None and k != "sent"]
    tail = f" ({', '.join(done)})" if done else ""
    replaced = f" by {o['replaced_by']}" if o["state"] == "replaced" and o["replaced_by"] else ""
    return f"{o['state']}{replaced}{tail}"


def _outgoing_line(o: dict[str, Any]) -> str:
    return f"{o['capsule']}  to {o['recipient_name'] or o['recipient']}  {delivery_text(o)}"


def _introduction_line(i: dict[str, Any]) -> str:
    return (
        f"{i['sender']}  wants to send to {i['recipient']}  (first {fmt_time(i['first_seen'])}, "
        f"{i['count']}x)"
    )


async def _send(args: argparse.Namespace, ctx: Context) -> None:
    names = [n.strip() for v in args.to or [] for n in v.split(",") if n.strip()]
    params = {"capsule": args.capsule, "to": names, "as": args.as_}
    data = await run_operation(args, ctx, "send", params)
    lines = [
        f"sent {o['capsule']} to {o['recipient_name'] or o['recipient']} ({o['state']})"
        for o in data["sent"]
    ]
    if args.link:
        lines += sorted(set(data["links"].values()))
    else:
        data.pop("links", None)
    ctx.emit(data, "\n".join(lines))


async def _inbox(args: argparse.Namespace, ctx: Context) -> int:
    if args.watch:
        async with _mesh(args, ctx) as mesh:
            await _watch(mesh, args, ctx)
        return 0
    params = {"as": args.as_, "from": args.senders, "all": args.all}
    data = await run_operation(args, ctx, "inbox", params)
    lines = [f"{len(data['new'])} new"] + [_item_line(i) for i in data["inbox"]]
    intros = data["introductions"]
    if intros:
        lines.append(
            f"{len(intros)} pending introduction(s) from senders you have not added "
            "(accept with 'ipfs-share contacts accept DID [NAME]'):"
        )
        lines += [f"  {_introduction_line(i)}" for i in intros]
    contacts = data.pop("contacts")
    ctx.emit(data, "\n".join(lines))
    _say_what_was_read(ctx, data, contacts)
    for who in data["partial"]:
        ctx.note(f"the mailbox from {who} is long: the rest is read at the next sync")
    for d in data["deferred"]:
        ctx.note(
            f"{d['capsules']} capsules from {d['sender']} could not be fetched yet; "
            "tried again later"
        )
    for d in data["missing"]:
        ctx.note(
            f"{d['capsules']} capsules from {d['sender']} could not be fetched after every "
            "retry: missing"
        )
    for failed in data["failed"]:  # the others were synced and stored all the same
        print(
            f"ipfs-share: error: the mailbox from {failed['sender']}: {failed['message']}",
            file=ctx.stderr,
        )
        hint = cli_hint(error_class(failed["code"])(failed["message"], hint=failed["hint"]))
        if hint:
            print(f"ipfs-share: hint: {hint}", file=ctx.stderr)
    if data["failed"]:
        first = data["failed"][0]
        return exit_code_for(error_class(first["code"])(first["message"]))
    return 0


def _say_what_was_read(ctx: Context, report: dict[str, Any], contacts: int) -> None:
    """On stderr (from ``SyncReport.to_json()``): how many mailboxes were read, which did
    not answer and why; a hint when there is nobody to read from."""
    names = Names()
    n = len(report["read"])
    unreachable, failed, revoked = report["unreachable"], report["failed"], report["revoked"]
    answered = n - len(unreachable) - len(failed)
    ctx.note(
        f"read {n} mailbox{'es' if n != 1 else ''} ({contacts} contact"
        f"{'s' if contacts != 1 else ''}, and whoever you sent to or named with --from): "
        f"{answered} answered"
        + (f", {len(unreachable)} unreachable" if unreachable else "")
        + (f", {len(failed)} failed" if failed else "")
    )
    for u in unreachable:
        if u["why"]:
            ctx.note(f"  {names.short(u['sender'])}: {u['why']}")
    if revoked:
        ctx.note(
            f"{len(revoked)} capsule{'s were' if len(revoked) != 1 else ' was'} "
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
                    ctx.out(_item_line(item.to_json()), flush=True)
        finally:
            told.cancel()


async def _outgoing(args: argparse.Namespace, ctx: Context) -> None:
    params = {"as": args.as_, "refresh": not args.no_refresh}
    data = await run_operation(args, ctx, "outgoing", params)
    ctx.emit(data, "\n".join(_outgoing_line(o) for o in data["outgoing"]) or "nothing sent yet")


async def _cancel(args: argparse.Namespace, ctx: Context) -> None:
    params = {"capsule": args.capsule, "as": args.as_}
    data = await run_operation(args, ctx, "cancel", params)
    ctx.emit(
        data,
        "\n".join(_outgoing_line(o) for o in data["cancelled"])
        + "\nnote: the capsule is revoked; its entry stays in the mailbox's history",
    )
