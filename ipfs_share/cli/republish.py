"""``ipfs-share republish``: keep this home's feeds alive on the network.

::

    $ ipfs-share republish
    reput     identity    alice    k51...  seq 0  valid to 2027-03-01 ...  put 2026-12-01 ...
    reput     revocation  alice    k51...  seq 2  ...
    reput     mailbox     alice    k51...  seq 5  ...
    3 records put again (3 of this home's, 0 it depends on), 0 re-signed, 0 skipped, 0 failed

A node forgets a record nobody put again within two days, and Kubo republishes only the
keys in its own keystore (ours never are). This puts again, byte for byte, every signed
record the home published and every one it depends on (its contacts' identity documents,
the revocation lists of issuers whose capsules it holds, the mailbox heads it reads); that
needs no key and no passphrase. Records of its own near their end of validity are
re-signed with ``--renew`` (which asks for the passphrases), else reported. Run it from
cron every 4 hours, or let the agent (``ipfs-share serve``) do it.
"""

from __future__ import annotations

import argparse

from ipfs_share.cli._shared import Names, fmt_time, open_mesh
from ipfs_share.cli.common import Context, Subparsers
from ipfs_share.cli.main import exit_code_for
from ipfs_share.cli.passphrase import add_passphrase_option
from ipfs_share.services.feeds import RecordReport

__all__ = ["register"]


def register(subparsers: Subparsers) -> None:
    republish = subparsers.add_parser(
        "republish",
        help="put this home's signed records on the node again, so its feeds stay alive",
        description="Put every IPNS record this home published or depends on again, byte "
        "for byte (no key needed), and report what was done with each. With --renew, "
        "records of your own near their end of validity are re-signed (asks for the "
        "passphrases); without it they are reported.",
    )
    republish.add_argument(
        "--renew",
        action="store_true",
        help="unlock your identities to re-sign records of your own that are near their end "
        "of validity (or not published yet)",
    )
    add_passphrase_option(republish)
    republish.set_defaults(handler=_republish)


def _line(r: RecordReport, names: Names) -> str:
    put = fmt_time(r.put_at, never="never put")
    why = f"  ({r.reason})" if r.reason else ""
    return (
        f"{r.action:<9} {r.kind:<11} {names.short(r.whose):<16} {r.name}  seq {r.seq}  "
        f"valid to {fmt_time(r.eol or None, never='-')}  put {put}{why}"
    )


async def _republish(args: argparse.Namespace, ctx: Context) -> int:
    async with open_mesh(args, ctx) as mesh:
        report = await mesh.republish(unlock=args.renew)
    names = Names()
    reput = report.count("reput")
    summary = (
        f"{reput} records put again ({report.count('reput', own=True)} of this home's, "
        f"{report.count('reput', own=False)} it depends on), {report.count('resigned')} "
        f"re-signed, {report.count('skipped')} skipped, {report.count('failed')} failed"
    )
    ctx.emit(report.to_json(), "\n".join([*(_line(r, names) for r in report.records), summary]))
    failed = [r for r in report.records if r.action == "failed" and r.error is not None]
    for r in failed:
        assert r.error is not None
        ctx.note(f"{r.kind} {r.name}: {r.error.message}")
    return exit_code_for(failed[0].error) if failed and failed[0].error else 0
