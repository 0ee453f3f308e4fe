"""The revocation list: the trie (shape, copy-on-write, lookups) and its signed heads."""

from __future__ import annotations

import doctest
import hashlib
import random
from typing import Any

import pytest

from ipfs_share.crypto.labels import LABEL_REVOCATION_HEAD
from ipfs_share.crypto.signing import SigningKey
from ipfs_share.errors import ChainInvalidError, FormatError, SignatureInvalidError
from ipfs_share.formats import dagcbor
from ipfs_share.formats import revocation as revocation_module
from ipfs_share.formats.cid import DAG_CBOR, cid_bytes, cid_from_digest
from ipfs_share.formats.dagcbor import Link
from ipfs_share.formats.revocation import (
    MAX_LEAF,
    add,
    audit,
    contains,
    decode_head,
    decode_node,
    is_revoked,
    make_head,
    revoke,
    revoked_among,
    verify_history,
)
from ipfs_share.formats.signed import did_key, run_walk

ISSUER = SigningKey.from_seed(b"\x01" * 32)
OTHER = SigningKey.from_seed(b"\x02" * 32)
T0 = 1_800_000_000


def _ids(n: int, start: int = 0) -> list[str]:
    return [
        cid_from_digest(DAG_CBOR, hashlib.sha256(i.to_bytes(8, "big")).digest())
        for i in range(start, start + n)
    ]


class Counting(dict[str, bytes]):
    reads = 0

    def get_block(self, cid: str) -> bytes:
        self.reads += 1
        return self[cid]


def test_docstring_examples() -> None:
    assert doctest.testmod(revocation_module).failed == 0


def test_shape_depends_on_the_set_only() -> None:
    ids = _ids(3000)
    shuffled = ids[:]
    random.Random(1).shuffle(shuffled)
    store = Counting()
    one = run_walk(add(None, ids), store.get_block)
    store.update((b.cid, b.data) for b in one.blocks)
    # Built in three batches, in another order, over the stored trie.
    root = None
    for batch in (shuffled[:1000], shuffled[1000:2500], shuffled[2500:]):
        update = run_walk(add(root, batch), store.get_block)
        store.update((b.cid, b.data) for b in update.blocks)
        root = update.root
    assert root == one.root
    assert one.added == 3000
    root_node = decode_node(store[one.root.cid])  # type: ignore[union-attr]
    assert "branch" in root_node


def test_copy_on_write_touches_only_the_path() -> None:
    store = Counting()
    first = run_walk(add(None, _ids(5000)), store.get_block)
    store.update((b.cid, b.data) for b in first.blocks)
    second = run_walk(add(first.root, _ids(1, start=10**6)), store.get_block)
    assert second.added == 1
    assert len(second.blocks) == 2  # the changed leaf and the new root
    again = run_walk(add(second.root, []), store.get_block)
    assert again.root == second.root and again.blocks == ()
    store.update((b.cid, b.data) for b in second.blocks)
    same = run_walk(add(second.root, _ids(10)), store.get_block)
    assert same.added == 0 and same.root == second.root and same.blocks == ()


def test_lookups_and_audit() -> None:
    store = Counting()
    ids = _ids(2100)
    result = run_walk(revoke(ISSUER, None, ids, updated=T0), store.get_block)
    store.update((b.cid, b.data) for b in result.blocks)
    store.reads = 0
    assert run_walk(is_revoked(result.head, ids[1234]), store.get_block)
    assert store.reads == 2  # the root branch and one leaf; the head was in hand
    assert not run_walk(is_revoked(result.head, _ids(1, start=99_999)[0]), store.get_block)
    assert not run_walk(contains(None, ids[0]), store.get_block)
    assert run_walk(audit(result.head), store.get_block) == 2100
    with pytest.raises(FormatError):
        run_walk(
            is_revoked(result.head, "bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq"),
            store.get_block,
        )


def test_revoked_among_reads_each_node_once_and_agrees_with_is_revoked() -> None:
    store = Counting()
    ids = _ids(2100)
    result = run_walk(revoke(ISSUER, None, ids, updated=T0), store.get_block)
    store.update((b.cid, b.data) for b in result.blocks)
    asked = ids[::7] + _ids(300, start=50_000)  # 300 revoked, 300 not
    store.reads = 0
    found = run_walk(revoked_among(result.head, asked), store.get_block)
    assert found == {cid_bytes(c) for c in ids[::7]}
    leaves = {c for c, data in store.items() if "leaf" in dagcbor.decode(data)}
    assert store.reads <= 1 + len(leaves)  # the root branch, and each leaf at most once
    for c in asked[:40] + asked[-40:]:
        assert (cid_bytes(c) in found) == run_walk(is_revoked(result.head, c), store.get_block)
    assert run_walk(revoked_among(result.head, []), store.get_block) == set()


def test_leaf_and_branch_refusals() -> None:
    raw = sorted(bytes(Link(c)) for c in _ids(3))
    for bad, message in [
        ({"v": 1, "leaf": []}, "1 to 1024"),
        ({"v": 1, "leaf": [raw[1], raw[0]]}, "increasing"),
        ({"v": 1, "leaf": [raw[0], raw[0]]}, "increasing"),
        ({"v": 1, "leaf": [raw[0][:-1]]}, "36-byte"),
        ({"v": 1, "leaf": [raw[0]] * (MAX_LEAF + 1)}, "at most 1024 items"),
        ({"v": 1, "branch": [None] * 256}, "at least one child"),
        ({"v": 1, "branch": [None] * 255}, "256 items"),
        ({"v": 2, "leaf": raw}, "version 1"),
        ({"v": 1, "leaf": raw, "branch": [None] * 256}, "unknown 'branch'"),
    ]:
        with pytest.raises(FormatError, match=message):
            decode_node(dagcbor.encode(bad))


def _resigned(value: dict[str, Any], key: SigningKey = ISSUER) -> bytes:
    body = {k: v for k, v in value.items() if k != "sig"}
    body["sig"] = key.sign(LABEL_REVOCATION_HEAD + dagcbor.encode(body))
    return dagcbor.encode(body)


def test_head_rules_and_signature() -> None:
    head = make_head(ISSUER, seq=0, count=0, root=None, prev=None, updated=T0)
    assert decode_head(head.data, issuer=did_key(ISSUER.public_key)) == head
    value = dagcbor.decode(head.data)
    for change, message in [
        ({"seq": 1}, "prev to be null"),
        ({"count": 1}, "root to be null"),
        ({"extra": 0}, "unknown"),
        ({"v": 2}, "version 1"),
    ]:
        with pytest.raises(FormatError, match=message):
            decode_head(_resigned({**value, **change}))
    with pytest.raises(SignatureInvalidError):
        decode_head(head.data, issuer=did_key(OTHER.public_key))
    with pytest.raises(SignatureInvalidError):
        decode_head(_resigned(value, OTHER))


def test_history() -> None:
    store = Counting()
    heads = []
    head = None
    for n in range(4):
        result = run_walk(
            revoke(ISSUER, head, _ids(3, start=10 * n), updated=T0 + n), store.get_block
        )
        store.update((b.cid, b.data) for b in result.blocks)
        head = result.head
        heads.append(head)
    assert [h.seq for h in heads] == [0, 1, 2, 3] and heads[-1].count == 12
    run_walk(verify_history(heads[3], heads[1]), store.get_block)
    run_walk(verify_history(heads[2], heads[2]), store.get_block)
    with pytest.raises(ChainInvalidError, match="seq >= 3"):
        run_walk(verify_history(heads[1], heads[3]), store.get_block)
    fork = run_walk(revoke(ISSUER, heads[0], _ids(1, start=500), updated=T0), store.get_block)
    store.update((b.cid, b.data) for b in fork.blocks)
    with pytest.raises(ChainInvalidError, match="fork"):
        run_walk(verify_history(fork.head, heads[1]), store.get_block)
    with pytest.raises(FormatError):
        run_walk(revoke(OTHER, heads[0], [], updated=T0), store.get_block)
