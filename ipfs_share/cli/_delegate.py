"""Run an operation in the agent when there is one, else here: the same function either way.

A command that needs keys builds the operation's JSON parameters and calls
:func:`run_operation`. With an agent for the home (its socket answers, and no ``--api``,
``--cluster`` or ``IPFS_SHARE_NO_AGENT`` says otherwise), the agent runs it with the keys
it holds; if the agent holds the identity locked, or no agent answers, the command runs it
itself, asking for the passphrase as it always did. Not a command module.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from typing import Any

from ipfs_share import paths
from ipfs_share.agent.remote import AgentClient, agent_for
from ipfs_share.cli.common import Context
from ipfs_share.errors import AgentNotRunningError, IdentityLockedError

__all__ = ["agent_client", "poke_agent", "run_operation"]


def agent_client(ctx: Context) -> AgentClient | None:
    """The home's agent, unless an explicit ``--api`` or ``--cluster`` names other storage
    for this command."""
    if ctx.api is not None or ctx.cluster is not None:
        return None
    return agent_for(paths.home_dir())


def fall_back(ctx: Context, exc: Exception) -> None:
    """Say why a command runs here although an agent is there (a locked identity)."""
    if isinstance(exc, IdentityLockedError):
        ctx.note("the agent holds this identity locked; unlocking here for this command")


async def run_operation(
    args: argparse.Namespace, ctx: Context, name: str, params: dict[str, Any]
) -> dict[str, Any]:
    """The result of operation ``name`` (:mod:`ipfs_share.agent.operations`)."""
    client = agent_client(ctx)
    if client is not None:
        try:
            return await asyncio.to_thread(client.operation, name, params)
        except (AgentNotRunningError, IdentityLockedError) as exc:
            fall_back(ctx, exc)
    from ipfs_share.agent.operations import OPERATIONS
    from ipfs_share.cli._shared import open_mesh

    async with open_mesh(args, ctx) as mesh:
        return await OPERATIONS[name](mesh, params)


def poke_agent(ctx: Context) -> None:
    """Tell a running agent the contacts changed (it re-reads them soon anyway)."""
    client = agent_client(ctx)
    if client is None:
        return
    with contextlib.suppress(Exception):  # a courtesy: the agent looks again within seconds
        client.reload()
