"""``ipfs-share serve``: run the agent for this home in the foreground.

::

    $ ipfs-share serve                          # until Ctrl-C or SIGTERM
    $ IPFS_SHARE_PASSPHRASE=... ipfs-share serve --republish-every 4h
    $ ipfs-share serve --passphrase-file /run/credentials/ipfs-share.service/passphrase
    $ ipfs-share serve --port 0 --cors-origin https://app.example   # the HTTP API

One agent per home (a second is refused, naming the first's pid). It republishes records
on a schedule, watches the inbox of every unlocked identity, takes introductions, and
serves the command line on ``<home>/agent.sock``. At start it unlocks every identity the
given passphrase opens (``--passphrase-file``, else ``IPFS_SHARE_PASSPHRASE``), for as
long as it runs; others stay locked until ``ipfs-share unlock``. It never prompts: a
service manager or a container runs it (README: the agent).

It also serves the HTTP API (``docs/openapi.json``) on 127.0.0.1:5052 (``--listen``,
``--port``; ``--listen unix:PATH`` for a socket; ``--no-http`` for none), every request
with the bearer token ``ipfs-share agent token`` prints; CORS only for the origins named
with ``--cors-origin``. An open it serves may use an issuer's revocation list resolved at
most ``--revocation-fresh-for`` seconds ago (default 1; 0 resolves at every open;
docs/spec/revocation.md section 5.1).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import TYPE_CHECKING

from ipfs_share import paths
from ipfs_share.cli.common import Context, Subparsers
from ipfs_share.cli.passphrase import PASSPHRASE_ENV, PassphraseSource, add_passphrase_option
from ipfs_share.errors import InvalidInputError

if TYPE_CHECKING:
    from ipfs_share.http.server import Listen

AGENT_FRESH_FOR = 1.0  # the default of AgentOptions.revocation_fresh_for (not imported here)
MAX_FRESH_FOR = 60.0

__all__ = ["register"]


def register(subparsers: Subparsers) -> None:
    serve = subparsers.add_parser(
        "serve",
        help="run the agent for this home in the foreground",
        description="Keep this home present: republish records, watch inboxes, take "
        "introductions, hold unlocked keys for the command line (over <home>/agent.sock). "
        "Runs until SIGTERM or Ctrl-C.",
    )
    serve.add_argument(
        "--republish-every",
        default="4h",
        metavar="DURATION",
        help="how often to republish records (90s, 15m, 4h, 1d; default 4h)",
    )
    serve.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="what goes to stderr (default info)",
    )
    serve.add_argument(
        "--listen",
        default="127.0.0.1",
        metavar="HOST|unix:PATH",
        help="where the HTTP API listens (default 127.0.0.1; unix:PATH for a socket)",
    )
    serve.add_argument(
        "--port",
        type=int,
        default=5052,
        help="the HTTP API's port (default 5052; 0: any free port, shown in agent status)",
    )
    serve.add_argument(
        "--no-http", action="store_true", help="serve only the home's socket, no HTTP API"
    )
    serve.add_argument(
        "--cors-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="let browser pages from this origin call the API (repeatable; default: none)",
    )
    serve.add_argument(
        "--revocation-fresh-for",
        type=float,
        default=AGENT_FRESH_FOR,
        metavar="SECONDS",
        help="answer an open from an issuer's revocation list resolved at most this long "
        f"ago (default {AGENT_FRESH_FOR:g}; 0: resolve at every open)",
    )
    add_passphrase_option(serve)
    serve.set_defaults(handler=_serve)


def _listen(args: argparse.Namespace) -> Listen | None:
    from pathlib import Path

    from ipfs_share.http.server import Listen

    if args.no_http:
        return None
    if not 0 <= args.port <= 65535:
        raise InvalidInputError(f"expected --port in 0..65535, found {args.port}")
    for origin in args.cors_origin:
        if origin == "*" or "://" not in origin:
            raise InvalidInputError(
                f"expected --cors-origin as scheme://host[:port], found {origin!r:.60}",
                hint="name each origin that may call the API; there is no wildcard",
            )
    if args.listen.startswith("unix:"):
        return Listen(path=Path(args.listen[5:]), cors_origins=tuple(args.cors_origin))
    return Listen(host=args.listen, port=args.port, cors_origins=tuple(args.cors_origin))


def _start_passphrase(args: argparse.Namespace) -> PassphraseSource | None:
    """The passphrase to unlock with at start, if one was given; never a prompt."""
    path = args.passphrase_file
    if path is not None:
        from ipfs_share.cli.passphrase import passphrase_source

        return passphrase_source(args)
    value = os.environ.get(PASSPHRASE_ENV)
    if value:
        secret = value.encode()
        return lambda prompt: secret
    return None


async def _serve(args: argparse.Namespace, ctx: Context) -> None:
    from ipfs_share.agent.core import Agent, AgentOptions
    from ipfs_share.http.server import serve
    from ipfs_share.services.share import parse_duration

    try:
        every = parse_duration(args.republish_every)
    except InvalidInputError as exc:
        raise InvalidInputError(f"--republish-every: {exc.message}") from None
    assert every is not None
    fresh_for = args.revocation_fresh_for
    if not 0 <= fresh_for <= MAX_FRESH_FOR:
        raise InvalidInputError(
            f"expected --revocation-fresh-for in 0..{MAX_FRESH_FOR:g} seconds, found {fresh_for:g}",
            hint="it is how long a revocation may go unnoticed by opens here; keep it short",
        )
    logging.basicConfig(
        stream=sys.stderr,
        level=args.log_level.upper(),
        format="%(asctime)s ipfs-share serve: %(levelname)s %(message)s",
    )
    for noisy in ("aiohttp.access", "aiohttp.server"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    agent = Agent(
        paths.home_dir(),
        ctx.api,
        options=AgentOptions(republish_every=float(every), revocation_fresh_for=fresh_for),
        passphrase=_start_passphrase(args),
    )
    await serve(agent, http=_listen(args))
