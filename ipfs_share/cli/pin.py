"""``ipfs-share pin remote add|ls|rm``: pinning services (the IPFS Pinning Service API).

::

    $ ipfs-share pin remote add pinata https://api.pinata.cloud/psa --token-file token.txt
    $ ipfs-share put report.pdf --pin-remote pinata     # waits until the service pinned it
    $ ipfs-share pin remote ls                          # the services
    $ ipfs-share pin remote ls pinata                   # what that service holds for us
    $ ipfs-share pin remote rm pinata bafybei...        # ask it to unpin
    $ ipfs-share pin remote rm pinata                   # forget the service

The token is read from a file (``--token-file FILE``, or ``-`` for stdin), from stdin when
it is not a terminal, or at a hidden prompt; never from the command line, where other
users could see it. It is stored 0600 in the home.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

from ipfs_share import paths
from ipfs_share.cli.common import Context, Subparsers
from ipfs_share.errors import InvalidInputError
from ipfs_share.formats.cid import normalize_cid
from ipfs_share.services.remote_pins import RemotePins
from ipfs_share.storage.pinning import STATUSES, AccessToken, RemotePin

__all__ = ["read_token", "register"]


def register(subparsers: Subparsers) -> None:
    pin = subparsers.add_parser("pin", help="remote pins through pinning services")
    pin_sub = pin.add_subparsers(dest="pin_command", metavar="COMMAND", required=True)
    remote = pin_sub.add_parser(
        "remote",
        help="register pinning services, list and remove what they pin",
        description="Pinning services that speak the IPFS Pinning Service API; put "
        "--pin-remote NAME asks one to pin what was put.",
    )
    sub = remote.add_subparsers(dest="remote_command", metavar="COMMAND", required=True)

    add = sub.add_parser(
        "add",
        help="register a pinning service (URL and access token)",
        description="Register SERVICE at URL (the API endpoint, the part before /pins). "
        "The token comes from --token-file FILE (- for stdin), else stdin, else a prompt.",
    )
    add.add_argument("service", metavar="SERVICE", help="a short name for it, e.g. pinata")
    add.add_argument("url", metavar="URL", help="its API endpoint, https (http on this machine)")
    add.add_argument(
        "--token-file", type=Path, metavar="FILE", help="read the access token from FILE (- stdin)"
    )
    add.add_argument("--replace", action="store_true", help="replace a service of that name")
    add.set_defaults(handler=_add)

    ls = sub.add_parser(
        "ls",
        help="list the services, or one service's pins",
        description="Without SERVICE, the registered services; with it, what it pins for us.",
    )
    ls.add_argument("service", metavar="SERVICE", nargs="?")
    ls.add_argument(
        "--status",
        default=",".join(STATUSES),
        help=f"with SERVICE: the statuses to list (default {','.join(STATUSES)})",
    )
    ls.set_defaults(handler=_ls)

    rm = sub.add_parser(
        "rm",
        help="ask a service to unpin CIDs, or forget the service",
        description="With CIDs, withdraw every pin request for them at SERVICE; without, "
        "forget SERVICE and its token here (its pins stay at the service).",
    )
    rm.add_argument("service", metavar="SERVICE")
    rm.add_argument("cids", metavar="CID", nargs="*")
    rm.set_defaults(handler=_rm)


def read_token(path: Path | None) -> AccessToken:
    """The token from ``path`` (``-``: stdin), else stdin if it is not a terminal, else
    a hidden prompt."""
    if path is not None and str(path) != "-":
        try:
            return AccessToken(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidInputError(
                f"cannot read the token file {path}: {exc}", hint="check the path"
            ) from exc
    if path is not None or not sys.stdin.isatty():
        return AccessToken(sys.stdin.read(16384))
    return AccessToken(getpass.getpass("access token: "))


def _registry() -> RemotePins:
    return RemotePins(paths.home_dir(), None)


def _add(args: argparse.Namespace, ctx: Context) -> None:
    token = read_token(args.token_file)
    service = _registry().add_service(args.service, args.url, token, replace=args.replace)
    ctx.emit(
        service.to_json(),
        f"registered {service.name} at {service.url}; put a file with "
        f"--pin-remote {service.name} to pin it there",
    )


def _pin_line(pin: RemotePin) -> str:
    return f"{pin.cid}  {pin.status:<8} {pin.created or '-'}  {pin.name or ''}".rstrip()


async def _ls(args: argparse.Namespace, ctx: Context) -> None:
    registry = _registry()
    if args.service is None:
        found = registry.services()
        ctx.emit(
            {"services": [s.to_json() for s in found]},
            "\n".join(f"{s.name:<16} {s.url}" for s in found)
            or "no pinning services yet: ipfs-share pin remote add NAME URL --token-file FILE",
        )
        return
    statuses = tuple(s.strip() for s in args.status.split(",") if s.strip())
    unknown = [s for s in statuses if s not in STATUSES]
    if unknown or not statuses:
        raise InvalidInputError(
            f"expected statuses among {','.join(STATUSES)}, found {args.status!r}",
            hint="e.g. --status pinned,failed",
        )
    pins = await registry.pins(args.service, statuses=statuses)
    ctx.emit(
        {"service": args.service, "pins": [p.to_json() for p in pins]},
        "\n".join(_pin_line(p) for p in pins) or f"{args.service} holds no pins for us",
    )


async def _rm(args: argparse.Namespace, ctx: Context) -> None:
    if not args.cids:
        gone = _registry().remove_service(args.service)
        ctx.emit(
            {"removed": gone.to_json()},
            f"forgot {gone.name} ({gone.url}); what it pins stays there",
        )
        return
    cids = [normalize_cid(c) for c in args.cids]  # all checked before any request
    registry = _registry()
    counts = {cid: await registry.unpin(args.service, cid) for cid in cids}
    ctx.emit(
        {"service": args.service, "withdrawn": counts},
        "\n".join(
            f"{cid}: {n} pin request{'s' if n != 1 else ''} withdrawn" for cid, n in counts.items()
        ),
    )
