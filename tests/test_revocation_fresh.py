"""The agent's revocation freshness bound (docs/spec/revocation.md section 5.1), against a
real agent and a real Kubo: an open may be answered from the issuer's list as resolved at
most ``revocation_fresh_for`` seconds ago, and never from an older one, so a revocation
published is refused once the bound has passed; a revoke made by the same home is
refused at once; and ``serve``, the agent's options and the service refuse a bound outside
0..60 s.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from agentkit import cli_env, person, run_cli, running_agent, tcp_api

from ipfs_share.agent.core import AgentOptions
from ipfs_share.agent.files import read_token
from ipfs_share.errors import InvalidInputError, RecipientNotAuthorizedError, ShareRevokedError
from ipfs_share.node.daemon import RunningNode
from ipfs_share.status import EXIT_CODES

FRESH = 2.0
LIMIT = aiohttp.ClientTimeout(total=90)


async def test_a_revocation_is_refused_by_the_agent_once_its_freshness_bound_has_passed(
    kubo: RunningNode, tmp_path: Path
) -> None:
    alice = await person(kubo.api_url, tmp_path / "alice", "alice")  # the issuer, here
    bob = await person(kubo.api_url, tmp_path / "bob", "bob")
    await bob.mesh.close()
    alice.mesh.identity.add_contact("bob", bob.did)
    f = await alice.mesh.files.put("note.txt", b"for bob, until revoked")
    capsule = (await alice.mesh.share.file(f).with_("bob")).id
    loop = asyncio.get_running_loop()
    try:
        async with (
            running_agent(bob.home, kubo.api_url, revocation_fresh_for=FRESH) as agent,
            tcp_api(agent) as base,
            aiohttp.ClientSession(timeout=LIMIT) as http,
        ):
            url = f"{base}/v1/capsules/{capsule}/plaintext"
            headers = {"Authorization": f"Bearer {read_token(bob.home)}"}
            first = loop.time()  # the list is resolved after this: its head is held from then
            async with http.get(url, headers=headers) as r:
                assert r.status == 200 and await r.read() == b"for bob, until revoked"
            await alice.mesh.share.revoke(capsule)  # published on the node the agent asks
            revoked = loop.time()
            async with http.get(url, headers=headers) as r:
                within = r.status
            if loop.time() - first < FRESH:  # the head held is younger than the bound
                assert within == 200, "within the bound the held head answers (its cost)"
            await asyncio.sleep(FRESH - (loop.time() - revoked) + 0.1)
            async with http.get(url, headers=headers) as r:
                assert r.status == 410, await r.text()
                assert (await r.json())["error"]["code"] == "share_revoked"
    finally:
        await alice.mesh.close()


async def test_a_revoke_made_by_the_home_itself_is_refused_at_once(
    kubo: RunningNode, tmp_path: Path
) -> None:
    alice = await person(kubo.api_url, tmp_path / "alice", "alice")
    bob = await person(kubo.api_url, tmp_path / "bob", "bob")
    await bob.mesh.close()
    try:
        alice.mesh.revocations.fresh_for = 60.0  # a held head would answer all test long
        alice.mesh.identity.add_contact("bob", bob.did)
        f = await alice.mesh.files.put("note.txt", b"x")
        capsule = (await alice.mesh.share.file(f).with_("bob")).id
        # The issuer holds no stanza of its own capsule: the open passes the revocation
        # check (holding the list's head) and is refused after it.
        with pytest.raises(RecipientNotAuthorizedError):
            await alice.mesh.share.open_capsule(capsule)
        await alice.mesh.share.revoke(capsule)
        with pytest.raises(ShareRevokedError):
            await alice.mesh.share.open_capsule(capsule)
    finally:
        await alice.mesh.close()


@pytest.mark.parametrize("value", ["-1", "61", "nan"])
def test_serve_refuses_a_freshness_bound_outside_0_to_60_seconds(
    tmp_path: Path, value: str
) -> None:
    env = cli_env(tmp_path / "home", "http://127.0.0.1:9")
    code, _, err = run_cli(env, "serve", "--revocation-fresh-for", value, "--no-http")
    assert code == EXIT_CODES["invalid_input"], err
    assert "--revocation-fresh-for" in err and "0..60" in err


@pytest.mark.parametrize("value", [3600.0, float("inf"), -1.0, float("nan")])
async def test_the_library_refuses_a_freshness_bound_outside_0_to_60_seconds_too(
    kubo: RunningNode, tmp_path: Path, value: float
) -> None:
    # The agent embedded in another program gets the same bound as serve: an hour (or
    # forever) would let a revoked share keep opening there for as long.
    bob = await person(kubo.api_url, tmp_path / "bob", "bob")
    try:
        with pytest.raises(InvalidInputError, match=r"0\.\.60"):
            bob.mesh.revocations.fresh_for = value
        assert bob.mesh.revocations.fresh_for == 0
        with pytest.raises(InvalidInputError, match=r"0\.\.60"):
            AgentOptions(revocation_fresh_for=value)
    finally:
        await bob.mesh.close()


async def test_a_check_in_flight_during_the_homes_own_revoke_does_not_hold_the_old_head(
    kubo: RunningNode, tmp_path: Path
) -> None:
    # An open that resolved the list just before the revoke published the new head ends
    # after it: what it found must not be held for the next opens, or the home's own
    # revocation waits out the bound after all.
    alice = await person(kubo.api_url, tmp_path / "alice", "alice")
    bob = await person(kubo.api_url, tmp_path / "bob", "bob")
    await bob.mesh.close()
    lists = alice.mesh.revocations
    try:
        lists.fresh_for = 60.0
        alice.mesh.identity.add_contact("bob", bob.did)
        f = await alice.mesh.files.put("note.txt", b"x")
        capsule = (await alice.mesh.share.file(f).with_("bob")).id
        doc = await alice.mesh.identity.document(alice.did)
        real_read = lists.reader.read
        resolved, go_on = asyncio.Event(), asyncio.Event()

        async def slow_read(*args: Any, **kwargs: Any) -> Any:
            found = await real_read(*args, **kwargs)
            resolved.set()
            await go_on.wait()
            return found

        lists.reader.read = slow_read  # type: ignore[method-assign]
        in_flight = asyncio.ensure_future(lists.check(alice.did, doc.revocations, capsule))
        await asyncio.wait_for(resolved.wait(), 30)
        lists.reader.read = real_read  # type: ignore[method-assign]
        await alice.mesh.share.revoke(capsule)
        go_on.set()
        await in_flight  # it checked the list as it was before the revoke
        with pytest.raises(ShareRevokedError):
            await lists.check(alice.did, doc.revocations, capsule)
    finally:
        await alice.mesh.close()
