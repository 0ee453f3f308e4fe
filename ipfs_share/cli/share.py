"""``ipfs-share share``, ``shares`` and ``revoke``: capsules for recipients, and taking them back.

::

    $ ipfs-share share bafybei... --to bob,carol --expires 7d
    bafyrei...                                   (stdout: the capsule ID; send it to them)
    $ ipfs-share shares
    $ ipfs-share shares show bafyrei...
    $ ipfs-share revoke bafyrei... --rotate

What revocation can and cannot do: it puts the capsule on the
sharer's signed revocation list, so every later open by a client that checks the list is
refused (``share_revoked``). It cannot erase plaintext a recipient already opened and
kept. ``--rotate`` re-encrypts the content under a new key, so a revoked recipient who
kept the old file key cannot read what is stored from now on; the remaining recipients get
new capsules, whose IDs they need.
"""

from __future__ import annotations

import argparse
from typing import Any

from ipfs_share import paths
from ipfs_share.cli._delegate import run_operation
from ipfs_share.cli._shared import (
    Names,
    acting,
    fmt_time,
    parse_time,
    split_names,
)
from ipfs_share.cli.common import Context, Subparsers
from ipfs_share.cli.passphrase import add_passphrase_option
from ipfs_share.errors import InvalidInputError, NotFoundError
from ipfs_share.formats.cid import normalize_cid
from ipfs_share.local.state import StateDB
from ipfs_share.services.identities import IdentityService
from ipfs_share.services.policy import TimeWindowProvider
from ipfs_share.services.share import ShareCapsule, parse_duration

__all__ = ["REVOCATION_NOTE", "register"]

WINDOW = TimeWindowProvider.name
REVOCATION_NOTE = (
    "note: revocation blocks future opens by clients that check the list; it cannot erase "
    "plaintext a recipient already has (--rotate re-keys the content for what is stored "
    "from now on)"
)


def register(subparsers: Subparsers) -> None:
    share = subparsers.add_parser(
        "share",
        help="share a file you put with recipients; prints the capsule ID",
        description="Make a signed capsule that wraps the file key for each recipient "
        "(local identity names, contact petnames, dids or k51... names) and pin it. "
        "Send the printed capsule ID to the recipients.",
    )
    share.add_argument("cid", metavar="CID", help="the content CID printed by put")
    share.add_argument(
        "--to",
        action="append",
        required=True,
        metavar="NAME[,NAME...]",
        help="recipients (repeat or separate with commas)",
    )
    share.add_argument(
        "--expires", default="7d", metavar="7d|never", help="90s, 15m, 12h, 7d, 2w or never"
    )
    share.add_argument(
        "--no-download",
        action="store_true",
        help="view only: honest clients refuse to save it (advice: a modified client can "
        "ignore it)",
    )
    share.add_argument("--policy", metavar="PROVIDER", help="a policy provider the opener must run")
    share.add_argument(
        "--policy-param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a policy parameter (integers stay integers)",
    )
    window = share.add_argument_group(
        f"the built-in policy {WINDOW} (these imply --policy {WINDOW})"
    )
    window.add_argument(
        "--not-before",
        metavar="TIME",
        help="opens are allowed from TIME on (ISO date/time, UTC unless an offset is given, "
        "or Unix seconds)",
    )
    window.add_argument(
        "--until",
        metavar="TIME",
        help="opens are refused from TIME on, as at a share's expiry (--until 2027-01-01 "
        "allows all of 2026)",
    )
    window.add_argument(
        "--allow",
        action="append",
        default=[],
        metavar="NAME|DID",
        help="only these may open (repeat or separate with commas)",
    )
    share.add_argument(
        "--capability-from",
        metavar="self|NAME|DID",
        help="openers must also present a capability token issued by this identity",
    )
    share.add_argument(
        "--send",
        action="store_true",
        help="also send the capsule to each recipient's inbox (as 'ipfs-share send' does)",
    )
    share.add_argument(
        "--link",
        action="store_true",
        help="print a link (ipfs-share:CAPSULE?from=DID) instead of the bare capsule ID: "
        "opening it also makes you a contact of the recipient",
    )
    add_passphrase_option(share)
    share.set_defaults(handler=_share)

    shares = subparsers.add_parser(
        "shares", help="the shares made from this home", description="Audit shares made here."
    )
    shares.set_defaults(handler=_list, content=None)
    sub = shares.add_subparsers(dest="shares_command", metavar="COMMAND")
    ls = sub.add_parser("list", help="list shares (the default)")
    ls.add_argument("--content", metavar="CID", help="only the shares of this content")
    ls.set_defaults(handler=_list)
    show = sub.add_parser("show", help="one share: recipients, expiry, state, opens")
    show.add_argument("capsule", metavar="CAPSULE")
    show.set_defaults(handler=_show)

    revoke = subparsers.add_parser(
        "revoke",
        help="revoke a share (and optionally re-key the content)",
        description="Put the capsule on your signed revocation list and publish it: later "
        "opens are refused. It cannot erase plaintext a recipient already has; --rotate "
        "re-encrypts the content and re-issues the other live shares of it.",
    )
    revoke.add_argument("capsule", metavar="CAPSULE")
    revoke.add_argument(
        "--rotate",
        action="store_true",
        help="re-encrypt the content under a new key, re-issue its other live shares, and "
        "unpin the old ciphertext",
    )
    revoke.add_argument(
        "--drop",
        action="append",
        metavar="NAME[,NAME]",
        help="re-issue this capsule to its recipients less these (use with --rotate)",
    )
    add_passphrase_option(revoke)
    revoke.set_defaults(handler=_revoke)


# -- share --------------------------------------------------------------------------------


def _param_value(text: str) -> int | str:
    try:
        return int(text)
    except ValueError:
        return text


def _policy_spec(args: argparse.Namespace) -> dict[str, Any] | None:
    """The policy the options ask for, as the share operation takes it (``allow`` names
    are resolved to dids by the operation, with the home's contacts)."""
    params: dict[str, Any] = {}
    for item in args.policy_param:
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise InvalidInputError(f"expected --policy-param KEY=VALUE, found {item!r:.60}")
        params[key.strip()] = _param_value(value)
    allow = split_names(args.allow)
    window = args.not_before is not None or args.until is not None or allow
    provider = args.policy or (WINDOW if window else None)
    if window:
        if provider != WINDOW:
            raise InvalidInputError(
                f"--not-before, --until and --allow belong to the policy {WINDOW}, "
                f"found --policy {provider}",
                hint="use --policy-param for other providers",
            )
        params.update(
            TimeWindowProvider.params(
                not_before=None if args.not_before is None else parse_time(args.not_before),
                expires=None if args.until is None else parse_time(args.until),
            )
        )
    if provider is None:
        if params:
            raise InvalidInputError("--policy-param needs --policy PROVIDER")
        return None
    return {"provider": provider, "params": params, "allow": allow}


async def _share(args: argparse.Namespace, ctx: Context) -> None:
    recipients = split_names(args.to)
    if not recipients:
        raise InvalidInputError("expected at least one recipient in --to, found none")
    expires = None if args.expires.strip().lower() == "never" else args.expires
    try:
        expires_in = parse_duration(expires)  # fail before any passphrase is asked
    except InvalidInputError as exc:
        raise InvalidInputError(
            exc.message, hint="or --expires never, for a share that does not expire"
        ) from None
    params = {
        "content": normalize_cid(args.cid),
        "to": recipients,
        "expires_in": expires_in,
        "allow_download": not args.no_download,
        "policy": _policy_spec(args),
        "capability": args.capability_from,
        "as": acting(args),
        "send": args.send,
    }
    data = await run_operation(args, ctx, "share", params)
    if not args.send:
        data.pop("sent", None)
    ctx.emit(data, str(data["link"] if args.link else data["id"]))
    if not ctx.json:
        names = Names()
        who = ", ".join(
            names.short(str(r["did"])) if r["name"] == r["did"] else str(r["name"])
            for r in data["recipients"]
        )
        extras = [f"expires {fmt_time(data['expires'])}"]
        if not data["allow_download"]:
            extras.append("view only")
        if data["policy"]:
            extras.append(f"policy {data['policy']}")
        if data["capability_issuer"]:
            extras.append(f"capability from {names.short(str(data['capability_issuer']))}")
        ctx.note(
            f"shared {data['content']} with {who} ({'; '.join(extras)}); "
            + (
                "sent to their inboxes (ipfs-share inbox)"
                if args.send
                else f"send them the capsule ID: ipfs-share open {data['id']}"
            )
        )


# -- shares ---------------------------------------------------------------------------------


def _list(args: argparse.Namespace, ctx: Context) -> None:
    home = paths.home_dir()
    issuer = None
    if acting(args) is not None:
        issuer = IdentityService(home, None).get(acting(args)).did
    content = None if args.content is None else normalize_cid(args.content)
    db = StateDB(home)
    try:
        found = [
            ShareCapsule.of(r, db.shares.recipients(r.capsule))
            for r in db.shares.list(content=content, issuer=issuer)
        ]
    finally:
        db.close()
    names = Names()
    lines = [
        f"{s.id}  {s.state:<8} expires {fmt_time(s.expires):<23}  to "
        + ", ".join(n for _, n in s.recipients)
        + f"  ({names.short(s.issuer)})"
        for s in found
    ]
    ctx.emit(
        {"shares": [s.to_json() for s in found]},
        "\n".join(lines) or "no shares made from this home yet",
    )


def _show(args: argparse.Namespace, ctx: Context) -> None:
    capsule = normalize_cid(args.capsule)
    db = StateDB(paths.home_dir())
    try:
        row = db.shares.get(capsule)
        opens = db.shares.opens(capsule)
        if row is None:
            raise NotFoundError(
                f"no share {capsule} was made from this home",
                hint="shares are recorded in the home of whoever shared them "
                "(see 'ipfs-share shares list')",
            )
        s = ShareCapsule.of(row, db.shares.recipients(capsule))
    finally:
        db.close()
    names = Names()
    data: dict[str, object] = {
        **s.to_json(),
        "revoked_at": row.revoked_at,
        "revocation_head": row.revocation_head,
        "opens": [
            {
                "opener": o.opener,
                "opened_at": o.opened_at,
                "revocation_head": o.revocation_head,
                "capability": o.capability,
            }
            for o in opens
        ],
    }
    lines = [
        f"capsule:    {s.id}",
        f"content:    {s.content}",
        f"issuer:     {names(s.issuer)}",
        f"created:    {fmt_time(s.created)}",
        f"expires:    {fmt_time(s.expires)}",
        f"state:      {s.state}"
        + (
            f" at {fmt_time(row.revoked_at)} (list head {row.revocation_head})"
            if row.revoked_at
            else ""
        )
        + (f", replaced by {s.replaced_by}" if s.replaced_by else ""),
        f"download:   {'allowed' if s.allow_download else 'not allowed (view only; advice)'}",
        f"policy:     {s.policy or '-'}",
        f"capability: {'issued by ' + names(s.cap_issuer) if s.cap_issuer else 'not required'}",
        "recipients:",
        *[f"  {label:<12} {did}" for did, label in s.recipients],
        f"opens recorded here: {len(opens) or 'none (opens are recorded where they happen)'}",
        *[f"  {fmt_time(o.opened_at)}  {names(o.opener)}" for o in opens],
    ]
    ctx.emit(data, "\n".join(lines))


# -- revoke ---------------------------------------------------------------------------------


async def _revoke(args: argparse.Namespace, ctx: Context) -> None:
    capsule = normalize_cid(args.capsule)
    drop = split_names(args.drop)
    params = {"capsule": capsule, "rotate": args.rotate, "drop": drop, "as": acting(args)}
    data = await run_operation(args, ctx, "revoke", params)
    data["note"] = REVOCATION_NOTE.removeprefix("note: ")
    others = [c for c in data["revoked"] if c != capsule]
    lines = [f"revoked {capsule}"]
    if others:
        lines.append(f"revoked too (same content, re-issued): {', '.join(others)}")
    lines.append(f"revocation list head: {data['revocation_head']}")
    if data["rotated_to"]:
        lines.append(f"rotated: new content {data['rotated_to']} (the old ciphertext is unpinned)")
    for c in data["reissued"]:
        lines.append(f"re-issued {c['id']} to {', '.join(r['name'] for r in c['recipients'])}")
    ctx.emit(data, "\n".join(lines))
    if not ctx.json:
        for reach in data["still_reaches"]:
            who, through = Names().short(reach["did"]), reach["through"]
            ctx.note(
                f"{who}, a recipient of the revoked share, gets the new key all the same "
                f"through the re-issued share {through}; if they should not, run "
                f"'ipfs-share revoke {through} --rotate --drop {who}' before you send it"
            )
        if data["reissued"]:
            ctx.note(
                "the remaining recipients need the new capsule IDs above: send each their "
                "own; their old capsule IDs no longer open"
            )
        if drop and not args.rotate:
            ctx.note(
                "without --rotate the content keeps its key: a dropped recipient who kept "
                "the key can still decrypt the old ciphertext"
            )
        ctx.note(REVOCATION_NOTE)
