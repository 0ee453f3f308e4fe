"""``ipfs-share serve``: run the agent for this home in the foreground.

::

    $ ipfs-share serve                          # until Ctrl-C or SIGTERM
    $ IPFS_SHARE_PASSPHRASE=... ipfs-share serve --republish-every 4h
    $ ipfs-share serve --passphrase-file /run/credentials/ipfs-share.service/passphrase

One agent per home (a second is refused, naming the first's pid). It republishes records
on a schedule, watches the inbox of every unlocked identity, takes introductions, and
serves the command line on ``<home>/agent.sock``. At start it unlocks every identity the
given passphrase opens (``--passphrase-file``, else ``IPFS_SHARE_PASSPHRASE``), for as
long as it runs; others stay locked until ``ipfs-share unlock``. It never prompts: a
service manager or a container runs it (README: the agent).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from ipfs_share import paths
from ipfs_share.cli.common import Context, Subparsers
from ipfs_share.cli.passphrase import PASSPHRASE_ENV, PassphraseSource, add_passphrase_option
from ipfs_share.errors import InvalidInputError

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
    add_passphrase_option(serve)
    serve.set_defaults(handler=_serve)


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
        options=AgentOptions(republish_every=float(every)),
        passphrase=_start_passphrase(args),
    )
    await serve(agent)
