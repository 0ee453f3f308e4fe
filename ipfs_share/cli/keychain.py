"""``ipfs-share keychain ...``: keys shared in a group, with rotation, permissions and bans.

::

    $ ipfs-share keychain create "team secrets"           # prints the fingerprint
    bafyrei...
    $ ipfs-share keychain share bafyrei... --to bob --allow-sharing
    $ ipfs-share keychain sync --as bob                    # accept, merge, open keys
    $ ipfs-share keychain encrypt bafyrei... < plan.txt > plan.sealed
    $ ipfs-share keychain ban bafyrei... carol             # and rotate, for everyone left
    $ ipfs-share put plan.pdf --keychain bafyrei...        # members: ipfs-share open ID

Every rule is enforced by signatures: each member replays the keychain's log and ignores
an op that breaks one (``show`` lists them, with the reason). A ban cannot take back keys
already held: what was encrypted before it stays readable to the banned member.
"""

from __future__ import annotations

import argparse
import base64
import sys
from typing import Any

from ipfs_share.cli._shared import acting, binary_stdout, fmt_time, open_mesh
from ipfs_share.cli.common import Context, Subparsers
from ipfs_share.cli.passphrase import add_passphrase_option
from ipfs_share.errors import InvalidInputError
from ipfs_share.formats.keychain import PERMISSION_NAMES, Permissions
from ipfs_share.services.keychains import KeychainView, OutgoingShare, Participant, SyncReport
from ipfs_share.services.share import parse_duration

__all__ = ["register"]

MAX_MESSAGE = 64 << 20  # encrypt and decrypt hold one message in memory


def register(subparsers: Subparsers) -> None:
    kc = subparsers.add_parser(
        "keychain",
        help="keychains: keys shared in a group, with rotation, permissions and bans",
        description="Keys with rotation shared among members, each with four permissions "
        "(sharing, rotation, deletion, management), enforced by signatures over a log every "
        "member replays. Recipients are names, petnames or dids.",
    )
    sub = kc.add_subparsers(dest="keychain_command", metavar="COMMAND", required=True)

    p = _cmd(sub, "create", "create a keychain (prints its fingerprint)", _create)
    p.add_argument("name", metavar="NAME", help="its name or purpose (travels encrypted)")
    p.add_argument("--expires", metavar="DURATION", help="the first key's expiry (e.g. 30d)")

    _cmd(sub, "list", "the keychains this home belongs to", _list, passphrase=False)

    p = _cmd(sub, "show", "a keychain: name, keys, your permissions, ignored ops", _show)
    p.add_argument("fp", metavar="FP", help="the keychain's fingerprint (or 8+ characters)")

    p = _cmd(sub, "rotate", "add a new key (the most recent from now on)", _rotate)
    p.add_argument("fp", metavar="FP")
    p.add_argument("--expires", metavar="DURATION", help="the new key's expiry (e.g. 30d)")

    p = _cmd(sub, "share", "offer keys to someone (released when they accept)", _share)
    p.add_argument("fp", metavar="FP")
    p.add_argument("--to", required=True, metavar="WHO", help="a name, petname or did")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--all", action="store_true", help="every key you hold")
    which.add_argument("--key", metavar="KEYFP", help="one key (default: the most recent)")
    p.add_argument("--expires", metavar="DURATION", help="when the recipient's copy expires")
    for name in PERMISSION_NAMES:
        p.add_argument(f"--allow-{name}", action="store_true", help=f"grant allow_{name}")

    _cmd(sub, "sync", "accept what was shared with you, merge members' logs", _sync)

    p = _cmd(sub, "receive", "take an offer (or an accept) handed over by its CID", _receive)
    p.add_argument("op", metavar="CID", help="the op's CID, as the sharer printed it")

    _cmd(sub, "outgoing", "your offers not released or cancelled yet", _outgoing, passphrase=False)

    p = _cmd(sub, "cancel", "cancel your open offers to someone", _cancel)
    p.add_argument("fp", metavar="FP")
    p.add_argument("--to", required=True, metavar="WHO")
    p.add_argument("--key", metavar="KEYFP", help="only offers of this key")

    p = _cmd(sub, "participants", "members, or who holds a key", _participants, passphrase=False)
    p.add_argument("fp", metavar="FP")
    p.add_argument("--key", metavar="KEYFP", help="who holds this key, since when, from whom")

    p = _cmd(sub, "permissions", "show or change permissions (omitted flags stay)", _permissions)
    p.add_argument("fp", metavar="FP")
    p.add_argument("who", nargs="?", metavar="WHO", help="a member (default: you)")
    for name in PERMISSION_NAMES:
        flag = p.add_mutually_exclusive_group()
        flag.add_argument(f"--allow-{name}", dest=name, action="store_const", const=True)
        flag.add_argument(f"--deny-{name}", dest=name, action="store_const", const=False)

    p = _cmd(sub, "ban", "ban a member (and rotate, for everyone left)", _ban)
    p.add_argument("fp", metavar="FP")
    p.add_argument("who", metavar="WHO")
    p.add_argument("--no-rotate", action="store_true", help="do not add a new key")

    p = _cmd(sub, "leave", "leave a keychain", _leave)
    p.add_argument("fp", metavar="FP")

    for name, help_ in (
        ("encrypt", "seal stdin with the most recent key (to stdout)"),
        ("decrypt", "open a sealed message from stdin (to stdout)"),
    ):
        p = _cmd(sub, name, help_, _encrypt if name == "encrypt" else _decrypt)
        p.add_argument("fp", metavar="FP")
        p.add_argument("--ad", default="", help="associated data (text) bound to the message")


def _cmd(
    sub: Any, name: str, help_: str, handler: Any, *, passphrase: bool = True
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(name, help=help_, description=help_)
    if passphrase:
        add_passphrase_option(parser)
    parser.set_defaults(handler=handler)
    return parser


def _expiry(text: str | None) -> int | None:
    return parse_duration(text)


def _perms(p: Permissions) -> str:
    granted = [n for n in PERMISSION_NAMES if getattr(p, n)]
    return ", ".join(granted) if granted else "no permissions"


def _view_text(v: KeychainView) -> str:
    lines = [
        f"{v.fingerprint}  {v.name if v.name is not None else '(name not readable)'}",
        f"  you: {v.member} ({v.status}; {_perms(v.permissions)})",
        f"  creator {v.creator}, created {fmt_time(v.created)}, {v.members} members, {v.ops} ops",
    ]
    for k in v.keys:
        marks = ("most recent, " if k.most_recent else "") + ("held" if k.held else "not held")
        expiry = f", expires {fmt_time(k.expires)}" if k.expires is not None else ""
        lines.append(f"  key {k.fingerprint}  {fmt_time(k.created)}  ({marks}{expiry})")
    for r in v.ignored:
        lines.append(f"  ignored {r.kind} {r.op} by {r.author}: {r.reason} ({r.message})")
    return "\n".join(lines)


async def _create(args: argparse.Namespace, ctx: Context) -> None:
    async with open_mesh(args, ctx) as mesh:
        view = await mesh.keychains.create(
            args.name, as_=acting(args), expires_in=_expiry(args.expires)
        )
    ctx.emit(view.to_json(), view.fingerprint)


async def _list(args: argparse.Namespace, ctx: Context) -> None:
    async with open_mesh(args, ctx) as mesh:
        views = mesh.keychains.list(as_=acting(args))
    ctx.emit(
        {"keychains": [v.to_json() for v in views]},
        "\n".join(
            f"{v.fingerprint}  {v.name or '(name not readable)'}  {v.status}, "
            f"{v.members} members, {sum(k.held for k in v.keys)} keys held"
            for v in views
        )
        or "no keychains (create one, or sync to accept one shared with you)",
    )


async def _show(args: argparse.Namespace, ctx: Context) -> None:
    async with open_mesh(args, ctx) as mesh:
        view = await mesh.keychains.show(args.fp, as_=acting(args))
    ctx.emit(view.to_json(), _view_text(view))


async def _rotate(args: argparse.Namespace, ctx: Context) -> None:
    async with open_mesh(args, ctx) as mesh:
        key = await mesh.keychains.rotate(
            args.fp, expires_in=_expiry(args.expires), as_=acting(args)
        )
    ctx.emit(key.to_json(), key.fingerprint)


def _outgoing_line(o: OutgoingShare) -> str:
    who = f"{o.to_name} ({o.to})" if o.to_name else o.to
    keys = ", ".join(k[:12] for k in o.keys)
    return (
        f"{o.offer}  to {who}  {o.status}  keys {keys}  ({_perms(o.permissions)})  "
        f"{fmt_time(o.created)}"
    )


async def _share(args: argparse.Namespace, ctx: Context) -> None:
    options: dict[str, Any] = {
        "expires_in": _expiry(args.expires),
        "as_": acting(args),
        **{f"allow_{n}": getattr(args, f"allow_{n}") for n in PERMISSION_NAMES},
    }
    async with open_mesh(args, ctx) as mesh:
        kc = mesh.keychains
        if args.all:
            offer = await kc.share_complete_keychain(args.fp, args.to, **options)
        elif args.key:
            offer = await kc.share_key(args.fp, args.key, args.to, **options)
        else:
            offer = await kc.share_most_recent_key(args.fp, args.to, **options)
    ctx.emit(offer.to_json(), _outgoing_line(offer))
    if not ctx.json:
        ctx.note(
            "the keys are released when the recipient accepts: their next 'keychain sync' "
            "finds the offer in your mailbox for them if you are their contact; else they "
            f"can take it with: ipfs-share keychain receive {offer.offer}"
        )


def _sync_text(report: SyncReport) -> str:
    lines = [
        f"{report.keychains} keychains, {report.fetched} ops fetched, "
        f"{len(report.accepted)} offers accepted, {len(report.released)} released, "
        f"{len(report.received)} keys received"
    ]
    lines += [f"  key {r.fingerprint} in {r.keychain} from {r.added_by}" for r in report.received]
    lines += [f"  wrote {op}" for op in report.wrote]
    lines += [f"  problem: {p}" for p in report.problems]
    return "\n".join(lines)


async def _sync(args: argparse.Namespace, ctx: Context) -> None:
    async with open_mesh(args, ctx) as mesh:
        report = await mesh.keychains.sync(as_=acting(args))
    ctx.emit(report.to_json(), _sync_text(report))


async def _receive(args: argparse.Namespace, ctx: Context) -> None:
    async with open_mesh(args, ctx) as mesh:
        report = await mesh.keychains.receive(args.op, as_=acting(args))
    ctx.emit(report.to_json(), _sync_text(report))


async def _outgoing(args: argparse.Namespace, ctx: Context) -> None:
    async with open_mesh(args, ctx) as mesh:
        offers = mesh.keychains.outgoing_shared_keys(as_=acting(args))
    ctx.emit(
        {"outgoing": [o.to_json() for o in offers]},
        "\n".join(_outgoing_line(o) for o in offers) or "no open offers",
    )


async def _cancel(args: argparse.Namespace, ctx: Context) -> None:
    async with open_mesh(args, ctx) as mesh:
        cancelled = await mesh.keychains.delete_outgoing_shared_key(
            args.to, args.key, keychain=args.fp, as_=acting(args)
        )
    ctx.emit(
        {"cancelled": [o.to_json() for o in cancelled]},
        "\n".join(f"cancelled {_outgoing_line(o)}" for o in cancelled),
    )


def _participant_line(p: Participant) -> str:
    who = f"{p.name} ({p.did})" if p.name else p.did
    if p.key is not None:
        return (
            f"{who}  since {fmt_time(p.since_time)} from {p.key_added_by}"
            + (f", expires {fmt_time(p.expires)}" if p.expires is not None else "")
            + f"  [{p.status}; {_perms(p.permissions)}]"
        )
    return (
        f"{who}  {p.status}; {_perms(p.permissions)}; joined {fmt_time(p.joined_at)} "
        f"added by {p.added_by}"
    )


async def _participants(args: argparse.Namespace, ctx: Context) -> None:
    async with open_mesh(args, ctx) as mesh:
        found = mesh.keychains.participants(args.fp, args.key, as_=acting(args))
    ctx.emit(
        {"participants": [p.to_json() for p in found]},
        "\n".join(_participant_line(p) for p in found) or "nobody",
    )


async def _permissions(args: argparse.Namespace, ctx: Context) -> None:
    changes = {n: getattr(args, n) for n in PERMISSION_NAMES if getattr(args, n) is not None}
    async with open_mesh(args, ctx) as mesh:
        kc = mesh.keychains
        if changes:
            if args.who is None:
                raise InvalidInputError(
                    "expected the member whose permissions change, found none",
                    hint="ipfs-share keychain permissions FP WHO --allow-sharing",
                )
            perms = await kc.set_permissions(args.who, args.fp, as_=acting(args), **changes)
        else:
            perms = kc.permissions(args.fp, args.who, as_=acting(args))
    ctx.emit(perms.to_json(), _perms(perms))


async def _ban(args: argparse.Namespace, ctx: Context) -> None:
    async with open_mesh(args, ctx) as mesh:
        result = await mesh.keychains.ban(
            args.who, args.fp, rotate=not args.no_rotate, as_=acting(args)
        )
    text = f"banned {args.who} ({result.ban})"
    if result.rotated_to is not None:
        text += f"; new key {result.rotated_to} for the {result.delivered_to} members left"
    ctx.emit(result.to_json(), text)
    if not ctx.json:
        ctx.note("a ban cannot take back keys already held: what was encrypted before stays "
                 "readable to the banned member")  # fmt: skip


async def _leave(args: argparse.Namespace, ctx: Context) -> None:
    async with open_mesh(args, ctx) as mesh:
        view = await mesh.keychains.leave(args.fp, as_=acting(args))
    ctx.emit(view.to_json(), f"left {view.fingerprint} (keys you hold stay with you)")


def _stdin() -> bytes:
    data = sys.stdin.buffer.read(MAX_MESSAGE + 1)
    if len(data) > MAX_MESSAGE:
        raise InvalidInputError(
            f"expected a message of at most {MAX_MESSAGE} bytes on stdin, found more",
            hint="put large files with 'ipfs-share put FILE --keychain FP'",
        )
    return data


async def _encrypt(args: argparse.Namespace, ctx: Context) -> None:
    data = _stdin()
    async with open_mesh(args, ctx) as mesh:
        sealed = await mesh.keychains.encrypt(args.fp, data, ad=args.ad.encode(), as_=acting(args))
    _output(ctx, sealed, "sealed")


async def _decrypt(args: argparse.Namespace, ctx: Context) -> None:
    data = _stdin()
    async with open_mesh(args, ctx) as mesh:
        plain = await mesh.keychains.decrypt(args.fp, data, ad=args.ad.encode(), as_=acting(args))
    _output(ctx, plain, "plaintext")


def _output(ctx: Context, data: bytes, what: str) -> None:
    if ctx.json:
        ctx.emit({what: base64.b64encode(data).decode("ascii"), "size": len(data)}, "")
        return
    out = binary_stdout(ctx)
    out.write(data)
    out.flush()
