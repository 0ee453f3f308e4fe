"""``ipfs-share agent status|token``: the running agent, as the command line sees it.

::

    $ ipfs-share agent status            # exit 14 (agent_not_running) if none runs
    agent: running (pid 4242) for /home/me/.local/share/ipfs-share since ...
    node: http://127.0.0.1:5001 up since ... (Kubo 0.43.0)
    unlocked: bob until 2026-12-01 18:00:00 UTC
    ...
    $ ipfs-share agent token             # the HTTP API's bearer token (0600 file)
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from ipfs_share import paths
from ipfs_share.agent.files import read_token, socket_path
from ipfs_share.agent.lock import holder
from ipfs_share.agent.remote import AgentClient
from ipfs_share.cli.common import Context, Subparsers
from ipfs_share.errors import AgentNotRunningError, NotFoundError

__all__ = ["register"]


def register(subparsers: Subparsers) -> None:
    agent = subparsers.add_parser("agent", help="the agent's status, and its API token")
    sub = agent.add_subparsers(dest="agent_command", metavar="COMMAND", required=True)
    sub.add_parser(
        "status",
        help="running or not; node, unlocked identities, republish, watches, pending items",
    ).set_defaults(handler=_status)
    sub.add_parser("token", help="print the bearer token of the agent's HTTP API").set_defaults(
        handler=_token
    )


def _when(ts: object) -> str:
    if not isinstance(ts, int | float):
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _status(args: argparse.Namespace, ctx: Context) -> None:
    home = paths.home_dir()
    client = AgentClient.find(home)
    if client is None:
        pid = holder(home)
        raise AgentNotRunningError(
            f"no agent is running for {home}"
            + (f" (pid {pid} holds its lock but serves no socket)" if pid else "")
        )
    status = client.status()
    ctx.emit(status, "\n".join(_lines(status)))


def _lines(s: dict[str, Any]) -> list[str]:
    node = s["node"]
    state = "up" if node["up"] else ("down" if node["up"] is False else "not reached yet")
    lines = [
        f"agent: running (pid {s['pid']}) for {s['home']} since {_when(s['started_at'])}",
        f"node: {node['url']} {state} since {_when(node['since'])}"
        + (f" (Kubo {node['version']})" if node["version"] else "")
        + (f"; reconnected {node['reconnects']}x" if node["reconnects"] else "")
        + (f"; last error: {node['error']}" if node["error"] and not node["up"] else ""),
    ]
    unlocked = s["unlocked"]
    lines.append(
        "unlocked: "
        + (
            ", ".join(
                f"{u['name']} "
                + (
                    "(not sealed)"
                    if not u["sealed"]
                    else f"until {_when(u['until'])}"
                    if u["until"]
                    else "until the agent stops"
                )
                for u in unlocked
            )
            or "none (ipfs-share unlock --as NAME)"
        )
    )
    if s["locked"]:
        lines.append(f"locked: {', '.join(s['locked'])}")
    r = s["republish"]
    last = r["last"]
    if last is None:
        lines.append(f"republish: never yet; next {_when(r['next_at'])}")
    else:
        outcome = "ok" if last["ok"] else "FAILED"
        lines.append(
            f"republish: last {_when(last['finished'])} {outcome}; next {_when(r['next_at'])}"
            + (f" (retrying every {r['retry_in']:.0f} s)" if r["retry_in"] else "")
        )
    watching = s["watching"]
    lines.append(
        "watching: "
        + (
            ", ".join(f"{w['identity']} ({w['mailboxes']} mailboxes)" for w in watching)
            or "nothing (no unlocked identity, or the node is down)"
        )
    )
    pending = s["pending"]
    lines.append(
        f"pending: {len(pending['introductions'])} introduction(s), "
        f"{pending['inbox_not_fetched']} inbox item(s) not fetched yet, "
        f"{pending['queued_outgoing']} recipient(s) with capsules not acknowledged"
    )
    for i in pending["introductions"]:
        lines.append(f"  introduction from {i['sender']} to {i['recipient']}")
    kc = pending.get("keychains") or {"notices": 0, "incoming": [], "outgoing": []}
    lines.append(
        f"keychains: {kc['notices']} pointer(s) not taken up, "
        f"{len(kc['incoming'])} offer(s) to this home, {len(kc['outgoing'])} made here open"
    )
    for o in kc["incoming"]:
        waits = "waiting for the keys" if o["status"] == "accepted" else "to accept"
        lines.append(f"  offer {o['offer']} from {o['sharer']}: {waits}")
    for o in kc["outgoing"]:
        waits = "to release" if o["status"] == "accepted" else "waiting for an accept"
        lines.append(f"  offer {o['offer']} to {o['to_name'] or o['to']}: {waits}")
    http = s.get("http") or []
    lines.append("http api: " + (", ".join(http) if http else "not served"))
    return lines


def _token(args: argparse.Namespace, ctx: Context) -> None:
    home = paths.home_dir()
    token = read_token(home)
    if token is None:
        hint = "start 'ipfs-share serve' once: it writes the token at its first start"
        if socket_path(home).exists():
            hint = "the agent writes it at start; check the home's permissions"
        raise NotFoundError(f"no agent token in {home}", hint=hint)
    ctx.emit({"token": token}, token)
