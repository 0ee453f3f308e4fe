"""Remote pins through the IPFS Pinning Service API, against a real implementation: the
pinning-service endpoint of the session's 3-peer IPFS Cluster, with bearer tokens.

Content is put on the session's plain ``kubo`` node (not part of the cluster); the pin
request carries that node's multiaddrs as origins, so the cluster's peers fetch it from
there."""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from cluster_fixtures import TestCluster

from ipfs_share.errors import (
    InvalidInputError,
    NodeUnreachableError,
    NotFoundError,
    PinServiceAuthError,
    RemotePinFailedError,
)
from ipfs_share.formats.cid import RAW, cid_for
from ipfs_share.node.ports import free_port
from ipfs_share.services.remote_pins import RemotePins
from ipfs_share.storage.embedded import EmbeddedStorage
from ipfs_share.storage.kubo import KuboStorage
from ipfs_share.storage.pinning import AccessToken, PinningClient


@pytest.fixture
async def node(kubo: Any) -> AsyncIterator[KuboStorage]:
    async with await KuboStorage.connect(kubo.api_url) as store:
        yield store


@pytest.fixture
def pins(cluster: TestCluster, node: KuboStorage, tmp_path: Path) -> RemotePins:
    registry = RemotePins(tmp_path / "home", node)
    registry.add_service("cluster", cluster.peers[1].pinsvc_url, AccessToken(cluster.token))
    return registry


# -- the registry -------------------------------------------------------------------------


def test_a_service_is_stored_0600_and_its_token_is_never_shown(tmp_path: Path) -> None:
    registry = RemotePins(tmp_path, None)
    token = AccessToken("s3cret-t0ken")
    service = registry.add_service("local", "http://127.0.0.1:9097/", token)
    path = tmp_path / "pin-services" / "local.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert service.url == "http://127.0.0.1:9097"
    assert [s.name for s in registry.services()] == ["local"]
    client = registry.client("local")
    shown = " ".join(map(repr, (token, service, registry, client, registry.services())))
    assert "s3cret" not in shown + str(token)
    assert not list(path.parent.glob(".*.tmp"))  # written atomically, nothing left over

    with pytest.raises(InvalidInputError):  # a second of the same name needs --replace
        registry.add_service("local", "http://127.0.0.1:1", token)
    registry.add_service("local", "http://127.0.0.1:1", token, replace=True)
    assert registry.service("local").url == "http://127.0.0.1:1"
    registry.remove_service("local")
    with pytest.raises(NotFoundError) as info:
        registry.service("local")
    assert "pin remote add" in info.value.hint


@pytest.mark.parametrize(
    "url",
    [
        "http://pins.example/api",  # a token in the clear over the network
        "https://user:pw@pins.example",  # credentials in the URL
        "ftp://pins.example",
        "https://pins.example/?token=x",
        "pins.example",
    ],
)
def test_unsafe_or_malformed_service_urls_are_refused(tmp_path: Path, url: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        RemotePins(tmp_path, None).add_service("x", url, AccessToken("t"))
    assert info.value.hint
    assert not (tmp_path / "pin-services" / "x.json").exists()


@pytest.mark.parametrize("name", ["", "Upper", "a/b", "../up", "x" * 65, "-dash"])
def test_service_names_are_checked(tmp_path: Path, name: str) -> None:
    with pytest.raises(InvalidInputError):
        RemotePins(tmp_path, None).add_service(name, "https://pins.example", AccessToken("t"))


@pytest.mark.parametrize("token", ["", "  \n", "two words", "x" * 9000])
def test_bad_tokens_are_refused(token: str) -> None:
    with pytest.raises(InvalidInputError):
        AccessToken(token)


# -- against the cluster's pinning service ------------------------------------------------


async def test_a_remote_pin_reaches_pinned_and_the_cluster_holds_it(
    pins: RemotePins, node: KuboStorage, cluster: TestCluster
) -> None:
    data = os.urandom(300_000)
    added = await node.add(data)
    origins = await pins.origins()
    assert origins and all("/p2p/" in o for o in origins)
    pinned = await pins.pin("cluster", added.cid, name="report", timeout=60)
    assert pinned.status == "pinned" and pinned.cid == added.cid
    listed = await pins.pins("cluster", statuses=("pinned",))
    assert added.cid in {p.cid for p in listed}
    # The cluster's peers fetched it from our node: their Kubo nodes hold it now. (The
    # service answered for its own peer; the others learn of the pin a moment later.)
    async with await cluster.storage() as replicated:
        for _ in range(100):
            where = (await replicated.placements([added.cid]))[0]
            if len(where.pinned) == len(cluster.peers):
                break
            await asyncio.sleep(0.2)
        assert len(where.pinned) == len(cluster.peers), where
        assert await replicated.block_has(added.cid)
    assert await pins.unpin("cluster", added.cid) == 1
    # Unpinning takes the service a moment: the request leaves its listing soon after.
    for _ in range(100):
        if added.cid not in {p.cid for p in await pins.pins("cluster")}:
            break
        await asyncio.sleep(0.2)
    else:
        raise AssertionError(f"{added.cid} still listed 20 s after it was withdrawn")


async def test_a_wrong_token_is_a_typed_error_with_a_hint(
    cluster: TestCluster, node: KuboStorage, tmp_path: Path
) -> None:
    pins = RemotePins(tmp_path, node)
    pins.add_service("cluster", cluster.peers[0].pinsvc_url, AccessToken("not-the-token"))
    with pytest.raises(PinServiceAuthError) as info:
        await pins.pin("cluster", cid_for(RAW, b"x"))
    assert info.value.code == "pin_service_unauthorized"
    assert "--token-file" in info.value.hint
    assert "not-the-token" not in info.value.message


async def test_a_pin_the_service_cannot_fetch_fails_typed(pins: RemotePins) -> None:
    nobody_has = cid_for(RAW, os.urandom(32))
    async with pins.client("cluster") as client:
        request = await client.add(nobody_has)
        try:
            # Not pinned in the time we give: typed, with a hint, and the request stays.
            with pytest.raises(RemotePinFailedError) as info:
                await client.wait(request.requestid, timeout=1.0)
            assert "after 1 s" in info.value.message and info.value.hint
            # The service gives up itself (the cluster's pin timeout) and says "failed".
            with pytest.raises(RemotePinFailedError) as failed:
                await client.wait(request.requestid, timeout=90.0, max_delay=1.0)
            assert "could not pin" in failed.value.message
        finally:
            await client.remove(request.requestid)


async def test_an_unreachable_service_is_a_typed_error(tmp_path: Path, node: KuboStorage) -> None:
    pins = RemotePins(tmp_path, node)
    pins.add_service("gone", f"http://127.0.0.1:{free_port()}", AccessToken("t"))
    with pytest.raises(NodeUnreachableError) as info:
        await pins.pin("gone", cid_for(RAW, b"x"))
    assert "pin remote ls" in info.value.hint


async def test_a_storage_with_no_address_cannot_ask_for_a_remote_pin(
    cluster: TestCluster, tmp_path: Path
) -> None:
    async with EmbeddedStorage(tmp_path / "store") as store:
        pins = RemotePins(tmp_path / "home", store)
        pins.add_service("cluster", cluster.peers[0].pinsvc_url, AccessToken(cluster.token))
        with pytest.raises(InvalidInputError) as info:
            await pins.pin("cluster", (await store.add(b"local only")).cid)
        assert "--api or --cluster" in info.value.hint


def test_the_client_refuses_statuses_it_does_not_know() -> None:
    from ipfs_share.errors import PinServiceError
    from ipfs_share.storage.pinning import RemotePin

    good = {"requestid": "r", "status": "pinned", "pin": {"cid": "bafk"}, "delegates": []}
    assert RemotePin.of(good).status == "pinned"
    for bad in ({**good, "status": "done"}, {**good, "pin": {}}, {**good, "requestid": ""}, []):
        with pytest.raises(PinServiceError):
            RemotePin.of(bad)
    assert repr(PinningClient("https://p.example", AccessToken("t"))) == (
        "PinningClient('https://p.example')"
    )
