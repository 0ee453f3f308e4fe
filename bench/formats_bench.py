"""The signed-object codecs: capsule open, big dag-cbor nodes, revocation lookups.

- capsule: decode a capsule with 1,000 stanzas, find and unwrap one's own stanza (the last;
  every stanza is tried whatever the position) and check the commitment. Target < 100 ms.
- dag-cbor: strict decode of one node holding 10,000 links, against cbor2's lenient
  ``loads`` of the same bytes (the floor any strict decoder on cbor2 sits on). Target
  < 50 ms.
- revocation: a list of 100,000 capsule IDs: time to build it, blocks read per membership
  check (the head included; target 3), the biggest block (must stay far below 2 MiB), and
  the time of a check and of adding one ID to the full list.

Best of ``--rounds`` (at least 3); ``--size`` is not used.
"""

from __future__ import annotations

import argparse
import hashlib
import time
from collections.abc import Callable
from typing import Any

import cbor2

from ipfs_share.crypto.random import DeterministicRng
from ipfs_share.crypto.signing import SigningKey
from ipfs_share.crypto.stream import FileKey
from ipfs_share.crypto.x25519 import EncryptionKey
from ipfs_share.formats import dagcbor
from ipfs_share.formats.capsule import (
    build_capsule,
    check_commitment,
    decode_capsule,
    find_and_unwrap,
)
from ipfs_share.formats.cid import DAG_CBOR, RAW, cid_for, cid_from_digest
from ipfs_share.formats.dagcbor import Link
from ipfs_share.formats.revocation import decode_head, is_revoked, revoke
from ipfs_share.formats.signed import run_walk

STANZAS = 1000
LINKS = 10_000
REVOKED = 100_000
CHECKS = 1000


def _best(fn: Callable[[], object], rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def _capsule(rounds: int) -> dict[str, Any]:
    rng = DeterministicRng(b"bench capsule")
    recipients = [EncryptionKey.generate(rng) for _ in range(STANZAS)]
    capsule = build_capsule(
        SigningKey.generate(rng),
        content=cid_for(RAW, b"bench"),
        file_key=FileKey.generate(rng),
        recipients=[r.public_key for r in recipients],
        created=1_800_000_000,
        expires=None,
        rng=rng,
    )
    me = recipients[-1]

    def open_() -> None:
        opened = decode_capsule(capsule.data)
        check_commitment(opened, find_and_unwrap(opened, me))

    total = _best(open_, rounds)
    decode = _best(lambda: decode_capsule(capsule.data), rounds)
    return {
        "capsule_bytes": len(capsule.data),
        "decode_ms": round(decode * 1000, 2),
        "decode_unwrap_commit_ms": round(total * 1000, 1),
    }


def _dagcbor(rounds: int) -> dict[str, Any]:
    links = [
        Link(cid_from_digest(DAG_CBOR, hashlib.sha256(i.to_bytes(4, "big")).digest()))
        for i in range(LINKS)
    ]
    data = dagcbor.encode({"links": links})
    strict = _best(lambda: dagcbor.decode(data), rounds)
    lenient = _best(lambda: cbor2.loads(data), rounds)
    return {
        "node_bytes": len(data),
        "strict_decode_ms": round(strict * 1000, 2),
        "cbor2_loads_ms": round(lenient * 1000, 2),
        "strict_over_cbor2": round(strict / lenient, 2),
    }


def _revocation(rounds: int) -> dict[str, Any]:
    key = SigningKey.generate(DeterministicRng(b"bench revocation"))
    ids = [
        cid_from_digest(DAG_CBOR, hashlib.sha256(i.to_bytes(8, "big")).digest())
        for i in range(REVOKED)
    ]
    store: dict[str, bytes] = {}
    start = time.perf_counter()
    result = run_walk(revoke(key, None, ids, updated=1_800_000_000), store.__getitem__)
    build_s = time.perf_counter() - start
    store.update((b.cid, b.data) for b in result.blocks)
    head_cid = result.head.cid
    reads = 0

    def get(cid: str) -> bytes:
        nonlocal reads
        reads += 1
        return store[cid]

    def check(capsule_id: str) -> bool:
        head = decode_head(get(head_cid))  # what a check starts from: the resolved head
        return run_walk(is_revoked(head, capsule_id), get)

    absent = [
        cid_from_digest(DAG_CBOR, hashlib.sha256(b"no" + i.to_bytes(8, "big")).digest())
        for i in range(CHECKS)
    ]
    assert all(check(ids[i * 97]) for i in range(CHECKS))
    assert not any(check(c) for c in absent)
    reads_per_check = reads / (2 * CHECKS)
    check_s = _best(lambda: [check(ids[i * 97]) for i in range(100)], rounds) / 100
    one = cid_from_digest(DAG_CBOR, hashlib.sha256(b"one more").digest())
    add_s = _best(
        lambda: run_walk(revoke(key, result.head, [one], updated=1_800_000_001), get), rounds
    )
    added = run_walk(revoke(key, result.head, [one], updated=1_800_000_001), get)
    sizes = [len(b.data) for b in result.blocks]
    return {
        "ids": REVOKED,
        "build_s": round(build_s, 2),
        "blocks": len(sizes),
        "biggest_block_bytes": max(sizes),
        "blocks_read_per_check": reads_per_check,
        "check_ms": round(check_s * 1000, 3),
        "add_one_ms": round(add_s * 1000, 2),
        "add_one_blocks_written": len(added.blocks),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    rounds = max(3, args.rounds)
    capsule = _capsule(rounds)
    node = _dagcbor(rounds)
    revocation = _revocation(rounds)
    return {
        "rounds": rounds,
        "capsule_1000_stanzas": capsule,
        "dagcbor_10000_links": node,
        "revocation_100k": revocation,
        "targets_met": {
            "capsule_open_1000<100ms": capsule["decode_unwrap_commit_ms"] < 100,
            "dagcbor_10000_links<50ms": node["strict_decode_ms"] < 50,
            "revocation_reads_per_check==3": revocation["blocks_read_per_check"] == 3,
            "revocation_biggest_block<64KiB": revocation["biggest_block_bytes"] < 64 * 1024,
        },
    }
