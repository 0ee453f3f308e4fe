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
import time
from collections.abc import Sequence
from typing import Any

from ipfs_share import paths
from ipfs_share.cli._delegate import run_operation
from ipfs_share.cli._shared import (
    Names,
    acting,
    fmt_time,
    parse_time,
    split_names,
    window_end,
)
from ipfs_share.cli.common import Context, Subparsers
from ipfs_share.cli.mailbox import delivery_text
from ipfs_share.cli.passphrase import add_passphrase_option
from ipfs_share.errors import InvalidInputError, NotFoundError
from ipfs_share.formats.cid import normalize_cid
from ipfs_share.local.state import StateDB
from ipfs_share.services.identities import IdentityService
from ipfs_share.services.mailbox.views import OutgoingCapsule, Views
from ipfs_share.services.policy import TimeWindowProvider
from ipfs_share.services.share import (
    ACCEPTED_DURATIONS,
    ShareCapsule,
    parse_duration,
)

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
    ends = window.add_mutually_exclusive_group()
    ends.add_argument(
        "--until",
        metavar="TIME",
        help="opens are refused from TIME on, as at a share's expiry (--until 2027-01-01 "
        "allows all of 2026)",
    )
    ends.add_argument(
        "--not-after",
        metavar="TIME",
        help="the last time opens are allowed, included: a date means through the end of "
        "that day (UTC), a time through that second (--not-after 2026-12-31 allows all "
        "of 2026)",
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
    show = sub.add_parser(
        "show", help="one share: recipients, expiry, state, deliveries (as outgoing), opens"
    )
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
        help="re-issue this capsule to its recipients less these (needs --rotate)",
    )
    sending = revoke.add_mutually_exclusive_group()
    sending.add_argument(
        "--send",
        dest="send",
        action="store_const",
        const=True,
        default=None,
        help="send every re-issued capsule to all its recipients' inboxes (default: to "
        "those the old one was sent to)",
    )
    sending.add_argument(
        "--no-send",
        dest="send",
        action="store_const",
        const=False,
        help="send the re-issued capsules to nobody (you send the IDs yourself)",
    )
    revoke.add_argument(
        "--dry-run",
        action="store_true",
        help="print what would be revoked, re-issued, re-keyed and sent, and change nothing",
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
    end = _window_end(args)
    window = args.not_before is not None or end is not None or allow
    provider = args.policy or (WINDOW if window else None)
    if window:
        if provider != WINDOW:
            raise InvalidInputError(
                f"--not-before, --until, --not-after and --allow belong to the policy "
                f"{WINDOW}, found --policy {provider}",
                hint="use --policy-param for other providers",
            )
        params.update(
            TimeWindowProvider.params(
                not_before=None if args.not_before is None else parse_time(args.not_before),
                expires=end,
            )
        )
    if provider is None:
        if params:
            raise InvalidInputError("--policy-param needs --policy PROVIDER")
        return None
    return {"provider": provider, "params": params, "allow": allow}


def _window_end(args: argparse.Namespace) -> int | None:
    """The window's exclusive end from --until or --not-after; one in the past is an
    error (a share nobody could ever open)."""
    if args.until is None and args.not_after is None:
        return None
    flag, text = (
        ("--until", args.until) if args.until is not None else ("--not-after", args.not_after)
    )
    end = window_end(text, inclusive=flag == "--not-after")
    if end <= time.time():
        last = fmt_time(end - 1)
        raise InvalidInputError(
            f"expected {flag} in the future, found {text!r:.40}: no open would be allowed "
            f"after {last}",
            hint=f"{flag} takes the end of the window, such as 2027-01-01 or "
            "2027-01-01T09:00:00+01:00 (UTC unless an offset is given)",
        )
    return end


async def _share(args: argparse.Namespace, ctx: Context) -> None:
    recipients = split_names(args.to)
    if not recipients:
        raise InvalidInputError("expected at least one recipient in --to, found none")
    expires = None if args.expires.strip().lower() == "never" else args.expires
    try:
        expires_in = parse_duration(expires)  # fail before any passphrase is asked
    except InvalidInputError as exc:
        raise InvalidInputError(
            exc.message.replace("a duration", "--expires as a duration", 1),
            hint=f"accepted: {ACCEPTED_DURATIONS}; or --expires never, for a share that "
            "does not expire",
        ) from None
    params = {
        "content": normalize_cid(args.cid),
        "to": recipients,
        "expires_in": expires_in,
        "allow_download": not args.no_download,
        "policy": _policy_spec(args),  # a window that already closed fails here
        "capability": args.capability_from,
        "as": acting(args),
        "send": args.send,
    }
    data = await run_operation(args, ctx, "share", params)
    if not args.send:
        data.pop("sent", None)
    ctx.emit(data, str(data["link"] if args.link else data["capsule"]))
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
                else f"send them the capsule ID: ipfs-share open {data['capsule']}"
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
            ShareCapsule.of(
                r, db.shares.recipients(r.capsule), replaces=db.shares.reissue_of(r.capsule)
            )
            for r in db.shares.list(content=content, issuer=issuer)
        ]
    finally:
        db.close()
    names = Names()
    lines = [
        f"{s.id}  {s.state:<8} expires {fmt_time(s.expires):<20}  to "
        + ", ".join(n for _, n in s.recipients)
        + f"  ({names.short(s.issuer)})"
        for s in found
    ]
    ctx.emit(
        {"shares": [s.to_json() for s in found]},
        "\n".join(lines) or "no shares made from this home yet",
    )


def _delivery_line(o: OutgoingCapsule, names: Names) -> str:
    """A recipient's mailbox delivery of a share, as 'outgoing' shows it."""
    return f"  {names.short(o.recipient):<12} {delivery_text(o.to_json())}"


def _show(args: argparse.Namespace, ctx: Context) -> None:
    capsule = normalize_cid(args.capsule)
    home = paths.home_dir()
    db = StateDB(home)
    try:
        row = db.shares.get(capsule)
        if row is None:
            raise NotFoundError(
                f"no share {capsule} was made from this home",
                hint="shares are recorded in the home of whoever shared them "
                "(see 'ipfs-share shares list')",
            )
        opens = db.shares.opens(capsule)
        s = ShareCapsule.of(
            row, db.shares.recipients(capsule), replaces=db.shares.reissue_of(capsule)
        )
        # The same view of each delivery as 'ipfs-share outgoing' (its receipts as of the
        # last inbox, outgoing or shares show --refresh).
        views = Views(db, IdentityService(home, None, db=db))
        deliveries = [views.outgoing(r) for r in db.mailboxes.sent(capsule=capsule)]
    finally:
        db.close()
    names = Names()
    data: dict[str, object] = {
        **s.to_json(),
        "deliveries": [o.to_json() for o in deliveries],
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
        *([f"replaces:   {s.replaces}"] if s.replaces else []),
        f"download:   {'allowed' if s.allow_download else 'not allowed (view only; advice)'}",
        f"policy:     {s.policy or '-'}",
        f"capability: {'issued by ' + names(s.cap_issuer) if s.cap_issuer else 'not required'}",
        "recipients:",
        *[f"  {label:<12} {did}" for did, label in s.recipients],
        "sent through mailboxes: "
        + ("" if deliveries else "no (send it with 'ipfs-share send CAPSULE')"),
        *[_delivery_line(o, names) for o in deliveries],
        f"opens recorded here: {len(opens) or 'none (opens are recorded where they happen)'}",
        *[f"  {fmt_time(o.opened_at)}  {names(o.opener)}" for o in opens],
    ]
    ctx.emit(data, "\n".join(lines))


# -- revoke ---------------------------------------------------------------------------------


def _names_of(recipients: Sequence[dict[str, Any]]) -> str:
    return ", ".join(str(r["name"]) for r in recipients) or "nobody"


def _plan_lines(
    plan: dict[str, Any], names: Names, made: dict[str, dict[str, Any]] | None = None
) -> list[str]:
    """What a revoke did (``made``: the re-issued capsules, by the capsule each replaces)
    or, without ``made``, would do (``plan``: ``RevokePlan.to_json()``): capsule by
    capsule, and to whom."""
    will = "" if made is not None else "would be "
    reissued = {r["replaces"]: r for r in plan["reissue"]}
    lines: list[str] = []
    for entry in plan["revoke"]:
        capsule = entry["capsule"]
        line = f"{will}revoked {capsule} (to {_names_of(entry['recipients'])})"
        r = reissued.get(capsule)
        if r is not None:
            new = None if made is None else made.get(capsule)
            line += ", re-issued" + ("" if new is None else f" as {new['capsule']}")
            line += f" to {_names_of(r['recipients'])}"
        elif capsule in plan["expired"]:
            line += ", not re-issued: it had expired"
        lines.append(line)
    if plan["dropped"]:
        lines.append(f"dropped: {', '.join(names.short(d) for d in plan['dropped'])}")
    if plan["rotate"]:
        lines.append(
            f"{will}re-keyed: {plan['content']} re-encrypted under a new key, the old "
            "ciphertext unpinned"
        )
    return lines


async def _revoke(args: argparse.Namespace, ctx: Context) -> None:
    capsule = normalize_cid(args.capsule)
    drop = split_names(args.drop)
    params = {
        "capsule": capsule,
        "rotate": args.rotate,
        "drop": drop,
        "send": args.send,
        "dry_run": args.dry_run,
        "as": acting(args),
    }
    data = await run_operation(args, ctx, "revoke", params)
    names = Names()
    if args.dry_run:
        lines = _plan_lines(data, names)
        for r in data["reissue"]:
            if r["send_to"]:
                who = ", ".join(names.short(d) for d in r["send_to"])
                lines.append(f"would send the capsule re-issued for {r['replaces']} to: {who}")
        lines.append("nothing was changed (--dry-run)")
        ctx.emit(data, "\n".join(lines))
        return
    data["note"] = REVOCATION_NOTE.removeprefix("note: ")
    made = {c["replaces"]: c for c in data["reissued"]}
    lines = _plan_lines(data["plan"], names, made)
    if data["rotated_to"]:
        lines.append(f"new content: {data['rotated_to']}")
    lines += [f"sent {s['capsule']} to {names.short(s['recipient'])}'s inbox" for s in data["sent"]]
    lines.append(f"revocation list head: {data['revocation_head']}")
    ctx.emit(data, "\n".join(lines))
    if not ctx.json:
        for n in data["not_sent"]:
            who = names.short(n["recipient"])
            ctx.note(
                f"{n['capsule']} was not sent to {who} ({n['why']}); send it later with "
                f"'ipfs-share send {n['capsule']} --to {who}'"
            )
        for reach in data["still_reaches"]:
            who, through = names.short(reach["did"]), reach["through"]
            ctx.note(
                f"{who}, a recipient of the revoked share, gets the new key all the same "
                f"through the re-issued share {through}; if they should not, run "
                f"'ipfs-share revoke {through} --rotate --drop {who}' before you send it"
            )
        sent = {x["capsule"] for x in data["sent"]}
        if any(c["capsule"] not in sent for c in data["reissued"]):
            ctx.note(
                "the recipients of a re-issued capsule that was not sent need its new ID: "
                "send each their own (ipfs-share send CAPSULE); their old capsule IDs no "
                "longer open"
            )
        ctx.note(REVOCATION_NOTE)
