"""What the agent is for, on real Kubo nodes (the "done when" of its issue):

- a capsule sent to bob reaches his running agent within 10 s, events in order, and
  alice's outgoing shows it delivered (no command run on bob's side);
- a keychain key alice shares to bob reaches his running agent within 10 s too (accepted,
  released by alice's agent, opened; keychain_updated then key_received);
- a sender bob never added reaches him as a pending introduction, and after ``contacts
  accept`` the capsule is listed and opens; also when bob's agent starts only after the
  send (alice's agent re-announces);
- the republish runs on schedule, and a node restart under the agent loses nothing;
- 20 introductions from 20 strangers at once are rate-limited and capped as specified.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from agentkit import (
    PASSPHRASE,
    AgentProcess,
    Person,
    cli_env,
    person,
    restart,
    run_cli,
    running_agent,
    sse_events,
    start_fixed_node,
    wait_for,
)
from conftest import rpc

from ipfs_share.agent.files import socket_path
from ipfs_share.agent.remote import AgentClient
from ipfs_share.cli.main import main
from ipfs_share.crypto.signing import SigningKey
from ipfs_share.formats.introduction import introduction_topic, make_introduction
from ipfs_share.formats.mailbox import mailbox_key
from ipfs_share.node.daemon import KuboDaemon, RunningNode
from ipfs_share.services.mailbox import notice_topic
from ipfs_share.storage.kubo import KuboStorage


async def share_to(alice: Person, recipient: str, text: bytes) -> str:
    f = await alice.mesh.files.put("note.txt", text)
    return (await alice.mesh.share.file(f).with_(recipient)).id


def cli_in_thread(monkeypatch: pytest.MonkeyPatch, home: Path, api: str, *argv: str) -> Any:
    """``ipfs-share ARGV --json`` in this process (a thread), for a home: its JSON."""
    import contextlib
    import io

    monkeypatch.setenv("IPFS_SHARE_HOME", str(home))
    monkeypatch.setenv("IPFS_SHARE_API", api)
    monkeypatch.delenv("IPFS_SHARE_PASSPHRASE", raising=False)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main([*argv, "--json"])
    assert code == 0, out.getvalue()
    return json.loads(out.getvalue())


# -- delivery to a running agent -------------------------------------------------------------


async def test_a_capsule_reaches_a_running_agent_in_10_s_in_order_and_is_acknowledged(
    kubo_pair: tuple[RunningNode, RunningNode], tmp_path: Path
) -> None:
    a, b = kubo_pair
    alice = await person(a.api_url, tmp_path / "alice", "alice")
    bob = await person(b.api_url, tmp_path / "bob", "bob")
    alice.mesh.identity.add_contact("bob", bob.did)
    bob.mesh.identity.add_contact("alice", alice.did)
    await bob.mesh.identity.resolve(alice.did)
    bob_enc = bob.mesh.identity.keystore.get("bob").enc
    await bob.mesh.close()
    agent = AgentProcess(bob.home, b.api_url)
    try:
        agent.wait_ready()
        keys = await alice.mesh.identity.unlock()
        out_key = mailbox_key(keys.encryption, bob_enc, sender=alice.did, recipient=bob.did)
        topic = "u" + base64.urlsafe_b64encode(notice_topic(out_key).encode()).decode().rstrip("=")

        def subscribed() -> bool:  # bob's watch has reached alice's node: notices will arrive
            return b.peer_id in (rpc(a, "pubsub/peers", topic).get("Strings") or [])

        await wait_for(subscribed, 30, "bob's node subscribed to the notice topic")
        first = await share_to(alice, "bob", b"one")
        second = await share_to(alice, "bob", b"two")
        events = asyncio.ensure_future(asyncio.to_thread(sse_events, bob.home, 2, timeout=15))
        await asyncio.sleep(0.3)  # subscribed before the sends
        start = time.monotonic()
        await alice.mesh.share.send(first)
        await alice.mesh.share.send(second)
        got = await asyncio.wait_for(events, 15)
        took = time.monotonic() - start
        assert [(e["type"], e["data"]["id"]) for e in got] == [
            ("capsule_received", first),
            ("capsule_received", second),
        ]
        assert got[0]["id"] < got[1]["id"] and took < 10, f"took {took:.1f} s"

        async def delivered() -> bool:
            found = await alice.mesh.share.outgoing()
            return {o.id: o.state for o in found} == {first: "delivered", second: "delivered"}

        await wait_for(delivered, 15, "alice's outgoing to show both delivered")
        code, out, _ = run_cli(cli_env(bob.home, b.api_url), "inbox", "--json")
        assert code == 0 and [i["id"] for i in json.loads(out)["inbox"]] == [first, second]
    finally:
        assert agent.stop() == 0
        await alice.mesh.close()


def notice_topic_of(sender: Person, recipient: Person) -> str:
    """The pubsub topic of ``sender``'s mailbox to ``recipient`` as Kubo's RPC spells it."""
    keys = sender.mesh.identity.unlocked(sender.did)
    assert keys is not None
    peer_enc = recipient.mesh.identity.keystore.get(recipient.name).enc
    out_key = mailbox_key(keys.encryption, peer_enc, sender=sender.did, recipient=recipient.did)
    return "u" + base64.urlsafe_b64encode(notice_topic(out_key).encode()).decode().rstrip("=")


async def test_a_keychain_share_reaches_a_running_agent_in_10_s_in_order(
    kubo_pair: tuple[RunningNode, RunningNode], tmp_path: Path
) -> None:
    """Both agents run; alice shares her keychain's key to bob and nobody runs a command:
    bob's agent files the offer's pointer (inbox watch), accepts (keychain watch), alice's
    agent releases the key, bob's reads the release and opens the key."""
    a, b = kubo_pair
    alice = await person(a.api_url, tmp_path / "alice", "alice")
    bob = await person(b.api_url, tmp_path / "bob", "bob")
    alice.mesh.identity.add_contact("bob", bob.did)
    bob.mesh.identity.add_contact("alice", alice.did)
    await alice.mesh.identity.resolve(bob.did)
    await bob.mesh.identity.resolve(alice.did)
    await alice.mesh.identity.unlock()
    await bob.mesh.identity.unlock()
    to_bob, to_alice = notice_topic_of(alice, bob), notice_topic_of(bob, alice)
    await bob.mesh.close()
    await alice.mesh.close()
    agent = AgentProcess(bob.home, b.api_url)
    try:
        agent.wait_ready()
        async with running_agent(alice.home, a.api_url) as alice_agent:

            def subscribed() -> bool:  # each watch reached the other's node: notices arrive
                return b.peer_id in (rpc(a, "pubsub/peers", to_bob).get("Strings") or []) and (
                    a.peer_id in (rpc(b, "pubsub/peers", to_alice).get("Strings") or [])
                )

            await wait_for(subscribed, 30, "both nodes subscribed to the notice topics")
            kc = alice_agent.mesh.keychains
            fp = (await kc.create("team secrets")).fingerprint
            kinds = frozenset({"keychain_updated", "key_received"})
            events = asyncio.ensure_future(
                asyncio.to_thread(sse_events, bob.home, 2, timeout=20, types=kinds)
            )
            await asyncio.sleep(0.3)  # subscribed before the share
            start = time.monotonic()
            offer = await kc.share_most_recent_key(fp, "bob")
            got = await asyncio.wait_for(events, 25)  # the reader gives up at 20 s
            took = time.monotonic() - start
            assert [e["type"] for e in got] == ["keychain_updated", "key_received"]
            assert got[0]["id"] < got[1]["id"] and took < 10, f"took {took:.1f} s"
            assert got[0]["data"]["fingerprint"] == fp and got[0]["data"]["name"] == "team secrets"
            received = got[1]["data"]
            assert (received["keychain"], received["member"]) == (fp, bob.did)
            assert received["fingerprint"] == offer.keys[0] and received["added_by"] == alice.did
            status = AgentClient(socket_path(bob.home)).status()
            assert status["counts"]["keys_received"] == 1
            assert status["pending"]["keychains"] == {"notices": 0, "incoming": [], "outgoing": []}
        env = cli_env(bob.home, b.api_url, IPFS_SHARE_PASSPHRASE=PASSPHRASE)
        code, out, _ = run_cli(env, "keychain", "list", "--json")
        assert code == 0 and fp in out
    finally:
        assert agent.stop() == 0


async def test_concurrent_syncs_announce_each_capsule_once(
    kubo: RunningNode, tmp_path: Path
) -> None:
    """The agent's watch and a delegated inbox sync run at once in one process: each
    capsule is still announced once (a sync only announces what it moved out of pending)."""
    alice = await person(kubo.api_url, tmp_path / "alice", "alice")
    bob = await person(kubo.api_url, tmp_path / "bob", "bob")
    alice.mesh.identity.add_contact("bob", bob.did)
    bob.mesh.identity.add_contact("alice", alice.did)
    capsules = [await share_to(alice, "bob", f"n{i}".encode()) for i in range(5)]
    for c in capsules:
        await alice.mesh.share.send(c)
    seen: list[str] = []
    bob.mesh.inbox.subscribe("capsule_received", lambda item: seen.append(item.id))
    reports = await asyncio.gather(*(bob.mesh.inbox.sync_report() for _ in range(4)))
    assert sorted(seen) == sorted(capsules) and len(seen) == len(capsules)
    assert sorted(i.id for r in reports for i in r.new) == sorted(capsules)
    await alice.mesh.close()
    await bob.mesh.close()


# -- introductions -----------------------------------------------------------------------------


async def _introduced(
    monkeypatch: pytest.MonkeyPatch,
    a: RunningNode,
    b: RunningNode,
    tmp_path: Path,
    *,
    bob_late: bool,
) -> None:
    alice = await person(a.api_url, tmp_path / "alice", "alice")
    bob = await person(b.api_url, tmp_path / "bob", "bob")
    alice.mesh.identity.add_contact("bob", bob.did)
    await alice.mesh.close()
    await bob.mesh.close()
    async with running_agent(alice.home, a.api_url) as alice_agent:
        capsule = await share_to(
            Person(alice_agent.mesh, alice.home, "alice", alice.did), "bob", b"from a stranger"
        )
        sent = await asyncio.to_thread(
            cli_in_thread, monkeypatch, alice.home, a.api_url, "send", capsule
        )
        assert [o["state"] for o in sent["sent"]] == ["queued"]
        if bob_late:
            await wait_for(
                lambda: alice_agent.announcer.announced >= 2, 20, "alice to announce to nobody"
            )
        async with running_agent(bob.home, b.api_url) as bob_agent:
            intros = bob_agent.mesh.introductions
            await wait_for(lambda: intros.pending(), 30, "a pending introduction at bob")
            [pending] = intros.pending()
            assert pending.sender == alice.did and pending.recipient == bob.did
            assert bob_agent.mesh.inbox.list() == []  # not read: alice is not a contact
            listed = await asyncio.to_thread(
                cli_in_thread, monkeypatch, bob.home, b.api_url, "inbox"
            )
            assert [i["sender"] for i in listed["introductions"]] == [alice.did]
            assert listed["inbox"] == []
            accepted = await asyncio.to_thread(
                cli_in_thread,
                monkeypatch,
                bob.home,
                b.api_url,
                "contacts",
                "accept",
                alice.did,
                "alice",
            )
            assert accepted["petname"] == "alice"
            await wait_for(
                lambda: [i.id for i in bob_agent.mesh.inbox.list()] == [capsule],
                30,
                "the capsule in bob's inbox after accept",
            )
            listed = await asyncio.to_thread(
                cli_in_thread, monkeypatch, bob.home, b.api_url, "inbox"
            )
            assert [i["id"] for i in listed["inbox"]] == [capsule] and not listed["introductions"]
            opened = await asyncio.to_thread(
                cli_in_thread,
                monkeypatch,
                bob.home,
                b.api_url,
                "open",
                capsule,
                "-o",
                str(tmp_path / "opened"),
            )
            assert opened["name"] == "note.txt"
            assert (tmp_path / "opened").read_bytes() == b"from a stranger"

            async def delivered() -> bool:
                states = [o.state for o in await alice_agent.mesh.share.outgoing(refresh=False)]
                return states in (["delivered"], ["opened"])

            await wait_for(delivered, 30, "alice's agent to read bob's receipt")
            count = alice_agent.announcer.announced
            await asyncio.sleep(1.5)
            assert alice_agent.announcer.announced == count  # acknowledged: no more


async def test_a_stranger_reaches_a_running_agent_as_a_pending_introduction(
    kubo_pair: tuple[RunningNode, RunningNode], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = kubo_pair
    await _introduced(monkeypatch, a, b, tmp_path, bob_late=False)


async def test_a_stranger_is_re_announced_to_an_agent_that_starts_after_the_send(
    kubo_pair: tuple[RunningNode, RunningNode], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = kubo_pair
    await _introduced(monkeypatch, a, b, tmp_path, bob_late=True)


async def test_identities_of_one_home_read_each_other_without_introductions(
    kubo: RunningNode, tmp_path: Path
) -> None:
    """alice and bob in one home, not each other's contacts: bob's watch reads alice's
    mailbox to him anyway, and the announcer introduces nobody."""
    alice = await person(kubo.api_url, tmp_path / "home", "alice")
    await alice.mesh.identity.create("bob")
    await alice.mesh.identity.publish("bob")
    bob_did = alice.mesh.identity.get("bob").did
    await alice.mesh.close()
    async with running_agent(alice.home, kubo.api_url) as agent:
        mesh = agent.mesh
        f = await mesh.files.put("note.txt", b"for the other identity", as_="alice")
        capsule = await mesh.share.file(f).with_("bob", as_="alice")
        await mesh.share.send(capsule, as_="alice")
        agent.reconcile()  # bob's watch now has a mailbox to read (alice's to him)
        await wait_for(
            lambda: [i.id for i in mesh.inbox.list("bob")] == [capsule.id],
            20,
            "alice's capsule in bob's inbox",
        )
        assert mesh.inbox.list("bob")[0].sender == alice.did and not mesh.db.contacts.list()
        await asyncio.sleep(1.5)  # past the announce grace: nothing for a local pair
        assert agent.announcer.announced == 0 and bob_did not in [
            r for _, r in agent.announcer.schedules
        ]


async def test_twenty_strangers_at_once_are_rate_limited_and_capped(
    kubo: RunningNode, tmp_path: Path
) -> None:
    bob = await person(kubo.api_url, tmp_path / "bob", "bob")
    enc = bob.mesh.identity.keystore.get("bob").enc
    await bob.mesh.close()
    strangers = [SigningKey.generate() for _ in range(20)]
    topic = introduction_topic(bob.did)
    async with (
        running_agent(bob.home, kubo.api_url) as agent,
        await KuboStorage.connect(kubo.api_url) as store,
    ):
        await wait_for(lambda: agent.watched(), 20, "bob's watches")
        await asyncio.sleep(0.5)
        counts = agent.mesh.introductions.counters.by_outcome

        async def send(keys: list[SigningKey]) -> None:
            for k in keys:
                message = make_introduction(k, bob.did, enc, sent=int(time.time()))
                await store.pubsub_publish(topic, message)

        await send(strangers)
        await wait_for(lambda: sum(counts.values()) >= 20, 20, "20 introductions handled")
        assert (counts.get("pending"), counts.get("rate_limited")) == (10, 10)
        await asyncio.sleep(10.5)  # the bucket refills at 1 a second
        await send(strangers[10:])
        await wait_for(lambda: sum(counts.values()) >= 30, 20, "10 more handled")
        assert (counts["pending"], counts["capped"], counts["rate_limited"]) == (16, 4, 10)
        status = agent.status()
        assert len(status["pending"]["introductions"]) == 16
        assert status["introductions"] == counts


# -- republish and node restarts -----------------------------------------------------------------


@pytest.fixture
def own_node(kubo_binary: Path, tmp_path: Path) -> Iterator[tuple[KuboDaemon, RunningNode]]:
    daemon, node = start_fixed_node(tmp_path / "node", kubo_binary)
    try:
        yield daemon, node
    finally:
        daemon.stop(timeout=10)


async def test_republish_on_schedule_and_a_node_restart_loses_nothing(
    own_node: tuple[KuboDaemon, RunningNode], tmp_path: Path
) -> None:
    daemon, node = own_node
    alice = await person(node.api_url, tmp_path / "alice", "alice")
    bob = await person(node.api_url, tmp_path / "bob", "bob")
    alice.mesh.identity.add_contact("bob", bob.did)
    bob.mesh.identity.add_contact("alice", alice.did)
    await bob.mesh.close()
    async with running_agent(
        bob.home, node.api_url, republish_every=1.5, republish_retry=0.5
    ) as agent:
        state = agent.schedule.state
        await wait_for(lambda: state.runs >= 2 and state.last_ok, 20, "two scheduled runs")
        first = state.last_ok
        assert first is not None and first.report["counts"]["reput"] >= 1  # bob's document
        # The node goes away long enough for a run to fail, then comes back.
        await asyncio.to_thread(daemon.stop, 10)
        await wait_for(lambda: agent.node.state.up is False, 10, "the agent to see it down")
        await wait_for(lambda: state.failures >= 1, 10, "a run to fail while it is down")
        assert state.retry_in is not None and not state.last.ok  # type: ignore[union-attr]
        await asyncio.to_thread(restart, daemon)
        restarted_at = int(time.time())
        await wait_for(lambda: agent.node.state.up is True, 20, "the agent to reconnect")
        assert agent.node.state.reconnects == 1
        await wait_for(
            lambda: state.last is not None and state.last.ok and state.last.started > first.started,
            20,
            "a run to complete after the restart",
        )
        own = [r for r in agent.mesh.db.records.list() if r.own]
        assert own and all(r.put_at is not None and r.put_at >= restarted_at for r in own)
        # The watches came back too: a capsule sent now still arrives.
        await wait_for(lambda: agent.watched(), 20, "the watches to restart")
        await asyncio.sleep(1.0)
        await alice.mesh.close()  # alice's own connections went with the old node process
        alice = await person(node.api_url, alice.home, "alice")
        capsule = await share_to(alice, "bob", b"after the restart")
        await alice.mesh.share.send(capsule)
        await wait_for(
            lambda: capsule in [i.id for i in agent.mesh.inbox.list()], 15, "delivery after restart"
        )
        last = agent.status()["republish"]["last"]["report"]
        assert last["counts"]["failed"] == 0 and last["counts"]["reput"] >= 1
    await alice.mesh.close()
