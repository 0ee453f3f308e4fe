"""Every kind of signed object we write, checked against Kubo's Go codec (go-ipld-prime).

Each object is stored with ``block/put`` (our bytes, our CID: KuboStorage checks Kubo's
answer against the CID we computed), read back with ``dag/get`` in dag-cbor and in
dag-json, and re-put with ``dag/put`` from each form: Kubo's codec must land on the same
CID, so a second implementation built on it reads and writes the same bytes we do. A
mailbox head record, signed in Python with the mailbox key, must be accepted and resolved.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest

from ipfs_share.crypto.random import DeterministicRng
from ipfs_share.crypto.signing import SigningKey
from ipfs_share.crypto.stream import FileKey
from ipfs_share.crypto.x25519 import EncryptionKey
from ipfs_share.formats import capsule, identity_doc, mailbox, revocation
from ipfs_share.formats.cid import DAG_CBOR, cid_from_digest
from ipfs_share.formats.signed import Block, block_from_bytes, did_key, run_walk
from ipfs_share.storage.kubo import KuboStorage

ALICE, ALICE_ENC = SigningKey.from_seed(b"\x11" * 32), EncryptionKey(b"\x12" * 32)
BOB, BOB_ENC = SigningKey.from_seed(b"\x13" * 32), EncryptionKey(b"\x14" * 32)
VAULT = SigningKey.from_seed(b"\x15" * 32)
CONTENT = "bafybeihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
T0 = 1_800_000_000


def _objects() -> dict[str, Block]:
    """One block of every kind we write (and the variants with optional parts filled)."""
    bob_did = did_key(BOB.public_key)
    plain = capsule.build_capsule(
        ALICE,
        content=CONTENT,
        file_key=FileKey(b"\x16" * 32),
        recipients=[BOB_ENC.public_key],
        created=T0,
        expires=T0 + 3600,
        rng=DeterministicRng(b"kubo plain"),
    )
    full = capsule.build_capsule(
        ALICE,
        content="bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq",
        file_key=FileKey(b"\x17" * 32),
        recipients=[EncryptionKey(bytes([i]) * 32).public_key for i in range(40, 140)],
        created=T0,
        expires=None,
        perms=capsule.Perms(download=False),
        policy=capsule.Policy(
            "org.example.policy",
            {
                "hours": [9, 17],
                "neg": -5,
                "big": 2**63 - 1,
                "small": -(2**63),
                "tz": "Europe/Paris",
                "raw": b"\x00\xff",
            },
        ),
        cap_issuer=did_key(VAULT.public_key),
        rng=DeterministicRng(b"kubo full"),
    )
    token = capsule.make_capability(VAULT, aud=bob_did, capsule=full.cid, nbf=T0, exp=T0 + 60)
    first = mailbox.make_entry(ALICE, None, capsule=plain.cid, sent=T0)
    second = mailbox.make_entry(ALICE, first, capsule=full.cid, sent=T0 + 1)
    box = mailbox.mailbox_key(
        BOB_ENC, ALICE_ENC.public_key, sender=did_key(ALICE.public_key), recipient=bob_did
    )
    ack = mailbox.make_ack(BOB, None, capsule=plain.cid, via=box, state="opened", sent=T0 + 2)
    store: dict[str, bytes] = {}
    ids = [cid_from_digest(DAG_CBOR, bytes([i % 256, i // 256]) * 16) for i in range(1100)]
    listed = run_walk(revocation.revoke(ALICE, None, ids, updated=T0), store.__getitem__)
    store.update((b.cid, b.data) for b in listed.blocks)
    later = run_walk(
        revocation.revoke(ALICE, listed.head, [*ids[:1], plain.cid], updated=T0 + 9),
        store.__getitem__,
    )
    empty = revocation.make_head(ALICE, seq=0, count=0, root=None, prev=None, updated=T0)
    root = listed.head.root
    assert root is not None
    leaf = next(b for b in listed.blocks if b"leaf" in b.data[:10])
    doc = identity_doc.make_identity_document(ALICE, ALICE_ENC.public_key, seq=0, created=T0)
    return {
        "identity document": block_from_bytes(doc.data),
        "capsule": block_from_bytes(plain.data),
        "capsule, all fields, 100 stanzas": block_from_bytes(full.data),
        "capability token": block_from_bytes(token.data),
        "mailbox entry, seq 0": block_from_bytes(first.data),
        "mailbox entry, seq 1": block_from_bytes(second.data),
        "mailbox ack": block_from_bytes(ack.data),
        "revocation head, empty": block_from_bytes(empty.data),
        "revocation head, seq 1": block_from_bytes(later.head.data),
        "revocation branch": block_from_bytes(store[root.cid]),
        "revocation leaf": leaf,
    }


OBJECTS = _objects()


async def _rpc(
    api_url: str, command: str, params: Sequence[tuple[str, str]], file: bytes | None = None
) -> bytes:
    form = None
    if file is not None:
        form = aiohttp.FormData()
        form.add_field("file", file, filename="data", content_type="application/octet-stream")
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session,
        session.post(f"{api_url}/api/v0/{command}", params=list(params), data=form) as response,
    ):
        body = await response.read()
        assert response.status == 200, body[:500]
        return body


@pytest.mark.parametrize("label", list(OBJECTS))
async def test_kubo_go_codec_round_trips_our_objects(kubo: Any, label: str) -> None:
    block = OBJECTS[label]
    async with await KuboStorage.connect(kubo.api_url) as store:
        assert await store.block_put(block.data, codec="dag-cbor") == block.cid
    as_cbor = await _rpc(
        kubo.api_url, "dag/get", [("arg", block.cid), ("output-codec", "dag-cbor")]
    )
    assert as_cbor == block.data  # go-ipld-prime decodes and re-encodes: same bytes
    as_json = await _rpc(
        kubo.api_url, "dag/get", [("arg", block.cid), ("output-codec", "dag-json")]
    )
    for codec, body in (("dag-cbor", as_cbor), ("dag-json", as_json)):
        put = json.loads(
            await _rpc(
                kubo.api_url,
                "dag/put",
                [("input-codec", codec), ("store-codec", "dag-cbor"), ("hash", "sha2-256")],
                file=body,
            )
        )
        assert put["Cid"]["/"] == block.cid, f"{label} via {codec}"


async def test_kubo_accepts_a_mailbox_head_record(kubo: Any) -> None:
    entry = mailbox.make_entry(ALICE, None, capsule=OBJECTS["capsule"].cid, sent=T0)
    a, b = did_key(ALICE.public_key), did_key(BOB.public_key)
    key = mailbox.mailbox_key(ALICE_ENC, BOB_ENC.public_key, sender=a, recipient=b)
    name = mailbox.mailbox_name(BOB_ENC, ALICE_ENC.public_key, sender=a, recipient=b)
    record = mailbox.head_record(
        key, entry, validity=timedelta(hours=1), ttl_seconds=30, now=datetime.now(UTC)
    )
    async with await KuboStorage.connect(kubo.api_url) as store:
        await store.block_put(entry.data, codec="dag-cbor")
        await store.ipns_put(name, record)
        resolved = await store.ipns_resolve(name, nocache=True)
    assert resolved == f"/ipfs/{entry.cid}"
